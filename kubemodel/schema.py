"""Kubernetes' OpenAPI definitions, as data.

The definitions come from the ``kubernetes-validate`` package, which ships the official
OpenAPI schema of each Kubernetes release with the ``x-kubernetes-patch-merge-key``,
``x-kubernetes-patch-strategy``, ``x-kubernetes-list-type`` and
``x-kubernetes-list-map-keys`` markers. Strategic merge patch, server-side apply,
validation helpers and ``/openapi/v2`` all read their structural knowledge from here
instead of from hand-written tables.

A schema *node* is a plain ``dict`` in OpenAPI form. Nodes may contain ``$ref``
pointers (``#/$defs/<name>``); :meth:`Schemas.resolve` follows them. Custom resources
get their nodes from their CRD's ``openAPIV3Schema`` (which has no refs), with
``metadata`` pointing at the built-in ``ObjectMeta`` definition (see
:meth:`Schemas.custom_root`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson

KUBERNETES_VERSION = "v1.35.0"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_REF_PREFIX = "#/$defs/"

Node = dict[str, Any]
_EMPTY: Node = {}


def _definitions_path() -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = base / f"{KUBERNETES_VERSION}-local" / "_definitions.json"
    if not path.exists():  # an older or newer package: take the newest release it has
        candidates = sorted(base.glob("v1.*-local/_definitions.json"))
        if not candidates:
            raise RuntimeError(f"kubernetes-validate has no schema definitions under {base}")
        path = candidates[-1]
    return path


class Schemas:
    """Lookup of definitions by name and by group/version/kind."""

    def __init__(self, definitions: dict[str, Node]) -> None:
        self.definitions = definitions
        self._by_gvk: dict[tuple[str, str, str], str] = {}
        for name, node in definitions.items():
            for gvk in node.get("x-kubernetes-group-version-kind", ()):
                key = (gvk["group"], gvk["version"], gvk["kind"])
                # Prefer the api.* definition over apimachinery duplicates (DeleteOptions…).
                self._by_gvk.setdefault(key, name)

    def definition_name(self, group: str, version: str, kind: str) -> str | None:
        return self._by_gvk.get((group, version, kind))

    def root(self, group: str, version: str, kind: str) -> Node | None:
        """The schema node of a built-in kind, or None when the kind is not built in."""
        name = self.definition_name(group, version, kind)
        return self.definitions[name] if name else None

    def resolve(self, node: Node | None) -> Node:
        """Follow ``$ref`` (also inside ``allOf`` of one element) until a concrete node."""
        seen = 0
        while node:
            ref = node.get("$ref")
            if ref is None:
                all_of = node.get("allOf")
                if all_of and len(all_of) == 1:
                    node = all_of[0]
                    continue
                return node
            node = self.definitions.get(ref[len(_REF_PREFIX) :], _EMPTY)
            seen += 1
            if seen > 64:
                raise RuntimeError(f"schema reference loop at {ref}")
        return _EMPTY

    def custom_root(self, openapi_v3: Node | None) -> Node:
        """A root node for a custom resource: its CRD schema, with standard metadata."""
        root = dict(openapi_v3 or {})
        props = dict(root.get("properties") or {})
        props["metadata"] = {"$ref": _REF_PREFIX + OBJECT_META}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        root["properties"] = props
        root.setdefault("type", "object")
        return root

    # --- navigation -----------------------------------------------------------------
    def prop(self, node: Node, name: str) -> Node | None:
        """The (resolved) schema of field ``name`` of an object node."""
        node = self.resolve(node)
        props = node.get("properties")
        if props is not None and name in props:
            return self.resolve(props[name])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return self.resolve(extra)
        return None

    def items(self, node: Node) -> Node | None:
        """The (resolved) schema of the elements of an array node."""
        node = self.resolve(node)
        items = node.get("items")
        return self.resolve(items) if isinstance(items, dict) else None

    def is_map(self, node: Node) -> bool:
        """True for a map with free keys (``additionalProperties``) and no fixed fields."""
        node = self.resolve(node)
        return "additionalProperties" in node and not node.get("properties")


def type_of(node: Node) -> str | None:
    """The node's JSON type ('object', 'array', 'string', ...), ignoring 'null'."""
    t = node.get("type")
    if isinstance(t, list):
        for candidate in t:
            if candidate != "null":
                return str(candidate)
        return None
    if t is None:
        if "properties" in node or "additionalProperties" in node:
            return "object"
        if "items" in node:
            return "array"
    return t if isinstance(t, str) else None


def list_type(node: Node) -> str | None:
    """``x-kubernetes-list-type``: 'atomic', 'set', 'map' or None."""
    value = node.get("x-kubernetes-list-type")
    return str(value) if value else None


def list_map_keys(node: Node) -> list[str]:
    keys = node.get("x-kubernetes-list-map-keys")
    if keys:
        return [str(k) for k in keys]
    merge_key = node.get("x-kubernetes-patch-merge-key")
    return [str(merge_key)] if merge_key and list_type(node) == "map" else []


def patch_merge_key(node: Node) -> str | None:
    value = node.get("x-kubernetes-patch-merge-key")
    return str(value) if value else None


def patch_strategies(node: Node) -> set[str]:
    """``x-kubernetes-patch-strategy`` split on commas (e.g. {'merge', 'retainKeys'})."""
    value = node.get("x-kubernetes-patch-strategy")
    return {s.strip() for s in str(value).split(",")} if value else set()


@functools.cache
def builtin() -> Schemas:
    """The process-wide schemas of the built-in kinds (loaded once, ~1.5 MB of JSON)."""
    data = orjson.loads(_definitions_path().read_bytes())
    return Schemas(data.get("$defs") or data.get("definitions") or {})
