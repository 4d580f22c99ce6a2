"""A pod as the scheduler sees it: everything its plugins need, parsed once from the pod
dict (requests, host ports, tolerations, node and pod affinity terms, spread constraints,
volumes, images) — kube-scheduler's ``framework.PodInfo``.

Who calls it: the scheduler's cache and queue (one :class:`PodInfo` per pod they hold)
and the unit tests, which build them from hand-written pod dicts. The pod dict is the
informer's shared object; it is read, never copied or mutated. ``local_key`` is a
signature of everything the node-local plugins look at, so pods stamped from the same
template share their per-node filter and score results (see
:mod:`runtime.scheduler.framework`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from runtime.scheduler.labels import (
    NOTHING,
    NodeSelector,
    PreferredTerm,
    Selector,
    Toleration,
    label_selector,
    preferred_node_terms,
    tolerates,
)
from runtime.scheduler.resources import (
    CPU,
    DEFAULT_MEMORY,
    DEFAULT_MILLI_CPU,
    EPHEMERAL,
    MEMORY,
    pod_requests,
    scalar_resources,
)

UNSCHEDULABLE_TAINT = ("node.kubernetes.io/unschedulable", "", "NoSchedule")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class AffinityTerm:
    """A processed ``PodAffinityTerm`` (``framework.AffinityTerm``)."""

    __slots__ = ("namespaces", "ns_selector", "selector", "topology_key", "weight")

    def __init__(self, pod_namespace: str, term: Mapping[str, Any], weight: int = 0) -> None:
        self.selector: Selector = label_selector(term.get("labelSelector"))
        raw_ns = term.get("namespaces") or []
        ns_sel = term.get("namespaceSelector")
        if not raw_ns and ns_sel is None:
            self.namespaces = frozenset({pod_namespace})
        else:
            self.namespaces = frozenset(str(n) for n in raw_ns)
        self.ns_selector: Selector = label_selector(ns_sel) if ns_sel is not None else NOTHING
        self.topology_key = str(term.get("topologyKey") or "")
        self.weight = weight

    def matches(
        self, namespace: str, labels: Mapping[str, str], ns_labels: Mapping[str, str] | None
    ) -> bool:
        if namespace in self.namespaces or (
            not self.ns_selector.nothing and self.ns_selector.matches(ns_labels or {})
        ):
            return self.selector.matches(labels)
        return False

    def resolved_namespaces(
        self, namespace_labels: Mapping[str, Mapping[str, str]]
    ) -> frozenset[str] | None:
        """The namespaces this term covers, with its namespaceSelector expanded (the
        incoming pod's terms, as kube-scheduler's PreFilter merges them); None = all."""
        if self.ns_selector.nothing:
            return self.namespaces
        if self.ns_selector.everything:
            return None
        extra = {ns for ns, labels in namespace_labels.items() if self.ns_selector.matches(labels)}
        return self.namespaces | extra


def _affinity_terms(namespace: str, raw: Any, weighted: bool) -> tuple[AffinityTerm, ...]:
    out: list[AffinityTerm] = []
    for item in raw or []:
        if not isinstance(item, Mapping):
            continue
        if weighted:
            term = item.get("podAffinityTerm") or {}
            out.append(AffinityTerm(namespace, term, int(item.get("weight") or 0)))
        else:
            out.append(AffinityTerm(namespace, item))
    return tuple(out)


def normalized_image(name: str) -> str:
    """``name:latest`` when the reference carries no tag (ImageLocality's rule)."""
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


class PodInfo:
    """Everything the scheduling plugins read from one pod."""

    __slots__ = (
        "best_effort",
        "cpu",
        "creation",
        "deleting",
        "eph",
        "gated",
        "has_pod_affinity",
        "has_required_anti_affinity",
        "host_ports",
        "images",
        "key",
        "labels",
        "local_key",
        "mem",
        "n_containers",
        "name",
        "namespace",
        "node_affinity",
        "node_name",
        "node_names",
        "node_selector",
        "nz_cpu",
        "nz_mem",
        "owner",
        "phase",
        "pod",
        "preemption_policy",
        "preferred_affinity",
        "preferred_anti_affinity",
        "preferred_node_terms",
        "priority",
        "pvcs",
        "required_affinity",
        "required_anti_affinity",
        "scalars",
        "scheduler_name",
        "spread_constraints",
        "tolerates_unschedulable",
        "tolerations",
        "uid",
    )

    def __init__(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        self.pod = pod
        self.uid = str(meta.get("uid") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta.get("name") or "")
        self.key = f"{self.namespace}/{self.name}"
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        self.creation = str(meta.get("creationTimestamp") or "")
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.priority = int(spec.get("priority") or 0)
        self.preemption_policy = str(spec.get("preemptionPolicy") or "PreemptLowerPriority")
        self.node_name = str(spec.get("nodeName") or "")
        self.scheduler_name = str(spec.get("schedulerName") or "default-scheduler")
        self.phase = str(status.get("phase") or "")
        self.gated = bool(spec.get("schedulingGates"))
        owner = None
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller"):
                owner = (
                    str(ref.get("kind") or ""),
                    str(ref.get("name") or ""),
                    str(ref.get("uid") or ""),
                )
                break
        self.owner = owner

        # Resources.
        reqs = pod_requests(spec)
        self.cpu = reqs.get(CPU, 0)
        self.mem = reqs.get(MEMORY, 0)
        self.eph = reqs.get(EPHEMERAL, 0)
        self.scalars = scalar_resources(reqs)
        nz = pod_requests(spec, non_missing=True)
        self.nz_cpu = nz.get(CPU, DEFAULT_MILLI_CPU)
        self.nz_mem = nz.get(MEMORY, DEFAULT_MEMORY)
        self.best_effort = self.cpu == 0 and self.mem == 0

        containers = list(spec.get("containers") or [])
        inits = list(spec.get("initContainers") or [])
        ports: list[tuple[str, str, int]] = []
        for c in [*containers, *(i for i in inits if i.get("restartPolicy") == "Always")]:
            for p in c.get("ports") or []:
                hp = int(p.get("hostPort") or 0)
                if hp > 0:
                    ports.append(
                        (str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), hp)
                    )
        self.host_ports = tuple(ports)
        self.images = tuple(
            normalized_image(str(c.get("image") or "")) for c in [*inits, *containers]
        )
        self.n_containers = len(inits) + len(containers)

        raw_tolerations = spec.get("tolerations") or []
        self.tolerations = tuple(Toleration(t) for t in raw_tolerations if isinstance(t, Mapping))
        self.tolerates_unschedulable = tolerates(self.tolerations, UNSCHEDULABLE_TAINT)

        # Node affinity.
        affinity = spec.get("affinity") or {}
        node_aff = affinity.get("nodeAffinity") or {}
        self.node_selector: Mapping[str, str] | None = spec.get("nodeSelector") or None
        required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.node_affinity: NodeSelector | None = (
            NodeSelector(required) if required is not None else None
        )
        self.preferred_node_terms: tuple[PreferredTerm, ...] = preferred_node_terms(
            node_aff.get("preferredDuringSchedulingIgnoredDuringExecution")
        )
        self.node_names: set[str] | None = None
        if self.node_affinity is not None and self.node_affinity.terms:
            names: set[str] = set()
            for term in self.node_affinity.terms:
                term_names = term.node_names()
                if term_names is None:
                    names = set()
                    break
                names |= term_names
            else:
                self.node_names = names

        # Pod affinity.
        pa = affinity.get("podAffinity") or {}
        paa = affinity.get("podAntiAffinity") or {}
        ns = self.namespace
        self.required_affinity = _affinity_terms(
            ns, pa.get("requiredDuringSchedulingIgnoredDuringExecution"), False
        )
        self.required_anti_affinity = _affinity_terms(
            ns, paa.get("requiredDuringSchedulingIgnoredDuringExecution"), False
        )
        self.preferred_affinity = _affinity_terms(
            ns, pa.get("preferredDuringSchedulingIgnoredDuringExecution"), True
        )
        self.preferred_anti_affinity = _affinity_terms(
            ns, paa.get("preferredDuringSchedulingIgnoredDuringExecution"), True
        )
        self.has_pod_affinity = bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )
        self.has_required_anti_affinity = bool(self.required_anti_affinity)
        self.spread_constraints: tuple[Mapping[str, Any], ...] = tuple(
            c for c in spec.get("topologySpreadConstraints") or [] if isinstance(c, Mapping)
        )

        # Volumes.
        self.pvcs = tuple(
            str(v["persistentVolumeClaim"].get("claimName") or "")
            for v in spec.get("volumes") or []
            if isinstance(v, Mapping) and isinstance(v.get("persistentVolumeClaim"), Mapping)
        )

        self.local_key = orjson.dumps(
            [
                self.cpu,
                self.mem,
                self.eph,
                self.scalars,
                self.nz_cpu,
                self.nz_mem,
                self.host_ports,
                raw_tolerations,
                self.node_selector,
                node_aff,
                self.images,
                self.namespace if self.pvcs else "",
                self.pvcs,
                self.node_name,
            ],
            option=orjson.OPT_SORT_KEYS,
        )

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def with_meta(self, pod: Mapping[str, Any]) -> PodInfo:
        """This info for a newer version of the same pod whose spec did not change in a
        way the scheduler cares about (only labels, deletion, phase and nodeName are
        re-read); a pod's spec is immutable but for those."""
        clone = PodInfo.__new__(PodInfo)
        for slot in PodInfo.__slots__:
            setattr(clone, slot, getattr(self, slot))
        meta = pod.get("metadata") or {}
        clone.pod = pod
        clone.labels = meta.get("labels") or {}
        clone.deleting = bool(meta.get("deletionTimestamp"))
        clone.node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        clone.phase = str((pod.get("status") or {}).get("phase") or "")
        return clone

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"
