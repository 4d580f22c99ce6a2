"""The one reader of Kubernetes Services and ``discovery.k8s.io/v1`` EndpointSlices for the
built-in cluster's networking: plain object dicts in, frozen dataclasses out, with every
field the network parts act on read, typed and checked in one place (ports are port
numbers or None, protocols upper case, addresses canonical, the ClientIP affinity timeout
defaulted).

Who calls it: the service proxy (:mod:`runtime.network.proxy`), the cluster DNS server
(:mod:`runtime.network.dns`), the NodePort/LoadBalancer relays
(:mod:`runtime.network.hostports`) and the ingress router (:mod:`runtime.network.ingress`).
Each reads the objects its informers deliver with :func:`read_service` and
:func:`read_endpoint_slice` and derives its own view from the result (the proxy keeps
IPv4 only, DNS lower-cases port names for SRV labels, …); :func:`ready_addresses` is the
endpoint lookup the proxy, the relays and the ingress router share.

Nothing is rejected here: the API server validates these objects, and a field that is
missing or unusable anyway reads as None or empty, so a consumer skips that part (one
port, one address) rather than the whole object.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label naming the Service an EndpointSlice belongs to."""
DEFAULT_AFFINITY_TIMEOUT = 10800
"""``sessionAffinityConfig.clientIP.timeoutSeconds`` when ClientIP affinity has none."""
IP_ADDRESS_TYPES = ("IPv4", "IPv6")
"""The EndpointSlice ``addressType`` values whose endpoints are IP addresses."""


# --- small helpers ----------------------------------------------------------------------
def object_key(obj: Obj, default_namespace: str = "") -> tuple[str, str]:
    """``(namespace, name)`` of an object; ``default_namespace`` stands in for a missing
    namespace and ``""`` for a missing name."""
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace") or default_namespace), str(meta.get("name") or "")


def canonical_ip(value: Any) -> str | None:
    """The address in ``value`` in its canonical text form (IPv6 compressed, lower
    case, without a ``%zone``), or None when it is no IP address."""
    try:
        return str(ipaddress.ip_address(str(value).split("%", 1)[0]))
    except ValueError:
        return None


def address_type(ip: str) -> str:
    """``IPv4`` or ``IPv6``: the EndpointSlice address type of a canonical address."""
    return "IPv6" if ":" in ip else "IPv4"


