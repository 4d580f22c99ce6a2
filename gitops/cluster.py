"""The reconciler's client to one destination cluster, through the Kubernetes API only.

The built-in cluster and a real one (k3s, EKS, GKE, AKS) are reached the same way: a
kubeconfig and a context (../shared/DESIGN.md, "the one boundary"). This module adds to
:mod:`kubeclient.rest` what the reconciler needs: discovery (which kinds the cluster
serves, their plural names and scope), server-side apply with our field manager (with
``dryRun=All`` for planning), deletion with a propagation policy, and errors mapped onto
:class:`gitops.errors.ClusterError` with their retry semantics.

Called by the planner (:mod:`gitops.plan`), the applier (:mod:`gitops.apply`), the
inventory (:mod:`gitops.inventory`) and health waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gitops.errors import ClusterError
from kubeclient.rest import (
    APPLY_PATCH,
    JSON_PATCH,
    Client,
    ClusterConfig,
    KubeError,
    load_kubeconfig,
)
from kubemodel.names import FIELD_MANAGER


@dataclass(frozen=True)
class ResourceType:
    """One kind the cluster serves at one version."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class Discovery:
    """The kinds a cluster serves, as its discovery documents list them."""

    def __init__(self, types: list[ResourceType], preferred: Mapping[str, str]) -> None:
        self._by_version: dict[tuple[str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for rt in types:
            self._by_version[(rt.api_version, rt.kind)] = rt
            current = self._by_kind.get((rt.group, rt.kind))
            if current is None or preferred.get(rt.group) == rt.version:
                self._by_kind[(rt.group, rt.kind)] = rt
        self.types = types

    def lookup(self, api_version: str, kind: str) -> ResourceType | None:
        """The resource serving exactly this apiVersion and kind, if the cluster has it."""
        return self._by_version.get((api_version, kind))

    def known(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._by_version

    def preferred(self, group: str, kind: str) -> ResourceType | None:
        """The resource of this group and kind at the group's preferred version."""
        return self._by_kind.get((group, kind))


def _error(exc: KubeError, what: str) -> ClusterError:
    message = exc.message or exc.reason or "request failed"
    return ClusterError(f"{what}: {message}", status=exc.status, reason=exc.reason)


class Destination:
    """An open connection to one cluster. Use as ``async with Destination(config) as d``."""

    def __init__(self, config: ClusterConfig, *, name: str = "", connections: int = 32) -> None:
        self.config = config
        self.name = name or config.server
        self.client = Client(config, connections=connections, timeout=60.0)
        self._discovery: Discovery | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> Destination:
        try:
            config = load_kubeconfig(path, context)
        except (OSError, ValueError, KeyError) as exc:
            raise ClusterError(f"kubeconfig {path}: {exc}", retryable=False) from None
        config.user_agent = "gitops-reconciler"
        label = f"{path}" + (f" (context {context})" if context else "")
        return cls(config, name=label)

    @property
    def impersonate(self) -> str | None:
        """The user every request impersonates (None: the kubeconfig's own identity)."""
        return self.config.impersonate or None

    @impersonate.setter
    def impersonate(self, user: str | None) -> None:
        self.config.impersonate = user or ""
        if user:
            self.name = f"{self.name.split(' as ', 1)[0]} as {user}"

    async def __aenter__(self) -> Destination:
        await self.client.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    # --- discovery ----------------------------------------------------------------
    async def discovery(self, *, refresh: bool = False) -> Discovery:
        """The served kinds, read once and kept until ``refresh`` (after CRDs are added)."""
        async with self._lock:
            if self._discovery is None or refresh:
                self._discovery = await self._discover()
            return self._discovery

    async def _discover(self) -> Discovery:
        try:
            core = await self.client.request("GET", "/api")
            groups = await self.client.request("GET", "/apis")
        except KubeError as exc:
            raise _error(exc, f"discovery of {self.name}") from None
        paths: list[tuple[str, str, str]] = [
            ("", v, f"/api/{v}") for v in (core or {}).get("versions") or []
        ]
        preferred: dict[str, str] = {"": "v1"}
        for group in (groups or {}).get("groups") or []:
            name = str(group.get("name") or "")
            preferred[name] = str((group.get("preferredVersion") or {}).get("version") or "")
            for version in group.get("versions") or []:
                v = str(version.get("version") or "")
                paths.append((name, v, f"/apis/{name}/{v}"))

        async def resources(group: str, version: str, path: str) -> list[ResourceType]:
            try:
                doc = await self.client.request("GET", path)
            except KubeError as exc:
                if exc.status in (404, 503):  # an aggregated API that is down: skip it
                    return []
                raise _error(exc, f"discovery of {path}") from None
            out = []
            for res in (doc or {}).get("resources") or []:
                plural = str(res.get("name") or "")
                if not plural or "/" in plural:
                    continue
                out.append(
                    ResourceType(
                        group,
                        version,
                        str(res.get("kind") or ""),
                        plural,
                        bool(res.get("namespaced")),
                        frozenset(res.get("verbs") or ()),
                    )
                )
            return out

        found = await asyncio.gather(*(resources(*p) for p in paths))
        return Discovery([rt for chunk in found for rt in chunk], preferred)

    # --- objects ------------------------------------------------------------------
    @staticmethod
    def _ns(rt: ResourceType, namespace: str | None) -> str | None:
        return namespace if rt.namespaced else None

    async def get(
        self, rt: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        try:
            return await self.client.get(rt.api_version, rt.plural, name, self._ns(rt, namespace))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise _error(exc, f"get {rt.kind} {name}") from None

    async def list_objects(
        self, rt: ResourceType, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """All objects of a type (in one namespace, or everywhere), and the list's
        resourceVersion. Pages through ``limit``/``continue``."""
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        items: list[dict[str, Any]] = []
        version = ""
        while True:
            try:
                page = await self.client.list(
                    rt.api_version, rt.plural, self._ns(rt, namespace), **params
                )
            except KubeError as exc:
                raise _error(exc, f"list {rt.plural}") from None
            kind = rt.kind
            for item in page.get("items") or []:
                item.setdefault("apiVersion", rt.api_version)  # list items omit these
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue")
            if not token:
                return items, version
            params["continue"] = str(token)

    async def apply(
        self,
        rt: ResourceType,
        obj: Mapping[str, Any],
        *,
        force: bool = False,
        dry_run: bool = False,
        manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` (created when absent); ``dry_run`` returns the object
        as it would be without persisting anything."""
        meta = obj.get("metadata") or {}
        params = {"fieldManager": manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        try:
            return await self.client.patch(
                rt.api_version,
                rt.plural,
                str(meta.get("name")),
                orjson.dumps(obj),
                self._ns(rt, str(meta.get("namespace") or "") or None),
                content_type=APPLY_PATCH,
                **params,
            )
        except KubeError as exc:
            raise _error(exc, f"apply {rt.kind} {meta.get('name')}") from None

    async def json_patch(
        self, rt: ResourceType, namespace: str | None, name: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        try:
            return await self.client.patch(
                rt.api_version,
                rt.plural,
                name,
                operations,
                self._ns(rt, namespace),
                content_type=JSON_PATCH,
                fieldManager=FIELD_MANAGER,
            )
        except KubeError as exc:
            raise _error(exc, f"patch {rt.kind} {name}") from None

    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        uid: str = "",
    ) -> bool:
        """Delete an object; False when it was already gone. ``uid`` guards against
        deleting a namespace-mate recreated under the same name since it was read."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.client.delete(
                rt.api_version, rt.plural, name, self._ns(rt, namespace), body=body
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise _error(exc, f"delete {rt.kind} {name}") from None
        return True

    async def create(
        self, rt: ResourceType, obj: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        try:
            return await self.client.create(rt.api_version, rt.plural, obj, self._ns(rt, namespace))
        except KubeError as exc:
            if exc.already_exists:
                raise ClusterError(
                    f"{rt.kind} {(obj.get('metadata') or {}).get('name')} already exists",
                    status=409,
                    reason="AlreadyExists",
                    retryable=True,
                ) from None
            raise _error(exc, f"create {rt.kind}") from None

    async def replace(
        self, rt: ResourceType, obj: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        name = str((obj.get("metadata") or {}).get("name"))
        try:
            return await self.client.replace(
                rt.api_version, rt.plural, name, obj, self._ns(rt, namespace)
            )
        except KubeError as exc:
            raise _error(exc, f"update {rt.kind} {name}") from None
