"""Service cluster IPs and node ports: kube-apiserver's ``ipallocator``/``portallocator``
as the Service REST storage uses them, plus the type-dependent field clean-up of the
Service strategy and the ``kubernetes`` Service the API server creates for itself.

Who calls it: :mod:`runtime.api.objects` only — ``ObjectAPI`` owns one
:class:`ServiceAllocator` (configured by ``ApiOptions.service_cidr`` and
``ApiOptions.service_node_port_range``), calls :meth:`ServiceAllocator.allocate` on
every create and update of a Service just before the store write (committing or
reverting the returned :class:`Allocation` with the write), :meth:`ServiceAllocator.release`
after a Service is removed from the store, :func:`prepare_update` before validating an
update, and :func:`kubernetes_service` at start-up.

Semantics (Kubernetes 1.30+, single-stack IPv4):

* The allocation state is not persisted: it is derived from the stored Services the
  first time it is needed (a scan of the store) and kept in memory afterwards. Every
  value is held by the uid of the Service that uses it, so a Service deleted and
  re-created under the same name never frees its successor's values.
* Writes of the object layer happen on one event loop and the store records a write
  synchronously before its first suspension, so allocating right before the store call
  is atomic with respect to other requests: two concurrent creates never see the same
  free IP. Values a write gives up (an update that drops node ports, a delete) are
  released only once the write is committed.
* Dynamic choice, as kube-apiserver's bitmap allocators with the static sub-range: the
  range is split into a lower band (``min(max(16, size/16), 256)`` IPs, or
  ``min(max(16, size/32), 128)`` ports; none when the range has at most 16) kept for
  explicit requests, and a random start in the upper band is scanned forward for the
  first free value; the lower band is only used when the upper one is full. The first
  IP of the CIDR is never picked dynamically except for ``default/kubernetes``.
* A dry-run allocates and gives the values back at once (the response shows them).
* Range exhaustion is kube-apiserver's ``500 InternalError`` ("failed to allocate a
  serviceIP: range is full"); a requested IP or port outside the range or held by
  another Service is a ``422 Invalid`` worded as kube-apiserver words it.

Not supported (refused): IPv6 and dual-stack service CIDRs (the configuration is
rejected), Services asking for the IPv6 family or ``RequireDualStack`` (422 "not
configured on this cluster" / "this cluster is not configured for dual-stack services");
ServiceCIDR/IPAddress objects are not created.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubemodel import errors
from kubemodel.errors import ApiError, Cause
from runtime.api.admission._causes import Go, go_slice, invalid

log = structlog.get_logger(__name__)

SERVICES = "core/services"
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
#: The Service kube-apiserver keeps for itself in ``default``.
KUBERNETES_SERVICE = ("default", "kubernetes")
#: kube-apiserver refuses IPv4 service ranges larger than a /12.
_MIN_PREFIX = 12
_MAX_PREFIX = 30

Obj = dict[str, Any]


class ServiceNetworkError(ValueError):
    """A service CIDR or node-port range that cannot be used (configuration error)."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of node ports (``--service-node-port-range``)."""

    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last


