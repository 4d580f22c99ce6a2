"""Custom resources: structural defaulting, pruning and OpenAPI schema validation.

A custom resource is checked against its CRD version's ``openAPIV3Schema`` the way the
API server's kube-openapi validator does it, and the failures are worded as
``kubeOpenAPIResultToFieldErrors`` renders them, e.g.::

    spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"
    spec.size: Unsupported value: "huge": supported values: "small", "large"
    spec.x: Required value

:func:`default` applies, in Kubernetes' order: dropping ``null`` from non-nullable fields
that have no default, the schema's ``default`` values (recursively, so defaults inside a
defaulted object apply too), then pruning of fields the schema does not declare (unless
``x-kubernetes-preserve-unknown-fields``). ``apiVersion``, ``kind`` and ``metadata`` are
kept at the root and at every ``x-kubernetes-embedded-resource``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause
from runtime.api.registry import ResourceInfo

from ._causes import (
    Go,
    duplicate,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
    type_invalid,
)
from .meta import validate_object_meta

Node = dict[str, Any]
_RESOURCE_ROOT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _schema(info: ResourceInfo) -> Node | None:
    custom = info.custom
    schema = custom.schema if custom is not None else None
    return schema if isinstance(schema, dict) else None


# --- defaulting and pruning ------------------------------------------------------------
def _nullable(node: Node) -> bool:
    return node.get("nullable") is True


def _drop_non_nullable_nulls(value: Any, node: Node) -> None:
    if isinstance(value, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for key in [k for k, v in value.items() if v is None]:
                prop = props.get(key)
                if isinstance(prop, dict) and not _nullable(prop) and "default" not in prop:
                    del value[key]
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not _nullable(extra) and "default" not in extra:
            known = props if isinstance(props, dict) else {}
            for key in [k for k, v in value.items() if v is None and k not in known]:
                del value[key]
        for key, child in value.items():
            sub = _child_schema(node, key)
            if sub is not None:
                _drop_non_nullable_nulls(child, sub)
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for child in value:
                _drop_non_nullable_nulls(child, items)


def _child_schema(node: Node, key: str) -> Node | None:
    props = node.get("properties")
    if isinstance(props, dict):
        prop = props.get(key)
        if isinstance(prop, dict):
            return prop
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None


def apply_defaults(value: Any, node: Node) -> None:
    if isinstance(value, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for key, prop in props.items():
                if not isinstance(prop, dict) or "default" not in prop:
                    continue
                if key not in value or (value[key] is None and not _nullable(prop)):
                    value[key] = copy.deepcopy(prop["default"])
        for key, child in value.items():
            sub = _child_schema(node, key)
            if sub is not None:
                apply_defaults(child, sub)
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for i, child in enumerate(value):
                if child is None and "default" in items and not _nullable(items):
                    value[i] = copy.deepcopy(items["default"])
                else:
                    apply_defaults(child, items)


def prune(value: Any, node: Node, is_resource_root: bool = False) -> None:
    """Drop what the schema does not declare, as ``structuralpruning.Prune`` does."""
    if isinstance(value, dict):
        found = node.get("properties")
        props: dict[str, Any] = found if isinstance(found, dict) else {}
        extra = node.get("additionalProperties")
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = is_resource_root or node.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if key in props and isinstance(props[key], dict):
                if not (embedded and key == "metadata"):
                    prune(value[key], props[key])
            elif embedded and key in _RESOURCE_ROOT_FIELDS:
                continue
            elif isinstance(extra, dict):
                prune(value[key], extra)
            elif extra is True or preserve:
                continue
            else:
                del value[key]
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            for child in value:
                prune(child, items)


def default(info: ResourceInfo, obj: dict[str, Any]) -> None:
    schema = _schema(info)
    if schema is None:
        return
    _drop_non_nullable_nulls(obj, schema)
    apply_defaults(obj, schema)
    custom = info.custom
    if custom is not None and not custom.preserve_unknown:
        prune(obj, schema, is_resource_root=True)


# --- validation ------------------------------------------------------------------------
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def _type_matches(declared: str, value: Any) -> bool:
    actual = _json_type(value)
    if declared == actual:
        return True
    if declared == "number" and actual == "integer":
        return True
    return declared == "integer" and isinstance(value, float) and value.is_integer()


def _num_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


FormatCheck = Callable[[str], bool]
_FORMAT_CHECKS: dict[str, FormatCheck] = {}


def _format(name: str) -> Callable[[FormatCheck], FormatCheck]:
    def register(fn: FormatCheck) -> FormatCheck:
        _FORMAT_CHECKS[name] = fn
        return fn

    return register


_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
).fullmatch


@_format("date-time")
def _is_date_time(value: str) -> bool:
    if not _DATE_TIME(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


@_format("date")
def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


@_format("uuid")
def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


@_format("byte")
def _is_byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@_format("ipv4")
def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


@_format("ipv6")
def _is_ipv6(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
    except ValueError:
        return False


@_format("cidr")
def _is_cidr(value: str) -> bool:
    return names.is_valid_cidr(value)


@_format("hostname")
def _is_hostname(value: str) -> bool:
    return not names.is_dns1123_subdomain(value.lower())


@_format("email")
def _is_email(value: str) -> bool:
    return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


_DURATION = re.compile(r"[-+]?(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+|0").fullmatch


@_format("duration")
def _is_duration(value: str) -> bool:
    return _DURATION(value) is not None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


class _Validator:
    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: list[Cause] = []

    def type_error(self, path: str, value: Any, declared: str) -> None:
        actual = _json_type(value)
        self.out.append(
            type_invalid(
                path, actual, f"{path} in body must be of type {declared}: {json.dumps(actual)}"
            )
        )

    def check(self, value: Any, node: Node, path: str) -> None:
        if value is None:
            if _nullable(node):
                return
            declared = node.get("type")
            if isinstance(declared, str) and declared:
                self.out.append(
                    type_invalid(path, "null", f'{path} in body must be of type {declared}: "null"')
                )
            return
        declared = node.get("type")
        if node.get("x-kubernetes-int-or-string") is True:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self.type_error(path, value, "integer,string")
                return
        elif isinstance(declared, str) and declared:
            if not _type_matches(declared, value):
                self.type_error(path, value, declared)
                return
        elif node.get("x-kubernetes-embedded-resource") is True and not isinstance(value, dict):
            self.type_error(path, value, "object")
            return
        self._values(value, node, path)
        if isinstance(value, dict):
            self._object(value, node, path)
        elif isinstance(value, list):
            self._array(value, node, path)

    def _values(self, value: Any, node: Node, path: str) -> None:
        enum = node.get("enum")
        if isinstance(enum, list) and value not in enum:
            allowed = [e if isinstance(e, str) else json.dumps(e) for e in enum]
            self.out.append(
                not_supported(
                    path,
                    value if not isinstance(value, (dict, list)) else Go(json.dumps(value)),
                    allowed,
                )
            )
        if isinstance(value, str):
            self._string(value, node, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(value, node, path)
        for key in ("allOf", "anyOf", "oneOf"):
            subs = node.get(key)
            if isinstance(subs, list) and subs:
                self._combinator(key, subs, value, path)
        negated = node.get("not")
        if isinstance(negated, dict):
            sub = _Validator()
            sub.check(value, negated, path)
            if not sub.out:
                self.out.append(
                    invalid(
                        path,
                        value if not isinstance(value, (dict, list)) else "",
                        f"{path} in body must not validate the schema (not)",
                    )
                )

    def _combinator(self, key: str, subs: list[Any], value: Any, path: str) -> None:
        results = []
        for sub_node in subs:
            if isinstance(sub_node, dict):
                sub = _Validator()
                sub.check(
                    value, {**sub_node, "nullable": True} if value is None else sub_node, path
                )
                results.append(sub.out)
        passed = sum(1 for r in results if not r)
        shown = value if not isinstance(value, (dict, list)) else ""
        if key == "allOf":
            for r in results:
                self.out.extend(r)
        elif key == "anyOf" and passed == 0:
            for r in results:
                self.out.extend(r)
            self.out.append(
                invalid(path, shown, f"{path} in body must validate at least one schema (anyOf)")
            )
        elif key == "oneOf" and passed != 1:
            if passed == 0:
                for r in results:
                    self.out.extend(r)
            self.out.append(
                invalid(
                    path, shown, f"{path} in body must validate one and only one schema (oneOf)"
                )
            )

    def _string(self, value: str, node: Node, path: str) -> None:
        max_length = node.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            self.out.append(too_long(path, max_length))
        min_length = node.get("minLength")
        if isinstance(min_length, int) and len(value) < min_length:
            self.out.append(
                invalid(path, value, f"{path} in body should be at least {min_length} chars long")
            )
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            compiled = _regex(pattern)
            if compiled is not None and compiled.search(value) is None:
                self.out.append(invalid(path, value, f"{path} in body should match '{pattern}'"))
        fmt = node.get("format")
        if isinstance(fmt, str):
            check = _FORMAT_CHECKS.get(fmt)
            if check is not None and not check(value):
                self.out.append(
                    type_invalid(
                        path, value, f"{path} in body must be of type {fmt}: {json.dumps(value)}"
                    )
                )

    def _number(self, value: float, node: Node, path: str) -> None:
        minimum = node.get("minimum")
        if isinstance(minimum, (int, float)) and not isinstance(minimum, bool):
            if node.get("exclusiveMinimum") is True:
                if value <= minimum:
                    self.out.append(
                        invalid(
                            path,
                            value,
                            f"{path} in body should be greater than {_num_text(minimum)}",
                        )
                    )
            elif value < minimum:
                self.out.append(
                    invalid(
                        path,
                        value,
                        f"{path} in body should be greater than or equal to {_num_text(minimum)}",
                    )
                )
        maximum = node.get("maximum")
        if isinstance(maximum, (int, float)) and not isinstance(maximum, bool):
            if node.get("exclusiveMaximum") is True:
                if value >= maximum:
                    self.out.append(
                        invalid(
                            path, value, f"{path} in body should be less than {_num_text(maximum)}"
                        )
                    )
            elif value > maximum:
                self.out.append(
                    invalid(
                        path,
                        value,
                        f"{path} in body should be less than or equal to {_num_text(maximum)}",
                    )
                )
        multiple = node.get("multipleOf")
        if isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and multiple > 0:
            quotient = value / multiple
            if abs(quotient - round(quotient)) > 1e-9:
                self.out.append(
                    invalid(
                        path, value, f"{path} in body should be a multiple of {_num_text(multiple)}"
                    )
                )

    def _array(self, value: list[Any], node: Node, path: str) -> None:
        max_items = node.get("maxItems")
        if isinstance(max_items, int) and len(value) > max_items:
            self.out.append(too_many(path, len(value), max_items))
        min_items = node.get("minItems")
        if isinstance(min_items, int) and len(value) < min_items:
            self.out.append(
                invalid(path, len(value), f"{path} in body should have at least {min_items} items")
            )
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    self.out.append(
                        duplicate(
                            f"{path}[{i}]",
                            item if not isinstance(item, (dict, list)) else Go(json.dumps(item)),
                        )
                    )
                seen.append(item)
        elif list_type == "map":
            keys = [str(k) for k in node.get("x-kubernetes-list-map-keys") or []]
            seen_keys: list[tuple[Any, ...]] = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = tuple(item.get(k) for k in keys)
                if key in seen_keys:
                    shown = (
                        "map[string]interface {}{"
                        + ", ".join(f'"{k}":{json.dumps(item.get(k))}' for k in keys)
                        + "}"
                    )
                    self.out.append(duplicate(f"{path}[{i}]", Go(shown)))
                seen_keys.append(key)
        items = node.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.check(item, items, f"{path}[{i}]")

    def _object(self, value: dict[str, Any], node: Node, path: str) -> None:
        max_props = node.get("maxProperties")
        if isinstance(max_props, int) and len(value) > max_props:
            self.out.append(too_many(path, len(value), max_props))
        min_props = node.get("minProperties")
        if isinstance(min_props, int) and len(value) < min_props:
            self.out.append(
                invalid(path, "", f"{path} in body should have at least {min_props} properties")
            )
        prefix = f"{path}." if path else ""
        for name in node.get("required") or ():
            if isinstance(name, str) and name not in value:
                self.out.append(required(prefix + name))
        if node.get("x-kubernetes-embedded-resource") is True:
            for key in ("apiVersion", "kind"):
                if not value.get(key):
                    self.out.append(required(prefix + key, "must not be empty"))
            meta = value.get("metadata")
            if meta is not None and not isinstance(meta, dict):
                self.type_error(prefix + "metadata", meta, "object")
        props = node.get("properties")
        props = props if isinstance(props, dict) else {}
        extra = node.get("additionalProperties")
        for key in sorted(value):
            child = value[key]
            sub = props.get(key)
            if isinstance(sub, dict):
                if not path and key == "metadata":
                    continue
                self.check(child, sub, prefix + key)
            elif isinstance(extra, dict):
                self.check(child, extra, prefix + key)
            elif extra is False and key not in _RESOURCE_ROOT_FIELDS:
                self.out.append(
                    invalid(prefix + key, "", f"{prefix + key} in body is a forbidden property")
                )


def validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    meta = obj.get("metadata")
    out = validate_object_meta(
        meta,
        info.namespaced,
        names.name_is_dns_subdomain,
        kube_finalizers=False,
        check_name=old is None,
    )
    schema = _schema(info)
    if schema is not None:
        validator = _Validator()
        body = {k: v for k, v in obj.items() if k not in ("metadata",)}
        validator.check(body, {**schema, "x-kubernetes-embedded-resource": False}, "")
        out.extend(validator.out)
    if not obj.get("apiVersion"):
        out.append(required("apiVersion", "must not be empty"))
    if not obj.get("kind"):
        out.append(required("kind", "must not be empty"))
    return out
