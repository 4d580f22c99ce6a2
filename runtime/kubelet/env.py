"""A container's environment, computed as Kubernetes' kubelet computes it
(``makeEnvironmentVariables`` in pkg/kubelet/kubelet_pods.go), and the downward API
values shared with downwardAPI volumes.

Who calls it: the kubelet's pod sync, just before it creates a container (the result
goes into :class:`runtime.kubelet.cri.ContainerConfig`), and
:mod:`runtime.kubelet.volumes` for downwardAPI files and ``subPathExpr``.

Semantics, in order:

1. ``envFrom`` entries, in order: every key of the ConfigMap's ``data`` (or the Secret's
   base64-decoded ``data``), with ``prefix`` prepended. A missing object fails the
   container unless the reference is ``optional``. Keys that are not valid variable
   names are skipped and reported as an ``InvalidEnvironmentVariableNames`` warning.
2. ``env`` entries, in order, each overriding what came before: ``value`` with
   ``$(VAR)`` references expanded against the variables defined so far (see
   :func:`expand`), or ``valueFrom``: ``configMapKeyRef`` / ``secretKeyRef`` (a missing
   object or key fails the container, unless ``optional``, which leaves the variable
   out), ``fieldRef`` (pod metadata, node name, service account, host and pod IPs) or
   ``resourceFieldRef`` (requests and limits, unset limits defaulting to the node's
   allocatable, divided by ``divisor`` and rounded up as Kubernetes does).

Failures raise :class:`ContainerConfigError`, whose message is worded as the kubelet's;
the kubelet shows it as the container's ``CreateContainerConfigError`` waiting reason and
retries on the next sync. Service link variables (``FOO_SERVICE_HOST``...) are not
computed here yet.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import Any, Literal

from runtime.api import downward, quantity
from runtime.api.downward import split_subscript
from runtime.kubelet.sources import CachedSource, ObjectSource, SourceError

__all__ = [
    "CachedSource",  # re-exported: the kubelet builds its source here with the env
    "ContainerConfigError",
    "EnvWarning",
    "ObjectSource",
    "container_env",
    "expand",
    "expand_with",
    "field_value",
    "format_map",
    "go_quote",
    "resource_value",
    "valid_env_name",
]

REASON_CONFIG_ERROR = "CreateContainerConfigError"
REASON_INVALID_ENV_NAMES = "InvalidEnvironmentVariableNames"

NameRule = Literal["relaxed", "strict"]


class ContainerConfigError(Exception):
    """A container cannot be created because its configuration cannot be resolved yet
    (a missing ConfigMap, Secret or key; an unsupported field; a bad subPath)."""

    reason: str = REASON_CONFIG_ERROR
    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


@dataclass(frozen=True)
class EnvWarning:
    """Something the kubelet reports as a Warning event on the pod without failing it."""

    reason: str
    message: str


# --- $(VAR) expansion ----------------------------------------------------------------


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references in ``value`` from ``env``.

    As Kubernetes' forked ``expansion`` package: ``$$`` is an escaped ``$``; a reference
    to an undefined variable is left as written; an unterminated ``$(`` and a ``$`` not
    followed by ``(`` or ``$`` are kept literally; the text between ``$(`` and the first
    ``)`` is the name, so references do not nest; expanded values are not expanded again.
    """
    if "$" not in value:
        return value
    return expand_with(value, lambda name: env.get(name, f"$({name})"))


