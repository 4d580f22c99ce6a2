"""Resource arithmetic for scheduling: a pod's effective requests (component-helpers'
``PodRequests``) and a node's allocatable, as plain integers.

Who calls it: :mod:`runtime.scheduler.podinfo` and :mod:`runtime.scheduler.nodeinfo`.
A pod's request is the sum of its containers, raised to the largest init container
(each init container counted with the restartable — sidecar — init containers started
before it, while sidecars also add to the sum), plus ``spec.overhead``; pod-level
``spec.resources.requests`` replace the aggregate for cpu and memory. The "non-zero"
variant counts a container without a cpu/memory request as 100m/200Mi, which scoring
uses so that best-effort pods still spread. cpu is in millicores, everything else in
whole units (quantities are rounded up, as ``Quantity.MilliValue``/``Value`` do).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING
from functools import lru_cache
from typing import Any

from runtime.api.quantity import parse

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL = "ephemeral-storage"
PODS = "pods"
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
_POD_LEVEL = frozenset({CPU, MEMORY})


@lru_cache(maxsize=16384)
def _amount(value: str | int | float, milli: bool) -> int:
    q = parse(value)
    if q is None:
        return 0
    if milli:
        q = q * 1000
    return int(q.to_integral_value(rounding=ROUND_CEILING))


def amount(name: str, value: Any) -> int:
    """A quantity as an int: millicores for cpu, whole units otherwise (rounded up)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return 0
    return _amount(value, name == CPU)


def resource_list(raw: Any) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): amount(str(k), v) for k, v in raw.items()}


def _add(into: dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        into[k] = max(into.get(k, 0), v)


def _container_requests(container: Mapping[str, Any], non_missing: bool) -> dict[str, int]:
    reqs = resource_list((container.get("resources") or {}).get("requests"))
    if non_missing:
        if CPU not in reqs:
            reqs[CPU] = DEFAULT_MILLI_CPU
        if MEMORY not in reqs:
            reqs[MEMORY] = DEFAULT_MEMORY
    return reqs


def pod_requests(spec: Mapping[str, Any], *, non_missing: bool = False) -> dict[str, int]:
    """The pod's effective requests (with overhead); ``non_missing`` applies the
    100m/200Mi defaults to containers that request no cpu/memory."""
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or []:
        _add(reqs, _container_requests(c, non_missing))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        creqs = _container_requests(c, non_missing)
        if c.get("restartPolicy") == "Always":
            _add(reqs, creqs)
            _add(sidecars, creqs)
            use = dict(sidecars)
        else:
            use = dict(creqs)
            _add(use, sidecars)
        _max(init_max, use)
    _max(reqs, init_max)
    pod_level = resource_list((spec.get("resources") or {}).get("requests"))
    for name, value in pod_level.items():
        if name in _POD_LEVEL:
            reqs[name] = value
    overhead = resource_list(spec.get("overhead"))
    _add(reqs, overhead)
    reqs.pop(PODS, None)
    return reqs


def scalar_resources(reqs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Extended resources, hugepages and other non-standard names with a non-zero value."""
    return tuple(
        sorted((k, v) for k, v in reqs.items() if k not in (CPU, MEMORY, EPHEMERAL, PODS) and v)
    )


def is_extended(name: str) -> bool:
    """``IsExtendedResourceName``: a domain-qualified name outside kubernetes.io."""
    return (
        "/" in name and not name.startswith("kubernetes.io/") and not name.startswith("requests.")
    )


__all__ = [
    "CPU",
    "DEFAULT_MEMORY",
    "DEFAULT_MILLI_CPU",
    "EPHEMERAL",
    "MEMORY",
    "PODS",
    "amount",
    "pod_requests",
    "resource_list",
    "scalar_resources",
]
