"""The kubelet's pod lifecycle against a real API server process, with the fake
container runtime (no engine): fast checks of status, restarts and backoff, init
containers, deletion and re-adoption. The same behaviours run on podman and docker in
tests/integration/test_kubelet_engines.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError, load_kubeconfig
from runtime.kubelet.kubelet import Kubelet, KubeletOptions
from runtime.kubelet.podsync import SyncOptions
from runtime.kubelet.runtimes.fake import FakeOptions, FakeRuntime
from runtime.server.tls import issue_serving_certificate
from tests.conftest import ClusterProcess
from tests.integration.harness import pod_essentials

pytestmark = pytest.mark.integration

NODE = "fake-node"


def _pod(
    name: str,
    *,
    containers: list[dict[str, Any]],
    restart: str = "Always",
    init: list[dict[str, Any]] | None = None,
    grace: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": NODE,
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": grace,
        "containers": containers,
    }
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _c(name: str, **env: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": "localhost/busybox:latest",
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }


def _options(tmp: Path, cluster: ClusterProcess) -> KubeletOptions:
    return KubeletOptions(
        server_token=cluster.kubelet_client_token,
        server_cert=issue_serving_certificate(cluster.state_dir, NODE, ("127.0.0.1",)),
        node_name=NODE,
        root_dir=tmp / "kubelet",
        lease_renew_interval=1.0,
        status_interval=5.0,
        source_ttl=0.2,
        sync=SyncOptions(
            node_name=NODE,
            restart_backoff_initial=0.2,
            restart_backoff_max=1.6,
            image_backoff_initial=0.2,
            resync=0.5,
        ),
    )


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def run_kubelet(
    cluster: ClusterProcess,
    tmp: Path,
    body: Callable[[Client, Kubelet, FakeRuntime], Awaitable[None]],
    runtime: FakeRuntime | None = None,
    **options: Any,
) -> None:
    """Run a kubelet of the fake runtime against ``cluster`` for ``body``; ``options``
    override fields of the tests' :class:`KubeletOptions`."""

    async def go() -> None:
        rt = runtime or FakeRuntime(FakeOptions())
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            await pod_essentials(client, cluster.ca)
            kubelet = Kubelet(client, rt, replace(_options(tmp, cluster), **options))
            task = asyncio.create_task(kubelet.run())
            try:
                await asyncio.wait_for(kubelet.ready.wait(), 20)
                await body(client, kubelet, rt)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    asyncio.run(go())


async def _get(client: Client, name: str) -> dict[str, Any]:
    return await client.get("v1", "pods", name, "default")


