"""The HorizontalPodAutoscaler controller (autoscaling/v2): scales a workload through its
``scale`` subresource so that its pods' resource usage meets the HPA's targets —
kube-controller-manager's ``pkg/controller/podautoscaler``.

Who runs it: the controller manager (``--controllers horizontalpodautoscaling``).
Settings (``--controller-option horizontalpodautoscaling.<key>=<value>``):
``sync-period`` (15 s, ``--horizontal-pod-autoscaler-sync-period``),
``downscale-stabilization`` (300 s, the default scale-down stabilization window),
``tolerance`` (0.1), ``cpu-initialization-period`` (300 s) and
``initial-readiness-delay`` (30 s).

Kubernetes semantics followed:

- every sync period each HPA is reconciled: the target's Scale is read
  (``GET .../scale``; apps/v1 Deployments, ReplicaSets, StatefulSets and v1
  ReplicationControllers), its pods are those matching ``scale.status.selector``, and
  their usage comes from the resource metrics API (``metrics.k8s.io``) through the API
  server, as Kubernetes' REST metrics client reads it;
- ``Resource`` and ``ContainerResource`` metrics, targets ``Utilization`` (percent of
  the pods' container requests; a container without a request makes it impossible:
  ScalingActive False ``FailedGetResourceMetric``) and ``AverageValue``; ``Pods``,
  ``Object`` and ``External`` metrics need a custom/external metrics API this cluster
  does not serve and are reported as invalid (``FailedGetPodsMetric`` …);
- the replica calculation is replica_calculator.go's (:func:`resource_replicas`,
  :func:`plain_replicas`): ``ceil(ready * ratio)`` outside the tolerance; pending,
  failed and deleting pods are ignored; unready pods (the CPU initialization rules)
  count as 0 % when scaling up; pods without metrics count as 100 % (or the target)
  when scaling down and 0 % when scaling up; a result that flips direction is dropped;
- with several metrics the largest proposal wins; invalid metrics stop a scale down;
- the proposal is stabilized over the windows (scale down: ``behavior.scaleDown.
  stabilizationWindowSeconds`` or the controller default; scale up: 0 s by default) and
  limited by the scaling policies (Pods/Percent per ``periodSeconds``, ``selectPolicy``
  Max/Min/Disabled; defaults: up max(100 %, 4 pods) per 15 s, down 100 % per 15 s), then
  clamped to ``minReplicas``/``maxReplicas`` (:class:`Normalizer`);
- status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime,
  observedGeneration and the AbleToScale / ScalingActive / ScalingLimited conditions;
  events ``SuccessfulRescale``, ``FailedRescale``, ``FailedGetScale``,
  ``FailedComputeMetricsReplicas`` and the per-metric ``FailedGet…Metric``.

The stabilization and rate-limit history lives in memory, as in kube-controller-manager
(a restart starts it again from the current replica count).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING
from typing import Any

import structlog

from kubeclient.informer import key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from kubemodel.errors import ApiError
from runtime.api import quantity
from runtime.api.selectors import parse_label_selector
from runtime.controllers.common import now_rfc3339, parse_time, pod_condition
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

#: scaleTargetRef kind -> (API group, plural) for the built-in scalable workloads.
SCALABLE: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "ReplicationController": ("", "replicationcontrollers"),
}

DEFAULT_SCALE_UP: Obj = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
DEFAULT_SCALE_DOWN: Obj = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


class MetricError(Exception):
    """A metric that cannot be computed; ``reason`` becomes the ScalingActive reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- quantities -------------------------------------------------------------------------
def milli(value: Any) -> int:
    """A quantity in thousandths, rounded up (Quantity.MilliValue)."""
    parsed = quantity.parse(value)
    if parsed is None:
        raise ValueError(f"invalid quantity {value!r}")
    return int((parsed * 1000).to_integral_value(rounding=ROUND_CEILING))


def milli_quantity(value: int) -> str:
    """Thousandths as a quantity string (``"250m"``, ``"3"``)."""
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


