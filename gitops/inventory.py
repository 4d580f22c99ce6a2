"""What an Application owns in its destination, kept in the destination itself.

Prune deletes what left the inventory, so the inventory must outlive the reconciler's
own state (a CI runner, a fresh ``gitops serve``, another machine): like Flux's
inventory, it lives in the cluster, as a ConfigMap ``gitops-inventory-<app>`` in the
``gitops-system`` namespace (created on first save). Its data holds the objects as JSON
(group, kind, namespace, name, and the apiVersion they were applied with) and the
revision last applied.

Identity is the object key, not the file it came from: moving an object to another file
changes nothing. Every Application applies with one field manager, so renaming an
Application re-labels its objects instead of deleting and recreating them (the old
inventory is left behind, and nothing prunes from it).

Called by :mod:`gitops.plan` (prune candidates) and :mod:`gitops.apply` (save).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gitops.cluster import Destination, ResourceType
from gitops.errors import ClusterError
from gitops.manifest import APP_LABEL, ObjectKey

NAMESPACE = "gitops-system"
_CONFIGMAP = ResourceType("", "v1", "ConfigMap", "configmaps", True)
_NAMESPACE = ResourceType("", "v1", "Namespace", "namespaces", False)


def configmap_name(app: str) -> str:
    return f"gitops-inventory-{app}"


@dataclass
class Inventory:
    """The objects an Application applied, with the apiVersion each was applied with."""

    objects: dict[ObjectKey, str] = field(default_factory=dict)
    revision: str = ""
    resource_version: str = ""
    """Of the ConfigMap, for optimistic concurrency on save ('' = not saved yet)."""

    def encode(self) -> dict[str, str]:
        rows = [
            {
                "group": k.group,
                "kind": k.kind,
                "namespace": k.namespace,
                "name": k.name,
                "apiVersion": v,
            }
            for k, v in sorted(self.objects.items())
        ]
        return {"objects": orjson.dumps(rows).decode(), "revision": self.revision}

    @classmethod
    def decode(cls, data: dict[str, Any], resource_version: str = "") -> Inventory:
        try:
            rows = orjson.loads(data.get("objects") or "[]")
            objects = {
                ObjectKey(r["group"], r["kind"], r["namespace"], r["name"]): str(r["apiVersion"])
                for r in rows
            }
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ClusterError(
                f"the inventory ConfigMap is corrupt ({exc}); refusing to prune from it",
                retryable=False,
            ) from None
        return cls(objects, str(data.get("revision") or ""), resource_version)


async def load(dest: Destination, app: str) -> Inventory:
    """The Application's inventory in ``dest`` (empty when it has none yet)."""
    live = await dest.get(_CONFIGMAP, NAMESPACE, configmap_name(app))
    if live is None:
        return Inventory()
    return Inventory.decode(
        live.get("data") or {}, str((live.get("metadata") or {}).get("resourceVersion") or "")
    )


async def save(dest: Destination, app: str, inventory: Inventory) -> None:
    """Write the inventory (creating the namespace and the ConfigMap when missing)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(app),
            "namespace": NAMESPACE,
            "labels": {APP_LABEL: app},
        },
        "data": inventory.encode(),
    }
    if inventory.resource_version:
        body["metadata"]["resourceVersion"] = inventory.resource_version
        saved = await dest.replace(_CONFIGMAP, body, NAMESPACE)
    else:
        if await dest.get(_NAMESPACE, None, NAMESPACE) is None:
            try:
                await dest.create(
                    _NAMESPACE,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                )
            except ClusterError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        saved = await dest.create(_CONFIGMAP, body, NAMESPACE)
    inventory.resource_version = str((saved.get("metadata") or {}).get("resourceVersion") or "")
