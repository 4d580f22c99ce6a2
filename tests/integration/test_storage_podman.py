"""Storage end to end on podman: a pod writes a file into a volume the local-path
provisioner created for its claim; after that pod is deleted, a new pod mounting the
same claim reads the file back. The cluster (and with it every container) is stopped at
the end, even on failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started

pytestmark = pytest.mark.integration

NS = "default"
DEADLINE = 90.0


@pytest.fixture
def podman_cluster(tmp_path: Any) -> Iterator[ClusterProcess]:
    with started(
        tmp_path / "c",
        runtime="podman",
        controllers="persistentvolume-binder,persistentvolume-provisioner",
        start_timeout=60.0,
        stop_timeout=60.0,
    ) as proc:
        yield proc


def _pod(name: str, command: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": "localhost/busybox:latest",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", command],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "notes"}}],
        },
    }


async def _finished(client: Client, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        pod = await client.get("v1", "pods", name, NS)
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Succeeded":
            return pod
        assert phase != "Failed", f"pod {name} failed: {pod.get('status')}"
        assert time.monotonic() < deadline, f"pod {name} did not finish: {pod.get('status')}"
        await asyncio.sleep(0.5)


def test_a_file_written_to_a_provisioned_volume_outlives_its_pod(
    podman_cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "notes"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        }
        await client.create("v1", "persistentvolumeclaims", claim, NS)
        await client.create("v1", "pods", _pod("writer", "echo kept-across-pods > /data/note"), NS)
        await _finished(client, "writer")
        bound = await client.get("v1", "persistentvolumeclaims", "notes", NS)
        assert bound["status"]["phase"] == "Bound"
        assert bound["spec"]["storageClassName"] == "local-path"
        await client.delete("v1", "pods", "writer", NS)
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                await client.get("v1", "pods", "writer", NS)
            except KubeError as exc:
                if exc.not_found:
                    break
                raise
            assert time.monotonic() < deadline, "the writer pod was not deleted"
            await asyncio.sleep(0.5)
        await client.create("v1", "pods", _pod("reader", "cat /data/note"), NS)
        await _finished(client, "reader")
        logs = await client.get_raw(f"/api/v1/namespaces/{NS}/pods/reader/log")
        assert logs.decode().strip() == "kept-across-pods"
        volume = await client.get("v1", "persistentvolumes", bound["spec"]["volumeName"])
        path = volume["spec"]["hostPath"]["path"]
        assert path.startswith(str(podman_cluster.state_dir / "controllers" / "volumes"))

    run(podman_cluster, body)