# --- the replica calculation (replica_calculator.go) -----------------------------------
@dataclass(frozen=True)
class PodMetric:
    """A pod's usage of one resource, in thousandths (cpu millicores, memory millibytes)."""

    value: int
    timestamp: float
    window: float = 0.0


@dataclass(frozen=True)
class Tolerance:
    """The ratio band around 1.0 in which no scaling happens."""

    down: float = 0.1
    up: float = 0.1

    def within(self, ratio: float) -> bool:
        return (1.0 - self.down) <= ratio <= (1.0 + self.up)


@dataclass(frozen=True)
class Readiness:
    """groupPods' timing: CPU samples of recently started pods may be unrepresentative."""

    cpu_initialization_period: float = 300.0
    initial_readiness_delay: float = 30.0


@dataclass
class PodGroups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def group_pods(
    pods: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now: float,
    readiness: Readiness = Readiness(),
) -> PodGroups:
    """Sort pods into ready-with-metrics, unready, missing metrics and ignored."""
    groups = PodGroups()
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        name = str(meta.get("name"))
        phase = status.get("phase")
        if meta.get("deletionTimestamp") or phase in ("Failed", "Pending"):
            groups.ignored.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            groups.missing.add(name)
            continue
        if resource == "cpu":
            ready = pod_condition(pod, "Ready")
            start = parse_time(status.get("startTime"))
            transition = parse_time((ready or {}).get("lastTransitionTime"))
            if ready is None or start is None:
                unready = True
            elif start + readiness.cpu_initialization_period > now:
                unready = ready.get("status") == "False" or (
                    transition is not None and metric.timestamp < transition + metric.window
                )
            else:
                unready = (
                    ready.get("status") == "False"
                    and transition is not None
                    and start + readiness.initial_readiness_delay > transition
                )
            if unready:
                groups.unready.add(name)
                continue
        groups.ready += 1
    return groups


def pod_requests(
    pods: Sequence[Mapping[str, Any]], resource: str, container: str = ""
) -> dict[str, int]:
    """Each pod's request of ``resource`` (thousandths), summed over its containers (or
    the named one); raises MetricError when a container has none."""
    out: dict[str, int] = {}
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name"))
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                raise MetricError(
                    "FailedGetResourceMetric",
                    f"missing request for {resource} in container {c.get('name')} of Pod {name}",
                )
            total += milli(request)
        out[name] = total
    return out


@dataclass(frozen=True)
class Proposal:
    replicas: int
    #: Utilization percent (Utilization targets) — the value before filling gaps.
    utilization: int | None
    #: Average value per pod, thousandths.
    average: int


