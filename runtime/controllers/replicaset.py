"""The ReplicaSet and ReplicationController controllers: keep ``spec.replicas`` active
pods matching the owner's selector — kube-controller-manager's
``pkg/controller/replicaset`` (the ReplicationController controller there is the same
code behind an adapter, as here).

Who runs it: the controller manager (``--controllers replicaset,replicationcontroller``).

Kubernetes semantics followed:

- pods are claimed as ``ClaimPods`` does: an orphan whose labels match is adopted (a
  controller ownerReference is added, only while the owner is not being deleted, after
  a fresh read of the owner), an owned pod whose labels stop matching is released (its
  ownerReference removed);
- missing pods are created in slow-start batches (1, 2, 4, …), at most ``burst`` per
  sync; a failed batch stops the rest and is reported as a ``ReplicaFailure`` condition
  (``FailedCreate``) and a ``FailedCreate`` event;
- surplus pods are deleted least valuable first (:func:`deletion_order`, Kubernetes'
  ``ActivePodsWithRanks`` with LogarithmicScaleDown and pod-deletion-cost);
- expectations keep a sync from acting again before the informer saw its own writes;
- status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
  observedGeneration, conditions) is written through the status subresource, only when
  it changed; with ``minReadySeconds`` the owner is re-checked after that long.

Deletion of the pods of a deleted ReplicaSet is the garbage collector's job.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

import structlog

from kubeclient.informer import key_of
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import (
    Expectations,
    Obj,
    add_claim_indexes,
    claim_candidates,
    controller_ref,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    labels_of,
    owner_reference,
    parse_time,
    pod_condition,
    pod_from_template,
    pod_phase,
    selector_matches,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

#: Kubernetes' SlowStartInitialBatchSize.
SLOW_START_INITIAL_BATCH = 1
#: Kubernetes' BurstReplicas: at most this many creations or deletions per sync.
BURST_REPLICAS = 500
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# --- ranking of pods for scale-down -----------------------------------------------------
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Mapping[str, Any]) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST)
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        return 0
    return value if -(2**31) <= value < 2**31 else 0


def _ready_time(pod: Mapping[str, Any]) -> float | None:
    cond = pod_condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def _max_restarts(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(max restarts of regular containers, of restartable init containers)."""
    status = pod.get("status") or {}
    regular = max(
        (int(s.get("restartCount") or 0) for s in status.get("containerStatuses") or []),
        default=0,
    )
    sidecars = {
        c.get("name")
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    sidecar = max(
        (
            int(s.get("restartCount") or 0)
            for s in status.get("initContainerStatuses") or []
            if s.get("name") in sidecars
        ),
        default=0,
    )
    return regular, sidecar


def _log_rank_diff(t1: float, t2: float, now: float) -> int:
    """Kubernetes' logarithmicRankDiff: compare ages by their power-of-two bucket (ns)."""
    d1 = (now - t1) * 1e9
    d2 = (now - t2) * 1e9
    r1 = int(math.log2(d1)) if d1 > 0 else -1
    r2 = int(math.log2(d2)) if d2 > 0 else -1
    return r1 - r2


def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


@dataclass(frozen=True)
class _Rank:
    """What the deletion order compares of one pod, computed once per sort."""

    pod: Obj
    uid: str
    assigned: bool
    phase: int
    ready: bool
    cost: int
    related: int
    ready_time: float | None
    restarts: tuple[int, int]
    created: float | None

    @staticmethod
    def of(pod: Obj, related: int) -> _Rank:
        ready = is_pod_ready(pod)
        return _Rank(
            pod=pod,
            uid=_uid(pod),
            assigned=bool((pod.get("spec") or {}).get("nodeName")),
            phase=_PHASE_RANK.get(pod_phase(pod), 0),
            ready=ready,
            cost=_deletion_cost(pod),
            related=related,
            ready_time=_ready_time(pod) if ready else None,
            restarts=_max_restarts(pod),
            created=parse_time((pod.get("metadata") or {}).get("creationTimestamp")),
        )


def _compare_times(a: _Rank, b: _Rank, ta: float | None, tb: float | None, now: float) -> int:
    """-1 when ``a`` (time ``ta``) goes first: empty < newer < older, by log buckets."""
    if ta is None or tb is None:
        # afterOrZero: a zero time goes first.
        if (ta is None) == (tb is None):
            return 0
        return -1 if ta is None else 1
    diff = _log_rank_diff(ta, tb, now)
    if diff == 0:
        return -1 if a.uid < b.uid else (1 if a.uid > b.uid else 0)
    return -1 if diff < 0 else 1


def _compare(a: _Rank, b: _Rank, now: float) -> int:
    """Kubernetes' ActivePodsWithRanks.Less as a comparison: negative when ``a`` is the
    less valuable pod (deleted first)."""
    # 1. Unassigned < assigned.
    if a.assigned != b.assigned:
        return -1 if not a.assigned else 1
    # 2. Pending < Unknown < Running.
    if a.phase != b.phase:
        return -1 if a.phase < b.phase else 1
    # 3. Not ready < ready.
    if a.ready != b.ready:
        return -1 if not a.ready else 1
    # 4. Lower pod-deletion-cost < higher.
    if a.cost != b.cost:
        return -1 if a.cost < b.cost else 1
    # 5. Doubled up (more related pods on the same node) < not.
    if a.related != b.related:
        return -1 if a.related > b.related else 1
    # 6. Ready for less time < more time.
    if a.ready and b.ready and a.ready_time != b.ready_time:
        found = _compare_times(a, b, a.ready_time, b.ready_time, now)
        if found:
            return found
    # 7. More restarts < fewer restarts (regular containers, then sidecars).
    if a.restarts[0] != b.restarts[0]:
        return -1 if a.restarts[0] > b.restarts[0] else 1
    if a.restarts[1] != b.restarts[1]:
        return -1 if a.restarts[1] > b.restarts[1] else 1
    # 8. Newer < older (empty creation time first).
    if a.created != b.created:
        return _compare_times(a, b, a.created, b.created, now)
    return 0


def related_pod_ranks(pods: Sequence[Obj], related: Sequence[Obj]) -> list[int]:
    """For each pod, how many active related pods share its node (Kubernetes'
    getPodsRankedByRelatedPodsOnSameNode)."""
    on_node: dict[str, int] = {}
    for pod in related:
        if is_pod_active(pod):
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            on_node[node] = on_node.get(node, 0) + 1
    return [on_node.get(str((p.get("spec") or {}).get("nodeName") or ""), 0) for p in pods]


def deletion_order(
    pods: Sequence[Obj], ranks: Sequence[int] | None = None, now: float | None = None
) -> list[Obj]:
    """``pods`` sorted least valuable first: the order in which a scale-down deletes."""
    at = time.time() if now is None else now
    rank_list = list(ranks) if ranks is not None else [0] * len(pods)
    records = [_Rank.of(p, r) for p, r in zip(pods, rank_list, strict=True)]

    def cmp(x: _Rank, y: _Rank) -> int:
        return _compare(x, y, at)

    records.sort(key=cmp_to_key(cmp))
    return [r.pod for r in records]


def pods_to_delete(
    pods: Sequence[Obj], related: Sequence[Obj], diff: int, now: float | None = None
) -> list[Obj]:
    """The ``diff`` pods a scale-down deletes (Kubernetes' getPodsToDelete)."""
    if diff >= len(pods):
        return list(pods)
    at = time.time() if now is None else now
    ranks = related_pod_ranks(pods, related)
    records = [_Rank.of(p, r) for p, r in zip(pods, ranks, strict=True)]

    # The least valuable ``diff`` only: O(n log diff), not a full sort per scale-down step.
    def cmp(x: _Rank, y: _Rank) -> int:
        return _compare(x, y, at)

    chosen = heapq.nsmallest(diff, records, key=cmp_to_key(cmp))
    return [r.pod for r in chosen]


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """The batch sizes a creation of ``count`` pods goes through: 1, 2, 4, … ."""
    batches: list[int] = []
    size = min(count, initial)
    remaining = count
    while remaining > 0 and size > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


# --- status ---------------------------------------------------------------------------
def calculate_status(
    owner: Obj, pods: Sequence[Obj], manage_error: str | None, now: float | None = None
) -> Obj:
    """The owner's new status from its active pods (Kubernetes' calculateStatus)."""
    spec = owner.get("spec") or {}
    status = copy.deepcopy(owner.get("status") or {})
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = ready = available = 0
    for pod in pods:
        labels = labels_of(pod)
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - int(spec.get("replicas", 1))
        reason = "FailedCreate" if diff < 0 else ("FailedDelete" if diff > 0 else "")
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "lastTransitionTime": _rfc3339(now),
                "reason": reason,
                "message": manage_error,
            }
        )
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    status["replicas"] = len(pods)
    status["fullyLabeledReplicas"] = fully
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    return status


