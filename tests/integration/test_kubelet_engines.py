"""The kubelet on real engines: the same pod behaviours on podman AND on docker, with
the local busybox image, against a real API server process. Each test's pods are
deleted and every container of the test node is removed at the end, even on failure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError, load_kubeconfig
from runtime.cluster import make_runtime
from runtime.kubelet import cri
from runtime.kubelet.cri import ContainerRuntime
from runtime.kubelet.kubelet import Kubelet, KubeletOptions
from runtime.kubelet.podsync import SyncOptions
from runtime.server.tls import issue_serving_certificate
from tests.conftest import ROOT, ClusterProcess
from tests.integration.harness import pod_essentials

pytestmark = pytest.mark.integration
BUSYBOX = "localhost/busybox:latest"


@pytest.fixture(scope="module", params=["podman", "docker"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ClusterProcess]]:
    name = str(request.param)
    server = ClusterProcess(tmp_path_factory.mktemp(f"kubelet-{name}"))
    server.start()
    runtime = make_runtime(name, server.state_dir, f"{name}-node")

    async def check() -> None:
        try:
            await runtime.version()
        except cri.RuntimeError_ as exc:
            pytest.fail(f"{name} does not work here ({exc}): run scripts/test.sh, which sets it up")
        if await runtime.image_id(BUSYBOX) is None:
            pytest.fail(f"{name} has no {BUSYBOX}: run scripts/test.sh (ensure_busybox_images)")
        await runtime.close()

    try:
        asyncio.run(check())
    except BaseException:
        server.stop()  # a failed check must not leave the API server running
        raise
    try:
        yield name, server
    finally:
        asyncio.run(_remove_node_containers(runtime, f"{name}-node"))
        asyncio.run(runtime.close())
        server.stop()


async def _remove_node_containers(runtime: ContainerRuntime, node: str) -> None:
    for c in await runtime.list_containers({cri.LABEL_NODE: node}):
        with contextlib.suppress(cri.RuntimeError_):
            await runtime.remove_container(c.id)
    for s in await runtime.list_sandboxes({cri.LABEL_NODE: node}):
        with contextlib.suppress(cri.RuntimeError_):
            await runtime.remove_sandbox(s.id)


def _container(name: str, command: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        **extra,
    }


def _pod(name: str, node: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": containers,
            **spec,
        },
    }


async def _until(
    check: Callable[[], Awaitable[bool]], timeout: float = 60.0, what: str = ""
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'the condition'}")
        await asyncio.sleep(0.2)


Body = Callable[[Client, Kubelet, ContainerRuntime, str], Awaitable[None]]


def run(engine: tuple[str, ClusterProcess], tmp: Path, body: Body) -> None:
    name, server = engine
    node = f"{name}-node"

    async def go() -> None:
        runtime = make_runtime(name, server.state_dir, node)
        async with Client(load_kubeconfig(server.kubeconfig)) as client:
            await pod_essentials(client, server.ca)
            kubelet = Kubelet(
                client,
                runtime,
                KubeletOptions(
                    node_name=node,
                    root_dir=tmp / "kubelet",
                    server_token=server.kubelet_client_token,
                    server_cert=issue_serving_certificate(server.state_dir, node, ("127.0.0.1",)),
                    source_ttl=0.5,
                    sync=SyncOptions(
                        node_name=node,
                        resync=1.0,
                        restart_backoff_initial=1.0,
                        restart_backoff_max=8.0,
                    ),
                ),
            )
            task = asyncio.create_task(kubelet.run())
            try:
                await asyncio.wait_for(kubelet.ready.wait(), 30)
                await body(client, kubelet, runtime, node)
            finally:
                pods = await client.list(
                    "v1", "pods", "default", fieldSelector=f"spec.nodeName={node}"
                )
                for pod in pods.get("items") or []:
                    with contextlib.suppress(KubeError):
                        await client.delete(
                            "v1", "pods", pod["metadata"]["name"], "default", gracePeriodSeconds="0"
                        )
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await _remove_node_containers(runtime, node)
                await runtime.close()

    asyncio.run(go())


async def _pod_status(client: Client, name: str) -> dict[str, Any]:
    return (await client.get("v1", "pods", name, "default")).get("status") or {}


async def _exec(runtime: ContainerRuntime, pod_uid: str, container: str, command: str) -> str:
    found = [
        c
        for c in await runtime.list_containers(
            {cri.LABEL_POD_UID: pod_uid, cri.LABEL_CONTAINER_NAME: container}
        )
        if c.state == cri.ContainerState.RUNNING
    ]
    assert found, f"{container} is not running"
    result = await runtime.exec(found[0].id, ("sh", "-c", command), 10)
    return result.stdout.decode()


def test_an_httpd_pod_with_a_readiness_probe_runs_serves_logs_and_goes_away_on_delete(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        web = _container(
            "web",
            "mkdir -p /www && echo hello > /www/index.html && echo serving && exec httpd -f -v -p 8080 -h /www",
            ports=[{"name": "http", "containerPort": 8080}],
            readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        )
        await client.create("v1", "pods", _pod("web", node, [web]), "default")

        async def ready() -> bool:
            status = await _pod_status(client, "web")
            conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
            return status.get("phase") == "Running" and conds.get("Ready") == "True"

        await _until(ready, what="web Ready")
        status = await _pod_status(client, "web")
        assert status["podIP"] and status["containerStatuses"][0]["ready"]
        logs = (await client.get_raw("/api/v1/namespaces/default/pods/web/log")).decode()
        assert "serving" in logs
        uid = (await client.get("v1", "pods", "web", "default"))["metadata"]["uid"]
        await client.delete("v1", "pods", "web", "default")
        started = asyncio.get_running_loop().time()

        async def gone() -> bool:
            try:
                await client.get("v1", "pods", "web", "default")
            except KubeError as exc:
                return exc.not_found
            return False

        await _until(gone, timeout=30, what="the pod object to go")
        assert asyncio.get_running_loop().time() - started < 15
        assert not await runtime.list_containers({cri.LABEL_POD_UID: uid})
        assert not await runtime.list_sandboxes({cri.LABEL_POD_UID: uid})

    run(engine, tmp_path, body)


def test_a_crashing_container_goes_into_crash_loop_backoff_and_never_policy_fails_the_pod(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        await client.create(
            "v1", "pods", _pod("crash", node, [_container("c", "echo boom; exit 1")]), "default"
        )
        await client.create(
            "v1",
            "pods",
            _pod("once", node, [_container("c", "exit 7")], restartPolicy="Never"),
            "default",
        )

        async def looping() -> bool:
            cs = ((await _pod_status(client, "crash")).get("containerStatuses") or [{}])[0]
            waiting = (cs.get("state") or {}).get("waiting") or {}
            return waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 2

        await _until(looping, timeout=90, what="CrashLoopBackOff with restarts")
        cs = (await _pod_status(client, "crash"))["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        assert "back-off" in cs["state"]["waiting"]["message"]

        async def failed() -> bool:
            return (await _pod_status(client, "once")).get("phase") == "Failed"

        await _until(failed, what="the Never pod to fail")
        once = (await _pod_status(client, "once"))["containerStatuses"][0]
        assert once["state"]["terminated"]["exitCode"] == 7 and once["restartCount"] == 0

    run(engine, tmp_path, body)


def test_a_failing_liveness_probe_restarts_the_container(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        live = _container(
            "c",
            "touch /tmp/alive; sleep 3; rm /tmp/alive; sleep 3600",
            livenessProbe={
                "exec": {"command": ["test", "-f", "/tmp/alive"]},
                "periodSeconds": 1,
                "failureThreshold": 1,
            },
        )
        await client.create("v1", "pods", _pod("live", node, [live]), "default")

        async def restarted() -> bool:
            cs = ((await _pod_status(client, "live")).get("containerStatuses") or [{}])[0]
            return cs.get("restartCount", 0) >= 1

        await _until(restarted, timeout=60, what="a liveness restart")

    run(engine, tmp_path, body)


def test_env_from_a_configmap_and_secret_and_a_mounted_file_that_follows_updates(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        await client.create(
            "v1",
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "settings"},
                "data": {"color": "blue"},
            },
            "default",
        )
        await client.create(
            "v1",
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds"},
                "stringData": {"password": "s3cret"},
            },
            "default",
        )
        app = _container(
            "app",
            "sleep 3600",
            env=[
                {
                    "name": "COLOR",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}},
                },
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                },
            ],
            volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}],
        )
        pod = _pod(
            "envs", node, [app], volumes=[{"name": "cfg", "configMap": {"name": "settings"}}]
        )
        created = await client.create("v1", "pods", pod, "default")
        uid = created["metadata"]["uid"]

        async def running() -> bool:
            return (await _pod_status(client, "envs")).get("phase") == "Running"

        await _until(running, what="envs Running")
        assert (await _exec(runtime, uid, "app", "echo $COLOR $PASSWORD")).strip() == "blue s3cret"
        assert (await _exec(runtime, uid, "app", "cat /etc/cfg/color")).strip() == "blue"
        await client.patch("v1", "configmaps", "settings", {"data": {"color": "green"}}, "default")

        async def updated() -> bool:
            return (await _exec(runtime, uid, "app", "cat /etc/cfg/color")).strip() == "green"

        await _until(updated, timeout=30, what="the mounted file to follow the ConfigMap")

    run(engine, tmp_path, body)


def test_containers_share_localhost_and_init_containers_run_first(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        server = _container(
            "server",
            "mkdir -p /www && echo $(cat /work/seed) > /www/index.html && exec httpd -f -p 8081 -h /www",
            volumeMounts=[{"name": "work", "mountPath": "/work"}],
        )
        client_c = _container("client", "sleep 3600")
        init = _container(
            "seed",
            "echo planted > /work/seed",
            volumeMounts=[{"name": "work", "mountPath": "/work"}],
        )
        pod = _pod(
            "pair",
            node,
            [server, client_c],
            initContainers=[init],
            volumes=[{"name": "work", "emptyDir": {}}],
        )
        uid = (await client.create("v1", "pods", pod, "default"))["metadata"]["uid"]

        async def running() -> bool:
            status = await _pod_status(client, "pair")
            return status.get("phase") == "Running" and all(
                "running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []
            )

        await _until(running, what="pair Running")
        out = ""
        for _ in range(50):
            out = await _exec(
                runtime, uid, "client", "wget -q -O - http://127.0.0.1:8081/ 2>&1 || true"
            )
            if "planted" in out:
                break
            await asyncio.sleep(0.2)
        assert out.strip() == "planted"
        init_status = (await _pod_status(client, "pair"))["initContainerStatuses"][0]
        assert init_status["state"]["terminated"]["exitCode"] == 0

    run(engine, tmp_path, body)


def test_a_killed_kubelet_process_restarts_and_adopts_the_same_containers(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    name, server = engine
    node = f"{name}-proc-node"

    def start_kubelet() -> subprocess.Popen[bytes]:
        log = (tmp_path / "kubelet.log").open("ab")
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gitops.cli",
                "kubelet",
                "--state-dir",
                str(server.state_dir),
                "--node-name",
                node,
                "--runtime",
                name,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ},
        )

    async def go() -> None:
        runtime = make_runtime(name, server.state_dir, node)
        proc = start_kubelet()
        try:
            async with Client(load_kubeconfig(server.kubeconfig)) as client:

                async def node_ready() -> bool:
                    try:
                        await client.get("v1", "nodes", node)
                        return True
                    except KubeError:
                        return False

                await _until(node_ready, what="the kubelet process to register")
                created = await client.create(
                    "v1", "pods", _pod("adopted", node, [_container("c", "sleep 3600")]), "default"
                )
                uid = created["metadata"]["uid"]

                async def running() -> bool:
                    return (await _pod_status(client, "adopted")).get("phase") == "Running"

                await _until(running, what="adopted Running")
                before = sorted(
                    c.id for c in await runtime.list_containers({cri.LABEL_POD_UID: uid})
                )
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                proc2 = start_kubelet()
                try:
                    await asyncio.sleep(6)
                    after = sorted(
                        c.id for c in await runtime.list_containers({cri.LABEL_POD_UID: uid})
                    )
                    assert after == before
                    status = await _pod_status(client, "adopted")
                    assert status["phase"] == "Running"
                    assert status["containerStatuses"][0]["restartCount"] == 0
                    await client.delete("v1", "pods", "adopted", "default")

                    async def gone() -> bool:
                        try:
                            await client.get("v1", "pods", "adopted", "default")
                        except KubeError as exc:
                            return exc.not_found
                        return False

                    await _until(gone, what="the adopted pod to be deleted")
                finally:
                    proc2.send_signal(signal.SIGTERM)
                    proc2.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            await _remove_node_containers(runtime, node)
            await runtime.close()

    asyncio.run(go())


def test_a_restricted_pod_runs_as_non_root_without_privilege_escalation_and_root_is_refused(
    engine: tuple[str, ClusterProcess], tmp_path: Path
) -> None:
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    report = (
        "id -u; grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; "
        "readlink /proc/self/ns/pid; sleep 3600"
    )

    async def body(client: Client, kubelet: Kubelet, runtime: ContainerRuntime, node: str) -> None:
        # hostPID needs a namespace whose Pod Security level allows it.
        privileged = {"pod-security.kubernetes.io/enforce": "privileged"}
        await client.patch("v1", "namespaces", "default", {"metadata": {"labels": privileged}})
        try:
            await checks(client, runtime, node)
        finally:
            unlabel = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None}}}
            await client.patch("v1", "namespaces", "default", unlabel)

    async def checks(client: Client, runtime: ContainerRuntime, node: str) -> None:
        pod = _pod("restricted", node, [_container("c", report, securityContext=restricted)])
        created = await client.create("v1", "pods", pod, "default")
        root = _pod(
            "wants-root",
            node,
            [_container("c", "sleep 3600", securityContext={"runAsNonRoot": True})],
        )
        await client.create("v1", "pods", root, "default")
        host = _pod("host-pid", node, [_container("c", "readlink /proc/self/ns/pid; sleep 3600")])
        host["spec"]["hostPID"] = True
        await client.create("v1", "pods", host, "default")
        loose = _pod(
            "unconfined",
            node,
            [
                _container(
                    "c",
                    "grep '^Seccomp:' /proc/self/status; sleep 3600",
                    securityContext={"seccompProfile": {"type": "Unconfined"}},
                )
            ],
        )
        await client.create("v1", "pods", loose, "default")

        async def running(name: str) -> bool:
            return (await _pod_status(client, name)).get("phase") == "Running"

        for name in ("restricted", "host-pid", "unconfined"):
            await _until(lambda name=name: running(name), what=f"{name} running")
        uid = created["metadata"]["uid"]
        out = await _exec(runtime, uid, "c", report.replace("; sleep 3600", ""))
        lines = dict(
            line.split(":", 1) for line in out.splitlines() if ":" in line and "pid" not in line
        )
        assert out.splitlines()[0] == "1000"
        assert lines["NoNewPrivs"].strip() == "1"
        assert lines["Seccomp"].strip() == "2"  # filtered: the engine's default profile
        assert lines["CapEff"].strip() == "0000000000000000"
        own_pid_ns = out.strip().splitlines()[-1]
        host_pods = await client.get("v1", "pods", "host-pid", "default")
        host_ns = (
            await _exec(runtime, host_pods["metadata"]["uid"], "c", "readlink /proc/self/ns/pid")
        ).strip()
        assert host_ns == str(Path("/proc/self/ns/pid").readlink()) != own_pid_ns
        # No seccompProfile: unconfined, as Kubernetes' kubelet (seccompDefault: false).
        unset = await _exec(
            runtime, host_pods["metadata"]["uid"], "c", "grep '^Seccomp:' /proc/self/status"
        )
        assert unset.split()[-1] == "0"
        loose_pod = await client.get("v1", "pods", "unconfined", "default")
        seccomp = await _exec(
            runtime, loose_pod["metadata"]["uid"], "c", "grep '^Seccomp:' /proc/self/status"
        )
        assert seccomp.split()[-1] == "0"

        async def refused() -> bool:
            cs = ((await _pod_status(client, "wants-root")).get("containerStatuses") or [{}])[0]
            waiting = (cs.get("state") or {}).get("waiting") or {}
            return waiting.get("reason") == "CreateContainerConfigError"

        await _until(refused, what="runAsNonRoot to refuse a root image")
        cs = (await _pod_status(client, "wants-root"))["containerStatuses"][0]
        assert cs["state"]["waiting"]["message"].startswith(
            'container has runAsNonRoot and image will run as root (pod: "wants-root_default('
        )

    run(engine, tmp_path, body)
