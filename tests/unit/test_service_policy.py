"""The service's scheduling decisions (gitops.service.policy): run modes, retry backoff,
self-heal backoff, dependsOn gating and the app-of-apps reconciliation of the app set."""

from __future__ import annotations

from typing import Any

import pytest

from gitops.config import Application, Retry
from gitops.service.policy import (
    HealGuard,
    RetryTracker,
    blocking_dependencies,
    choose_mode,
    dependency_ready,
    reconcile_children,
    retry_delay,
)
from gitops.status import AppStatus
from gitops.sync import Mode

A, B = "a" * 40, "b" * 40


def app(name: str, **spec: Any) -> Application:
    return Application.model_validate(
        {"name": name, "source": {"repoURL": "https://git.example.com/r.git"}, **spec}
    )


def test_the_first_run_of_an_application_is_a_sync() -> None:
    assert choose_mode(A, None) is Mode.SYNC
    assert choose_mode(None, None) is Mode.SYNC


def test_a_new_commit_is_synced_and_the_same_commit_is_a_drift_check() -> None:
    assert choose_mode(B, A) is Mode.SYNC
    assert choose_mode(A, A) is Mode.HEAL


def test_a_failed_fetch_after_a_good_one_is_a_drift_check_of_the_last_good_revision() -> None:
    assert choose_mode(None, A) is Mode.HEAL


def test_while_self_heal_is_held_back_a_drift_check_only_reports_but_commits_still_sync() -> None:
    assert choose_mode(A, A, heal_held=True) is Mode.PLAN
    assert choose_mode(B, A, heal_held=True) is Mode.SYNC


def test_the_default_retry_doubles_from_five_seconds_five_times() -> None:
    assert [retry_delay(None, n) for n in range(1, 7)] == [5, 10, 20, 40, 80, None]


def test_retry_delays_are_capped_at_the_maximum_and_stop_at_the_limit() -> None:
    retry = Retry.model_validate(
        {"limit": 8, "backoff": {"duration": "10s", "factor": 3, "maxDuration": "3m"}}
    )
    assert [retry_delay(retry, n) for n in range(1, 10)] == [
        10,
        30,
        90,
        180,
        180,
        180,
        180,
        180,
        None,
    ]
    assert retry_delay(Retry(limit=0), 1) is None


def test_a_non_retryable_failure_schedules_no_retry() -> None:
    tracker = RetryTracker()
    assert tracker.failed(A, retryable=False, retry=None) is None
    assert tracker.failures == 1


def test_retries_count_per_revision_and_reset_after_success() -> None:
    tracker = RetryTracker()
    assert tracker.failed(A, True, None) == 5
    assert tracker.failed(A, True, None) == 10
    assert tracker.failed(A, True, None) == 20
    assert tracker.failed(B, True, None) == 5  # a new commit starts over
    tracker.succeeded()
    assert tracker.failed(B, True, None) == 5


def test_a_first_heal_is_checked_again_after_the_base_wait() -> None:
    guard = HealGuard(base=5, cap=60)
    assert guard.checked(["ConfigMap/default/x"], now=100) == 5
    assert guard.held(104) and not guard.held(105)


def test_drift_that_comes_back_doubles_the_wait_before_the_next_heal_up_to_the_interval() -> None:
    guard = HealGuard(base=5, cap=60)
    key = ["Deployment.apps/default/web"]
    now, waits = 0.0, []
    for _ in range(6):
        wait = guard.checked(key, now)
        assert wait is not None
        waits.append(wait)
        now += wait
    assert waits == [5, 10, 20, 40, 60, 60]
    assert guard.held(now - 1)


def test_a_check_without_drift_resets_the_self_heal_wait() -> None:
    guard = HealGuard(base=5, cap=60)
    guard.checked(["ConfigMap/default/x"], 0)
    guard.checked(["ConfigMap/default/x"], 5)
    assert guard.checked([], 15) is None
    assert guard.wait == 0
    assert guard.checked(["ConfigMap/default/x"], 20) == 5


def test_drift_of_another_object_or_long_after_is_not_a_repeat() -> None:
    guard = HealGuard(base=5, cap=60)
    guard.checked(["ConfigMap/default/x"], 0)
    assert guard.checked(["ConfigMap/default/y"], 5) == 5
    assert guard.checked(["ConfigMap/default/x"], 1000) == 5


def test_the_base_wait_never_exceeds_a_short_interval() -> None:
    assert HealGuard(base=30, cap=10).checked(["k"], 0) == 10


def test_a_dependency_is_ready_only_when_synced_and_healthy() -> None:
    assert dependency_ready(AppStatus("a", sync_status="Synced", health="Healthy"))
    assert not dependency_ready(AppStatus("a", sync_status="Synced", health="Progressing"))
    assert not dependency_ready(AppStatus("a", sync_status="OutOfSync", health="Healthy"))
    assert not dependency_ready(AppStatus("a", sync_status="Failed", health="Healthy"))
    assert not dependency_ready(None)


def test_an_application_waits_for_each_dependency_not_yet_ready_in_order() -> None:
    web = app("web", dependsOn=["db", "queue", "config"])
    ready = {"queue"}
    assert blocking_dependencies(web, lambda n: n in ready) == ("db", "config")
    assert blocking_dependencies(web, lambda n: True) == ()
    assert blocking_dependencies(app("solo"), lambda n: False) == ()


def test_declared_applications_are_added_updated_and_removed() -> None:
    current = {"root": app("root"), "old": app("old"), "same": app("same"), "moved": app("moved")}
    owners: dict[str, str | None] = {"root": None, "old": "root", "same": "root", "moved": "root"}
    declared = [app("same"), app("moved", interval="1m"), app("new")]
    changes = reconcile_children("root", declared, current, owners)
    assert [a.name for a in changes.added] == ["new"]
    assert [a.name for a in changes.updated] == ["moved"]
    assert changes.updated[0].interval == 60
    assert changes.removed == ("old",)
    assert changes.refused == ()


def test_nothing_changes_when_the_declarations_are_the_same() -> None:
    current = {"root": app("root"), "child": app("child")}
    changes = reconcile_children("root", [app("child")], current, {"root": None, "child": "root"})
    assert changes.empty


def test_a_declared_name_already_used_elsewhere_is_refused_and_keeps_its_owner() -> None:
    current = {"root": app("root"), "other": app("other"), "theirs": app("theirs")}
    owners: dict[str, str | None] = {"root": None, "other": None, "theirs": "other"}
    declared = [app("other"), app("theirs"), app("root")]
    changes = reconcile_children("root", declared, current, owners)
    assert changes.added == changes.updated == () and changes.removed == ()
    reasons = {a.name: why for a, why in changes.refused}
    assert "in the config" in reasons["other"]
    assert "declared by other" in reasons["theirs"]
    assert "declares itself" in reasons["root"]


@pytest.mark.parametrize("declared", [[], [app("unrelated")]])
def test_children_no_longer_declared_are_removed(declared: list[Application]) -> None:
    current = {"root": app("root"), "child": app("child")}
    changes = reconcile_children("root", declared, current, {"root": None, "child": "root"})
    assert changes.removed == ("child",)
