"""The Deployment controller: rolls a Deployment's pod template out through
ReplicaSets — kube-controller-manager's ``pkg/controller/deployment``.

Who runs it: the controller manager (``--controllers deployment``); the ReplicaSet
controller (:mod:`runtime.controllers.replicaset`) then makes each ReplicaSet's pods.

Kubernetes semantics followed:

- ReplicaSets are claimed as ``ClaimReplicaSets`` does (orphans matching the selector
  are adopted, owned ones that stop matching are released);
- the new ReplicaSet is the oldest one whose template equals the Deployment's ignoring
  the ``pod-template-hash`` label; a missing one is created as ``<name>-<hash>``, the hash
  being FNV-32a of the template (and ``status.collisionCount``) rendered with
  Kubernetes' SafeEncodeString alphabet, and put on the ReplicaSet's selector, labels
  and template labels; a name collision with a different template bumps
  ``status.collisionCount``;
- annotations ``deployment.kubernetes.io/revision`` (max of the old ones + 1 on the new
  ReplicaSet, mirrored on the Deployment, previous revisions in ``revision-history``),
  ``desired-replicas`` and ``max-replicas``; the Deployment's own annotations are copied
  to the new ReplicaSet;
- RollingUpdate (maxSurge rounds up, maxUnavailable rounds down, both zero means one
  unavailable), Recreate (old pods gone before the new ReplicaSet scales up), proportional
  scaling of every active ReplicaSet when replicas change mid-rollout, ``spec.paused``
  (only scaling; Progressing reason DeploymentPaused / DeploymentResumed);
- conditions Progressing (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
  NewReplicaSetAvailable, ProgressDeadlineExceeded after ``progressDeadlineSeconds``)
  and Available (MinimumReplicasAvailable / MinimumReplicasUnavailable), ReplicaFailure
  copied from the new ReplicaSet; status written only when changed, and a stuck rollout
  re-checked when its deadline passes;
- old zero-replica ReplicaSets beyond ``revisionHistoryLimit`` are deleted once the
  rollout is complete (or while paused).

``kubectl rollout undo`` (1.20+) patches the Deployment's template client-side, so
rollback is just another rollout here; the deprecated ``rollbackTo`` field of
extensions/v1beta1 is not served. Deletion cascading is the garbage collector's job.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from kubeclient.informer import key_of
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import (
    Obj,
    add_claim_indexes,
    claim_candidates,
    controller_ref,
    is_terminating,
    labels_of,
    owner_reference,
    parse_time,
    pod_phase,
    selector_matches,
)
from runtime.controllers.history import fnv32a as fnv32a
from runtime.controllers.history import safe_encode as safe_encode
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SKIPPED_ANNOTATIONS = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REVISION_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Progressing / Available reasons (pkg/controller/deployment/util).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# --- hashing ------------------------------------------------------------------------------
def compute_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    """The ``pod-template-hash`` of a template (Kubernetes' ComputeHash: FNV-32a of the
    template, then of the little-endian collision count, as SafeEncodeString of the
    decimal sum). The template is serialized as canonical JSON here, where Kubernetes
    hashes a Go-struct dump, so values differ from a real cluster's but look alike."""
    data = json.dumps(_prune(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))


def _prune(value: Any) -> Any:
    """Drop empty maps, empty lists and nulls, recursively: Go's API types make an
    absent struct, an empty one and a nil or empty map/slice the same value (kubectl
    sends ``resources: {}`` where the server stored nothing)."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            pruned = _prune(v)
            if pruned is None or pruned == {} or pruned == []:
                continue
            out[k] = pruned
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _without_hash(template: Mapping[str, Any] | None) -> Obj:
    out: Obj = _prune(dict(template or {}))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
        meta = {k: v for k, v in meta.items() if k not in ("labels", "creationTimestamp")}
        if labels:
            meta["labels"] = labels
        if meta:
            out["metadata"] = meta
        else:
            out.pop("metadata", None)
    return out


def equal_ignore_hash(t1: Mapping[str, Any] | None, t2: Mapping[str, Any] | None) -> bool:
    """Kubernetes' EqualIgnoreHash: templates equal apart from ``pod-template-hash``."""
    return _without_hash(t1) == _without_hash(t2)


