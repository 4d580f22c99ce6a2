"""The scheduler's cache: every node with the pods bound or assumed on it and their
running totals (requested and non-zero requested resources, host ports, PVC use, pods
with affinity), kept current incrementally as informer events and assumptions arrive.

Who calls it: :class:`runtime.scheduler.scheduler.Scheduler` (informer handlers,
assume/forget around binding) and :mod:`runtime.scheduler.framework`, which reads it as
the per-cycle snapshot — a scheduling cycle runs synchronously on the event loop, so the
cache cannot change under it and no copy is taken. Unit tests build one from plain
node and pod dicts with :meth:`ClusterState.from_objects`.

Each :class:`NodeInfo` carries a ``version`` that changes whenever anything a node-local
plugin reads changes (the node object or the pods on it); the framework uses it to
reuse per-node results between pods with the same :attr:`PodInfo.local_key`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.scheduler.labels import Selector, Taint
from runtime.scheduler.podinfo import PodInfo, normalized_image
from runtime.scheduler.resources import CPU, EPHEMERAL, MEMORY, PODS, amount

_versions = itertools.count(1)

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
HOSTNAME_LABEL = "kubernetes.io/hostname"

# Conditions the node lifecycle controller turns into NoSchedule taints
# (TaintNodesByCondition), so that the scheduler filters such nodes through
# TaintToleration exactly as it does on a real cluster.
_CONDITION_TAINTS: tuple[tuple[str, str, str], ...] = (
    ("Ready", "False", "node.kubernetes.io/not-ready"),
    ("Ready", "Unknown", "node.kubernetes.io/unreachable"),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
)


def effective_taints(node: Mapping[str, Any], condition_taints: bool) -> tuple[Taint, ...]:
    """``spec.taints`` plus the NoSchedule taints the node lifecycle controller adds for
    the node's conditions and for ``spec.unschedulable`` (when not already present)."""
    spec = node.get("spec") or {}
    taints: list[Taint] = [
        (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in spec.get("taints") or []
        if isinstance(t, Mapping)
    ]
    if condition_taints:
        present = {(k, e) for k, _, e in taints}
        conditions = {
            str(c.get("type")): str(c.get("status"))
            for c in (node.get("status") or {}).get("conditions") or []
            if isinstance(c, Mapping)
        }
        for ctype, cstatus, key in _CONDITION_TAINTS:
            if conditions.get(ctype) == cstatus and (key, "NoSchedule") not in present:
                taints.append((key, "", "NoSchedule"))
        if (
            spec.get("unschedulable")
            and ("node.kubernetes.io/unschedulable", "NoSchedule") not in present
        ):
            taints.append(("node.kubernetes.io/unschedulable", "", "NoSchedule"))
    return tuple(taints)


def zone_key(labels: Mapping[str, str]) -> str:
    """``utilnode.GetZoneKey``: region and zone, or "" when the node has neither."""
    region = (
        labels.get(REGION_LABEL) or labels.get("failure-domain.beta.kubernetes.io/region") or ""
    )
    zone = labels.get(ZONE_LABEL) or labels.get("failure-domain.beta.kubernetes.io/zone") or ""
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


class NodeInfo:
    """One node and the totals of the pods bound or assumed on it."""

    __slots__ = (
        "alloc_cpu",
        "alloc_eph",
        "alloc_mem",
        "alloc_pods",
        "alloc_scalars",
        "images",
        "labels",
        "name",
        "node",
        "nz_cpu",
        "nz_mem",
        "pods",
        "ports",
        "pvc_refs",
        "relevant",
        "req_cpu",
        "req_eph",
        "req_mem",
        "req_scalars",
        "taints",
        "unschedulable",
        "version",
        "with_affinity",
        "with_required_anti",
        "zone",
    )

    def __init__(
        self, name: str, node: Mapping[str, Any] | None = None, *, condition_taints: bool = True
    ) -> None:
        self.name = name
        self.node: Mapping[str, Any] | None = None
        self.labels: Mapping[str, str] = {}
        self.taints: tuple[Taint, ...] = ()
        self.unschedulable = False
        self.alloc_cpu = self.alloc_mem = self.alloc_eph = self.alloc_pods = 0
        self.alloc_scalars: dict[str, int] = {}
        self.images: dict[str, int] = {}
        self.zone = ""
        self.relevant: Any = None
        self.req_cpu = self.req_mem = self.req_eph = 0
        self.req_scalars: dict[str, int] = {}
        self.nz_cpu = self.nz_mem = 0
        self.pods: dict[str, PodInfo] = {}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        self.pvc_refs: dict[str, int] = {}
        self.with_affinity: dict[str, PodInfo] = {}
        self.with_required_anti: dict[str, PodInfo] = {}
        self.version = next(_versions)
        if node is not None:
            self.set_node(node, condition_taints=condition_taints)

    # --- the node object ---------------------------------------------------------------
    def set_node(self, node: Mapping[str, Any], *, condition_taints: bool = True) -> bool:
        """Take a new version of the node; True when anything the scheduler reads changed
        (heartbeats and other status noise are ignored)."""
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        labels = meta.get("labels") or {}
        taints = effective_taints(node, condition_taints)
        allocatable = status.get("allocatable") or {}
        images = status.get("images") or []
        relevant = (labels, taints, bool(spec.get("unschedulable")), allocatable, images)
        self.node = node
        if relevant == self.relevant:
            return False
        self.relevant = relevant
        self.labels = labels
        self.taints = taints
        self.unschedulable = bool(spec.get("unschedulable"))
        alloc = (
            {str(k): amount(str(k), v) for k, v in allocatable.items()}
            if isinstance(allocatable, Mapping)
            else {}
        )
        self.alloc_cpu = alloc.pop(CPU, 0)
        self.alloc_mem = alloc.pop(MEMORY, 0)
        self.alloc_eph = alloc.pop(EPHEMERAL, 0)
        self.alloc_pods = alloc.pop(PODS, 0)
        self.alloc_scalars = alloc
        self.images = {}
        for image in images:
            if not isinstance(image, Mapping):
                continue
            size = int(image.get("sizeBytes") or 0)
            for name in image.get("names") or []:
                self.images[normalized_image(str(name))] = size
        self.zone = zone_key(labels)
        self.version = next(_versions)
        return True

    # --- pods ---------------------------------------------------------------------------
    def add_pod(self, pi: PodInfo) -> None:
        self.pods[pi.uid] = pi
        self.req_cpu += pi.cpu
        self.req_mem += pi.mem
        self.req_eph += pi.eph
        for k, v in pi.scalars:
            self.req_scalars[k] = self.req_scalars.get(k, 0) + v
        self.nz_cpu += pi.nz_cpu
        self.nz_mem += pi.nz_mem
        for ip, proto, port in pi.host_ports:
            ips = self.ports.setdefault((proto, port), {})
            ips[ip] = ips.get(ip, 0) + 1
        for claim in pi.pvcs:
            k = f"{pi.namespace}/{claim}"
            self.pvc_refs[k] = self.pvc_refs.get(k, 0) + 1
        if pi.has_pod_affinity:
            self.with_affinity[pi.uid] = pi
        if pi.has_required_anti_affinity:
            self.with_required_anti[pi.uid] = pi
        self.version = next(_versions)

    def remove_pod(self, uid: str) -> PodInfo | None:
        pi = self.pods.pop(uid, None)
        if pi is None:
            return None
        self.req_cpu -= pi.cpu
        self.req_mem -= pi.mem
        self.req_eph -= pi.eph
        for k, v in pi.scalars:
            self.req_scalars[k] = self.req_scalars.get(k, 0) - v
        self.nz_cpu -= pi.nz_cpu
        self.nz_mem -= pi.nz_mem
        for ip, proto, port in pi.host_ports:
            ips = self.ports.get((proto, port))
            if ips is not None:
                ips[ip] -= 1
                if ips[ip] <= 0:
                    del ips[ip]
                if not ips:
                    del self.ports[(proto, port)]
        for claim in pi.pvcs:
            k = f"{pi.namespace}/{claim}"
            self.pvc_refs[k] -= 1
            if self.pvc_refs[k] <= 0:
                del self.pvc_refs[k]
        self.with_affinity.pop(uid, None)
        self.with_required_anti.pop(uid, None)
        self.version = next(_versions)
        return pi

    def replace_pod(self, pi: PodInfo) -> None:
        """A newer version of a pod already counted here whose accounting is unchanged."""
        self.pods[pi.uid] = pi
        if pi.has_pod_affinity:
            self.with_affinity[pi.uid] = pi
        if pi.has_required_anti_affinity:
            self.with_required_anti[pi.uid] = pi

    def port_conflict(self, ip: str, proto: str, port: int) -> bool:
        ips = self.ports.get((proto, port))
        if not ips:
            return False
        if ip == "0.0.0.0":
            return True
        return ip in ips or "0.0.0.0" in ips

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)}, cpu={self.req_cpu}/{self.alloc_cpu})"


