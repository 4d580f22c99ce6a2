"""The HorizontalPodAutoscaler's pure calculations: replica proposals from pod metrics
(replica_calculator.go's cases) and the stabilization windows and scaling policies with
an injected clock (horizontal.go's normalizeDesiredReplicasWithBehaviors)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.controllers.hpa import (
    MetricError,
    Normalizer,
    PodMetric,
    Tolerance,
    group_pods,
    milli,
    plain_replicas,
    resource_replicas,
    scale_down_limit,
    scale_up_limit,
    set_condition,
    tolerance_of,
)
from runtime.controllers.hpa import go_duration_seconds as go_seconds
from runtime.server.metrics import cpu_quantity, memory_quantity

NOW = 1_000_000.0
LONG_AGO = "1970-01-01T00:00:00Z"  # started and ready long before NOW


def _ts(offset: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(NOW + offset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str,
    *,
    request: str | None = "100m",
    phase: str = "Running",
    ready: str | None = "True",
    started: str = LONG_AGO,
    ready_since: str = LONG_AGO,
    deleting: bool = False,
    memory: str | None = None,
) -> dict[str, Any]:
    requests: dict[str, str] = {}
    if request is not None:
        requests["cpu"] = request
    if memory is not None:
        requests["memory"] = memory
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = LONG_AGO
    status: dict[str, Any] = {"phase": phase, "startTime": started}
    if ready is not None:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "lastTransitionTime": ready_since}
        ]
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
        "status": status,
    }


def m(value: int) -> PodMetric:
    return PodMetric(value, NOW - 1)


# (case, current, target %, pods, metrics (millicores), expected replicas)
CPU_CASES: list[tuple[str, int, int, list[dict[str, Any]], dict[str, int], int]] = [
    (
        "usage over the target scales up by the ratio",
        2,
        50,
        [pod("a"), pod("b")],
        {"a": 200, "b": 200},
        8,
    ),
    (
        "a ratio within the 0.1 tolerance keeps the count",
        2,
        50,
        [pod("a"), pod("b")],
        {"a": 52, "b": 54},
        2,
    ),
    (
        "usage under the target scales down (rounded up)",
        4,
        50,
        [pod("a"), pod("b"), pod("c"), pod("d")],
        {"a": 10, "b": 10, "c": 10, "d": 10},
        1,
    ),
    (
        "pods without metrics count as 100% of their request on a scale down",
        3,
        80,
        [pod("a"), pod("b"), pod("c")],
        {"a": 10, "b": 10},
        2,
    ),
    (
        "a missing pod counted at 100% that flips the direction keeps the count",
        3,
        20,
        [pod("a"), pod("b"), pod("c")],
        {"a": 10, "b": 10},
        3,
    ),
    (
        "pods without metrics count as 0% on a scale up",
        3,
        50,
        [pod("a"), pod("b"), pod("c")],
        {"a": 200, "b": 200},
        8,
    ),
    (
        "unready pods count as 0% on a scale up",
        3,
        50,
        [pod("a"), pod("b"), pod("u", ready="False", started=_ts(-10), ready_since=_ts(-10))],
        {"a": 200, "b": 200, "u": 500},
        8,
    ),
    (
        "unready pods are left out of a scale down",
        3,
        50,
        [pod("a"), pod("b"), pod("u", ready="False", started=_ts(-10), ready_since=_ts(-10))],
        {"a": 10, "b": 10, "u": 500},
        1,
    ),
    (
        "pending, failed and deleting pods are ignored",
        2,
        50,
        [
            pod("a"),
            pod("b"),
            pod("p", phase="Pending"),
            pod("f", phase="Failed"),
            pod("d", deleting=True),
        ],
        {"a": 100, "b": 100, "d": 900},
        4,
    ),
    (
        "requests are summed per pod: utilization is of the pods' requests",
        1,
        100,
        [pod("a", request="500m")],
        {"a": 1000},
        2,
    ),
]


@pytest.mark.parametrize(
    ("case", "current", "target", "pods", "usage", "expected"),
    CPU_CASES,
    ids=[c[0] for c in CPU_CASES],
)
def test_cpu_utilization_proposals_follow_the_replica_calculator(
    case: str,
    current: int,
    target: int,
    pods: list[dict[str, Any]],
    usage: dict[str, int],
    expected: int,
) -> None:
    metrics = {k: m(v) for k, v in usage.items()}
    proposal = resource_replicas(current, target, pods, metrics, "cpu", NOW)
    assert proposal.replicas == expected, case


def test_the_reported_utilization_is_of_the_ready_pods_with_metrics() -> None:
    proposal = resource_replicas(
        2, 50, [pod("a"), pod("b"), pod("c")], {"a": m(30), "b": m(90)}, "cpu", NOW
    )
    assert proposal.utilization == 60
    assert proposal.average == 60


def test_a_container_without_a_request_makes_utilization_impossible() -> None:
    with pytest.raises(MetricError) as err:
        resource_replicas(1, 50, [pod("a", request=None)], {"a": m(10)}, "cpu", NOW)
    assert err.value.reason == "FailedGetResourceMetric"
    assert "missing request for cpu" in err.value.message


def test_no_metrics_for_any_ready_pod_is_an_error() -> None:
    with pytest.raises(MetricError):
        resource_replicas(1, 50, [pod("a")], {}, "cpu", NOW)
    with pytest.raises(MetricError):
        resource_replicas(1, 50, [], {"a": m(10)}, "cpu", NOW)


def test_a_recently_started_pod_whose_sample_predates_readiness_is_unready() -> None:
    fresh = pod("a", started=_ts(-60), ready_since=_ts(-5))
    groups = group_pods([fresh], {"a": PodMetric(100, NOW - 30, 0.0)}, "cpu", NOW)
    assert groups.unready == {"a"}
    groups = group_pods([fresh], {"a": PodMetric(100, NOW - 1, 0.0)}, "cpu", NOW)
    assert groups.ready == 1
    # Memory samples are never held back by readiness.
    groups = group_pods([pod("b", ready=None)], {"b": m(1)}, "memory", NOW)
    assert groups.ready == 1


def test_an_average_value_target_divides_the_mean_usage() -> None:
    pods = [pod("a", memory="1Gi"), pod("b", memory="1Gi"), pod("c", memory="1Gi")]
    usage = {n: m(milli("300Mi")) for n in "abc"}
    proposal = plain_replicas(3, milli("100Mi"), pods, usage, "memory", NOW)
    assert proposal.replicas == 9
    assert proposal.average == milli("300Mi")
    within = plain_replicas(3, milli("290Mi"), pods, usage, "memory", NOW)
    assert within.replicas == 3
    # A missing pod counts as the target on a scale down.
    down = plain_replicas(3, milli("600Mi"), pods, {"a": m(milli("300Mi"))}, "memory", NOW)
    assert down.replicas == 3


def test_tolerances_can_differ_per_direction() -> None:
    tol = tolerance_of({"scaleUp": {"tolerance": "0.5"}}, 0.1)
    assert tol == Tolerance(down=0.1, up=0.5)
    proposal = resource_replicas(
        2, 50, [pod("a"), pod("b")], {"a": m(70), "b": m(70)}, "cpu", NOW, tolerance=tol
    )
    assert proposal.replicas == 2


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_scale_down_waits_for_the_stabilization_window() -> None:
    clock = Clock()
    norm = Normalizer(clock, default_downscale_window=300)
    norm.record_initial("ns/h", 5)
    clock.now += 10
    held = norm.normalize("ns/h", None, 5, 2, 1, 10)
    assert held.replicas == 5
    assert held.able_reason == "ScaleDownStabilized"
    clock.now += 200
    assert norm.normalize("ns/h", None, 5, 2, 1, 10).replicas == 5
    clock.now += 101  # the initial 5 is older than the window; later 2s remain
    done = norm.normalize("ns/h", None, 5, 2, 1, 10)
    assert done.replicas == 2
    assert done.able_reason == "ReadyForNewScale"
    assert not done.limited and done.limited_reason == "DesiredWithinRange"


def test_the_highest_recommendation_in_the_window_wins_a_scale_down() -> None:
    clock = Clock()
    norm = Normalizer(clock, default_downscale_window=300)
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    norm.record_initial("k", 8)
    clock.now += 61
    assert norm.normalize("k", behavior, 8, 6, 1, 10).replicas == 6
    clock.now += 30
    assert norm.normalize("k", behavior, 6, 3, 1, 10).replicas == 6
    clock.now += 31  # 6 (at +61) has left the 60 s window; 3 (at +91) has not
    assert norm.normalize("k", behavior, 6, 2, 1, 10).replicas == 3


def test_a_scale_up_stabilization_window_applies_the_lowest_recommendation() -> None:
    clock = Clock()
    norm = Normalizer(clock)
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 30}}
    norm.record_initial("k", 2)
    clock.now += 5
    up = norm.normalize("k", behavior, 2, 6, 1, 10)
    assert up.replicas == 2 and up.able_reason == "ScaleUpStabilized"
    clock.now += 31
    assert norm.normalize("k", behavior, 2, 6, 1, 10).replicas == 6


def test_default_scale_up_is_limited_to_double_or_four_more_per_15_seconds() -> None:
    clock = Clock()
    norm = Normalizer(clock)
    norm.record_initial("k", 2)
    first = norm.normalize("k", None, 2, 20, 1, 100)
    assert (first.replicas, first.limited, first.limited_reason) == (6, True, "ScaleUpLimit")
    norm.record_scale("k", None, 2, 6)
    clock.now += 5  # the 4 added still count within the 15 s period
    assert norm.normalize("k", None, 6, 20, 1, 100).replicas == 6
    clock.now += 11
    assert norm.normalize("k", None, 6, 20, 1, 100).replicas == 12


def test_max_and_min_replicas_clamp_the_proposal() -> None:
    norm = Normalizer(Clock(), default_downscale_window=0)
    high = norm.normalize("a", None, 2, 5, 1, 3)
    assert (high.replicas, high.limited_reason) == (3, "TooManyReplicas")
    low = norm.normalize("b", None, 4, 0, 2, 10)
    assert (low.replicas, low.limited_reason) == (2, "TooFewReplicas")


def test_pods_and_percent_policies_and_select_policy() -> None:
    pods_policy = {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    }
    norm = Normalizer(Clock())
    down = norm.normalize("k", {"scaleDown": pods_policy}, 5, 1, 1, 10)
    assert (down.replicas, down.limited_reason) == (4, "ScaleDownLimit")
    disabled = norm.normalize("d", {"scaleUp": {"selectPolicy": "Disabled"}}, 2, 5, 1, 10)
    assert disabled.replicas == 2
    both = [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]
    assert scale_up_limit(10, [], [], {"selectPolicy": "Max", "policies": both}, NOW) == 20
    assert scale_up_limit(10, [], [], {"selectPolicy": "Min", "policies": both}, NOW) == 14
    halves = [
        {"type": "Percent", "value": 50, "periodSeconds": 15},
        {"type": "Pods", "value": 2, "periodSeconds": 15},
    ]
    assert scale_down_limit(10, [], [], {"selectPolicy": "Max", "policies": halves}, NOW) == 5
    assert scale_down_limit(10, [], [], {"selectPolicy": "Min", "policies": halves}, NOW) == 8


def test_metrics_quantities_are_canonical() -> None:
    assert cpu_quantity(0) == "0"
    assert cpu_quantity(12_000_000) == "12m"
    assert cpu_quantity(1_234_567) == "1234567n"
    assert cpu_quantity(2_000_000_000) == "2"
    assert memory_quantity(2048) == "2Ki"
    assert memory_quantity(3 * 2**20) == "3Mi"
    assert memory_quantity(1000) == "1000"


def test_conditions_keep_their_transition_time_until_the_status_changes() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "ScalingActive", "True", "ValidMetricFound", "ok")
    first = dict(status["conditions"][0])
    status["conditions"][0]["lastTransitionTime"] = LONG_AGO
    set_condition(status, "ScalingActive", "True", "ValidMetricFound", "still ok")
    assert status["conditions"][0]["lastTransitionTime"] == LONG_AGO
    set_condition(status, "ScalingActive", "False", "FailedGetResourceMetric", "no")
    changed = status["conditions"][0]
    assert changed["lastTransitionTime"] != LONG_AGO
    assert (changed["status"], changed["reason"]) == ("False", "FailedGetResourceMetric")
    assert first["type"] == "ScalingActive" and len(status["conditions"]) == 1


def test_metric_windows_are_go_durations() -> None:
    assert go_seconds("15s") == 15.0
    assert go_seconds("1m30s") == 90.0
    assert go_seconds("500ms") == 0.5
    assert go_seconds("0s") == 0.0
    assert go_seconds("bogus") == 0.0