# --- int-or-percent and fenceposts ------------------------------------------------------
def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: {text!r}") from None
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def _replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status(obj: Mapping[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _rolling(d: Mapping[str, Any]) -> Obj | None:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    return dict(strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"})


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; never both zero."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Mapping[str, Any]) -> int:
    rolling = _rolling(d)
    if rolling is None:
        return 0
    surge, _ = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), _replicas(d)
    )
    return surge


def max_unavailable(d: Mapping[str, Any]) -> int:
    rolling = _rolling(d)
    replicas = _replicas(d)
    if rolling is None or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas
    )
    return min(unavailable, replicas)


# --- replica set arithmetic -------------------------------------------------------------
def _created(obj: Mapping[str, Any]) -> float:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def by_creation(rses: Iterable[Obj]) -> list[Obj]:
    """Oldest first, ties by name (ReplicaSetsByCreationTimestamp)."""
    return sorted(rses, key=lambda r: (_created(r), _name(r)))


def revision_of(obj: Mapping[str, Any]) -> int | None:
    raw = _annotations(obj).get(REVISION)
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def max_revision(rses: Iterable[Obj]) -> int:
    return max((r for r in (revision_of(x) for x in rses) if r is not None), default=0)


def find_new_replica_set(d: Mapping[str, Any], rses: Sequence[Obj]) -> Obj | None:
    template = (d.get("spec") or {}).get("template")
    for rs in by_creation(rses):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def active(rses: Iterable[Obj | None]) -> list[Obj]:
    return [r for r in rses if r is not None and _replicas(r) > 0]


def replica_count(rses: Iterable[Obj | None]) -> int:
    return sum(_replicas(r) for r in rses if r is not None)


def actual_count(rses: Iterable[Obj | None]) -> int:
    return sum(_status(r, "replicas") for r in rses if r is not None)


def ready_count(rses: Iterable[Obj | None]) -> int:
    return sum(_status(r, "readyReplicas") for r in rses if r is not None)


def available_count(rses: Iterable[Obj | None]) -> int:
    return sum(_status(r, "availableReplicas") for r in rses if r is not None)


def _int_annotation(obj: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(str(_annotations(obj)[key]))
    except (KeyError, ValueError):
        return None


def new_rs_new_replicas(d: Mapping[str, Any], all_rses: Sequence[Obj | None], new_rs: Obj) -> int:
    """How far the new ReplicaSet may scale up now (Kubernetes' NewRSNewReplicas)."""
    replicas = _replicas(d)
    rolling = _rolling(d)
    if rolling is None:
        return replicas
    surge = scaled_value(rolling.get("maxSurge"), replicas, True)
    current = replica_count(all_rses)
    max_total = replicas + surge
    if current >= max_total:
        return _replicas(new_rs)
    scale_up = min(max_total - current, replicas - _replicas(new_rs))
    return _replicas(new_rs) + scale_up


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def replica_set_fraction(rs: Obj, d: Mapping[str, Any]) -> int:
    """Kubernetes' getReplicaSetFraction: the change of ``rs`` in a proportional scale."""
    if _replicas(d) == 0:
        return -_replicas(rs)
    deployment_replicas = _replicas(d) + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = _status(dict(d), "replicas")
    if annotated == 0:
        return 0
    new_size = _replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - _replicas(rs)


def proportion(rs: Obj, d: Mapping[str, Any], to_add: int, added: int) -> int:
    """Kubernetes' GetProportion."""
    if _replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Mapping[str, Any], rses: Sequence[Obj]) -> list[tuple[Obj, int]]:
    """The sizes a rolling Deployment's active ReplicaSets get when its replicas change
    mid-rollout (the RollingUpdate branch of Kubernetes' scale): each grows or shrinks in
    proportion to its size, leftovers to the largest (newer on ties when growing)."""
    all_rses = active(rses)
    replicas = _replicas(d)
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - replica_count(all_rses)
    if to_add > 0:
        all_rses.sort(key=lambda r: (-_replicas(r), -_created(r), _name(r)))
    elif to_add < 0:
        all_rses.sort(key=lambda r: (-_replicas(r), _created(r), _name(r)))
    added = 0
    sizes: list[int] = []
    for rs in all_rses:
        if to_add != 0:
            part = proportion(rs, d, to_add, added)
            sizes.append(_replicas(rs) + part)
            added += part
        else:
            sizes.append(_replicas(rs))
    if all_rses and to_add != 0:
        sizes[0] = max(sizes[0] + to_add - added, 0)
    return list(zip(all_rses, sizes, strict=True))