def test_the_kubelet_registers_a_ready_node_with_a_lease(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        node = await client.get("v1", "nodes", NODE)
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
        assert node["status"]["allocatable"]["pods"] == "110"
        await _until(lambda: _lease_exists(client))

    run_kubelet(cluster, tmp_path, body)


async def _lease_exists(client: Client) -> bool:
    try:
        lease = await client.get("coordination.k8s.io/v1", "leases", NODE, "kube-node-lease")
    except KubeError:
        return False
    return bool(lease["spec"].get("renewTime"))


def test_a_pod_goes_running_and_ready_with_ip_and_container_statuses(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        await client.create("v1", "pods", _pod("runs", containers=[_c("a"), _c("b")]), "default")

        async def ready() -> bool:
            pod = await _get(client, "runs")
            conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
            return pod["status"].get("phase") == "Running" and conds.get("Ready") == "True"

        await _until(ready)
        pod = await _get(client, "runs")
        assert pod["status"]["podIP"].startswith("10.64.0.")
        assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["a", "b"]
        assert all(
            "running" in s["state"] and s["ready"] for s in pod["status"]["containerStatuses"]
        )

    run_kubelet(cluster, tmp_path, body)


def test_a_crashing_container_backs_off_and_counts_restarts(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        crash = _c("crash", FAKE_RUN_SECONDS="0.05", FAKE_EXIT_CODE="1")
        await client.create("v1", "pods", _pod("crashy", containers=[crash]), "default")

        async def looping() -> bool:
            status = (await _get(client, "crashy"))["status"]
            cs = (status.get("containerStatuses") or [{}])[0]
            waiting = (cs.get("state") or {}).get("waiting") or {}
            return waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 2

        await _until(looping)
        cs = (await _get(client, "crashy"))["status"]["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        assert (await _get(client, "crashy"))["status"]["phase"] == "Running"

    run_kubelet(cluster, tmp_path, body)


def test_restart_policy_never_leaves_a_failed_pod_with_the_exit_code(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        once = _c("once", FAKE_RUN_SECONDS="0.05", FAKE_EXIT_CODE="3")
        await client.create(
            "v1", "pods", _pod("never", containers=[once], restart="Never"), "default"
        )

        async def failed() -> bool:
            return (await _get(client, "never"))["status"].get("phase") == "Failed"

        await _until(failed)
        cs = (await _get(client, "never"))["status"]["containerStatuses"][0]
        assert cs["state"]["terminated"]["exitCode"] == 3 and cs["restartCount"] == 0

    run_kubelet(cluster, tmp_path, body)


def test_init_containers_run_in_order_before_the_containers(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        init = [_c("first", FAKE_RUN_SECONDS="0.05"), _c("second", FAKE_RUN_SECONDS="0.05")]
        await client.create(
            "v1", "pods", _pod("inits", containers=[_c("main")], init=init), "default"
        )

        async def running() -> bool:
            return (await _get(client, "inits"))["status"].get("phase") == "Running"

        await _until(running)
        ours = ("start first", "start second", "start main")
        starts = [c for c in rt.calls if c in ours]
        assert starts[:3] == list(ours)
        status = (await _get(client, "inits"))["status"]
        assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == [
            "Completed",
            "Completed",
        ]

    run_kubelet(cluster, tmp_path, body)


def test_deleting_a_pod_stops_its_containers_and_removes_the_object(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        await client.create("v1", "pods", _pod("doomed", containers=[_c("a")]), "default")

        async def running() -> bool:
            return (await _get(client, "doomed"))["status"].get("phase") == "Running"

        await _until(running)
        await client.delete("v1", "pods", "doomed", "default")

        async def gone() -> bool:
            try:
                await _get(client, "doomed")
            except KubeError as exc:
                return exc.not_found
            return False

        await _until(gone)
        assert not [
            c
            for c in await rt.list_containers()
            if c.labels.get("gitops.builtin/pod-name") == "doomed"
        ]

    run_kubelet(cluster, tmp_path, body)


def test_a_restarted_kubelet_adopts_running_containers_without_restarting_them(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    rt = FakeRuntime(FakeOptions())
    ids: list[str] = []

    async def first(client: Client, kubelet: Kubelet, runtime: FakeRuntime) -> None:
        await client.create("v1", "pods", _pod("kept", containers=[_c("a")]), "default")

        async def running() -> bool:
            return (await _get(client, "kept"))["status"].get("phase") == "Running"

        await _until(running)
        ids.extend(
            sorted(c.id for c in await runtime.list_containers({"gitops.builtin/pod-name": "kept"}))
        )

    async def second(client: Client, kubelet: Kubelet, runtime: FakeRuntime) -> None:
        await asyncio.sleep(1.5)
        after = sorted(
            c.id for c in await runtime.list_containers({"gitops.builtin/pod-name": "kept"})
        )
        assert after == ids
        assert (await _get(client, "kept"))["status"]["containerStatuses"][0]["restartCount"] == 0

    run_kubelet(cluster, tmp_path, first, rt)
    run_kubelet(cluster, tmp_path, second, rt)


def test_pod_logs_come_from_the_kubelet_through_the_api_server(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        crash = _c("talker", FAKE_RUN_SECONDS="0.05", FAKE_EXIT_CODE="1")
        await client.create("v1", "pods", _pod("logs", containers=[crash]), "default")

        async def restarted() -> bool:
            cs = (await _get(client, "logs"))["status"].get("containerStatuses") or [{}]
            return cs[0].get("restartCount", 0) >= 1

        await _until(restarted)
        path = "/api/v1/namespaces/default/pods/logs/log"
        text = (await client.get_raw(path)).decode()
        assert "fake container talker started" in text
        previous = (await client.get_raw(path, {"previous": "true"})).decode()
        assert "exited with 1" in previous
        stamped = (await client.get_raw(path, {"timestamps": "true", "tailLines": "1"})).decode()
        assert len(stamped.strip().splitlines()) == 1 and stamped[:4].isdigit()
        with pytest.raises(KubeError) as err:
            await client.get_raw(path, {"container": "nope"})
        assert err.value.status == 400 and "is not valid for pod logs" in err.value.message

    run_kubelet(cluster, tmp_path, body)


def test_images_are_pulled_by_their_kubernetes_reference_once_for_concurrent_pods(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    """``nginx`` means docker.io/library/nginx:latest to the engine whatever its
    short-name settings; three pods starting together pull it once; a malformed reference
    waits as InvalidImageName with kube's message."""
    runtime = FakeRuntime(FakeOptions(local_images=set(), pull_seconds=0.5))

    async def body(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        for i in range(3):
            await client.create(
                "v1",
                "pods",
                _pod(
                    f"img-{i}",
                    containers=[{"name": "c", "image": "nginx", "imagePullPolicy": "IfNotPresent"}],
                ),
                "default",
            )
        bad = _pod(
            "bad-image",
            containers=[{"name": "c", "image": "Nginx:1", "imagePullPolicy": "IfNotPresent"}],
        )
        await client.create("v1", "pods", bad, "default")

        async def all_running() -> bool:
            pods = [await _get(client, f"img-{i}") for i in range(3)]
            return all(p.get("status", {}).get("phase") == "Running" for p in pods)

        await _until(all_running)
        pulls = [c for c in rt.calls if c.startswith("pull ") and "nginx" in c]
        assert pulls == ["pull docker.io/library/nginx:latest"]

        async def invalid() -> bool:
            status = (await _get(client, "bad-image")).get("status", {})
            waiting = [
                (c.get("state") or {}).get("waiting") or {}
                for c in status.get("containerStatuses") or []
            ]
            return bool(waiting) and waiting[0].get("reason") == "InvalidImageName"

        await _until(invalid)
        status = (await _get(client, "bad-image"))["status"]
        message = status["containerStatuses"][0]["state"]["waiting"]["message"]
        assert message.startswith('Failed to apply default image tag "Nginx:1": couldn\'t parse')
        for name in ("img-0", "img-1", "img-2", "bad-image"):
            await client.delete("v1", "pods", name, "default", gracePeriodSeconds="0")

    run_kubelet(cluster, tmp_path, body, runtime=runtime)


def test_a_container_lost_with_the_node_restarts_with_its_count_and_an_unknown_last_state(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    """The cluster's stop removes the containers; when it starts again the kubelet makes
    new ones. Their restartCount goes on from the reported one and lastState says the
    old container's end is unknown (Kubernetes' ContainerStatusUnknown), instead of a
    fresh container with restartCount 0 and no history."""

    async def first(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        await client.create("v1", "pods", _pod("survivor", containers=[_c("c")]), "default")

        async def running() -> bool:
            statuses = (await _get(client, "survivor")).get("status", {}).get(
                "containerStatuses"
            ) or [{}]
            return "running" in (statuses[0].get("state") or {})

        await _until(running)

    run_kubelet(cluster, tmp_path, first, runtime=FakeRuntime(FakeOptions()))
    before = asyncio.run(_status_of(cluster, "survivor"))
    old_id = before["containerStatuses"][0]["containerID"]

    async def second(client: Client, kubelet: Kubelet, rt: FakeRuntime) -> None:
        async def recreated() -> bool:
            cs = ((await _get(client, "survivor")).get("status") or {}).get(
                "containerStatuses"
            ) or [{}]
            return cs[0].get("containerID") not in (None, old_id) and "running" in (
                cs[0].get("state") or {}
            )

        await _until(recreated)
        cs = (await _get(client, "survivor"))["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 1
        assert cs["lastState"] == {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "containerID": old_id,
            }
        }
        await client.delete("v1", "pods", "survivor", "default", gracePeriodSeconds="0")

    # A new runtime: the node's containers are gone, as after the cluster's stop.
    run_kubelet(cluster, tmp_path, second, runtime=FakeRuntime(FakeOptions()))


async def _status_of(cluster: ClusterProcess, name: str) -> dict[str, Any]:
    async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
        status: dict[str, Any] = (await _get(client, name))["status"]
        return status
