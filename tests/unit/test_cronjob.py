"""The CronJob controller's scheduling with an injected clock: schedule parsing and
times (APScheduler, cron's day-of-month/day-of-week rule, time zones, macros), missed
schedules, startingDeadlineSeconds, concurrency policies, history limits and status."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from runtime.api.admission.batch import ScheduleError
from runtime.controllers.cronjob import (
    SCHEDULED_TIMESTAMP,
    CronJobController,
    CronSchedule,
    history_to_delete,
    job_name,
    most_recent_schedule_time,
    resolve_schedule,
)
from tests.unit.test_job_fakeapi import FakeApi, events

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def times(expr: str, start: str, n: int, tz: dt.tzinfo = UTC) -> list[str]:
    sched = CronSchedule(expr, tz)
    out: list[str] = []
    t: dt.datetime | None = at(start)
    for _ in range(n):
        assert t is not None
        t = sched.next(t)
        assert t is not None
        out.append(t.astimezone(UTC).strftime("%Y-%m-%d %H:%M"))
    return out


# --- schedules ------------------------------------------------------------------------------
def test_every_minute_fires_at_each_whole_minute_strictly_after_the_given_time() -> None:
    assert times("*/1 * * * *", "2026-03-01T10:00:00", 2) == [
        "2026-03-01 10:01",
        "2026-03-01 10:02",
    ]
    assert times("*/1 * * * *", "2026-03-01T10:00:30", 1) == ["2026-03-01 10:01"]


def test_day_of_week_zero_is_sunday_as_in_cron() -> None:
    # 2026-03-01 is a Sunday.
    assert times("0 9 * * 0", "2026-02-25T00:00:00", 1) == ["2026-03-01 09:00"]
    assert times("0 9 * * sun", "2026-02-25T00:00:00", 1) == ["2026-03-01 09:00"]
    assert times("0 9 * * 1-5", "2026-02-28T00:00:00", 1) == ["2026-03-02 09:00"]


def test_a_day_matching_either_restricted_day_field_runs() -> None:
    # 13th of the month OR Friday: 2026-03-06 is a Friday, before the 13th.
    assert times("0 0 13 * 5", "2026-03-01T00:00:00", 3) == [
        "2026-03-06 00:00",
        "2026-03-13 00:00",
        "2026-03-20 00:00",
    ]


def test_macros_expand_as_kubernetes_does() -> None:
    assert times("@hourly", "2026-03-01T10:10:00", 1) == ["2026-03-01 11:00"]
    assert times("@daily", "2026-03-01T10:10:00", 1) == ["2026-03-02 00:00"]
    assert times("@weekly", "2026-03-02T10:10:00", 1) == ["2026-03-08 00:00"]
    assert times("@monthly", "2026-03-02T10:10:00", 1) == ["2026-04-01 00:00"]
    assert times("@yearly", "2026-03-02T10:10:00", 1) == ["2027-01-01 00:00"]
    assert times("@every 90s", "2026-03-02T10:10:00", 2) == ["2026-03-02 10:11", "2026-03-02 10:13"]


def test_unknown_descriptors_and_bad_fields_are_refused() -> None:
    for bad in ("@fortnightly", "* * * *", "61 * * * *", "* * * * 8"):
        with pytest.raises(ScheduleError):
            CronSchedule(bad, UTC)


def test_the_time_zone_field_moves_the_schedule() -> None:
    cj = {"spec": {"schedule": "0 9 * * *", "timeZone": "America/New_York"}}
    sched, warning = resolve_schedule(cj)
    assert warning is None
    nxt = sched.next(at("2026-07-01T00:00:00"))
    assert nxt is not None and nxt.astimezone(UTC) == at("2026-07-01T13:00:00")


def test_a_tz_prefix_is_honoured_with_a_warning() -> None:
    sched, warning = resolve_schedule({"spec": {"schedule": "CRON_TZ=Asia/Tokyo 0 9 * * *"}})
    assert warning is not None and "not officially supported" in warning
    assert sched.tz == ZoneInfo("Asia/Tokyo")
    nxt = sched.next(at("2026-07-01T00:00:00"))
    assert nxt is not None and nxt.astimezone(UTC) == at("2026-07-02T00:00:00")


def test_only_the_most_recent_missed_time_is_returned_with_the_count() -> None:
    sched = CronSchedule("*/1 * * * *", UTC)
    got, n = most_recent_schedule_time(
        at("2026-03-01T10:00:00"), at("2026-03-01T10:05:30"), sched, None
    )
    assert got == at("2026-03-01T10:05:00") and n == 5
    got, n = most_recent_schedule_time(
        at("2026-03-01T10:00:00"), at("2026-03-01T10:00:59"), sched, None
    )
    assert got is None and n == 0


def test_the_starting_deadline_limits_how_far_back_missed_times_count() -> None:
    sched = CronSchedule("*/1 * * * *", UTC)
    got, n = most_recent_schedule_time(
        at("2026-03-01T10:00:00"), at("2026-03-01T12:00:30"), sched, 200
    )
    assert got == at("2026-03-01T12:00:00") and n == 3


def test_more_than_a_hundred_missed_times_are_counted_and_the_latest_found() -> None:
    sched = CronSchedule("*/1 * * * *", UTC)
    got, n = most_recent_schedule_time(
        at("2026-03-01T00:00:00"), at("2026-03-03T00:00:10"), sched, None
    )
    assert got == at("2026-03-03T00:00:00")
    assert n == 2 * 24 * 60


def test_history_keeps_the_newest_finished_jobs_within_each_limit() -> None:
    def job(name: str, kind: str, start: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "status": {"startTime": start, "conditions": [{"type": kind, "status": "True"}]},
        }

    jobs = [job(f"ok{i}", "Complete", f"2026-03-01T10:0{i}:00Z") for i in range(5)]
    jobs += [job(f"bad{i}", "Failed", f"2026-03-01T11:0{i}:00Z") for i in range(3)]
    jobs.append({"metadata": {"name": "running"}, "status": {"startTime": "2026-03-01T09:00:00Z"}})
    cj = {"spec": {"successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}}
    names = [j["metadata"]["name"] for j in history_to_delete(cj, jobs)]
    assert names == ["ok0", "ok1", "bad0", "bad1"]


# --- the controller with an injected clock ----------------------------------------------------
class Harness:
    def __init__(self, tmp: Path, now: str) -> None:
        self.now = at(now)
        self.api = FakeApi(self.now)
        self.ctx = self.api.context(tmp)
        self.ctl = CronJobController(self.ctx, clock=lambda: self.now)

    def cronjob(self, name: str = "tick", schedule: str = "*/1 * * * *", **spec: Any) -> None:
        """A CronJob created 30 seconds before the harness's current time."""
        self.api.now = self.now - dt.timedelta(seconds=30)
        self.api.put(
            "batch/v1",
            "cronjobs",
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": name},
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Allow",
                    "suspend": False,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 1,
                    **spec,
                    "jobTemplate": {
                        "metadata": {"labels": {"app": name}, "annotations": {"a": "b"}},
                        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
                    },
                },
            },
        )

    def sync(self, name: str = "tick") -> None:
        asyncio.run(self.ctl.sync(f"default/{name}"))

    def jobs(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.api.all("jobs"))

    def status(self, name: str = "tick") -> dict[str, Any]:
        return dict(self.api.objects[("cronjobs", "default", name)].get("status") or {})

    def finish(self, job: str, kind: str = "Complete", when: str | None = None) -> None:
        obj = self.api.objects[("jobs", "default", job)]
        stamp = when or self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        obj["status"] = {
            "startTime": stamp,
            "conditions": [{"type": kind, "status": "True"}],
            **({"completionTime": stamp} if kind == "Complete" else {}),
        }
        self.api.put("batch/v1", "jobs", obj)


