"""Label and field selectors, parsed once and matched many times.

Label selectors follow Kubernetes' grammar (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x,y)``, ``a``, ``!a``, ``a>1``, ``a<1``, comma-joined). Field selectors support
``=``, ``==`` and ``!=`` over the fields each resource exposes (``metadata.name``,
``metadata.namespace`` everywhere, plus per-kind fields such as ``spec.nodeName`` or
``involvedObject.name``); :func:`selectable_fields` extracts them from an object at write
time so matching a watch event never re-parses the object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubemodel.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(_KEY)
_VALUE_RE = re.compile(_VALUE)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "=":
            return labels.get(self.key) == self.values[0]
        if op == "!=":
            return labels.get(self.key) != self.values[0]
        if op == "in":
            return self.key in labels and labels[self.key] in self.values
        if op == "notin":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if value is None:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == "gt" else have < want


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


EVERYTHING = LabelSelector()


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str, text: str) -> str:
    if not key or not _KEY_RE.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE_RE.fullmatch(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query parameter; raises a 400 ApiError when malformed."""
    if not text or not text.strip():
        return EVERYTHING
    reqs: list[Requirement] = []
    for part in _split_top(text):
        m = _SET_RE.match(part)
        if m:
            key = _check_key(m.group(1), text)
            values = tuple(
                _check_value(v.strip(), text) for v in m.group(3).split(",") if v.strip()
            )
            reqs.append(Requirement(key, m.group(2), values))
            continue
        for token, op in (("!=", "!="), ("==", "="), ("=", "="), (">", "gt"), ("<", "lt")):
            if token in part:
                key, _, value = part.partition(token)
                key, value = key.strip(), value.strip()
                _check_key(key, text)
                if op in ("gt", "lt") and not value.lstrip("-").isdigit():
                    raise bad_request(f"unable to parse requirement: {value!r} is not an integer")
                reqs.append(Requirement(key, op, (_check_value(value, text),)))
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(_check_key(part[1:].strip(), text), "!exists"))
            else:
                reqs.append(Requirement(_check_key(part, text), "exists"))
    return LabelSelector(tuple(reqs))


def from_label_selector_object(sel: Mapping[str, Any] | None) -> LabelSelector | None:
    """Convert a ``metav1.LabelSelector`` object; None means "matches nothing" (nil)."""
    if sel is None:
        return None
    reqs = [Requirement(str(k), "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in sel.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            raise bad_request(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(
            Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ()))
        )
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(r.field, "") == r.value) == r.equal for r in self.requirements)

    def exact(self, name: str) -> str | None:
        """The value the selector requires ``name`` to equal, if any (for index lookups)."""
        for r in self.requirements:
            if r.field == name and r.equal:
                return r.value
        return None


NO_FIELDS = FieldSelector()


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str | None, allowed: frozenset[str]) -> FieldSelector:
    """Parse a ``fieldSelector``; fields not in ``allowed`` are a 400 as in Kubernetes."""
    if not text or not text.strip():
        return NO_FIELDS
    reqs: list[FieldRequirement] = []
    for part in re.split(r"(?<!\\),", text):
        part = part.strip()
        if not part:
            continue
        operator = next((t for t in ("!=", "==", "=") if t in part), None)
        if operator is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, _, value = part.partition(operator)
        name = name.strip()
        equal = operator != "!="
        if name not in allowed:
            raise bad_request(f"field label not supported: {name}")
        reqs.append(FieldRequirement(name, _unescape(value.strip()), equal))
    return FieldSelector(tuple(reqs))


# --- selectable fields per resource ---------------------------------------------------


def _get(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _paths(*paths: str) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    def extract(obj: Mapping[str, Any]) -> dict[str, str]:
        return {p: _text(_get(obj, p)) for p in paths}

    return extract


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    out = _paths(*(f for f in _POD_FIELDS if f != "status.podIPs"))(obj)
    ips = (obj.get("status") or {}).get("podIPs") or []
    out["status.podIPs"] = ",".join(str(i.get("ip", "")) for i in ips if isinstance(i, Mapping))
    if out["spec.hostNetwork"] == "":
        out["spec.hostNetwork"] = "false"
    return out


def _event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    out = _paths(*(f for f in _EVENT_FIELDS if f != "source"))(obj)
    out["source"] = _text(_get(obj, "source.component")) or _text(obj.get("reportingComponent"))
    return out


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
# resource -> (selectable field names, extractor); simple ones read their paths directly.
_SIMPLE: dict[str, tuple[str, ...]] = {
    "core/secrets": ("type",),
    "core/nodes": ("spec.unschedulable",),
    "core/namespaces": ("status.phase",),
    "core/services": ("spec.clusterIP", "spec.type"),
    "core/replicationcontrollers": ("status.replicas",),
    "core/persistentvolumeclaims": ("spec.storageClassName", "spec.volumeName"),
    "apps/replicasets": ("status.replicas",),
    "batch/jobs": ("status.successful",),
    "certificates.k8s.io/certificatesigningrequests": ("spec.signerName",),
}
_EXTRACTORS: dict[str, Callable[[Mapping[str, Any]], dict[str, str]]] = {
    "core/pods": _pod_fields,
    "core/events": _event_fields,
    **{res: _paths(*paths) for res, paths in _SIMPLE.items()},
}
_EXTRA_NAMES: dict[str, frozenset[str]] = {
    "core/pods": frozenset(_POD_FIELDS),
    "core/events": frozenset(_EVENT_FIELDS),
    **{res: frozenset(paths) for res, paths in _SIMPLE.items()},
}
_BASE = frozenset({"metadata.name", "metadata.namespace"})


def allowed_fields(store_key: str, custom_fields: tuple[str, ...] = ()) -> frozenset[str]:
    return _BASE | _EXTRA_NAMES.get(store_key, frozenset()) | frozenset(custom_fields)


def selectable_fields(
    store_key: str, obj: Mapping[str, Any], custom_fields: tuple[str, ...] = ()
) -> dict[str, str]:
    """The field-selector values of ``obj`` (metadata.name/namespace always included)."""
    meta = obj.get("metadata") or {}
    out = {
        "metadata.name": _text(meta.get("name")),
        "metadata.namespace": _text(meta.get("namespace")),
    }
    extractor = _EXTRACTORS.get(store_key)
    if extractor is not None:
        out.update(extractor(obj))
    for path in custom_fields:
        out[path] = _text(_get(obj, path.lstrip(".")))
    return out
