"""``kubectl exec`` at the kubelet, on real engines: a KubeletServer on loopback over
the podman and the docker runtime, driven by an aiohttp WebSocket client speaking the
channel protocol (v5.channel.k8s.io) against a real busybox container
(``localhost/busybox:latest``, no registry).

Every sandbox and container carries a node label unique to this run
(``exec-test-<random>``); the module fixture removes everything with it, through the
runtime and then the engine CLI, even when tests fail. The engines are prepared by the
project's test script (``scripts/engines.sh``); when one does not work the fixture tries
that itself and then FAILS, never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest

from runtime.kubelet import cri
from runtime.kubelet.cri import ContainerConfig, ContainerRuntime, SandboxConfig
from runtime.kubelet.remotecommand import V5
from runtime.kubelet.runtimes.docker import DockerRuntime
from runtime.kubelet.runtimes.podman import PodmanRuntime
from runtime.kubelet.server import KubeletServer
from tests.integration.test_cri_runtimes import BUSYBOX, SETUP, engine_problem, make_runtime

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = TypeVar("T")


@dataclass
class Node:
    """One engine with a running pod default/shell (container ``main``: sleeps) and a
    KubeletServer serving it on loopback."""

    name: str
    runtime: ContainerRuntime
    runner: asyncio.Runner
    base: str

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def url(self, command: tuple[str, ...], container: str = "main", **flags: int) -> str:
        query = [("command", c) for c in command] + [(k, str(v)) for k, v in flags.items()]
        encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
        return f"{self.base}/exec/default/shell/{container}?{encoded}"


def _cli_cleanup(runtime: ContainerRuntime, node: str) -> None:
    """Whatever the runtime could not remove: by the node label, with the engine CLI."""
    selector = f"label={cri.LABEL_NODE}={node}"
    if isinstance(runtime, PodmanRuntime):
        base, env = runtime._global, runtime.env
        pods = subprocess.run(
            [*base, "pod", "ps", "-q", "--filter", selector],
            capture_output=True, text=True, env=env, check=False,
        ).stdout.split()  # fmt: skip
        if pods:
            subprocess.run(
                [*base, "pod", "rm", "-f", "-t", "0", *pods],
                capture_output=True, env=env, check=False,
            )  # fmt: skip
    elif isinstance(runtime, DockerRuntime):
        ids = subprocess.run(
            [runtime.binary, "ps", "-aq", "--filter", selector],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if ids:
            subprocess.run([runtime.binary, "rm", "-f", *ids], capture_output=True, check=False)


async def _remove_node(runtime: ContainerRuntime, node: str) -> None:
    for container in await runtime.list_containers({cri.LABEL_NODE: node}):
        with contextlib.suppress(cri.RuntimeError_):
            await runtime.remove_container(container.id)
    for sandbox in await runtime.list_sandboxes({cri.LABEL_NODE: node}):
        with contextlib.suppress(cri.RuntimeError_):
            await runtime.remove_sandbox(sandbox.id)


@pytest.fixture(scope="module", params=["podman", "docker"])
def node(request: pytest.FixtureRequest) -> Iterator[Node]:
    name = str(request.param)
    node_name = f"exec-test-{secrets.token_hex(4)}"
    runner = asyncio.Runner()
    runtime = make_runtime(name)
    if runner.run(engine_problem(runtime)) is not None:
        setup = subprocess.run(
            ["bash", "-c", f"set -e; source scripts/engines.sh; {SETUP[name]}"],
            cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        runtime = make_runtime(name)
        problem = runner.run(engine_problem(runtime))
        if problem is not None:
            runner.close()
            pytest.fail(f"{problem} (setup exit {setup.returncode}: {setup.stderr[-2000:]})")
    server: KubeletServer | None = None
    try:
        uid = f"uid-{secrets.token_hex(6)}"
        pods = {("default", "shell"): {"metadata": {"name": "shell", "uid": uid}}}
        labels = {cri.LABEL_NODE: node_name}

        async def start() -> KubeletServer:
            sandbox = await runtime.run_sandbox(
                SandboxConfig(
                    pod_uid=uid, name="shell", namespace="default", hostname="shell", labels=labels
                )
            )
            config = ContainerConfig(
                name="main", image=BUSYBOX, command=("sleep", "3600"), labels=labels
            )
            container_id = await runtime.create_container(sandbox.id, config)
            await runtime.start_container(container_id)
            kubelet = KubeletServer(runtime, TOKEN, lambda ns, n: pods.get((ns, n)), node_name)
            await kubelet.start("127.0.0.1", 0, None)
            return kubelet

        server = runner.run(start())
        yield Node(name, runtime, runner, f"http://127.0.0.1:{server.port}")
    finally:
        with contextlib.suppress(Exception):
            if server is not None:
                runner.run(server.stop())
        with contextlib.suppress(Exception):
            runner.run(_remove_node(runtime, node_name))
        _cli_cleanup(runtime, node_name)
        with contextlib.suppress(Exception):
            runner.run(runtime.close())
        runner.close()


@dataclass
class Exchange:
    messages: list[bytes]
    close_code: int | None

    def channel(self, number: int) -> bytes:
        return b"".join(m[1:] for m in self.messages if m[:1] == bytes((number,)))

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.channel(3))
        return loaded


async def converse(url: str, *steps: bytes | float, timeout: float = 30.0) -> Exchange:
    """Send each bytes step as a binary message (a float step: pause that long), then
    collect the messages until the kubelet closes the WebSocket."""

    async def go() -> Exchange:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, protocols=(V5,), headers=AUTH) as ws,
        ):
            assert ws.protocol == V5
            for step in steps:
                if isinstance(step, bytes):
                    await ws.send_bytes(step)
                else:
                    await asyncio.sleep(step)
            messages = [bytes(m.data) async for m in ws if m.type is aiohttp.WSMsgType.BINARY]
            return Exchange(messages, ws.close_code)

    return await asyncio.wait_for(go(), timeout)


def test_stdout_and_stderr_arrive_apart_and_a_non_zero_exit_is_reported(node: Node) -> None:
    url = node.url(("sh", "-c", "echo hello; echo err >&2; exit 3"), stdout=1, stderr=1)
    result = node.run(converse(url))
    assert result.messages[0] == b"\x01"
    assert result.channel(1) == b"hello\n"
    assert result.channel(2) == b"err\n"
    status = result.status()
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert result.close_code == aiohttp.WSCloseCode.OK


def test_stdin_piped_to_cat_comes_back_and_closing_stdin_ends_it(node: Node) -> None:
    url = node.url(("cat",), stdin=1, stdout=1, stderr=1)
    result = node.run(converse(url, b"\x00first line\n", b"\x00second\n", b"\xff\x00"))
    assert result.channel(1) == b"first line\nsecond\n"
    assert result.channel(2) == b""
    assert result.status() == {"metadata": {}, "status": "Success"}


def test_a_tty_gets_the_size_the_client_asks_for_and_follows_a_resize(node: Node) -> None:
    script = "read a; busybox stty size; read b; busybox stty size"
    url = node.url(("sh", "-c", script), stdin=1, stdout=1, tty=1)

    def resize(width: int, height: int) -> bytes:
        return b"\x04" + json.dumps({"Width": width, "Height": height}).encode()

    steps = (resize(100, 40), 1.0, b"\x00go\r", 1.0, resize(120, 50), 1.0, b"\x00on\r")
    result = node.run(converse(url, *steps))
    output = result.channel(1).decode()
    assert output.split("\r\n") == ["go", "40 100", "on", "50 120", ""], output
    assert result.channel(2) == b""  # a terminal merges stderr into stdout
    assert result.status() == {"metadata": {}, "status": "Success"}


def test_a_missing_container_is_404_before_the_upgrade(node: Node) -> None:
    async def handshake() -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(
                    node.url(("true",), container="nope", stdout=1), protocols=(V5,), headers=AUTH
                ):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert node.run(handshake()) == 404


def test_a_large_output_arrives_whole_before_the_status(node: Node) -> None:
    url = node.url(("busybox", "seq", "1", "200000"), stdout=1, stderr=1)
    result = node.run(converse(url))
    expected = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    assert result.channel(1) == expected
    assert result.messages[-1][:1] == b"\x03"
    assert result.status()["status"] == "Success"


def test_a_command_missing_from_the_image_fails_with_the_engines_exit_code(node: Node) -> None:
    result = node.run(converse(node.url(("no-such-command",), stdout=1, stderr=1)))
    status = result.status()
    assert status["reason"] == "NonZeroExitCode"
    assert int(status["details"]["causes"][0]["message"]) in (126, 127)
    # the engine's message: podman prints it on stderr, docker's CLI on stdout
    assert b"no-such-command" in result.channel(1) + result.channel(2)


def test_closing_stdin_in_tty_mode_types_an_end_of_file(node: Node) -> None:
    url = node.url(("cat",), stdin=1, stdout=1, tty=1)
    result = node.run(converse(url, b"\x00abc\r", 0.5, b"\xff\x00"))
    assert result.channel(1).replace(b"\r\n", b"\n") == b"abc\nabc\n"  # the echo, then cat
    assert result.status() == {"metadata": {}, "status": "Success"}


def _engine_clis_of_this_process(marker: str) -> list[int]:
    """Our child processes whose command line contains ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if ppid == os.getpid() and marker in cmdline:
                found.append(int(proc.name))
    return found


def test_a_client_going_away_stops_the_engine_cli(node: Node) -> None:
    marker = f"sleep {300 + secrets.randbelow(100)}"
    url = node.url(("sh", "-c", marker), stdout=1)

    async def go() -> list[int]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, protocols=(V5,), headers=AUTH) as ws,
        ):
            assert await ws.receive_bytes(timeout=10) == b"\x01"
            for _ in range(50):
                if _engine_clis_of_this_process(marker):
                    break
                await asyncio.sleep(0.1)
            assert _engine_clis_of_this_process(marker)
        for _ in range(50):  # the WebSocket is closed now
            if not _engine_clis_of_this_process(marker):
                break
            await asyncio.sleep(0.1)
        return _engine_clis_of_this_process(marker)

    assert node.run(go()) == []
