"""The namespace controller: empties a namespace being deleted, reports progress in its
status conditions, then removes the ``kubernetes`` finalizer so the API server deletes
it — kube-controller-manager's ``pkg/controller/namespace``.

Who runs it: the controller manager (``--controllers namespace``).

Kubernetes semantics followed: deleting a Namespace sets its deletionTimestamp and
phase ``Terminating`` (done by the API server, which also refuses new content in it).
For a namespace being deleted whose ``spec.finalizers`` still hold ``kubernetes``, the
controller discovers every namespaced resource that can be listed and deleted, deletes
its objects (``deletecollection`` where served, else one by one, with Background
propagation), lists what remains, and writes the conditions
NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
NamespaceDeletionContentFailure, NamespaceContentRemaining and
NamespaceFinalizersRemaining (False with the "all good" reasons, True with what went
wrong). While content remains it tries again (pods waiting for their grace period,
objects waiting for finalizers); once empty it PUTs ``namespaces/{name}/finalize``
without ``kubernetes``.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubeclient.informer import Informer
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import now_rfc3339
from runtime.controllers.garbagecollector import ApiResource, discover
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

FINALIZER = "kubernetes"
#: (type, ok reason, ok message, failure reason) in Kubernetes' order.
CONDITIONS = (
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
        "DiscoveryFailed",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
        "GroupVersionParsingFailed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
        "ContentDeletionFailed",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
        "SomeResourcesRemain",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
        "SomeFinalizersRemain",
    ),
)


@dataclass
class Progress:
    """What one pass over a namespace's content found."""

    discovery_failures: list[str] = field(default_factory=list)
    delete_failures: list[str] = field(default_factory=list)
    #: group-resource -> objects remaining.
    remaining: dict[str, int] = field(default_factory=dict)
    #: finalizer -> objects carrying it.
    finalizers: Counter[str] = field(default_factory=Counter)
    #: Seconds until the remaining content is expected to go (pods' grace periods).
    estimate: int = 0

    @property
    def done(self) -> bool:
        return not (self.discovery_failures or self.delete_failures or self.remaining)


def conditions(progress: Progress, previous: list[Mapping[str, Any]], now: str) -> list[Obj]:
    """The namespace's deletion conditions for ``progress`` (lastTransitionTime kept
    when a condition's status does not change)."""
    failures: dict[str, str] = {}
    if progress.discovery_failures:
        failures["NamespaceDeletionDiscoveryFailure"] = (
            f"Discovery failed for some groups, {len(progress.discovery_failures)} failing: "
            + ", ".join(progress.discovery_failures)
        )
    if progress.delete_failures:
        failures["NamespaceDeletionContentFailure"] = (
            f"Failed to delete all resource types, {len(progress.delete_failures)} remaining: "
            + ", ".join(progress.delete_failures)
        )
    if progress.remaining:
        failures["NamespaceContentRemaining"] = "Some resources are remaining: " + ", ".join(
            f"{gr} has {n} resource instances" for gr, n in sorted(progress.remaining.items())
        )
    if progress.finalizers:
        failures["NamespaceFinalizersRemaining"] = (
            "Some content in the namespace has finalizers remaining: "
            + ", ".join(
                f"{f} in {n} resource instances" for f, n in sorted(progress.finalizers.items())
            )
        )
    old = {str(c.get("type")): c for c in previous}
    out: list[Obj] = []
    for kind, ok_reason, ok_message, bad_reason in CONDITIONS:
        bad = kind in failures
        cond: Obj = {
            "type": kind,
            "status": "True" if bad else "False",
            "reason": bad_reason if bad else ok_reason,
            "message": failures[kind] if bad else ok_message,
        }
        before = old.get(kind)
        same = before is not None and before.get("status") == cond["status"]
        cond["lastTransitionTime"] = (
            str(before.get("lastTransitionTime") or now) if same and before else now
        )
        out.append(cond)
    return out


