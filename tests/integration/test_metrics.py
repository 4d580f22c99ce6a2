"""The resource metrics API (metrics.k8s.io/v1beta1) against a real cluster process with
fake-runtime nodes: discovery lists it, PodMetrics/NodeMetrics carry the usage the fake
containers report (FAKE_CPU_NANOCORES / FAKE_MEMORY_BYTES), label selectors filter, and
kubectl 1.35's ``top pods`` / ``top nodes`` print it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import kubectl, run, started

pytestmark = pytest.mark.integration

BASE = "/apis/metrics.k8s.io/v1beta1"


def _pod(name: str, labels: dict[str, str], cpu_nano: int, memory: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": "localhost/busybox:latest",
                    "env": [
                        {"name": "FAKE_CPU_NANOCORES", "value": str(cpu_nano)},
                        {"name": "FAKE_MEMORY_BYTES", "value": str(memory)},
                    ],
                },
                {
                    "name": "side",
                    "image": "localhost/busybox:latest",
                    "env": [{"name": "FAKE_CPU_NANOCORES", "value": "1000000"}],
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("metrics") / "c", nodes=2, controllers="none") as proc:
        run(proc, _setup)
        yield proc


async def _setup(client: Client) -> None:
    await client.create("v1", "pods", _pod("web-1", {"app": "web"}, 250_000_000, 2**21), "default")
    await client.create("v1", "pods", _pod("web-2", {"app": "web"}, 123_456_789, 5000), "default")
    await client.create("v1", "pods", _pod("db-1", {"app": "db"}, 0, 3 * 2**20), "default")
    deadline = time.monotonic() + 60
    while True:
        body = await client.request("GET", f"{BASE}/namespaces/default/pods")
        if len(body["items"]) == 3:
            return
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.3)


def _get(proc: ClusterProcess, path: str, **params: str) -> Any:
    return run(proc, lambda client: client.request("GET", path, params=params or None))


def test_discovery_lists_the_metrics_group_with_pods_and_nodes(cluster: ClusterProcess) -> None:
    groups = _get(cluster, "/apis")["groups"]
    metrics = next(g for g in groups if g["name"] == "metrics.k8s.io")
    assert metrics["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    resources = _get(cluster, BASE)["resources"]
    assert {r["name"]: r["verbs"] for r in resources} == {
        "nodes": ["get", "list"],
        "pods": ["get", "list"],
    }
    assert _get(cluster, "/apis/metrics.k8s.io")["kind"] == "APIGroup"


def test_pod_metrics_report_each_containers_usage(cluster: ClusterProcess) -> None:
    pod = _get(cluster, f"{BASE}/namespaces/default/pods/web-1")
    assert pod["kind"] == "PodMetrics"
    assert pod["metadata"]["name"] == "web-1"
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["timestamp"] and pod["window"]
    usage = {c["name"]: c["usage"] for c in pod["containers"]}
    assert usage == {
        "main": {"cpu": "250m", "memory": "2Mi"},
        "side": {"cpu": "1m", "memory": "0"},
    }
    other = _get(cluster, f"{BASE}/namespaces/default/pods/web-2")
    main = next(c for c in other["containers"] if c["name"] == "main")
    assert main["usage"] == {"cpu": "123456789n", "memory": "5000"}


def test_pod_metrics_lists_honour_namespace_and_label_selector(cluster: ClusterProcess) -> None:
    web = _get(cluster, f"{BASE}/namespaces/default/pods", labelSelector="app=web")
    assert web["kind"] == "PodMetricsList"
    assert sorted(i["metadata"]["name"] for i in web["items"]) == ["web-1", "web-2"]
    everywhere = _get(cluster, f"{BASE}/pods", labelSelector="app in (db)")
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["db-1"]
    assert _get(cluster, f"{BASE}/namespaces/kube-system/pods")["items"] == []


def test_a_missing_pod_or_node_has_no_metrics(cluster: ClusterProcess) -> None:
    with pytest.raises(KubeError) as err:
        _get(cluster, f"{BASE}/namespaces/default/pods/nope")
    assert err.value.status == 404
    with pytest.raises(KubeError) as err:
        _get(cluster, f"{BASE}/nodes/nope")
    assert err.value.status == 404


def test_node_metrics_sum_the_usage_of_the_nodes_pods(cluster: ClusterProcess) -> None:
    nodes = _get(cluster, f"{BASE}/nodes")
    assert nodes["kind"] == "NodeMetricsList"
    assert len(nodes["items"]) == 2
    total = 0
    for item in nodes["items"]:
        cpu = item["usage"]["cpu"]
        if cpu.endswith("n"):
            total += int(cpu[:-1])
        elif cpu.endswith("m"):
            total += int(cpu[:-1]) * 1_000_000
        else:
            assert cpu == "0"
        one = _get(cluster, f"{BASE}/nodes/{item['metadata']['name']}")
        assert one["kind"] == "NodeMetrics" and one["usage"] == item["usage"]
    assert total == 250_000_000 + 123_456_789 + 3 * 1_000_000


def test_kubectl_top_pods_prints_each_pods_usage(cluster: ClusterProcess) -> None:
    out = kubectl(cluster, "top", "pods")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows["web-1"] == ["251m", "2Mi"]
    assert rows["db-1"] == ["1m", "3Mi"]
    out = kubectl(cluster, "top", "pods", "-l", "app=web", "--containers")
    assert "side" in out and "db-1" not in out


def test_kubectl_top_nodes_prints_each_nodes_usage(cluster: ClusterProcess) -> None:
    out = kubectl(cluster, "top", "nodes")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "CPU(cores)"]
    assert len(lines) == 3
