"""``kubectl exec``, ``kubectl attach``, ``kubectl run -i`` and the official Python
client's exec stream against the built-in cluster on podman AND on docker: kubectl 1.35
speaks the WebSocket remote-command protocol (``v5.channel.k8s.io``) to the API server,
which proxies it to the pod's kubelet, which runs the command (or attaches) through the
engine. Output arrives on stdout and stderr apart, the command's exit code becomes
kubectl's, stdin is piped (and its end ends ``cat``, also the container's own stdin of a
``kubectl run -i`` pod), a terminal gets the size the client sets, an attach streams the
container's output, and mistakes (an unknown container, a pod that is not there) are
refused with kube-apiserver's messages."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream

from kubeclient.rest import Client
from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import BUSYBOX, run
from tests.integration.netharness import namespace, ready_pods, until

pytestmark = pytest.mark.integration

NS = "exec"


def sleeper() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "box", "labels": {"app": "box"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


@pytest.fixture(scope="module", params=["podman", "docker"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterProcess]:
    proc = ClusterProcess(tmp_path_factory.mktemp(f"exec-{request.param}"), runtime=request.param)
    proc.start(timeout=90.0)
    try:

        async def body(c: Client) -> None:
            await c.create("v1", "namespaces", namespace(NS))
            await c.create("v1", "pods", sleeper(), namespace=NS)
            await until("the pod to run", lambda: ready_pods(c, NS, "app=box"))

        run(proc, body)
        yield proc
    finally:
        proc.stop(timeout=90.0)


def kubectl(
    proc: ClusterProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary("1.35"), "-n", NS, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=proc.env(),
        timeout=60,
    )


def test_kubectl_exec_separates_stdout_and_stderr_and_returns_the_exit_code(
    cluster: ClusterProcess,
) -> None:
    out = kubectl(cluster, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out.stdout == "out\n"
    assert out.stderr.startswith("err\n"), out.stderr
    assert "command terminated with exit code 3" in out.stderr
    assert out.returncode == 3

    ok = kubectl(cluster, "exec", "box", "-c", "main", "--", "sh", "-c", "echo $HOSTNAME")
    assert (ok.returncode, ok.stdout) == (0, "box\n"), ok.stderr


def test_kubectl_exec_pipes_stdin_until_it_ends(cluster: ClusterProcess) -> None:
    started = time.monotonic()
    out = kubectl(cluster, "exec", "-i", "box", "--", "cat", stdin="line one\nline two\n")
    assert (out.returncode, out.stdout) == (0, "line one\nline two\n"), out.stderr
    assert time.monotonic() - started < 30


def test_kubectl_exec_refuses_an_unknown_container_and_a_missing_pod(
    cluster: ClusterProcess,
) -> None:
    wrong = kubectl(cluster, "exec", "box", "-c", "nope", "--", "true")
    assert wrong.returncode != 0
    assert "container nope is not valid for pod box" in wrong.stderr
    missing = kubectl(cluster, "exec", "ghost", "--", "true")
    assert missing.returncode != 0
    assert 'pods "ghost" not found' in missing.stderr


def test_the_python_client_streams_exec_output_and_a_terminal_gets_its_size(
    cluster: ClusterProcess,
) -> None:
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    text = stream(
        api.connect_get_namespaced_pod_exec,
        "box",
        NS,
        command=["sh", "-c", "echo from python"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert text == "from python\n"

    ws = stream(
        api.connect_get_namespaced_pod_exec,
        "box",
        NS,
        command=["sh", "-c", "sleep 1; busybox stty size"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    try:
        ws.write_channel(4, '{"Width": 123, "Height": 45}')
        output = ""
        deadline = time.monotonic() + 30
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            output += ws.read_stdout()
        assert "45 123" in output, output
    finally:
        ws.close()


def test_kubectl_run_attaches_stdin_and_output_then_removes_the_pod(
    cluster: ClusterProcess,
) -> None:
    out = kubectl(
        cluster,
        "run",
        "talk",
        "-i",
        "--rm",
        "--restart=Never",
        f"--image={BUSYBOX}",
        "--image-pull-policy=Never",
        "--",
        "sh",
        "-c",
        "read line; echo got $line",
        stdin="hello\n",
    )
    assert out.returncode == 0, out.stderr
    assert "got hello" in out.stdout, (out.stdout, out.stderr)
    deadline = time.monotonic() + 60
    while kubectl(cluster, "get", "pod", "talk").returncode == 0:
        assert time.monotonic() < deadline, "kubectl run --rm left the pod"
        time.sleep(0.5)


def test_the_end_of_kubectl_runs_input_ends_the_containers_stdin(
    cluster: ClusterProcess,
) -> None:
    # kubectl run -i makes the container stdinOnce: the end of the attached input is the
    # end of the container's stdin, so cat exits.
    out = kubectl(
        cluster,
        "run",
        "cat",
        "-i",
        "--restart=Never",
        f"--image={BUSYBOX}",
        "--image-pull-policy=Never",
        "--",
        "cat",
        stdin="a\nb\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "a\nb", (out.stdout, out.stderr)


def test_kubectl_attach_streams_the_output_of_a_running_container(
    cluster: ClusterProcess,
) -> None:
    pod = sleeper()
    pod["metadata"] = {"name": "ticker", "labels": {"app": "ticker"}}
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 5; echo one; echo two"]

    async def body(c: Client) -> None:
        await c.create("v1", "pods", pod, namespace=NS)
        await until("the ticker to run", lambda: ready_pods(c, NS, "app=ticker"))

    run(cluster, body)
    out = kubectl(cluster, "attach", "ticker")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "one\ntwo", (out.stdout, out.stderr)
