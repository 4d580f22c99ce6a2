"""The garbage collector: deletes objects whose owners are gone, and carries out the
``Foreground`` and ``Orphan`` propagation policies — kube-controller-manager's
``pkg/controller/garbagecollector``.

Who runs it: the controller manager (``--controllers garbagecollector``). With it
enabled, ``gitops cluster up`` turns on the API server's garbage-collection mode
(``ApiOptions.garbage_collection``): deleting with ``propagationPolicy=Orphan`` or
``Foreground`` then leaves the owner in place with the ``orphan`` or
``foregroundDeletion`` finalizer, which this controller removes once its work is done.

Kubernetes semantics followed:

- Discovery finds every resource that can be listed, watched and deleted (custom
  resources included, events excluded), again every ``garbagecollector.resync-period``
  seconds and whenever a CustomResourceDefinition changes; one metadata-only informer
  per resource (``as=PartialObjectMetadata``, as Kubernetes' metadata informers), in an
  informer factory and HTTP client of the collector's own, so that its ~50 watches
  neither hold full objects nor take the shared client's connections.
- The graph builder keeps nodes keyed by uid with their ownerReferences and dependents.
  An owner referenced before being observed is a *virtual* node; it is checked with a
  live GET (by the dependent's namespace for namespaced kinds) and, when absent or with
  another uid, removed as if deleted, so its dependents are collected.
- ``attemptToDelete`` of an item: GET it live, classify its owners as *solid*,
  *dangling* (404 or uid mismatch) or *waiting for dependents deletion* (being deleted
  with ``foregroundDeletion``). With a solid owner, references to dangling/waiting owners
  are removed; with a waiting owner and dependents of its own, the item is deleted in
  Foreground (after unblocking its owner references when a dependent is itself deleting
  dependents, to break cycles); otherwise it is deleted with the policy its own
  finalizers ask for (Background by default). Deletes carry a uid precondition.
- An owner being deleted with ``foregroundDeletion`` has its dependents deleted; the
  finalizer is removed once no dependent references it with ``blockOwnerDeletion``.
- An owner with ``orphan`` has its references removed from all dependents, then the
  finalizer removed.
- A namespaced dependent's namespaced owner is looked up in the dependent's namespace
  (an owner in another namespace is absent, with an ``OwnerRefInvalidNamespace``
  warning); a cluster-scoped dependent naming a namespaced kind is unresolvable: it is
  never collected, and the same warning is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubeclient.factory import InformerFactory
from kubeclient.informer import Informer, wait_synced
from kubeclient.rest import Client, KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
#: Resources the garbage collector never watches (Kubernetes' DefaultIgnoredResources).
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events")})
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


# --- discovery ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiResource:
    """One resource of one served group/version, from the discovery documents."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str]
    preferred: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


async def discover(client: Client) -> tuple[list[ApiResource], list[str]]:
    """Every resource of every served group/version (subresources left out), and the
    group/versions whose discovery failed (``group/version: error``)."""
    found: list[ApiResource] = []
    failed: list[str] = []
    versions: list[tuple[str, str, bool]] = []
    core = await client.request("GET", "/api")
    versions += [("", str(v), v == "v1") for v in (core or {}).get("versions") or []]
    groups = await client.request("GET", "/apis")
    for group in (groups or {}).get("groups") or []:
        preferred = ((group.get("preferredVersion") or {}).get("version")) or ""
        for v in group.get("versions") or []:
            versions.append((str(group["name"]), str(v["version"]), v["version"] == preferred))
    for group_name, version, preferred in versions:
        path = f"/apis/{group_name}/{version}" if group_name else f"/api/{version}"
        try:
            doc = await client.request("GET", path)
        except KubeError as exc:
            failed.append(f"{group_name}/{version}: {exc}")
            continue
        for res in (doc or {}).get("resources") or []:
            name = str(res.get("name") or "")
            if not name or "/" in name:
                continue
            found.append(
                ApiResource(
                    group=group_name,
                    version=version,
                    plural=name,
                    kind=str(res.get("kind") or ""),
                    namespaced=bool(res.get("namespaced")),
                    verbs=frozenset(str(v) for v in res.get("verbs") or []),
                    preferred=preferred,
                )
            )
    return found, failed


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


