"""Workload controllers end to end on real containers, on podman AND on docker: the
built-in cluster with every controller (`gitops cluster up --runtime podman|docker`)
runs a Deployment through a rolling update, a StatefulSet whose pod keeps its volume's
data across deletion, a Job to completion, and garbage-collects a deleted Deployment's
ReplicaSets and pods. The local busybox image is used (imagePullPolicy Never); the
cluster's stop removes every container, even on failure."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import ClusterProcess
from tests.integration import harness
from tests.integration.harness import run, started

BUSYBOX = "localhost/busybox:latest"
DEADLINE = 120.0


@pytest.fixture(scope="module", params=["podman", "docker"])
def engine_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp(f"workloads-{request.param}"),
        runtime=request.param,
        start_timeout=60.0,
        stop_timeout=90.0,
    ) as proc:
        yield proc


# Any API error only means "not yet" on a slow engine.
until = functools.partial(harness.until, timeout=DEADLINE, step=0.5, tolerate=harness.any_error)


def container(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "c",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        **extra,
    }


def test_a_deployment_rolls_from_one_version_to_the_next_on_real_containers(
    engine_cluster: ClusterProcess,
) -> None:
    def template(version: str) -> dict[str, Any]:
        return {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    container(
                        "echo $VERSION > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
                        env=[{"name": "VERSION", "value": version}],
                        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    )
                ],
            },
        }

    async def body(client: Client) -> None:
        dep = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template("v1"),
            },
        }
        await client.create("apps/v1", "deployments", dep, "default")

        async def rolled(version: str) -> bool:
            d = await client.get("apps/v1", "deployments", "web", "default")
            status = d.get("status") or {}
            if not (
                status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas") == 2
                and status.get("availableReplicas") == 2
                and status.get("replicas") == 2
            ):
                return False
            pods = (await client.list("v1", "pods", "default", labelSelector="app=web"))["items"]
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            versions = {p["spec"]["containers"][0]["env"][0]["value"] for p in live}
            return len(live) == 2 and versions == {version}

        await until("two v1 pods", lambda: rolled("v1"))
        await client.patch(
            "apps/v1", "deployments", "web", {"spec": {"template": template("v2")}}, "default"
        )
        await until("the rollout to v2", lambda: rolled("v2"))
        sets = await client.list("apps/v1", "replicasets", "default", labelSelector="app=web")
        assert sorted(rs["spec"]["replicas"] for rs in sets["items"]) == [0, 2]

        # deleting the Deployment (background propagation) removes its ReplicaSets and pods
        await client.delete("apps/v1", "deployments", "web", "default")

        async def collected() -> bool:
            left_sets = await client.list(
                "apps/v1", "replicasets", "default", labelSelector="app=web"
            )
            left_pods = await client.list("v1", "pods", "default", labelSelector="app=web")
            return not left_sets["items"] and not left_pods["items"]

        await until("the ReplicaSets and pods to be collected", collected)

    run(engine_cluster, body)


def test_a_statefulset_pod_keeps_its_volume_data_when_it_is_deleted_and_recreated(
    engine_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        sts = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            container(
                                "[ -f /data/id ] || echo $HOSTNAME-$RANDOM$RANDOM > /data/id; "
                                "cat /data/id; exec sleep 3600",
                                volumeMounts=[{"name": "data", "mountPath": "/data"}],
                                readinessProbe={
                                    "exec": {"command": ["test", "-f", "/data/id"]},
                                    "periodSeconds": 1,
                                },
                            )
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "100Mi"}},
                        },
                    }
                ],
            },
        }
        await client.create("apps/v1", "statefulsets", sts, "default")

        async def ready() -> bool:
            s = await client.get("apps/v1", "statefulsets", "db", "default")
            return (s.get("status") or {}).get("readyReplicas") == 2

        await until("both StatefulSet pods ready", ready)
        claims = await client.list("v1", "persistentvolumeclaims", "default")
        names = sorted(c["metadata"]["name"] for c in claims["items"])
        assert names == ["data-db-0", "data-db-1"]
        assert all(c["status"]["phase"] == "Bound" for c in claims["items"])

        async def log_of(name: str) -> str:
            raw = await client.get_raw(f"/api/v1/namespaces/default/pods/{name}/log")
            return raw.decode().strip()

        first = await until("db-1's id in its log", lambda: log_of("db-1"))
        old_uid = (await client.get("v1", "pods", "db-1", "default"))["metadata"]["uid"]
        await client.delete("v1", "pods", "db-1", "default")

        async def recreated() -> bool:
            pod = await client.get("v1", "pods", "db-1", "default")
            return pod["metadata"]["uid"] != old_uid and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )

        await until("a new db-1", recreated)
        assert await log_of("db-1") == first
        assert first.startswith("db-1-")
        await client.delete("apps/v1", "statefulsets", "db", "default")

    run(engine_cluster, body)


def test_a_job_runs_its_completions_to_the_end_on_real_containers(
    engine_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "count"},
            "spec": {
                "completions": 3,
                "parallelism": 2,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [container("echo done")],
                    }
                },
            },
        }
        await client.create("batch/v1", "jobs", job, "default")

        async def complete() -> bool:
            j = await client.get("batch/v1", "jobs", "count", "default")
            conditions = (j.get("status") or {}).get("conditions") or []
            return (j.get("status") or {}).get("succeeded") == 3 and any(
                c.get("type") == "Complete" and c.get("status") == "True" for c in conditions
            )

        await until("the Job to complete", complete)
        await client.delete(
            "batch/v1", "jobs", "count", "default", body={"propagationPolicy": "Background"}
        )

        async def pods_gone() -> bool:
            pods = await client.list("v1", "pods", "default", labelSelector="job-name=count")
            return not pods["items"]

        await until("the Job's pods to be collected", pods_gone)

    run(engine_cluster, body)