# --- conditions ---------------------------------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def get_condition(status: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def new_condition(kind: str, status: str, reason: str, message: str) -> Obj:
    now = _now()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, condition: Obj) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason -> unchanged; same
    status -> keep the transition time."""
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = _replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("observedGeneration") or 0)
        >= int((d.get("metadata") or {}).get("generation") or 0)
    )


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old = d.get("status") or {}

    def g(s: Mapping[str, Any], k: str) -> int:
        return int(s.get(k) or 0)

    return (
        g(new, "updatedReplicas") > g(old, "updatedReplicas")
        or g(new, "replicas") - g(new, "updatedReplicas")
        < g(old, "replicas") - g(old, "updatedReplicas")
        or g(new, "readyReplicas") > g(old, "readyReplicas")
        or g(new, "availableReplicas") > g(old, "availableReplicas")
    )


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any], now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int((d.get("spec") or {})["progressDeadlineSeconds"]) < now


def calculate_status(all_rses: Sequence[Obj | None], new_rs: Obj | None, d: Obj) -> Obj:
    """Kubernetes' calculateStatus."""
    available = available_count(all_rses)
    total = replica_count(all_rses)
    status: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": actual_count(all_rses),
        "updatedReplicas": actual_count([new_rs]),
        "readyReplicas": ready_count(all_rses),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    old = d.get("status") or {}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= _replicas(d) - max_unavailable(d):
        set_condition(
            status,
            new_condition(
                "Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."
            ),
        )
    else:
        set_condition(
            status,
            new_condition(
                "Available",
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
            ),
        )
    return status


def _status_same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Status equality ignoring zero-valued counters' presence."""

    def norm(s: Mapping[str, Any]) -> Obj:
        return {k: v for k, v in s.items() if v not in (0, None, [])}

    return norm(a) == norm(b)


