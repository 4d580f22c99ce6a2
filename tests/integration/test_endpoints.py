"""Endpoints and EndpointSlices against a real cluster process (fake runtime): both
follow pods becoming ready, not ready and deleted; a named targetPort resolves per pod;
Services without a selector are left alone; slices belong to their Service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import STRATEGIC_PATCH, Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started, until
from tests.integration.test_garbage_collection import (
    CONTROLLERS,
    exists,
    new_namespace,
)

pytestmark = pytest.mark.integration

GATE = "example.com/serving"


@pytest.fixture(scope="module")
def ep_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("ep"),
        nodes=2,
        controllers=CONTROLLERS,
        options=("endpointslice.max-endpoints-per-slice=2",),
    ) as proc:
        yield proc


def gated_pod(name: str, http_port: int) -> dict[str, Any]:
    """A pod whose readiness a test controls through a readiness gate."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "hostname": name,
            "subdomain": "web",
            "readinessGates": [{"conditionType": GATE}],
            "containers": [
                {
                    "name": "c",
                    "image": "localhost/busybox:latest",
                    "ports": [{"name": "http", "containerPort": http_port}],
                }
            ],
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "labels": {"tier": "front"}},
    "spec": {
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9090},
        ],
    },
}


async def set_gate(c: Client, ns: str, name: str, ready: bool) -> None:
    await c.patch(
        "v1",
        "pods",
        name,
        {"status": {"conditions": [{"type": GATE, "status": "True" if ready else "False"}]}},
        ns,
        subresource="status",
        content_type=STRATEGIC_PATCH,
    )


