"""The DaemonSet controller (apps/v1): one pod per eligible node, following nodes as
they join and leave, with rolling updates — Kubernetes' ``pkg/controller/daemon`` in the
built-in cluster.

Semantics followed (Kubernetes 1.30):

- A node should run the daemon pod when the template's ``nodeSelector`` and required
  node affinity match it and every NoSchedule/NoExecute taint is tolerated
  (``NodeShouldRunDaemonPod``); a pod already there keeps running when only NoSchedule
  taints are untolerated.
- Pods get the standard daemon tolerations (``AddOrUpdateDaemonPodTolerations``):
  not-ready and unreachable (NoExecute), disk-pressure, memory-pressure, pid-pressure
  and unschedulable (NoSchedule), and network-unavailable for hostNetwork pods.
- Pods are not bound by the controller: their required node affinity is replaced by
  ``matchFields metadata.name In [<node>]`` and the scheduler places them.
- Pods carry ``controller-revision-hash`` (the revision's hash) and
  ``pod-template-generation`` labels; revisions are ControllerRevisions
  (:mod:`runtime.controllers.history`).
- Failed/succeeded pods are deleted (and recreated); extra pods on a node are deleted
  (the oldest is kept); pods on nodes that must not run them, or on nodes that no longer
  exist, are deleted.
- ``RollingUpdate``: ``maxUnavailable`` (int or percent of the desired count, rounded up,
  default 1) old pods are deleted at a time (old pods that are unavailable anyway are
  replaced at once); with ``maxSurge`` a new pod is started beside the old one, which is
  deleted when the new one is available. ``OnDelete`` replaces only deleted pods.
- Status: desiredNumberScheduled, currentNumberScheduled, numberReady, numberAvailable,
  numberUnavailable, numberMisscheduled, updatedNumberScheduled, observedGeneration,
  collisionCount.

Not implemented: adoption of orphan pods, the failed-pod creation backoff.

Who runs it: the controller manager (:mod:`runtime.controllers.manager`, name
``daemonset``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubeclient.informer import key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers import history
from runtime.controllers.common import (
    Expectations,
    Obj,
    delete_pod,
    is_controlled_by,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_key_index,
    patch_status,
    pod_from_template,
    pod_phase,
)
from runtime.controllers.manager import ControllerContext
from runtime.scheduler.labels import NodeSelector, Toleration, first_untolerated

log = structlog.get_logger(__name__)

KIND = "DaemonSet"
API_VERSION = "apps/v1"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"


# --- pure helpers ---------------------------------------------------------------------------
def as_owner(ds: Mapping[str, Any]) -> Obj:
    return {**ds, "apiVersion": API_VERSION, "kind": KIND}


def _toleration(key: str, effect: str) -> Obj:
    return {"key": key, "operator": "Exists", "effect": effect}


def daemon_tolerations(spec: Mapping[str, Any]) -> list[Obj]:
    """The pod spec's tolerations with the daemon tolerations added or updated."""
    wanted = [
        _toleration("node.kubernetes.io/not-ready", "NoExecute"),
        _toleration("node.kubernetes.io/unreachable", "NoExecute"),
        _toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        _toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        _toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        _toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    if spec.get("hostNetwork"):
        wanted.append(_toleration("node.kubernetes.io/network-unavailable", "NoSchedule"))
    out = [dict(t) for t in spec.get("tolerations") or []]

    def same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:  # MatchToleration
        return all(
            (a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect")
        )

    for tol in wanted:
        for i, existing in enumerate(out):
            if same(existing, tol):
                out[i] = tol
                break
        else:
            out.append(tol)
    return out


def pin_to_node(spec: Obj, node: str) -> None:
    """Replace the required node affinity by ``matchFields metadata.name In [node]``
    (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }


def target_node(pod: Mapping[str, Any]) -> str | None:
    """The node a daemon pod is for: its nodeName, else its matchFields pin."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in required:
        for req in term.get("matchFields") or []:
            values = req.get("values") or []
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and values:
                return str(values[0])
    return None


def should_run(ds: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) for the DaemonSet on ``node``."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False, False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is not None and not NodeSelector(required).matches(name, labels):
        return False, False
    tolerations = tuple(Toleration(t) for t in daemon_tolerations(spec))
    taints = tuple(
        (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in (node.get("spec") or {}).get("taints") or []
    )
    if first_untolerated(taints, tolerations, frozenset({"NoExecute"})) is not None:
        return False, False
    if first_untolerated(taints, tolerations, frozenset({"NoSchedule"})) is not None:
        return False, True
    return True, True


def scaled(value: Any, total: int, default: int) -> int:
    """An int-or-percent against ``total``, percentages rounded up."""
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def surge_and_unavailable(ds: Mapping[str, Any], desired: int) -> tuple[int, int]:
    rolling = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    surge = scaled(rolling.get("maxSurge"), desired, 0)
    unavailable = scaled(rolling.get("maxUnavailable"), desired, 1)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_pod(ds: Mapping[str, Any], node: str, hash_: str) -> Obj:
    template = ((ds.get("spec") or {}).get("template")) or {}
    generation = (ds.get("metadata") or {}).get("generation")
    labels = {history.POD_REVISION_LABEL: hash_}
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    pod = pod_from_template(template, as_owner(ds), extra_labels=labels)
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec)
    pin_to_node(spec, node)
    return pod


pod_hash = history.pod_revision


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)  # node names
    delete: list[Obj] = field(default_factory=list)
    desired: int = 0
    current: int = 0
    misscheduled: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0


def _oldest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(
        pods,
        key=lambda p: (
            str(p["metadata"].get("creationTimestamp") or ""),
            str(p["metadata"].get("name")),
        ),
    )


def _excess(
    ds: Mapping[str, Any], running: list[Obj], hash_: str, min_ready: int, now: float | None
) -> list[Obj]:
    """Extra pods on one node (podsShouldBeOnNode): without surge all but the oldest;
    with surge an old and a new pod may coexist until the new one is available (or the
    old one is not ready)."""
    if len(running) <= 1:
        return []
    ordered = _oldest_first(running)
    surge, _ = surge_and_unavailable(ds, 1)
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if surge == 0 or strategy != "RollingUpdate":
        return ordered[1:]
    extra: list[Obj] = []
    oldest_new: Obj | None = None
    oldest_old: Obj | None = None
    for pod in ordered:
        if pod_hash(pod) == hash_ and oldest_new is None:
            oldest_new = pod
        elif pod_hash(pod) != hash_ and oldest_old is None:
            oldest_old = pod
        else:
            extra.append(pod)
    if (
        oldest_new is not None
        and oldest_old is not None
        and (not is_pod_ready(oldest_old) or is_pod_available(oldest_new, min_ready, now))
    ):
        extra.append(oldest_old)
    return extra


def plan(
    ds: Mapping[str, Any],
    nodes: list[Obj],
    pods: list[Obj],
    hash_: str,
    now: float | None = None,
) -> Plan:
    """What to create and delete, and the status counts, for a DaemonSet whose pods are
    ``pods`` (owned by it) on ``nodes``, ``hash_`` being the update revision's hash."""
    out = Plan()
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        target = target_node(pod)
        if target is not None:
            by_node.setdefault(target, []).append(pod)
    names = {str(n["metadata"]["name"]) for n in nodes}
    for node_name, node_pods in by_node.items():
        if node_name not in names:  # the node is gone
            out.delete += [p for p in node_pods if not is_terminating(p)]

    run_on: dict[str, list[Obj]] = {}
    for node in nodes:
        name = str(node["metadata"]["name"])
        node_pods = by_node.get(name, [])
        run, keep = should_run(ds, node)
        if run:
            out.desired += 1
            run_on[name] = node_pods
        if not keep:
            out.delete += [p for p in node_pods if not is_terminating(p)]
            live = [p for p in node_pods if not is_terminating(p)]
            if live:
                out.misscheduled += 1
            continue
        if not node_pods:
            if run:
                out.create.append(name)
            continue
        running: list[Obj] = []
        for pod in node_pods:
            if is_terminating(pod):
                continue
            if pod_phase(pod) in ("Failed", "Succeeded"):
                out.delete.append(pod)
                continue
            running.append(pod)
        if not run:
            continue
        out.delete += _excess(ds, running, hash_, min_ready, now)
    for node_pods in run_on.values():
        live = [p for p in node_pods if not is_terminating(p)]
        if live:
            out.current += 1
            first = _oldest_first(live)[0]
            if is_pod_ready(first):
                out.ready += 1
                if is_pod_available(first, min_ready, now):
                    out.available += 1
            if any(pod_hash(p) == hash_ for p in live):
                out.updated += 1

    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy == "RollingUpdate":
        _rolling_update(ds, run_on, hash_, out, min_ready, now)
    unique: dict[str, Obj] = {}
    for pod in out.delete:
        unique.setdefault(str(pod["metadata"].get("uid") or pod["metadata"].get("name")), pod)
    out.delete = list(unique.values())
    return out


def _rolling_update(
    ds: Mapping[str, Any],
    run_on: dict[str, list[Obj]],
    hash_: str,
    out: Plan,
    min_ready: int,
    now: float | None,
) -> None:
    """Kubernetes' rollingUpdate: which old pods to delete (and, with surge, where to
    start new pods beside old ones)."""
    max_surge, max_unavailable = surge_and_unavailable(ds, out.desired)
    deleting = {id(p) for p in out.delete}
    unavailable = 0
    candidates: list[Obj] = []
    replace_now: list[Obj] = []
    surge_nodes: list[str] = []
    surging = 0
    for node, pods in sorted(run_on.items()):
        live = [p for p in pods if not is_terminating(p) and id(p) not in deleting]
        live = [p for p in live if pod_phase(p) not in ("Failed", "Succeeded")]
        new = [p for p in live if pod_hash(p) == hash_]
        old = [p for p in live if pod_hash(p) != hash_]
        if len(new) > 1 or len(old) > 1:
            unavailable += 1
            continue
        if max_surge == 0:
            if (not new and not old) or (new and old):
                unavailable += 1
            elif new:
                if not is_pod_available(new[0], min_ready, now):
                    unavailable += 1
            elif not is_pod_available(old[0], min_ready, now):
                replace_now.append(old[0])
            elif unavailable < max_unavailable:
                candidates.append(old[0])
            continue
        # surge: start the new pod beside the old one; remove the old one once the new
        # one is available.
        if not old:
            if not new or not is_pod_available(new[0], min_ready, now):
                unavailable += 1
            continue
        if new:
            if is_pod_available(new[0], min_ready, now):
                replace_now.append(old[0])
            else:
                surging += 1
            continue
        if not is_pod_available(old[0], min_ready, now):
            surge_nodes.append(node)
        elif surging < max_surge:
            surging += 1
            surge_nodes.append(node)
    if max_surge == 0:
        room = max(max_unavailable - unavailable, 0)
        out.delete += replace_now + candidates[:room]
    else:
        out.delete += replace_now
        out.create += surge_nodes


# --- the controller -------------------------------------------------------------------------
_owner_key = owner_key_index(KIND)


class DaemonSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.recorder = ctx.recorder("daemonset-controller")
        self.workers = ctx.setting("daemonset.workers", 2)
        self.expectations = Expectations()
        self.sets = ctx.informers.informer("apps/v1", "daemonsets")
        self.pods = ctx.informers.informer("v1", "pods")
        self.nodes = ctx.informers.informer("v1", "nodes")
        self.revisions = ctx.informers.informer("apps/v1", "controllerrevisions")
        self.pods.add_index("daemonset", _owner_key)
        self.revisions.add_index("daemonset", _owner_key)
        self.sets.on(
            add=lambda o: self.queue.add(key_of(o)),
            update=lambda _o, n: self.queue.add(key_of(n)),
            delete=self._set_deleted,
        )
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)
        self.nodes.on(
            add=lambda _n: self._all(),
            update=self._node_updated,
            delete=lambda _n: self._all(),
        )

    def _all(self) -> None:
        for key in self.sets.keys():  # noqa: SIM118 (an Informer, not a dict)
            self.queue.add(key)

    def _set_deleted(self, obj: Obj) -> None:
        self.expectations.forget(key_of(obj))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def shape(n: Obj) -> Any:
            return (
                (n.get("metadata") or {}).get("labels"),
                (n.get("spec") or {}).get("taints"),
            )

        if shape(old) != shape(new):
            self._all()

    def _pod_added(self, pod: Obj) -> None:
        for key in _owner_key(pod):
            self.expectations.created(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in {*_owner_key(old), *_owner_key(new)}:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        for key in _owner_key(pod):
            self.expectations.deleted(key)
            self.queue.add(key)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name="daemonset")

    async def sync(self, key: str) -> None:
        cached = self.sets.get(key)
        if cached is None:
            self.expectations.forget(key)
            return
        ds = as_owner(cached)
        ns, _name = split_key(key)
        pods = [p for p in self.pods.by_index("daemonset", key) if is_controlled_by(p, ds)]
        revisions = [
            r for r in self.revisions.by_index("daemonset", key) if is_controlled_by(r, ds)
        ]
        status = ds.get("status") or {}
        collision = int(status.get("collisionCount") or 0)
        update_rev, collision = await history.ensure_revision(
            self.client, ds, revisions, collision, hash_label=history.POD_REVISION_LABEL
        )
        hash_ = str(
            (update_rev.get("metadata") or {}).get("labels", {}).get(history.POD_REVISION_LABEL)
            or ""
        )
        nodes = self.nodes.items()
        result = plan(ds, nodes, pods, hash_)
        if not is_terminating(ds) and self.expectations.satisfied(key):
            await self._apply(ds, key, result, hash_)
        await self._write_status(ds, result, collision)
        live = {pod_hash(p) for p in pods} | {hash_}
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        old = [
            r
            for r in revisions
            if str(((r.get("metadata") or {}).get("labels") or {}).get(history.POD_REVISION_LABEL))
            not in live
        ]
        await history.delete_revisions(self.client, history.prunable(old, set(), limit), ns)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and result.available < result.ready:
            self.queue.add_after(key, float(min_ready))

    async def _apply(self, ds: Obj, key: str, result: Plan, hash_: str) -> None:
        ns = ds["metadata"].get("namespace")
        name = ds["metadata"]["name"]
        self.expectations.expect(key, creations=len(result.create), deletions=len(result.delete))
        for node in result.create:
            try:
                await self.client.create("v1", "pods", new_pod(ds, node, hash_), namespace=ns)
            except KubeError as exc:
                self.expectations.created(key)
                self.recorder.event(
                    ds, "Warning", "FailedCreate", "Create",
                    f"Error creating: {exc.message}",
                )  # fmt: skip
                raise
            self.recorder.event(
                ds, "Normal", "SuccessfulCreate", "Create",
                f"Created pod for node {node}",
            )  # fmt: skip
        for pod in result.delete:
            pod_name = pod["metadata"]["name"]
            try:
                deleted = await delete_pod(self.client, pod, ns)
            except KubeError:
                self.expectations.deleted(key)
                raise
            if not deleted:
                self.expectations.deleted(key)
                continue
            log.info("daemonset.pod_deleted", set=name, pod=pod_name)
            self.recorder.event(
                ds, "Normal", "SuccessfulDelete", "Delete", f"Deleted pod: {pod_name}"
            )

    async def _write_status(self, ds: Obj, result: Plan, collision: int) -> None:
        old = ds.get("status") or {}
        new: Obj = {
            "observedGeneration": (ds.get("metadata") or {}).get("generation"),
            "desiredNumberScheduled": result.desired,
            "currentNumberScheduled": result.current,
            "numberMisscheduled": result.misscheduled,
            "numberReady": result.ready,
            "numberAvailable": result.available,
            "numberUnavailable": max(result.desired - result.available, 0),
            "updatedNumberScheduled": result.updated,
            "collisionCount": collision,
        }
        if all(old.get(k, 0) == v for k, v in new.items()):
            return
        await patch_status(self.client, API_VERSION, "daemonsets", ds, new)
