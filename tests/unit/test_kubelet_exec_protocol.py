"""The kubelet's exec endpoint and its channel protocol (runtime.kubelet.remotecommand):
the pure helpers alone, then a real KubeletServer on loopback over the fake runtime,
driven by an aiohttp WebSocket client as kubectl and the Python client drive it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from runtime.kubelet import cri, remotecommand
from runtime.kubelet.cri import ContainerConfig, SandboxConfig
from runtime.kubelet.remotecommand import (
    V1,
    V2,
    V3,
    V4,
    V5,
    ExecRequest,
    ExecRequestError,
    ResizeDecoder,
    negotiate,
    parse_exec_request,
)
from runtime.kubelet.runtimes.fake import FakeRuntime
from runtime.kubelet.server import KubeletServer

TOKEN = "secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- the pure helpers -------------------------------------------------------------------


def test_a_request_keeps_the_repeated_commands_in_order_and_reads_both_flag_spellings() -> None:
    query = [("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("stdin", "true")]
    query += [("stdout", "1"), ("stderr", "false"), ("tty", "0")]
    assert parse_exec_request(query) == ExecRequest(
        ("sh", "-c", "echo hi"), stdin=True, stdout=True, stderr=False, tty=False
    )


def test_a_tty_request_drops_stderr_as_the_kubelet_does() -> None:
    query = [("command", "sh"), ("stdout", "1"), ("stderr", "1"), ("tty", "1")]
    assert parse_exec_request(query).stderr is False


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("stdout", "1")], "at least one command"),
        ([("command", "sh")], "at least 1 of stdin, stdout, stderr"),
        ([("command", "sh"), ("stdout", "yes")], "invalid value 'yes' for stdout"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(
    query: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(ExecRequestError, match=message):
        parse_exec_request(query)


def test_the_first_supported_protocol_in_the_clients_order_wins() -> None:
    assert negotiate([V5, V4, V3, V2, V1]) == V5
    assert negotiate(["base64.channel.k8s.io", V4, V5]) == V4
    assert negotiate([]) == V1
    assert negotiate(["base64.channel.k8s.io", "v4.base64.channel.k8s.io"]) is None


def test_a_frame_is_the_channel_byte_then_the_data() -> None:
    assert remotecommand.frame(1, b"hi") == b"\x01hi"
    assert remotecommand.frame(3) == b"\x03"


def test_v4_and_v5_statuses_are_metav1_status_json() -> None:
    assert remotecommand.status_payload(V5, remotecommand.success_status()) == (
        b'{"metadata":{},"status":"Success"}'
    )
    failure = remotecommand.status_payload(V4, remotecommand.exit_code_status(("sh", "-c"), 3))
    assert failure is not None
    assert json.loads(failure) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: "
        "error executing command [sh -c], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }


def test_before_v4_only_a_failures_message_is_sent() -> None:
    for protocol in (V1, V2, V3):
        assert remotecommand.status_payload(protocol, remotecommand.success_status()) is None
        failure = remotecommand.exit_code_status(("false",), 1)
        assert remotecommand.status_payload(protocol, failure) == failure["message"].encode()


def test_resize_objects_may_be_split_packed_and_spelled_in_any_case() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b'{"Width":80,"Height":24}') == [(80, 24)]
    assert decoder.feed(b'{"width":100,') == []
    assert decoder.feed(b'"height":40}{"Width":120,"Height":50}') == [(100, 40), (120, 50)]
    assert decoder.feed(b'{"Width":0,"Height":10}') == []  # below 1: ignored


def test_after_a_malformed_resize_the_channel_is_ignored() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b"not json") == []
    assert decoder.feed(b'{"Width":80,"Height":24}') == []


# --- through a real KubeletServer --------------------------------------------------------


@dataclass
class Node:
    runtime: FakeRuntime
    base: str
    http: aiohttp.ClientSession

    def url(self, pod: str = "web", container: str = "app", **params: Any) -> str:
        query = [f"command={c}" for c in params.pop("command", ("sh", "-c", "true"))]
        query += [f"{k}={v}" for k, v in params.items()]
        return f"{self.base}/exec/default/{pod}/{container}?{'&'.join(query)}"


@asynccontextmanager
async def kubelet(env: dict[str, str] | None = None) -> AsyncIterator[Node]:
    """A KubeletServer on loopback with one running fake pod default/web (container
    ``app`` with ``env``, and a stopped container ``done``)."""
    runtime = FakeRuntime()
    labels = {cri.LABEL_POD_UID: "uid-1", cri.LABEL_POD_NAME: "web"}
    sandbox = await runtime.run_sandbox(
        SandboxConfig(pod_uid="uid-1", name="web", namespace="default", hostname="web")
    )
    for name in ("app", "done"):
        config = ContainerConfig(
            name=name,
            image="busybox",
            env=tuple((env or {}).items()),
            labels={**labels, cri.LABEL_CONTAINER_NAME: name},
        )
        cid = await runtime.create_container(sandbox.id, config)
        await runtime.start_container(cid)
        if name == "done":
            await runtime.stop_container(cid, 0)
    pods = {("default", "web"): {"metadata": {"name": "web", "uid": "uid-1"}}}
    server = KubeletServer(runtime, TOKEN, lambda ns, name: pods.get((ns, name)), "node-a")
    port = await server.start("127.0.0.1", 0, None)
    try:
        async with aiohttp.ClientSession() as http:
            yield Node(runtime, f"http://127.0.0.1:{port}", http)
    finally:
        await server.stop()


@dataclass
class Exchange:
    protocol: str | None
    messages: list[bytes]
    close_code: int | None

    def channel(self, number: int) -> bytes:
        return b"".join(m[1:] for m in self.messages if m[:1] == bytes((number,)))

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.channel(3))
        return loaded


async def converse(
    node: Node,
    url: str,
    protocols: tuple[str, ...] = (V5, V4),
    send: tuple[bytes | str, ...] = (),
) -> Exchange:
    """Open the WebSocket, send ``send`` (bytes as binary, str as text frames), and
    collect every message until the server closes."""
    async with node.http.ws_connect(url, protocols=protocols, headers=AUTH) as ws:
        for item in send:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_str(item)
        messages = []
        async for message in ws:
            assert message.type is aiohttp.WSMsgType.BINARY
            messages.append(bytes(message.data))
        return Exchange(ws.protocol, messages, ws.close_code)


def test_output_arrives_on_its_channels_and_exit_0_ends_with_success() -> None:
    async def scenario() -> None:
        async with kubelet({"FAKE_EXEC_STDOUT": "hello\n", "FAKE_EXEC_STDERR": "err\n"}) as node:
            url = node.url(command=("sh", "-c", "x"), stdout=1, stderr=1)
            result = await converse(node, url)
            assert result.protocol == V5
            assert result.messages[0] == b"\x01"  # the stream is up
            assert result.channel(1) == b"hello\n"
            assert result.channel(2) == b"err\n"
            assert result.messages[-1] == b'\x03{"metadata":{},"status":"Success"}'
            assert result.close_code == aiohttp.WSCloseCode.OK
            assert node.runtime.exec_sessions[0].command == ("sh", "-c", "x")

    asyncio.run(scenario())


def test_a_non_zero_exit_is_a_nonzero_exit_code_status_in_v4() -> None:
    async def scenario() -> None:
        async with kubelet({"FAKE_EXEC_EXIT_CODE": "3"}) as node:
            result = await converse(node, node.url(command=("false",), stdout=1), (V4,))
            assert result.protocol == V4
            status = result.status()
            assert status["status"] == "Failure"
            assert status["reason"] == "NonZeroExitCode"
            assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}

    asyncio.run(scenario())


def test_the_v1_protocol_sends_only_a_failures_text_and_nothing_on_success() -> None:
    async def scenario() -> None:
        async with kubelet({"FAKE_EXEC_EXIT_CODE": "2"}) as node:
            result = await converse(node, node.url(command=("false",), stdout=1), (V1,))
            assert result.protocol == V1
            assert result.channel(3).startswith(b"command terminated with non-zero exit code")
        async with kubelet() as node:
            result = await converse(node, node.url(stdout=1), ())  # no subprotocol offered
            assert result.protocol is None
            assert result.messages == [b"\x01"]
            assert result.close_code == aiohttp.WSCloseCode.OK

    asyncio.run(scenario())


def test_stdin_comes_back_and_the_v5_close_signal_ends_it() -> None:
    async def scenario() -> None:
        async with kubelet() as node:
            url = node.url(command=("cat",), stdin=1, stdout=1, stderr=1)
            send: tuple[bytes | str, ...] = (b"\x00abc", "\x00def\n", b"\xff\x00")
            result = await converse(node, url, (V5,), send)
            assert result.channel(1) == b"abcdef\n"  # the text frame counts as bytes too
            assert result.status() == {"metadata": {}, "status": "Success"}

    asyncio.run(scenario())


def test_the_close_signal_is_not_part_of_v4() -> None:
    async def scenario() -> None:
        async with kubelet() as node:
            url = node.url(command=("cat",), stdin=1, stdout=1)
            async with node.http.ws_connect(url, protocols=(V4,), headers=AUTH) as ws:
                await ws.send_bytes(b"\xff\x00")
                await ws.send_bytes(b"\x00still open")
                first = await ws.receive_bytes(timeout=5)
                assert first == b"\x01"
                echoed = await ws.receive_bytes(timeout=5)
                assert echoed == b"\x01still open"
            session = node.runtime.exec_sessions[0]
            for _ in range(100):  # closing the WebSocket ends the command
                if session.closed:
                    break
                await asyncio.sleep(0.01)
            assert session.closed

    asyncio.run(scenario())


def test_resizes_reach_the_session_in_tty_mode_and_stderr_is_merged() -> None:
    async def scenario() -> None:
        async with kubelet({"FAKE_EXEC_STDERR": "warn\n"}) as node:
            url = node.url(command=("sh",), stdin=1, stdout=1, stderr=1, tty=1)
            send = (
                b'\x04{"Width":80,"Height":24}',
                b'\x04{"Width":120,',
                b'\x04"Height":40}',
                b"\xff\x00",
            )
            result = await converse(node, url, (V5,), send)
            assert result.channel(1) == b"warn\n"
            assert result.channel(2) == b""
            assert node.runtime.exec_sessions[0].sizes == [(80, 24), (120, 40)]

    asyncio.run(scenario())


def test_resizes_without_a_tty_are_ignored() -> None:
    async def scenario() -> None:
        async with kubelet() as node:
            url = node.url(command=("sh",), stdin=1, stdout=1)
            await converse(node, url, (V5,), (b'\x04{"Width":80,"Height":24}', b"\xff\x00"))
            assert node.runtime.exec_sessions[0].sizes == []

    asyncio.run(scenario())


async def handshake_status(node: Node, url: str, **kwargs: Any) -> tuple[int, str]:
    try:
        async with node.http.ws_connect(url, **{"headers": AUTH, **kwargs}):
            pass
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status, exc.message
    raise AssertionError("the upgrade was accepted")


def test_errors_before_the_upgrade_are_plain_http() -> None:
    async def scenario() -> None:
        async with kubelet() as node:
            assert (await handshake_status(node, node.url(stdout=1), headers={}))[0] == 401
            assert (await handshake_status(node, node.url("nope", stdout=1)))[0] == 404
            assert (await handshake_status(node, node.url(container="nope", stdout=1)))[0] == 404
            assert (await handshake_status(node, node.url(command=(), stdout=1)))[0] == 400
            assert (await handshake_status(node, node.url()))[0] == 400  # no stream asked
            assert (await handshake_status(node, node.url(container="done", stdout=1)))[0] == 400
            only_base64 = await handshake_status(
                node, node.url(stdout=1), protocols=("base64.channel.k8s.io",)
            )
            assert only_base64[0] == 403
            async with node.http.post(
                node.url(stdout=1), headers={**AUTH, "Upgrade": "SPDY/3.1"}
            ) as response:
                assert response.status == 400
                assert "SPDY is not supported" in await response.text()
            async with node.http.get(node.url(stdout=1), headers=AUTH) as response:
                assert response.status == 400
                assert "SPDY is not supported" in await response.text()
            assert node.runtime.exec_sessions == []

    asyncio.run(scenario())
