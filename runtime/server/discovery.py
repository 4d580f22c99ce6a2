"""Discovery documents: ``/api``, ``/apis``, ``/apis/{group}``, ``/api/v1`` and
``/apis/{group}/{version}``, built from the resource registry (CRDs included) and
cached until the registry changes. Called by :mod:`runtime.server.app`.

The resource metrics group (``metrics.k8s.io``, served by :mod:`runtime.server.metrics`
rather than from the registry, as metrics-server's aggregated API is in Kubernetes) is
listed after the registry's groups, so ``kubectl top`` finds it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from runtime.api.registry import Registry, ResourceInfo
from runtime.server import metrics

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "binding": ["create"],
    "eviction": ["create"],
    "token": ["create"],
    "finalize": ["update"],
    "approval": ["get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
}


def _hash(info: ResourceInfo) -> str:
    raw = f"{info.group}/{info.effective_storage_version}/{info.kind}".encode()
    return base64.b64encode(hashlib.sha256(raw).digest()[:8]).decode()


def _resource_entries(info: ResourceInfo) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular_name,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        main["shortNames"] = list(info.short_names)
    if info.categories:
        main["categories"] = list(info.categories)
    if "get" in info.verbs:
        main["storageVersionHash"] = _hash(info)
    out = [main]
    for sub in sorted(info.subresources):
        entry: dict[str, Any] = {
            "name": f"{info.plural}/{sub}",
            "singularName": "",
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
        }
        if sub == "scale":
            entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        elif sub == "binding":
            entry["kind"] = "Binding"
        elif sub == "eviction":
            entry.update({"group": "policy", "version": "v1", "kind": "Eviction"})
        elif sub == "token":
            entry.update(
                {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
            )
        elif sub == "log":
            entry["kind"] = "Pod"
        elif sub == "exec":
            entry["kind"] = "PodExecOptions"
        elif sub == "attach":
            entry["kind"] = "PodAttachOptions"
        out.append(entry)
    return out


class Discovery:
    """Caches rendered discovery documents; call :meth:`invalidate` on registry change."""

    def __init__(self, registry: Registry, server_address: str) -> None:
        self.registry = registry
        self.server_address = server_address
        self._cache: dict[str, bytes | None] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def document(self, path: str) -> bytes | None:
        if path in self._cache:
            return self._cache[path]
        doc = self._build(path)
        data = orjson.dumps(doc) if doc is not None else None
        self._cache[path] = data
        return data

    def _build(self, path: str) -> dict[str, Any] | None:
        parts = [p for p in path.split("/") if p]
        groups = self.registry.groups()
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                ],
            }
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    *(self._group(g, groups[g]) for g in sorted(groups, key=_group_order) if g),
                    metrics.group_document(),
                ],
            }
        if parts == ["apis", metrics.GROUP]:
            return {"kind": "APIGroup", "apiVersion": "v1", **metrics.group_document()}
        if parts == ["apis", metrics.GROUP, metrics.VERSION]:
            return metrics.resource_list()
        if len(parts) == 2 and parts[0] == "apis":
            group = parts[1]
            if group not in groups or not group:
                return None
            doc = self._group(group, groups[group])
            doc.update({"kind": "APIGroup", "apiVersion": "v1"})
            return doc
        if len(parts) == 3 and parts[0] == "apis":
            group, version = parts[1], parts[2]
            if group not in groups or version not in groups[group][0]:
                return None
            return self._resource_list(group, version)
        return None

    @staticmethod
    def _group(group: str, entry: tuple[list[str], str]) -> dict[str, Any]:
        versions, preferred = entry
        return {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
        }

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for info in sorted(self.registry.in_group_version(group, version), key=lambda r: r.plural):
            resources.extend(_resource_entries(info))
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


_ORDER = [
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
]


def _group_order(group: str) -> tuple[int, str]:
    return (_ORDER.index(group), group) if group in _ORDER else (len(_ORDER), group)
