"""NodePort and LoadBalancer Services reachable from the host (runtime.network.hostports)
in a ``gitops cluster up`` process on the fake runtime: the Services' endpoints are
servers this test runs on the host's container-bridge address (EndpointSlices refuse
loopback), and the test connects to ``127.0.0.1`` (the default ``--service-host``) at
the node ports and load-balancer ports. The last test, on podman and on docker, reaches a
real busybox httpd pod through a NodePort."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import ClusterProcess, free_port
from tests.integration.harness import (
    BRIDGES,
    bridge_address,
    run,
    started,
    until,
    web_deployment,
)

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


# --- backends on the bridge address -----------------------------------------------------
class _Tagged(socketserver.BaseRequestHandler):
    """Answers the first line it reads with ``<tag>:<line>`` and closes."""

    def handle(self) -> None:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.request.recv(4096)
            if not chunk:
                break
            data += chunk
        tag: str = self.server.tag  # type: ignore[attr-defined]
        self.request.sendall(tag.encode() + b":" + data)


class _UdpEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(b"echo:" + data, self.client_address)


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def bridge() -> str:
    address = bridge_address()
    if address is None:
        pytest.fail(
            f"no container bridge ({', '.join(BRIDGES)}) to put the backends on: run scripts/test.sh, which "
            "starts dockerd (docker0)"
        )
    return address


@pytest.fixture
def backends(bridge: str) -> Iterator[list[tuple[str, int]]]:
    """Two TCP backends tagged ``a`` and ``b``."""
    with contextlib.ExitStack() as stack:
        found: list[tuple[str, int]] = []
        for tag in ("a", "b"):
            server = socketserver.ThreadingTCPServer((bridge, 0), _Tagged)
            server.daemon_threads = True
            server.tag = tag  # type: ignore[attr-defined]
            found.append((bridge, stack.enter_context(serving(server))))
        yield found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("hostports") / "cluster", controllers="none") as proc:
        yield proc


# --- objects ------------------------------------------------------------------------------
def service(name: str, kind: str, port: int = 80, protocol: str = "TCP") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": kind,
            "ports": [{"name": "main", "port": port, "protocol": protocol, "targetPort": 8080}],
        },
    }


def endpoint_slice(
    service_name: str, suffix: str, address: str, port: int, protocol: str = "TCP"
) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-{suffix}",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "main", "port": port, "protocol": protocol}],
    }


async def create_service(client: Client, svc: Obj, backends: list[tuple[str, int]]) -> Obj:
    """Create the Service and one slice per backend; the created Service."""
    created = await client.create("v1", "services", svc, namespace="default")
    name = svc["metadata"]["name"]
    protocol = svc["spec"]["ports"][0]["protocol"]
    for i, (address, port) in enumerate(backends):
        await client.create(
            "discovery.k8s.io/v1",
            "endpointslices",
            endpoint_slice(name, str(i), address, port, protocol),
            namespace="default",
        )
    return created


async def ask(port: int, line: bytes = b"ping\n") -> bytes | None:
    """Send a line to 127.0.0.1:port and read the answer to EOF; None when refused or
    reset."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(line)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return None
    finally:
        writer.close()


def lb_ingress(svc: Obj) -> Any:
    return ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")


async def reachable(port: int) -> bytes:
    async def answered() -> bytes | None:
        return await ask(port)

    out: bytes = await until(f"an answer on 127.0.0.1:{port}", answered, timeout=30)
    return out


# --- tests ----------------------------------------------------------------------------------
def test_a_node_port_answers_on_the_host_and_takes_the_endpoints_round_robin(
    cluster: ClusterProcess, backends: list[tuple[str, int]]
) -> None:
    async def body(client: Client) -> None:
        created = await create_service(client, service("web", "NodePort"), backends)
        node_port = created["spec"]["ports"][0]["nodePort"]
        await reachable(node_port)
        answers = [await ask(node_port) for _ in range(4)]
        assert sorted(a or b"" for a in answers) == [b"a:ping\n"] * 2 + [b"b:ping\n"] * 2

    run(cluster, body)
    log_path = cluster.log_path
    assert log_path is not None
    assert "service node ports and load balancers: 127.0.0.1" in log_path.read_text()


def test_a_load_balancer_answers_on_its_own_port_and_reports_the_service_host(
    cluster: ClusterProcess, backends: list[tuple[str, int]]
) -> None:
    port = free_port()

    async def body(client: Client) -> None:
        created = await create_service(client, service("shop", "LoadBalancer", port), backends[:1])
        node_port = created["spec"]["ports"][0]["nodePort"]
        assert await reachable(port) == b"a:ping\n"
        assert await ask(node_port) == b"a:ping\n"

        async def status() -> Any:
            svc = await client.get("v1", "services", "shop", namespace="default")
            return lb_ingress(svc)

        assert await until("the load-balancer status", status, timeout=30) == [{"ip": "127.0.0.1"}]

        # No longer a load balancer: its port closes and the status is cleared.
        await client.patch(
            "v1", "services", "shop", {"spec": {"type": "NodePort"}}, namespace="default"
        )

        async def cleared() -> bool:
            svc = await client.get("v1", "services", "shop", namespace="default")
            return not lb_ingress(svc) and await ask(port) is None

        await until("the status cleared and the port closed", cleared, timeout=30)
        assert await ask(node_port) == b"a:ping\n"

    run(cluster, body)


