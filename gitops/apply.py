"""Carry out a :class:`~gitops.plan.Plan`: staged server-side apply, inventory, prune, wait.

Order (as Flux's ssa manager and Helm's install order do it):

1. Namespaces and CustomResourceDefinitions, then wait until every CRD is Established
   and read discovery again, so custom resources of the same commit apply in one pass;
2. the rest by sync wave (annotation ``gitops.dev/sync-wave``, or Argo CD's
   ``argocd.argoproj.io/sync-wave``; default 0), lower waves first, waiting for a wave
   to be healthy before the next when there are several; inside a wave by
   :data:`KIND_ORDER` (configuration and RBAC before workloads); objects of one kind
   are applied concurrently;
3. only if every apply succeeded: prune what left the inventory, in reverse order,
   except objects annotated ``gitops.dev/prune: disabled`` and Namespaces holding
   objects the Application does not own; then save the inventory.

Only what the plan found changed is applied (``created`` / ``configured``). An apply
that conflicts with another manager fails unless the Application forces, or self-heal
is correcting drift (Git wins). With self-heal, fields a person added by hand are
removed with a JSON patch guarded by the object's resourceVersion.

Called by :mod:`gitops.sync`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gitops import diff as diffing
from gitops import inventory as inventories
from gitops.changeset import Action, ChangeSet
from gitops.cluster import Destination
from gitops.errors import ClusterError
from gitops.health import Health, HealthStatus, health_of, worst
from gitops.manifest import ARGO_SYNC_WAVE_ANNOTATION, SYNC_WAVE_ANNOTATION, ObjectKey
from gitops.plan import Plan, PlannedObject, PruneCandidate

KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "IngressClass",
    "Service",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "Job",
    "CronJob",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
"""Apply order of kinds; kinds not listed (custom resources) come after all of these."""
_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}
_FIRST = ("Namespace", "CustomResourceDefinition")

_NOT_OWNERSHIP = {"Event", "Endpoints", "EndpointSlice", "Lease"}
"""Kinds the cluster creates in a namespace by itself: they do not stop a namespace prune."""
_AUTOMATIC_NAMES = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


@dataclass(frozen=True)
class ApplyOptions:
    force: bool = False
    """Take fields over from other managers on conflict."""
    self_heal: bool = False
    """Correcting drift: force conflicts and remove fields added by hand."""
    prune: bool = True
    concurrency: int = 16
    crd_timeout: float = 60.0
    wave_timeout: float = 300.0


def kind_rank(kind: str) -> int:
    return _RANK.get(kind, len(KIND_ORDER))


def sync_wave(obj: dict[str, Any]) -> int:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(SYNC_WAVE_ANNOTATION, annotations.get(ARGO_SYNC_WAVE_ANNOTATION, "0"))
    try:
        return int(str(raw).strip())
    except ValueError:
        return 0


def _stages(objects: Sequence[PlannedObject]) -> list[tuple[int, list[list[PlannedObject]]]]:
    """Waves in order, each a list of kind groups in :data:`KIND_ORDER`."""
    waves: dict[int, dict[int, list[PlannedObject]]] = defaultdict(lambda: defaultdict(list))
    for p in objects:
        if p.manifest.kind in _FIRST:
            continue
        waves[sync_wave(p.desired)][kind_rank(p.manifest.kind)].append(p)
    return [
        (wave, [groups[rank] for rank in sorted(groups)]) for wave, groups in sorted(waves.items())
    ]


async def _apply_one(dest: Destination, p: PlannedObject, options: ApplyOptions) -> None:
    entry = p.entry
    if entry.action not in (Action.CREATED, Action.CONFIGURED):
        return
    if p.rt is None:
        discovery = await dest.discovery()
        p.rt = discovery.lookup(p.manifest.api_version, p.manifest.kind)
        if p.rt is None:
            entry.action = Action.FAILED
            entry.message = f"the cluster does not serve {p.manifest.api_version} {p.manifest.kind}"
            return
    if p.conflict and not (options.force or options.self_heal):
        entry.action = Action.FAILED
        entry.message = (
            f"{p.conflict} (another manager owns these fields: set force: true on the "
            "Application to take them over)"
        )
        return
    try:
        if p.manual and options.self_heal and p.live is not None:
            await _remove_manual_fields(dest, p)
        p.applied = await dest.apply(p.rt, p.desired, force=options.force or options.self_heal)
    except ClusterError as exc:
        entry.action = Action.FAILED
        entry.message = exc.message


async def _remove_manual_fields(dest: Destination, p: PlannedObject, attempts: int = 5) -> None:
    """Remove the fields a person added by hand. The patch is guarded by the object's
    resourceVersion, and controllers keep writing status, so on a lost race the object
    is read again and the fields found again."""
    assert p.rt is not None and p.live is not None
    live: dict[str, Any] | None = p.live
    options = diffing.DiffOptions()
    meta = p.live.get("metadata") or {}
    namespace, name = meta.get("namespace"), str(meta.get("name"))
    manual = p.manual
    for attempt in range(attempts):
        if live is None or not manual:
            return
        try:
            await dest.json_patch(p.rt, namespace, name, diffing.removal_patch(live, manual))
            return
        except ClusterError as exc:
            if exc.status not in (409, 422) or attempt + 1 == attempts:
                raise
        live = await dest.get(p.rt, namespace, name)
        if live is not None:
            manual = diffing.manual_additions(live, p.desired, options)


async def _apply_group(
    dest: Destination, group: Sequence[PlannedObject], options: ApplyOptions
) -> None:
    gate = asyncio.Semaphore(options.concurrency)

    async def one(p: PlannedObject) -> None:
        async with gate:
            await _apply_one(dest, p, options)

    await asyncio.gather(*(one(p) for p in group))


async def _wait_established(
    dest: Destination, crds: Sequence[PlannedObject], timeout: float
) -> list[str]:
    """Names of CRDs that did not become Established in time."""
    deadline = time.monotonic() + timeout
    pending = [p for p in crds if p.entry.action is not Action.FAILED and p.rt is not None]
    while pending and time.monotonic() < deadline:
        still = []
        for p in pending:
            assert p.rt is not None
            live = await dest.get(p.rt, None, p.manifest.name)
            if health_of(live).status is not HealthStatus.HEALTHY:
                still.append(p)
        pending = still
        if pending:
            await asyncio.sleep(0.2)
    return [p.manifest.name for p in pending]


async def apply(dest: Destination, plan: Plan, options: ApplyOptions) -> ChangeSet:
    """Apply the plan's changes; entries are updated in place and the ChangeSet returned."""
    if plan.failed:
        raise ClusterError(
            "the plan has failed objects; nothing of this revision is applied", retryable=False
        )
    first = sorted(
        (p for p in plan.objects if p.manifest.kind in _FIRST),
        key=lambda p: kind_rank(p.manifest.kind),
    )
    for kind in _FIRST:
        await _apply_group(dest, [p for p in first if p.manifest.kind == kind], options)
    crds = [p for p in first if p.manifest.kind == "CustomResourceDefinition"]
    changed_crds = [p for p in crds if p.entry.action in (Action.CREATED, Action.CONFIGURED)]
    if changed_crds:
        late = await _wait_established(dest, changed_crds, options.crd_timeout)
        for p in changed_crds:
            if p.manifest.name in late:
                p.entry.action = Action.FAILED
                p.entry.message = f"not Established within {options.crd_timeout:g} s"
        await dest.discovery(refresh=True)
    stages = _stages(plan.objects)
    for index, (_, groups) in enumerate(stages):
        if _failed(plan.objects):
            break
        for group in groups:
            await _apply_group(dest, group, options)
        if index + 1 < len(stages) and not _failed(plan.objects):
            wave_objects = [p for g in groups for p in g]
            await wait_healthy(dest, wave_objects, options.wave_timeout)
    if _failed(plan.objects):
        _skip_prunes(plan.prunes, "not pruned: the sync failed")
        await _save_inventory(dest, plan, pruned=())
        return plan.changes
    pruned: list[ObjectKey] = []
    if options.prune:
        pruned = await _prune(dest, plan.prunes, plan)
    else:
        _skip_prunes(
            plan.prunes, "not in the revision any more; left in the cluster (prune is off)"
        )
    await _save_inventory(dest, plan, pruned=pruned)
    return plan.changes