class NamespaceController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder("namespace-controller")
        self.workers = ctx.setting("namespace.workers", 2)
        #: Seconds between passes while content remains (at least; pods' grace periods
        #: lengthen it as Kubernetes' estimate does).
        self.requeue = ctx.setting("namespace.requeue-seconds", 1.0)
        self.queue = WorkQueue()
        self.namespaces: Informer = ctx.informers.informer("v1", "namespaces")
        self.namespaces.on(add=self._enqueue, update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.queue.add(str(meta.get("name")))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name="namespace")

    async def sync(self, name: str) -> None:
        try:
            ns = await self.client.get("v1", "namespaces", name)
        except KubeError as exc:
            if exc.not_found:
                return
            raise
        meta = ns.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        progress = await self.delete_content(name)
        ns = await self._write_conditions(ns, progress)
        if not progress.done:
            delay = max(self.requeue, progress.estimate / 2 + 1 if progress.estimate else 0)
            log.debug("namespace.content_remaining", namespace=name, remaining=progress.remaining)
            self.queue.add_after(name, delay)
            return
        await self._finalize(ns)

    async def delete_content(self, namespace: str) -> Progress:
        progress = Progress()
        try:
            resources, failed = await discover(self.client)
        except KubeError as exc:
            progress.discovery_failures.append(str(exc))
            return progress
        progress.discovery_failures += failed
        for res in resources:
            if not (res.preferred and res.namespaced and {"list", "delete"} <= res.verbs):
                continue
            try:
                await self._delete_resource(res, namespace, progress)
            except KubeError as exc:
                if exc.not_found:  # a custom resource removed meanwhile
                    continue
                progress.delete_failures.append(f"{_group_resource(res)}: {exc}")
        return progress

    async def _delete_resource(self, res: ApiResource, namespace: str, progress: Progress) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if "deletecollection" in res.verbs:
            await self.client.request(
                "DELETE",
                _path(res, namespace),
                body=options,
            )
        else:
            listed = await self.client.list(res.api_version, res.plural, namespace)
            for item in listed.get("items") or []:
                meta = item.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(
                        res.api_version, res.plural, str(meta.get("name")), namespace, body=options
                    )
                except KubeError as exc:
                    if not exc.not_found:
                        raise
        left = (await self.client.list(res.api_version, res.plural, namespace)).get("items") or []
        if not left:
            return
        progress.remaining[_group_resource(res)] = len(left)
        for item in left:
            meta = item.get("metadata") or {}
            for fin in meta.get("finalizers") or []:
                progress.finalizers[str(fin)] += 1
            if res.group == "" and res.plural == "pods":
                grace = int(meta.get("deletionGracePeriodSeconds") or 0)
                progress.estimate = max(progress.estimate, grace)

    async def _write_conditions(self, ns: Obj, progress: Progress) -> Obj:
        status = ns.get("status") or {}
        new_conditions = conditions(progress, status.get("conditions") or [], now_rfc3339())
        if _strip_times(new_conditions) == _strip_times(status.get("conditions") or []):
            return ns
        updated = copy.deepcopy(ns)
        updated.setdefault("status", {})["conditions"] = new_conditions
        name = str((ns.get("metadata") or {}).get("name"))
        try:
            out: Obj = await self.client.replace(
                "v1", "namespaces", name, updated, subresource="status"
            )
        except KubeError as exc:
            if exc.not_found:
                return ns
            raise
        return out

    async def _finalize(self, ns: Obj) -> None:
        name = str((ns.get("metadata") or {}).get("name"))
        updated = copy.deepcopy(ns)
        spec = updated.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        try:
            await self.client.replace("v1", "namespaces", name, updated, subresource="finalize")
        except KubeError as exc:
            if exc.not_found:
                return
            raise
        log.info("namespace.finalized", namespace=name)


def _group_resource(res: ApiResource) -> str:
    return f"{res.plural}.{res.group}" if res.group else res.plural


def _path(res: ApiResource, namespace: str) -> str:
    base = f"/apis/{res.api_version}" if res.group else f"/api/{res.api_version}"
    return f"{base}/namespaces/{namespace}/{res.plural}"


def _strip_times(conds: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds]