def _rfc3339(now: float | None) -> str:
    at = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _status_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    return all(int(a.get(k) or 0) == int(b.get(k) or 0) for k in keys) and (
        a.get("conditions") or []
    ) == (b.get("conditions") or [])


# --- the controller ---------------------------------------------------------------------
class ManageReplicasError(Exception):
    """Creating or deleting pods failed; always retried with backoff (quota may free up,
    a forbidden create may become allowed), as kube-controller-manager requeues."""

    retryable = True


def _namespace_terminating(exc: BaseException) -> bool:
    """A create refused because the namespace is being deleted (ignored, as Kubernetes
    does: the namespace controller is removing everything anyway)."""
    if not isinstance(exc, KubeError):
        return False
    causes = (exc.body.get("details") or {}).get("causes") or []
    return any(c.get("type") == "NamespaceTerminating" for c in causes) or (
        exc.status == 403 and "because it is being terminated" in exc.message
    )


@dataclass(frozen=True)
class OwnerKind:
    api_version: str
    plural: str
    kind: str
    component: str
    name: str

    def selector(self, owner: Mapping[str, Any]) -> Mapping[str, Any] | None:
        raw = (owner.get("spec") or {}).get("selector")
        if self.kind == "ReplicationController":
            return {"matchLabels": dict(raw or {})} if raw is not None else None
        return raw if isinstance(raw, Mapping) else None