class RestMapper:
    """(apiVersion, kind) -> resource, from discovery (an unserved version of a served
    group falls back to the group's preferred version)."""

    def __init__(self, resources: Iterable[ApiResource] = ()) -> None:
        self.exact: dict[tuple[str, str], ApiResource] = {}
        self.by_group_kind: dict[tuple[str, str], ApiResource] = {}
        for r in resources:
            self.exact[(r.api_version, r.kind)] = r
            if r.preferred or (r.group, r.kind) not in self.by_group_kind:
                self.by_group_kind[(r.group, r.kind)] = r

    def lookup(self, api_version: str, kind: str) -> ApiResource | None:
        found = self.exact.get((api_version, kind))
        if found is None:
            found = self.by_group_kind.get((group_of(api_version), kind))
        return found


def collectable(resources: Iterable[ApiResource]) -> list[ApiResource]:
    """The resources the collector watches: preferred versions that support list, watch
    and delete, minus the ignored ones (Kubernetes' GetDeletableResources)."""
    return [
        r
        for r in resources
        if r.preferred
        and {"list", "watch", "delete"} <= r.verbs
        and (r.group, r.plural) not in IGNORED
    ]


# --- the graph ----------------------------------------------------------------------------
@dataclass
class Node:
    """One object (or a not yet observed owner: ``virtual``) of the dependency graph."""

    uid: str
    api_version: str
    kind: str
    namespace: str
    name: str
    owners: list[Obj] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    virtual: bool = False
    being_deleted: bool = False
    finalizers: frozenset[str] = frozenset()

    @property
    def deleting_dependents(self) -> bool:
        return self.being_deleted and FOREGROUND in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.being_deleted and ORPHAN in self.finalizers


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def owner_refs(obj: Mapping[str, Any]) -> list[Obj]:
    return [dict(r) for r in _meta(obj).get("ownerReferences") or [] if r.get("uid")]


