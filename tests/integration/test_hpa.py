"""The HorizontalPodAutoscaler controller against a real cluster process with fake-runtime
nodes and the ReplicaSet controller: CPU usage driven by FAKE_CPU_NANOCORES scales a
ReplicaSet up through its scale subresource, and down again after a shortened
stabilization window once the usage stops; unusable metrics are reported as conditions."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started, until

pytestmark = pytest.mark.integration

NS = "default"
DEADLINE = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("hpa") / "c",
        nodes=2,
        controllers="replicaset,horizontalpodautoscaling",
        options=(
            "horizontalpodautoscaling.sync-period=1",
            "horizontalpodautoscaling.downscale-stabilization=3",
        ),
    ) as proc:
        yield proc


def _replicaset(name: str, cpu_nanocores: int, request: str | None) -> dict[str, Any]:
    resources = {"requests": {"cpu": request}} if request else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "burn",
                            "image": "localhost/busybox:latest",
                            "env": [{"name": "FAKE_CPU_NANOCORES", "value": str(cpu_nanocores)}],
                            "resources": resources,
                        }
                    ],
                },
            },
        },
    }


def _hpa(name: str, metrics: list[dict[str, Any]], max_replicas: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": metrics,
        },
    }


CPU_50 = [
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
    }
]


_until = functools.partial(until, timeout=DEADLINE, step=0.3)


def _condition(hpa: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (hpa.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def test_cpu_usage_scales_a_replicaset_up_and_back_down_after_the_window(
    cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create("apps/v1", "replicasets", _replicaset("web", 200_000_000, "100m"), NS)
        await client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("web", CPU_50), NS)

        async def scaled_to(n: int) -> bool:
            scale = await client.get("apps/v1", "replicasets", "web", NS, "scale")
            return bool(scale["spec"]["replicas"] == n)

        await _until("a scale up to maxReplicas", lambda: scaled_to(4))

        async def settled() -> dict[str, Any] | None:
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "web", NS)
            status = hpa.get("status") or {}
            if status.get("currentReplicas") != 4 or status.get("desiredReplicas") != 4:
                return None
            return hpa

        hpa = await _until("the HPA status at 4 replicas", settled)
        status = hpa["status"]
        assert status["lastScaleTime"]
        resource = status["currentMetrics"][0]["resource"]
        assert resource["name"] == "cpu"
        assert resource["current"]["averageUtilization"] == 200
        assert resource["current"]["averageValue"] == "200m"
        assert _condition(hpa, "AbleToScale")["status"] == "True"
        active = _condition(hpa, "ScalingActive")
        assert (active["status"], active["reason"]) == ("True", "ValidMetricFound")
        limited = _condition(hpa, "ScalingLimited")
        assert (limited["status"], limited["reason"]) == ("True", "TooManyReplicas")

        async def rescale_event() -> bool:
            events = await client.list("v1", "events", NS)
            return any(
                e.get("reason") == "SuccessfulRescale"
                and e["involvedObject"]["name"] == "web"
                and "New size: 4" in e.get("message", "")
                for e in events["items"]
            )

        await _until("a SuccessfulRescale event", rescale_event)

        # The load stops: new pods use no CPU; the old ones go away.
        rs = await client.get("apps/v1", "replicasets", "web", NS)
        container = rs["spec"]["template"]["spec"]["containers"][0]
        container["env"] = [{"name": "FAKE_CPU_NANOCORES", "value": "0"}]
        await client.replace("apps/v1", "replicasets", "web", rs, NS)
        pods = await client.list("v1", "pods", NS, labelSelector="app=web")
        for p in pods["items"]:
            await client.delete("v1", "pods", p["metadata"]["name"], NS)

        await _until("a scale down to minReplicas", lambda: scaled_to(1))
        hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "web", NS)
        assert hpa["status"]["desiredReplicas"] in (1, 4)

    run(cluster, body)


def test_pods_without_cpu_requests_make_utilization_impossible(cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create("apps/v1", "replicasets", _replicaset("noreq", 50_000_000, None), NS)
        await client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("noreq", CPU_50), NS)

        async def inactive() -> dict[str, Any]:
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "noreq", NS)
            cond = _condition(hpa, "ScalingActive")
            # (Before the pod runs, the condition tells that metrics are missing.)
            wanted = "missing request for cpu" in cond.get("message", "")
            return cond if cond.get("status") == "False" and wanted else {}

        cond = await _until("ScalingActive False for the missing request", inactive)
        assert cond["reason"] == "FailedGetResourceMetric"
        scale = await client.get("apps/v1", "replicasets", "noreq", NS, "scale")
        assert scale["spec"]["replicas"] == 1

    run(cluster, body)


def test_a_pods_metric_is_refused_with_a_condition(cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create("apps/v1", "replicasets", _replicaset("custom", 0, "100m"), NS)
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": "requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10"},
            },
        }
        await client.create(
            "autoscaling/v2", "horizontalpodautoscalers", _hpa("custom", [metric]), NS
        )

        async def inactive() -> dict[str, Any]:
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "custom", NS)
            cond = _condition(hpa, "ScalingActive")
            return cond if cond.get("status") == "False" else {}

        cond = await _until("ScalingActive False", inactive)
        assert cond["reason"] == "FailedGetPodsMetric"

    run(cluster, body)


def test_a_missing_scale_target_is_reported_as_unable_to_scale(cluster: ClusterProcess) -> None:
    async def body(client: Client) -> None:
        await client.create("autoscaling/v2", "horizontalpodautoscalers", _hpa("ghost", CPU_50), NS)

        async def unable() -> dict[str, Any]:
            hpa = await client.get("autoscaling/v2", "horizontalpodautoscalers", "ghost", NS)
            cond = _condition(hpa, "AbleToScale")
            return cond if cond.get("status") == "False" else {}

        cond = await _until("AbleToScale False", unable)
        assert cond["reason"] == "FailedGetScale"

    run(cluster, body)