def test_without_ready_endpoints_a_node_port_closes_connections_at_once(
    cluster: ClusterProcess,
) -> None:
    async def body(client: Client) -> None:
        created = await create_service(client, service("empty", "NodePort"), [])
        node_port = created["spec"]["ports"][0]["nodePort"]

        async def accepts() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", node_port)) == 0

        await until("the node port listening", accepts, timeout=30)
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        assert await ask(node_port) in (None, b"")
        assert loop.time() - started_at < 1.0

    run(cluster, body)


def test_a_deleted_service_closes_its_node_port(
    cluster: ClusterProcess, backends: list[tuple[str, int]]
) -> None:
    async def body(client: Client) -> None:
        created = await create_service(client, service("gone", "NodePort"), backends[:1])
        node_port = created["spec"]["ports"][0]["nodePort"]
        await reachable(node_port)
        await client.delete("v1", "services", "gone", namespace="default")

        async def closed() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", node_port)) != 0

        await until("the node port closed", closed, timeout=30)

    run(cluster, body)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[tuple[asyncio.DatagramTransport, _UdpClient]]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _UdpClient, remote_addr=("127.0.0.1", port)
    )
    try:
        yield transport, protocol
    finally:
        transport.close()


def test_udp_reaches_an_echo_backend_through_a_node_port(
    cluster: ClusterProcess, bridge: str
) -> None:
    echo = socketserver.UDPServer((bridge, 0), _UdpEcho)
    with serving(echo) as echo_port:

        async def body(client: Client) -> None:
            created = await create_service(
                client, service("dns", "NodePort", 53, "UDP"), [(bridge, echo_port)]
            )
            node_port = created["spec"]["ports"][0]["nodePort"]
            async with udp_client(node_port) as (transport, protocol):

                async def echoed() -> bytes | None:
                    transport.sendto(b"hello")
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(protocol.received.get(), 0.5)
                    return None

                assert await until("a UDP echo", echoed, timeout=30) == b"echo:hello"

        run(cluster, body)


def test_a_taken_load_balancer_port_is_a_warning_event_and_no_status(
    cluster: ClusterProcess, backends: list[tuple[str, int]]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])

        async def body(client: Client) -> None:
            await create_service(client, service("busy", "LoadBalancer", port), backends[:1])

            async def warning() -> Obj | None:
                events = await client.list(
                    "v1", "events", namespace="default", fieldSelector="involvedObject.name=busy"
                )
                return next(
                    (e for e in events["items"] if e["reason"] == "SyncLoadBalancerFailed"), None
                )

            event = await until("the Warning event", warning, timeout=30)
            assert event["type"] == "Warning"
            assert event["involvedObject"]["kind"] == "Service"
            assert f"127.0.0.1:{port}/TCP" in event["message"]
            assert "in use" in event["message"]
            svc = await client.get("v1", "services", "busy", namespace="default")
            assert not lb_ingress(svc)

        run(cluster, body)


def test_the_host_ports_close_with_the_cluster(tmp_path: Path) -> None:
    with started(tmp_path / "cluster", controllers="none") as proc:

        async def body(client: Client) -> int:
            created = await client.create(
                "v1", "services", service("web", "NodePort"), namespace="default"
            )
            node_port: int = created["spec"]["ports"][0]["nodePort"]

            async def accepts() -> bool:
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", node_port)) == 0

            await until("the node port listening", accepts, timeout=30)
            return node_port

        node_port = run(proc, body)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", node_port)) != 0


# --- a real pod on a container engine ---------------------------------------------------
def fetch(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            body: bytes = response.read()
            return body.decode().strip()
    except OSError:
        return None


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_a_node_port_reaches_a_busybox_httpd_pod(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with started(
        tmp_path_factory.mktemp(f"hostports-{engine}"),
        runtime=engine,
        start_timeout=90.0,
        stop_timeout=90.0,
    ) as proc:

        async def body(client: Client) -> None:
            await client.create("apps/v1", "deployments", web_deployment("web", 1), "default")
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            }
            created = await client.create("v1", "services", svc, namespace="default")
            node_port = created["spec"]["ports"][0]["nodePort"]

            async def served() -> str | None:
                return await asyncio.to_thread(fetch, node_port)

            pod_name = await until("the pod's page on the node port", served, timeout=120, step=0.5)
            pods = await client.list("v1", "pods", "default", labelSelector="app=web")
            assert pod_name in {p["metadata"]["name"] for p in pods["items"]}

        run(proc, body)
