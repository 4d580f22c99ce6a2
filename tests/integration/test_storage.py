"""Storage in the built-in cluster: the PersistentVolume binder and the local-path
provisioner against a real cluster process (fake runtime, two nodes): dynamic
provisioning for the first consumer, static binding, selectors, reclaim policies and
claims nothing can satisfy."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration import harness
from tests.integration.harness import run, started

pytestmark = pytest.mark.integration

NS = "default"
DEADLINE = 60.0
CONTROLLERS = "persistentvolume-binder,persistentvolume-provisioner"


@pytest.fixture(scope="module")
def storage_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("storage") / "c",
        nodes=2,
        controllers=CONTROLLERS,
        options=("persistentvolume-binder.resync-seconds=2",),
    ) as proc:
        yield proc


# A missing object only means "not yet".
until = functools.partial(harness.until, timeout=DEADLINE, tolerate=harness.not_found)


def claim(name: str, size: str = "1Gi", cls: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        **spec,
    }
    if cls is not None:
        body["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": body,
    }


def volume(
    name: str,
    size: str,
    tmp: Path,
    modes: list[str] | None = None,
    labels: dict[str, str] | None = None,
    policy: str = "Retain",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": modes or ["ReadWriteOnce"],
            "storageClassName": "manual",
            "persistentVolumeReclaimPolicy": policy,
            "hostPath": {"path": str(tmp / name)},
        },
    }


def pod(name: str, claim_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "localhost/busybox:latest",
                    "imagePullPolicy": "Never",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def get_claim(client: Client, name: str) -> dict[str, Any]:
    return await client.get("v1", "persistentvolumeclaims", name, NS)


async def bound_claim(client: Client, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        c = await get_claim(client, name)
        return c if (c.get("status") or {}).get("phase") == "Bound" else None

    found: dict[str, Any] = await until(f"claim {name} to be bound", check)
    return found


async def events_for(client: Client, name: str) -> list[dict[str, Any]]:
    out = await client.list("v1", "events", NS, fieldSelector=f"involvedObject.name={name}")
    return list(out.get("items") or [])


async def event_with(client: Client, name: str, reason: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        for ev in await events_for(client, name):
            if ev.get("reason") == reason:
                return ev
        return None

    found: dict[str, Any] = await until(f"a {reason} event about {name}", check)
    return found


async def gone(client: Client, plural: str, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get("v1", plural, name, namespace)
    except KubeError as exc:
        if exc.not_found:
            return True
        raise
    return False


def test_a_default_class_claim_is_provisioned_and_bound_when_its_first_pod_is_scheduled(
    storage_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        sc = await until(
            "the local-path StorageClass",
            lambda: client.get("storage.k8s.io/v1", "storageclasses", "local-path"),
        )
        assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == (
            "true"
        )
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
        assert sc["reclaimPolicy"] == "Delete"
        created = await client.create("v1", "persistentvolumeclaims", claim("web-data"), NS)
        # the API server's DefaultStorageClass admission names the class at once
        assert created["spec"]["storageClassName"] == "local-path"
        await event_with(client, "web-data", "WaitForFirstConsumer")
        assert (await get_claim(client, "web-data"))["status"]["phase"] == "Pending"
        volumes = (await client.list("v1", "persistentvolumes"))["items"]
        assert all(pv["spec"].get("claimRef", {}).get("name") != "web-data" for pv in volumes)

        await client.create("v1", "pods", pod("web", "web-data"), NS)
        bound = await bound_claim(client, "web-data")
        pv_name = f"pvc-{bound['metadata']['uid']}"
        assert bound["spec"]["volumeName"] == pv_name
        assert bound["status"]["capacity"] == {"storage": "1Gi"}
        assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
        assert bound["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
        pv = await client.get("v1", "persistentvolumes", pv_name)
        assert pv["status"]["phase"] == "Bound"
        assert pv["spec"]["claimRef"]["uid"] == bound["metadata"]["uid"]
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
            "rancher.io/local-path"
        )
        path = Path(pv["spec"]["hostPath"]["path"])
        assert path == storage_cluster.state_dir / "controllers" / "volumes" / pv_name
        assert path.is_dir()

        async def running() -> dict[str, Any] | None:
            p = await client.get("v1", "pods", "web", NS)
            return p if p.get("status", {}).get("phase") == "Running" else None

        started = await until("the pod to run", running)
        node = started["spec"]["nodeName"]
        term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
        assert term["matchExpressions"][0]["values"] == [node]
        assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
        await event_with(client, "web-data", "ProvisioningSucceeded")
        await event_with(client, "web-data", "ExternalProvisioning")

    run(storage_cluster, body)


def test_deleting_a_claim_with_delete_policy_removes_its_volume_and_directory(
    storage_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create("v1", "persistentvolumeclaims", claim("tmp-data"), NS)
        await client.create("v1", "pods", pod("tmp", "tmp-data"), NS)
        bound = await bound_claim(client, "tmp-data")
        pv_name = bound["spec"]["volumeName"]
        pv = await client.get("v1", "persistentvolumes", pv_name)
        path = Path(pv["spec"]["hostPath"]["path"])
        (path / "file").write_text("bye")
        await client.delete("v1", "pods", "tmp", NS, body={"gracePeriodSeconds": 0})
        await until("the pod to go", lambda: gone(client, "pods", "tmp", NS))
        await client.delete("v1", "persistentvolumeclaims", "tmp-data", NS)
        await until("the volume to be deleted", lambda: gone(client, "persistentvolumes", pv_name))

        async def removed() -> bool:
            return not path.exists()

        await until("the directory to be removed", removed)

    run(storage_cluster, body)


def test_a_retained_volume_stays_released_with_its_data(
    storage_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "storage.k8s.io/v1",
            "storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "keep"},
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Retain",
                "volumeBindingMode": "Immediate",
            },
        )
        await client.create("v1", "persistentvolumeclaims", claim("keep-data", cls="keep"), NS)
        bound = await bound_claim(client, "keep-data")  # Immediate: no pod needed
        pv_name = bound["spec"]["volumeName"]
        pv = await client.get("v1", "persistentvolumes", pv_name)
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert "nodeAffinity" not in pv["spec"]
        path = Path(pv["spec"]["hostPath"]["path"])
        (path / "file").write_text("keep me")
        await client.delete("v1", "persistentvolumeclaims", "keep-data", NS)

        async def released() -> bool:
            found = await client.get("v1", "persistentvolumes", pv_name)
            return bool(found["status"]["phase"] == "Released")

        await until("the volume to be released", released)
        await asyncio.sleep(3)  # longer than a resync: nothing deletes it
        pv = await client.get("v1", "persistentvolumes", pv_name)
        assert pv["status"]["phase"] == "Released"
        assert (path / "file").read_text() == "keep me"

    run(storage_cluster, body)


def test_a_manual_claim_binds_to_the_smallest_matching_static_volume(
    storage_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        for pv in (
            volume("man-small", "500Mi", tmp_path),
            volume("man-rox", "1Gi", tmp_path, modes=["ReadOnlyMany"]),
            volume("man-fits", "2Gi", tmp_path),
            volume("man-big", "10Gi", tmp_path),
        ):
            await client.create("v1", "persistentvolumes", pv)
        await client.create("v1", "persistentvolumeclaims", claim("man", cls="manual"), NS)
        bound = await bound_claim(client, "man")
        assert bound["spec"]["volumeName"] == "man-fits"
        assert bound["status"]["capacity"] == {"storage": "2Gi"}
        annotations = bound["metadata"]["annotations"]
        assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
        pv = await client.get("v1", "persistentvolumes", "man-fits")
        assert pv["status"]["phase"] == "Bound"
        assert pv["spec"]["claimRef"]["name"] == "man"
        assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
        for other in ("man-small", "man-rox", "man-big"):
            found = await client.get("v1", "persistentvolumes", other)
            assert found["status"]["phase"] == "Available"
            assert "claimRef" not in found["spec"]

    run(storage_cluster, body)


def test_a_selector_limits_the_candidate_volumes(
    storage_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "v1", "persistentvolumes", volume("sel-gold", "5Gi", tmp_path, labels={"tier": "gold"})
        )
        await client.create(
            "v1", "persistentvolumes", volume("sel-plain", "1Gi", tmp_path, labels={"tier": "x"})
        )
        wanted = claim("sel", size="1Gi", cls="manual", selector={"matchLabels": {"tier": "gold"}})
        await client.create("v1", "persistentvolumeclaims", wanted, NS)
        bound = await bound_claim(client, "sel")
        assert bound["spec"]["volumeName"] == "sel-gold"

    run(storage_cluster, body)


def test_a_claim_nothing_can_satisfy_stays_pending_with_an_event(
    storage_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create(
            "v1", "persistentvolumeclaims", claim("huge", size="100Ti", cls="manual"), NS
        )
        event = await event_with(client, "huge", "ProvisioningFailed")
        assert event["type"] == "Warning"
        assert 'storageclass.storage.k8s.io "manual" not found' in event["message"]
        await client.create("v1", "persistentvolumeclaims", claim("classless", cls=""), NS)
        event = await event_with(client, "classless", "FailedBinding")
        assert "no storage class is set" in event["message"]
        for name in ("huge", "classless"):
            c = await get_claim(client, name)
            assert c["status"]["phase"] == "Pending"
            assert not c["spec"].get("volumeName")

    run(storage_cluster, body)


def test_a_second_pod_of_a_provisioned_read_write_once_claim_stays_on_its_node(
    storage_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        await client.create("v1", "persistentvolumeclaims", claim("rwo-data"), NS)
        await client.create("v1", "pods", pod("rwo-first", "rwo-data"), NS)
        await bound_claim(client, "rwo-data")

        async def placed(name: str) -> str | None:
            p = await client.get("v1", "pods", name, NS)
            node = p["spec"].get("nodeName")
            return str(node) if node else None

        node = await until("the first pod to be scheduled", lambda: placed("rwo-first"))
        other = "node-1" if node == "node-0" else "node-0"
        await client.create("v1", "pods", pod("rwo-same", "rwo-data"), NS)
        assert await until("the second pod to be scheduled", lambda: placed("rwo-same")) == node
        elsewhere = pod("rwo-elsewhere", "rwo-data")
        elsewhere["spec"]["nodeSelector"] = {"kubernetes.io/hostname": other}
        await client.create("v1", "pods", elsewhere, NS)
        event = await event_with(client, "rwo-elsewhere", "FailedScheduling")
        assert "volume node affinity conflict" in event["message"]
        assert await placed("rwo-elsewhere") is None

    run(storage_cluster, body)


def test_a_static_volume_with_delete_policy_fails_when_released_since_nothing_can_delete_it(
    storage_cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client) -> None:
        pv = volume("static-del", "1Gi", tmp_path, labels={"test": "del"}, policy="Delete")
        await client.create("v1", "persistentvolumes", pv)
        wanted = claim("static-del", cls="manual", selector={"matchLabels": {"test": "del"}})
        await client.create("v1", "persistentvolumeclaims", wanted, NS)
        assert (await bound_claim(client, "static-del"))["spec"]["volumeName"] == "static-del"
        await client.delete("v1", "persistentvolumeclaims", "static-del", NS)

        async def failed() -> dict[str, Any] | None:
            found = await client.get("v1", "persistentvolumes", "static-del")
            return found if found["status"]["phase"] == "Failed" else None

        found = await until("the volume to fail", failed)
        assert "no deletable volume plugin matched" in found["status"]["message"]
        event = await event_with(client, "static-del", "VolumeFailedDelete")
        assert event["involvedObject"]["kind"] == "PersistentVolume"

    run(storage_cluster, body)
