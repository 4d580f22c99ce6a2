"""Node failure: a node whose kubelet stops becomes unreachable and its pods are
evicted after their toleration (shortened here), against a real API server process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, load_kubeconfig
from runtime.controllers.nodelifecycle import (
    UNREACHABLE,
    NodeLifecycleController,
    NodeLifecycleOptions,
)
from runtime.kubelet.kubelet import Kubelet, KubeletOptions
from runtime.kubelet.podsync import SyncOptions
from runtime.kubelet.runtimes.fake import FakeRuntime
from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration


def _kubelet(client: Client, name: str, tmp: Path) -> Kubelet:
    options = KubeletOptions(
        node_name=name,
        root_dir=tmp / name,
        lease_renew_interval=0.3,
        sync=SyncOptions(node_name=name, resync=0.5),
    )
    return Kubelet(client, FakeRuntime(), options)


def _pod(name: str, node: str, toleration_seconds: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "localhost/busybox:latest", "imagePullPolicy": "Never"}
            ],
            "tolerations": [
                {
                    "key": UNREACHABLE,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": toleration_seconds,
                },
            ],
        },
    }


def test_a_stopped_nodes_pods_are_evicted_after_their_toleration(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def go() -> None:
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            alive, dying = (
                _kubelet(client, "node-alive", tmp_path),
                _kubelet(client, "node-dying", tmp_path),
            )
            tasks = [asyncio.create_task(k.run()) for k in (alive, dying)]
            controller = NodeLifecycleController(
                client, NodeLifecycleOptions(grace_period=2.0, monitor_period=0.3)
            )
            ctl = asyncio.create_task(controller.run())
            try:
                await asyncio.wait_for(asyncio.gather(alive.ready.wait(), dying.ready.wait()), 20)
                await client.create("v1", "pods", _pod("stays", "node-alive", 2), "default")
                await client.create("v1", "pods", _pod("moves", "node-dying", 2), "default")
                await asyncio.sleep(1.0)
                tasks[1].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tasks[1]
                deadline = asyncio.get_running_loop().time() + 25
                while True:
                    pod = await client.get("v1", "pods", "moves", "default")
                    if pod["metadata"].get("deletionTimestamp"):
                        break
                    assert asyncio.get_running_loop().time() < deadline, "the pod was not evicted"
                    await asyncio.sleep(0.2)
                node = await client.get("v1", "nodes", "node-dying")
                ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                assert ready["status"] == "Unknown"
                assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} >= {
                    (UNREACHABLE, "NoExecute"),
                    (UNREACHABLE, "NoSchedule"),
                }
                kept = await client.get("v1", "pods", "stays", "default")
                assert not kept["metadata"].get("deletionTimestamp")
                healthy = await client.get("v1", "nodes", "node-alive")
                assert not [
                    t for t in healthy["spec"].get("taints") or [] if t["key"] == UNREACHABLE
                ]
            finally:
                for t in [*tasks, ctl]:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t

    asyncio.run(go())