def summarize_endpoints(ep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ready": {}, "not_ready": {}}
    for subset in ep.get("subsets") or []:
        ports = sorted((p.get("name"), p["port"]) for p in subset.get("ports") or [])
        for addr in subset.get("addresses") or []:
            out["ready"][addr["targetRef"]["name"]] = ports
        for addr in subset.get("notReadyAddresses") or []:
            out["not_ready"][addr["targetRef"]["name"]] = ports
    return out


def summarize_slices(slices: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eps in slices:
        ports = sorted((p.get("name"), p["port"]) for p in eps.get("ports") or [])
        for e in eps.get("endpoints") or []:
            out[e["targetRef"]["name"]] = (e["conditions"]["ready"], ports)
    return out


def test_endpoints_and_slices_follow_pods_readiness_and_resolve_named_ports_per_pod(
    ep_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "ep-follow"
        await new_namespace(c, ns)
        svc = await c.create("v1", "services", SERVICE, ns)
        await c.create("v1", "pods", gated_pod("a", 8080), ns)
        await c.create("v1", "pods", gated_pod("b", 8081), ns)
        state: dict[str, Any] = {}

        async def endpoints_are(expected: dict[str, Any]) -> bool:
            try:
                ep = await c.get("v1", "endpoints", "web", ns)
            except KubeError:
                return False
            state["ep"] = ep
            return summarize_endpoints(ep) == expected

        async def slices_are(expected: dict[str, Any]) -> bool:
            listed = await c.list(
                "discovery.k8s.io/v1",
                "endpointslices",
                ns,
                labelSelector="kubernetes.io/service-name=web",
            )
            state["slices"] = listed["items"]
            return summarize_slices(listed["items"]) == expected

        a_ports = [("http", 8080), ("metrics", 9090)]
        b_ports = [("http", 8081), ("metrics", 9090)]
        # Running but not ready: the readiness gate is not set.
        await until(
            "not-ready addresses",
            lambda: endpoints_are({"ready": {}, "not_ready": {"a": a_ports, "b": b_ports}}),
        )
        await until(
            "not-ready slices", lambda: slices_are({"a": (False, a_ports), "b": (False, b_ports)})
        )
        ep = state["ep"]
        assert ep["metadata"]["labels"] == {"tier": "front"}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
        address = ep["subsets"][0]["notReadyAddresses"][0]
        assert address["nodeName"] and address["hostname"] in ("a", "b")
        assert address["targetRef"]["kind"] == "Pod" and address["targetRef"]["uid"]
        for eps in state["slices"]:
            meta = eps["metadata"]
            assert meta["name"].startswith("web-") and meta["generateName"] == "web-"
            assert meta["labels"]["endpointslice.kubernetes.io/managed-by"] == (
                "endpointslice-controller.k8s.io"
            )
            assert meta["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
            assert eps["addressType"] == "IPv4"

        await set_gate(c, ns, "a", True)
        await set_gate(c, ns, "b", True)
        await until(
            "ready addresses",
            lambda: endpoints_are({"ready": {"a": a_ports, "b": b_ports}, "not_ready": {}}),
        )
        await until(
            "ready slices", lambda: slices_are({"a": (True, a_ports), "b": (True, b_ports)})
        )
        await set_gate(c, ns, "a", False)
        await until(
            "a not ready again",
            lambda: endpoints_are({"ready": {"b": b_ports}, "not_ready": {"a": a_ports}}),
        )
        await until(
            "a not ready slice", lambda: slices_are({"a": (False, a_ports), "b": (True, b_ports)})
        )
        await c.delete("v1", "pods", "b", ns, body={"gracePeriodSeconds": 0})
        await until("b removed", lambda: endpoints_are({"ready": {}, "not_ready": {"a": a_ports}}))
        await until("b removed from slices", lambda: slices_are({"a": (False, a_ports)}))

    run(ep_cluster, body)


def test_a_service_without_selector_is_left_alone_and_a_deleted_service_loses_its_endpoints(
    ep_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "ep-manual"
        await new_namespace(c, ns)
        manual = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "manual"},
            "spec": {"ports": [{"port": 80}]},
        }
        await c.create("v1", "services", manual, ns)
        mine = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "10.9.9.9"}], "ports": [{"port": 80}]}],
        }
        await c.create("v1", "endpoints", mine, ns)
        await c.create("v1", "services", SERVICE, ns)

        async def has_endpoints() -> bool:
            return await exists(c, "v1", "endpoints", "web", ns)

        async def has_placeholder_slice() -> bool:
            listed = await c.list(
                "discovery.k8s.io/v1",
                "endpointslices",
                ns,
                labelSelector="kubernetes.io/service-name=web",
            )
            return len(listed["items"]) == 1 and not listed["items"][0].get("endpoints")

        await until("endpoints of web", has_endpoints)
        await until("a placeholder slice", has_placeholder_slice)
        kept = await c.get("v1", "endpoints", "manual", ns)
        assert kept["subsets"][0]["addresses"][0]["ip"] == "10.9.9.9"
        none_for_manual = await c.list(
            "discovery.k8s.io/v1",
            "endpointslices",
            ns,
            labelSelector="kubernetes.io/service-name=manual",
        )
        assert none_for_manual["items"] == []
        await c.delete("v1", "services", "web", ns)

        async def cleaned() -> bool:
            listed = await c.list(
                "discovery.k8s.io/v1",
                "endpointslices",
                ns,
                labelSelector="kubernetes.io/service-name=web",
            )
            return not listed["items"] and not await exists(c, "v1", "endpoints", "web", ns)

        await until("endpoints and slices of a deleted service to go", cleaned)

    run(ep_cluster, body)


def test_slices_hold_at_most_the_configured_number_of_endpoints_and_shrink_with_the_pods(
    ep_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "ep-many"
        await new_namespace(c, ns)
        await c.create("v1", "services", SERVICE, ns)
        for i in range(5):
            await c.create("v1", "pods", gated_pod(f"p{i}", 8080), ns)
        sizes: list[int] = []

        async def slices_hold(total: int, count: int) -> bool:
            listed = await c.list(
                "discovery.k8s.io/v1",
                "endpointslices",
                ns,
                labelSelector="kubernetes.io/service-name=web",
            )
            sizes[:] = sorted(len(e.get("endpoints") or []) for e in listed["items"])
            return sum(sizes) == total and len(sizes) == count and max(sizes) <= 2

        await until("5 endpoints in 3 slices", lambda: slices_hold(5, 3))
        for i in range(4):
            await c.delete("v1", "pods", f"p{i}", ns, body={"gracePeriodSeconds": 0})
        await until("1 endpoint left in 1 slice", lambda: slices_hold(1, 1))

    run(ep_cluster, body)
