"""DaemonSets against a real cluster process (fake runtime, the daemonset controller):
one pod per node placed by the scheduler through the matchFields pin, nodeSelector and
taints respected, a pod for a node that joins (an extra ``gitops kubelet`` process), and
a rolling update that keeps at most one node without a ready pod."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, running_and_ready, started, until

pytestmark = pytest.mark.integration

NS = "default"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def ds_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("ds") / "c", nodes=3, controllers="statefulset,daemonset"
    ) as proc:
        yield proc


def _ds(name: str, **pod_spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "localhost/busybox:latest",
                            "imagePullPolicy": "Never",
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


async def _placement(client: Client, app: str) -> dict[str, list[Obj]]:
    """node -> live, ready pods of the DaemonSet."""
    items = (await client.list("v1", "pods", NS, labelSelector=f"app={app}"))["items"]
    out: dict[str, list[Obj]] = {}
    for pod in items:
        if pod["metadata"].get("deletionTimestamp") or not running_and_ready(pod):
            continue
        out.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
    return out


async def _on_nodes(client: Client, app: str, nodes: set[str]) -> bool:
    items = (await client.list("v1", "pods", NS, labelSelector=f"app={app}"))["items"]
    placed = await _placement(client, app)
    return (
        set(placed) == nodes
        and all(len(p) == 1 for p in placed.values())
        and len(items) == len(nodes)
    )


ALL = {"node-0", "node-1", "node-2"}


def test_a_daemonset_puts_one_pod_on_each_node_and_rolls_an_update_one_node_at_a_time(
    ds_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create("apps/v1", "daemonsets", _ds("agent"), NS)
        await until("a pod per node", lambda: _on_nodes(client, "agent", ALL))
        placed = await _placement(client, "agent")
        for node, (pod,) in placed.items():
            terms = pod["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            assert terms == [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
            keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
            assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
            assert pod["metadata"]["labels"]["controller-revision-hash"]

        async def status_ok() -> bool:
            st = (await client.get("apps/v1", "daemonsets", "agent", NS)).get("status") or {}
            return (
                st.get("desiredNumberScheduled") == 3
                and st.get("numberReady") == 3
                and st.get("numberAvailable") == 3
                and st.get("updatedNumberScheduled") == 3
            )

        await until("status", status_ok)
        old_hash = next(iter(placed.values()))[0]["metadata"]["labels"]["controller-revision-hash"]

        # Rolling update with maxUnavailable 1: never more than one node without a ready pod.
        state: dict[str, Obj] = {}
        worst = [3]

        listed = await client.list("v1", "pods", NS, labelSelector="app=agent")
        state.update({p["metadata"]["name"]: p for p in listed["items"]})
        rv = listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            async for ev in client.watch(
                "v1", "pods", NS, labelSelector="app=agent", resourceVersion=rv
            ):
                obj = ev["object"]
                if ev["type"] == "DELETED":
                    state.pop(obj["metadata"]["name"], None)
                else:
                    state[obj["metadata"]["name"]] = obj
                good = {
                    p["spec"].get("nodeName")
                    for p in state.values()
                    if running_and_ready(p) and not p["metadata"].get("deletionTimestamp")
                }
                worst[0] = min(worst[0], len(good))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        patch = {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}
        try:
            await client.patch("apps/v1", "daemonsets", "agent", patch, NS)

            async def rolled() -> bool:
                placed = await _placement(client, "agent")
                return await _on_nodes(client, "agent", ALL) and all(
                    p[0]["metadata"]["labels"]["controller-revision-hash"] != old_hash
                    for p in placed.values()
                )

            await until("update rolled", rolled)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, KubeError):
                await watcher
        assert worst[0] == 2
        revs = (await client.list("apps/v1", "controllerrevisions", NS))["items"]
        assert len([r for r in revs if r["metadata"]["name"].startswith("agent-")]) == 2
        await client.delete("apps/v1", "daemonsets", "agent", NS)

    run(ds_cluster, body)


def test_a_daemonset_skips_nodes_its_node_selector_excludes_and_untolerated_taints(
    ds_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        for node in ("node-0", "node-1"):
            await client.patch("v1", "nodes", node, {"metadata": {"labels": {"pool": "a"}}})
        await client.create("apps/v1", "daemonsets", _ds("picky", nodeSelector={"pool": "a"}), NS)
        await until(
            "pods on node-0 and node-1", lambda: _on_nodes(client, "picky", {"node-0", "node-1"})
        )
        await client.patch(
            "v1",
            "nodes",
            "node-2",
            {"spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}},
        )
        try:
            await client.create("apps/v1", "daemonsets", _ds("plain"), NS)
            tolerating = _ds(
                "tolerant",
                tolerations=[{"key": "dedicated", "operator": "Equal", "value": "x"}],
            )
            await client.create("apps/v1", "daemonsets", tolerating, NS)
            await until("tolerant everywhere", lambda: _on_nodes(client, "tolerant", ALL))
            await until(
                "plain off the tainted node",
                lambda: _on_nodes(client, "plain", {"node-0", "node-1"}),
            )
            st = (await client.get("apps/v1", "daemonsets", "plain", NS))["status"]
            assert st["desiredNumberScheduled"] == 2
        finally:
            await client.patch("v1", "nodes", "node-2", {"spec": {"taints": None}})
            for name in ("picky", "plain", "tolerant"):
                with contextlib.suppress(KubeError):
                    await client.delete("apps/v1", "daemonsets", name, NS)

    run(ds_cluster, body)


def test_a_daemonset_adds_a_pod_when_a_node_joins_and_removes_it_when_the_node_leaves(
    ds_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create("apps/v1", "daemonsets", _ds("follow"), NS)
        await until("a pod per node", lambda: _on_nodes(client, "follow", ALL))
        log = (ds_cluster.state_dir / "kubelet-extra.log").open("ab")
        kubelet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gitops.cli",
                "kubelet",
                "--runtime",
                "fake",
                "--node-name",
                "node-3",
                "--state-dir",
                str(ds_cluster.state_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            await until(
                "a pod on the new node",
                lambda: _on_nodes(client, "follow", ALL | {"node-3"}),
                timeout=90,
            )
        finally:
            kubelet.terminate()
            try:
                kubelet.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kubelet.kill()
                kubelet.wait()
            log.close()
        await client.delete("v1", "nodes", "node-3")

        async def gone() -> bool:
            items = (await client.list("v1", "pods", NS, labelSelector="app=follow"))["items"]
            # Deleted (terminating: no kubelet is left to confirm it, and the built-in
            # cluster has no pod GC to force-delete pods of deleted nodes).
            return not [
                p
                for p in items
                if p["spec"].get("nodeName") == "node-3"
                and not p["metadata"].get("deletionTimestamp")
            ]

        await until("the pod of the departed node deleted", gone)

        async def back_to_three() -> bool:
            st = (await client.get("apps/v1", "daemonsets", "follow", NS)).get("status") or {}
            return st.get("desiredNumberScheduled") == 3 and st.get("currentNumberScheduled") == 3

        await until("status without the departed node", back_to_three)
        await client.delete("apps/v1", "daemonsets", "follow", NS)

    run(ds_cluster, body)
