"""The host ports of NodePort and LoadBalancer Services (runtime.network.hostports),
driven directly: Services and EndpointSlices go in with ``upsert``/``remove``, the
listeners are real sockets on 127.0.0.1 and the endpoints small asyncio servers there."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from gitops.cli import add_cluster_arguments, cluster_config
from runtime.network.hostports import (
    Endpoint,
    HostPorts,
    HostPortsOptions,
    Target,
    advertised_address,
    bind_informers,
)
from tests.conftest import free_port

Obj = dict[str, Any]


def service(
    name: str,
    kind: str = "NodePort",
    ports: list[Obj] | None = None,
    *,
    created: str = "2026-01-01T00:00:00Z",
    **spec: Any,
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": created,
            "resourceVersion": "1",
        },
        "spec": {"type": kind, "ports": ports or [], **spec},
    }


def tcp_port(node_port: int | None, port: int = 80, name: str = "http") -> Obj:
    out: Obj = {"name": name, "port": port, "protocol": "TCP", "targetPort": 8080}
    if node_port is not None:
        out["nodePort"] = node_port
    return out


def endpoint_slice(
    service_name: str,
    backends: list[tuple[str, int]],
    *,
    name: str = "",
    port_name: str = "http",
    protocol: str = "TCP",
    ready: bool = True,
) -> Obj:
    """A slice with one endpoint per backend; they must share the port."""
    ports = {p for _, p in backends}
    assert len(ports) <= 1
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, _ in backends],
        "ports": [{"name": port_name, "port": p, "protocol": protocol} for p in ports],
    }


@contextlib.asynccontextmanager
async def echo_server(tag: str) -> AsyncIterator[int]:
    """Reads until EOF, then answers ``tag:`` plus what it read and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(f"{tag}:".encode() + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, data: bytes = b"hello") -> bytes:
    """Send ``data``, half-close, read the answer to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def running(hostports: HostPorts) -> AsyncIterator[HostPorts]:
    await hostports.start()
    try:
        yield hostports
    finally:
        await hostports.stop()


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, list[Obj]]] = []
        self.events: list[tuple[str, str, str, str]] = []

    def status(self, svc: Obj, ingress: list[Obj]) -> None:
        self.statuses.append((svc["metadata"]["name"], ingress))

    def event(self, svc: Obj, kind: str, reason: str, message: str) -> None:
        self.events.append((svc["metadata"]["name"], kind, reason, message))


def hostports_with(recorder: Recorder, **options: Any) -> HostPorts:
    return HostPorts(HostPortsOptions(**options), status=recorder.status, event=recorder.event)


# --- relaying -------------------------------------------------------------------------
def test_a_node_port_relays_tcp_to_the_endpoint_with_half_close() -> None:
    async def main() -> None:
        node_port = free_port()
        async with echo_server("a") as backend:
            hp = HostPorts()
            hp.upsert(service("web", ports=[tcp_port(node_port)]))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", backend)]))
            async with running(hp):
                assert hp.ports == {("TCP", node_port): "default/web:http/TCP"}
                assert await exchange(node_port, b"x" * 300_000) == b"a:" + b"x" * 300_000

    asyncio.run(main())


def test_new_connections_take_the_ready_endpoints_round_robin() -> None:
    async def main() -> None:
        node_port = free_port()
        async with echo_server("a") as a, echo_server("b") as b:
            hp = HostPorts()
            hp.upsert(service("web", ports=[tcp_port(node_port)]))
            # Two slices (one per backend port) feed the same Service port.
            hp.upsert(endpoint_slice("web", [("127.0.0.1", a)], name="web-a"))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", b)], name="web-b"))
            async with running(hp):
                answers = [await exchange(node_port) for _ in range(4)]
        assert sorted(answers) == [b"a:hello", b"a:hello", b"b:hello", b"b:hello"]
        assert answers[0] != answers[1] and answers[0] == answers[2]

    asyncio.run(main())


def test_client_ip_affinity_keeps_a_client_on_one_endpoint() -> None:
    async def main() -> None:
        node_port = free_port()
        async with echo_server("a") as a, echo_server("b") as b:
            hp = HostPorts()
            hp.upsert(service("web", ports=[tcp_port(node_port)], sessionAffinity="ClientIP"))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", a)], name="web-a"))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", b)], name="web-b"))
            async with running(hp):
                answers = {await exchange(node_port) for _ in range(4)}
        assert len(answers) == 1

    asyncio.run(main())


def test_without_a_ready_endpoint_the_connection_is_reset_at_once() -> None:
    async def main() -> None:
        node_port = free_port()
        async with echo_server("a") as backend:
            hp = HostPorts()
            hp.upsert(service("web", ports=[tcp_port(node_port)]))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", backend)], ready=False))
            async with running(hp):
                loop = asyncio.get_running_loop()
                started = loop.time()
                reader, writer = await asyncio.open_connection("127.0.0.1", node_port)
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(reader.read(), 2) == b""
                writer.close()
                assert loop.time() - started < 1.0

    asyncio.run(main())


def test_a_refused_endpoint_is_skipped_for_the_next_one() -> None:
    async def main() -> None:
        node_port = free_port()
        dead = free_port()  # nothing listens there
        async with echo_server("b") as b:
            hp = HostPorts()
            hp.upsert(service("web", ports=[tcp_port(node_port)]))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", dead)], name="web-a"))
            hp.upsert(endpoint_slice("web", [("127.0.0.1", b)], name="web-b"))
            async with running(hp):
                assert [await exchange(node_port) for _ in range(3)] == [b"b:hello"] * 3

    asyncio.run(main())


def test_endpoints_match_the_service_port_by_name_and_protocol_and_readiness() -> None:
    hp = HostPorts()
    hp.upsert(service("web", ports=[tcp_port(30001)]))
    hp.upsert(endpoint_slice("web", [("10.88.0.5", 8080), ("10.88.0.6", 8080)]))
    hp.upsert(endpoint_slice("web", [("10.88.0.7", 8080)], name="web-2", ready=False))
    hp.upsert(endpoint_slice("web", [("10.88.0.8", 9090)], name="web-3", port_name="metrics"))
    hp.upsert(endpoint_slice("web", [("10.88.0.9", 8080)], name="web-4", protocol="UDP"))
    hp.upsert(endpoint_slice("other", [("10.88.0.10", 8080)]))
    target = Target("default", "web", "http", "TCP")
    assert hp.endpoints(target) == (Endpoint("10.88.0.5", 8080), Endpoint("10.88.0.6", 8080))
    hp.remove({"kind": "EndpointSlice", "metadata": {"name": "web-1", "namespace": "default"}})
    assert hp.endpoints(target) == ()


# --- listeners follow the Services ----------------------------------------------------
def test_a_load_balancer_listens_on_its_port_and_node_port_and_reports_the_host() -> None:
    async def main() -> None:
        node_port, port = free_port(), free_port()
        recorder = Recorder()
        async with echo_server("a") as backend:
            hp = hostports_with(recorder)
            hp.upsert(service("lb", "LoadBalancer", [tcp_port(node_port, port)]))
            hp.upsert(endpoint_slice("lb", [("127.0.0.1", backend)]))
            async with running(hp):
                assert await exchange(port) == b"a:hello"
                assert await exchange(node_port) == b"a:hello"
                assert recorder.statuses == [("lb", [{"ip": "127.0.0.1"}])]
                # The status arrives: nothing more to publish.
                current = service("lb", "LoadBalancer", [tcp_port(node_port, port)])
                current["metadata"]["resourceVersion"] = "2"
                current["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
                hp.upsert(current)
                await hp.sync()
                assert len(recorder.statuses) == 1
                # Back to NodePort: the load-balancer port closes, the status is cleared.
                nodeport = service("lb", "NodePort", [tcp_port(node_port, port)])
                nodeport["metadata"]["resourceVersion"] = "3"
                nodeport["status"] = current["status"]
                hp.upsert(nodeport)
                await hp.sync()
                assert not listening(port)
                assert await exchange(node_port) == b"a:hello"
                assert recorder.statuses[-1] == ("lb", [])
        assert recorder.events == []

    asyncio.run(main())


def test_a_load_balancer_of_another_class_keeps_only_its_node_port() -> None:
    async def main() -> None:
        node_port, port = free_port(), free_port()
        recorder = Recorder()
        hp = hostports_with(recorder)
        svc = service(
            "lb", "LoadBalancer", [tcp_port(node_port, port)], loadBalancerClass="example.com/lb"
        )
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        hp.upsert(svc)
        async with running(hp):
            assert listening(node_port)
            assert not listening(port)
        assert recorder.statuses == []

    asyncio.run(main())


def test_a_deleted_service_closes_its_ports_and_connections() -> None:
    async def main() -> None:
        node_port = free_port()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        backend = int(server.sockets[0].getsockname()[1])
        hp = HostPorts()
        svc = service("web", ports=[tcp_port(node_port)])
        hp.upsert(svc)
        hp.upsert(endpoint_slice("web", [("127.0.0.1", backend)]))
        async with running(hp):
            reader, writer = await asyncio.open_connection("127.0.0.1", node_port)
            hp.remove(svc)
            await eventually(lambda: not listening(node_port))
            assert hp.ports == {}
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_changed_node_ports_move_the_listener() -> None:
    async def main() -> None:
        first, second = free_port(), free_port()
        hp = HostPorts()
        async with running(hp):
            hp.upsert(service("web", ports=[tcp_port(first)]))
            await eventually(lambda: listening(first))
            changed = service("web", ports=[tcp_port(second)])
            changed["metadata"]["resourceVersion"] = "2"
            hp.upsert(changed)
            await eventually(lambda: listening(second) and not listening(first))
        assert not listening(second)

    asyncio.run(main())


def test_a_taken_port_is_a_warning_event_and_no_status_until_it_frees() -> None:
    async def main() -> None:
        node_port = free_port()
        taken = socket.create_server(("127.0.0.1", 0))
        port = int(taken.getsockname()[1])
        recorder = Recorder()
        hp = hostports_with(recorder, retry_period=0.1)
        hp.upsert(service("lb", "LoadBalancer", [tcp_port(node_port, port)]))
        async with running(hp):
            assert listening(node_port)
            assert len(recorder.events) == 1
            name, kind, reason, message = recorder.events[0]
            assert (name, kind, reason) == ("lb", "Warning", "SyncLoadBalancerFailed")
            assert f"127.0.0.1:{port}/TCP" in message
            assert "in use" in message
            assert recorder.statuses == []
            await asyncio.sleep(0.3)  # retried, still taken: not reported again
            assert len(recorder.events) == 1
            taken.close()
            await eventually(lambda: recorder.statuses == [("lb", [{"ip": "127.0.0.1"}])])
            assert listening(port)

    asyncio.run(main())


def test_the_older_service_wins_a_port_both_want() -> None:
    async def main() -> None:
        port = free_port()
        recorder = Recorder()
        hp = hostports_with(recorder)
        hp.upsert(
            service("new", "LoadBalancer", [tcp_port(None, port)], created="2026-02-01T00:00:00Z")
        )
        hp.upsert(
            service("old", "LoadBalancer", [tcp_port(None, port)], created="2026-01-01T00:00:00Z")
        )
        async with running(hp):
            assert hp.ports == {("TCP", port): "default/old:http/TCP"}
        assert recorder.statuses == [("old", [{"ip": "127.0.0.1"}])]
        assert [(e[0], e[2]) for e in recorder.events] == [("new", "SyncLoadBalancerFailed")]
        assert "already used by Service default/old" in recorder.events[0][3]

    asyncio.run(main())


def test_stop_closes_every_listener() -> None:
    async def main() -> None:
        ports = [free_port() for _ in range(3)]
        hp = HostPorts()
        hp.upsert(service("a", ports=[tcp_port(ports[0])]))
        hp.upsert(service("b", "LoadBalancer", [tcp_port(ports[1], ports[2])]))
        await hp.start()
        assert all(listening(p) for p in ports)
        await hp.stop()
        assert not any(listening(p) for p in ports)

    asyncio.run(main())


# --- UDP --------------------------------------------------------------------------------
class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.put_nowait(data)


def test_udp_datagrams_are_relayed_per_client_flow_until_idle() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
        backend = int(echo.get_extra_info("sockname")[1])
        node_port = free_port()
        hp = HostPorts(HostPortsOptions(udp_idle_timeout=0.2))
        hp.upsert(
            service(
                "dns",
                ports=[{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": node_port}],
            )
        )
        hp.upsert(endpoint_slice("dns", [("127.0.0.1", backend)], port_name="dns", protocol="UDP"))
        async with running(hp):
            assert hp.ports == {("UDP", node_port): "default/dns:dns/UDP"}
            transport, client = await loop.create_datagram_endpoint(
                _Client, remote_addr=("127.0.0.1", node_port)
            )
            for text in (b"one", b"two"):
                transport.sendto(text)
                assert await asyncio.wait_for(client.received.get(), 5) == b"echo:" + text
            listener: Any = hp._listeners[("UDP", node_port)]
            assert len(listener.flows) == 1
            await eventually(lambda: not listener.flows)
            transport.sendto(b"three")  # a new flow after the idle one was closed
            assert await asyncio.wait_for(client.received.get(), 5) == b"echo:three"
            transport.close()
        echo.close()

    asyncio.run(main())


# --- helpers and wiring ---------------------------------------------------------------
def test_an_unspecified_bind_address_is_reported_as_loopback() -> None:
    assert advertised_address("0.0.0.0") == "127.0.0.1"
    assert advertised_address("::") == "::1"
    assert advertised_address("192.0.2.7") == "192.0.2.7"
    assert advertised_address("lb.example") == "lb.example"


class _Source:
    def __init__(self, items: list[Obj]) -> None:
        self._items = items
        self.handlers: dict[str, Any] = {}

    def items(self) -> list[Obj]:
        return list(self._items)

    def on(self, add: Any = None, update: Any = None, delete: Any = None) -> None:
        self.handlers = {"add": add, "update": update, "delete": delete}


def test_bound_informers_load_the_caches_and_follow_their_events() -> None:
    svc = service("web", ports=[tcp_port(30001)])
    del svc["kind"]  # informer items may lack the kind
    slices = _Source([endpoint_slice("web", [("10.88.0.5", 8080)])])
    services = _Source([svc])
    hp = HostPorts()
    bind_informers(hp, services=services, slices=slices)
    target = Target("default", "web", "http", "TCP")
    assert hp.endpoints(target) == (Endpoint("10.88.0.5", 8080),)
    slices.handlers["update"]({}, endpoint_slice("web", [("10.88.0.6", 8080)]))
    assert hp.endpoints(target) == (Endpoint("10.88.0.6", 8080),)
    services.handlers["delete"](svc)
    assert hp.candidates(target, "127.0.0.1") == [Endpoint("10.88.0.6", 8080)]


def test_other_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="not 'Pod'"):
        HostPorts().upsert({"kind": "Pod", "metadata": {"name": "p"}})


def test_the_service_host_flag_reaches_the_network_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", type=Path)
    add_cluster_arguments(parser)
    default = parser.parse_args([])
    assert cluster_config(default, tmp_path, parser).network.service_host == "127.0.0.1"
    args = parser.parse_args(["--service-host", "0.0.0.0"])
    assert cluster_config(args, tmp_path, parser).network.service_host == "0.0.0.0"