def minutes(t: str) -> int:
    return int(at(t).timestamp() // 60)


def test_a_job_is_created_at_the_scheduled_minute_and_only_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:30")
    h.cronjob()
    h.sync()
    assert h.jobs() == []
    h.now = at("2026-03-01T10:01:00")
    h.sync()
    name = f"tick-{minutes('2026-03-01T10:01:00')}"
    assert h.jobs() == [name]
    job = h.api.objects[("jobs", "default", name)]
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-03-01T10:01:00Z"
    assert job["metadata"]["annotations"]["a"] == "b"
    assert job["metadata"]["labels"] == {"app": "tick"}
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)
    status = h.status()
    assert status["lastScheduleTime"] == "2026-03-01T10:01:00Z"
    assert [a["name"] for a in status["active"]] == [name]
    h.now = at("2026-03-01T10:01:40")
    h.sync()
    assert h.jobs() == [name]
    assert ("SuccessfulCreate", f"Created job {name}") in events(h.ctx)


def test_a_finished_job_leaves_active_and_sets_the_last_successful_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob()
    h.sync()
    (name,) = h.jobs()
    h.finish(name, when="2026-03-01T10:01:20Z")
    h.now = at("2026-03-01T10:01:30")
    h.sync()
    status = h.status()
    assert not status.get("active")
    assert status["lastSuccessfulTime"] == "2026-03-01T10:01:20Z"