def expand_with(value: str, lookup: Callable[[str], str]) -> str:
    """:func:`expand` with a function giving each referenced name's replacement."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(value)
    while cursor < n:
        if value[cursor] == "$" and cursor + 1 < n:
            out.append(value[checkpoint:cursor])
            nxt = value[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = value.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    out.append(lookup(value[cursor + 2 : close]))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(value[checkpoint:])
    return "".join(out)


# --- downward API ---------------------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: a double-quoted string with Go escapes."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def format_map(values: Mapping[str, str]) -> str:
    """All labels or annotations as the downward API renders them: ``key="value"``
    lines (Go-quoted values) sorted by key, without a trailing newline."""
    return "\n".join(f"{k}={go_quote(str(values[k]))}" for k in sorted(values))


def field_value(
    pod: Mapping[str, Any],
    field_path: str,
    api_version: str = "v1",
    *,
    node_name: str = "",
    node_ip: str = "",
    pod_ip: str = "",
    pod_ips: Sequence[str] = (),
) -> str:
    """The value of a downward API ``fieldRef``; raises ``ValueError`` worded as the
    kubelet's for unsupported paths."""
    if (api_version or "v1") != "v1":
        raise ValueError(f"unsupported pod version: {api_version}")
    meta = pod.get("metadata") or {}
    subscripted = split_subscript(field_path)
    if subscripted is not None:
        head, key = subscripted
        if head == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        if head == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        raise ValueError(f"field label does not support subscript: {field_path}")
    if field_path == "spec.host":  # what old v1 clients sent
        field_path = "spec.nodeName"
    if field_path not in downward.CONVERTIBLE_FIELD_PATHS:
        raise ValueError(f"field label not supported: {field_path}")
    spec = pod.get("spec") or {}
    ips = [ip for ip in pod_ips if ip] or ([pod_ip] if pod_ip else [])
    match field_path:
        case "metadata.annotations":
            return format_map(meta.get("annotations") or {})
        case "metadata.labels":
            return format_map(meta.get("labels") or {})
        case "metadata.name" | "metadata.namespace" | "metadata.uid":
            return str(meta.get(field_path.removeprefix("metadata."), ""))
        case "spec.nodeName":
            return str(spec.get("nodeName") or node_name)
        case "spec.serviceAccountName":
            return str(spec.get("serviceAccountName") or "")
        case "status.hostIP":
            return node_ip
        case "status.hostIPs":
            return node_ip
        case "status.podIP":
            return ips[0] if ips else ""
        case "status.podIPs":
            return ",".join(ips)
    # spec.restartPolicy, spec.schedulerName, status.phase pass the label check but the
    # kubelet cannot extract them either.
    raise ValueError(f"unsupported fieldPath: {field_path}")


_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


def _quantity(value: Any, what: str) -> Decimal:
    parsed = quantity.parse(value)
    if parsed is None:
        raise ValueError(f"invalid quantity {value!r} for {what}")
    return parsed


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if container.get("name") == name:
            return dict(container)
    raise ValueError(f"container {name} not found")


def resource_value(
    pod: Mapping[str, Any],
    container: Mapping[str, Any] | None,
    selector: Mapping[str, Any],
    node_allocatable: Mapping[str, Any] | None = None,
) -> str:
    """The value of a downward API ``resourceFieldRef`` for ``container`` (or the pod's
    container named by ``selector.containerName``).

    Unset (or zero) cpu, memory and ephemeral-storage limits default to the node's
    allocatable. CPU is counted in thousandths and memory-like resources in bytes, each
    rounded up, then divided by the ``divisor`` (default 1) and rounded up again.
    """
    name = str(selector.get("containerName") or "")
    if name:
        container = find_container(pod, name)
    if container is None:
        raise ValueError("resourceFieldRef needs a containerName")
    resources = container.get("resources") or {}
    requests = dict(resources.get("requests") or {})
    limits = dict(resources.get("limits") or {})
    for resource in _DEFAULTED_LIMITS:
        unset = (quantity.parse(limits.get(resource)) or 0) == 0
        if unset and node_allocatable and resource in node_allocatable:
            limits[resource] = node_allocatable[resource]
    field = str(selector.get("resource") or "")
    bucket, _, resource = field.partition(".")
    if bucket not in ("limits", "requests") or not (
        resource in _DEFAULTED_LIMITS or resource.startswith("hugepages-")
    ):
        raise ValueError(f"unsupported container resource : {field}")
    values = limits if bucket == "limits" else requests
    divisor = quantity.parse(selector.get("divisor")) or Decimal(0)
    if divisor == 0:
        divisor = Decimal(1)
    amount = _quantity(values.get(resource, 0), field)
    if resource == "cpu":
        num, den = _ceil(amount * 1000), _ceil(divisor * 1000)
    else:
        num, den = _ceil(amount), _ceil(divisor)
    if den <= 0:
        raise ValueError(f"invalid divisor {selector.get('divisor')!r} for {field}")
    return str(math.ceil(Fraction(num, den)))


# --- the environment --------------------------------------------------------------------

_STRICT_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*").fullmatch


def valid_env_name(name: str, rule: NameRule = "relaxed") -> bool:
    """Whether ``name`` may be an environment variable name.

    ``relaxed`` is Kubernetes' rule since RelaxedEnvironmentVariableValidation (on by
    default since 1.32, and what this cluster's API server validates): printable ASCII
    other than ``=``. ``strict`` is the older C-identifier-like rule.
    """
    if rule == "strict":
        return _STRICT_NAME(name) is not None
    return bool(name) and all(32 <= ord(ch) <= 126 and ch != "=" for ch in name)


def decode_secret_value(value: Any) -> str:
    """A Secret ``data`` value (base64) as text; bytes that are not UTF-8 are kept as
    surrogate escapes, which the OS layer turns back into the same bytes."""
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 data: {exc}") from exc
    return raw.decode("utf-8", errors="surrogateescape")


