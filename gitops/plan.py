"""Desired objects vs the live cluster → a :class:`~gitops.changeset.ChangeSet`.

For every object of a build the planner asks the destination what applying it would
give (server-side apply with ``dryRun=All`` and our field manager), and compares that
with the live object (:mod:`gitops.diff`): defaults the server fills in are in both, so
they never show as a difference; fields other managers own are unchanged by the dry
run, so they never show either. Fields a person added by hand (``kubectl label``,
``kubectl edit``…) that the manifests do not have are found from ``managedFields``.
Objects of the previous inventory that the build no longer has are prune candidates.

The dry run is also the validation: an object the server would refuse makes its entry
``failed`` and the applier applies nothing of that revision.

Planning is cheap when nothing changed: live objects are read with one LIST per kind
and namespace (not one GET per object), and a :class:`PlanCache` remembers, per object,
the manifest and the live resourceVersion of the last plan that found it unchanged; an
object whose manifest and live version are both the same is not dry-run again.

Called by :mod:`gitops.sync` (and through it the CLI and the service).
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gitops import diff as diffing
from gitops import inventory as inventories
from gitops.build.validate import check_kinds, validate
from gitops.changeset import Action, ChangeSet, Entry, FieldChange, masked
from gitops.cluster import Destination, Discovery, ResourceType
from gitops.config import IgnoreDifference
from gitops.errors import BuildError, BuildErrors, ClusterError
from gitops.manifest import APP_LABEL, PRUNE_ANNOTATION, Manifest, ObjectKey
from gitops.projects import BUILTIN_CLUSTER, Project, object_problem

_CRD_GROUP = "apiextensions.k8s.io"
_LIST_THRESHOLD = 4
"""More objects than this of one kind: LIST them (by our label) instead of GETs."""


@dataclass(frozen=True)
class PlanOptions:
    """What the planner needs of an Application."""

    app: str
    namespace: str = "default"
    """Default namespace of namespaced objects that name none."""
    ignore: Sequence[IgnoreDifference] = ()
    force: bool = False
    prune: bool = True
    concurrency: int = 32
    project: Project | None = None
    """The Application's project: an object outside it refuses the whole revision
    (None: no bounds, for tests and benchmarks)."""
    cluster: str = BUILTIN_CLUSTER
    """The destination cluster's name, as projects name it."""


@dataclass
class PlannedObject:
    """One desired object and everything the planner learnt about it."""

    manifest: Manifest
    desired: dict[str, Any]
    """What will be applied: the manifest with its namespace, our label and ignore rules."""
    rt: ResourceType | None
    """None for a custom resource whose CRD is in this build and not served yet."""
    entry: Entry
    live: dict[str, Any] | None = None
    dry: dict[str, Any] | None = None
    manual: list[diffing.ManualField] = field(default_factory=list)
    conflict: str = ""
    """The apply conflicts with other managers (the message); needs force."""
    applied: dict[str, Any] | None = None
    """The object as the apply returned it."""


@dataclass
class PruneCandidate:
    key: ObjectKey
    api_version: str
    rt: ResourceType | None
    live: dict[str, Any] | None
    entry: Entry


@dataclass
class Plan:
    app: str
    changes: ChangeSet
    objects: list[PlannedObject]
    prunes: list[PruneCandidate]
    inventory: inventories.Inventory
    discovery: Discovery

    @property
    def failed(self) -> bool:
        return bool(self.changes.failed)


@dataclass
class PlanCache:
    """Per object, the manifest digest and live resourceVersion last seen unchanged."""

    unchanged: dict[ObjectKey, tuple[bytes, str]] = field(default_factory=dict)
    dry_runs: int = 0
    """How many dry runs the planner made with this cache (for the benchmarks)."""


def _crd_kinds(manifests: Sequence[Manifest]) -> dict[tuple[str, str], tuple[set[str], bool]]:
    """(group, kind) → (served versions, namespaced) of CRDs in the build."""
    out: dict[tuple[str, str], tuple[set[str], bool]] = {}
    for m in manifests:
        if m.key.group != _CRD_GROUP or m.kind != "CustomResourceDefinition":
            continue
        spec = m.obj.get("spec") or {}
        group = str(spec.get("group") or "")
        kind = str((spec.get("names") or {}).get("kind") or "")
        versions = {str(v.get("name")) for v in spec.get("versions") or [] if isinstance(v, dict)}
        out[(group, kind)] = (versions, spec.get("scope", "Namespaced") == "Namespaced")
    return out