def test_forbid_skips_a_run_while_the_previous_job_is_active(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob(concurrencyPolicy="Forbid")
    h.sync()
    first = h.jobs()
    h.now = at("2026-03-01T10:02:00")
    h.sync()
    assert h.jobs() == first
    assert any(reason == "JobAlreadyActive" for reason, _ in events(h.ctx))
    h.finish(first[0])
    h.now = at("2026-03-01T10:03:00")
    h.sync()
    assert h.jobs() == sorted([*first, f"tick-{minutes('2026-03-01T10:03:00')}"])


def test_replace_deletes_the_active_job_and_starts_the_new_one(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob(concurrencyPolicy="Replace")
    h.sync()
    (first,) = h.jobs()
    h.now = at("2026-03-01T10:02:00")
    h.sync()
    second = f"tick-{minutes('2026-03-01T10:02:00')}"
    assert h.jobs() == [second]
    assert ("jobs", first) in h.api.deleted
    assert [a["name"] for a in h.status()["active"]] == [second]


def test_allow_runs_jobs_side_by_side(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob()
    h.sync()
    h.now = at("2026-03-01T10:02:00")
    h.sync()
    assert len(h.jobs()) == 2
    assert len(h.status()["active"]) == 2


def test_after_downtime_only_the_most_recent_missed_run_starts(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:10")
    h.cronjob()
    h.now = at("2026-03-01T10:07:30")
    h.sync()
    assert h.jobs() == [f"tick-{minutes('2026-03-01T10:07:00')}"]


def test_a_run_past_its_starting_deadline_is_skipped(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:10")
    h.cronjob(schedule="0 * * * *", startingDeadlineSeconds=60)
    h.now = at("2026-03-01T11:02:00")
    h.sync()
    assert h.jobs() == []
    assert not h.status().get("lastScheduleTime")
    h.now = at("2026-03-01T12:00:30")
    h.sync()
    assert h.jobs() == [f"tick-{minutes('2026-03-01T12:00:00')}"]


def test_too_many_missed_times_warn_and_still_run_the_latest(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:10")
    h.cronjob()
    h.now = at("2026-03-01T14:00:05")
    h.sync()
    assert h.jobs() == [f"tick-{minutes('2026-03-01T14:00:00')}"]
    warned = [m for r, m in events(h.ctx) if r == "TooManyMissedTimes"]
    assert warned and warned[0].startswith("too many missed start times: 241.")


def test_a_suspended_cronjob_creates_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob(suspend=True)
    h.sync()
    assert h.jobs() == []


def test_a_schedule_change_takes_effect_at_the_next_sync(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:40")
    h.cronjob(schedule="0 * * * *")
    h.now = at("2026-03-01T10:05:00")
    h.sync()
    assert h.jobs() == []
    obj = h.api.objects[("cronjobs", "default", "tick")]
    obj["spec"]["schedule"] = "*/5 * * * *"
    h.api.put("batch/v1", "cronjobs", obj)
    h.sync()
    assert h.jobs() == [f"tick-{minutes('2026-03-01T10:05:00')}"]


def test_finished_jobs_beyond_the_history_limits_are_deleted(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:01:00")
    h.cronjob(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    made: list[str] = []
    for minute in range(1, 7):
        h.now = at(f"2026-03-01T10:0{minute}:00")
        h.sync()
        new = [n for n in h.jobs() if n not in made]
        made += new
        h.finish(new[0], "Failed" if minute in (2, 4) else "Complete")
    h.now = at("2026-03-01T10:06:30")
    h.sync()
    left = h.jobs()
    assert left == sorted([made[3], made[4], made[5]])  # newest failed + 2 newest complete
    assert not h.status().get("active")


def test_a_hand_made_job_owned_by_the_cronjob_is_not_adopted_as_active(tmp_path: Path) -> None:
    h = Harness(tmp_path, "2026-03-01T10:00:30")
    h.cronjob()
    cj = h.api.objects[("cronjobs", "default", "tick")]
    h.api.put(
        "batch/v1",
        "jobs",
        {
            "metadata": {
                "name": "by-hand",
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "tick",
                        "uid": cj["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        },
    )
    h.sync()
    assert not h.status().get("active")
    assert any(r == "UnexpectedJob" for r, _ in events(h.ctx))


def test_job_names_count_minutes_since_the_epoch() -> None:
    assert job_name("x", at("1970-01-01T01:00:00")) == "x-60"
