"""The Job controller's logic: completed-index ranges, backoff, wanted parallelism,
podFailurePolicy, and ``sync`` against an in-memory API with an injected clock (exact
counting through the tracking finalizer, backoff before replacements, backoffLimit,
activeDeadlineSeconds, Indexed pods, suspend/resume, TTL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from runtime.controllers.job import (
    INDEX_ENV,
    INDEX_KEY,
    TRACKING_FINALIZER,
    JobController,
    backoff_delay,
    failure_policy_action,
    format_indexes,
    parse_indexes,
    want_active,
)
from tests.unit.test_job_fakeapi import FakeApi, events

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def test_completed_indexes_are_written_and_read_as_ranges() -> None:
    assert format_indexes({0, 1, 2, 4}) == "0-2,4"
    assert format_indexes([7, 5, 6, 9, 11, 10]) == "5-7,9-11"
    assert format_indexes([]) == ""
    assert parse_indexes("0-2,4") == {0, 1, 2, 4}
    assert parse_indexes("") == set()


def test_pod_failure_backoff_doubles_from_its_base_up_to_six_minutes() -> None:
    assert backoff_delay(0, 10.0) == 0.0
    assert [backoff_delay(n, 10.0) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 80.0]
    assert backoff_delay(10, 10.0) == 360.0
    assert backoff_delay(2, 0.2) == 0.4


def test_wanted_active_pods_respect_parallelism_and_remaining_completions() -> None:
    assert want_active({"parallelism": 2, "completions": 5}, 0, 0) == 2
    assert want_active({"parallelism": 2, "completions": 5}, 4, 0) == 1
    assert want_active({"parallelism": 2, "completions": 5}, 5, 0) == 0
    assert want_active({"parallelism": 3}, 0, 0) == 3  # work queue
    assert want_active({"parallelism": 3}, 1, 0) == 0
    spec = {"parallelism": 4, "completions": 3, "completionMode": "Indexed"}
    assert want_active(spec, 9, 1) == 2


def test_pod_failure_policy_rules_match_exit_codes_and_conditions() -> None:
    job = {
        "spec": {
            "podFailurePolicy": {
                "rules": [
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            }
        }
    }

    def pod(code: int, disrupted: bool = False) -> dict[str, Any]:
        conds = [{"type": "DisruptionTarget", "status": "True"}] if disrupted else []
        return {
            "status": {
                "phase": "Failed",
                "conditions": conds,
                "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": code}}}],
            }
        }

    assert failure_policy_action(job, pod(42)) == "FailJob"
    assert failure_policy_action(job, pod(1, disrupted=True)) == "Ignore"
    assert failure_policy_action(job, pod(1)) == "Count"


# --- sync -------------------------------------------------------------------------------------
class Harness:
    def __init__(self, tmp: Path) -> None:
        self.t = T0.timestamp()
        self.api = FakeApi(T0)
        self.ctx = self.api.context(tmp, **{"job.backoff-base": "10"})
        self.ctl = JobController(self.ctx, clock=lambda: self.t)

    def job(self, name: str = "work", **spec: Any) -> None:
        self.api.put(
            "batch/v1",
            "jobs",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {
                    "parallelism": 1,
                    "completions": 1,
                    "backoffLimit": 6,
                    "completionMode": "NonIndexed",
                    "suspend": False,
                    **spec,
                    "template": {
                        "metadata": {"labels": {"job-name": name}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]},
                    },
                },
            },
        )

    def sync(self, name: str = "work") -> None:
        async def go() -> None:
            await self.ctl.sync(f"default/{name}")
            self.ctl.queue.shutdown()

        asyncio.run(go())

    def pods(self) -> list[dict[str, Any]]:
        return sorted(self.api.all("pods"), key=lambda p: p["metadata"]["name"])

    def active(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods()
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]

    def finish(self, pod: dict[str, Any], phase: str, code: int = 0) -> None:
        obj = self.api.objects[("pods", "default", pod["metadata"]["name"])]
        stamp = dt.datetime.fromtimestamp(self.t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        obj["status"] = {
            "phase": phase,
            "containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": code, "finishedAt": stamp}}}
            ],
        }
        self.api.put("v1", "pods", obj)

    def status(self, name: str = "work") -> dict[str, Any]:
        return dict(self.api.objects[("jobs", "default", name)].get("status") or {})

    def condition(self, kind: str, name: str = "work") -> dict[str, Any] | None:
        for c in self.status(name).get("conditions") or []:
            if c["type"] == kind and c["status"] == "True":
                return dict(c)
        return None


def test_pods_are_created_up_to_parallelism_with_the_tracking_finalizer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(completions=5, parallelism=2)
    h.sync()
    pods = h.pods()
    assert len(pods) == 2
    for pod in pods:
        assert TRACKING_FINALIZER in pod["metadata"]["finalizers"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
        assert pod["metadata"]["generateName"] == "work-"
    h.sync()
    assert len(h.pods()) == 2
    assert h.status()["active"] == 2
    assert h.status()["startTime"] == "2026-03-01T10:00:00Z"


def test_completions_are_counted_exactly_once_and_the_job_completes(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(completions=3, parallelism=2)
    for _ in range(10):
        h.sync()
        for pod in h.active():
            h.finish(pod, "Succeeded")
        assert len(h.active()) <= 2
        if h.condition("Complete"):
            break
    status = h.status()
    assert status["succeeded"] == 3
    assert not status.get("failed")
    assert status["completionTime"]
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())
    assert len(h.pods()) == 3


def test_a_running_pod_deleted_by_someone_counts_as_one_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job()
    h.sync()
    (pod,) = h.pods()
    asyncio.run(h.api.delete("v1", "pods", pod["metadata"]["name"], "default"))
    h.sync()
    h.sync()
    assert h.status()["failed"] == 1
    assert ("pods", "default", pod["metadata"]["name"]) not in h.api.objects  # finalizer gone


def test_replacements_for_failed_pods_wait_for_the_backoff(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job()
    h.sync()
    (pod,) = h.pods()
    h.finish(pod, "Failed", 1)
    h.sync()
    assert h.status()["failed"] == 1
    assert h.active() == []  # within the 10 s backoff
    h.t += 10.5
    h.sync()
    assert len(h.active()) == 1
    h.finish(h.active()[0], "Failed", 1)
    h.t += 10.5
    h.sync()
    assert h.active() == []  # second failure: 20 s
    h.t += 10.0
    h.sync()
    assert len(h.active()) == 1


def test_exceeding_the_backoff_limit_fails_the_job(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(backoffLimit=1)
    for _ in range(4):
        h.sync()
        for pod in h.active():
            h.finish(pod, "Failed", 1)
        h.t += 400
    h.sync()
    cond = h.condition("Failed")
    assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
    assert h.status()["failed"] == 2
    assert len(h.pods()) == 2
    assert any(r == "BackoffLimitExceeded" for r, _ in events(h.ctx))


def test_the_active_deadline_deletes_pods_and_fails_the_job(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(parallelism=2, completions=2, activeDeadlineSeconds=30)
    h.sync()
    assert len(h.active()) == 2
    h.t += 31
    h.sync()
    assert h.active() == []
    h.sync()
    cond = h.condition("Failed")
    assert cond is not None and cond["reason"] == "DeadlineExceeded"
    assert h.status()["failed"] == 2
    assert not h.status().get("active")


def test_an_indexed_job_runs_each_index_once_with_its_env(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(completions=3, parallelism=2, completionMode="Indexed")
    h.sync()
    pods = h.active()
    assert sorted(p["metadata"]["annotations"][INDEX_KEY] for p in pods) == ["0", "1"]
    for pod in pods:
        ix = pod["metadata"]["annotations"][INDEX_KEY]
        assert pod["metadata"]["labels"][INDEX_KEY] == ix
        assert pod["metadata"]["generateName"] == f"work-{ix}-"
        assert pod["spec"]["hostname"] == f"work-{ix}"
        (env,) = [e for e in pod["spec"]["containers"][0]["env"] if e["name"] == INDEX_ENV]
        assert env["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{INDEX_KEY}']"
    first = next(p for p in pods if p["metadata"]["annotations"][INDEX_KEY] == "0")
    h.finish(first, "Succeeded")
    h.sync()
    assert h.status()["completedIndexes"] == "0"
    assert sorted(p["metadata"]["annotations"][INDEX_KEY] for p in h.active()) == ["1", "2"]
    for pod in h.active():
        h.finish(pod, "Succeeded")
    h.sync()
    h.sync()
    assert h.status()["completedIndexes"] == "0-2"
    assert h.status()["succeeded"] == 3
    assert h.condition("Complete")


def test_a_work_queue_job_completes_when_one_pod_succeeded_and_none_runs(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(completions=None, parallelism=2)
    h.sync()
    a, b = h.active()
    h.finish(a, "Succeeded")
    h.sync()
    assert len(h.active()) == 1  # no new pods after a success
    assert not h.condition("Complete")
    h.finish(b, "Succeeded")
    h.sync()
    h.sync()
    assert h.condition("Complete")
    assert h.status()["succeeded"] == 2


def test_suspend_deletes_pods_and_resume_resets_the_start_time(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(parallelism=2, completions=2)
    h.sync()
    assert len(h.active()) == 2
    obj = h.api.objects[("jobs", "default", "work")]
    obj["spec"]["suspend"] = True
    h.api.put("batch/v1", "jobs", obj)
    h.sync()
    assert h.active() == []
    assert h.condition("Suspended")
    h.t += 60
    obj = h.api.objects[("jobs", "default", "work")]
    obj["spec"]["suspend"] = False
    h.api.put("batch/v1", "jobs", obj)
    h.sync()
    h.sync()
    assert not h.condition("Suspended")
    assert h.status()["startTime"] == "2026-03-01T10:01:00Z"
    assert len(h.active()) == 2


def test_a_finished_job_is_deleted_after_its_ttl(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(ttlSecondsAfterFinished=100)
    h.sync()
    h.finish(h.active()[0], "Succeeded")
    h.sync()
    h.sync()
    assert h.condition("Complete")
    h.t += 50
    h.sync()
    assert ("jobs", "default", "work") in h.api.objects
    h.t += 51
    h.sync()
    assert ("jobs", "default", "work") not in h.api.objects


def test_pods_of_a_deleted_job_lose_the_tracking_finalizer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(parallelism=2, completions=2)
    h.sync()
    assert len(h.pods()) == 2
    job = h.api.objects.pop(("jobs", "default", "work"))
    h.api._feed("batch/v1", "jobs", "DELETED", job)
    h.sync()
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())


def test_a_failjob_pod_failure_policy_rule_fails_the_job_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(
        parallelism=2,
        completions=2,
        podFailurePolicy={
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
    )
    h.sync()
    first, second = h.active()
    h.finish(first, "Failed", 42)
    h.sync()
    assert h.active() == []  # the other pod is deleted
    h.finish(second, "Failed", 137)  # it terminates
    h.sync()
    cond = h.condition("Failed")
    assert cond is not None and cond["reason"] == "PodFailurePolicy"
    assert h.status()["failed"] == 2


def test_an_ignore_rule_neither_counts_the_failure_nor_backs_off(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.job(
        podFailurePolicy={
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
    )
    h.sync()
    (pod,) = h.active()
    obj = h.api.objects[("pods", "default", pod["metadata"]["name"])]
    obj["status"] = {
        "phase": "Failed",
        "conditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    h.api.put("v1", "pods", obj)
    h.sync()
    assert not h.status().get("failed")
    assert len(h.active()) == 1
