"""Deleting a Deployment with the garbage collector on (fake runtime): background
deletion removes its ReplicaSets and pods; `kubectl delete --cascade=orphan` leaves
them running with their ownerReferences to the deleted owner removed."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, load_kubeconfig
from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import with_pod_essentials


@pytest.fixture(scope="module")
def gc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    proc = ClusterProcess(
        tmp_path_factory.mktemp("cascade"),
        runtime="fake",
        extra_args=(
            "--nodes",
            "2",
            "--controllers",
            with_pod_essentials("deployment,replicaset,garbagecollector"),
        ),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "img:v1"}]},
            },
        },
    }


async def _owned(client: Client, app: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sets = await client.list("apps/v1", "replicasets", "default", labelSelector=f"app={app}")
    pods = await client.list("v1", "pods", "default", labelSelector=f"app={app}")
    return sets["items"], pods["items"]


def _scenario(proc: ClusterProcess, app: str, delete: list[str], orphan: bool) -> None:
    async def go() -> None:
        async with Client(load_kubeconfig(proc.kubeconfig)) as client:
            await client.create("apps/v1", "deployments", _deployment(app), "default")

            async def running() -> bool:
                sets, pods = await _owned(client, app)
                return len(sets) == 1 and len(pods) == 2

            await _until("the Deployment's ReplicaSet and 2 pods", running)
            done = await asyncio.to_thread(
                subprocess.run,
                [kubectl_binary("1.35"), "delete", "deployment", app, *delete],
                env=proc.env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr

            if not orphan:

                async def collected() -> bool:
                    sets, pods = await _owned(client, app)
                    return not sets and not pods

                await _until("the ReplicaSet and pods to be collected", collected)
                return

            async def released() -> bool:
                sets, _pods = await _owned(client, app)
                return len(sets) == 1 and not any(
                    s["metadata"].get("ownerReferences") for s in sets
                )

            await _until("the ReplicaSet to lose its owner reference", released)
            await asyncio.sleep(2)  # nothing is deleted later either
            sets, pods = await _owned(client, app)
            assert len(sets) == 1 and len(pods) == 2
            assert not sets[0]["metadata"].get("ownerReferences")
            # the pods still belong to the (surviving) ReplicaSet
            rs_uid = sets[0]["metadata"]["uid"]
            assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs_uid for p in pods)

    asyncio.run(go())


def test_deleting_a_deployment_removes_its_replicasets_and_pods(gc_cluster: ClusterProcess) -> None:
    _scenario(gc_cluster, "gone", [], orphan=False)


def test_deleting_a_deployment_with_cascade_orphan_keeps_its_replicaset_and_pods(
    gc_cluster: ClusterProcess,
) -> None:
    _scenario(gc_cluster, "kept", ["--cascade=orphan"], orphan=True)
