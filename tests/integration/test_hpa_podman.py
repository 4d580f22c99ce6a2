"""The HorizontalPodAutoscaler end to end on podman: a Deployment of CPU-burning busybox
pods (request 100m) is scaled up by an HPA targeting 50 % CPU utilization, with usage
read from the kubelet's stats through the metrics API; when the load stops (a rollout
replaces the burners with idle pods) it is scaled back down after a shortened
stabilization window. Every pod is removed at the end, even on failure."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started, until

pytestmark = pytest.mark.integration

NS = "default"
DEADLINE = 120.0
BURN = ["sh", "-c", "while true; do :; done"]
IDLE = ["sh", "-c", "sleep 3600"]


@pytest.fixture
def podman_cluster(tmp_path: Any) -> Iterator[ClusterProcess]:
    with started(
        tmp_path / "c",
        runtime="podman",
        controllers="deployment,replicaset,horizontalpodautoscaling",
        options=(
            "horizontalpodautoscaling.sync-period=2",
            "horizontalpodautoscaling.downscale-stabilization=10",
        ),
        start_timeout=60.0,
        stop_timeout=60.0,
    ) as proc:
        yield proc


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burner"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burner"}},
            "template": {
                "metadata": {"labels": {"app": "burner"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "burn",
                            "image": "localhost/busybox:latest",
                            "imagePullPolicy": "Never",
                            "command": BURN,
                            "resources": {"requests": {"cpu": "100m"}},
                        }
                    ],
                },
            },
        },
    }


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "burner"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burner"},
        "minReplicas": 1,
        "maxReplicas": 2,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
            }
        ],
    },
}


_until = functools.partial(until, timeout=DEADLINE, step=0.5)


async def _cleanup(client: Client) -> None:
    """Stop autoscaling, scale to zero, and delete every pod of the test."""
    with contextlib.suppress(KubeError):
        await client.delete("autoscaling/v2", "horizontalpodautoscalers", "burner", NS)
    with contextlib.suppress(KubeError):
        await client.patch(
            "apps/v1", "deployments", "burner", {"spec": {"replicas": 0}}, NS, "scale"
        )
    with contextlib.suppress(KubeError):
        await client.delete("apps/v1", "deployments", "burner", NS)
    for rs in (await client.list("apps/v1", "replicasets", NS))["items"]:
        with contextlib.suppress(KubeError):
            await client.delete("apps/v1", "replicasets", rs["metadata"]["name"], NS)
    pods = await client.list("v1", "pods", NS)
    for pod in pods["items"]:
        with contextlib.suppress(KubeError):
            await client.delete("v1", "pods", pod["metadata"]["name"], NS)

    async def gone() -> bool:
        return not (await client.list("v1", "pods", NS))["items"]

    await _until("the pods to be deleted", gone, timeout=60.0)


def test_an_hpa_scales_cpu_burning_pods_up_and_down_when_the_load_stops(
    podman_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        try:
            await client.create("apps/v1", "deployments", _deployment(), NS)
            await client.create("autoscaling/v2", "horizontalpodautoscalers", HPA, NS)

            async def replicas(n: int) -> bool:
                scale = await client.get("apps/v1", "deployments", "burner", NS, "scale")
                return bool(scale["spec"]["replicas"] == n)

            await _until("a scale up to 2", lambda: replicas(2))
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "burner", NS)
            current = hpa["status"]["currentMetrics"][0]["resource"]["current"]
            assert current["averageUtilization"] > 50

            # The load stops: a rollout replaces the burners with idle pods.
            deploy = await client.get("apps/v1", "deployments", "burner", NS)
            deploy["spec"]["template"]["spec"]["containers"][0]["command"] = IDLE
            await client.replace("apps/v1", "deployments", "burner", deploy, NS)

            await _until("a scale down to 1", lambda: replicas(1))
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "burner", NS)
            assert hpa["status"]["lastScaleTime"]
        finally:
            await _cleanup(client)

    run(podman_cluster, body)