def _utilization(
    metrics: Mapping[str, PodMetric], requests: Mapping[str, int], target: int
) -> tuple[float, int, int]:
    used = requested = 0
    for name, metric in metrics.items():
        if name not in requests:
            raise MetricError(
                "FailedGetResourceMetric", f"pod {name} does not exist or has no request"
            )
        used += metric.value
        requested += requests[name]
    if requested == 0:
        raise MetricError("FailedGetResourceMetric", "no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // len(metrics)


def resource_replicas(
    current: int,
    target_utilization: int,
    pods: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now: float,
    *,
    container: str = "",
    tolerance: Tolerance = Tolerance(),
    readiness: Readiness = Readiness(),
) -> Proposal:
    """GetResourceReplicas: replicas for a target utilization (percent of requests)."""
    if not pods:
        raise MetricError(
            "FailedGetResourceMetric",
            "no pods returned by selector while calculating replica count",
        )
    groups = group_pods(pods, metrics, resource, now, readiness)
    usable = {
        n: m
        for n, m in metrics.items()
        if n not in groups.ignored and n not in groups.unready and n not in groups.missing
    }
    usable = {n: m for n, m in usable.items() if any(_name(p) == n for p in pods)}
    if not usable:
        raise MetricError(
            "FailedGetResourceMetric",
            "did not receive metrics for targeted pods (pods might be unready)",
        )
    requests = pod_requests(pods, resource, container)
    ratio, utilization, average = _utilization(usable, requests, target_utilization)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerance.within(ratio):
            return Proposal(current, utilization, average)
        return Proposal(math.ceil(ratio * groups.ready), utilization, average)
    filled = dict(usable)
    if groups.missing:
        fallback = max(100, target_utilization)
        for name in groups.missing:
            if ratio < 1.0:
                filled[name] = PodMetric(requests[name] * fallback // 100, now)
            elif ratio > 1.0:
                filled[name] = PodMetric(0, now)
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = PodMetric(0, now)
    new_ratio, _, _ = _utilization(filled, requests, target_utilization)
    return Proposal(
        _settle(current, ratio, new_ratio, len(filled), tolerance), utilization, average
    )


def plain_replicas(
    current: int,
    target_average: int,
    pods: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now: float,
    *,
    tolerance: Tolerance = Tolerance(),
    readiness: Readiness = Readiness(),
) -> Proposal:
    """GetRawResourceReplicas / calcPlainMetricReplicas: replicas for an average value
    per pod (thousandths)."""
    if not pods:
        raise MetricError(
            "FailedGetResourceMetric",
            "no pods returned by selector while calculating replica count",
        )
    if target_average <= 0:
        raise MetricError("FailedGetResourceMetric", "the target average value must be positive")
    groups = group_pods(pods, metrics, resource, now, readiness)
    names = {_name(p) for p in pods}
    usable = {
        n: m
        for n, m in metrics.items()
        if n in names and n not in groups.ignored and n not in groups.unready
    }
    if not usable:
        raise MetricError(
            "FailedGetResourceMetric",
            "did not receive metrics for targeted pods (pods might be unready)",
        )
    average = sum(m.value for m in usable.values()) // len(usable)
    ratio = sum(m.value for m in usable.values()) / len(usable) / target_average
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerance.within(ratio):
            return Proposal(current, None, average)
        return Proposal(math.ceil(ratio * groups.ready), None, average)
    filled = dict(usable)
    if groups.missing:
        for name in groups.missing:
            if ratio < 1.0:
                filled[name] = PodMetric(target_average, now)
            else:
                filled[name] = PodMetric(0, now)
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = PodMetric(0, now)
    new_ratio = sum(m.value for m in filled.values()) / len(filled) / target_average
    return Proposal(_settle(current, ratio, new_ratio, len(filled), tolerance), None, average)


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name"))


def _settle(current: int, ratio: float, new_ratio: float, count: int, tol: Tolerance) -> int:
    """The second pass: no change inside the tolerance or when filling the gaps flipped
    the direction of the change."""
    if (
        tol.within(new_ratio)
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


# --- stabilization and scaling policies (horizontal.go) --------------------------------
@dataclass
class _Recommendation:
    replicas: int
    at: float


@dataclass
class _ScaleEvent:
    change: int
    at: float
    outdated: bool = False


@dataclass(frozen=True)
class Normalized:
    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


def rules(behavior: Mapping[str, Any] | None, direction: str) -> Obj:
    """The behavior's scaleUp/scaleDown rules with Kubernetes' defaults filled in."""
    given = (behavior or {}).get(direction) or {}
    out = copy.deepcopy(DEFAULT_SCALE_UP if direction == "scaleUp" else DEFAULT_SCALE_DOWN)
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
        if given.get(key) is not None:
            out[key] = copy.deepcopy(given[key])
    return out


def _change_in_period(period: float, events: Sequence[_ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def _policy_starts(
    current: int,
    up_events: Sequence[_ScaleEvent],
    down_events: Sequence[_ScaleEvent],
    scaling: Mapping[str, Any],
    now: float,
) -> list[tuple[bool, int, int]]:
    """For each scaling policy: whether it is a ``Pods`` policy, its value, and the
    replica count at the start of its period (the current count less the scale-ups and
    plus the scale-downs made within it)."""
    out = []
    for policy in scaling.get("policies") or []:
        period = float(policy.get("periodSeconds") or 0)
        start = (
            current
            - _change_in_period(period, up_events, now)
            + _change_in_period(period, down_events, now)
        )
        out.append((policy.get("type") == "Pods", int(policy.get("value") or 0), start))
    return out


def scale_up_limit(
    current: int,
    up_events: Sequence[_ScaleEvent],
    down_events: Sequence[_ScaleEvent],
    scaling: Mapping[str, Any],
    now: float,
) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    select = scaling.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = [
        start + value if pods else math.ceil(start * (1 + value / 100))
        for pods, value, start in _policy_starts(current, up_events, down_events, scaling, now)
    ]
    if not results:
        return current
    return min(results) if select == "Min" else max(results)


def scale_down_limit(
    current: int,
    up_events: Sequence[_ScaleEvent],
    down_events: Sequence[_ScaleEvent],
    scaling: Mapping[str, Any],
    now: float,
) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    select = scaling.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = [
        start - value if pods else int(start * (1 - value / 100))
        for pods, value, start in _policy_starts(current, up_events, down_events, scaling, now)
    ]
    if not results:
        return current
    # Max picks the policy allowing the largest change, i.e. the lowest count.
    return max(results) if select == "Min" else min(results)


class Normalizer:
    """Per-HPA recommendation history (stabilization) and scale events (rate limits):
    normalizeDesiredReplicasWithBehaviors. ``clock`` gives unix seconds."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        default_downscale_window: float = 300.0,
    ) -> None:
        self.clock = clock
        self.default_downscale_window = default_downscale_window
        self.recommendations: dict[str, list[_Recommendation]] = {}
        self.up_events: dict[str, list[_ScaleEvent]] = {}
        self.down_events: dict[str, list[_ScaleEvent]] = {}

    def forget(self, key: str) -> None:
        self.recommendations.pop(key, None)
        self.up_events.pop(key, None)
        self.down_events.pop(key, None)

    def record_initial(self, key: str, current: int) -> None:
        """recordInitialRecommendation: the first sync remembers the current count."""
        if key not in self.recommendations:
            self.recommendations[key] = [_Recommendation(current, self.clock())]

    def _stabilize(
        self, key: str, current: int, desired: int, up_window: float, down_window: float
    ) -> int:
        now = self.clock()
        up_cutoff, down_cutoff = now - up_window, now - down_window
        up_rec = down_rec = desired
        history = self.recommendations.setdefault(key, [])
        old: int | None = None
        for i, rec in enumerate(history):
            if rec.at > up_cutoff:
                up_rec = min(rec.replicas, up_rec)
            if rec.at > down_cutoff:
                down_rec = max(rec.replicas, down_rec)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                old = i
        recommendation = max(current, up_rec)
        recommendation = min(recommendation, down_rec)
        if old is not None:
            history[old] = _Recommendation(desired, now)
        else:
            history.append(_Recommendation(desired, now))
        return recommendation

    def normalize(
        self,
        key: str,
        behavior: Mapping[str, Any] | None,
        current: int,
        desired: int,
        min_replicas: int,
        max_replicas: int,
    ) -> Normalized:
        up, down = rules(behavior, "scaleUp"), rules(behavior, "scaleDown")
        down_window = down.get("stabilizationWindowSeconds")
        stabilized = self._stabilize(
            key,
            current,
            desired,
            float(up.get("stabilizationWindowSeconds") or 0),
            float(self.default_downscale_window if down_window is None else down_window),
        )
        if stabilized > desired:
            able = (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, "
                "applying the highest recent recommendation",
            )
        elif stabilized < desired:
            able = (
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, "
                "applying the lowest recent recommendation",
            )
        else:
            able = ("ReadyForNewScale", "recommended size matches current size")
        now = self.clock()
        ups, downs = self.up_events.get(key, []), self.down_events.get(key, [])
        final, reason, message = (
            stabilized,
            "DesiredWithinRange",
            ("the desired count is within the acceptable range"),
        )
        if stabilized > current:
            limit = max(scale_up_limit(current, ups, downs, up, now), current)
            if max_replicas > limit:
                allowed, why = (
                    limit,
                    (
                        "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate",
                    ),
                )
            else:
                allowed, why = (
                    max_replicas,
                    (
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            if stabilized > allowed:
                final, (reason, message) = allowed, why
        elif stabilized < current:
            limit = min(scale_down_limit(current, ups, downs, down, now), current)
            if min_replicas < limit:
                allowed, why = (
                    limit,
                    (
                        "ScaleDownLimit",
                        "the desired replica count is decreasing faster than the maximum scale rate",
                    ),
                )
            else:
                allowed, why = (
                    min_replicas,
                    (
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            if stabilized < allowed:
                final, (reason, message) = allowed, why
        return Normalized(final, able[0], able[1], final != stabilized, reason, message)

    def record_scale(
        self, key: str, behavior: Mapping[str, Any] | None, previous: int, new: int
    ) -> None:
        """storeScaleEvent: remember a rescale for the policies' periods."""
        if new == previous:
            return
        now = self.clock()
        direction = "scaleUp" if new > previous else "scaleDown"
        events = (self.up_events if new > previous else self.down_events).setdefault(key, [])
        longest = max(
            (float(p.get("periodSeconds") or 0) for p in rules(behavior, direction)["policies"]),
            default=0.0,
        )
        for e in events:
            if e.at < now - longest:
                e.outdated = True
        event = _ScaleEvent(abs(new - previous), now)
        for i, e in enumerate(events):
            if e.outdated:
                events[i] = event
                return
        events.append(event)


def tolerance_of(behavior: Mapping[str, Any] | None, default: float) -> Tolerance:
    """Per-direction tolerances (behavior.scaleUp/scaleDown.tolerance, else the default)."""

    def one(direction: str) -> float:
        raw = ((behavior or {}).get(direction) or {}).get("tolerance")
        if raw is None:
            return default
        parsed = quantity.parse(raw)
        return float(parsed) if parsed is not None else default

    return Tolerance(down=one("scaleDown"), up=one("scaleUp"))


# --- conditions -------------------------------------------------------------------------
def set_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """Set a condition, keeping lastTransitionTime unless the status changes."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == kind:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now_rfc3339()
            cond.update({"status": value, "reason": reason, "message": message})
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "lastTransitionTime": now_rfc3339(),
            "reason": reason,
            "message": message,
        }
    )


# --- the controller ---------------------------------------------------------------------
@dataclass
class _MetricResult:
    replicas: int
    status: Obj
    name: str
    timestamp: float


class HorizontalPodAutoscalerController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.recorder = ctx.recorder("horizontal-pod-autoscaler")
        self.period = ctx.setting("horizontalpodautoscaling.sync-period", 15.0)
        self.tolerance = ctx.setting("horizontalpodautoscaling.tolerance", 0.1)
        self.readiness = Readiness(
            cpu_initialization_period=ctx.setting(
                "horizontalpodautoscaling.cpu-initialization-period", 300.0
            ),
            initial_readiness_delay=ctx.setting(
                "horizontalpodautoscaling.initial-readiness-delay", 30.0
            ),
        )
        self.normalizer = Normalizer(
            default_downscale_window=ctx.setting(
                "horizontalpodautoscaling.downscale-stabilization", 300.0
            )
        )
        self.hpas = ctx.informers.informer("autoscaling/v2", "horizontalpodautoscalers")
        self.pods = ctx.informers.informer("v1", "pods")
        self.pods.add_index("namespace", _namespace_index)
        self.hpas.on(add=self._add, update=self._update, delete=self._delete)

    # --- handlers (enqueue only) -----------------------------------------------------
    def _add(self, hpa: Obj) -> None:
        self.queue.add(key_of(hpa))

    def _update(self, old: Obj, new: Obj) -> None:
        if old.get("spec") != new.get("spec"):
            self.queue.add(key_of(new))

    def _delete(self, hpa: Obj) -> None:
        self.normalizer.forget(key_of(hpa))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        try:
            await run_workers(self.queue, self.sync, workers=2, name="horizontalpodautoscaling")
        finally:
            self.queue.shutdown()

    # --- reconcile -------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.hpas.get(key)
        if cached is None:
            self.normalizer.forget(key)
            return
        try:
            await self._reconcile(key, copy.deepcopy(cached))
        finally:
            self.queue.add_after(key, self.period)

    async def _reconcile(self, key: str, hpa: Obj) -> None:
        hpa.setdefault("apiVersion", "autoscaling/v2")
        hpa.setdefault("kind", "HorizontalPodAutoscaler")
        namespace, _ = split_key(key)
        spec = hpa.get("spec") or {}
        before = copy.deepcopy(hpa.get("status") or {})
        status: Obj = copy.deepcopy(before)
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", 0)
        generation = (hpa.get("metadata") or {}).get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        ref = spec.get("scaleTargetRef") or {}
        try:
            api_version, plural = self._target(ref)
            scale = await self.client.get(
                api_version, plural, str(ref.get("name")), namespace, subresource="scale"
            )
        except (KubeError, MetricError) as exc:
            message = f"the HPA controller was unable to get the target's current scale: {exc}"
            set_condition(status, "AbleToScale", "False", "FailedGetScale", message)
            self.recorder.event(hpa, "Warning", "FailedGetScale", "", str(exc))
            await self._write_status(hpa, before, status)
            return
        set_condition(
            status,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status["currentReplicas"] = current
        self.normalizer.record_initial(key, current)
        min_replicas = int(1 if spec.get("minReplicas") is None else spec["minReplicas"])
        max_replicas = int(spec.get("maxReplicas") or 0)
        behavior = spec.get("behavior")
        desired, reason, rescale = 0, "", False
        if current == 0 and min_replicas != 0:
            set_condition(
                status,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > max_replicas:
            desired, reason, rescale = (
                max_replicas,
                "Current number of replicas above Spec.MaxReplicas",
                True,
            )
            set_condition(
                status,
                "ScalingLimited",
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        elif current < min_replicas:
            desired, reason, rescale = (
                min_replicas,
                "Current number of replicas below Spec.MinReplicas",
                True,
            )
            set_condition(
                status,
                "ScalingLimited",
                "True",
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        else:
            selector = str((scale.get("status") or {}).get("selector") or "")
            result = await self._compute(hpa, namespace, selector, current, status)
            if result is None:  # desiredReplicas stays what it was
                await self._write_status(hpa, before, status)
                return
            desired = result.replicas
            reason = (
                f"{result.name} above target" if desired > current else "All metrics below target"
            )
            normalized = self.normalizer.normalize(
                key, behavior, current, desired, min_replicas, max_replicas
            )
            set_condition(
                status, "AbleToScale", "True", normalized.able_reason, normalized.able_message
            )
            set_condition(
                status,
                "ScalingLimited",
                "True" if normalized.limited else "False",
                normalized.limited_reason,
                normalized.limited_message,
            )
            desired = normalized.replicas
            rescale = desired != current
        if rescale:
            body = copy.deepcopy(scale)
            body.setdefault("spec", {})["replicas"] = desired
            try:
                await self.client.replace(
                    api_version, plural, str(ref.get("name")), body, namespace, subresource="scale"
                )
            except KubeError as exc:
                set_condition(
                    status,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {exc}",
                )
                self.recorder.event(
                    hpa,
                    "Warning",
                    "FailedRescale",
                    "",
                    f"New size: {desired}; reason: {reason}; error: {exc}",
                )
                status["desiredReplicas"] = current
                await self._write_status(hpa, before, status)
                return
            set_condition(
                status,
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.normalizer.record_scale(key, behavior, current, desired)
            self.recorder.event(
                hpa, "Normal", "SuccessfulRescale", "", f"New size: {desired}; reason: {reason}"
            )
            log.info("hpa.rescaled", hpa=key, old=current, new=desired, reason=reason)
            status["lastScaleTime"] = now_rfc3339()
        status["desiredReplicas"] = desired
        await self._write_status(hpa, before, status)

    def _target(self, ref: Mapping[str, Any]) -> tuple[str, str]:
        kind = str(ref.get("kind") or "")
        api_version = str(ref.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        known = SCALABLE.get(kind)
        if known is None or known[0] != group or not ref.get("name"):
            raise MetricError(
                "FailedGetScale",
                f"unable to determine the scale subresource of {kind} {api_version!r}",
            )
        return api_version, known[1]

    async def _compute(
        self, hpa: Obj, namespace: str, selector: str, current: int, status: Obj
    ) -> _MetricResult | None:
        """computeReplicasForMetrics: the largest proposal of the valid metrics, or None
        (status conditions set) when no scaling decision can be made."""
        spec = hpa.get("spec") or {}
        specs = spec.get("metrics") or []
        tolerance = tolerance_of(spec.get("behavior"), self.tolerance)
        best: _MetricResult | None = None
        statuses: list[Obj] = []
        invalid: list[MetricError] = []
        if not selector:
            err = MetricError(
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            set_condition(status, "ScalingActive", "False", err.reason, err.message)
            self.recorder.event(hpa, "Warning", "SelectorRequired", "", err.message)
            return None
        try:
            labels = parse_label_selector(selector)
        except ApiError as exc:
            set_condition(status, "ScalingActive", "False", "InvalidSelector", str(exc))
            return None
        pods = [
            p
            for p in self.pods.by_index("namespace", namespace)
            if labels.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        for metric in specs:
            try:
                result = await self._one_metric(
                    metric, namespace, selector, current, pods, tolerance
                )
            except MetricError as exc:
                invalid.append(exc)
                self.recorder.event(hpa, "Warning", exc.reason, "", exc.message)
                continue
            statuses.append(result.status)
            if best is None or result.replicas > best.replicas:
                best = result
        if invalid and (len(invalid) >= len(specs) or best is None or best.replicas < current):
            first = invalid[0]
            set_condition(status, "ScalingActive", "False", first.reason, first.message)
            self.recorder.event(
                hpa,
                "Warning",
                "FailedComputeMetricsReplicas",
                "",
                f"invalid metrics ({len(invalid)} invalid out of {len(specs)}), "
                f"first error is: {first.message}",
            )
            status["currentMetrics"] = statuses or None
            if not statuses:
                status.pop("currentMetrics", None)
            return None
        assert best is not None
        status["currentMetrics"] = statuses
        set_condition(
            status,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best.name}",
        )
        return best

    async def _one_metric(
        self,
        metric: Mapping[str, Any],
        namespace: str,
        selector: str,
        current: int,
        pods: list[Obj],
        tolerance: Tolerance,
    ) -> _MetricResult:
        kind = metric.get("type")
        if kind in ("Pods", "Object", "External"):
            raise MetricError(
                f"FailedGet{kind}Metric",
                f"unable to get {str(kind).lower()} metric: the {kind} metric type needs a "
                "custom or external metrics API, which this cluster does not serve",
            )
        if kind not in ("Resource", "ContainerResource"):
            raise MetricError("InvalidMetricSourceType", f"unknown metric source type {kind!r}")
        field_name = "resource" if kind == "Resource" else "containerResource"
        source = metric.get(field_name) or {}
        resource = str(source.get("name") or "")
        container = str(source.get("container") or "") if kind == "ContainerResource" else ""
        target = source.get("target") or {}
        reason = (
            "FailedGetResourceMetric" if kind == "Resource" else "FailedGetContainerResourceMetric"
        )
        metrics, timestamp = await self._pod_metrics(
            namespace, selector, resource, container, reason
        )
        now = time.time()
        try:
            if target.get("type") == "Utilization" and target.get("averageUtilization") is not None:
                proposal = resource_replicas(
                    current,
                    int(target["averageUtilization"]),
                    pods,
                    metrics,
                    resource,
                    now,
                    container=container,
                    tolerance=tolerance,
                    readiness=self.readiness,
                )
                description = f"{resource} resource utilization (percentage of request)"
                current_value: Obj = {
                    "averageUtilization": proposal.utilization,
                    "averageValue": milli_quantity(proposal.average),
                }
            elif target.get("type") == "AverageValue" and target.get("averageValue") is not None:
                proposal = plain_replicas(
                    current,
                    milli(target["averageValue"]),
                    pods,
                    metrics,
                    resource,
                    now,
                    tolerance=tolerance,
                    readiness=self.readiness,
                )
                description = f"{resource} resource"
                current_value = {"averageValue": milli_quantity(proposal.average)}
            else:
                raise MetricError(
                    reason,
                    f"invalid {kind} metric target for {resource}: "
                    "expected Utilization with averageUtilization or AverageValue with averageValue",
                )
        except MetricError as exc:
            raise MetricError(
                exc.reason if exc.reason != "FailedGetResourceMetric" else reason,
                f"failed to get {resource} utilization: {exc.message}",
            ) from None
        if kind == "Resource":
            status: Obj = {
                "type": "Resource",
                "resource": {"name": resource, "current": current_value},
            }
        else:
            status = {
                "type": "ContainerResource",
                "containerResource": {
                    "name": resource,
                    "container": container,
                    "current": current_value,
                },
            }
        return _MetricResult(proposal.replicas, status, description, timestamp)

    async def _pod_metrics(
        self, namespace: str, selector: str, resource: str, container: str, reason: str
    ) -> tuple[dict[str, PodMetric], float]:
        """The pods' usage of ``resource`` from metrics.k8s.io (REST metrics client)."""
        try:
            body = await self.client.request(
                "GET",
                f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
                params={"labelSelector": selector},
            )
        except KubeError as exc:
            raise MetricError(
                reason,
                f"failed to get {resource} utilization: unable to get metrics for resource "
                f"{resource}: unable to fetch metrics from resource metrics API: {exc}",
            ) from None
        out: dict[str, PodMetric] = {}
        latest = 0.0
        for item in (body or {}).get("items") or []:
            total, complete = 0, True
            for c in item.get("containers") or []:
                if container and c.get("name") != container:
                    continue
                usage = (c.get("usage") or {}).get(resource)
                if usage is None:
                    complete = False
                    break
                total += milli(usage)
            if not complete or (
                container
                and not any(c.get("name") == container for c in item.get("containers") or [])
            ):
                continue
            stamp = parse_time(item.get("timestamp")) or time.time()
            window = go_duration_seconds(str(item.get("window") or "0s"))
            out[str((item.get("metadata") or {}).get("name"))] = PodMetric(total, stamp, window)
            latest = max(latest, stamp)
        if not out:
            raise MetricError(
                reason,
                f"failed to get {resource} utilization: unable to get metrics for resource "
                f"{resource}: no metrics returned from resource metrics API",
            )
        return out, latest

    async def _write_status(self, hpa: Obj, before: Obj, status: Obj) -> None:
        if status == before:
            return
        body = copy.deepcopy(hpa)
        body["status"] = status
        namespace, name = split_key(key_of(hpa))
        try:
            await self.client.replace(
                "autoscaling/v2",
                "horizontalpodautoscalers",
                name,
                body,
                namespace,
                subresource="status",
            )
        except KubeError as exc:
            if exc.not_found:
                return
            if exc.conflict:  # a newer HPA: the next sync writes again
                self.queue.add_after(key_of(hpa), 1.0)
                return
            raise


def go_duration_seconds(text: str) -> float:
    """A Go duration like ``15s``, ``1m30s``, ``500ms`` in seconds (0 when unparseable)."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i : i + 2] if text[i : i + 2] in ("ms", "us", "ns") else ch
        if not number or unit not in units:
            return 0.0
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total


def _namespace_index(pod: Mapping[str, Any]) -> list[str]:
    return [str((pod.get("metadata") or {}).get("namespace") or "")]
