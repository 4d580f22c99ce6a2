"""Local storage eviction by the kubelet (runtime.kubelet.eviction) against a real API
server with the fake runtime: a pod whose emptyDir volume grows past its ``sizeLimit`` is
killed and reported Failed/Evicted with Kubernetes' message, the DisruptionTarget
condition and a Warning event; a pod under its limit keeps running. The fake containers
write nothing, so the test writes into the volume's directory on the host, where the
kubelet measures it. The same behaviour on podman and docker, with the container
writing: tests/integration/test_eviction_engines.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client
from runtime.kubelet.cri import LABEL_POD_UID, ContainerState
from runtime.kubelet.kubelet import Kubelet
from runtime.kubelet.runtimes.fake import FakeRuntime
from tests.conftest import ClusterProcess
from tests.integration.test_kubelet_fake import _c, _get, _pod, _until, run_kubelet

pytestmark = pytest.mark.integration


def with_cache(name: str, limit: str) -> dict[str, Any]:
    pod = _pod(name, containers=[_c("app")])
    pod["spec"]["volumes"] = [{"name": "cache", "emptyDir": {"sizeLimit": limit}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    return pod


def test_a_pod_whose_empty_dir_outgrows_its_size_limit_is_evicted(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        for name in ("big", "small"):
            await client.create("v1", "pods", with_cache(name, "1Mi"), "default")

        async def running() -> bool:
            pods = [await _get(client, n) for n in ("big", "small")]
            return all(p["status"].get("phase") == "Running" for p in pods)

        await _until(running)
        pods = {n: await _get(client, n) for n in ("big", "small")}
        for name, size in (("big", 2 << 20), ("small", 256 << 10)):
            uid = pods[name]["metadata"]["uid"]
            path = kubelet.volumes.empty_dir_path(uid, "cache")
            assert path is not None and path.is_dir()
            (path / "data").write_bytes(b"x" * size)

        async def evicted() -> bool:
            return (await _get(client, "big"))["status"].get("phase") == "Failed"

        await _until(evicted, timeout=30)
        status = (await _get(client, "big"))["status"]
        message = 'Usage of EmptyDir volume "cache" exceeds the limit "1Mi". '
        assert (status["reason"], status["message"]) == ("Evicted", message)
        disruption = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
        assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
        uid = pods["big"]["metadata"]["uid"]
        containers = await rt.list_containers({LABEL_POD_UID: uid})
        assert all(c.state is not ContainerState.RUNNING for c in containers), containers
        events = await client.list(
            "v1", "events", "default", fieldSelector="involvedObject.name=big"
        )
        assert any(
            e["reason"] == "Evicted" and e["type"] == "Warning" and e["message"] == message
            for e in events["items"]
        )
        assert (await _get(client, "small"))["status"]["phase"] == "Running"

    run_kubelet(cluster, tmp_path, body, eviction_interval=0.5)
