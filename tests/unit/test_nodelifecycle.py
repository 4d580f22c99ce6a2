"""Taint tolerations and eviction times, as Kubernetes' taint manager computes them."""

from __future__ import annotations

from runtime.controllers.nodelifecycle import UNREACHABLE, eviction_time, tolerates

NOW = 1_000_000.0
TAINT = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "1970-01-12T13:46:40Z"}  # = NOW


def _pod(*tolerations: dict[str, object]) -> dict[str, object]:
    return {"spec": {"tolerations": list(tolerations)}}


def test_a_pod_without_a_matching_toleration_is_evicted_when_the_taint_was_added() -> None:
    assert eviction_time(_pod(), [TAINT], NOW + 5) == NOW


def test_toleration_seconds_delay_the_eviction() -> None:
    pod = _pod(
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    )
    assert eviction_time(pod, [TAINT], NOW) == NOW + 300


def test_a_toleration_without_seconds_keeps_the_pod_forever() -> None:
    assert eviction_time(_pod({"operator": "Exists"}), [TAINT], NOW) is None


def test_no_schedule_taints_never_evict() -> None:
    assert eviction_time(_pod(), [{"key": UNREACHABLE, "effect": "NoSchedule"}], NOW) is None


def test_tolerations_match_by_key_operator_value_and_effect() -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    assert tolerates([{"key": "dedicated", "value": "db"}], taint) is not None
    assert tolerates([{"key": "dedicated", "value": "web"}], taint) is None
    assert (
        tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], taint)
        is None
    )
    assert tolerates([{"operator": "Exists"}], taint) is not None