class Graph:
    """The owner -> dependents graph (Kubernetes' GraphBuilder.uidToNode). Its methods
    return the uids to enqueue: ``(attempt_to_delete, attempt_to_orphan)``."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def observe(
        self, obj: Mapping[str, Any], api_version: str, kind: str
    ) -> tuple[set[str], set[str]]:
        """An object (of the resource ``api_version``/``kind``: metadata-only objects
        do not say) was added or updated."""
        meta = _meta(obj)
        uid = str(meta.get("uid") or "")
        to_delete: set[str] = set()
        to_orphan: set[str] = set()
        if not uid:
            return to_delete, to_orphan
        refs = owner_refs(obj)
        node = self.nodes.get(uid)
        old_refs: list[Obj] = []
        if node is None:
            node = Node(uid, api_version, kind, "", "")
            self.nodes[uid] = node
        else:
            old_refs = node.owners
        node.api_version = api_version
        node.kind = kind
        node.namespace = str(meta.get("namespace") or "")
        node.name = str(meta.get("name") or "")
        if node.virtual and node.namespace:
            # Dependents in other namespaces referenced a namespaced owner that is not
            # theirs: the owner is absent for them.
            for dep_uid in node.dependents:
                dep = self.nodes.get(dep_uid)
                if dep is not None and dep.namespace != node.namespace:
                    to_delete.add(dep_uid)
        node.virtual = False
        node.owners = refs
        node.being_deleted = bool(meta.get("deletionTimestamp"))
        node.finalizers = frozenset(str(f) for f in meta.get("finalizers") or [])
        old_by_uid = {str(r["uid"]): r for r in old_refs}
        new_by_uid = {str(r["uid"]): r for r in refs}
        for owner_uid, ref in new_by_uid.items():
            owner = self.nodes.get(owner_uid)
            if owner is None:
                owner = Node(
                    owner_uid,
                    str(ref.get("apiVersion") or ""),
                    str(ref.get("kind") or ""),
                    node.namespace,
                    str(ref.get("name") or ""),
                    virtual=True,
                )
                self.nodes[owner_uid] = owner
                to_delete.add(owner_uid)  # verify the owner exists
            elif not owner.virtual and owner.namespace and owner.namespace != node.namespace:
                # A namespaced owner in another namespace: absent for this dependent.
                to_delete.add(uid)
            owner.dependents.add(uid)
            old = old_by_uid.get(owner_uid)
            if owner.deleting_dependents and (
                old is not None
                and old.get("blockOwnerDeletion")
                and not ref.get("blockOwnerDeletion")
            ):
                to_delete.add(owner_uid)  # one blocker fewer
        for owner_uid in old_by_uid.keys() - new_by_uid.keys():
            owner = self.nodes.get(owner_uid)
            if owner is None:
                continue
            owner.dependents.discard(uid)
            if owner.deleting_dependents:
                to_delete.add(owner_uid)
            self._drop_if_unused_virtual(owner)
        if node.orphaning:
            to_orphan.add(uid)
        elif node.deleting_dependents:
            to_delete.add(uid)
            to_delete |= node.dependents
        return to_delete, to_orphan

    def forget(self, uid: str) -> set[str]:
        """An object was deleted (or a virtual owner found absent): its dependents and
        the owners waiting for it are to be looked at."""
        node = self.nodes.pop(uid, None)
        if node is None:
            return set()
        to_delete = set(node.dependents)
        for ref in node.owners:
            owner = self.nodes.get(str(ref["uid"]))
            if owner is None:
                continue
            owner.dependents.discard(uid)
            if owner.deleting_dependents:
                to_delete.add(owner.uid)
            self._drop_if_unused_virtual(owner)
        return to_delete

    def _drop_if_unused_virtual(self, node: Node) -> None:
        if node.virtual and not node.dependents:
            self.nodes.pop(node.uid, None)

    def blocking_dependents(self, owner_uid: str) -> list[Node]:
        """Dependents whose reference to the owner has blockOwnerDeletion set."""
        owner = self.nodes.get(owner_uid)
        if owner is None:
            return []
        out = []
        for dep_uid in owner.dependents:
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            for ref in dep.owners:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    out.append(dep)
                    break
        return out


# --- decisions (pure) -----------------------------------------------------------------------
SOLID = "solid"
DANGLING = "dangling"
WAITING = "waiting"


@dataclass
class Decision:
    """What attemptToDelete does with an item."""

    #: Owner uids whose references are removed from the item (patch), or None.
    remove_refs: list[str] | None = None
    #: Set blockOwnerDeletion=false on the item's references before deleting it.
    unblock: bool = False
    #: Delete the item with this propagation policy, or None.
    delete_policy: str | None = None


def decide(
    owner_states: Mapping[str, str],
    *,
    has_dependents: bool,
    dependent_deleting_dependents: bool,
    finalizers: Iterable[str],
) -> Decision:
    """Kubernetes' attemptToDeleteItem once the owners are classified (uid -> state)."""
    solid = [u for u, s in owner_states.items() if s == SOLID]
    dangling = [u for u, s in owner_states.items() if s == DANGLING]
    waiting = [u for u, s in owner_states.items() if s == WAITING]
    if solid:
        if dangling or waiting:
            return Decision(remove_refs=dangling + waiting)
        return Decision()
    if waiting and has_dependents:
        return Decision(unblock=dependent_deleting_dependents, delete_policy="Foreground")
    fins = set(finalizers)
    if ORPHAN in fins:
        policy = "Orphan"
    elif FOREGROUND in fins:
        policy = "Foreground"
    else:
        policy = "Background"
    return Decision(delete_policy=policy)