def _failed(objects: Iterable[PlannedObject]) -> bool:
    return any(p.entry.action is Action.FAILED for p in objects)


def _skip_prunes(prunes: Iterable[PruneCandidate], message: str) -> None:
    for c in prunes:
        if c.entry.action is Action.PRUNED:
            c.entry.action = Action.SKIPPED
            c.entry.message = message


async def _save_inventory(dest: Destination, plan: Plan, pruned: Iterable[ObjectKey]) -> None:
    """Desired objects that exist now, plus old entries not pruned (a failed sync
    forgets nothing, so a later sync can still prune them)."""
    inventory = plan.inventory
    objects = dict(inventory.objects)
    for p in plan.objects:
        if p.entry.action is not Action.FAILED or p.live is not None:
            objects[p.entry.key] = p.manifest.api_version
    for key in pruned:
        objects.pop(key, None)
    changed = objects != inventory.objects or inventory.revision != plan.changes.revision
    inventory.objects = objects
    inventory.revision = plan.changes.revision or inventory.revision
    if changed or not inventory.resource_version:
        await inventories.save(dest, plan.app, inventory)


async def _foreign_objects(dest: Destination, namespace: str, owned: set[ObjectKey]) -> list[str]:
    """Objects in ``namespace`` the Application does not own (besides what the cluster
    makes by itself and objects with an owner)."""
    discovery = await dest.discovery()
    seen: set[tuple[str, str]] = set()
    found: list[str] = []
    for rt in discovery.types:
        if not rt.namespaced or "list" not in rt.verbs or rt.kind in _NOT_OWNERSHIP:
            continue
        if (rt.group, rt.kind) in seen:
            continue
        seen.add((rt.group, rt.kind))
        try:
            items, _ = await dest.list_objects(rt, namespace)
        except ClusterError:
            continue
        for item in items:
            meta = item.get("metadata") or {}
            name = str(meta.get("name") or "")
            if meta.get("ownerReferences") or (rt.kind, name) in _AUTOMATIC_NAMES:
                continue
            if ObjectKey(rt.group, rt.kind, namespace, name) not in owned:
                found.append(f"{rt.kind}/{name}")
    return found


