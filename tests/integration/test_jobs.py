"""Jobs and CronJobs against a real cluster process (fake container runtime, three nodes,
only the ``job`` and ``cronjob`` controllers): completions/parallelism, backoffLimit,
Indexed jobs, activeDeadlineSeconds, suspend, TTL, and a CronJob on the real clock."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from runtime.controllers.job import INDEX_ENV, INDEX_KEY, TRACKING_FINALIZER
from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import run, started, until

pytestmark = pytest.mark.integration

NS = "default"


@pytest.fixture(scope="module")
def batch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("jobs") / "c",
        nodes=3,
        controllers="job,cronjob",
        options=("job.backoff-base=0.2",),
    ) as proc:
        yield proc


def job(name: str, env: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "work",
                            "image": "localhost/busybox:latest",
                            "imagePullPolicy": "Never",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }


def cond(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


async def job_with_condition(client: Client, name: str, kind: str, what: str) -> dict[str, Any]:
    """The job ``name`` once its condition ``kind`` is True (waiting for ``what``)."""

    async def check() -> dict[str, Any] | None:
        got = await client.get("batch/v1", "jobs", name, NS)
        return got if cond(got, kind) else None

    found: dict[str, Any] = await until(what, check)
    return found


async def job_pods(client: Client, name: str) -> list[dict[str, Any]]:
    listed = await client.list("v1", "pods", NS, labelSelector=f"job-name={name}")
    return list(listed.get("items") or [])


def test_a_job_with_completions_5_and_parallelism_2_completes_with_at_most_2_active_pods(
    batch_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1",
            "jobs",
            job(
                "five",
                {"FAKE_RUN_SECONDS": "1", "FAKE_EXIT_CODE": "0"},
                completions=5,
                parallelism=2,
            ),
            NS,
        )
        most_active = 0

        async def done() -> dict[str, Any] | None:
            nonlocal most_active
            pods = await job_pods(client, "five")
            running = [
                p
                for p in pods
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")
            ]
            most_active = max(most_active, len(running))
            got = await client.get("batch/v1", "jobs", "five", NS)
            return got if cond(got, "Complete") else None

        finished = await until("job five to complete", done, step=0.1)
        status = finished["status"]
        assert status["succeeded"] == 5
        assert not status.get("failed")
        assert status.get("completionTime")
        assert most_active <= 2
        pods = await job_pods(client, "five")
        assert len(pods) == 5
        assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods)

    run(batch_cluster, body)


def test_a_job_whose_pods_always_fail_stops_after_its_backoff_limit(
    batch_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1",
            "jobs",
            job("fails", {"FAKE_RUN_SECONDS": "0.2", "FAKE_EXIT_CODE": "1"}, backoffLimit=2),
            NS,
        )

        got = await job_with_condition(client, "fails", "Failed", "job fails to fail")
        assert cond(got, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
        assert got["status"]["failed"] == 3
        assert not got["status"].get("active")
        assert len(await job_pods(client, "fails")) == 3

    run(batch_cluster, body)


def test_an_indexed_job_gives_each_pod_one_index_and_completes_them_all(
    batch_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1",
            "jobs",
            job(
                "indexed",
                {"FAKE_RUN_SECONDS": "0.5"},
                completions=3,
                parallelism=3,
                completionMode="Indexed",
            ),
            NS,
        )

        got = await job_with_condition(client, "indexed", "Complete", "indexed job to complete")
        assert got["status"]["completedIndexes"] == "0-2"
        assert got["status"]["succeeded"] == 3
        pods = await job_pods(client, "indexed")
        indexes = sorted(int(p["metadata"]["annotations"][INDEX_KEY]) for p in pods)
        assert indexes == [0, 1, 2]
        for pod in pods:
            ix = pod["metadata"]["annotations"][INDEX_KEY]
            assert pod["metadata"]["labels"][INDEX_KEY] == ix
            assert pod["metadata"]["name"].startswith(f"indexed-{ix}-")
            assert pod["spec"]["hostname"] == f"indexed-{ix}"
            env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
            ref = env[INDEX_ENV]["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref == f"metadata.annotations['{INDEX_KEY}']"

    run(batch_cluster, body)


def test_a_job_past_its_active_deadline_fails_and_its_pods_are_deleted(
    batch_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1",
            "jobs",
            job("slow", {}, parallelism=2, completions=2, activeDeadlineSeconds=2),
            NS,
        )
        await until(
            "slow job's pods to run",
            lambda: _count(client, "slow", lambda p: p["status"].get("phase") == "Running", 2),
        )

        got = await job_with_condition(client, "slow", "Failed", "slow job to fail")
        assert cond(got, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
        assert got["status"]["failed"] == 2
        assert not got["status"].get("active")
        await until(
            "slow job's pods to go",
            lambda: _count(client, "slow", lambda p: True, 0),
        )

    run(batch_cluster, body)


def test_a_suspended_job_runs_no_pods_until_resumed(batch_cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1", "jobs", job("later", {"FAKE_RUN_SECONDS": "0.5"}, suspend=True), NS
        )

        got = await job_with_condition(client, "later", "Suspended", "job to be suspended")
        assert not got["status"].get("startTime")
        assert await job_pods(client, "later") == []
        await client.patch("batch/v1", "jobs", "later", {"spec": {"suspend": False}}, NS)

        got = await job_with_condition(client, "later", "Complete", "resumed job to complete")
        assert got["status"]["startTime"]
        assert not cond(got, "Suspended")

    run(batch_cluster, body)


def test_a_finished_job_with_a_ttl_is_deleted(batch_cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "batch/v1",
            "jobs",
            job("brief", {"FAKE_RUN_SECONDS": "0.2"}, ttlSecondsAfterFinished=1),
            NS,
        )

        async def gone() -> bool:
            try:
                await client.get("batch/v1", "jobs", "brief", NS)
            except KubeError as exc:
                return exc.not_found
            return False

        await until("job brief to be deleted", gone)

    run(batch_cluster, body)


async def _count(
    client: Client, name: str, pred: Callable[[dict[str, Any]], bool], want: int
) -> bool:
    pods = await job_pods(client, name)
    return sum(1 for p in pods if pred(p)) == want


def test_kubectl_creates_a_job_from_a_cronjob(
    batch_cluster: ClusterProcess, tmp_path: Path
) -> None:
    kubectl = kubectl_binary("1.35")

    async def setup(client: Client) -> None:
        await client.create("batch/v1", "cronjobs", _cronjob("manual", "0 0 1 1 *"), NS)

    run(batch_cluster, setup)
    out = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(batch_cluster.kubeconfig),
            "create",
            "job",
            "by-hand",
            "--from=cronjob/manual",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr

    async def check(client: Client) -> None:
        got = await client.get("batch/v1", "jobs", "by-hand", NS)
        assert got["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert got["metadata"]["ownerReferences"][0]["name"] == "manual"

        async def done() -> dict[str, Any] | None:
            j = await client.get("batch/v1", "jobs", "by-hand", NS)
            return j if cond(j, "Complete") else None

        await until("manual job to complete", done)

    run(batch_cluster, check)


def _cronjob(name: str, schedule: str, **spec: Any) -> dict[str, Any]:
    template = job("x", {"FAKE_RUN_SECONDS": "0.3"})
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            **spec,
            "jobTemplate": {
                "metadata": {"labels": {"cron": name}, "annotations": {"note": "from-template"}},
                "spec": {"template": template["spec"]["template"]},
            },
        },
    }


def test_a_cronjob_every_minute_creates_a_job_on_time(batch_cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create("batch/v1", "cronjobs", _cronjob("minutely", "*/1 * * * *"), NS)

        async def created() -> list[dict[str, Any]]:
            listed = await client.list("batch/v1", "jobs", NS, labelSelector="cron=minutely")
            return list(listed.get("items") or [])

        jobs = await until("the cronjob's first job", created, timeout=90.0, step=0.5)
        made = jobs[0]
        scheduled = made["metadata"]["annotations"][
            "batch.kubernetes.io/cronjob-scheduled-timestamp"
        ]
        minutes = int(made["metadata"]["name"].rsplit("-", 1)[1])
        from runtime.controllers.common import parse_time

        at = parse_time(scheduled)
        assert at is not None and int(at) // 60 == minutes and int(at) % 60 == 0
        created_at = parse_time(made["metadata"]["creationTimestamp"])
        assert created_at is not None and 0 <= created_at - at < 15
        assert made["metadata"]["annotations"]["note"] == "from-template"
        assert made["metadata"]["ownerReferences"][0]["kind"] == "CronJob"

        async def recorded() -> dict[str, Any] | None:
            cj = await client.get("batch/v1", "cronjobs", "minutely", NS)
            st = cj.get("status") or {}
            return (
                cj
                if st.get("lastScheduleTime") == scheduled and st.get("lastSuccessfulTime")
                else None
            )

        cj = await until("the cronjob's status", recorded)
        assert not cj["status"].get("active")

    run(batch_cluster, body)
