"""Decoding checks for built-in kinds: unknown fields and wrong JSON types.

kube-apiserver decodes request bodies into typed Go structs, which silently drops
unknown fields (reported as warnings, or as errors under ``fieldValidation=Strict``)
and rejects values of the wrong JSON type. This module does the same against the
official OpenAPI definitions. Called by :mod:`runtime.api.objects` on every write of a
built-in kind; custom resources are pruned by their CRD schema in admission instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubemodel.schema import Node, Schemas, type_of

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_JSON_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
}


@dataclass
class DecodeReport:
    unknown: list[str] = field(default_factory=list)  # paths like "spec.foo"
    type_errors: list[str] = field(default_factory=list)


def _ref_name(node: Node) -> str:
    ref = node.get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else ""


def _matches(value: Any, want: str) -> bool:
    if want == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want == "string":
        return isinstance(value, str)
    if want == "boolean":
        return isinstance(value, bool)
    if want == "object":
        return isinstance(value, dict)
    if want == "array":
        return isinstance(value, list)
    return True


def check(schemas: Schemas, root: Node, obj: dict[str, Any], *, prune: bool = True) -> DecodeReport:
    """Walk ``obj`` along its schema; drop unknown fields (when ``prune``) and report."""
    report = DecodeReport()
    _walk(schemas, root, obj, "", report, prune)
    return report


def _walk(
    schemas: Schemas, node: Node, value: Any, path: str, report: DecodeReport, prune: bool
) -> None:
    if value is None:
        return
    name = _ref_name(node)
    if name in (_INT_OR_STRING, _QUANTITY):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            report.type_errors.append(
                f"{path or '.'}: expected string or number, got {_JSON_NAMES.get(type(value), '?')}"
            )
        return
    resolved = schemas.resolve(node)
    want = type_of(resolved)
    if want is None:
        return  # free-form (RawExtension, JSON) fields
    if not _matches(value, want):
        got = _JSON_NAMES.get(type(value), type(value).__name__)
        report.type_errors.append(f"{path or '.'}: expected {want}, got {got}")
        return
    if want == "object":
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        for key in list(value):
            child_path = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(schemas, props[key], value[key], child_path, report, prune)
            elif isinstance(extra, dict):
                _walk(schemas, extra, value[key], child_path, report, prune)
            elif extra is True or (props is None and extra is None):
                continue
            else:
                report.unknown.append(child_path)
                if prune:
                    del value[key]
    elif want == "array":
        items = resolved.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _walk(schemas, items, item, f"{path}[{i}]", report, prune)