# --- counting pods that match a selector, per node -------------------------------------

Condition = tuple[frozenset[str] | None, Selector]  # namespaces (None: all) and a selector
MatchKey = tuple[tuple[tuple[frozenset[str] | None, str], ...], bool]


class _MatchEntry:
    __slots__ = ("conds", "counts", "last_used", "skip_terminating")

    def __init__(self, conds: tuple[Condition, ...], skip_terminating: bool) -> None:
        self.conds = conds
        self.skip_terminating = skip_terminating
        self.counts: dict[str, int] = {}
        self.last_used = 0.0

    def matches(self, pi: PodInfo) -> bool:
        if self.skip_terminating and pi.deleting:
            return False
        for namespaces, selector in self.conds:
            if namespaces is not None and pi.namespace not in namespaces:
                return False
            if not selector.matches(pi.labels):
                return False
        return True


class MatchIndex:
    """Per-node counts of the pods matching every one of some ``(namespaces, selector)``
    conditions, built on first use and then kept current on each pod add/remove — what
    inter-pod affinity and topology spreading need each cycle without walking every pod.
    Entries unused for a while are dropped when the index is full."""

    def __init__(self, max_entries: int = 256, idle_seconds: float = 120.0) -> None:
        self.entries: dict[MatchKey, _MatchEntry] = {}
        self.max_entries = max_entries
        self.idle_seconds = idle_seconds

    def counts(
        self,
        namespaces: frozenset[str] | None,
        selector: Selector,
        skip_terminating: bool,
        nodes: Iterable[NodeInfo],
    ) -> dict[str, int]:
        """Per node name, the pods in ``namespaces`` (None: any) matching ``selector``."""
        return self.counts_all(((namespaces, selector),), skip_terminating, nodes)

    def counts_all(
        self, conds: tuple[Condition, ...], skip_terminating: bool, nodes: Iterable[NodeInfo]
    ) -> dict[str, int]:
        key: MatchKey = (tuple((ns, sel.key) for ns, sel in conds), skip_terminating)
        entry = self.entries.get(key)
        now = time.monotonic()
        if entry is None:
            if len(self.entries) >= self.max_entries:
                self._evict(now)
            entry = _MatchEntry(conds, skip_terminating)
            if not any(sel.nothing for _, sel in conds):
                for ni in nodes:
                    n = sum(1 for pi in ni.pods.values() if entry.matches(pi))
                    if n:
                        entry.counts[ni.name] = n
            self.entries[key] = entry
        entry.last_used = now
        return entry.counts

    def _evict(self, now: float) -> None:
        idle = [k for k, e in self.entries.items() if now - e.last_used > self.idle_seconds]
        if not idle:
            by_age = sorted(self.entries, key=lambda k: self.entries[k].last_used)
            idle = by_age[: len(self.entries) // 2]
        for k in idle:
            del self.entries[k]

    def add(self, pi: PodInfo, node: str) -> None:
        for e in self.entries.values():
            if e.matches(pi):
                e.counts[node] = e.counts.get(node, 0) + 1

    def remove(self, pi: PodInfo, node: str) -> None:
        for e in self.entries.values():
            if e.matches(pi):
                n = e.counts.get(node, 0) - 1
                if n > 0:
                    e.counts[node] = n
                else:
                    e.counts.pop(node, None)


# --- the cache ---------------------------------------------------------------------------


class ClusterState:
    """Nodes, the pods bound or assumed on them, and the other objects plugins read
    (namespaces, PVCs, PVs, storage classes, and the selectors of services and
    controllers for default topology spreading)."""

    def __init__(self, *, condition_taints: bool = True) -> None:
        self.condition_taints = condition_taints
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, tuple[PodInfo, str]] = {}  # uid → (pod, node name)
        self.assumed: set[str] = set()
        self.binding_finished: set[str] = set()
        self.image_nodes: dict[str, int] = {}
        self.namespaces: dict[str, Mapping[str, str]] = {}
        self.pvcs: dict[str, Mapping[str, Any]] = {}
        self.pvs: dict[str, Mapping[str, Any]] = {}
        self.storage_classes: dict[str, Mapping[str, Any]] = {}
        self.pvc_users: dict[str, int] = {}
        self.services: dict[str, dict[str, Mapping[str, str]]] = {}
        self.controllers: dict[tuple[str, str, str], Selector] = {}
        self.with_affinity: dict[str, PodInfo] = {}
        self.with_required_anti: dict[str, PodInfo] = {}
        self.match = MatchIndex()
        # Bumped when something that is not per node changes (volumes, the node set or
        # its images): per-node results cached by the framework are then recomputed.
        self.global_version = next(_versions)
        self._order: list[NodeInfo] = []
        self._order_dirty = False
        self._zones: dict[str, list[str]] = {}

    @classmethod
    def from_objects(
        cls,
        nodes: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
        *,
        condition_taints: bool = True,
        namespaces: Iterable[Mapping[str, Any]] = (),
        pvcs: Iterable[Mapping[str, Any]] = (),
        pvs: Iterable[Mapping[str, Any]] = (),
        storage_classes: Iterable[Mapping[str, Any]] = (),
    ) -> ClusterState:
        """A cache holding these objects (pods with ``spec.nodeName`` are counted on their
        node; others are ignored) — for tests and tools."""
        state = cls(condition_taints=condition_taints)
        for n in nodes:
            state.upsert_node(n)
        for ns in namespaces:
            state.set_namespace(ns)
        for c in pvcs:
            state.set_pvc(c)
        for v in pvs:
            state.set_pv(v)
        for sc in storage_classes:
            state.set_storage_class(sc)
        for p in pods:
            pi = PodInfo(p)
            if pi.node_name and not pi.terminal:
                state.add_pod(pi)
        return state

    # --- nodes -----------------------------------------------------------------------------
    @property
    def order(self) -> list[NodeInfo]:
        """Nodes with a Node object, interleaved across zones (kube-scheduler's node tree)."""
        if self._order_dirty:
            lists = [z for z in self._zones.values() if z]
            out: list[NodeInfo] = []
            for i in range(max((len(z) for z in lists), default=0)):
                for z in lists:
                    if i < len(z):
                        out.append(self.nodes[z[i]])
            self._order = out
            self._order_dirty = False
        return self._order

    def upsert_node(self, node: Mapping[str, Any]) -> str:
        """Add or update a node: "added", "updated" (something the scheduler reads
        changed) or "unchanged"."""
        name = str((node.get("metadata") or {}).get("name") or "")
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            if ni is None:
                ni = NodeInfo(name)
                self.nodes[name] = ni
            ni.set_node(node, condition_taints=self.condition_taints)
            self._zones.setdefault(ni.zone, []).append(name)
            self._images_changed({}, ni.images)
            self._order_dirty = True
            self.global_version = next(_versions)
            return "added"
        old_zone, old_images = ni.zone, ni.images
        if not ni.set_node(node, condition_taints=self.condition_taints):
            return "unchanged"
        if ni.zone != old_zone:
            self._zones[old_zone].remove(name)
            self._zones.setdefault(ni.zone, []).append(name)
            self._order_dirty = True
        if ni.images != old_images:
            self._images_changed(old_images, ni.images)
            self.global_version = next(_versions)
        return "updated"

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return
        zone = self._zones.get(ni.zone)
        if zone and name in zone:
            zone.remove(name)
        self._images_changed(ni.images, {})
        self._order_dirty = True
        self.global_version = next(_versions)
        if ni.pods:
            # Pods still point at it: keep their accounting (as kube-scheduler does)
            # until they are deleted too.
            ni.node = None
            ni.relevant = None
            ni.version = next(_versions)
        else:
            del self.nodes[name]

    def _images_changed(self, old: Mapping[str, int], new: Mapping[str, int]) -> None:
        for name in old:
            if name not in new:
                n = self.image_nodes.get(name, 0) - 1
                if n > 0:
                    self.image_nodes[name] = n
                else:
                    self.image_nodes.pop(name, None)
        for name in new:
            if name not in old:
                self.image_nodes[name] = self.image_nodes.get(name, 0) + 1

    # --- pods ------------------------------------------------------------------------------
    def _node(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = NodeInfo(name)
            self.nodes[name] = ni
        return ni

    def _account(self, pi: PodInfo, node: str) -> None:
        self._node(node).add_pod(pi)
        self.pods[pi.uid] = (pi, node)
        self.match.add(pi, node)
        for claim in pi.pvcs:
            k = f"{pi.namespace}/{claim}"
            self.pvc_users[k] = self.pvc_users.get(k, 0) + 1
        if pi.has_pod_affinity:
            self.with_affinity[pi.uid] = pi
        if pi.has_required_anti_affinity:
            self.with_required_anti[pi.uid] = pi

    def _unaccount(self, uid: str) -> PodInfo | None:
        entry = self.pods.pop(uid, None)
        if entry is None:
            return None
        pi, node = entry
        ni = self.nodes.get(node)
        if ni is not None:
            ni.remove_pod(uid)
            if ni.node is None and not ni.pods:
                del self.nodes[node]
        self.match.remove(pi, node)
        for claim in pi.pvcs:
            k = f"{pi.namespace}/{claim}"
            n = self.pvc_users.get(k, 0) - 1
            if n > 0:
                self.pvc_users[k] = n
            else:
                self.pvc_users.pop(k, None)
        self.with_affinity.pop(uid, None)
        self.with_required_anti.pop(uid, None)
        return pi

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    def assume(self, pi: PodInfo, node: str) -> None:
        """Count a pod on the chosen node now, before its binding is written."""
        self._unaccount(pi.uid)
        self._account(pi, node)
        self.assumed.add(pi.uid)

    def forget(self, uid: str) -> None:
        """Undo :meth:`assume` after a failed binding."""
        if uid in self.assumed:
            self.assumed.discard(uid)
            self.binding_finished.discard(uid)
            self._unaccount(uid)

    def finish_binding(self, uid: str) -> None:
        if uid in self.assumed:
            self.binding_finished.add(uid)

    def add_pod(self, pi: PodInfo) -> bool:
        """An assigned, non-terminal pod from the informer (added or updated). Returns
        True when the totals of some node changed."""
        entry = self.pods.get(pi.uid)
        if entry is not None:
            old, node = entry
            self.assumed.discard(pi.uid)
            self.binding_finished.discard(pi.uid)
            if node == pi.node_name and _same_accounting(old, pi):
                if old.labels != pi.labels or old.deleting != pi.deleting:
                    self.match.remove(old, node)
                    self.match.add(pi, node)
                self.pods[pi.uid] = (pi, node)
                self.nodes[node].replace_pod(pi)
                if pi.has_pod_affinity:
                    self.with_affinity[pi.uid] = pi
                if pi.has_required_anti_affinity:
                    self.with_required_anti[pi.uid] = pi
                return False
            self._unaccount(pi.uid)
        self._account(pi, pi.node_name)
        return True

    def remove_pod(self, uid: str) -> PodInfo | None:
        self.assumed.discard(uid)
        self.binding_finished.discard(uid)
        return self._unaccount(uid)

    def pod(self, uid: str) -> PodInfo | None:
        entry = self.pods.get(uid)
        return entry[0] if entry else None

    # --- other objects -----------------------------------------------------------------------
    def set_namespace(self, ns: Mapping[str, Any]) -> None:
        meta = ns.get("metadata") or {}
        self.namespaces[str(meta.get("name") or "")] = meta.get("labels") or {}

    def remove_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)

    def set_pvc(self, pvc: Mapping[str, Any]) -> None:
        meta = pvc.get("metadata") or {}
        self.pvcs[f"{meta.get('namespace')}/{meta.get('name')}"] = pvc
        self.global_version = next(_versions)

    def remove_pvc(self, key: str) -> None:
        self.pvcs.pop(key, None)
        self.global_version = next(_versions)

    def set_pv(self, pv: Mapping[str, Any]) -> None:
        self.pvs[str((pv.get("metadata") or {}).get("name") or "")] = pv
        self.global_version = next(_versions)

    def remove_pv(self, name: str) -> None:
        self.pvs.pop(name, None)
        self.global_version = next(_versions)

    def set_storage_class(self, sc: Mapping[str, Any]) -> None:
        self.storage_classes[str((sc.get("metadata") or {}).get("name") or "")] = sc
        self.global_version = next(_versions)

    def remove_storage_class(self, name: str) -> None:
        self.storage_classes.pop(name, None)
        self.global_version = next(_versions)

    def set_service(self, svc: Mapping[str, Any]) -> None:
        meta = svc.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        selector = (svc.get("spec") or {}).get("selector") or {}
        by_ns = self.services.setdefault(ns, {})
        if selector:
            by_ns[name] = selector
        else:
            by_ns.pop(name, None)

    def remove_service(self, ns: str, name: str) -> None:
        self.services.get(ns, {}).pop(name, None)

    def set_controller(self, kind: str, obj: Mapping[str, Any], selector: Selector) -> None:
        meta = obj.get("metadata") or {}
        self.controllers[(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = (
            selector
        )

    def remove_controller(self, kind: str, ns: str, name: str) -> None:
        self.controllers.pop((kind, ns, name), None)


def _same_accounting(a: PodInfo, b: PodInfo) -> bool:
    return (
        a.cpu == b.cpu
        and a.mem == b.mem
        and a.eph == b.eph
        and a.scalars == b.scalars
        and a.nz_cpu == b.nz_cpu
        and a.nz_mem == b.nz_mem
        and a.host_ports == b.host_ports
        and a.pvcs == b.pvcs
        and a.has_pod_affinity == b.has_pod_affinity
        and a.has_required_anti_affinity == b.has_required_anti_affinity
    )
