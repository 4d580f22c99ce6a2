"""pods/exec through the API server: a real ``gitops cluster up`` process (no nodes) in
front of a fake kubelet, an aiohttp HTTPS server on loopback that speaks a minimal
``/exec`` WebSocket endpoint of the kubelet contract (it echoes stdin back on stdout and
reports a Status on channel 3). Checks the handshake (subprotocol, validation errors as
HTTP Status answers, SPDY refused with a reason), both-way relaying and closes, and the
official Python client and kubectl 1.35 end to end."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from kubeclient.rest import Client
from runtime.server.tls import issue_serving_certificate
from tests.conftest import ClusterProcess, free_port, kubectl_binary
from tests.integration.harness import run

pytestmark = pytest.mark.integration

NODE = "exec-node"
GONE_NODE = "gone-node"
PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
SUCCESS = {"metadata": {}, "status": "Success"}
EXEC = "/api/v1/namespaces/default/pods/{}/exec"


@dataclass
class Seen:
    """One request the fake kubelet answered."""

    path: str
    query: list[tuple[str, str]]
    authorization: str
    offered: str
    protocol: str = ""
    close_code: int | None = None


@dataclass
class FakeKubelet:
    """The kubelet's ``/exec`` endpoint on loopback HTTPS, served from a thread.

    The command's first word picks the behaviour: anything prints ``ran: <command>`` on
    stdout; with stdin, frames on channel 0 are echoed on channel 1 until v5's close
    signal [255, 0]; ``fail`` ends with a NonZeroExitCode Status (exit 3); ``sleep``
    waits for the other side to close; ``close4001`` closes with code 4001 at once. A
    container named ``stopped`` is refused before the upgrade (400, text body)."""

    cert: Path
    key: Path
    token: str
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
            app.router.add_get("/attach/{namespace}/{pod}/{container}", self._exec)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert), str(self.key))
            site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=context)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(
            request.path,
            list(request.query.items()),
            request.headers.get("Authorization", ""),
            request.headers.get("Sec-WebSocket-Protocol", ""),
        )
        self.seen.append(seen)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        container = request.match_info["container"]
        if container == "stopped":
            return web.Response(status=400, text=f"container {container} is not running")
        command = request.query.getall("command", []) or ["attached"]
        ws = web.WebSocketResponse(protocols=PROTOCOLS)
        await ws.prepare(request)
        seen.protocol = ws.ws_protocol or ""
        await ws.send_bytes(b"\x01" + f"ran: {' '.join(command)}\n".encode())
        if command[0] == "close4001":
            await ws.close(code=4001, message=b"gone away")
            return ws
        if request.query.get("stdin") == "1" or command[0] == "sleep":
            async for message in ws:
                data = message.data
                if message.type != aiohttp.WSMsgType.BINARY or not data:
                    continue
                if data[0] == 0:
                    await ws.send_bytes(b"\x01" + data[1:])
                elif data == b"\xff\x00":
                    break
            if ws.closed:
                seen.close_code = ws.close_code
                return ws
        status: dict[str, Any] = dict(SUCCESS)
        if command[0] == "fail":
            status = {
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: exit status 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            }
        if seen.protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            await ws.send_bytes(b"\x03" + orjson.dumps(status))
        await ws.close()
        return ws


def _pod(name: str, containers: list[str], node: str = NODE, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


async def _node(client: Client, name: str, port: int) -> None:
    await client.create(
        "v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    )
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }
    }
    await client.patch("v1", "nodes", name, status, subresource="status")


@pytest.fixture(scope="module")
def kubelet(cluster: ClusterProcess) -> Iterator[FakeKubelet]:
    cert, key = issue_serving_certificate(cluster.state_dir, "fake-kubelet", ("127.0.0.1",))
    fake = FakeKubelet(cert, key, cluster.kubelet_client_token)
    fake.start()

    async def setup(client: Client) -> None:
        await _node(client, NODE, fake.port)
        await _node(client, GONE_NODE, free_port())  # nothing listens there
        pods = [
            _pod("web", ["app"]),
            _pod("pair", ["a", "b", "stopped"]),
            _pod("chosen", ["a", "b"], **{"kubectl.kubernetes.io/default-container": "b"}),
            _pod("done", ["app"]),
            _pod("pending", ["app"], node=""),
            _pod("far", ["app"], node=GONE_NODE),
        ]
        for pod in pods:
            await client.create("v1", "pods", pod, "default")
        for name, phase in (("web", "Running"), ("done", "Succeeded")):
            body = {"status": {"phase": phase}}
            await client.patch("v1", "pods", name, body, "default", subresource="status")

    run(cluster, setup)
    try:
        yield fake
    finally:
        fake.stop()


def _url(cluster: ClusterProcess, pod: str, *pairs: tuple[str, str], sub: str = "exec") -> str:
    query = "&".join(f"{k}={v}" for k, v in pairs)
    path = EXEC.format(pod).removesuffix("/exec") + f"/{sub}"
    return f"{cluster.url}{path}?{query}"


def _headers(cluster: ClusterProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token}"}


CAT = (("command", "cat"), ("stdin", "true"), ("stdout", "true"), ("stderr", "true"))


async def _handshake(
    cluster: ClusterProcess,
    url: str,
    *,
    token: bool = True,
    method: str = "GET",
    spdy: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Send an upgrade request and return the refusal's status and JSON body."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io",
    }
    if spdy:
        headers = {
            "Connection": "Upgrade",
            "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "v4.channel.k8s.io",
        }
    if token:
        headers.update(_headers(cluster))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, ssl=cluster.ssl_context()) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


def _go(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def _connect(
    cluster: ClusterProcess, url: str, protocols: tuple[str, ...]
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket through the API server, offering ``protocols``."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url, protocols=protocols, headers=_headers(cluster), ssl=cluster.ssl_context()
        ) as ws,
    ):
        yield ws


def test_exec_relays_both_ways_with_the_subprotocol_the_kubelet_chose(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    async def body() -> None:
        async with _connect(
            cluster, _url(cluster, "web", *CAT), ("v5.channel.k8s.io", "v4.channel.k8s.io")
        ) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            assert await ws.receive_bytes(timeout=5) == b"\x01ran: cat\n"
            await ws.send_bytes(b"\x00hello")
            assert await ws.receive_bytes(timeout=5) == b"\x01hello"
            await ws.send_bytes(b"\xff\x00")
            status = await ws.receive_bytes(timeout=5)
            assert status[:1] == b"\x03" and orjson.loads(status[1:]) == SUCCESS
            closing = await ws.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1000

    _go(body())
    seen = kubelet.seen[-1]
    assert seen.path == "/exec/default/web/app"
    assert seen.query == [
        ("command", "cat"),
        ("stdin", "1"),
        ("stdout", "1"),
        ("stderr", "1"),
        ("tty", "0"),
    ]
    # The API server's own kubelet credential, never the admin token.
    assert seen.authorization == f"Bearer {cluster.kubelet_client_token}"
    assert cluster.kubelet_client_token != cluster.token
    assert seen.protocol == "v5.channel.k8s.io"


def test_a_repeated_command_parameter_reaches_the_kubelet_in_order_and_v4_is_honoured(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    async def body() -> bytes:
        pairs = (("command", "sh"), ("command", "-c"), ("command", "echo%20a"), ("stdout", "1"))
        async with _connect(cluster, _url(cluster, "chosen", *pairs), ("v4.channel.k8s.io",)) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            return await ws.receive_bytes(timeout=5)

    assert _go(body()) == b"\x01ran: sh -c echo a\n"
    # The default-container annotation chose b of the two.
    assert kubelet.seen[-1].path == "/exec/default/chosen/b"


@pytest.mark.parametrize(
    ("pod", "pairs", "code", "message"),
    [
        ("nope", CAT, 404, 'pods "nope" not found'),
        (
            "pair",
            CAT,
            400,
            "a container name must be specified for pod pair, choose one of: [a b stopped]",
        ),
        ("web", (*CAT, ("container", "zz")), 400, "container zz is not valid for pod web"),
        (
            "done",
            CAT,
            400,
            "cannot exec into a container in a completed pod; current phase is Succeeded",
        ),
        ("pending", CAT, 400, "pod pending does not have a host assigned"),
        ("web", CAT[1:], 400, "you must specify at least one command for the container"),
        ("web", (("command", "ls"),), 400, "you must specify at least 1 of stdin, stdout, stderr"),
        (
            "web",
            (("command", "ls"), ("stdout", "maybe")),
            400,
            "stdout must be true or false, not 'maybe'",
        ),
        ("pair", (*CAT, ("container", "stopped")), 400, "container stopped is not running"),
    ],
)
def test_a_request_that_cannot_run_is_refused_on_the_handshake_with_a_status(
    cluster: ClusterProcess,
    kubelet: FakeKubelet,
    pod: str,
    pairs: tuple[tuple[str, str], ...],
    code: int,
    message: str,
) -> None:
    status, body = _go(_handshake(cluster, _url(cluster, pod, *pairs)))
    assert status == code
    assert body["kind"] == "Status" and body["code"] == code and body["message"] == message


def test_a_handshake_without_a_token_is_anonymous_and_forbidden(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    status, body = _go(_handshake(cluster, _url(cluster, "web", *CAT), token=False))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "web" is forbidden: User "system:anonymous" cannot create resource '
        '"pods/exec" in API group "" in the namespace "default"'
    )


def test_an_unreachable_kubelet_is_service_unavailable(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    status, body = _go(_handshake(cluster, _url(cluster, "far", *CAT)))
    assert status == 503 and body["reason"] == "ServiceUnavailable"
    assert body["message"].startswith(f"cannot reach the kubelet of node '{GONE_NODE}'")


def test_websocket_is_only_served_on_pods_exec_and_attach(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    status, body = _go(_handshake(cluster, f"{cluster.url}/api/v1/namespaces/default/pods?watch=1"))
    assert status == 400
    assert "only pods/exec and pods/attach are served over WebSocket" in body["message"]


def test_pods_attach_is_relayed_to_the_kubelets_attach_without_a_command(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    async def body() -> None:
        async with _connect(
            cluster, _url(cluster, "web", ("stdout", "1"), sub="attach"), ("v5.channel.k8s.io",)
        ) as ws:
            assert await ws.receive_bytes(timeout=5) == b"\x01ran: attached\n"

    _go(body())
    seen = kubelet.seen[-1]
    assert seen.path == "/attach/default/web/app"
    assert ("command", "") not in seen.query and all(k != "command" for k, _ in seen.query)


def test_spdy_is_refused_with_a_reason_after_the_requests_own_validation(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    status, body = _go(_handshake(cluster, _url(cluster, "web", *CAT), method="POST", spdy=True))
    assert status == 400 and body["message"].startswith("pods/exec is served over WebSocket only")
    status, body = _go(_handshake(cluster, _url(cluster, "nope", *CAT), method="POST", spdy=True))
    assert status == 404


def test_the_spdy_retry_after_a_failed_websocket_attempt_gets_that_attempts_error(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    url = _url(cluster, "pair", *CAT, ("container", "stopped"))
    assert _go(_handshake(cluster, url))[0] == 400
    status, body = _go(_handshake(cluster, url, method="POST", spdy=True))
    assert (status, body["message"]) == (400, "container stopped is not running")
    # Told once: the next SPDY attempt gets the general refusal.
    status, body = _go(_handshake(cluster, url, method="POST", spdy=True))
    assert body["message"].startswith("pods/exec is served over WebSocket only")


def test_a_client_close_reaches_the_kubelet(cluster: ClusterProcess, kubelet: FakeKubelet) -> None:
    async def body() -> None:
        async with _connect(
            cluster,
            _url(cluster, "web", ("command", "sleep"), ("stdout", "1")),
            ("v5.channel.k8s.io",),
        ) as ws:
            assert await ws.receive_bytes(timeout=5) == b"\x01ran: sleep\n"
            seen = kubelet.seen[-1]
            await ws.close(code=4002)
        for _ in range(100):
            if seen.close_code is not None:
                break
            await asyncio.sleep(0.05)
        assert seen.close_code == 4002

    _go(body())


def test_a_kubelet_close_reaches_the_client_with_its_code(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    async def body() -> None:
        async with _connect(
            cluster,
            _url(cluster, "web", ("command", "close4001"), ("stdout", "1")),
            ("v5.channel.k8s.io",),
        ) as ws:
            assert await ws.receive_bytes(timeout=5) == b"\x01ran: close4001\n"
            closing = await ws.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert (ws.close_code, closing.extra) == (4001, "gone away")

    _go(body())


def test_the_official_python_client_execs(cluster: ClusterProcess, kubelet: FakeKubelet) -> None:
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.stream import stream

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        core = k8s.CoreV1Api(api)
        started = time.monotonic()
        session = stream(
            core.connect_get_namespaced_pod_exec,
            "web",
            "default",
            command=["echo", "hi"],
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
        try:
            session.run_forever(timeout=10)
            assert session.read_stdout() == "ran: echo hi\n"
            assert session.returncode == 0
        finally:
            session.close()
        assert time.monotonic() - started < 5
        # The installed client (37.x) offers "v5.channel.k8s.io,v4.channel.k8s.io".
        seen = kubelet.seen[-1]
        assert seen.protocol == seen.offered.split(",")[0].strip() == "v5.channel.k8s.io"
    finally:
        api.close()


def _kubectl(
    cluster: ClusterProcess, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary("1.35"), "-v=6", *args],
        env=cluster.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubectl_execs_over_websocket_v5_without_falling_back(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    done = _kubectl(cluster, "exec", "web", "--", "echo", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran: echo hi\n"
    assert kubelet.seen[-1].protocol == "v5.channel.k8s.io"
    assert "POST" not in done.stderr  # no SPDY attempt
    piped = _kubectl(cluster, "exec", "-i", "web", "--", "cat", stdin="abc")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "ran: cat\nabc"
    failed = _kubectl(cluster, "exec", "web", "--", "fail")
    assert failed.returncode == 3
    assert "command terminated with exit code 3" in failed.stderr


def test_kubectl_reports_the_kubelets_refusal(
    cluster: ClusterProcess, kubelet: FakeKubelet
) -> None:
    done = _kubectl(cluster, "exec", "pair", "-c", "stopped", "--", "ls")
    assert done.returncode != 0
    assert "container stopped is not running" in done.stderr
