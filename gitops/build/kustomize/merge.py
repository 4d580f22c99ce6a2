"""Strategic merge as kustomize applies it (kyaml's merge2), for patches.

Used by :mod:`.patches`. kustomize does not run apimachinery's server-side strategic
merge: it merges client side, walking the patch with the OpenAPI schema of the
built-in kinds (:mod:`kubemodel.schema`). The differences that show in output are the
order of merged associative lists (the patch's elements first, in patch order, then the
original elements the patch did not mention) and that ``null`` values inside new
content are dropped. Kinds the schema does not know (custom resources) merge maps and
replace lists. Directives: ``$patch: delete`` (element or map), ``$patch: replace``,
``$retainKeys``/``$setElementOrder`` are accepted and ignored as kyaml does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubemodel.schema import Node, Schemas, patch_merge_key, patch_strategies

_DELETE = object()


@dataclass(frozen=True)
class _Field:
    node: Node | None
    merge: bool
    key: str


def _field(schemas: Schemas, node: Node | None, name: str) -> _Field:
    if not node:
        return _Field(None, False, "")
    resolved = schemas.resolve(node)
    raw = (resolved.get("properties") or {}).get(name)
    if raw is None and isinstance(resolved.get("additionalProperties"), dict):
        raw = resolved["additionalProperties"]
    if raw is None:
        return _Field(None, False, "")
    child = schemas.resolve(raw) or None
    strategies = patch_strategies(raw) or (patch_strategies(child) if child else set())
    key = patch_merge_key(raw) or (patch_merge_key(child) if child else None) or ""
    return _Field(child, "merge" in strategies, key)


def _clean(value: Any) -> Any:
    """New content: directives and nulls dropped."""
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if v is not None and not str(k).startswith("$")
        }
    if isinstance(value, list):
        return [
            _clean(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    return value


def merge(schemas: Schemas, node: Node | None, dest: Any, patch: Any) -> Any:
    """``patch`` merged into ``dest`` (neither is changed); ``_DELETE`` removes."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return _DELETE
        if directive == "replace" or not isinstance(dest, dict):
            return _clean(patch)
        result = dict(dest)
        for key, value in patch.items():
            if str(key).startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
                continue
            field = _field(schemas, node, key)
            if key in result:
                merged = (
                    _merge_list(schemas, field, result[key], value)
                    if isinstance(value, list)
                    else merge(schemas, field.node, result[key], value)
                )
            else:
                merged = _clean(value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    return _clean(patch)


def _identity(item: Any, key: str) -> Any:
    """The merge key's value of a list element, or None when it cannot be one (a list or a
    mapping written as a name matches nothing)."""
    if not isinstance(item, dict):
        return None
    value = item.get(key)
    return value if isinstance(value, str | int | float | bool) else None


def _merge_list(schemas: Schemas, field: _Field, dest: Any, patch: list[Any]) -> Any:
    key = field.key
    if not (
        field.merge
        and key
        and isinstance(dest, list)
        and all(_identity(item, key) is not None for item in patch)
    ):
        return _clean(patch)
    item_node = schemas.items(field.node) if field.node else None
    by_key = {_identity(item, key): item for item in dest if _identity(item, key) is not None}
    seen: set[Any] = set()
    result: list[Any] = []
    for item in patch:
        identity = item[key]
        seen.add(identity)
        if item.get("$patch") == "delete":
            continue
        if identity in by_key:
            merged = merge(schemas, item_node, by_key[identity], item)
            if merged is not _DELETE:
                result.append(merged)
        else:
            result.append(_clean(item))
    result.extend(item for item in dest if _identity(item, key) not in seen)
    return result