async def _prune(
    dest: Destination, prunes: Sequence[PruneCandidate], plan: Plan
) -> list[ObjectKey]:
    """Delete prune candidates in reverse kind order; namespaces last."""
    owned = set(plan.inventory.objects) | {p.entry.key for p in plan.objects}
    doomed = [c for c in prunes if c.entry.action is Action.PRUNED]
    doomed.sort(key=lambda c: kind_rank(c.key.kind), reverse=True)
    pruned: list[ObjectKey] = []
    by_rank: dict[int, list[PruneCandidate]] = defaultdict(list)
    for c in doomed:
        by_rank[kind_rank(c.key.kind)].append(c)
    for rank in sorted(by_rank, reverse=True):
        for c in by_rank[rank]:
            if c.rt is None or c.live is None:
                continue
            if c.key.kind == "Namespace" and c.key.group == "":
                leftovers = await _foreign_objects(dest, c.key.name, owned - set(pruned))
                if leftovers:
                    c.entry.action = Action.SKIPPED
                    shown = ", ".join(leftovers[:5]) + ("…" if len(leftovers) > 5 else "")
                    c.entry.message = f"not pruned: the namespace holds objects this Application does not own ({shown})"
                    continue
            uid = str((c.live.get("metadata") or {}).get("uid") or "")
            try:
                await dest.delete(c.rt, c.key.namespace or None, c.key.name, uid=uid)
                pruned.append(c.key)
            except ClusterError as exc:
                if exc.status == 409:  # recreated under the same name: not ours any more
                    pruned.append(c.key)
                    c.entry.action = Action.SKIPPED
                    c.entry.message = "not pruned: it was replaced by another object"
                    continue
                c.entry.action = Action.FAILED
                c.entry.message = exc.message
    return pruned


async def wait_healthy(
    dest: Destination, objects: Sequence[PlannedObject], timeout: float
) -> dict[ObjectKey, Health]:
    """Poll the objects' health until all are Healthy (or Suspended) or ``timeout``."""
    deadline = time.monotonic() + timeout
    result: dict[ObjectKey, Health] = {}
    pending = [p for p in objects if p.rt is not None and p.entry.action is not Action.FAILED]
    while True:
        still = []
        for p in pending:
            assert p.rt is not None
            live = await dest.get(p.rt, p.entry.key.namespace or None, p.entry.key.name)
            health = health_of(live)
            result[p.entry.key] = health
            if health.status not in (HealthStatus.HEALTHY, HealthStatus.SUSPENDED):
                still.append(p)
        pending = still
        if not pending or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(min(1.0, max(0.1, deadline - time.monotonic())))


def overall(healths: dict[ObjectKey, Health]) -> Health:
    """The Application's health: the worst of its objects'."""
    return worst(healths.values())
