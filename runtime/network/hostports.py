"""The built-in cluster's service load balancer: makes NodePort and LoadBalancer Services
reachable from the host, as k3s's ServiceLB (klipper-lb) does, but in-process — asyncio
listeners on the host that relay each connection to a ready endpoint of the Service.

Who calls it: :class:`runtime.network.wiring.ClusterNetwork` on every runtime except
``none`` (the fake runtime too: tests put backend servers behind Services). It builds a
:class:`HostPorts`, feeds it Services and EndpointSlices with :func:`bind_informers`,
starts it, publishes the Services' load-balancer status with :func:`publish_status` when
:class:`HostPorts` asks for it (its ``status`` callback) and records the Warning events
it reports (its ``event`` callback). Unit tests drive :class:`HostPorts` directly with
``upsert``/``remove`` and :meth:`HostPorts.sync`.

What is bound (on :attr:`HostPortsOptions.host`, ``--service-host``, 127.0.0.1 by
default):

* every port of a NodePort or LoadBalancer Service with an allocated ``nodePort``
  (the API server allocates them, :mod:`runtime.api.services`): ``host:nodePort``;
* every port of a LoadBalancer Service without ``spec.loadBalancerClass`` additionally
  ``host:port`` (the Service's own port, as klipper-lb binds it on the node with a
  hostPort). Once all of a Service's load-balancer ports are bound its
  ``status.loadBalancer.ingress`` becomes ``[{"ip": host}]`` (an unspecified host such
  as 0.0.0.0 is reported as the loopback address of its family); while one is not, the
  status is empty — k3s leaves such a Service pending — and a Warning event
  ``SyncLoadBalancerFailed`` says why. A node port that cannot be bound gets a Warning
  ``NodePortUnavailable``. Ports that failed are tried again every
  :attr:`HostPortsOptions.retry_period` seconds; each failure is reported once (until it
  changes or the port was bound in between).
* A Service whose ``loadBalancerClass`` names another implementation keeps its node
  ports (kube-proxy serves those whatever the class), but its load-balancer port and
  status are left to that implementation. A Service that is no longer of type
  LoadBalancer has a leftover ``status.loadBalancer.ingress`` cleared.
* Two Services wanting the same host port and protocol: the older one (by
  ``creationTimestamp``, then namespace/name) gets it, the other a Warning event.

Listeners follow the Services: created, changed (ports, node ports, type) and deleted
Services open and close theirs (a deleted Service's open connections are closed too).
Endpoint changes apply to new connections (TCP) and new flows (UDP) only.

Forwarding: the Service port's name selects the EndpointSlice port of the same name and
protocol (unnamed matches unnamed) of the slices labelled ``kubernetes.io/service-name``;
endpoints with ``conditions.ready`` false are skipped (first address of each). New
connections take the endpoints round-robin per Service port; with ``sessionAffinity:
ClientIP`` a client address keeps its endpoint for
``sessionAffinityConfig.clientIP.timeoutSeconds`` (10800 by default) while that endpoint
stays ready.

* TCP: an asyncio server; each accepted connection is connected to the chosen endpoint
  (a refused or timed-out connect tries the next one, up to
  :data:`MAX_CONNECT_ATTEMPTS`), then bytes are pumped both ways with
  ``reader.read(65536)``/``writer.write``/``drain`` (large read limits and write-buffer
  high-water marks, :attr:`HostPortsOptions.buffer_size`); an EOF from one side is passed
  on as a half-close (``write_eof``) and the other direction goes on; an error on either
  side aborts both. No ready endpoint (or none reachable): the client connection is reset
  at once (``SO_LINGER`` 0), as the proxy's ``REJECT --reject-with tcp-reset`` does for a
  cluster IP.
* UDP: a datagram endpoint; each client address is a flow with its own connected socket
  to the endpoint chosen for it, whose replies go back to the client from the listener's
  port; a flow idle for :attr:`HostPortsOptions.udp_idle_timeout` seconds is closed.
  Datagrams for a Service without ready endpoints are dropped, and so are those of new
  clients while a listener has :data:`MAX_UDP_FLOWS` flows.

This is a userspace relay: NodePort and LoadBalancer traffic from the host costs two
socket copies per byte in this process, and backends see this process (the host) as the
client. Cluster-IP traffic from pods does not pass here: it is DNATed by the kernel
(:mod:`runtime.network.proxy`).

Not supported (deliberately): ``externalTrafficPolicy: Local`` (one node: every endpoint
is local anyway; the client address is not preserved either way), ``healthCheckNodePort``,
``loadBalancerSourceRanges`` (not enforced), ``spec.externalIPs`` and ``loadBalancerIP``
(not bound), SCTP ports (ignored), FQDN EndpointSlices (ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog

from kubeclient.informer import ObjectSource
from kubeclient.rest import Client
from runtime.network.ingress import load_balancer_ingress
from runtime.network.objects import (
    Endpoint,
    EndpointSlice,
    object_key,
    read_endpoint_slice,
    read_service,
    ready_endpoints,
)

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
StatusCallback = Callable[[Obj, list[Obj]], None]
"""Called with a Service and the ``status.loadBalancer.ingress`` it should have."""
EventCallback = Callable[[Obj, str, str, str], None]
"""Called with a Service, an event type, a reason and a message."""

READ_SIZE = 65536
MAX_CONNECT_ATTEMPTS = 3
MAX_PENDING_DATAGRAMS = 64
MAX_UDP_FLOWS = 4096  # per listener; datagrams of further new clients are dropped
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
_PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class HostPortsOptions:
    """Where and how the host ports listen. ``host`` is ``--service-host``;
    ``buffer_size`` is each stream's read limit and write-buffer high-water mark."""

    host: str = "127.0.0.1"
    connect_timeout: float = 5.0
    udp_idle_timeout: float = 30.0
    retry_period: float = 10.0
    buffer_size: int = 1 << 20


