"""The pod garbage collector (runtime/controllers/podgc.py) against a real cluster on
the fake runtime: pods of a deleted node are force-deleted, and finished pods beyond the
threshold are deleted oldest first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started, until


@pytest.fixture(scope="module")
def gc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("podgc"),
        controllers="podgc",
        options=("podgc.period=0.5", "podgc.quarantine=1", "podgc.terminated-threshold=2"),
    ) as proc:
        yield proc


def pod(name: str, node: str, **env: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "podgc"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ],
        },
    }


def test_pods_bound_to_a_node_that_was_deleted_are_force_deleted(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}}
        await client.create("v1", "nodes", node)
        await client.create("v1", "pods", pod("on-ghost", "ghost"), "default")
        await asyncio.sleep(2)  # longer than the quarantine: the node exists, nothing goes
        await client.get("v1", "pods", "on-ghost", "default")
        await client.delete("v1", "nodes", "ghost")

        async def gone() -> bool:
            try:
                await client.get("v1", "pods", "on-ghost", "default")
            except KubeError as exc:
                return exc.not_found
            return False

        await until("the ghost node's pod to be force-deleted", gone)

    run(gc_cluster, body)


def test_finished_pods_beyond_the_threshold_are_deleted_oldest_first(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        async def nodes() -> bool:
            return bool((await client.list("v1", "nodes")).get("items"))

        await until("the fake node", nodes)
        names = [f"done-{i}" for i in range(4)]
        for name in names:
            await client.create(
                "v1", "pods", pod(name, "node-0", FAKE_RUN_SECONDS="0.1"), "default"
            )
            await asyncio.sleep(1.1)  # distinct creation timestamps (second precision)

        async def two_left() -> bool:
            items = (await client.list("v1", "pods", "default", labelSelector="test=podgc"))[
                "items"
            ]
            finished = [p for p in items if p["metadata"]["name"].startswith("done-")]
            return sorted(p["metadata"]["name"] for p in finished) == names[2:]

        await until("only the two newest finished pods to remain", two_left)

    run(gc_cluster, body)