# --- the controller -----------------------------------------------------------------------
def _ns_index(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _controller_uid_index(obj: Obj) -> list[str]:
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj


class DeploymentController:
    """Rolls Deployments out through ReplicaSets."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder("deployment-controller")
        self.queue = WorkQueue()
        self.workers = ctx.setting("deployment.workers", 5)
        self.deployments = ctx.informers.informer("apps/v1", "deployments")
        self.rses = ctx.informers.informer("apps/v1", "replicasets")
        self.pods = ctx.informers.informer("v1", "pods")
        self.deployments.add_index("deployment:namespace", _ns_index)
        self.rses.add_index("deployment:namespace", _ns_index)
        add_claim_indexes(self.rses)
        self.pods.add_index("deployment:controller-uid", _controller_uid_index)
        self.deployments.on(
            add=lambda d: self.queue.add(key_of(d)),
            update=lambda _o, d: self.queue.add(key_of(d)),
            delete=lambda d: self.queue.add(key_of(d)),
        )
        self.rses.on(add=self._rs_added, update=self._rs_updated, delete=self._rs_deleted)
        self.pods.on(delete=self._pod_deleted)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name="deployment")

    # --- handlers -----------------------------------------------------------------------
    def _resolve(self, namespace: str, ref: Mapping[str, Any] | None) -> Obj | None:
        if not ref or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(f"{namespace}/{ref.get('name')}")
        if d is None or _uid(d) != ref.get("uid"):
            return None
        return d

    def _matching(self, rs: Obj) -> list[Obj]:
        ns = str((rs.get("metadata") or {}).get("namespace") or "")
        labels = labels_of(rs)
        return [
            d
            for d in self.deployments.by_index("deployment:namespace", ns)
            if selector_matches((d.get("spec") or {}).get("selector"), labels)
        ]

    def _rs_added(self, rs: Obj) -> None:
        if is_terminating(rs):
            self._rs_deleted(rs)
            return
        ns = str((rs.get("metadata") or {}).get("namespace") or "")
        ref = controller_ref(rs)
        if ref is not None:
            d = self._resolve(ns, ref)
            if d is not None:
                self.queue.add(key_of(d))
            return
        for d in self._matching(rs):
            self.queue.add(key_of(d))

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        ns = str((cur.get("metadata") or {}).get("namespace") or "")
        cur_ref, old_ref = controller_ref(cur), controller_ref(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            d = self._resolve(ns, old_ref)
            if d is not None:
                self.queue.add(key_of(d))
        if cur_ref is not None:
            d = self._resolve(ns, cur_ref)
            if d is not None:
                self.queue.add(key_of(d))
            return
        if ref_changed or labels_of(old) != labels_of(cur):
            for d in self._matching(cur):
                self.queue.add(key_of(d))

    def _rs_deleted(self, rs: Obj) -> None:
        ns = str((rs.get("metadata") or {}).get("namespace") or "")
        d = self._resolve(ns, controller_ref(rs))
        if d is not None:
            self.queue.add(key_of(d))

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone: look again when one goes."""
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rses.get(f"{ns}/{ref.get('name')}")
        if rs is None:
            return
        d = self._resolve(ns, controller_ref(rs))
        if d is not None:
            strategy = (d.get("spec") or {}).get("strategy") or {}
            if strategy.get("type") == "Recreate":
                self.queue.add(key_of(d))

    # --- sync -------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = _typed(copy.deepcopy(cached), "apps/v1", "Deployment")
        selector = (d.get("spec") or {}).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self.recorder.event(
                d,
                "Warning",
                "SelectingAll",
                "Sync",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            generation = int((d.get("metadata") or {}).get("generation") or 0)
            if generation > _status(d, "observedGeneration"):
                status = dict(d.get("status") or {})
                status["observedGeneration"] = generation
                await self._write_status(d, status)
            return
        rs_list = await self._claim(d)
        if is_terminating(d):
            new_rs, old_rses = await self._new_and_old(d, rs_list, create=False)
            await self._sync_status(d, [*old_rses, new_rs], new_rs)
            return
        await self._check_paused(d)
        if (d.get("spec") or {}).get("paused"):
            await self._scale_sync(d, rs_list)
            return
        if await self._is_scaling_event(d, rs_list):
            await self._scale_sync(d, rs_list)
            return
        if ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            await self._rollout_recreate(d, rs_list)
        else:
            await self._rollout_rolling(d, rs_list)

    # --- claiming ---------------------------------------------------------------------------
    async def _claim(self, d: Obj) -> list[Obj]:
        """Kubernetes' ClaimReplicaSets; the claimed ReplicaSets as private copies."""
        selector = (d.get("spec") or {}).get("selector")
        uid = _uid(d)
        claimed: list[Obj] = []
        can_adopt: bool | None = None
        for rs in claim_candidates(self.rses, d):
            ref = controller_ref(rs)
            matches = selector_matches(selector, labels_of(rs))
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(_typed(copy.deepcopy(rs), "apps/v1", "ReplicaSet"))
                elif not is_terminating(d):
                    await self._set_owner(rs, d, adopt=False)
                continue
            if not matches or is_terminating(d) or is_terminating(rs):
                continue
            if can_adopt is None:
                can_adopt = await self._fresh_ok(d)
            if not can_adopt:
                continue
            adopted = await self._set_owner(rs, d, adopt=True)
            if adopted is not None:
                claimed.append(_typed(adopted, "apps/v1", "ReplicaSet"))
        return claimed

    async def _fresh_ok(self, d: Obj) -> bool:
        meta = d.get("metadata") or {}
        try:
            fresh = await self.client.get(
                "apps/v1", "deployments", str(meta.get("name")), meta.get("namespace")
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return _uid(fresh) == _uid(d) and not is_terminating(fresh)

    async def _set_owner(self, rs: Obj, d: Obj, *, adopt: bool) -> Obj | None:
        meta = rs.get("metadata") or {}
        refs = [dict(r) for r in meta.get("ownerReferences") or [] if r.get("uid") != _uid(d)]
        if adopt:
            refs.append(owner_reference(d))
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        try:
            return await self.client.patch(
                "apps/v1", "replicasets", str(meta.get("name")), patch, meta.get("namespace")
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    # --- the new replica set ------------------------------------------------------------
    async def _new_and_old(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """Kubernetes' getAllReplicaSetsAndSyncRevision."""
        found = find_new_replica_set(d, rs_list)
        old = [rs for rs in rs_list if found is None or _uid(rs) != _uid(found)]
        new_rs = await self._new_replica_set(d, rs_list, old, create=create)
        return new_rs, old

    def _new_rs_annotations(self, d: Obj, rs: Obj, revision: int, exists: bool) -> bool:
        """Kubernetes' SetNewReplicaSetAnnotations; whether anything changed."""
        meta = rs.setdefault("metadata", {})
        annotations = meta.get("annotations") or {}
        changed = False
        for k, v in _annotations(d).items():
            if k in SKIPPED_ANNOTATIONS or annotations.get(k) == v:
                continue
            annotations[k] = v
            changed = True
        old_raw = annotations.get(REVISION)
        try:
            old_revision = int(old_raw) if old_raw is not None else 0
        except ValueError:
            meta["annotations"] = annotations
            return changed
        if old_revision < revision:
            annotations[REVISION] = str(revision)
            changed = True
            if old_raw is not None:
                history = annotations.get(REVISION_HISTORY, "")
                if not history:
                    annotations[REVISION_HISTORY] = old_raw
                else:
                    parts = history.split(",")
                    total = len(history) + len(old_raw) + 1
                    start = 0
                    while total > MAX_REVISION_HISTORY_CHARS and start < len(parts):
                        total -= len(parts[start]) + 1
                        start += 1
                    if total <= MAX_REVISION_HISTORY_CHARS:
                        annotations[REVISION_HISTORY] = ",".join([*parts[start:], old_raw])
        if not exists and _set_replicas_annotations(
            annotations, _replicas(d), _replicas(d) + max_surge(d)
        ):
            changed = True
        meta["annotations"] = annotations
        return changed

    async def _set_revision(self, d: Obj, revision: str | None) -> None:
        """Mirror the new ReplicaSet's revision on the Deployment (a metadata patch)."""
        if revision is None or _annotations(d).get(REVISION) == revision:
            return
        meta = d.get("metadata") or {}
        written = await self.client.patch(
            "apps/v1",
            "deployments",
            str(meta.get("name")),
            {"metadata": {"annotations": {REVISION: revision}}},
            meta.get("namespace"),
        )
        status = d.get("status")
        d.clear()
        d.update(_typed(written, "apps/v1", "Deployment"))
        if status is not None:
            d["status"] = status

    async def _new_replica_set(
        self, d: Obj, rs_list: list[Obj], old: list[Obj], *, create: bool
    ) -> Obj | None:
        """Kubernetes' getNewReplicaSet."""
        existing = find_new_replica_set(d, rs_list)
        revision = max_revision(old) + 1
        spec = d.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if existing is not None:
            candidate = copy.deepcopy(existing)
            changed = self._new_rs_annotations(d, candidate, revision, True)
            if int((candidate.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                candidate["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                written = await self._write_rs(candidate)
                existing.clear()
                existing.update(written)
                return existing
            await self._set_revision(d, _annotations(existing).get(REVISION))
            if (
                has_progress_deadline(d)
                and get_condition(d.get("status") or {}, "Progressing") is None
            ):
                status = copy.deepcopy(d.get("status") or {})
                set_condition(
                    status,
                    new_condition(
                        "Progressing",
                        "True",
                        FOUND_NEW_RS,
                        f'Found new replica set "{_name(existing)}"',
                    ),
                )
                await self._write_status(d, status)
            return existing
        if not create:
            return None
        collision = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = compute_hash(template, None if collision is None else int(collision))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        name = f"{_name(d)}-{pod_hash}"
        namespace = (d.get("metadata") or {}).get("namespace")
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "ownerReferences": [owner_reference(d)],
                "labels": dict(tmeta["labels"]),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": min_ready,
                "selector": selector,
                "template": template,
            },
        }
        count = new_rs_new_replicas(d, [*old, new_rs], new_rs)
        new_rs["spec"]["replicas"] = count
        self._new_rs_annotations(d, new_rs, revision, False)
        try:
            created = _typed(
                await self.client.create("apps/v1", "replicasets", new_rs, namespace),
                "apps/v1",
                "ReplicaSet",
            )
        except KubeError as exc:
            if not exc.already_exists:
                raise
            try:
                clash = await self.client.get("apps/v1", "replicasets", name, namespace)
            except KubeError as inner:
                if inner.not_found:
                    raise exc from None
                raise
            ref = controller_ref(clash)
            if (
                ref is not None
                and ref.get("uid") == _uid(d)
                and equal_ignore_hash(
                    (clash.get("spec") or {}).get("template"), spec.get("template")
                )
            ):
                return _typed(clash, "apps/v1", "ReplicaSet")
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            await self._write_status(d, status)
            raise
        if count > 0:
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                "Scale",
                f"Scaled up replica set {name} to {count}",
            )
        await self._set_revision(d, str(revision))
        if has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(
                status,
                new_condition(
                    "Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{name}"'
                ),
            )
            await self._write_status(d, status)
        return created

    # --- writes ---------------------------------------------------------------------------
    async def _write_rs(self, rs: Obj) -> Obj:
        meta = rs.get("metadata") or {}
        written = await self.client.replace(
            "apps/v1", "replicasets", str(meta.get("name")), rs, meta.get("namespace")
        )
        return _typed(written, "apps/v1", "ReplicaSet")

    async def _write_status(self, d: Obj, status: Obj) -> None:
        body = copy.deepcopy(d)
        body["status"] = status
        meta = d.get("metadata") or {}
        written = await self.client.replace(
            "apps/v1",
            "deployments",
            str(meta.get("name")),
            body,
            meta.get("namespace"),
            subresource="status",
        )
        d.clear()
        d.update(_typed(written, "apps/v1", "Deployment"))

    async def _scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str) -> bool:
        """Kubernetes' scaleReplicaSet; whether the size changed."""
        old_scale = _replicas(rs)
        size_changed = old_scale != new_scale
        annotations = _annotations(rs)
        wanted_max = _replicas(d) + max_surge(d)
        annotations_changed = _set_replicas_annotations(annotations, _replicas(d), wanted_max)
        if not size_changed and not annotations_changed:
            return False
        candidate = copy.deepcopy(rs)
        candidate["spec"]["replicas"] = new_scale
        candidate["metadata"]["annotations"] = annotations
        written = await self._write_rs(candidate)
        rs.clear()
        rs.update(written)
        if size_changed:
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                "Scale",
                f"Scaled {operation} replica set {_name(rs)} to {new_scale} from {old_scale}",
            )
        return size_changed

    async def _scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> bool:
        if _replicas(rs) == new_scale:
            return False
        operation = "up" if _replicas(rs) < new_scale else "down"
        return await self._scale_rs(rs, new_scale, d, operation)

    # --- scaling (paused or a replicas change) ------------------------------------------
    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old = await self._new_and_old(d, rs_list, create=False)
        for rs in active([*old, new_rs]):
            desired = _int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != _replicas(d):
                return True
        return False

    async def _scale_sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """Kubernetes' sync: scale, clean up while paused, and write the status."""
        new_rs, old = await self._new_and_old(d, rs_list, create=False)
        await self._scale(d, new_rs, old)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old)
        await self._sync_status(d, [*old, new_rs], new_rs)

    async def _scale(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        target = _active_or_latest(new_rs, old)
        if target is not None:
            if _replicas(target) != _replicas(d):
                await self._scale_and_record(target, _replicas(d), d)
            return
        if _is_saturated(d, new_rs):
            for rs in active(old):
                await self._scale_and_record(rs, 0, d)
            return
        if _rolling(d) is None:
            return
        everything = [*old, new_rs] if new_rs is not None else list(old)
        allowed = _replicas(d) + max_surge(d) if _replicas(d) > 0 else 0
        to_add = allowed - replica_count(active(everything))
        operation = "up" if to_add > 0 else ("down" if to_add < 0 else "")
        for rs, size in proportional_sizes(d, everything):
            await self._scale_rs(rs, size, d, operation)

    # --- rolling update ---------------------------------------------------------------------
    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old = await self._new_and_old(d, rs_list, create=True)
        if new_rs is None:
            return
        everything: list[Obj] = [*old, new_rs]
        if await self._reconcile_new(everything, new_rs, d):
            await self._sync_rollout_status(d, everything, new_rs)
            return
        if await self._reconcile_old(everything, active(old), new_rs, d):
            await self._sync_rollout_status(d, everything, new_rs)
            return
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        await self._sync_rollout_status(d, everything, new_rs)

    async def _reconcile_new(self, everything: list[Obj], new_rs: Obj, d: Obj) -> bool:
        if _replicas(new_rs) == _replicas(d):
            return False
        if _replicas(new_rs) > _replicas(d):
            return await self._scale_and_record(new_rs, _replicas(d), d)
        return await self._scale_and_record(new_rs, new_rs_new_replicas(d, everything, new_rs), d)

    async def _reconcile_old(
        self, everything: list[Obj], old: list[Obj], new_rs: Obj, d: Obj
    ) -> bool:
        old_count = replica_count(old)
        if old_count == 0:
            return False
        all_count = replica_count(everything)
        min_available = _replicas(d) - max_unavailable(d)
        new_unavailable = _replicas(new_rs) - _status(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = await self._cleanup_unhealthy(old, d, max_scaled_down)
        scaled = await self._scale_down_old(everything, old, d)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy(self, old: list[Obj], d: Obj, limit: int) -> int:
        """Scale down old ReplicaSets' unavailable replicas first (they serve nobody)."""
        total = 0
        for rs in by_creation(old):
            if total >= limit:
                break
            replicas = _replicas(rs)
            available = _status(rs, "availableReplicas")
            if replicas == 0 or replicas == available:
                continue
            count = min(limit - total, replicas - available)
            await self._scale_and_record(rs, replicas - count, d)
            total += count
        return total

    async def _scale_down_old(self, everything: list[Obj], old: list[Obj], d: Obj) -> int:
        min_available = _replicas(d) - max_unavailable(d)
        available = available_count(everything)
        if available <= min_available:
            return 0
        wanted = available - min_available
        total = 0
        for rs in by_creation(old):
            if total >= wanted:
                break
            if _replicas(rs) == 0:
                continue
            count = min(_replicas(rs), wanted - total)
            await self._scale_and_record(rs, _replicas(rs) - count, d)
            total += count
        return total

    # --- recreate ---------------------------------------------------------------------------
    def _old_pods_running(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        if actual_count(old) > 0:
            return True
        for rs in old:
            if new_rs is not None and _uid(rs) == _uid(new_rs):
                continue
            for pod in self.pods.by_index("deployment:controller-uid", _uid(rs)):
                if pod_phase(pod) not in ("Failed", "Succeeded"):
                    return True
        return False

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old = await self._new_and_old(d, rs_list, create=False)
        everything: list[Obj] = [*old, *([new_rs] if new_rs is not None else [])]
        scaled = False
        for rs in active(old):
            if await self._scale_and_record(rs, 0, d):
                scaled = True
        if scaled or self._old_pods_running(new_rs, old):
            await self._sync_rollout_status(d, everything, new_rs)
            return
        if new_rs is None:
            new_rs, old = await self._new_and_old(d, rs_list, create=True)
            everything = [*old, *([new_rs] if new_rs is not None else [])]
        if new_rs is not None:
            await self._scale_and_record(new_rs, _replicas(d), d)
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        await self._sync_rollout_status(d, everything, new_rs)

    # --- history ----------------------------------------------------------------------------
    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Delete the oldest zero-replica ReplicaSets beyond revisionHistoryLimit."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old if not is_terminating(rs)]
        diff = len(alive) - int(limit)
        if diff <= 0:
            return
        alive.sort(key=lambda r: (revision_of(r) or 0, _created(r), _name(r)))
        for rs in alive[:diff]:
            generation = int((rs.get("metadata") or {}).get("generation") or 0)
            if (
                _status(rs, "replicas") != 0
                or _replicas(rs) != 0
                or generation > _status(rs, "observedGeneration")
                or is_terminating(rs)
            ):
                continue
            meta = rs.get("metadata") or {}
            try:
                await self.client.delete("apps/v1", "replicasets", _name(rs), meta.get("namespace"))
            except KubeError as exc:
                if not exc.not_found:
                    raise

    # --- status -------------------------------------------------------------------------------
    async def _check_paused(self, d: Obj) -> None:
        if not has_progress_deadline(d):
            return
        status = copy.deepcopy(d.get("status") or {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            set_condition(
                status, new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused")
            )
        elif not paused and paused_cond:
            set_condition(
                status, new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed")
            )
        else:
            return
        await self._write_status(d, status)

    async def _sync_status(
        self, d: Obj, everything: Sequence[Obj | None], new_rs: Obj | None
    ) -> None:
        status = calculate_status(everything, new_rs, d)
        if not _status_same(d.get("status") or {}, status):
            await self._write_status(d, status)

    async def _sync_rollout_status(
        self, d: Obj, everything: Sequence[Obj | None], new_rs: Obj | None
    ) -> None:
        """Kubernetes' syncRolloutStatus: counts, Progressing/Available/ReplicaFailure."""
        status = calculate_status(everything, new_rs, d)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(d.get("status") or {}, "Progressing")
        complete = (
            int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if has_progress_deadline(d) and not complete:
            if deployment_complete(d, status):
                message = (
                    f'ReplicaSet "{_name(new_rs)}" has successfully progressed.'
                    if new_rs is not None
                    else "Deployment has successfully progressed."
                )
                set_condition(
                    status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, message)
                )
            elif deployment_progressing(d, status):
                message = (
                    f'ReplicaSet "{_name(new_rs)}" is progressing.'
                    if new_rs is not None
                    else "Deployment is progressing."
                )
                condition = new_condition("Progressing", "True", RS_UPDATED, message)
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, "Progressing")
                set_condition(status, condition)
            elif deployment_timed_out(d, status, time.time()):
                message = (
                    f'ReplicaSet "{_name(new_rs)}" has timed out progressing.'
                    if new_rs is not None
                    else "Deployment has timed out progressing."
                )
                set_condition(status, new_condition("Progressing", "False", TIMED_OUT, message))
        failure = None
        if new_rs is not None:
            failure = get_condition(new_rs.get("status") or {}, "ReplicaFailure")
        if failure is not None:
            set_condition(
                status,
                new_condition(
                    "ReplicaFailure",
                    str(failure.get("status") or "True"),
                    str(failure.get("reason") or ""),
                    str(failure.get("message") or ""),
                ),
            )
        else:
            remove_condition(status, "ReplicaFailure")
        if _status_same(d.get("status") or {}, status):
            self._requeue_stuck(d, status)
            return
        await self._write_status(d, status)

    def _requeue_stuck(self, d: Obj, status: Obj) -> None:
        current = get_condition(d.get("status") or {}, "Progressing")
        if not has_progress_deadline(d) or current is None:
            return
        if deployment_complete(d, status) or current.get("reason") == TIMED_OUT:
            return
        since = parse_time(current.get("lastUpdateTime"))
        if since is None:
            return
        deadline = int((d.get("spec") or {})["progressDeadlineSeconds"])
        after = since + deadline - time.time()
        key = key_of(d)
        if after < 1.0:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, after + 1.0)


def _set_replicas_annotations(annotations: dict[str, str], desired: int, maximum: int) -> bool:
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def _active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    """Kubernetes' FindActiveOrLatest: the only active ReplicaSet, or the latest when
    none is active, or None when several are."""
    if new_rs is None and not old:
        return None
    newest_first = sorted(old, key=lambda r: (_created(r), _name(r)), reverse=True)
    everything = active([*newest_first, new_rs])
    if not everything:
        return new_rs if new_rs is not None else newest_first[0]
    if len(everything) == 1:
        return everything[0]
    return None


def _is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = _int_annotation(rs, DESIRED_REPLICAS)
    replicas = _replicas(d)
    return (
        desired is not None
        and _replicas(rs) == replicas
        and desired == replicas
        and _status(rs, "availableReplicas") == replicas
    )