@dataclass(frozen=True)
class Target:
    """One Service port, as the EndpointSlices name it."""

    namespace: str
    service: str
    port_name: str
    protocol: str

    def __str__(self) -> str:
        name = f"{self.namespace}/{self.service}"
        return (
            f"{name}:{self.port_name}/{self.protocol}"
            if self.port_name
            else f"{name}/{self.protocol}"
        )


@dataclass(frozen=True)
class Binding:
    """A host port one Service wants: ``kind`` is ``NodePort`` or ``LoadBalancer``."""

    protocol: str
    port: int
    target: Target
    kind: str


@dataclass(frozen=True)
class _Service:
    obj: Obj
    order: tuple[str, str, str]
    bindings: tuple[Binding, ...]
    owns_status: bool  # whether this controller decides status.loadBalancer
    load_balancer: bool  # a LoadBalancer Service this controller implements
    affinity_timeout: float | None


def _key(obj: Obj) -> tuple[str, str]:
    return object_key(obj, "default")


def _service_view(obj: Obj) -> _Service:
    svc = read_service(obj, default_namespace="default")
    lb_class = svc.load_balancer_class
    load_balancer = svc.type == LOAD_BALANCER and not lb_class
    bindings: list[Binding] = []
    if svc.type in (NODE_PORT, LOAD_BALANCER):
        for port in svc.ports:
            if port.protocol not in _PROTOCOLS:
                continue
            target = Target(svc.namespace, svc.name, port.name, port.protocol)
            if port.node_port is not None:
                bindings.append(Binding(port.protocol, port.node_port, target, NODE_PORT))
            if load_balancer and port.port is not None:
                bindings.append(Binding(port.protocol, port.port, target, LOAD_BALANCER))
    timeout = svc.affinity_timeout
    return _Service(
        obj=obj,
        order=(svc.created or "9999", svc.namespace, svc.name),
        bindings=tuple(bindings),
        owns_status=not lb_class,
        load_balancer=load_balancer,
        affinity_timeout=float(timeout) if timeout is not None else None,
    )


def advertised_address(host: str) -> str:
    """What ``status.loadBalancer.ingress`` reports for a bind address: the address
    itself, or the loopback address for an unspecified one (0.0.0.0, ::)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return host


def current_ingress(svc: Obj) -> list[Obj]:
    """The Service's ``status.loadBalancer.ingress`` (``[]`` when unset)."""
    status = (svc.get("status") or {}).get("loadBalancer") or {}
    return list(status.get("ingress") or [])


async def publish_status(client: Client, service: Obj, ingress: list[Obj]) -> Obj | None:
    """Set the Service's ``status.loadBalancer.ingress`` (``[]``: remove it) through the
    status subresource with a merge patch; None when it already says so."""
    if current_ingress(service) == ingress:
        return None
    namespace, name = _key(service)
    return await client.patch(
        "v1",
        "services",
        name,
        {"status": {"loadBalancer": {"ingress": ingress or None}}},
        namespace=namespace,
        subresource="status",
    )


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop a client connection with a TCP reset (``SO_LINGER`` 0, then close)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind(host: str, port: int, protocol: str) -> socket.socket:
    """A bound (and for TCP listening) non-blocking socket; raises OSError when taken.
    UDP sockets get no ``SO_REUSEADDR``: on Linux it would let two of them share a port."""
    if protocol == "TCP":
        sock = socket.create_server((host, port), family=_family(host), backlog=512)
    else:
        sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


