"""Shared harness of the integration tests that drive a ``gitops cluster up`` process:
``started`` runs a :class:`ClusterProcess` for the length of a fixture, ``run`` hands a
test body a connected kubeclient :class:`Client`, and ``until`` polls a check until it
holds (or fails the test after a deadline), and ``kubectl`` runs kubectl 1.35 against it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubeclient.rest import Client, KubeError, load_kubeconfig
from tests.conftest import ClusterProcess, kubectl_binary

T = TypeVar("T")

#: The local busybox image the engine tests run (imagePullPolicy Never).
BUSYBOX = "localhost/busybox:latest"

#: Controllers every pod needs, as on Kubernetes: the ``default`` ServiceAccount and the
#: ``kube-root-ca.crt`` ConfigMap of its namespace (its ``kube-api-access`` volume waits
#: for both). Tests that pick their controllers get these too.
POD_ESSENTIALS = "serviceaccount,root-ca-cert-publisher"


async def pod_essentials(client: Client, ca: Path, namespace: str = "default") -> None:
    """What the two controllers of :data:`POD_ESSENTIALS` would write into ``namespace``,
    for tests that run an API server alone (``--runtime none``) and a kubelet of their
    own: the ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap."""
    objects = (
        ("serviceaccounts", {"metadata": {"name": "default"}}),
        (
            "configmaps",
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca.read_text()}},
        ),
    )
    for plural, body in objects:
        try:
            await client.create("v1", plural, body, namespace=namespace)
        except KubeError as exc:
            if exc.reason != "AlreadyExists":
                raise


def with_pod_essentials(controllers: str) -> str:
    """``--controllers`` for a test's pick: ``none`` means no workload controller."""
    return POD_ESSENTIALS if controllers == "none" else f"{controllers},{POD_ESSENTIALS}"


@contextlib.contextmanager
def started(
    state_dir: Path,
    *,
    runtime: str = "fake",
    nodes: int | None = None,
    controllers: str | None = None,
    options: tuple[str, ...] = (),
    start_timeout: float | None = None,
    stop_timeout: float | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[ClusterProcess]:
    """A cluster process in ``state_dir`` with ``--nodes nodes``, ``--controllers
    controllers`` (plus :data:`POD_ESSENTIALS`) and one ``--controller-option`` per entry of ``options`` (each left out
    when not given) plus ``extra_args`` (other ``cluster up`` flags), started and,
    whatever happens, stopped again. The timeouts default to :class:`ClusterProcess`'s
    own."""
    args: list[str] = [*extra_args]
    if nodes is not None:
        args += ["--nodes", str(nodes)]
    if controllers is not None:
        args += ["--controllers", with_pod_essentials(controllers)]
    for option in options:
        args += ["--controller-option", option]
    proc = ClusterProcess(state_dir, runtime=runtime, extra_args=tuple(args))
    if start_timeout is None:
        proc.start()
    else:
        proc.start(timeout=start_timeout)
    try:
        yield proc
    finally:
        if stop_timeout is None:
            proc.stop()
        else:
            proc.stop(timeout=stop_timeout)


def run(proc: ClusterProcess, body: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``body`` with a client of ``proc``'s cluster in a fresh event loop."""

    async def go() -> T:
        async with Client(load_kubeconfig(proc.kubeconfig)) as client:
            return await body(client)

    return asyncio.run(go())


def not_found(exc: KubeError) -> bool:
    """For ``until(tolerate=...)``: a missing object only means "not yet"."""
    return exc.not_found


def any_error(exc: KubeError) -> bool:
    """For ``until(tolerate=...)``: every API error only means "not yet"."""
    return True


async def until(
    what: str,
    check: Callable[[], Awaitable[Any]],
    timeout: float = 60.0,
    step: float = 0.2,
    tolerate: Callable[[KubeError], bool] | None = None,
) -> Any:
    """Poll ``check`` every ``step`` seconds until it returns something truthy, and return
    that; fail naming ``what`` (and the last result) once ``timeout`` seconds have passed.
    A :class:`KubeError` that ``tolerate`` accepts counts as a falsy result; any other
    error is raised."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except KubeError as exc:
            if tolerate is None or not tolerate(exc):
                raise
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
        await asyncio.sleep(step)


class Repo:
    """A real Git repository in a temporary directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        self.git("add", "-A")
        self.git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message)
        return self.git("rev-parse", "HEAD")


BRIDGES = ("docker0", "cni-podman0", "podman0")


def bridge_address() -> str | None:
    """The host's address on a container engine's bridge. EndpointSlice validation
    refuses loopback addresses, and this is the one non-loopback address of the host that
    stays on the machine and belongs to the container network (docker's or podman's):
    where a fake-runtime cluster test puts the backend servers its Services point at."""
    for name in BRIDGES:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", name], capture_output=True, text=True
        )
        fields = out.stdout.split()
        if out.returncode == 0 and "inet" in fields:
            return fields[fields.index("inet") + 1].partition("/")[0]
    return None


def running_and_ready(pod: dict[str, Any]) -> bool:
    """The pod is Running with its Ready condition True."""
    return pod.get("status", {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def kubectl(proc: ClusterProcess, *args: str) -> str:
    """``kubectl`` 1.35 against ``proc``'s cluster; its output, asserting it succeeded."""
    out = subprocess.run(
        [kubectl_binary("1.35"), *args],
        capture_output=True,
        text=True,
        env=proc.env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def web_deployment(name: str, replicas: int) -> dict[str, Any]:
    """busybox httpd on 8080 serving a file that names the pod."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "httpd",
                            "image": BUSYBOX,
                            "imagePullPolicy": "Never",
                            "command": [
                                "sh",
                                "-c",
                                "mkdir -p /www && echo $POD_NAME > /www/index.html && "
                                "exec httpd -f -p 8080 -h /www",
                            ],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
