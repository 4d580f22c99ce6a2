"""Causes worded as Kubernetes' ``field.Error`` values render them.

``kubemodel.errors`` has the common constructors; this module adds the ones admission
needs beyond them (a ``Required value`` with a detail, ``Too many``, ``Not found``) and
renders the *bad value* of an ``Invalid``/``Duplicate``/``Unsupported`` cause the way Go
prints it: strings quoted, numbers and booleans bare, and composite values (label maps,
selectors, structs) in Go's ``%#v`` form, e.g. ``map[string]string{"app":"web"}``.
Pass a :class:`Go` to print a pre-rendered value verbatim.
"""

from __future__ import annotations

import json
from typing import Any

from kubemodel.errors import Cause


class Go(str):
    """A value already rendered in Go syntax (printed without quotes)."""

    __slots__ = ()


def show(value: Any) -> str:
    if isinstance(value, Go):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, dict):
        return go_map(value)
    if isinstance(value, list):
        return go_slice(value)
    return json.dumps(str(value))


def _num(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def go_str(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def go_map(value: dict[str, Any] | None) -> str:
    """``map[string]string{"a":"b"}`` (Go sorts map keys when printing)."""
    if value is None:
        return "map[string]string(nil)"
    inner = ", ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value))
    return "map[string]string{" + inner + "}"


def go_slice(value: list[Any] | None, elem: str = "string") -> str:
    if value is None:
        return f"[]{elem}(nil)"
    return "[]" + elem + "{" + ", ".join(show(v) for v in value) + "}"


def go_selector(sel: Any) -> Go:
    """A ``*metav1.LabelSelector`` as the API server prints it (``v1.LabelSelector{...}``)."""
    if not isinstance(sel, dict):
        return Go("null")
    labels = sel.get("matchLabels")
    exprs = sel.get("matchExpressions")
    ml = go_map(labels) if isinstance(labels, dict) else "map[string]string(nil)"
    if isinstance(exprs, list) and exprs:
        parts = []
        for e in exprs:
            e = e if isinstance(e, dict) else {}
            vals = e.get("values")
            parts.append(
                "v1.LabelSelectorRequirement{Key:"
                + go_str(e.get("key", ""))
                + ", Operator:"
                + go_str(e.get("operator", ""))
                + ", Values:"
                + (go_slice(vals) if isinstance(vals, list) else "[]string(nil)")
                + "}"
            )
        me = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        me = "[]v1.LabelSelectorRequirement(nil)"
    return Go(f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")


def go_labels(labels: Any) -> Go:
    return Go(go_map(labels if isinstance(labels, dict) else None))


def go_int_or_string(value: Any) -> Go:
    """``intstr.IntOrString`` prints through its ``String()`` method: bare."""
    if isinstance(value, bool) or value is None:
        return Go(show(value))
    return Go(str(value) if not isinstance(value, float) else _num(value))


# --- constructors --------------------------------------------------------------------
def required(path: str, detail: str = "") -> Cause:
    msg = "Required value: " + detail if detail else "Required value"
    return Cause("FieldValueRequired", msg, path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    msg = f"Invalid value: {show(value)}: {detail}" if detail else f"Invalid value: {show(value)}"
    return Cause("FieldValueInvalid", msg, path)


def type_invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {show(value)}: {detail}", path)


def not_supported(path: str, value: Any, allowed: list[str] | tuple[str, ...]) -> Cause:
    msg = f"Unsupported value: {show(value)}"
    if allowed:
        msg += ": supported values: " + ", ".join(json.dumps(a) for a in allowed)
    return Cause("FieldValueNotSupported", msg, path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", "Forbidden: " + detail if detail else "Forbidden", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {show(value)}", path)


def not_found(path: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {show(value)}", path)


def too_long(path: str, limit: int) -> Cause:
    unit = "byte" if limit == 1 else "bytes"
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} {unit}", path)


def too_many(path: str, actual: int, limit: int) -> Cause:
    return Cause("FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items", path)


def immutable(path: str, value: Any) -> Cause:
    return invalid(path, value, "field is immutable")


NEGATIVE = "must be greater than or equal to 0"


def nonnegative(path: str, value: Any) -> list[Cause]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, NEGATIVE)]
    return []


def inclusive_range(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"