def valid_port(value: Any) -> int | None:
    """``value`` when it is a port number (an integer from 1 to 65535), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    return None


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _name(raw: Obj) -> str:
    return str(raw.get("name") or "")


def _protocol(raw: Obj) -> str:
    return str(raw.get("protocol") or "TCP").upper()


# --- Services ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ServicePort:
    """One entry of ``spec.ports``. ``name`` is ``""`` when unnamed; ``port`` and
    ``node_port`` are None unless they are port numbers; ``protocol`` is upper case
    (``TCP`` when missing); ``target_port`` is a number, a name, or None when unset."""

    name: str
    port: int | None
    protocol: str
    node_port: int | None
    target_port: int | str | None


@dataclass(frozen=True)
class Service:
    """A Service as the network parts see it.

    ``type`` is ``ClusterIP`` when missing. ``cluster_ips`` are the valid addresses of
    ``clusterIPs`` (else ``clusterIP``), canonical, of either family, as written whatever
    the type. ``headless`` is ``clusterIP: None`` on a Service that is not an
    ExternalName one; ``external_name`` is ``spec.externalName`` of an ExternalName
    Service (None otherwise or when empty). ``affinity_timeout`` is None without
    ``sessionAffinity: ClientIP``, else ``sessionAffinityConfig.clientIP.timeoutSeconds``
    when that is a positive integer and :data:`DEFAULT_AFFINITY_TIMEOUT` when not.
    ``created`` is ``metadata.creationTimestamp`` as written (``""`` when missing)."""

    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    headless: bool
    external_name: str | None
    ports: tuple[ServicePort, ...]
    affinity_timeout: int | None
    publish_not_ready: bool
    load_balancer_class: str | None
    created: str

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def _target_port(value: Any) -> int | str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value) if isinstance(value, str) and value else None


def _affinity_timeout(spec: Obj) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP"))
    seconds = config.get("timeoutSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return seconds
    return DEFAULT_AFFINITY_TIMEOUT


def read_service(obj: Obj, *, default_namespace: str = "") -> Service:
    """Read a Service dict (``default_namespace`` for one without a namespace)."""
    namespace, name = object_key(obj, default_namespace)
    spec = _dict(obj.get("spec"))
    kind = str(spec.get("type") or "ClusterIP")
    external = spec.get("externalName") if kind == "ExternalName" else None
    raw_ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    ips = (canonical_ip(v) for v in (raw_ips if isinstance(raw_ips, list) else []))
    lb_class = spec.get("loadBalancerClass")
    return Service(
        namespace=namespace,
        name=name,
        type=kind,
        cluster_ips=tuple(ip for ip in ips if ip is not None),
        headless=spec.get("clusterIP") == "None" and not external,
        external_name=str(external) if external else None,
        ports=tuple(
            ServicePort(
                name=_name(raw),
                port=valid_port(raw.get("port")),
                protocol=_protocol(raw),
                node_port=valid_port(raw.get("nodePort")),
                target_port=_target_port(raw.get("targetPort")),
            )
            for raw in _dicts(spec.get("ports"))
        ),
        affinity_timeout=_affinity_timeout(spec),
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
        load_balancer_class=str(lb_class) if lb_class else None,
        created=str(_dict(obj.get("metadata")).get("creationTimestamp") or ""),
    )


# --- EndpointSlices ---------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointPort:
    """One entry of an EndpointSlice's ``ports``: ``name`` ``""`` when unnamed, ``port``
    None unless a port number, ``protocol`` upper case (``TCP`` when missing)."""

    name: str
    port: int | None
    protocol: str


@dataclass(frozen=True)
class SliceEndpoint:
    """One entry of an EndpointSlice's ``endpoints``. ``addresses`` are the valid IP
    addresses, canonical, in their order (none for FQDN slices). The conditions read as
    the API documents their absence: ``ready`` unless ``ready`` is false, ``serving`` as
    ``ready`` when unset, ``terminating`` only when true."""

    addresses: tuple[str, ...]
    hostname: str | None
    ready: bool
    serving: bool
    terminating: bool

    @property
    def address(self) -> str | None:
        """The first address: the one consumers that use a single address take."""
        return self.addresses[0] if self.addresses else None


@dataclass(frozen=True)
class EndpointSlice:
    """An EndpointSlice. ``service`` is ``(namespace, service name)`` from the
    :data:`SERVICE_NAME_LABEL` label (None without it); ``address_type`` is
    ``addressType`` as written (``""`` when missing)."""

    namespace: str
    name: str
    service: tuple[str, str] | None
    address_type: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[SliceEndpoint, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def _endpoint(raw: Obj) -> SliceEndpoint:
    conditions = _dict(raw.get("conditions"))
    ready = conditions.get("ready") is not False
    serving = conditions.get("serving")
    addresses = (canonical_ip(a) for a in raw.get("addresses") or ())
    hostname = raw.get("hostname")
    return SliceEndpoint(
        addresses=tuple(a for a in addresses if a is not None),
        hostname=str(hostname) if hostname else None,
        ready=ready,
        serving=serving if isinstance(serving, bool) else ready,
        terminating=conditions.get("terminating") is True,
    )


def read_endpoint_slice(obj: Obj, *, default_namespace: str = "") -> EndpointSlice:
    """Read an EndpointSlice dict (``default_namespace`` for one without a namespace;
    its owner Service is taken to be in the same namespace)."""
    namespace, name = object_key(obj, default_namespace)
    service = _dict(_dict(obj.get("metadata")).get("labels")).get(SERVICE_NAME_LABEL)
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service=(namespace, str(service)) if service else None,
        address_type=str(obj.get("addressType") or ""),
        ports=tuple(
            EndpointPort(_name(raw), valid_port(raw.get("port")), _protocol(raw))
            for raw in _dicts(obj.get("ports"))
        ),
        endpoints=tuple(_endpoint(raw) for raw in _dicts(obj.get("endpoints"))),
    )


def ready_addresses(
    slices: Iterable[EndpointSlice],
    port_name: str,
    protocol: str,
    *,
    address_types: Collection[str] = IP_ADDRESS_TYPES,
) -> set[tuple[str, int]]:
    """``(address, port)`` of the ready endpoints of one Service port across ``slices``:
    for each slice port named ``port_name`` (``""``: the unnamed one) with ``protocol``,
    the first address of every ready endpoint, when that address is of the slice's
    address type. Slices whose address type (IPv4 when missing) is not in
    ``address_types`` count for nothing. The caller picks the slices (by owner)."""
    found: set[tuple[str, int]] = set()
    for sl in slices:
        kind = sl.address_type or "IPv4"
        if kind not in address_types:
            continue
        ports = [
            p.port
            for p in sl.ports
            if p.port is not None and p.name == port_name and p.protocol == protocol
        ]
        if not ports:
            continue
        for ep in sl.endpoints:
            address = ep.address
            if ep.ready and address is not None and address_type(address) == kind:
                found.update((address, port) for port in ports)
    return found


@dataclass(frozen=True, order=True)
class Endpoint:
    """One ready backend of a Service port: an address and the port to connect to (what
    the host ports and the ingress relay to)."""

    address: str
    port: int

    @property
    def netloc(self) -> str:
        """``address:port``, the IPv6 address in brackets."""
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


def ready_endpoints(
    slices: Iterable[EndpointSlice],
    port_name: str,
    protocol: str,
    *,
    address_types: Collection[str] = IP_ADDRESS_TYPES,
) -> tuple[Endpoint, ...]:
    """:func:`ready_addresses` as sorted :class:`Endpoint` values."""
    found = ready_addresses(slices, port_name, protocol, address_types=address_types)
    return tuple(Endpoint(address, port) for address, port in sorted(found))
