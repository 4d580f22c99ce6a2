"""StatefulSets against a real cluster process (fake runtime, 3 nodes, the statefulset
controller): ordered start with one claim per ordinal, stable identity and storage across
pod deletion, scale-down from the highest ordinal, and a partitioned rolling update.

The test itself plays the PersistentVolume binder (a hostPath PV per claim, then the
claim's ``volumeName`` and ``Bound`` phase), so the pods can be scheduled whether or not
the binder controller is running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, running_and_ready, started, until

pytestmark = pytest.mark.integration

NS = "default"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def sts_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("sts") / "c", nodes=3, controllers="statefulset,daemonset"
    ) as proc:
        yield proc


def _sts(name: str, replicas: int = 3, image: str = "localhost/busybox:latest") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": {"tier": "storage"}},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "manual",
                        "resources": {"requests": {"storage": "1Mi"}},
                    },
                }
            ],
        },
    }


async def _binder(client: Client, root: Path) -> None:
    """Bind every new claim in the namespace to its own hostPath PV."""
    done: set[str] = set()
    while True:
        claims = (await client.list("v1", "persistentvolumeclaims", NS))["items"]
        for claim in claims:
            name = claim["metadata"]["name"]
            if name in done or claim["spec"].get("volumeName"):
                done.add(name)
                continue
            pv_name = f"pv-{name}"
            (root / pv_name).mkdir(parents=True, exist_ok=True)
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv_name},
                "spec": {
                    "capacity": {"storage": "1Mi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "manual",
                    "hostPath": {"path": str(root / pv_name)},
                    "claimRef": {
                        "namespace": NS,
                        "name": name,
                        "uid": claim["metadata"]["uid"],
                    },
                },
            }
            with contextlib.suppress(KubeError):
                await client.create("v1", "persistentvolumes", pv)
            await client.patch(
                "v1", "persistentvolumeclaims", name, {"spec": {"volumeName": pv_name}}, NS
            )
            await client.patch(
                "v1",
                "persistentvolumeclaims",
                name,
                {"status": {"phase": "Bound"}},
                NS,
                subresource="status",
            )
            done.add(name)
        await asyncio.sleep(0.2)


async def _pods(client: Client, app: str) -> dict[str, Obj]:
    items = (await client.list("v1", "pods", NS, labelSelector=f"app={app}"))["items"]
    return {p["metadata"]["name"]: p for p in items}


async def _all_ready(client: Client, app: str, names: set[str]) -> bool:
    pods = await _pods(client, app)
    return set(pods) == names and all(
        running_and_ready(p) and not p["metadata"].get("deletionTimestamp") for p in pods.values()
    )


def _run(sts_cluster: ClusterProcess, tmp: Path, body: Callable[[Client], Awaitable[None]]) -> None:
    async def go(client: Client) -> None:
        binder = asyncio.create_task(_binder(client, tmp / "pvs"))
        try:
            await body(client)
        finally:
            binder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await binder

    run(sts_cluster, go)


def test_a_statefulset_of_three_starts_pods_in_order_each_with_its_own_claim(
    sts_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        seen: list[tuple[str, str, bool]] = []  # (event, pod, ready)

        async def watch() -> None:
            async for ev in client.watch("v1", "pods", NS, labelSelector="app=web"):
                obj = ev["object"]
                seen.append((ev["type"], obj["metadata"]["name"], running_and_ready(obj)))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        try:
            await client.create("apps/v1", "statefulsets", _sts("web"), NS)
            await until(
                "3 ready pods", lambda: _all_ready(client, "web", {"web-0", "web-1", "web-2"})
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, KubeError):
                await watcher
        added = [name for kind, name, _ in seen if kind == "ADDED"]
        assert added == ["web-0", "web-1", "web-2"]
        for i in (1, 2):
            at = next(n for n, e in enumerate(seen) if e[:2] == ("ADDED", f"web-{i}"))
            before = [e for e in seen[:at] if e[1] == f"web-{i - 1}"]
            assert before and before[-1][2], f"web-{i} was created before web-{i - 1} was ready"
        pods = await _pods(client, "web")
        for i in range(3):
            pod = pods[f"web-{i}"]
            assert pod["spec"]["hostname"] == f"web-{i}"
            assert pod["spec"]["subdomain"] == "web"
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
            assert labels["apps.kubernetes.io/pod-index"] == str(i)
            assert labels["controller-revision-hash"].startswith("web-")
            vols = {v["name"]: v for v in pod["spec"]["volumes"]}
            assert vols["data"]["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
            claim = await client.get("v1", "persistentvolumeclaims", f"data-web-{i}", NS)
            assert claim["metadata"]["labels"] == {"tier": "storage", "app": "web"}
        sts = await client.get("apps/v1", "statefulsets", "web", NS)

        async def status_done() -> bool:
            st = (await client.get("apps/v1", "statefulsets", "web", NS)).get("status") or {}
            return st.get("readyReplicas") == 3 and st.get("currentReplicas") == 3

        await until("status", status_done)
        st = (await client.get("apps/v1", "statefulsets", "web", NS))["status"]
        assert st["currentRevision"] == st["updateRevision"]
        assert st["observedGeneration"] == sts["metadata"]["generation"]
        revs = (await client.list("apps/v1", "controllerrevisions", NS))["items"]
        assert st["updateRevision"] in {r["metadata"]["name"] for r in revs}

        # Deleting web-1 brings back web-1 with the same claim.
        old = pods["web-1"]["metadata"]["uid"]
        await client.delete("v1", "pods", "web-1", NS)

        async def recreated() -> bool:
            now = await _pods(client, "web")
            pod = now.get("web-1")
            return pod is not None and pod["metadata"]["uid"] != old and running_and_ready(pod)

        await until("web-1 recreated", recreated)
        pod = (await _pods(client, "web"))["web-1"]
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert vols["data"]["persistentVolumeClaim"]["claimName"] == "data-web-1"

        # Scale down removes the highest ordinal first; claims stay.
        deletions: list[str] = []

        async def watch_deletes() -> None:
            async for ev in client.watch("v1", "pods", NS, labelSelector="app=web"):
                obj = ev["object"]
                gone = obj["metadata"].get("deletionTimestamp") or ev["type"] == "DELETED"
                if gone and obj["metadata"]["name"] not in deletions:
                    deletions.append(obj["metadata"]["name"])

        watcher = asyncio.create_task(watch_deletes())
        await asyncio.sleep(0.5)
        try:
            await client.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": 1}}, NS)
            await until("scaled to 1", lambda: _all_ready(client, "web", {"web-0"}))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, KubeError):
                await watcher
        assert deletions == ["web-2", "web-1"]
        claims = (await client.list("v1", "persistentvolumeclaims", NS))["items"]
        assert {"data-web-0", "data-web-1", "data-web-2"} <= {c["metadata"]["name"] for c in claims}

    _run(sts_cluster, tmp_path, body)


def test_a_rolling_update_goes_from_the_highest_ordinal_down_and_respects_the_partition(
    sts_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        spec = _sts("roll", replicas=4)
        spec["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": 2},
        }
        await client.create("apps/v1", "statefulsets", spec, NS)
        names = {f"roll-{i}" for i in range(4)}
        await until("4 ready pods", lambda: _all_ready(client, "roll", names))
        first = {
            n: p["metadata"]["labels"]["controller-revision-hash"]
            for n, p in (await _pods(client, "roll")).items()
        }
        assert len(set(first.values())) == 1
        old_rev = next(iter(first.values()))

        recreated: list[str] = []

        async def watch() -> None:
            async for ev in client.watch("v1", "pods", NS, labelSelector="app=roll"):
                obj = ev["object"]
                if ev["type"] == "ADDED" and obj["metadata"]["name"] not in recreated:
                    recreated.append(obj["metadata"]["name"])

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        recreated.clear()
        patch = {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}
        try:
            await client.patch("apps/v1", "statefulsets", "roll", patch, NS)

            async def upper_updated() -> bool:
                pods = await _pods(client, "roll")
                return (
                    await _all_ready(client, "roll", names)
                    and pods["roll-3"]["metadata"]["labels"]["controller-revision-hash"] != old_rev
                    and pods["roll-2"]["metadata"]["labels"]["controller-revision-hash"] != old_rev
                )

            await until("ordinals 3 and 2 updated", upper_updated)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, KubeError):
                await watcher
        assert recreated[:2] == ["roll-3", "roll-2"]
        await asyncio.sleep(2.0)  # the partition holds: nothing below it changes
        pods = await _pods(client, "roll")
        assert pods["roll-1"]["metadata"]["labels"]["controller-revision-hash"] == old_rev
        assert pods["roll-0"]["metadata"]["labels"]["controller-revision-hash"] == old_rev
        assert pods["roll-2"]["metadata"]["annotations"]["v"] == "2"
        st = (await client.get("apps/v1", "statefulsets", "roll", NS))["status"]
        assert st["currentRevision"] == old_rev
        assert st["updateRevision"] != old_rev
        assert st["updatedReplicas"] == 2

        # Lifting the partition finishes the update; the update revision becomes current.
        await client.patch(
            "apps/v1",
            "statefulsets",
            "roll",
            {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
            NS,
        )

        async def finished() -> bool:
            s = (await client.get("apps/v1", "statefulsets", "roll", NS)).get("status") or {}
            return (
                s.get("updatedReplicas") == 4
                and s.get("currentRevision") == s.get("updateRevision")
                and s.get("readyReplicas") == 4
            )

        await until("update finished", finished)

    _run(sts_cluster, tmp_path, body)


def test_a_parallel_statefulset_with_delete_retention_points_claims_at_set_then_pod(
    sts_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        spec = _sts("par", replicas=3)
        spec["spec"]["podManagementPolicy"] = "Parallel"
        spec["spec"]["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Delete",
            "whenScaled": "Delete",
        }
        created = await client.create("apps/v1", "statefulsets", spec, NS)
        uid = created["metadata"]["uid"]
        names = {f"par-{i}" for i in range(3)}
        await until("3 ready pods", lambda: _all_ready(client, "par", names))
        for i in range(3):
            claim = await client.get("v1", "persistentvolumeclaims", f"data-par-{i}", NS)
            refs = claim["metadata"]["ownerReferences"]
            assert [(r["kind"], r["uid"]) for r in refs] == [("StatefulSet", uid)]
        pod2 = (await _pods(client, "par"))["par-2"]
        await client.patch("apps/v1", "statefulsets", "par", {"spec": {"replicas": 1}}, NS)
        await until("scaled to 1", lambda: _all_ready(client, "par", {"par-0"}))
        claim = await client.get("v1", "persistentvolumeclaims", "data-par-2", NS)
        refs = claim["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"]) for r in refs] == [("Pod", pod2["metadata"]["uid"])]
        claim = await client.get("v1", "persistentvolumeclaims", "data-par-0", NS)
        assert [r["kind"] for r in claim["metadata"]["ownerReferences"]] == ["StatefulSet"]

    _run(sts_cluster, tmp_path, body)
