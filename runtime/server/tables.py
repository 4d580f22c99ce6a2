"""Server-side ``meta.k8s.io/v1`` ``Table`` output, cell for cell as kube-apiserver makes it.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` (or
``v1beta1``) and prints whatever columns and cells the server returns; the server's list,
get and watch handlers call into this module when the Accept header asks for a Table:

* :func:`to_table` turns the objects of one list (or the one object of a get) into a
  ``Table`` with its column definitions, one row per object, and the list metadata.
* :func:`table_row_for_watch` makes the one-row ``Table`` that a watch event carries.

Which columns a resource gets follows kube-apiserver:

* built-in kinds with a printer (``pkg/printers/internalversion``): every column,
  ``-o wide`` ones (``priority: 1``) included, because the server always prints wide and
  kubectl hides the priority columns itself;
* custom resources: ``Name`` and then the CRD version's ``additionalPrinterColumns``
  (``Age`` when it has none), each evaluated with the JSONPath subset of client-go;
* everything else (Role, ClusterRole, LimitRange, CustomResourceDefinition, …): the
  default convertor's ``Name`` and ``Created At`` (an RFC 3339 timestamp).

Ages are ``HumanDuration`` strings (``5s``, ``3m20s``, ``2d5h``, ``45d``) computed against
the caller's ``now``. Objects are read, never modified; rows of
``includeObject=Metadata`` share the objects' ``metadata`` dicts.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from kubemodel.errors import bad_request, not_acceptable
from runtime.api.registry import ResourceInfo

__all__ = [
    "JsonPathError",
    "compile_jsonpath",
    "evaluate_jsonpath",
    "human_duration",
    "quantity_string",
    "table_row_for_watch",
    "to_table",
]

Obj = dict[str, Any]
Cells = list[Any]
Printer = Callable[[Obj, datetime], Cells]

TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

_EMPTY: Obj = {}
_NONE = "<none>"
_UNKNOWN = "<unknown>"
_UNSET = "<unset>"


# --- time ---------------------------------------------------------------------------
def human_duration(delta: timedelta) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``: ~2-3 significant figures."""
    micros = delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
    # Go truncates toward zero; a clock up to two seconds behind is "0s".
    seconds = micros // 1_000_000 if micros >= 0 else -(-micros // 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp, or None when absent, unparseable or Go's zero time."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year == 1:
        try:
            if parsed == _GO_ZERO_TIME:
                return None
        except OverflowError:
            pass
    return parsed


def _since(now: datetime, value: Any) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    parsed = _parse_time(value)
    if parsed is None:
        return _UNKNOWN
    return human_duration(now - parsed)


def _age(obj: Obj, now: datetime) -> str:
    return _since(now, (obj.get("metadata") or _EMPTY).get("creationTimestamp"))


def _rfc3339(value: Any) -> str:
    """``Time.UTC().Format(time.RFC3339)`` of a creationTimestamp (zero time when unset)."""
    parsed = _parse_time(value)
    if parsed is None:
        return "0001-01-01T00:00:00Z"
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- quantities ---------------------------------------------------------------------
_QUANTITY = re.compile(
    r"^([+-]?)(\d*)(?:\.(\d*))?(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$"
)
_BINARY_BITS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}
_DECIMAL_EXP["E"] = 18
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL_EXP.items()}
_BINARY_SUFFIX = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def quantity_string(value: Any) -> str:
    """``resource.Quantity.String()``: the canonical form of a quantity (``1536Mi``, ``500m``).

    ``None`` is the string of a nil quantity pointer (``<nil>``); values that do not parse
    are returned as they are.
    """
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return _canonical(Fraction(value), "DecimalSI")
    if isinstance(value, float):
        return _canonical(Fraction(repr(value)), "DecimalSI")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match or (not match.group(2) and not match.group(3)):
        return text
    sign, whole, frac, suffix, exponent = match.groups()
    frac = frac or ""
    number = Fraction(int((whole + frac) or "0"), 10 ** len(frac))
    if exponent is not None:
        fmt = "DecimalExponent"
        number *= Fraction(10) ** int(exponent)
    elif suffix in _BINARY_BITS:
        fmt = "BinarySI"
        number *= 2 ** _BINARY_BITS[suffix]
    else:
        fmt = "DecimalSI"
        number *= Fraction(10) ** _DECIMAL_EXP[suffix or ""]
    return _canonical(-number if sign == "-" else number, fmt)