class HostPorts:
    """The host-port listeners of the cluster's NodePort and LoadBalancer Services.

    ``upsert``/``remove`` (synchronous, for informer handlers) update the model and wake
    the sync loop that :meth:`start` runs; :meth:`sync` reconciles the listeners once.
    ``status`` is called with a Service whose ``status.loadBalancer.ingress`` should
    change; ``event`` with a Service, type, reason and message to record."""

    def __init__(
        self,
        options: HostPortsOptions | None = None,
        *,
        status: StatusCallback | None = None,
        event: EventCallback | None = None,
    ) -> None:
        self.options = options or HostPortsOptions()
        self._status = status
        self._event = event
        self._services: dict[tuple[str, str], _Service] = {}
        self._slices: dict[tuple[str, str], EndpointSlice] = {}
        self._listeners: dict[tuple[str, int], _TcpListener | _UdpListener] = {}
        self._failed: dict[Binding, str] = {}  # reported failures: binding → reason
        self._retry = False  # whether a port could not be bound (retried periodically)
        self._requested: dict[tuple[str, str], tuple[str, list[Obj]]] = {}
        self._turns: dict[Target, int] = {}
        self._sticky: dict[Target, dict[str, tuple[Endpoint, float]]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- model ----------------------------------------------------------------------
    def upsert(self, obj: Obj) -> None:
        """Add or replace a Service or an EndpointSlice (by ``kind``)."""
        kind = obj.get("kind")
        if kind == "Service":
            self._services[_key(obj)] = _service_view(obj)
            self._wake.set()
        elif kind == "EndpointSlice":
            self._slices[_key(obj)] = read_endpoint_slice(obj, default_namespace="default")
        else:
            raise ValueError(f"host ports take Services and EndpointSlices, not {kind!r}")

    def remove(self, obj: Obj) -> None:
        """Forget a Service or an EndpointSlice (by ``kind``; only its name counts)."""
        kind = obj.get("kind")
        if kind == "Service":
            key = _key(obj)
            self._services.pop(key, None)
            self._requested.pop(key, None)
            for state in (self._turns, self._sticky):
                for target in [t for t in state if (t.namespace, t.service) == key]:
                    del state[target]
            self._wake.set()
        elif kind == "EndpointSlice":
            self._slices.pop(_key(obj), None)
        else:
            raise ValueError(f"host ports take Services and EndpointSlices, not {kind!r}")

    def endpoints(self, target: Target) -> tuple[Endpoint, ...]:
        """The ready endpoints of a Service port, sorted, without duplicates."""
        owner = (target.namespace, target.service)
        owned = (sl for sl in self._slices.values() if sl.service == owner)
        return ready_endpoints(owned, target.port_name, target.protocol)

    def candidates(self, target: Target, client: str) -> list[Endpoint]:
        """Endpoints to try for a new connection from ``client``, best first: the
        client's sticky endpoint (ClientIP affinity), else the next in turn; then its
        successors (at most :data:`MAX_CONNECT_ATTEMPTS`)."""
        endpoints = self.endpoints(target)
        if not endpoints:
            return []
        n = len(endpoints)
        svc = self._services.get((target.namespace, target.service))
        if svc is not None and svc.affinity_timeout is not None:
            held = self._sticky.get(target, {}).get(client)
            if held is not None and held[1] > time.monotonic() and held[0] in endpoints:
                start = endpoints.index(held[0])
                return [endpoints[(start + i) % n] for i in range(min(n, MAX_CONNECT_ATTEMPTS))]
        turn = self._turns.get(target, 0)
        self._turns[target] = turn + 1
        return [endpoints[(turn + i) % n] for i in range(min(n, MAX_CONNECT_ATTEMPTS))]

    def connected(self, target: Target, client: str, endpoint: Endpoint) -> None:
        """Record that ``client`` now uses ``endpoint`` (for ClientIP affinity)."""
        svc = self._services.get((target.namespace, target.service))
        if svc is None or svc.affinity_timeout is None:
            return
        now = time.monotonic()
        held = self._sticky.setdefault(target, {})
        if len(held) > 4096:  # forget expired clients now and then
            for ip in [ip for ip, (_, until) in held.items() if until <= now]:
                del held[ip]
        held[client] = (endpoint, now + svc.affinity_timeout)

    @property
    def ports(self) -> dict[tuple[str, int], str]:
        """The bound host ports: (protocol, port) → the Service port they forward to."""
        return {key: str(listener.binding.target) for key, listener in self._listeners.items()}

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Bind what the model wants now, then follow changes in the background."""
        await self.sync()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop following changes and close every listener and relayed connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            listeners = list(self._listeners.values())
            self._listeners = {}
            for listener in listeners:
                await listener.close()

    async def _run(self) -> None:
        while True:
            timeout = self.options.retry_period if self._retry else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            try:
                await self.sync()
            except Exception as exc:  # keep serving; the next change or retry tries again
                log.warning("hostports.sync_failed", error=str(exc))

    async def sync(self) -> None:
        """Open, retarget and close listeners to match the Services; report failures
        and the load-balancer status the Services should have."""
        async with self._lock:
            self._wake.clear()
            wanted: dict[tuple[str, int], Binding] = {}
            conflicts: list[tuple[Binding, str]] = []
            for svc in sorted(self._services.values(), key=lambda s: s.order):
                for binding in svc.bindings:
                    key = (binding.protocol, binding.port)
                    holder = wanted.get(key)
                    if holder is None:
                        wanted[key] = binding
                    elif holder.target != binding.target:  # same target: one listener serves both
                        owner = f"{holder.target.namespace}/{holder.target.service}"
                        conflicts.append((binding, f"already used by Service {owner}"))
            for key in [k for k in self._listeners if wanted.get(k) is None]:
                await self._listeners.pop(key).close()
            failures: dict[Binding, str] = {}
            for key, binding in wanted.items():
                listener = self._listeners.get(key)
                if listener is not None:
                    listener.binding = binding
                    continue
                try:
                    self._listeners[key] = await self._open(binding)
                except OSError as exc:
                    failures[binding] = exc.strerror or str(exc)
            self._retry = bool(failures)
            for binding, reason in conflicts:
                failures[binding] = reason
            self._report(failures)
            self._publish(failures)

    async def _open(self, binding: Binding) -> _TcpListener | _UdpListener:
        sock = _bind(self.options.host, binding.port, binding.protocol)
        listener: _TcpListener | _UdpListener
        if binding.protocol == "TCP":
            listener = _TcpListener(self, binding)
        else:
            listener = _UdpListener(self, binding)
        try:
            await listener.start(sock)
        except BaseException:
            sock.close()
            raise
        log.info(
            "hostports.listening",
            address=f"{self.options.host}:{binding.port}/{binding.protocol}",
            target=str(binding.target),
            kind=binding.kind,
        )
        return listener

    def _report(self, failures: dict[Binding, str]) -> None:
        """One Warning event per new failure (not again while it stays the same)."""
        previous, self._failed = self._failed, dict(failures)
        for binding, reason in failures.items():
            if previous.get(binding) == reason:
                continue
            svc = self._services.get((binding.target.namespace, binding.target.service))
            address = f"{self.options.host}:{binding.port}/{binding.protocol}"
            log.warning(
                "hostports.bind_failed",
                address=address,
                target=str(binding.target),
                error=reason,
            )
            if svc is None or self._event is None:
                continue
            if binding.kind == LOAD_BALANCER:
                message = (
                    f"Error syncing load balancer: cannot listen on {address} for "
                    f"port {binding.target.port_name or binding.port}: {reason}"
                )
                self._event(svc.obj, "Warning", "SyncLoadBalancerFailed", message)
            else:
                message = f"cannot listen on node port {address}: {reason}"
                self._event(svc.obj, "Warning", "NodePortUnavailable", message)

    def _publish(self, failures: dict[Binding, str]) -> None:
        failed = {
            (b.target.namespace, b.target.service) for b in failures if b.kind == LOAD_BALANCER
        }
        address = advertised_address(self.options.host)
        for key, svc in self._services.items():
            if not svc.owns_status:
                continue
            has_lb_ports = any(b.kind == LOAD_BALANCER for b in svc.bindings)
            ready = svc.load_balancer and has_lb_ports and key not in failed
            desired = load_balancer_ingress(address) if ready else []
            if current_ingress(svc.obj) == desired:
                self._requested.pop(key, None)
                continue
            version = str((svc.obj.get("metadata") or {}).get("resourceVersion") or "")
            if self._requested.get(key) == (version, desired):
                continue  # asked already for this version of the Service
            self._requested[key] = (version, desired)
            if self._status is not None:
                self._status(svc.obj, desired)


class _TcpListener:
    """One TCP host port: accepts connections and relays each to an endpoint."""

    def __init__(self, owner: HostPorts, binding: Binding) -> None:
        self.owner = owner
        self.binding = binding
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(
            self._handle, sock=sock, limit=self.owner.options.buffer_size
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:  # closed (Service gone, stop): drop the client too
            writer.transport.abort()
        finally:
            if task is not None:
                self._connections.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        options = self.owner.options
        target = self.binding.target
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for endpoint in self.owner.candidates(target, client):
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection(
                        endpoint.address, endpoint.port, limit=options.buffer_size
                    ),
                    options.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                log.info(
                    "hostports.connect_failed",
                    target=str(target),
                    endpoint=endpoint,
                    error=str(exc),
                )
                continue
            self.owner.connected(target, client, endpoint)
            break
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        for w in (writer, up_writer):
            w.transport.set_write_buffer_limits(high=options.buffer_size)
        try:
            await _pump_both(reader, writer, up_reader, up_writer)
        finally:
            writer.close()
            up_writer.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the sink."""
    while True:
        data = await source.read(READ_SIZE)
        if not data:
            break
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof() and not sink.transport.is_closing():
        sink.write_eof()


async def _pump_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Both directions until both ended; an error in one aborts both connections."""
    tasks = [
        asyncio.create_task(_pump(reader, up_writer)),
        asyncio.create_task(_pump(up_reader, writer)),
    ]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                writer.transport.abort()
                up_writer.transport.abort()
                break
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Flow(asyncio.DatagramProtocol):
    """One UDP client of a listener: a connected socket to its endpoint."""

    def __init__(self, listener: _UdpListener, client: tuple[Any, ...]) -> None:
        self.listener = listener
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.last = time.monotonic()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for data in self.pending:
            self.transport.sendto(data)
        self.pending = []

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.pending) < MAX_PENDING_DATAGRAMS:
            self.pending.append(data)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.last = time.monotonic()
        self.listener.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # E.g. ICMP port unreachable from the endpoint: the next datagram starts afresh.
        self.listener.drop(self.client)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _UdpListener(asyncio.DatagramProtocol):
    """One UDP host port: a flow per client address, closed when idle."""

    def __init__(self, owner: HostPorts, binding: Binding) -> None:
        self.owner = owner
        self.binding = binding
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[Any, ...], _Flow] = {}
        self._connecting: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._schedule_sweep()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            if len(self.flows) >= MAX_UDP_FLOWS:
                return  # too many clients at once: dropped
            target = self.binding.target
            candidates = self.owner.candidates(target, str(addr[0]))
            if not candidates:
                return  # no ready endpoint: dropped
            flow = _Flow(self, addr)
            self.flows[addr] = flow
            task = asyncio.ensure_future(self._connect(flow, candidates[0]))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        flow.send(data)

    async def _connect(self, flow: _Flow, endpoint: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: flow, remote_addr=(endpoint.address, endpoint.port)
            )
        except OSError as exc:
            log.info("hostports.udp_connect_failed", endpoint=endpoint, error=str(exc))
            self.drop(flow.client)
            return
        if flow.closed:  # dropped or closed while connecting
            transport.close()
            return
        self.owner.connected(self.binding.target, str(flow.client[0]), endpoint)

    def reply(self, data: bytes, client: tuple[Any, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, client)

    def drop(self, client: tuple[Any, ...]) -> None:
        flow = self.flows.pop(client, None)
        if flow is not None:
            flow.close()

    def _schedule_sweep(self) -> None:
        delay = max(self.owner.options.udp_idle_timeout / 2, 0.05)
        self._sweeper = asyncio.get_running_loop().call_later(delay, self._sweep)

    def _sweep(self) -> None:
        limit = time.monotonic() - self.owner.options.udp_idle_timeout
        for client in [c for c, f in self.flows.items() if f.last < limit]:
            self.drop(client)
        self._schedule_sweep()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._connecting):
            task.cancel()
        for client in list(self.flows):
            self.drop(client)
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def bind_informers(hostports: HostPorts, *, services: ObjectSource, slices: ObjectSource) -> None:
    """Load ``hostports`` from the informers' caches and keep it current from their
    events."""
    sources = (("Service", services), ("EndpointSlice", slices))
    for kind, source in sources:
        for obj in source.items():
            hostports.upsert(_kinded(kind, obj))

        def upsert(obj: Obj, kind: str = kind) -> None:
            hostports.upsert(_kinded(kind, obj))

        def replace(_old: Obj, new: Obj, kind: str = kind) -> None:
            hostports.upsert(_kinded(kind, new))

        def remove(obj: Obj, kind: str = kind) -> None:
            hostports.remove(_kinded(kind, obj))

        source.on(add=upsert, update=replace, delete=remove)


def _kinded(kind: str, obj: Obj) -> Obj:
    return obj if obj.get("kind") == kind else {**obj, "kind": kind}