REPLICA_SET = OwnerKind(
    "apps/v1", "replicasets", "ReplicaSet", "replicaset-controller", "replicaset"
)
REPLICATION_CONTROLLER = OwnerKind(
    "v1",
    "replicationcontrollers",
    "ReplicationController",
    "replication-controller",
    "replicationcontroller",
)


def _ns_index(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _controller_uid_index(obj: Obj) -> list[str]:
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


class ReplicaSetController:
    """Keeps each ReplicaSet's pods at its replica count."""

    KIND = REPLICA_SET

    def __init__(self, ctx: ControllerContext) -> None:
        kind = self.KIND
        self.ctx = ctx
        self.client = ctx.client
        self.kind = kind
        self.recorder = ctx.recorder(kind.component)
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self._deleting: dict[str, set[str]] = {}
        self.workers = ctx.setting(f"{kind.name}.workers", 5)
        self.burst = ctx.setting(f"{kind.name}.burst-replicas", BURST_REPLICAS)
        self.owners = ctx.informers.informer(kind.api_version, kind.plural)
        self.pods = ctx.informers.informer("v1", "pods")
        self._ns = f"{kind.name}:namespace"
        self._owner_uid = f"{kind.name}:controller-uid"
        self.owners.add_index(self._ns, _ns_index)
        self.owners.add_index(self._owner_uid, _controller_uid_index)
        self.pods.add_index(self._ns, _ns_index)
        add_claim_indexes(self.pods)
        self.owners.on(add=self._owner_added, update=self._owner_updated, delete=self._owner_gone)
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name=self.kind.name)

    # --- handlers ---------------------------------------------------------------------
    def _owner_added(self, owner: Obj) -> None:
        self.queue.add(key_of(owner))

    def _owner_updated(self, old: Obj, cur: Obj) -> None:
        self.queue.add(key_of(cur))

    def _owner_gone(self, owner: Obj) -> None:
        key = key_of(owner)
        self.expectations.forget(key)
        self._deleting.pop(key, None)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Mapping[str, Any] | None) -> Obj | None:
        if not ref or ref.get("kind") != self.kind.kind:
            return None
        owner = self.owners.get(f"{namespace}/{ref.get('name')}")
        if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return owner

    def _matching_owners(self, pod: Obj) -> list[Obj]:
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        labels = labels_of(pod)
        return [
            o
            for o in self.owners.by_index(self._ns, ns)
            if selector_matches(self.kind.selector(o), labels)
        ]

    def _pod_added(self, pod: Obj) -> None:
        if is_terminating(pod):
            self._pod_deleted(pod)
            return
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        ref = controller_ref(pod)
        if ref is not None:
            owner = self._resolve(ns, ref)
            if owner is not None:
                key = key_of(owner)
                self.expectations.created(key)
                self.queue.add(key)
            return
        for owner in self._matching_owners(pod):
            self.queue.add(key_of(owner))

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (cur.get("metadata") or {}).get(
            "resourceVersion"
        ):
            return
        labels_changed = labels_of(old) != labels_of(cur)
        if is_terminating(cur):
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        ns = str((cur.get("metadata") or {}).get("namespace") or "")
        cur_ref, old_ref = controller_ref(cur), controller_ref(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            owner = self._resolve(ns, old_ref)
            if owner is not None:
                self.queue.add(key_of(owner))
        if cur_ref is not None:
            owner = self._resolve(ns, cur_ref)
            if owner is not None:
                key = key_of(owner)
                self.queue.add(key)
                min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    self.queue.add_after(key, min_ready + 1.0)
            return
        if labels_changed or ref_changed:
            for owner in self._matching_owners(cur):
                self.queue.add(key_of(owner))

    def _pod_deleted(self, pod: Obj) -> None:
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        owner = self._resolve(ns, controller_ref(pod))
        if owner is None:
            return
        key = key_of(owner)
        pending = self._deleting.get(key)
        uid = _uid(pod)
        if pending is not None and uid in pending:
            pending.discard(uid)
            self.expectations.deleted(key)
        self.queue.add(key)

    # --- sync ---------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            self._deleting.pop(key, None)
            return
        satisfied = self.expectations.satisfied(key)
        selector = self.kind.selector(owner)
        candidates = [p for p in claim_candidates(self.pods, owner) if is_pod_active(p)]
        pods = await self._claim(owner, selector, candidates)
        manage_error: str | None = None
        deleted: set[str] = set()
        error: Exception | None = None
        if satisfied and not is_terminating(owner):
            try:
                deleted = await self._manage(key, owner, pods)
            except KubeError as exc:
                manage_error = exc.message or str(exc)
                error = exc
        alive = [p for p in pods if _uid(p) not in deleted]
        status = calculate_status(owner, alive, manage_error)
        updated = await self._update_status(owner, status)
        spec_replicas = int((owner.get("spec") or {}).get("replicas", 1))
        min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
        if (
            error is None
            and min_ready > 0
            and int(updated.get("readyReplicas") or 0) == spec_replicas
            and int(updated.get("availableReplicas") or 0) != spec_replicas
        ):
            self.queue.add_after(key, float(min_ready))
        if error is not None:
            raise ManageReplicasError(manage_error or str(error)) from error

    async def _claim(
        self, owner: Obj, selector: Mapping[str, Any] | None, pods: list[Obj]
    ) -> list[Obj]:
        """Kubernetes' ClaimPods: the pods this owner controls after adopting matching
        orphans and releasing owned pods that no longer match."""
        uid = (owner.get("metadata") or {}).get("uid")
        claimed: list[Obj] = []
        fresh_checked: bool | None = None
        for pod in pods:
            ref = controller_ref(pod)
            matches = selector_matches(selector, labels_of(pod))
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(pod)
                elif not is_terminating(owner):
                    await self._release(owner, pod)
                continue
            if not matches or is_terminating(owner) or is_terminating(pod):
                continue
            if fresh_checked is None:
                fresh_checked = await self._can_adopt(owner)
            if not fresh_checked:
                continue
            adopted = await self._adopt(owner, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _can_adopt(self, owner: Obj) -> bool:
        """A fresh read: the owner is still the same object and not being deleted."""
        meta = owner.get("metadata") or {}
        try:
            fresh = await self.client.get(
                self.kind.api_version,
                self.kind.plural,
                str(meta.get("name")),
                meta.get("namespace"),
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        fmeta = fresh.get("metadata") or {}
        return fmeta.get("uid") == meta.get("uid") and not fmeta.get("deletionTimestamp")

    async def _adopt(self, owner: Obj, pod: Obj) -> Obj | None:
        meta = pod.get("metadata") or {}
        refs = [dict(r) for r in meta.get("ownerReferences") or []]
        refs.append(
            owner_reference({**owner, "apiVersion": self.kind.api_version, "kind": self.kind.kind})
        )
        patch = {
            "metadata": {"ownerReferences": refs, "resourceVersion": meta.get("resourceVersion")}
        }
        try:
            return await self.client.patch(
                "v1", "pods", str(meta.get("name")), patch, meta.get("namespace")
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def _release(self, owner: Obj, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = (owner.get("metadata") or {}).get("uid")
        refs = [dict(r) for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        try:
            await self.client.patch(
                "v1", "pods", str(meta.get("name")), patch, meta.get("namespace")
            )
        except KubeError as exc:
            if not exc.not_found:
                raise

    async def _manage(self, key: str, owner: Obj, pods: list[Obj]) -> set[str]:
        """Create or delete pods towards ``spec.replicas``; the UIDs of deleted pods."""
        wanted = int((owner.get("spec") or {}).get("replicas", 1))
        diff = len(pods) - wanted
        if diff < 0:
            await self._create(key, owner, min(-diff, self.burst))
            return set()
        if diff > 0:
            return await self._delete(key, owner, pods, min(diff, self.burst))
        return set()

    async def _create(self, key: str, owner: Obj, count: int) -> None:
        self.expectations.expect(key, creations=count)
        template = (owner.get("spec") or {}).get("template") or {}
        typed_owner = {**owner, "apiVersion": self.kind.api_version, "kind": self.kind.kind}
        name = str((owner.get("metadata") or {}).get("name"))
        namespace = (owner.get("metadata") or {}).get("namespace")
        remaining = count
        for batch in slow_start_batches(count):
            results = await asyncio.gather(
                *(
                    self.client.create(
                        "v1",
                        "pods",
                        pod_from_template(template, typed_owner, generate_name=f"{name}-"),
                        namespace,
                    )
                    for _ in range(batch)
                ),
                return_exceptions=True,
            )
            remaining -= batch
            failure: BaseException | None = None
            for result in results:
                if isinstance(result, BaseException):
                    self.expectations.created(key)
                    failure = failure or result
                else:
                    pod_name = (result.get("metadata") or {}).get("name")
                    self.recorder.event(
                        owner, "Normal", "SuccessfulCreate", "Create", f"Created pod: {pod_name}"
                    )
            if failure is not None and _namespace_terminating(failure):
                for _ in range(remaining):
                    self.expectations.created(key)
                return
            if failure is not None:
                for _ in range(remaining):
                    self.expectations.created(key)
                message = failure.message if isinstance(failure, KubeError) else str(failure)
                self.recorder.event(
                    owner, "Warning", "FailedCreate", "Create", f"Error creating: {message}"
                )
                if isinstance(failure, KubeError):
                    raise failure
                raise KubeError(0, "InternalError", message)

    def _related_pods(self, owner: Obj) -> list[Obj]:
        """Pods of every owner sharing this owner's controller (Kubernetes'
        getIndirectlyRelatedPods), for co-location ranks."""
        ns = str((owner.get("metadata") or {}).get("namespace") or "")
        ref = controller_ref(owner)
        siblings = (
            self.owners.by_index(self._owner_uid, str(ref.get("uid")))
            if ref is not None
            else [owner]
        )
        seen: dict[str, Obj] = {}
        candidates = self.pods.by_index(self._ns, ns)
        for sibling in siblings:
            selector = self.kind.selector(sibling)
            for pod in candidates:
                if selector_matches(selector, labels_of(pod)):
                    seen[_uid(pod)] = pod
        return list(seen.values())

    async def _delete(self, key: str, owner: Obj, pods: list[Obj], count: int) -> set[str]:
        victims = pods_to_delete(pods, self._related_pods(owner), count)
        uids = {_uid(p) for p in victims}
        self._deleting.setdefault(key, set()).update(uids)
        self.expectations.expect(key, deletions=len(victims))

        async def one(pod: Obj) -> str | None:
            meta = pod.get("metadata") or {}
            try:
                await self.client.delete("v1", "pods", str(meta.get("name")), meta.get("namespace"))
            except KubeError as exc:
                pending = self._deleting.get(key)
                if pending is not None and _uid(pod) in pending:
                    pending.discard(_uid(pod))
                    self.expectations.deleted(key)
                if exc.not_found:
                    return None
                self.recorder.event(
                    owner, "Warning", "FailedDelete", "Delete", f"Error deleting: {exc.message}"
                )
                raise
            self.recorder.event(
                owner, "Normal", "SuccessfulDelete", "Delete", f"Deleted pod: {meta.get('name')}"
            )
            return _uid(pod)

        results = await asyncio.gather(*(one(p) for p in victims), return_exceptions=True)
        done = {r for r in results if isinstance(r, str)}
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return done

    async def _update_status(self, owner: Obj, status: Obj) -> Obj:
        """Write ``status`` (with observedGeneration) when it differs; the status now."""
        meta = owner.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        current = owner.get("status") or {}
        if _status_equal(current, status) and int(current.get("observedGeneration") or 0) == (
            generation
        ):
            return current
        body = copy.deepcopy(owner)
        body["apiVersion"] = self.kind.api_version
        body["kind"] = self.kind.kind
        body["status"] = {**status, "observedGeneration": generation}
        try:
            written = await self.client.replace(
                self.kind.api_version,
                self.kind.plural,
                str(meta.get("name")),
                body,
                meta.get("namespace"),
                subresource="status",
            )
        except KubeError as exc:
            if exc.not_found:
                return current
            raise
        return dict(written.get("status") or {})


class ReplicationControllerController(ReplicaSetController):
    """The same controller for core/v1 ReplicationControllers (equality selector)."""

    KIND = REPLICATION_CONTROLLER