def _canonical(number: Fraction, fmt: str) -> str:
    # Quantities keep nano precision, rounding away from zero.
    scaled = number * 10**9
    if scaled.denominator != 1:
        magnitude = -(-abs(scaled.numerator) // scaled.denominator)
        scaled = Fraction(magnitude if scaled > 0 else -magnitude)
    nanos = int(scaled)
    if nanos == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 * 10**9 < nanos < 1024 * 10**9 or nanos % 10**9:
            fmt = "DecimalSI"
        else:
            mantissa, power = nanos // 10**9, 0
            while mantissa % 1024 == 0 and power < len(_BINARY_SUFFIX) - 1:
                mantissa //= 1024
                power += 1
            return f"{mantissa}{_BINARY_SUFFIX[power]}"
    mantissa, exp = nanos, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exp += 1
    while exp % 3:
        mantissa *= 10
        exp -= 1
    if fmt == "DecimalExponent":
        return f"{mantissa}e{exp}" if exp else str(mantissa)
    if exp > 18:
        mantissa *= 10 ** (exp - 18)
        exp = 18
    return f"{mantissa}{_DECIMAL_SUFFIX[exp]}"


# --- small formatting helpers (labels, selectors, containers) --------------------------
def _format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return _NONE
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


def _selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(s).String()``; None when the selector does not convert."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = [
        (str(k), f"{k}={v}") for k, v in (selector.get("matchLabels") or _EMPTY).items()
    ]
    for expr in selector.get("matchExpressions") or ():
        key = str(expr.get("key", ""))
        values = [str(v) for v in expr.get("values") or ()]
        operator = expr.get("operator")
        if operator in ("In", "NotIn"):
            if not values:
                return None
            word = "in" if operator == "In" else "notin"
            requirements.append((key, f"{key} {word} ({','.join(sorted(values))})"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                return None
            requirements.append((key, key if operator == "Exists" else "!" + key))
        else:
            return None
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def _format_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or _NONE


def _containers(pod_spec: Any) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, comma-joined."""
    containers = (pod_spec or _EMPTY).get("containers") or ()
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


def _template_spec(obj: Obj) -> Obj:
    template = (obj.get("spec") or _EMPTY).get("template") or _EMPTY
    return template.get("spec") or _EMPTY


def _list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or _UNSET


def _bool_ptr(value: Any) -> str:
    if value is None:
        return _UNSET
    return "True" if value else "False"


def _int_or_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cond_true(conditions: Any, ctype: str) -> bool:
    """Whether the first condition of ``ctype`` has status True."""
    for cond in conditions or ():
        if cond.get("type") == ctype:
            return bool(cond.get("status") == "True")
    return False


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or _EMPTY).get("name", ""))


def _group_kind(api_version: str, kind: str) -> str:
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return f"{kind}.{group}" if group else kind


def _lb_ingress(status: Any) -> str:
    """The sorted, de-duplicated IPs (or else hostnames) of a load balancer status."""
    found: set[str] = set()
    for entry in (status or _EMPTY).get("ingress") or ():
        if entry.get("ip"):
            found.add(str(entry["ip"]))
        elif entry.get("hostname"):
            found.add(str(entry["hostname"]))
    return ",".join(sorted(found))


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- printers: one function per kind, cells in column order (always wide) --------------
_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def _pod_conditions(obj: Obj) -> list[Obj] | None:
    phase = (obj.get("status") or _EMPTY).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    parsed = _parse_time(candidate)
    if parsed is not None and (current is None or parsed > current):
        return parsed
    return current


def _print_pod(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    meta = obj.get("metadata") or _EMPTY
    conditions = status.get("conditions") or ()
    total = len(spec.get("containers") or ())
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = spec.get("initContainers") or ()
    sidecars = set()
    for container in init_specs:
        if container.get("restartPolicy") == "Always":
            sidecars.add(container.get("name"))
            total += 1

    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = _int(cs.get("restartCount"))
        restarts += count
        last_term = (cs.get("lastState") or _EMPTY).get("terminated")
        if last_term is not None:
            last_restart = _later(last_restart, last_term.get("finishedAt"))
        sidecar = cs.get("name") in sidecars
        if sidecar:
            sidecar_restarts += count
            if last_term is not None:
                last_sidecar_restart = _later(last_sidecar_restart, last_term.get("finishedAt"))
        state = cs.get("state") or _EMPTY
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + str(terminated["reason"])
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _cond_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        error_reason = ""
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += _int(cs.get("restartCount"))
            last_term = (cs.get("lastState") or _EMPTY).get("terminated")
            if last_term is not None:
                last_restart = _later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or _EMPTY
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated is not None:
                if terminated.get("reason"):
                    reason = str(terminated["reason"])
                elif _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
                if _int(terminated.get("exitCode")) != 0:
                    error_reason = reason
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A container still running turns a "Completed" pod back into Running / NotReady.
        if reason == "Completed":
            if has_running and any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            ):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = status.get("podIPs")
    pod_ip = str(pod_ips[0].get("ip", "")) if pod_ips else str(status.get("podIP") or "")
    gates = spec.get("readinessGates") or ()
    gates_cell = _NONE
    if gates:
        true_count = 0
        for gate in gates:
            for cond in conditions:
                if cond.get("type") == gate.get("conditionType"):
                    if cond.get("status") == "True":
                        true_count += 1
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _since(now, meta.get("creationTimestamp")),
        pod_ip or _NONE,
        spec.get("nodeName") or _NONE,
        status.get("nominatedNodeName") or _NONE,
        gates_cell,
    ]


def _print_pod_template(obj: Obj, now: datetime) -> Cells:
    template = obj.get("template") or _EMPTY
    names, images = _containers(template.get("spec"))
    labels = (template.get("metadata") or _EMPTY).get("labels")
    return [_name(obj), names, images, _format_labels(labels)]


def _print_pdb(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        _name(obj),
        "N/A" if min_available is None else _int_or_string(min_available),
        "N/A" if max_unavailable is None else _int_or_string(max_unavailable),
        _int((obj.get("status") or _EMPTY).get("disruptionsAllowed")),
        _age(obj, now),
    ]


def _print_replication_controller(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    names, images = _containers(_template_spec(obj))
    return [
        _name(obj),
        _int(spec.get("replicas"), 1),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_labels(spec.get("selector")),
    ]


def _print_replica_set(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    names, images = _containers(_template_spec(obj))
    return [
        _name(obj),
        _int(spec.get("replicas"), 1),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_selector(spec.get("selector")),
    ]


def _print_job(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    succeeded = _int(status.get("succeeded"))
    completions = spec.get("completions")
    if completions is not None:
        completions_cell = f"{succeeded}/{_int(completions)}"
    else:
        parallelism = _int(spec.get("parallelism"), 1)
        if parallelism > 1:
            completions_cell = f"{succeeded}/1 of {parallelism}"
        else:
            completions_cell = f"{succeeded}/1"
    start = _parse_time(status.get("startTime"))
    finish = _parse_time(status.get("completionTime"))
    if start is None:
        duration = ""
    elif finish is None:
        duration = human_duration(now - start)
    else:
        duration = human_duration(finish - start)
    conditions = status.get("conditions")
    if _cond_true(conditions, "Complete"):
        job_status = "Complete"
    elif _cond_true(conditions, "Failed"):
        job_status = "Failed"
    elif (obj.get("metadata") or _EMPTY).get("deletionTimestamp") is not None:
        job_status = "Terminating"
    elif _cond_true(conditions, "Suspended"):
        job_status = "Suspended"
    elif _cond_true(conditions, "FailureTarget"):
        job_status = "FailureTarget"
    else:
        job_status = "Running"
    names, images = _containers(_template_spec(obj))
    return [
        _name(obj),
        job_status,
        completions_cell,
        duration,
        _age(obj, now),
        names,
        images,
        _format_selector(spec.get("selector")),
    ]


def _print_cron_job(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or _EMPTY).get("spec") or _EMPTY
    names, images = _containers((job_spec.get("template") or _EMPTY).get("spec"))
    return [
        _name(obj),
        str(spec.get("schedule", "")),
        _NONE if spec.get("timeZone") is None else str(spec["timeZone"]),
        _bool_ptr(spec.get("suspend")),
        len(status.get("active") or ()),
        _NONE if last is None else _since(now, last),
        _age(obj, now),
        names,
        images,
        _format_selector(job_spec.get("selector")),
    ]


def _service_external_ip(spec: Obj, status: Obj) -> str:
    svc_type = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in spec.get("externalIPs") or ()]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else _NONE
    if svc_type == "LoadBalancer":
        lb_ips = _lb_ingress(status.get("loadBalancer"))
        if external:
            return ",".join((lb_ips.split(",") if lb_ips else []) + external)
        return lb_ips or "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return _UNKNOWN


def _print_service(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else ())
    ports = []
    for port in spec.get("ports") or ():
        protocol = port.get("protocol") or "TCP"
        node_port = _int(port.get("nodePort"))
        if node_port > 0:
            ports.append(f"{_int(port.get('port'))}:{node_port}/{protocol}")
        else:
            ports.append(f"{_int(port.get('port'))}/{protocol}")
    return [
        _name(obj),
        spec.get("type") or "ClusterIP",
        str(cluster_ips[0]) if cluster_ips else _NONE,
        _service_external_ip(spec, obj.get("status") or _EMPTY),
        ",".join(ports) or _NONE,
        _age(obj, now),
        _format_labels(spec.get("selector")),
    ]


def _print_ingress(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    rules = spec.get("rules") or ()
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        hosts_cell = "*"
    elif more:
        hosts_cell = f"{','.join(hosts)} + {len(rules) - 3} more..."
    else:
        hosts_cell = ",".join(hosts)
    class_name = spec.get("ingressClassName")
    return [
        _name(obj),
        _NONE if class_name is None else str(class_name),
        hosts_cell,
        _lb_ingress((obj.get("status") or _EMPTY).get("loadBalancer")),
        "80, 443" if spec.get("tls") else "80",
        _age(obj, now),
    ]


def _print_ingress_class(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    params = spec.get("parameters")
    params_cell = _NONE
    if params is not None:
        params_cell = str(params.get("kind", ""))
        if params.get("apiGroup") is not None:
            params_cell += "." + str(params["apiGroup"])
        params_cell += "/" + str(params.get("name", ""))
    return [_name(obj), str(spec.get("controller", "")), params_cell, _age(obj, now)]


def _print_stateful_set(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    ready = _int((obj.get("status") or _EMPTY).get("readyReplicas"))
    names, images = _containers(_template_spec(obj))
    return [
        _name(obj),
        f"{ready}/{_int(spec.get('replicas'), 1)}",
        _age(obj, now),
        names,
        images,
    ]


def _print_daemon_set(obj: Obj, now: datetime) -> Cells:
    status = obj.get("status") or _EMPTY
    pod_spec = _template_spec(obj)
    names, images = _containers(pod_spec)
    return [
        _name(obj),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        _format_labels(pod_spec.get("nodeSelector")),
        _age(obj, now),
        names,
        images,
        _format_selector((obj.get("spec") or _EMPTY).get("selector")),
    ]


def _print_endpoints(obj: Obj, now: datetime) -> Cells:
    subsets = obj.get("subsets") or ()
    if not subsets:
        return [_name(obj), _NONE, _age(obj, now)]
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = subset.get("addresses") or ()
        ports = subset.get("ports") or ()
        if not ports:  # headless services may have no ports
            count += len(addresses)
            shown.extend(str(a.get("ip", "")) for a in addresses[: max(0, 3 - len(shown))])
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses[: max(0, 3 - len(shown))]:
                shown.append(_join_host_port(str(address.get("ip", "")), _int(port.get("port"))))
    text = ",".join(shown)
    if count > 3:
        text = f"{text} + {count - 3} more..."
    return [_name(obj), text, _age(obj, now)]


def _print_endpoint_slice(obj: Obj, now: datetime) -> Cells:
    ports = obj.get("ports") or ()
    port_cells = []
    for port in ports[:3]:
        if port.get("port") is not None:
            port_cells.append(str(_int(port["port"])))
        elif port.get("name") is not None:
            port_cells.append(str(port["name"]))
        else:
            port_cells.append("*")
    addresses = [str(a) for e in obj.get("endpoints") or () for a in e.get("addresses") or ()]
    return [
        _name(obj),
        str(obj.get("addressType", "")),
        _list_with_more(port_cells, len(ports)),
        _list_with_more(addresses, len(addresses)),
        _age(obj, now),
    ]


def _print_node(obj: Obj, now: datetime) -> Cells:
    status = obj.get("status") or _EMPTY
    ready_condition = None
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ready_condition = cond
    if ready_condition is None:
        states = ["Unknown"]
    else:
        states = ["Ready" if ready_condition.get("status") == "True" else "NotReady"]
    if (obj.get("spec") or _EMPTY).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in ((obj.get("metadata") or _EMPTY).get("labels") or _EMPTY).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    info = status.get("nodeInfo") or _EMPTY
    internal_ip = external_ip = _NONE
    for address in reversed(status.get("addresses") or ()):
        if address.get("type") == "InternalIP":
            internal_ip = str(address.get("address", ""))
        elif address.get("type") == "ExternalIP":
            external_ip = str(address.get("address", ""))
    return [
        _name(obj),
        ",".join(states),
        ",".join(sorted(roles)) or _NONE,
        _age(obj, now),
        str(info.get("kubeletVersion", "")),
        internal_ip,
        external_ip,
        info.get("osImage") or _UNKNOWN,
        info.get("kernelVersion") or _UNKNOWN,
        info.get("containerRuntimeVersion") or _UNKNOWN,
    ]


_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: Any) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _annotations(obj: Obj) -> Obj:
    return (obj.get("metadata") or _EMPTY).get("annotations") or _EMPTY


def _print_persistent_volume(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    claim = spec.get("claimRef")
    claim_cell = "" if claim is None else f"{claim.get('namespace', '')}/{claim.get('name', '')}"
    storage = (spec.get("capacity") or _EMPTY).get("storage")
    phase = status.get("phase") or ""
    if (obj.get("metadata") or _EMPTY).get("deletionTimestamp") is not None:
        phase = "Terminating"
    annotations = _annotations(obj)
    storage_class = (
        annotations[_BETA_STORAGE_CLASS]
        if _BETA_STORAGE_CLASS in annotations
        else spec.get("storageClassName") or ""
    )
    vac = spec.get("volumeAttributesClassName")
    return [
        _name(obj),
        "0" if storage is None else quantity_string(storage),
        _access_modes(spec.get("accessModes")),
        str(spec.get("persistentVolumeReclaimPolicy") or ""),
        phase,
        claim_cell,
        str(storage_class),
        _UNSET if vac is None else str(vac),
        str(status.get("reason") or ""),
        _age(obj, now),
        _UNSET if spec.get("volumeMode") is None else str(spec["volumeMode"]),
    ]


def _print_persistent_volume_claim(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    phase = status.get("phase") or ""
    if (obj.get("metadata") or _EMPTY).get("deletionTimestamp") is not None:
        phase = "Terminating"
    capacity = access_modes = ""
    if spec.get("volumeName"):
        access_modes = _access_modes(status.get("accessModes"))
        storage = (status.get("capacity") or _EMPTY).get("storage")
        capacity = "0" if storage is None else quantity_string(storage)
    annotations = _annotations(obj)
    if _BETA_STORAGE_CLASS in annotations:
        storage_class = str(annotations[_BETA_STORAGE_CLASS])
    else:
        storage_class = str(spec.get("storageClassName") or "")
    vac = spec.get("volumeAttributesClassName")
    return [
        _name(obj),
        phase,
        str(spec.get("volumeName") or ""),
        capacity,
        access_modes,
        storage_class,
        _UNSET if vac is None else str(vac),
        _age(obj, now),
        _UNSET if spec.get("volumeMode") is None else str(spec["volumeMode"]),
    ]


def _print_event(obj: Obj, now: datetime) -> Cells:
    if _parse_time(obj.get("firstTimestamp")) is None:
        first_seen = _since(now, obj.get("eventTime"))
    else:
        first_seen = _since(now, obj.get("firstTimestamp"))
    if _parse_time(obj.get("lastTimestamp")) is None:
        last_seen = first_seen
    else:
        last_seen = _since(now, obj.get("lastTimestamp"))
    count = _int(obj.get("count"))
    series = obj.get("series")
    if series is not None:
        last_seen = _since(now, series.get("lastObservedTime"))
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events have no count in the new API
    involved = obj.get("involvedObject") or _EMPTY
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or _EMPTY
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last_seen,
        str(obj.get("type", "")),
        str(obj.get("reason", "")),
        target,
        str(involved.get("fieldPath", "")),
        f"{component}, {host}" if host else str(component),
        str(obj.get("message", "")).strip(),
        first_seen,
        count,
        _name(obj),
    ]


def _print_namespace(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), str((obj.get("status") or _EMPTY).get("phase", "")), _age(obj, now)]


def _print_secret(obj: Obj, now: datetime) -> Cells:
    data_count = len(obj.get("data") or ()) + len(
        set(obj.get("stringData") or ()) - set(obj.get("data") or ())
    )
    return [_name(obj), str(obj.get("type") or "Opaque"), data_count, _age(obj, now)]


def _print_service_account(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), len(obj.get("secrets") or ()), _age(obj, now)]


def _print_config_map(obj: Obj, now: datetime) -> Cells:
    count = len(obj.get("data") or ()) + len(obj.get("binaryData") or ())
    return [_name(obj), count, _age(obj, now)]


def _print_component_status(obj: Obj, now: datetime) -> Cells:
    status, message, error = "Unknown", "", ""
    for cond in obj.get("conditions") or ():
        if cond.get("type") == "Healthy":
            status = "Healthy" if cond.get("status") == "True" else "Unhealthy"
            message = str(cond.get("message", ""))
            error = str(cond.get("error", ""))
            break
    return [_name(obj), status, message, error]


def _print_deployment(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    selector = _selector_string(spec.get("selector"))
    names, images = _containers(_template_spec(obj))
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'), 1)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _hpa_v1_to_v2(spec: Obj, status: Obj) -> tuple[list[Obj], list[Obj]]:
    """autoscaling/v1 keeps one CPU target; convert it as the internal type does."""
    target = spec.get("targetCPUUtilizationPercentage")
    metrics: list[Obj] = []
    statuses: list[Obj] = []
    if target is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target},
                },
            }
        )
        current = status.get("currentCPUUtilizationPercentage")
        if current is not None:
            statuses.append(
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": current}},
                }
            )
    return metrics, statuses


def _hpa_metric(spec: Obj, current: Obj | None) -> str:
    kind = spec.get("type")
    if kind in ("External", "Object"):
        key = "external" if kind == "External" else "object"
        target = (spec.get(key) or _EMPTY).get("target") or _EMPTY
        cur = None if current is None else current.get(key)
        if target.get("averageValue") is not None:
            value = _UNKNOWN
            if cur is not None and (cur.get("current") or _EMPTY).get("averageValue") is not None:
                value = quantity_string(cur["current"]["averageValue"])
            return f"{value}/{quantity_string(target['averageValue'])} (avg)"
        value = _UNKNOWN
        if cur is not None:
            value = quantity_string((cur.get("current") or _EMPTY).get("value"))
        return f"{value}/{quantity_string(target.get('value'))}"
    if kind == "Pods":
        target = (spec.get("pods") or _EMPTY).get("target") or _EMPTY
        value = _UNKNOWN
        if current is not None and current.get("pods") is not None:
            value = quantity_string((current["pods"].get("current") or _EMPTY).get("averageValue"))
        return f"{value}/{quantity_string(target.get('averageValue'))}"
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = spec.get(key) or _EMPTY
        target = source.get("target") or _EMPTY
        cur = None if current is None else current.get(key)
        name = str(source.get("name", ""))
        if target.get("averageValue") is not None:
            value = _UNKNOWN
            if cur is not None:
                value = quantity_string((cur.get("current") or _EMPTY).get("averageValue"))
            return f"{name}: {value}/{quantity_string(target['averageValue'])}"
        value = _UNKNOWN
        utilization = (
            None if cur is None else (cur.get("current") or _EMPTY).get("averageUtilization")
        )
        if utilization is not None:
            value = f"{_int(utilization)}%"
        wanted = "<auto>"
        if target.get("averageUtilization") is not None:
            wanted = f"{_int(target['averageUtilization'])}%"
        return f"{name}: {value}/{wanted}"
    return "<unknown type>"


def _print_hpa(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    if "metrics" not in spec and "targetCPUUtilizationPercentage" in spec:
        metrics, statuses = _hpa_v1_to_v2(spec, status)
    else:
        metrics = list(spec.get("metrics") or ())
        statuses = list(status.get("currentMetrics") or ())
    if not metrics:
        targets = _NONE
    else:
        shown = [
            _hpa_metric(m, statuses[i] if i < len(statuses) else None)
            for i, m in enumerate(metrics[:2])
        ]
        targets = ", ".join(shown)
        if len(metrics) > 2:
            targets = f"{targets} + {len(metrics) - 2} more..."
    ref = spec.get("scaleTargetRef") or _EMPTY
    min_replicas = spec.get("minReplicas")
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        targets,
        _UNSET if min_replicas is None else str(_int(min_replicas)),
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(obj, now),
    ]


def _print_network_policy(obj: Obj, now: datetime) -> Cells:
    selector = (obj.get("spec") or _EMPTY).get("podSelector") or _EMPTY
    return [_name(obj), _format_selector(selector), _age(obj, now)]


def _subjects(obj: Obj) -> tuple[str, str, str]:
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in obj.get("subjects") or ():
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        elif kind == "User":
            users.append(str(subject.get("name", "")))
        elif kind == "Group":
            groups.append(str(subject.get("name", "")))
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _print_role_binding(obj: Obj, now: datetime) -> Cells:
    ref = obj.get("roleRef") or _EMPTY
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(obj, now),
        *_subjects(obj),
    ]


def _print_csr(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    status = obj.get("status") or _EMPTY
    types = {c.get("type") for c in status.get("conditions") or ()}
    if "Denied" in types:
        state = "Denied"
    elif "Approved" in types:
        state = "Approved"
    else:
        state = "Pending"
    if "Failed" in types:
        state += ",Failed"
    if status.get("certificate"):
        state += ",Issued"
    seconds = spec.get("expirationSeconds")
    requested = _NONE
    if seconds is not None:
        requested = human_duration(timedelta(seconds=_int(seconds)))
    return [
        _name(obj),
        _age(obj, now),
        spec.get("signerName") or _NONE,
        str(spec.get("username", "")),
        requested,
        state,
    ]


def _print_lease(obj: Obj, now: datetime) -> Cells:
    holder = (obj.get("spec") or _EMPTY).get("holderIdentity")
    return [_name(obj), "" if holder is None else str(holder), _age(obj, now)]


def _print_storage_class(obj: Obj, now: datetime) -> Cells:
    annotations = _annotations(obj)
    name = _name(obj)
    if (
        annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
        or annotations.get("storageclass.beta.kubernetes.io/is-default-class") == "true"
    ):
        name += " (default)"
    expansion = obj.get("allowVolumeExpansion")
    return [
        name,
        str(obj.get("provisioner", "")),
        str(obj.get("reclaimPolicy") or "Delete"),
        str(obj.get("volumeBindingMode") or "Immediate"),
        bool(expansion) if expansion is not None else False,
        _age(obj, now),
    ]


def _print_controller_revision(obj: Obj, now: datetime) -> Cells:
    controller = _NONE
    for ref in (obj.get("metadata") or _EMPTY).get("ownerReferences") or ():
        if ref.get("controller"):
            group_kind = _group_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
            name = str(ref.get("name", ""))
            controller = f"{group_kind.lower()}/{name}" if group_kind else name
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


def _print_resource_quota(obj: Obj, now: datetime) -> Cells:
    status = obj.get("status") or _EMPTY
    hard = status.get("hard") or _EMPTY
    used = status.get("used") or _EMPTY
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        used_value = used.get(resource)
        text = (
            f"{resource}: {'0' if used_value is None else quantity_string(used_value)}"
            f"/{quantity_string(hard[resource])}"
        )
        pieces = resource.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _print_priority_class(obj: Obj, now: datetime) -> Cells:
    policy = obj.get("preemptionPolicy")
    return [
        _name(obj),
        _int(obj.get("value")),
        bool(obj.get("globalDefault", False)),
        _age(obj, now),
        "" if policy is None else str(policy),
    ]


def _print_runtime_class(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), str(obj.get("handler", "")), _age(obj, now)]


def _print_volume_attachment(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    pv_name = (spec.get("source") or _EMPTY).get("persistentVolumeName")
    return [
        _name(obj),
        str(spec.get("attacher", "")),
        "" if pv_name is None else str(pv_name),
        str(spec.get("nodeName", "")),
        bool((obj.get("status") or _EMPTY).get("attached", False)),
        _age(obj, now),
    ]


def _print_csi_node(obj: Obj, now: datetime) -> Cells:
    drivers = (obj.get("spec") or _EMPTY).get("drivers") or ()
    return [_name(obj), len(drivers), _age(obj, now)]


def _print_csi_driver(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    tokens = spec.get("tokenRequests")
    token_cell = _UNSET
    if tokens is not None:
        token_cell = ",".join(str(t.get("audience", "")) for t in tokens)
    modes = ",".join(str(m) for m in spec.get("volumeLifecycleModes") or ())
    attach = spec.get("attachRequired")
    return [
        _name(obj),
        True if attach is None else bool(attach),
        bool(spec.get("podInfoOnMount") or False),
        bool(spec.get("storageCapacity") or False),
        token_cell,
        bool(spec.get("requiresRepublish") or False),
        modes or _NONE,
        _age(obj, now),
    ]


def _print_webhook_configuration(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), len(obj.get("webhooks") or ()), _age(obj, now)]


def _print_admission_policy(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    param_kind = spec.get("paramKind")
    param_cell = _UNSET
    if param_kind is not None:
        param_cell = f"{param_kind.get('apiVersion', '')}/{param_kind.get('kind', '')}"
    return [_name(obj), len(spec.get("validations") or ()), param_cell, _age(obj, now)]


def _print_admission_policy_binding(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    ref = spec.get("paramRef")
    param = _UNSET
    if ref is not None:
        if ref.get("name"):
            param = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif ref.get("selector") is not None:
            param = _format_selector(ref["selector"])
    return [_name(obj), str(spec.get("policyName", "")), param, _age(obj, now)]


def _print_flow_schema(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    method = spec.get("distinguisherMethod")
    dangling = "?"
    for cond in (obj.get("status") or _EMPTY).get("conditions") or ():
        if cond.get("type") == "Dangling":
            dangling = str(cond.get("status", ""))
            break
    return [
        _name(obj),
        str((spec.get("priorityLevelConfiguration") or _EMPTY).get("name", "")),
        _int(spec.get("matchingPrecedence")),
        _NONE if method is None else str(method.get("type", "")),
        _age(obj, now),
        dangling,
    ]


def _print_priority_level(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    shares: Any = _NONE
    queues: Any = _NONE
    hand_size: Any = _NONE
    queue_length: Any = _NONE
    limited = spec.get("limited")
    if limited is not None:
        shares = _int(limited.get("nominalConcurrencyShares"))
        queuing = (limited.get("limitResponse") or _EMPTY).get("queuing")
        if queuing is not None:
            queues = _int(queuing.get("queues"))
            hand_size = _int(queuing.get("handSize"))
            queue_length = _int(queuing.get("queueLengthLimit"))
    return [
        _name(obj),
        str(spec.get("type", "")),
        shares,
        queues,
        hand_size,
        queue_length,
        _age(obj, now),
    ]


def _print_api_service(obj: Obj, now: datetime) -> Cells:
    spec = obj.get("spec") or _EMPTY
    service = spec.get("service")
    service_cell = "Local"
    if service is not None:
        service_cell = f"{service.get('namespace', '')}/{service.get('name', '')}"
    available = "Unknown"
    for cond in (obj.get("status") or _EMPTY).get("conditions") or ():
        if cond.get("type") == "Available":
            if cond.get("status") == "True":
                available = "True"
            elif cond.get("reason"):
                available = f"{cond.get('status', '')} ({cond['reason']})"
            else:
                available = str(cond.get("status", ""))
            break
    return [_name(obj), service_cell, available, _age(obj, now)]


def _print_default(obj: Obj, now: datetime) -> Cells:
    meta = obj.get("metadata") or _EMPTY
    return [str(meta.get("name", "")), _rfc3339(meta.get("creationTimestamp"))]


# --- column definitions -------------------------------------------------------------
# A column is (name, type, format, description, priority). A description starting with
# "@" names an OpenAPI property ("@core.v1.PodStatus.podIP") whose documentation
# kube-apiserver quotes (its SwaggerDoc); it is looked up once, when first needed.
_Col = tuple[str, str, str, str, int]


def _col(
    name: str, ctype: str = "string", desc: str = "", priority: int = 0, fmt: str = ""
) -> _Col:
    return (name, ctype, fmt, desc, priority)


_NAME_DOC = "@meta.v1.ObjectMeta.name"
_AGE_DOC = "@meta.v1.ObjectMeta.creationTimestamp"
NAME = _col("Name", "string", _NAME_DOC, fmt="name")
AGE = _col("Age", "string", _AGE_DOC)
_CONTAINERS = _col("Containers", desc="Names of each container in the template.", priority=1)
_IMAGES = _col("Images", desc="Images referenced by each container in the template.", priority=1)


def _wide(desc: str, name: str = "Selector") -> _Col:
    return _col(name, desc=desc, priority=1)


_KindKey = tuple[str, str]  # (group, kind)

_PRINTERS: dict[_KindKey, tuple[tuple[_Col, ...], Printer]] = {
    ("", "Pod"): (
        (
            NAME,
            _col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", desc="The aggregate status of the containers in this pod."),
            _col(
                "Restarts",
                desc="The number of times the containers in this pod have been restarted "
                "and when the last container in this pod has restarted.",
            ),
            AGE,
            _wide("@core.v1.PodStatus.podIP", "IP"),
            _wide("@core.v1.PodSpec.nodeName", "Node"),
            _wide("@core.v1.PodStatus.nominatedNodeName", "Nominated Node"),
            _wide("@core.v1.PodSpec.readinessGates", "Readiness Gates"),
        ),
        _print_pod,
    ),
    ("", "PodTemplate"): (
        (
            NAME,
            _col("Containers", desc="Names of each container in the template."),
            _col("Images", desc="Images referenced by each container in the template."),
            _col("Pod Labels", desc="The labels for the pod template."),
        ),
        _print_pod_template,
    ),
    ("policy", "PodDisruptionBudget"): (
        (
            NAME,
            _col("Min Available", desc="The minimum number of pods that must be available."),
            _col("Max Unavailable", desc="The maximum number of pods that may be unavailable."),
            _col(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ),
        _print_pdb,
    ),
    ("", "ReplicationController"): (
        (
            NAME,
            _col("Desired", "integer", "@core.v1.ReplicationControllerSpec.replicas"),
            _col("Current", "integer", "@core.v1.ReplicationControllerStatus.replicas"),
            _col("Ready", "integer", "@core.v1.ReplicationControllerStatus.readyReplicas"),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@core.v1.ReplicationControllerSpec.selector"),
        ),
        _print_replication_controller,
    ),
    ("apps", "ReplicaSet"): (
        (
            NAME,
            _col("Desired", "integer", "@apps.v1.ReplicaSetSpec.replicas"),
            _col("Current", "integer", "@apps.v1.ReplicaSetStatus.replicas"),
            _col("Ready", "integer", "@apps.v1.ReplicaSetStatus.readyReplicas"),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@apps.v1.ReplicaSetSpec.selector"),
        ),
        _print_replica_set,
    ),
    ("apps", "DaemonSet"): (
        (
            NAME,
            _col("Desired", "integer", "@apps.v1.DaemonSetStatus.desiredNumberScheduled"),
            _col("Current", "integer", "@apps.v1.DaemonSetStatus.currentNumberScheduled"),
            _col("Ready", "integer", "@apps.v1.DaemonSetStatus.numberReady"),
            _col("Up-to-date", "integer", "@apps.v1.DaemonSetStatus.updatedNumberScheduled"),
            _col("Available", "integer", "@apps.v1.DaemonSetStatus.numberAvailable"),
            _col("Node Selector", desc="@core.v1.PodSpec.nodeSelector"),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@apps.v1.DaemonSetSpec.selector"),
        ),
        _print_daemon_set,
    ),
    ("batch", "Job"): (
        (
            NAME,
            _col("Status", desc="Status of the job."),
            _col("Completions", desc="@batch.v1.JobStatus.succeeded"),
            _col("Duration", desc="Time required to complete the job."),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@batch.v1.JobSpec.selector"),
        ),
        _print_job,
    ),
    ("batch", "CronJob"): (
        (
            NAME,
            _col("Schedule", desc="@batch.v1.CronJobSpec.schedule"),
            _col("Timezone", desc="@batch.v1.CronJobSpec.timeZone"),
            _col("Suspend", "boolean", "@batch.v1.CronJobSpec.suspend"),
            _col("Active", "integer", "@batch.v1.CronJobStatus.active"),
            _col("Last Schedule", desc="@batch.v1.CronJobStatus.lastScheduleTime"),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@batch.v1.JobSpec.selector"),
        ),
        _print_cron_job,
    ),
    ("", "Service"): (
        (
            NAME,
            _col("Type", desc="@core.v1.ServiceSpec.type"),
            _col("Cluster-IP", desc="@core.v1.ServiceSpec.clusterIP"),
            _col("External-IP", desc="@core.v1.ServiceSpec.externalIPs"),
            _col("Port(s)", desc="@core.v1.ServiceSpec.ports"),
            AGE,
            _wide("@core.v1.ServiceSpec.selector"),
        ),
        _print_service,
    ),
    ("networking.k8s.io", "Ingress"): (
        (
            NAME,
            _col(
                "Class",
                desc="The name of the IngressClass resource that should be used for "
                "additional configuration",
            ),
            _col(
                "Hosts",
                desc="Hosts that incoming requests are matched against before the ingress rule",
            ),
            _col(
                "Address",
                desc="Address is a list containing ingress points for the load-balancer",
            ),
            _col("Ports", desc="Ports of TLS configurations that open"),
            AGE,
        ),
        _print_ingress,
    ),
    ("networking.k8s.io", "IngressClass"): (
        (
            NAME,
            _col("Controller", desc="Controller that is responsible for handling this class"),
            _col("Parameters", desc="A reference to a resource with additional parameters"),
            AGE,
        ),
        _print_ingress_class,
    ),
    ("apps", "StatefulSet"): (
        (
            NAME,
            _col("Ready", desc="Number of the pod with ready state"),
            AGE,
            _CONTAINERS,
            _IMAGES,
        ),
        _print_stateful_set,
    ),
    ("", "Endpoints"): (
        (NAME, _col("Endpoints", desc="@core.v1.Endpoints.subsets"), AGE),
        _print_endpoints,
    ),
    ("", "Node"): (
        (
            NAME,
            _col("Status", desc="The status of the node"),
            _col("Roles", desc="The roles of the node"),
            AGE,
            _col("Version", desc="@core.v1.NodeSystemInfo.kubeletVersion"),
            _wide("@core.v1.NodeStatus.addresses", "Internal-IP"),
            _wide("@core.v1.NodeStatus.addresses", "External-IP"),
            _wide("@core.v1.NodeSystemInfo.osImage", "OS-Image"),
            _wide("@core.v1.NodeSystemInfo.kernelVersion", "Kernel-Version"),
            _wide("@core.v1.NodeSystemInfo.containerRuntimeVersion", "Container-Runtime"),
        ),
        _print_node,
    ),
    ("", "Event"): (
        (
            _col("Last Seen", desc="@core.v1.Event.lastTimestamp"),
            _col("Type", desc="@core.v1.Event.type"),
            _col("Reason", desc="@core.v1.Event.reason"),
            _col("Object", desc="@core.v1.Event.involvedObject"),
            _wide("@core.v1.ObjectReference.fieldPath", "Subobject"),
            _wide("@core.v1.Event.source", "Source"),
            _col("Message", desc="@core.v1.Event.message"),
            _wide("@core.v1.Event.firstTimestamp", "First Seen"),
            _wide("@core.v1.Event.count", "Count"),
            _col("Name", desc=_NAME_DOC, priority=1, fmt="name"),
        ),
        _print_event,
    ),
    ("", "Namespace"): (
        (NAME, _col("Status", desc="The status of the namespace"), AGE),
        _print_namespace,
    ),
    ("", "Secret"): (
        (
            NAME,
            _col("Type", desc="@core.v1.Secret.type"),
            _col("Data", desc="@core.v1.Secret.data"),
            AGE,
        ),
        _print_secret,
    ),
    ("", "ServiceAccount"): (
        (NAME, _col("Secrets", desc="@core.v1.ServiceAccount.secrets"), AGE),
        _print_service_account,
    ),
    ("", "PersistentVolume"): (
        (
            NAME,
            _col("Capacity", desc="@core.v1.PersistentVolumeSpec.capacity"),
            _col("Access Modes", desc="@core.v1.PersistentVolumeSpec.accessModes"),
            _col(
                "Reclaim Policy", desc="@core.v1.PersistentVolumeSpec.persistentVolumeReclaimPolicy"
            ),
            _col("Status", desc="@core.v1.PersistentVolumeStatus.phase"),
            _col("Claim", desc="@core.v1.PersistentVolumeSpec.claimRef"),
            _col("StorageClass", desc="StorageClass of the pv"),
            _col("VolumeAttributesClass", desc="VolumeAttributesClass of the pv"),
            _col("Reason", desc="@core.v1.PersistentVolumeStatus.reason"),
            AGE,
            _wide("@core.v1.PersistentVolumeSpec.volumeMode", "VolumeMode"),
        ),
        _print_persistent_volume,
    ),
    ("", "PersistentVolumeClaim"): (
        (
            NAME,
            _col("Status", desc="@core.v1.PersistentVolumeClaimStatus.phase"),
            _col("Volume", desc="@core.v1.PersistentVolumeClaimSpec.volumeName"),
            _col("Capacity", desc="@core.v1.PersistentVolumeClaimStatus.capacity"),
            _col("Access Modes", desc="@core.v1.PersistentVolumeClaimStatus.accessModes"),
            _col("StorageClass", desc="StorageClass of the pvc"),
            _col("VolumeAttributesClass", desc="VolumeAttributesClass of the pvc"),
            AGE,
            _wide("@core.v1.PersistentVolumeClaimSpec.volumeMode", "VolumeMode"),
        ),
        _print_persistent_volume_claim,
    ),
    ("", "ComponentStatus"): (
        (
            NAME,
            _col("Status", desc="Status of the component conditions"),
            _col("Message", desc="Message of the component conditions"),
            _col("Error", desc="Error of the component conditions"),
        ),
        _print_component_status,
    ),
    ("apps", "Deployment"): (
        (
            NAME,
            _col("Ready", desc="Number of the pod with ready state"),
            _col("Up-to-date", desc="@apps.v1.DeploymentStatus.updatedReplicas"),
            _col("Available", desc="@apps.v1.DeploymentStatus.availableReplicas"),
            AGE,
            _CONTAINERS,
            _IMAGES,
            _wide("@apps.v1.DeploymentSpec.selector"),
        ),
        _print_deployment,
    ),
    ("autoscaling", "HorizontalPodAutoscaler"): (
        (
            NAME,
            _col("Reference", desc="@autoscaling.v2.HorizontalPodAutoscalerSpec.scaleTargetRef"),
            _col("Targets", desc="@autoscaling.v2.HorizontalPodAutoscalerSpec.metrics"),
            _col("MinPods", desc="@autoscaling.v2.HorizontalPodAutoscalerSpec.minReplicas"),
            _col("MaxPods", desc="@autoscaling.v2.HorizontalPodAutoscalerSpec.maxReplicas"),
            _col("Replicas", desc="@autoscaling.v2.HorizontalPodAutoscalerStatus.currentReplicas"),
            AGE,
        ),
        _print_hpa,
    ),
    ("", "ConfigMap"): (
        (NAME, _col("Data", desc="@core.v1.ConfigMap.data"), AGE),
        _print_config_map,
    ),
    ("networking.k8s.io", "NetworkPolicy"): (
        (NAME, _col("Pod-Selector", desc="@networking.v1.NetworkPolicySpec.podSelector"), AGE),
        _print_network_policy,
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): (
        (
            NAME,
            _col("Role", desc="@rbac.v1.RoleBinding.roleRef"),
            AGE,
            _wide("Users in the roleBinding", "Users"),
            _wide("Groups in the roleBinding", "Groups"),
            _wide("ServiceAccounts in the roleBinding", "ServiceAccounts"),
        ),
        _print_role_binding,
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (
        (
            NAME,
            _col("Role", desc="@rbac.v1.ClusterRoleBinding.roleRef"),
            AGE,
            _wide("Users in the clusterRoleBinding", "Users"),
            _wide("Groups in the clusterRoleBinding", "Groups"),
            _wide("ServiceAccounts in the clusterRoleBinding", "ServiceAccounts"),
        ),
        _print_role_binding,
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"): (
        (
            NAME,
            AGE,
            _col("SignerName", desc="@certificates.v1.CertificateSigningRequestSpec.signerName"),
            _col("Requestor", desc="@certificates.v1.CertificateSigningRequestSpec.request"),
            _col(
                "RequestedDuration",
                desc="@certificates.v1.CertificateSigningRequestSpec.expirationSeconds",
            ),
            _col("Condition", desc="@certificates.v1.CertificateSigningRequestStatus.conditions"),
        ),
        _print_csr,
    ),
    ("coordination.k8s.io", "Lease"): (
        (NAME, _col("Holder", desc="@coordination.v1.LeaseSpec.holderIdentity"), AGE),
        _print_lease,
    ),
    ("storage.k8s.io", "StorageClass"): (
        (
            NAME,
            _col("Provisioner", desc="@storage.v1.StorageClass.provisioner"),
            _col("ReclaimPolicy", desc="@storage.v1.StorageClass.reclaimPolicy"),
            _col("VolumeBindingMode", desc="@storage.v1.StorageClass.volumeBindingMode"),
            _col("AllowVolumeExpansion", desc="@storage.v1.StorageClass.allowVolumeExpansion"),
            AGE,
        ),
        _print_storage_class,
    ),
    ("apps", "ControllerRevision"): (
        (
            NAME,
            _col("Controller", desc="Controller of the object"),
            _col("Revision", desc="@apps.v1.ControllerRevision.revision"),
            AGE,
        ),
        _print_controller_revision,
    ),
    ("", "ResourceQuota"): (
        (
            NAME,
            _col(
                "Request",
                desc="Request represents a minimum amount of cpu/memory that a container may "
                "consume.",
            ),
            _col(
                "Limit",
                desc="Limits control the maximum amount of cpu/memory that a container may use "
                "independent of contention on the node.",
            ),
            AGE,
        ),
        _print_resource_quota,
    ),
    ("scheduling.k8s.io", "PriorityClass"): (
        (
            NAME,
            _col("Value", "integer", "@scheduling.v1.PriorityClass.value"),
            _col("Global-Default", "boolean", "@scheduling.v1.PriorityClass.globalDefault"),
            AGE,
            _wide("@scheduling.v1.PriorityClass.preemptionPolicy", "PreemptionPolicy"),
        ),
        _print_priority_class,
    ),
    ("node.k8s.io", "RuntimeClass"): (
        # kube-apiserver quotes ObjectMeta's doc of "handler", which does not exist: "".
        (NAME, _col("Handler"), AGE),
        _print_runtime_class,
    ),
    ("storage.k8s.io", "VolumeAttachment"): (
        (
            NAME,
            _col("Attacher", desc="@storage.v1.VolumeAttachmentSpec.attacher", fmt="name"),
            _col("PV", desc="@storage.v1.VolumeAttachmentSource.persistentVolumeName"),
            _col("Node", desc="@storage.v1.VolumeAttachmentSpec.nodeName"),
            _col("Attached", "boolean", "@storage.v1.VolumeAttachmentStatus.attached"),
            AGE,
        ),
        _print_volume_attachment,
    ),
    ("discovery.k8s.io", "EndpointSlice"): (
        (
            NAME,
            _col("AddressType", desc="@discovery.v1.EndpointSlice.addressType"),
            _col("Ports", desc="@discovery.v1.EndpointSlice.ports"),
            _col("Endpoints", desc="@discovery.v1.EndpointSlice.endpoints"),
            AGE,
        ),
        _print_endpoint_slice,
    ),
    ("storage.k8s.io", "CSINode"): (
        (
            NAME,
            _col(
                "Drivers",
                "integer",
                "Drivers indicates the number of CSI drivers registered on the node",
            ),
            AGE,
        ),
        _print_csi_node,
    ),
    ("storage.k8s.io", "CSIDriver"): (
        (
            NAME,
            _col("AttachRequired", "boolean", "@storage.v1.CSIDriverSpec.attachRequired"),
            _col("PodInfoOnMount", "boolean", "@storage.v1.CSIDriverSpec.podInfoOnMount"),
            _col("StorageCapacity", "boolean", "@storage.v1.CSIDriverSpec.storageCapacity"),
            _col("TokenRequests", desc="@storage.v1.CSIDriverSpec.tokenRequests"),
            _col("RequiresRepublish", "boolean", "@storage.v1.CSIDriverSpec.requiresRepublish"),
            _col("Modes", desc="@storage.v1.CSIDriverSpec.volumeLifecycleModes"),
            AGE,
        ),
        _print_csi_driver,
    ),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        (
            NAME,
            _col(
                "Webhooks",
                "integer",
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ),
        _print_webhook_configuration,
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        (
            NAME,
            _col(
                "Webhooks",
                "integer",
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ),
        _print_webhook_configuration,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        (
            NAME,
            _col(
                "Validations",
                "integer",
                "Validations indicates the number of validation rules defined in this "
                "configuration",
            ),
            _col(
                "ParamKind",
                desc="ParamKind specifies the kind of resources used to parameterize this policy",
            ),
            AGE,
        ),
        _print_admission_policy,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        (
            NAME,
            _col(
                "PolicyName",
                desc="PolicyName indicates the policy definition which the policy binding "
                "binded to",
            ),
            _col(
                "ParamRef",
                desc="ParamRef indicates the param resource which sets the configration param",
            ),
            AGE,
        ),
        _print_admission_policy_binding,
    ),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): (
        (
            NAME,
            _col("PriorityLevel", desc="@flowcontrol.v1.PriorityLevelConfigurationReference.name"),
            _col("MatchingPrecedence", desc="@flowcontrol.v1.FlowSchemaSpec.matchingPrecedence"),
            _col("DistinguisherMethod", desc="@flowcontrol.v1.FlowSchemaSpec.distinguisherMethod"),
            AGE,
            _col(
                "MissingPL",
                desc="references a broken or non-existent PriorityLevelConfiguration",
            ),
        ),
        _print_flow_schema,
    ),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): (
        (
            NAME,
            _col("Type", desc="@flowcontrol.v1.PriorityLevelConfigurationSpec.type"),
            _col(
                "NominalConcurrencyShares",
                desc="@flowcontrol.v1.LimitedPriorityLevelConfiguration.nominalConcurrencyShares",
            ),
            _col("Queues", desc="@flowcontrol.v1.QueuingConfiguration.queues"),
            _col("HandSize", desc="@flowcontrol.v1.QueuingConfiguration.handSize"),
            _col("QueueLengthLimit", desc="@flowcontrol.v1.QueuingConfiguration.queueLengthLimit"),
            AGE,
        ),
        _print_priority_level,
    ),
    ("apiregistration.k8s.io", "APIService"): (
        (
            NAME,
            _col("Service", desc="The reference to the service that hosts this API endpoint."),
            _col("Available", desc="Whether this service is available."),
            AGE,
        ),
        _print_api_service,
    ),
}

# kube-aggregator's APIService convertor always sends its column definitions.
_ALWAYS_HEADERS = frozenset({("apiregistration.k8s.io", "APIService")})

_DEFAULT_COLUMNS: tuple[_Col, ...] = (NAME, _col("Created At", "date", _AGE_DOC))

# Row conditions: pods that have finished say so (kubectl can hide such rows).
_ROW_CONDITIONS: dict[_KindKey, Callable[[Obj], list[Obj] | None]] = {
    ("", "Pod"): _pod_conditions,
}

# The printer of a list is the printer of its items, except that FlowSchemas are sorted.
_LIST_ORDER: dict[_KindKey, Callable[[Obj], Any]] = {
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): lambda o: (
        _int((o.get("spec") or _EMPTY).get("matchingPrecedence")),
        _name(o),
    ),
}


@functools.cache
def _openapi_doc(ref: str) -> str:
    """The OpenAPI documentation of ``group.version.Type.field`` (without enum notes)."""
    type_path, _, field = ref.rpartition(".")
    prefix = "io.k8s.apimachinery.pkg.apis." if type_path.startswith("meta.") else "io.k8s.api."
    try:
        from kubemodel.schema import builtin

        definition = builtin().definitions.get(prefix + type_path) or _EMPTY
    except Exception:  # the schema package is missing or unreadable: no description
        return ""
    prop = (definition.get("properties") or _EMPTY).get(field) or _EMPTY
    return str(prop.get("description", "")).split("\n\nPossible enum values:")[0]


def _describe(desc: str) -> str:
    return _openapi_doc(desc[1:]) if desc.startswith("@") else desc


@functools.cache
def _builtin_columns(key: _KindKey) -> tuple[_Col, ...]:
    """The columns of a built-in kind with their descriptions looked up (once)."""
    columns = _PRINTERS[key][0] if key in _PRINTERS else _DEFAULT_COLUMNS
    return tuple((n, t, f, _describe(d), p) for n, t, f, d, p in columns)


def _column_dicts(columns: Sequence[_Col]) -> list[Obj]:
    return [
        {"name": n, "type": t, "format": f, "description": d, "priority": p}
        for n, t, f, d, p in columns
    ]


# --- JSONPath (client-go's k8s.io/client-go/util/jsonpath, the subset CRDs use) ----------
class JsonPathError(ValueError):
    """A JSONPath that does not parse, or that fails on the object it is evaluated on."""


_Step = tuple[Any, ...]
_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


@functools.lru_cache(maxsize=1024)
def compile_jsonpath(expression: str) -> tuple[_Step, ...]:
    """Parse a JSONPath such as ``.status.conditions[?(@.type=="Ready")].status``.

    Supported: ``.field`` (with ``\\.`` escapes), ``['field']``, ``.*``, ``[*]``,
    ``[n]`` (negative from the end), ``[a:b:c]``, unions ``[0,2]`` / ``['a','b']``,
    ``..field`` (recursive descent) and filters ``[?(@.a.b == "x")]`` with ``==``,
    ``!=``, ``<``, ``>``, ``<=``, ``>=`` or a bare existence test ``[?(@.a)]``.
    """
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps, pos = _parse_steps(text, 0, root_chars="$")
    if pos != len(text):
        raise JsonPathError(f"unrecognized character in {expression!r} at {pos}")
    return steps


def _parse_steps(text: str, pos: int, root_chars: str) -> tuple[tuple[_Step, ...], int]:
    steps: list[_Step] = []
    if pos < len(text) and text[pos] in root_chars:
        pos += 1
    while pos < len(text):
        char = text[pos]
        if char in " \t":
            pos += 1
        elif text.startswith("..", pos):
            steps.append(("recursive",))
            pos += 2
            if pos < len(text) and text[pos] not in "[":
                name, pos = _parse_name(text, pos)
                steps.append(("wildcard",) if name == "*" else ("field", name))
        elif char == ".":
            name, pos = _parse_name(text, pos + 1)
            if name == "*":
                steps.append(("wildcard",))
            elif name:
                steps.append(("field", name))
        elif char == "[":
            end = _bracket_end(text, pos)
            steps.append(_parse_bracket(text[pos + 1 : end].strip()))
            pos = end + 1
        else:
            break
    return tuple(steps), pos


def _parse_name(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if char in _TERMINATORS:
            break
        out.append(char)
        pos += 1
    return "".join(out), pos


def _bracket_end(text: str, start: int) -> int:
    depth = 0
    quote = ""
    pos = start
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    raise JsonPathError(f"unclosed bracket in {text!r}")


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return None


def _parse_bracket(inner: str) -> _Step:
    if inner.startswith("?"):
        body = inner[1:].strip()
        if not (body.startswith("(") and body.endswith(")")):
            raise JsonPathError(f"invalid filter [{inner}]")
        return _parse_filter(body[1:-1].strip())
    if inner == "*":
        return ("slice", None, None, None)
    parts = _split_top(inner, ",")
    if len(parts) > 1:
        return ("union", tuple(_parse_bracket(p) for p in parts))
    quoted = _unquote(inner)
    if quoted is not None:
        return ("field", quoted)
    if ":" in inner:
        pieces = [p.strip() for p in inner.split(":")]
        if len(pieces) > 3:
            raise JsonPathError(f"invalid slice [{inner}]")
        values = [_parse_int(p) if p else None for p in pieces] + [None] * (3 - len(pieces))
        return ("slice", values[0], values[1], values[2])
    return ("index", _parse_int(inner))


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise JsonPathError(f"invalid array index {text!r}") from None


def _parse_filter(body: str) -> _Step:
    quote = ""
    for pos, char in enumerate(body):
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
            continue
        for op in _OPERATORS:
            if body.startswith(op, pos):
                left = _parse_operand(body[:pos].strip())
                right = _parse_operand(body[pos + len(op) :].strip())
                return ("filter", op, left, right)
    return ("filter", "exists", _parse_operand(body), None)


def _parse_operand(text: str) -> tuple[str, Any]:
    if not text:
        raise JsonPathError("empty filter operand")
    if text[0] in "@$":
        steps, pos = _parse_steps(text, 0, root_chars="@$")
        if pos != len(text):
            raise JsonPathError(f"invalid filter operand {text!r}")
        return ("path", steps)
    quoted = _unquote(text)
    if quoted is not None:
        return ("literal", quoted)
    if text in ("true", "false"):
        return ("literal", text == "true")
    try:
        return ("literal", int(text))
    except ValueError:
        pass
    try:
        return ("literal", float(text))
    except ValueError:
        raise JsonPathError(f"invalid filter operand {text!r}") from None


def evaluate_jsonpath(steps: Sequence[_Step], root: Any) -> list[Any]:
    """All values the compiled path reaches in ``root`` (missing keys yield nothing)."""
    current: list[Any] = [root]
    for step in steps:
        current = _apply(step, current, root)
    return current


def _apply(step: _Step, values: list[Any], root: Any) -> list[Any]:
    kind = step[0]
    out: list[Any] = []
    if kind == "field":
        name = step[1]
        for value in values:
            if isinstance(value, dict) and name in value:
                out.append(value[name])
    elif kind == "wildcard":
        for value in values:
            if isinstance(value, dict):
                out.extend(value.values())
            elif isinstance(value, list):
                out.extend(value)
    elif kind == "index":
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list):
                raise JsonPathError("not an array")
            index = step[1] + len(value) if step[1] < 0 else step[1]
            if not 0 <= index < len(value):
                raise JsonPathError("array index out of bounds")
            out.append(value[index])
    elif kind == "slice":
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list):
                raise JsonPathError("not an array")
            out.extend(_slice(value, step[1], step[2], step[3]))
    elif kind == "union":
        for sub in step[1]:
            out.extend(_apply(sub, values, root))
    elif kind == "recursive":
        for value in values:
            _descend(value, out)
    elif kind == "filter":
        for value in values:
            if not isinstance(value, list):
                raise JsonPathError("only arrays can be filtered")
            out.extend(item for item in value if _filter_passes(step, item, root))
    return out


def _slice(value: list[Any], start: int | None, end: int | None, step: int | None) -> list[Any]:
    length = len(value)
    begin = 0 if start is None else (start + length if start < 0 else start)
    stop = length if end is None else (end + length if end < 0 else end)
    if begin == stop:
        return []
    if not 0 <= begin < length or not 0 <= stop <= length or begin > stop:
        raise JsonPathError("array index out of bounds")
    if step is not None and step <= 0:
        raise JsonPathError("step must be > 0")
    return value[begin : stop : step or 1]


def _descend(value: Any, out: list[Any]) -> None:
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return
    if children:
        out.append(value)
        for child in children:
            _descend(child, out)


def _operand_values(operand: tuple[str, Any], item: Any, root: Any) -> list[Any]:
    if operand[0] == "literal":
        return [operand[1]]
    return evaluate_jsonpath(operand[1], item)


def _filter_passes(step: _Step, item: Any, root: Any) -> bool:
    _, op, left_operand, right_operand = step
    try:
        lefts = _operand_values(left_operand, item, root)
    except JsonPathError:
        if op == "exists":
            return False
        raise
    if op == "exists":
        return bool(lefts)
    if not lefts:
        return False
    rights = _operand_values(right_operand, item, root)
    if not rights:
        return False
    if len(lefts) > 1 or len(rights) > 1:
        raise JsonPathError("can only compare one element at a time")
    return _compare(op, lefts[0], rights[0])


def _basic_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _compare(op: str, left: Any, right: Any) -> bool:
    """Go text/template's eq/ne/lt/le/gt/ge: only values of the same basic kind compare."""
    left_kind, right_kind = _basic_kind(left), _basic_kind(right)
    if left_kind != right_kind or left_kind == "other":
        raise JsonPathError("incompatible types for comparison")
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left_kind == "bool":
        raise JsonPathError("invalid type for comparison")
    if op == "<":
        return bool(left < right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    return bool(left >= right)


def _go_float(value: float) -> str:
    """Go's ``fmt.Print`` of a float64: ``%g`` with the shortest digits (``1e+06``, ``0.5``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    shortest = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(str(d) for d in shortest.digits).lstrip("0")
    exponent = int(shortest.exponent) + len(digits) - len(digits.rstrip("0"))
    digits = digits.rstrip("0")
    point = len(digits) + exponent  # digits before the decimal point
    if not -4 <= point - 1 < 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        power = point - 1
        return f"{sign}{digits[0]}{tail}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_json(value: Any) -> str:
    """``encoding/json.Marshal`` of decoded JSON: sorted keys, HTML-safe, Go numbers."""

    def normalise(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer() and abs(item) < 1e21:
            return int(item)
        if isinstance(item, dict):
            return {str(k): normalise(v) for k, v in item.items()}
        if isinstance(item, list):
            return [normalise(v) for v in item]
        return item

    text = json.dumps(normalise(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _jsonpath_text(value: Any) -> str | None:
    """client-go ``PrintResults`` of one value: JSON for objects and arrays, else ``%v``."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return _go_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _cell_for_json_value(column_type: str, value: Any, now: datetime) -> Any:
    """The apiextensions table convertor's typed cell (None when the value does not fit)."""
    if value is None or (isinstance(value, bool) and column_type in ("integer", "number")):
        return None
    if column_type == "integer" and isinstance(value, int | float):
        return int(value)
    if column_type == "number" and isinstance(value, int | float):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "string" and isinstance(value, str):
        return value
    if column_type == "date" and isinstance(value, str):
        # metav1.Time.UnmarshalQueryParameter, then ConvertToHumanReadableDateType.
        if value in ("", "null"):
            return _UNKNOWN
        if not _RFC3339.match(value):
            return "<invalid>"
        parsed = _parse_time(value)
        return _UNKNOWN if parsed is None else human_duration(now - parsed)
    return None


# apiextensions-apiserver serves this column when a CRD version defines none.
_CRD_AGE_COLUMN: Obj = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

_CrdColumn = tuple[Obj, tuple[_Step, ...]]


def _crd_columns(printer_columns: Sequence[Obj]) -> list[_CrdColumn]:
    """The column definitions after Name with their compiled paths. As in the apiextensions
    server, the first column whose JSONPath does not parse ends the list."""
    columns: list[_CrdColumn] = []
    for column in printer_columns or (_CRD_AGE_COLUMN,):
        path = str(column.get("jsonPath", ""))
        try:
            steps = compile_jsonpath(path)
        except JsonPathError:
            break
        if column is _CRD_AGE_COLUMN:
            description = _describe(_AGE_DOC)
        else:
            description = str(column.get("description") or "") or (
                f"Custom resource definition column (in JSONPath format): {path}"
            )
        definition = {
            "name": str(column.get("name", "")),
            "type": str(column.get("type", "")),
            "format": str(column.get("format") or ""),
            "description": description,
            "priority": _int(column.get("priority")),
        }
        columns.append((definition, steps))
    return columns


def _crd_cells(columns: list[_CrdColumn], obj: Obj, now: datetime) -> Cells:
    cells: Cells = [_name(obj)]
    for definition, steps in columns:
        try:
            found = evaluate_jsonpath(steps, obj)
        except JsonPathError:
            cells.append(None)
            continue
        if not found:
            cells.append(None)
            continue
        value = found[0]  # simple paths: only the first result counts
        if definition["type"] == "string":
            cells.append(_jsonpath_text(value))
        else:
            cells.append(_cell_for_json_value(definition["type"], value, now))
    return cells


# --- tables ---------------------------------------------------------------------------
def _row_object(obj: Obj, include_object: str, api_version: str) -> Any:
    if include_object == "Metadata":
        return {
            "kind": "PartialObjectMetadata",
            "apiVersion": api_version,
            "metadata": obj.get("metadata") or {},
        }
    if include_object == "Object":
        return obj
    return None


def _check(include_object: str, api_version: str) -> str:
    if api_version not in TABLE_API_VERSIONS:
        raise not_acceptable(f"no Table exists in group version {api_version}")
    if include_object == "":
        return "Metadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{include_object}"')
    return include_object


def _convert(
    info: ResourceInfo,
    objects: Sequence[Obj],
    now: datetime,
    include_object: str,
    api_version: str,
) -> tuple[list[Obj], list[Obj], bool]:
    """(column definitions, rows, whether the columns are sent even without headers)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rows: list[Obj] = []
    if info.custom is not None:
        columns = _crd_columns(info.custom.printer_columns)
        definitions = _column_dicts([(*NAME[:3], _describe(_NAME_DOC), 0)])
        definitions.extend(dict(c) for c, _ in columns)
        for obj in objects:
            rows.append(
                {
                    "cells": _crd_cells(columns, obj, now),
                    "object": _row_object(obj, include_object, api_version),
                }
            )
        return definitions, rows, False

    key = (info.group, info.kind)
    printer = _PRINTERS[key][1] if key in _PRINTERS else _print_default
    conditions = _ROW_CONDITIONS.get(key)
    order = _LIST_ORDER.get(key)
    if order is not None and len(objects) > 1:
        objects = sorted(objects, key=order)
    for obj in objects:
        row: Obj = {"cells": printer(obj, now)}
        if conditions is not None:
            found = conditions(obj)
            if found:
                row["conditions"] = [dict(c) for c in found]
        row["object"] = _row_object(obj, include_object, api_version)
        rows.append(row)
    return _column_dicts(_builtin_columns(key)), rows, key in _ALWAYS_HEADERS


def to_table(
    info: ResourceInfo,
    objects: Sequence[dict[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
    api_version: str = "meta.k8s.io/v1",
) -> dict[str, Any]:
    """The ``Table`` of a list of ``info``'s objects, as kube-apiserver serves it.

    ``include_object`` is the ``includeObject`` query parameter: ``"Metadata"`` (the
    default; each row carries a ``PartialObjectMetadata``), ``"Object"`` (the whole
    object, already in the requested version) or ``"None"`` (``"object": null``).
    ``resource_version``, ``continue_token`` and ``remaining`` become the Table's list
    metadata (for a get of one object, pass that object's resourceVersion).
    ``api_version`` is ``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``, as the Accept header
    asked. Raises :class:`~kubemodel.errors.ApiError` (400 / 406) for other values.
    """
    include_object = _check(include_object, api_version)
    columns, rows, _ = _convert(info, objects, now, include_object, api_version)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }


def table_row_for_watch(
    info: ResourceInfo,
    obj: dict[str, Any],
    *,
    now: datetime,
    include_object: str = "Metadata",
    headers: bool = False,
    api_version: str = "meta.k8s.io/v1",
) -> dict[str, Any]:
    """The one-row ``Table`` that is the object of a watch event (``kubectl get -w``).

    kube-apiserver sends the column definitions with the first event of a watch only and
    ``"columnDefinitions": null`` with every later one; pass ``headers=True`` for the first
    event. The Table's ``metadata.resourceVersion`` is the object's. (APIService tables
    always carry their columns, as kube-aggregator's convertor ignores noHeaders.)
    """
    include_object = _check(include_object, api_version)
    columns, rows, always = _convert(info, [obj], now, include_object, api_version)
    metadata: dict[str, Any] = {}
    resource_version = (obj.get("metadata") or _EMPTY).get("resourceVersion")
    if resource_version:
        metadata["resourceVersion"] = str(resource_version)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns if headers or always else None,
        "rows": rows,
    }