class _Objects:
    """The ConfigMaps and Secrets one computation reads, each fetched once."""

    def __init__(self, source: ObjectSource, namespace: str) -> None:
        self.source = source
        self.namespace = namespace
        self.found: dict[tuple[str, str], dict[str, str]] = {}

    async def data(self, kind: Literal["configmap", "secret"], name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key in self.found:
            return self.found[key]
        plural = "configmaps" if kind == "configmap" else "secrets"
        try:
            obj = await self.source.get("v1", plural, self.namespace, name)
        except SourceError as exc:
            raise ContainerConfigError(exc.message, retryable=exc.retryable) from exc
        if obj is None:
            return None
        raw = obj.get("data") or {}
        if kind == "configmap":
            data = {str(k): str(v) for k, v in raw.items()}
        else:
            try:
                data = {str(k): decode_secret_value(v) for k, v in raw.items()}
            except ValueError as exc:
                raise ContainerConfigError(
                    f"secret {self.namespace}/{name}: {exc}", retryable=True
                ) from exc
        self.found[key] = data
        return data


async def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: ObjectSource,
    *,
    node_name: str,
    node_ip: str,
    pod_ip: str,
    pod_ips: Sequence[str],
    node_allocatable: Mapping[str, str] | None = None,
    warnings: list[EnvWarning] | None = None,
    name_rule: NameRule = "relaxed",
) -> list[tuple[str, str]]:
    """The container's environment as ``(name, value)`` pairs, one per name.

    ``warnings`` (when given) receives what the kubelet reports as Warning events
    (skipped ``envFrom`` keys). Raises :class:`ContainerConfigError`.
    """
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    objects = _Objects(source, namespace)
    env: dict[str, str] = {}

    for entry in container.get("envFrom") or []:
        prefix = str(entry.get("prefix") or "")
        if entry.get("configMapRef") is not None:
            kind: Literal["configmap", "secret"] = "configmap"
            ref = entry["configMapRef"]
            label = "configMap"
        elif entry.get("secretRef") is not None:
            kind, ref, label = "secret", entry["secretRef"], "secret"
        else:
            continue
        name = str(ref.get("name") or "")
        data = await objects.data(kind, name)
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind} "{name}" not found')
        invalid: list[str] = []
        for key, value in data.items():
            var = prefix + key
            if not valid_env_name(var, name_rule):
                invalid.append(var)
                continue
            env[var] = value
        if invalid and warnings is not None:
            warnings.append(
                EnvWarning(
                    REASON_INVALID_ENV_NAMES,
                    f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} "
                    f"{namespace}/{name} were skipped since they are considered invalid "
                    "environment variable names.",
                )
            )

    for var in container.get("env") or []:
        name = str(var.get("name") or "")
        value = var.get("value")
        source_ref = var.get("valueFrom")
        if value or not source_ref:
            env[name] = expand(str(value or ""), env)
            continue
        if source_ref.get("fieldRef") is not None:
            ref = source_ref["fieldRef"]
            try:
                env[name] = field_value(
                    pod,
                    str(ref.get("fieldPath") or ""),
                    str(ref.get("apiVersion") or "v1"),
                    node_name=node_name,
                    node_ip=node_ip,
                    pod_ip=pod_ip,
                    pod_ips=pod_ips,
                )
            except ValueError as exc:
                raise ContainerConfigError(str(exc)) from exc
        elif source_ref.get("resourceFieldRef") is not None:
            try:
                env[name] = resource_value(
                    pod, container, source_ref["resourceFieldRef"], node_allocatable
                )
            except ValueError as exc:
                raise ContainerConfigError(str(exc)) from exc
        elif source_ref.get("configMapKeyRef") is not None or (
            source_ref.get("secretKeyRef") is not None
        ):
            is_cm = source_ref.get("configMapKeyRef") is not None
            ref = source_ref["configMapKeyRef" if is_cm else "secretKeyRef"]
            kind = "configmap" if is_cm else "secret"
            obj_name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
            optional = bool(ref.get("optional"))
            data = await objects.data(kind, obj_name)
            if data is None:
                if optional:
                    continue
                raise ContainerConfigError(f'{kind} "{obj_name}" not found')
            if key not in data:
                if optional:
                    continue
                raise ContainerConfigError(
                    f"couldn't find key {key} in {'ConfigMap' if is_cm else 'Secret'} "
                    f"{namespace}/{obj_name}"
                )
            env[name] = data[key]
        else:
            # A source this kubelet does not know (e.g. fileKeyRef behind a feature gate
            # that is off): Kubernetes sets the variable to the empty value.
            env[name] = ""
    return list(env.items())
