"""The service's Prometheus metrics, kept in memory and rendered in the text exposition
format (version 0.0.4) for ``GET /metrics``.

:class:`Metrics` is fed every run (:meth:`Metrics.observe`) by
:mod:`gitops.service.core` and forgets an Application that is removed. Series:

* ``gitops_sync_duration_seconds`` (histogram, ``app``): how long runs take;
* ``gitops_sync_total`` (counter, ``app``, ``result``): runs by outcome (applied,
  unchanged, drift, in-sync, failed: :func:`gitops.status.outcome`);
* ``gitops_drift_objects`` (gauge, ``app``): objects out of sync found by the last run;
* ``gitops_objects`` (gauge, ``app``, ``action``): objects of the last run by action;
* ``gitops_app_healthy`` (gauge, ``app``): 1 when the Application is Healthy;
* ``gitops_app_info`` (gauge = 1, ``app``, ``revision``, ``sync_status``, ``health``).

Written by hand (the format is small) rather than adding a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from gitops.changeset import Action
from gitops.status import AppStatus, outcome, sync_status
from gitops.sync import SyncResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1


@dataclass
class _AppInfo:
    revision: str = ""
    sync_status: str = "Unknown"
    health: str = "Unknown"


class Metrics:
    """The metrics of every Application the service runs."""

    def __init__(self) -> None:
        self._durations: dict[str, _Histogram] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._drift: dict[str, int] = {}
        self._objects: dict[str, dict[str, int]] = {}
        self._info: dict[str, _AppInfo] = {}

    def observe(self, result: SyncResult, status: AppStatus | None = None) -> None:
        """Count one run; ``status`` (the stored view after it) gives revision and health
        when the run itself did not assess them."""
        app = result.app
        self._durations.setdefault(app, _Histogram()).observe(result.seconds)
        key = (app, outcome(result))
        self._totals[key] = self._totals.get(key, 0) + 1
        self._drift[app] = sum(1 for e in result.changes.entries if e.changed)
        self._objects[app] = result.changes.counts()
        if status is not None:
            self._info[app] = _AppInfo(status.revision, status.sync_status, status.health)
        else:
            self._info[app] = _AppInfo(
                result.revision, sync_status(result), result.health.status.value
            )

    def forget(self, app: str) -> None:
        """Drop every series of ``app`` (it was removed)."""
        self._durations.pop(app, None)
        self._drift.pop(app, None)
        self._objects.pop(app, None)
        self._info.pop(app, None)
        for key in [k for k in self._totals if k[0] == app]:
            del self._totals[key]

    def render(self) -> str:
        """The text exposition of every series."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("gitops_sync_duration_seconds", "histogram", "Duration of sync runs.")
        for app, h in sorted(self._durations.items()):
            for bound, count in zip(BUCKETS, h.counts):
                labels = _labels((("app", app), ("le", format_value(bound))))
                out.append(f"gitops_sync_duration_seconds_bucket{labels} {count}")
            labels = _labels((("app", app), ("le", "+Inf")))
            out.append(f"gitops_sync_duration_seconds_bucket{labels} {h.count}")
            out.append(
                f"gitops_sync_duration_seconds_sum{_labels([('app', app)])} {format_value(h.total)}"
            )
            out.append(f"gitops_sync_duration_seconds_count{_labels([('app', app)])} {h.count}")
        family("gitops_sync_total", "counter", "Sync runs by result.")
        for (app, result), count in sorted(self._totals.items()):
            out.append(f"gitops_sync_total{_labels((('app', app), ('result', result)))} {count}")
        family("gitops_drift_objects", "gauge", "Objects out of sync found by the last run.")
        for app, drift in sorted(self._drift.items()):
            out.append(f"gitops_drift_objects{_labels([('app', app)])} {drift}")
        family("gitops_objects", "gauge", "Objects of the last run by action.")
        for app, counts in sorted(self._objects.items()):
            for action in Action:
                labels = _labels((("app", app), ("action", action.value)))
                out.append(f"gitops_objects{labels} {counts.get(action.value, 0)}")
        family("gitops_app_healthy", "gauge", "1 when the Application is Healthy, else 0.")
        for app, info in sorted(self._info.items()):
            healthy = 1 if info.health == "Healthy" else 0
            out.append(f"gitops_app_healthy{_labels([('app', app)])} {healthy}")
        family("gitops_app_info", "gauge", "The Application's revision and status (always 1).")
        for app, info in sorted(self._info.items()):
            labels = _labels(
                (
                    ("app", app),
                    ("revision", info.revision),
                    ("sync_status", info.sync_status),
                    ("health", info.health),
                )
            )
            out.append(f"gitops_app_info{labels} 1")
        return "\n".join(out) + "\n"