def parse_service_cidr(text: str) -> ipaddress.IPv4Network:
    """``--service-cidr``: an IPv4 network between /12 and /30 (host bits must be zero)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ServiceNetworkError(f"invalid service CIDR {text!r}: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise ServiceNetworkError(
            f"invalid service CIDR {text!r}: only IPv4 service ranges are supported"
        )
    if net.prefixlen < _MIN_PREFIX:
        raise ServiceNetworkError(
            f"invalid service CIDR {text!r}: too large, the mask must be >= /{_MIN_PREFIX}"
        )
    if net.prefixlen > _MAX_PREFIX:
        raise ServiceNetworkError(
            f"invalid service CIDR {text!r}: too small, the mask must be <= /{_MAX_PREFIX}"
        )
    return net


def parse_port_range(text: str) -> PortRange:
    """``--service-node-port-range``: ``first-last``, ``first+count`` or one port."""
    raw = text.strip()
    try:
        if "+" in raw:
            base, _, count = raw.partition("+")
            first, last = int(base), int(base) + int(count)
        elif "-" in raw:
            low, _, high = raw.partition("-")
            first, last = int(low), int(high)
        else:
            first = last = int(raw)
    except ValueError as exc:
        raise ServiceNetworkError(f"invalid node port range {text!r}: {exc}") from exc
    if not 1 <= first <= last <= 65535:
        raise ServiceNetworkError(
            f"invalid node port range {text!r}: need 1 <= first <= last <= 65535"
        )
    return PortRange(first, last)


def _internal(message: str) -> ApiError:
    """kube-apiserver's InternalError (500) for an allocation that cannot be made."""
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def _static_band(size: int, step: int, cap: int) -> int:
    """kube-apiserver's static sub-range: ``min(max(16, size/step), cap)``, none when the
    range holds at most 16 values."""
    if size <= 16:
        return 0
    return min(max(16, size // step), cap)


class _Pool:
    """The values ``0..size-1``, each held by at most one owner (a Service uid)."""

    def __init__(self, size: int, band: int, rng: random.Random) -> None:
        self.size = size
        self.band = min(band, size)
        self._rng = rng
        self._holder: dict[int, str] = {}
        self._lower = 0  # held values below ``band``

    def holder(self, n: int) -> str | None:
        return self._holder.get(n)

    def __len__(self) -> int:
        return len(self._holder)

    def take(self, n: int, owner: str) -> None:
        if n not in self._holder and n < self.band:
            self._lower += 1
        self._holder[n] = owner

    def give_back(self, n: int, owner: str) -> None:
        if self._holder.get(n) == owner:
            del self._holder[n]
            if n < self.band:
                self._lower -= 1

    def _scan(self, start: int, stop: int, skip: frozenset[int]) -> int | None:
        if start >= stop:
            return None
        first = self._rng.randrange(start, stop)
        for n in _wrapped(first, start, stop):
            if n not in self._holder and n not in skip:
                return n
        return None

    def next_free(self, skip: frozenset[int] = frozenset()) -> int | None:
        """A random free value of the upper band, else of the lower band, else None."""
        if len(self._holder) - self._lower < self.size - self.band:
            found = self._scan(self.band, self.size, skip)
            if found is not None:
                return found
        if self._lower < self.band:
            return self._scan(0, self.band, skip)
        return None


def _wrapped(first: int, start: int, stop: int) -> Iterator[int]:
    yield from range(first, stop)
    yield from range(start, first)


# --- what a Service needs --------------------------------------------------------------
def _spec(svc: Obj | None) -> Obj:
    spec = (svc or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _type(spec: Obj) -> str:
    return str(spec.get("type") or "ClusterIP")


def needs_cluster_ip(spec: Obj) -> bool:
    return _type(spec) != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(spec: Obj) -> bool:
    kind = _type(spec)
    if kind == "NodePort":
        return True
    return kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False


def needs_health_check_port(spec: Obj) -> bool:
    return _type(spec) == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _externally_accessible(spec: Obj) -> bool:
    kind = _type(spec)
    return kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _ports(spec: Obj) -> list[Obj]:
    ports = spec.get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def _port_number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _owner(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def _is_kubernetes_service(svc: Obj) -> bool:
    meta = svc.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name")) == KUBERNETES_SERVICE


def prepare_update(new: Obj, old: Obj) -> None:
    """The Service strategy's type-dependent clean-up on update (before validation):
    fields the new type does not use are dropped when the update left them as they were
    (a patch that only changes ``type``), so ``NodePort`` → ``ClusterIP`` clears the node
    ports and ``ClusterIP`` → ``ExternalName`` the cluster IPs."""
    spec, old_spec = new.get("spec"), _spec(old)
    if not isinstance(spec, dict):
        return

    def same(key: str) -> bool:
        return spec.get(key) == old_spec.get(key)

    if needs_cluster_ip(old_spec) and _type(spec) == "ExternalName":
        if same("clusterIP") and same("clusterIPs"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if same(key):
                spec.pop(key, None)
    if needs_node_ports(old_spec) and not needs_node_ports(spec):
        old_ports = [_port_number(p.get("nodePort")) for p in _ports(old_spec)]
        if [_port_number(p.get("nodePort")) for p in _ports(spec)] == old_ports:
            for port in _ports(spec):
                port.pop("nodePort", None)
    hc_dropped = needs_health_check_port(old_spec) and not needs_health_check_port(spec)
    if hc_dropped and same("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if _type(spec) != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if key in old_spec and same(key):
                spec.pop(key, None)
    etp = "externalTrafficPolicy"
    if not _externally_accessible(spec) and etp in old_spec and same(etp):
        spec.pop("externalTrafficPolicy", None)


def kubernetes_service(cidr: ipaddress.IPv4Network, target_port: int) -> Obj:
    """The ``kubernetes`` Service of ``default`` as kube-apiserver creates it: the first
    IP of the service range, port 443 to the API server's secure port."""
    first = str(cidr.network_address + 1)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBERNETES_SERVICE[1],
            "namespace": KUBERNETES_SERVICE[0],
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": first,
            "clusterIPs": [first],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}],
            "sessionAffinity": "None",
        },
    }


# --- allocation --------------------------------------------------------------------------
@dataclass
class Allocation:
    """What one write of a Service took and gives up; :meth:`commit` once the write is
    stored, :meth:`revert` when it failed or was a dry run."""

    allocator: ServiceAllocator
    owner: str
    taken_ips: list[int] = field(default_factory=list)
    taken_ports: list[int] = field(default_factory=list)
    freed_ips: list[int] = field(default_factory=list)
    freed_ports: list[int] = field(default_factory=list)
    # What the stored Service (of an update) holds: kept as they are, even when outside
    # a range that changed since they were allocated.
    old_ips: frozenset[str] = frozenset()
    old_ports: frozenset[int] = frozenset()

    def commit(self) -> None:
        for n in self.freed_ips:
            self.allocator.ips.give_back(n, self.owner)
        for port in self.freed_ports:
            self.allocator.release_port(port, self.owner)
        self.freed_ips, self.freed_ports, self.taken_ips, self.taken_ports = [], [], [], []

    def revert(self) -> None:
        for n in self.taken_ips:
            self.allocator.ips.give_back(n, self.owner)
        for port in self.taken_ports:
            self.allocator.release_port(port, self.owner)
        self.freed_ips, self.freed_ports, self.taken_ips, self.taken_ports = [], [], [], []


class ServiceAllocator:
    """Cluster IPs of one IPv4 service CIDR and node ports of one range, held by Service
    uids. ``services`` lists the stored Services; it is read once, on first use."""

    def __init__(
        self,
        cidr: ipaddress.IPv4Network,
        node_ports: PortRange,
        services: Callable[[], Iterable[Obj]],
        rng: random.Random | None = None,
    ) -> None:
        self.cidr = cidr
        self.node_ports = node_ports
        self._rng = rng or random.Random()
        self._services = services
        self._loaded = False
        # Offsets from the network address + 1: the network and broadcast addresses are
        # never allocatable.
        size = cidr.num_addresses - 2
        self.ips = _Pool(size, _static_band(cidr.num_addresses, 16, 256), self._rng)
        self.ports = _Pool(node_ports.size, _static_band(node_ports.size, 32, 128), self._rng)

    # --- state -------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Rebuild the state from the stored Services (once); the conflicts found (two
        Services with one IP or node port) are logged and returned."""
        if self._loaded:
            return []
        self._loaded = True
        conflicts: list[str] = []
        for svc in self._services():
            owner = _owner(svc)
            meta = svc.get("metadata") or {}
            who = f"{meta.get('namespace')}/{meta.get('name')}"
            for n in self._held_ips(svc):
                if self.ips.holder(n) not in (None, owner):
                    conflicts.append(f"{who}: cluster IP {self._ip(n)} is used twice")
                else:
                    self.ips.take(n, owner)
            for port in self._held_ports(svc):
                n = port - self.node_ports.first
                if self.ports.holder(n) not in (None, owner):
                    conflicts.append(f"{who}: node port {port} is used twice")
                else:
                    self.ports.take(n, owner)
        for conflict in conflicts:
            log.warning("services.allocation_conflict", conflict=conflict)
        return conflicts

    def ip_holder(self, ip: str) -> str | None:
        """The uid of the Service holding ``ip`` (None: free or outside the range)."""
        self.load()
        n = self._offset(ip)
        return None if n is None else self.ips.holder(n)

    def port_holder(self, port: int) -> str | None:
        self.load()
        if port not in self.node_ports:
            return None
        return self.ports.holder(port - self.node_ports.first)

    def release_port(self, port: int, owner: str) -> None:
        if port in self.node_ports:
            self.ports.give_back(port - self.node_ports.first, owner)

    def release(self, svc: Obj) -> None:
        """Give back everything a removed Service held."""
        self.load()
        owner = _owner(svc)
        for n in self._held_ips(svc):
            self.ips.give_back(n, owner)
        for port in self._held_ports(svc):
            self.release_port(port, owner)

    # --- helpers -----------------------------------------------------------------------
    def _ip(self, n: int) -> str:
        return str(self.cidr.network_address + 1 + n)

    def _offset(self, ip: str) -> int | None:
        """The pool offset of ``ip``; None when it is not an allocatable IP of the range."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if not isinstance(addr, ipaddress.IPv4Address) or addr not in self.cidr:
            return None
        n = int(addr) - int(self.cidr.network_address) - 1
        return n if 0 <= n < self.ips.size else None

    def _held_ips(self, svc: Obj) -> list[int]:
        spec = _spec(svc)
        if not needs_cluster_ip(spec):
            return []
        ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
        found = [self._offset(ip) for ip in ips if isinstance(ip, str)]
        return [n for n in found if n is not None]

    def _held_ports(self, svc: Obj) -> list[int]:
        spec = _spec(svc)
        kind = _type(spec)
        ports: set[int] = set()
        if kind in ("NodePort", "LoadBalancer"):
            ports.update(_port_number(p.get("nodePort")) for p in _ports(spec))
        if needs_health_check_port(spec):
            ports.add(_port_number(spec.get("healthCheckNodePort")))
        ports.discard(0)
        return sorted(ports)

    def _range_text(self) -> str:
        return str(self.cidr)

    # --- allocate ----------------------------------------------------------------------
    def allocate(self, svc: Obj, old: Obj | None) -> Allocation:
        """Fill in and reserve ``svc``'s cluster IP, node ports and health-check node port
        (``old``: the stored Service of an update). Raises :class:`ApiError` (422 for a
        requested value that cannot be had, 500 when a range is full)."""
        self.load()
        spec = svc.get("spec")
        allocation = Allocation(self, _owner(svc))
        if old is not None:
            old_spec = _spec(old)
            if needs_cluster_ip(old_spec):
                ips = old_spec.get("clusterIPs") or [old_spec.get("clusterIP")]
                allocation.old_ips = frozenset(ip for ip in ips if isinstance(ip, str))
            allocation.old_ports = frozenset(self._held_ports(old))
        if not isinstance(spec, dict):
            return allocation
        name = str((svc.get("metadata") or {}).get("name") or "")
        self._check_families(spec, name)
        try:
            self._allocate_ip(svc, spec, name, allocation)
            self._allocate_node_ports(spec, name, allocation)
            self._allocate_health_check_port(spec, allocation)
        except ApiError:
            allocation.revert()
            raise
        if old is not None:
            kept_ips, kept_ports = set(self._held_ips(svc)), set(self._held_ports(svc))
            allocation.freed_ips = [n for n in self._held_ips(old) if n not in kept_ips]
            allocation.freed_ports = [p for p in self._held_ports(old) if p not in kept_ports]
        return allocation

    def _check_families(self, spec: Obj, name: str) -> None:
        if spec.get("clusterIP") == "None" and not spec.get("selector"):
            return  # headless without selector: families are informational
        if _type(spec) == "ExternalName":
            return
        causes: list[Cause] = []
        if spec.get("ipFamilyPolicy") == "RequireDualStack":
            causes.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    "RequireDualStack",
                    "this cluster is not configured for dual-stack services",
                )
            )
        families = spec.get("ipFamilies")
        for i, family in enumerate(families if isinstance(families, list) else []):
            if family != "IPv4":
                causes.append(
                    invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
                )
        if causes:
            raise errors.invalid_object("", "Service", name, causes)

    def _allocate_ip(self, svc: Obj, spec: Obj, name: str, allocation: Allocation) -> None:
        if not needs_cluster_ip(spec):
            return
        owner = allocation.owner
        requested = spec.get("clusterIP")
        if requested:
            ip = str(requested)
            if ip in allocation.old_ips:
                return
            n = self._offset(ip)
            if n is not None and self.ips.holder(n) == owner:
                return  # kept from the stored Service
            if n is None:
                detail = (
                    f"the provided IP ({ip}) is not in the valid range. "
                    f"The range of valid IPs is {self._range_text()}"
                )
            elif self.ips.holder(n) is not None:
                detail = "provided IP is already allocated"
            else:
                self.ips.take(n, owner)
                allocation.taken_ips.append(n)
                return
            ips = spec.get("clusterIPs")
            cause = invalid(
                "spec.clusterIPs",
                Go(go_slice(ips if isinstance(ips, list) else [ip])),
                f"failed to allocate IP {ip}: {detail}",
            )
            raise errors.invalid_object("", "Service", name, [cause])
        n_free: int | None = None
        if _is_kubernetes_service(svc) and self.ips.size and self.ips.holder(0) is None:
            n_free = 0
        else:
            n_free = self.ips.next_free(skip=frozenset({0}))
        if n_free is None:
            raise _internal("failed to allocate a serviceIP: range is full")
        self.ips.take(n_free, owner)
        allocation.taken_ips.append(n_free)
        ip = self._ip(n_free)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
        if not spec.get("ipFamilyPolicy"):
            spec["ipFamilyPolicy"] = "SingleStack"

    def _claim_port(self, port: int, allocation: Allocation) -> str | None:
        """Reserve a requested node port (kept when the Service holds it already); what
        stands in the way, worded as kube-apiserver's port allocator, or None."""
        if port in allocation.old_ports:
            return None
        if port not in self.node_ports:
            return (
                "provided port is not in the valid range. "
                f"The range of valid ports is {self.node_ports}"
            )
        n = port - self.node_ports.first
        holder = self.ports.holder(n)
        if holder is None:
            self.ports.take(n, allocation.owner)
            allocation.taken_ports.append(port)
        elif holder != allocation.owner:
            return "provided port is already allocated"
        return None

    def _take_port(self, port: int, allocation: Allocation, path: str, name: str) -> None:
        problem = self._claim_port(port, allocation)
        if problem is not None:
            raise errors.invalid_object("", "Service", name, [invalid(path, port, problem)])

    def _next_port(self, allocation: Allocation, what: str) -> int:
        n = self.ports.next_free()
        if n is None:
            raise _internal(f"failed to allocate a {what}: range is full")
        self.ports.take(n, allocation.owner)
        port = self.node_ports.first + n
        allocation.taken_ports.append(port)
        return port

    def _allocate_node_ports(self, spec: Obj, name: str, allocation: Allocation) -> None:
        kind = _type(spec)
        if kind not in ("NodePort", "LoadBalancer"):
            return
        dynamic = needs_node_ports(spec)
        ports = _ports(spec)
        # Ports with one port number share one node port (a TCP and a UDP port 53).
        by_number: dict[int, int] = {}
        for port in ports:
            wanted = _port_number(port.get("nodePort"))
            if wanted:
                by_number.setdefault(_port_number(port.get("port")), wanted)
        for i, port in enumerate(ports):
            wanted = _port_number(port.get("nodePort"))
            number = _port_number(port.get("port"))
            if wanted:
                self._take_port(wanted, allocation, f"spec.ports[{i}].nodePort", name)
                continue
            if not dynamic:
                continue
            shared = by_number.get(number)
            if shared:
                self._take_port(shared, allocation, f"spec.ports[{i}].nodePort", name)
                port["nodePort"] = shared
                continue
            chosen = self._next_port(allocation, "nodePort")
            by_number[number] = chosen
            port["nodePort"] = chosen

    def _allocate_health_check_port(self, spec: Obj, allocation: Allocation) -> None:
        if not needs_health_check_port(spec):
            return
        wanted = _port_number(spec.get("healthCheckNodePort"))
        if not wanted:
            spec["healthCheckNodePort"] = self._next_port(allocation, "HealthCheck NodePort 0")
            return
        problem = self._claim_port(wanted, allocation)
        if problem is not None:
            raise _internal(
                f"failed to allocate requested HealthCheck NodePort {wanted}: {problem}"
            )