def digest(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def prepare(
    manifests: Sequence[Manifest], discovery: Discovery, options: PlanOptions
) -> list[tuple[Manifest, dict[str, Any], ResourceType | None]]:
    """Each manifest as it will be applied: namespaced kinds get the default namespace,
    cluster-scoped ones lose any namespace, every object gets our Application label.
    Raises BuildErrors for kinds the destination does not serve (unless a CRD of the
    build defines them) and for duplicates that defaulting the namespace revealed."""
    check_kinds(manifests, discovery.known)
    crds = _crd_kinds(manifests)
    prepared: list[tuple[Manifest, dict[str, Any], ResourceType | None]] = []
    outside: list[BuildError] = []
    for m in manifests:
        rt = discovery.lookup(m.api_version, m.kind)
        namespaced = rt.namespaced if rt else crds.get((m.key.group, m.kind), (set(), True))[1]
        obj = copy.deepcopy(m.obj)
        meta = obj.setdefault("metadata", {})
        if namespaced:
            meta["namespace"] = meta.get("namespace") or options.namespace
        else:
            meta.pop("namespace", None)
        if options.project is not None:
            labels = meta.get("labels")
            problem = object_problem(
                options.project,
                cluster=options.cluster,
                group=m.key.group,
                kind=m.kind,
                namespaced=namespaced,
                namespace=str(meta.get("namespace") or ""),
                labels=labels if isinstance(labels, dict) else None,
            )
            if problem is not None:
                where = f"{m.kind} {meta.get('name')}"
                outside.append(
                    BuildError(f"{where}: {problem}", file=m.origin.file, line=m.origin.line)
                )
        labels = meta.get("labels")
        meta["labels"] = {**(labels if isinstance(labels, dict) else {}), APP_LABEL: options.app}
        prepared.append((Manifest(obj, m.origin), obj, rt))
    if outside:
        raise BuildErrors(outside)
    validate([p[0] for p in prepared])
    return prepared


def _hpa_targets(prepared: Sequence[tuple[Manifest, dict[str, Any], Any]]) -> set[ObjectKey]:
    """Workloads an HPA of the build scales: their ``spec.replicas`` is the HPA's."""
    out: set[ObjectKey] = set()
    for m, obj, _ in prepared:
        if m.kind != "HorizontalPodAutoscaler":
            continue
        ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        api_version = str(ref.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        out.add(
            ObjectKey(
                group,
                str(ref.get("kind") or ""),
                str(obj["metadata"].get("namespace") or ""),
                str(ref.get("name") or ""),
            )
        )
    return out


async def _read_live(
    dest: Destination,
    wanted: Sequence[tuple[ResourceType, str, str]],
    app: str,
    concurrency: int,
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Live objects by (apiVersion, kind, namespace, name).

    Kinds with many wanted objects are read with one LIST of the Application's label
    across namespaces (per namespace if the cluster refuses that); objects the list
    did not return (new ones, or ones whose label was removed by hand) and kinds with
    few objects are read with GETs."""
    by_kind: dict[ResourceType, list[tuple[str, str]]] = defaultdict(list)
    for rt, namespace, name in wanted:
        by_kind[rt].append((namespace, name))
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    gate = asyncio.Semaphore(concurrency)

    def keep(rt: ResourceType, item: dict[str, Any]) -> None:
        meta = item.get("metadata") or {}
        key = (rt.api_version, rt.kind, str(meta.get("namespace") or ""), str(meta.get("name")))
        found[key] = item

    async def listed(rt: ResourceType, namespaces: set[str]) -> None:
        selector = f"{APP_LABEL}={app}"
        try:
            async with gate:
                items, _ = await dest.list_objects(rt, None, selector)
        except ClusterError as exc:
            if exc.status != 403 or not rt.namespaced:
                raise
            items = []
            for namespace in sorted(namespaces):
                async with gate:
                    items += (await dest.list_objects(rt, namespace, selector))[0]
        for item in items:
            keep(rt, item)

    async def got(rt: ResourceType, namespace: str, name: str) -> None:
        async with gate:
            live = await dest.get(rt, namespace or None, name)
        if live is not None:
            live.setdefault("apiVersion", rt.api_version)
            live.setdefault("kind", rt.kind)
            keep(rt, live)

    await asyncio.gather(
        *(
            listed(rt, {ns for ns, _ in objs})
            for rt, objs in by_kind.items()
            if len(objs) > _LIST_THRESHOLD
        )
    )
    await asyncio.gather(
        *(
            got(rt, ns, name)
            for rt, objs in by_kind.items()
            for ns, name in objs
            if (rt.api_version, rt.kind, ns, name) not in found
        )
    )
    return found


async def plan(
    dest: Destination,
    manifests: Sequence[Manifest],
    options: PlanOptions,
    cache: PlanCache | None = None,
    revision: str = "",
) -> Plan:
    """The ChangeSet of applying ``manifests`` (already built and validated) to ``dest``."""
    discovery = await dest.discovery()
    prepared = prepare(manifests, discovery, options)
    hpa_targets = _hpa_targets(prepared)
    inventory = await inventories.load(dest, options.app)
    live_by = await _read_live(
        dest,
        [
            (rt, str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]))
            for _, obj, rt in prepared
            if rt is not None
        ],
        options.app,
        options.concurrency,
    )
    changes = ChangeSet(revision=revision)
    objects: list[PlannedObject | None] = [None] * len(prepared)
    gate = asyncio.Semaphore(options.concurrency)

    async def one(
        index: int, manifest: Manifest, obj: dict[str, Any], rt: ResourceType | None
    ) -> None:
        key = manifest.key
        diff_options = diffing.DiffOptions(
            ignore=options.ignore,
            extra_ignore_pointers=("/spec/replicas",) if key in hpa_targets else (),
        )
        live = None
        if rt is not None:
            live = live_by.get((rt.api_version, rt.kind, key.namespace, key.name))
        desired = diffing.respect_ignored(obj, live, diff_options)
        entry = Entry(key, Action.UNCHANGED, manifest.api_version, manifest.origin)
        planned = PlannedObject(manifest, desired, rt, entry, live)
        objects[index] = planned
        if rt is None:  # its CRD comes with this build
            entry.action = Action.CREATED
            return
        fingerprint = digest(desired)
        live_version = str(((live or {}).get("metadata") or {}).get("resourceVersion") or "")
        if cache is not None and cache.unchanged.get(key) == (fingerprint, live_version):
            return
        async with gate:
            await _dry_run(dest, planned, options, cache)
        if entry.action is Action.FAILED:
            return
        if live is None:
            entry.action = Action.CREATED
            return
        assert planned.dry is not None
        secret = key.group == "" and key.kind == "Secret"
        changes_found = diffing.field_diff(live, planned.dry, diff_options, secret=secret)
        planned.manual = diffing.manual_additions(live, desired, diff_options)
        changes_found += [
            FieldChange(m.path, masked(m.value) if secret else m.value, None)
            for m in planned.manual
        ]
        if changes_found:
            entry.action = Action.CONFIGURED
            entry.diff = changes_found
            if planned.conflict:
                entry.message = planned.conflict
        elif cache is not None:
            cache.unchanged[key] = (fingerprint, live_version)

    await asyncio.gather(*(one(i, m, obj, rt) for i, (m, obj, rt) in enumerate(prepared)))
    planned_objects = [p for p in objects if p is not None]
    for planned in planned_objects:
        changes.add(planned.entry)
    desired_keys = {p.entry.key for p in planned_objects}
    prunes = await _prune_candidates(dest, discovery, inventory, desired_keys, options)
    for candidate in prunes:
        changes.add(candidate.entry)
    return Plan(options.app, changes, planned_objects, prunes, inventory, discovery)


async def _dry_run(
    dest: Destination, planned: PlannedObject, options: PlanOptions, cache: PlanCache | None
) -> None:
    """Fill ``planned.dry`` (or mark the entry failed / conflicting)."""
    assert planned.rt is not None
    if cache is not None:
        cache.dry_runs += 1
    try:
        planned.dry = await dest.apply(
            planned.rt, planned.desired, force=options.force, dry_run=True
        )
        return
    except ClusterError as exc:
        if exc.status == 409 and exc.reason == "Conflict":
            planned.conflict = exc.message
        elif exc.status == 404 and planned.live is None:
            # Its namespace (or, for a custom resource, its CRD) comes with this build.
            planned.entry.action = Action.CREATED
            return
        else:
            planned.entry.action = Action.FAILED
            planned.entry.message = exc.message
            return
    try:  # a conflict: what would forcing it give?
        planned.dry = await dest.apply(planned.rt, planned.desired, force=True, dry_run=True)
    except ClusterError as exc:
        planned.entry.action = Action.FAILED
        planned.entry.message = exc.message


async def _prune_candidates(
    dest: Destination,
    discovery: Discovery,
    inventory: inventories.Inventory,
    desired: set[ObjectKey],
    options: PlanOptions,
) -> list[PruneCandidate]:
    """Objects of the last inventory that the build no longer has and that still exist."""
    out: list[PruneCandidate] = []
    for key, api_version in inventory.objects.items():
        if key in desired:
            continue
        rt = discovery.lookup(api_version, key.kind) or discovery.preferred(key.group, key.kind)
        if rt is None:  # its kind is gone (a pruned CRD): nothing left to delete
            continue
        live = await dest.get(rt, key.namespace or None, key.name)
        if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
            continue
        entry = Entry(key, Action.PRUNED, api_version)
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        problem = (
            object_problem(
                options.project,
                cluster=options.cluster,
                group=key.group,
                kind=key.kind,
                namespaced=rt.namespaced,
                namespace=key.namespace,
            )
            if options.project is not None
            else None
        )
        if problem is not None:
            entry.action = Action.SKIPPED
            entry.message = f"not pruned: {problem}"
        elif annotations.get(PRUNE_ANNOTATION) == "disabled":
            entry.action = Action.SKIPPED
            entry.message = f"not pruned: annotation {PRUNE_ANNOTATION}=disabled"
        elif not options.prune:
            entry.action = Action.SKIPPED
            entry.message = "not in the revision any more; left in the cluster (prune is off)"
        out.append(PruneCandidate(key, api_version, rt, live, entry))
    return out