# --- the controller ---------------------------------------------------------------------------
class GarbageCollector:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder("garbage-collector-controller")
        self.resync_period = ctx.setting("garbagecollector.resync-period", 30.0)
        self.workers = ctx.setting("garbagecollector.workers", 4)
        self.graph = Graph()
        self.mapper = RestMapper()
        self.attempt_to_delete = WorkQueue()
        self.attempt_to_orphan = WorkQueue()
        self.watched: dict[tuple[str, str], Informer] = {}
        self._rediscover = asyncio.Event()
        # The collector's informers only need metadata (as Kubernetes' metadata
        # informers): they list and watch PartialObjectMetadata through a client of their
        # own, whose connection pool the ~50 long-lived watches cannot exhaust for the
        # other components.
        config = ctx.client.config
        self.meta_client = Client(
            dataclasses.replace(
                config, extra_headers={**config.extra_headers, "Accept": METADATA_ACCEPT}
            ),
            connections=0,
        )
        self.informers = InformerFactory(self.meta_client)

    # --- event handlers (graph builder) ---------------------------------------------
    def _on_upsert(self, obj: Obj, resource: ApiResource) -> None:
        to_delete, to_orphan = self.graph.observe(obj, resource.api_version, resource.kind)
        for uid in to_delete:
            self.attempt_to_delete.add(uid)
        for uid in to_orphan:
            self.attempt_to_orphan.add(uid)

    def _on_delete(self, obj: Obj) -> None:
        for uid in self.graph.forget(str(_meta(obj).get("uid") or "")):
            self.attempt_to_delete.add(uid)

    def _watch(self, resource: ApiResource) -> Informer:
        informer = self.informers.informer(resource.api_version, resource.plural)
        informer.on(
            add=lambda obj: self._on_upsert(obj, resource),
            update=lambda _old, new: self._on_upsert(new, resource),
            delete=self._on_delete,
        )
        if (resource.group, resource.plural) == CRDS:
            informer.on(
                add=lambda _o: self._rediscover.set(),
                update=lambda _o, _n: self._rediscover.set(),
                delete=lambda _o: self._rediscover.set(),
            )
        return informer

    async def _sync_resources(self) -> list[Informer]:
        """Discover resources; watch the new ones. Returns the informers it started."""
        resources, failed = await discover(self.client)
        if failed:
            log.warning("garbagecollector.discovery_failed", failed=failed)
        self.mapper = RestMapper(resources)
        started = []
        for resource in collectable(resources):
            key = (resource.api_version, resource.plural)
            if key not in self.watched:
                self.watched[key] = self._watch(resource)
                started.append(self.watched[key])
        return started

    async def run(self) -> None:
        # Fresh state on every (re)start: the manager restarts a crashed controller.
        self.graph = Graph()
        self.watched = {}
        self.attempt_to_delete = WorkQueue()
        self.attempt_to_orphan = WorkQueue()
        self.informers = InformerFactory(self.meta_client)
        await self.meta_client.open()
        tasks: list[asyncio.Task[None]] = []
        try:
            while True:
                try:
                    started = await self._sync_resources()
                    break
                except KubeError as exc:
                    log.warning("garbagecollector.discovery_failed", error=str(exc))
                    await asyncio.sleep(1.0)
            self.informers.start()
            await wait_synced(*started, timeout=120.0)
            tasks = [
                asyncio.create_task(
                    run_workers(
                        self.attempt_to_delete,
                        self.process_attempt_to_delete,
                        workers=self.workers,
                        name="garbagecollector-delete",
                    )
                ),
                asyncio.create_task(
                    run_workers(
                        self.attempt_to_orphan,
                        self.process_attempt_to_orphan,
                        workers=1,
                        name="garbagecollector-orphan",
                    )
                ),
            ]
            await self._resync_loop()
        finally:
            self.attempt_to_delete.shutdown()
            self.attempt_to_orphan.shutdown()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.informers.stop()
            await self.meta_client.close()

    async def _resync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_period):
                    await self._rediscover.wait()
            self._rediscover.clear()
            try:
                started = await self._sync_resources()
                if started:
                    await wait_synced(*started, timeout=60.0)
            except (KubeError, TimeoutError) as exc:
                log.warning("garbagecollector.resync_failed", error=str(exc))

    # --- API helpers --------------------------------------------------------------------
    def _resource(self, api_version: str, kind: str) -> ApiResource:
        found = self.mapper.lookup(api_version, kind)
        if found is None:
            # Maybe a custom resource discovery has not seen yet: retried with backoff.
            self._rediscover.set()
            raise LookupError(f"no resource for {api_version} {kind}")
        return found

    async def _get(self, node: Node) -> Obj | None:
        """The live object of a node, or None when absent or with another uid."""
        res = self._resource(node.api_version, node.kind)
        try:
            obj = await self.client.get(
                res.api_version, res.plural, node.name, node.namespace if res.namespaced else None
            )
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        if _meta(obj).get("uid") != node.uid:
            return None
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return obj

    async def _update_meta(self, node: Node, mutate: Callable[[Obj], bool]) -> None:
        """GET the object, let ``mutate`` edit its metadata (True when changed) and PUT
        it back with its resourceVersion; conflicts start over."""
        res = self._resource(node.api_version, node.kind)
        ns = node.namespace if res.namespaced else None
        for _ in range(10):
            try:
                obj = await self.client.get(res.api_version, res.plural, node.name, ns)
            except KubeError as exc:
                if exc.not_found:
                    return
                raise
            if _meta(obj).get("uid") != node.uid:
                return
            obj = copy.deepcopy(obj)
            if not mutate(obj["metadata"]):
                return
            try:
                await self.client.replace(res.api_version, res.plural, node.name, obj, ns)
                return
            except KubeError as exc:
                if exc.not_found:
                    return
                if not exc.conflict:
                    raise
        raise KubeError(409, "Conflict", f"{node.kind} {node.name}: too many conflicts")

    async def _delete(self, node: Node, policy: str) -> None:
        res = self._resource(node.api_version, node.kind)
        try:
            await self.client.delete(
                res.api_version,
                res.plural,
                node.name,
                node.namespace if res.namespaced else None,
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "preconditions": {"uid": node.uid},
                    "propagationPolicy": policy,
                },
            )
        except KubeError as exc:
            if exc.not_found or exc.conflict:  # gone, or replaced by another object
                return
            raise

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        def mutate(meta: Obj) -> bool:
            fins = list(meta.get("finalizers") or [])
            if finalizer not in fins:
                return False
            meta["finalizers"] = [f for f in fins if f != finalizer]
            return True

        await self._update_meta(node, mutate)

    # --- attemptToDelete ------------------------------------------------------------------
    async def process_attempt_to_delete(self, uid: str) -> None:
        node = self.graph.nodes.get(uid)
        if node is None:
            return
        if node.virtual:
            await self._check_virtual(node)
            return
        if node.being_deleted and not node.deleting_dependents:
            return
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return
        latest = await self._get(node)
        if latest is None:
            for dep in self.graph.forget(uid):
                self.attempt_to_delete.add(dep)
            return
        refs = owner_refs(latest)
        if not refs:
            return
        states: dict[str, str] = {}
        for ref in refs:
            states[str(ref["uid"])] = await self._classify(latest, ref)
        if all(s == "unresolvable" for s in states.values()):
            return
        states = {u: s for u, s in states.items() if s != "unresolvable"}
        dependents = [self.graph.nodes[d] for d in node.dependents if d in self.graph.nodes]
        decision = decide(
            states,
            has_dependents=bool(dependents),
            dependent_deleting_dependents=any(d.deleting_dependents for d in dependents),
            finalizers=_meta(latest).get("finalizers") or [],
        )
        if decision.remove_refs:
            gone = set(decision.remove_refs)

            def drop(meta: Obj) -> bool:
                before = list(meta.get("ownerReferences") or [])
                after = [r for r in before if r.get("uid") not in gone]
                if len(after) == len(before):
                    return False
                meta["ownerReferences"] = after
                return True

            log.debug("garbagecollector.remove_refs", item=node.name, owners=sorted(gone))
            await self._update_meta(node, drop)
            return
        if decision.delete_policy is None:
            return
        if decision.unblock:

            def unblock(meta: Obj) -> bool:
                changed = False
                for ref in meta.get("ownerReferences") or []:
                    if ref.get("blockOwnerDeletion"):
                        ref["blockOwnerDeletion"] = False
                        changed = True
                return changed

            await self._update_meta(node, unblock)
        log.info(
            "garbagecollector.delete",
            kind=node.kind,
            namespace=node.namespace,
            name=node.name,
            policy=decision.delete_policy,
        )
        await self._delete(node, decision.delete_policy)

    async def _classify(self, item: Obj, ref: Mapping[str, Any]) -> str:
        """solid / dangling / waiting / unresolvable, with a live GET of the owner."""
        res = self._resource(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        item_ns = str(_meta(item).get("namespace") or "")
        if res.namespaced and not item_ns:
            self.recorder.event(
                item,
                "Warning",
                "OwnerRefInvalidNamespace",
                "GarbageCollect",
                f'ownerRef {ref} does not exist in namespace "" '
                "(a cluster-scoped object cannot have a namespaced owner)",
            )
            return "unresolvable"
        ns = item_ns if res.namespaced else ""
        try:
            owner = await self.client.get(
                res.api_version, res.plural, str(ref.get("name") or ""), ns or None
            )
        except KubeError as exc:
            if not exc.not_found:
                raise
            owner = None
        if owner is None or _meta(owner).get("uid") != ref.get("uid"):
            known = self.graph.nodes.get(str(ref.get("uid")))
            if known is not None and not known.virtual and known.namespace != ns:
                self.recorder.event(
                    item,
                    "Warning",
                    "OwnerRefInvalidNamespace",
                    "GarbageCollect",
                    f'ownerRef {dict(ref)} does not exist in namespace "{ns}"',
                )
            return DANGLING
        meta = _meta(owner)
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            return WAITING
        return SOLID

    async def _check_virtual(self, node: Node) -> None:
        """A referenced owner never observed: if it does not exist (with that uid), act
        as if it had been deleted (Kubernetes' virtual delete event)."""
        res = self._resource(node.api_version, node.kind)
        if res.namespaced and not node.namespace:
            return  # unresolvable: reported on the dependents
        live = await self._get(node)
        if live is not None:
            return  # exists: its informer will report it
        for dep in self.graph.forget(node.uid):
            self.attempt_to_delete.add(dep)

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = self.graph.blocking_dependents(node.uid)
        if not blocking:
            log.info("garbagecollector.foreground_done", kind=node.kind, name=node.name)
            await self._remove_finalizer(node, FOREGROUND)
            return
        for dep in blocking:
            if not dep.being_deleted:
                self.attempt_to_delete.add(dep.uid)

    # --- attemptToOrphan ------------------------------------------------------------------
    async def process_attempt_to_orphan(self, uid: str) -> None:
        node = self.graph.nodes.get(uid)
        if node is None or not node.orphaning:
            return
        for dep_uid in list(node.dependents):
            dep = self.graph.nodes.get(dep_uid)
            if dep is None or dep.virtual:
                continue

            def drop(meta: Obj) -> bool:
                before = list(meta.get("ownerReferences") or [])
                after = [r for r in before if r.get("uid") != uid]
                if len(after) == len(before):
                    return False
                meta["ownerReferences"] = after
                return True

            await self._update_meta(dep, drop)
        log.info("garbagecollector.orphaned", kind=node.kind, name=node.name)
        await self._remove_finalizer(node, ORPHAN)
