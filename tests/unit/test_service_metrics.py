"""The service's Prometheus text exposition (gitops.service.metrics)."""

from __future__ import annotations

from gitops.changeset import Action, ChangeSet, Entry
from gitops.health import Health, HealthStatus
from gitops.manifest import ObjectKey
from gitops.service.metrics import Metrics, escape_label, format_value
from gitops.status import AppStatus
from gitops.sync import Mode, SyncResult


def result(
    app: str, mode: Mode, actions: list[Action], seconds: float, error: str = ""
) -> SyncResult:
    changes = ChangeSet(
        [Entry(ObjectKey("", "ConfigMap", "default", f"cm{i}"), a) for i, a in enumerate(actions)]
    )
    return SyncResult(
        app,
        mode,
        revision="c" * 40,
        changes=changes,
        health=Health(HealthStatus.HEALTHY),
        error=error,
        seconds=seconds,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_runs_fill_a_cumulative_histogram_with_sum_and_count() -> None:
    m = Metrics()
    m.observe(result("web", Mode.SYNC, [Action.CREATED], 0.3))
    m.observe(result("web", Mode.HEAL, [Action.UNCHANGED], 7.0))
    out = lines(m.render())
    assert 'gitops_sync_duration_seconds_bucket{app="web",le="0.25"} 0' in out
    assert 'gitops_sync_duration_seconds_bucket{app="web",le="0.5"} 1' in out
    assert 'gitops_sync_duration_seconds_bucket{app="web",le="5"} 1' in out
    assert 'gitops_sync_duration_seconds_bucket{app="web",le="10"} 2' in out
    assert 'gitops_sync_duration_seconds_bucket{app="web",le="+Inf"} 2' in out
    assert 'gitops_sync_duration_seconds_sum{app="web"} 7.3' in out
    assert 'gitops_sync_duration_seconds_count{app="web"} 2' in out


def test_runs_are_counted_by_result_and_the_last_run_sets_the_gauges() -> None:
    m = Metrics()
    m.observe(result("web", Mode.SYNC, [Action.CREATED, Action.UNCHANGED], 1))
    m.observe(result("web", Mode.PLAN, [Action.CONFIGURED, Action.PRUNED, Action.UNCHANGED], 1))
    m.observe(result("web", Mode.SYNC, [Action.FAILED], 1, error="boom"))
    out = lines(m.render())
    assert 'gitops_sync_total{app="web",result="applied"} 1' in out
    assert 'gitops_sync_total{app="web",result="drift"} 1' in out
    assert 'gitops_sync_total{app="web",result="failed"} 1' in out
    assert 'gitops_drift_objects{app="web"} 0' in out
    assert 'gitops_objects{app="web",action="failed"} 1' in out
    assert 'gitops_objects{app="web",action="configured"} 0' in out


def test_health_and_info_come_from_the_stored_status() -> None:
    m = Metrics()
    stored = AppStatus("web", revision="abc", sync_status="OutOfSync", health="Degraded")
    m.observe(result("web", Mode.HEAL, [Action.CONFIGURED], 1), stored)
    out = lines(m.render())
    assert 'gitops_app_healthy{app="web"} 0' in out
    assert (
        'gitops_app_info{app="web",revision="abc",sync_status="OutOfSync",health="Degraded"} 1'
        in out
    )
    assert 'gitops_drift_objects{app="web"} 1' in out


def test_every_family_is_declared_with_help_and_type() -> None:
    text = Metrics().render()
    for name, kind in [
        ("gitops_sync_duration_seconds", "histogram"),
        ("gitops_sync_total", "counter"),
        ("gitops_drift_objects", "gauge"),
        ("gitops_objects", "gauge"),
        ("gitops_app_healthy", "gauge"),
        ("gitops_app_info", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
        assert f"# HELP {name} " in text
    assert text.endswith("\n")


def test_a_removed_application_loses_every_series() -> None:
    m = Metrics()
    m.observe(result("web", Mode.SYNC, [Action.CREATED], 1))
    m.observe(result("db", Mode.SYNC, [Action.CREATED], 1))
    m.forget("web")
    text = m.render()
    assert 'app="web"' not in text
    assert 'gitops_sync_total{app="db",result="applied"} 1' in text


def test_label_values_and_numbers_are_written_as_the_format_wants() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_value(2.0) == "2"
    assert format_value(0.25) == "0.25"
    assert format_value(float("inf")) == "+Inf"
