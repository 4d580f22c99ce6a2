"""The built-in cluster's DNS server: answers the Kubernetes DNS-Based Service Discovery
names from Services, EndpointSlices and pods, and forwards every other name upstream —
what CoreDNS's ``kubernetes`` plugin (``pods insecure``, ``fallthrough in-addr.arpa
ip6.arpa``) followed by ``forward . /etc/resolv.conf`` does in a real cluster.

Who uses it: the process that runs the built-in cluster builds a :class:`ClusterRecords`
from its Service, EndpointSlice and Pod informers (:meth:`ClusterRecords.from_informers`)
and serves it with a :class:`DnsServer`; kubelets point pods' ``resolv.conf`` at it.

Two layers:

* :class:`ClusterRecords` is the name → records model, pure and synchronous: objects go in
  through ``upsert_*``/``delete_*`` (informer handlers), questions come out as
  :class:`Answer` values of plain :class:`Record` tuples. Every lookup is a few dict
  look-ups; every update touches only the object's own entries (a headless Service's
  endpoint view is rebuilt lazily, on the first query after one of its slices changed).
* :class:`DnsServer` speaks the wire protocol (via ``dnslib``) over UDP and TCP on every
  listen address, answers cluster names from the model and forwards the rest.

Names answered (``<zone>`` is the cluster domain, ``cluster.local`` by default):

* ``<svc>.<ns>.svc.<zone>`` A/AAAA: the Service's cluster IPs by family; for a headless
  Service (``clusterIP: None``) the addresses of its ready endpoints (EndpointSlices
  labelled ``kubernetes.io/service-name``; ``conditions.ready`` missing counts as ready;
  with ``publishNotReadyAddresses`` every endpoint). A headless Service without ready
  endpoints is NOERROR/NODATA, as CoreDNS without ``ignore empty_service``.
* ``<hostname>.<svc>.<ns>.svc.<zone>`` A/AAAA for headless Services: the endpoint's
  ``hostname`` (StatefulSet pods ``web-0``), or its address with ``.``/``:`` turned into
  ``-`` when it has none.
* ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV for named ports: one record to
  ``<svc>.<ns>.svc.<zone>`` for a normal Service (its addresses as additional records),
  one per ready endpoint for a headless one (to the endpoint name above, port from the
  endpoint's slice, A/AAAA records as additional). Priority 0, weight ``100 // n`` for
  ``n`` records, as CoreDNS.
* ExternalName Services: a CNAME to ``spec.externalName``, followed — as CoreDNS does,
  since pods' stub resolvers (glibc, musl, busybox) do not chase CNAMEs themselves — by
  the target's records: a target in the cluster domain is resolved here for every type
  (a CNAME chain through further ExternalNames, cut after ``MAX_CNAME_DEPTH`` + 1 = 9
  CNAMEs, so that two ExternalNames naming each other end in CNAMEs instead of
  looping); a target outside it is resolved through the upstreams (the forwarding
  below) for A, AAAA and ANY questions, and the upstream's answer records (its own
  CNAMEs included, TTLs as received) follow our CNAME.
  When no upstream answers in time (or one answers with an error) the reply is our CNAME
  alone with NOERROR — never SERVFAIL for the cluster's part; the upstream's NXDOMAIN is
  not copied (the asked name exists), as CoreDNS. A CNAME question gets the CNAME only;
  other types (TXT, MX, …) get the CNAME without an outside lookup.
* ``<a-b-c-d>.<ns>.pod.<zone>`` A (and dashed IPv6 AAAA): the address in the name, not
  checked against pods (``pods insecure``).
* PTR for ``in-addr.arpa``/``ip6.arpa`` names of cluster IPs (→ the Service name),
  headless endpoint addresses (→ the endpoint name) and pod IPs (→ the pod name
  ``<dashed-ip>.<ns>.pod.<zone>``); other reverse names are forwarded.
* The zone apex: SOA and NS (``ns.dns.<zone>``).
* NXDOMAIN (with the zone's SOA in authority) for names in the zone that do not exist —
  including search-path accidents such as ``web.default.svc.cluster.local.default.svc.
  cluster.local``, answered at once, never forwarded; NOERROR/NODATA (SOA in authority)
  for existing names (including empty non-terminals ``svc.<zone>``, ``<ns>.svc.<zone>``
  of a namespace with Services) asked for a type they lack.

TTL: 5 s for every cluster record and as the SOA minimum (negative-caching TTL) — the
default of CoreDNS's ``kubernetes`` plugin ("The default is 5 seconds"; kubeadm's Corefile
sets ``ttl 30``). Configurable through :attr:`DnsOptions.ttl`.

Forwarding: names outside the zone go to the upstream resolvers (default: the
``nameserver`` lines of the host's ``/etc/resolv.conf``, less any address this server
listens on), in order, each tried once over UDP with a fresh random query ID and retried
over TCP when the UDP answer is truncated; SERVFAIL when none answers within
:attr:`DnsOptions.forward_timeout`. Upstream answers are passed through unchanged except
for the ID (and truncation to the client's UDP size). An ExternalName's outside target is
asked the same way (a plain query for the target, no EDNS), and the combined reply is
truncated for UDP like any other.

Not supported (deliberately): wildcard queries (``*`` is an ordinary label, so
NXDOMAIN), ``pods verified``/``pods disabled`` modes, ExternalName SRV records, zone
transfers (AXFR/IXFR get NODATA), caching of forwarded answers, DNSSEC. Queries other
than opcode QUERY get NOTIMP; malformed ones or ones with more than one question FORMERR;
non-IN classes for cluster names REFUSED.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog
from dnslib import (  # type: ignore[import-untyped, unused-ignore]
    AAAA,
    CLASS,
    CNAME,
    EDNS0,
    NS,
    PTR,
    QTYPE,
    RR,
    SOA,
    SRV,
    A,
    DNSHeader,
    DNSRecord,
)

from runtime.network.objects import (
    IP_ADDRESS_TYPES,
    EndpointPort,
    Service,
    ServicePort,
    SliceEndpoint,
    canonical_ip,
    object_key,
    read_endpoint_slice,
    read_service,
)

if TYPE_CHECKING:
    from kubeclient.informer import Informer

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
Rcode = Literal["NOERROR", "NXDOMAIN"]
Address = tuple[str, int]

MAX_CNAME_DEPTH = 8
#: Question types whose ExternalName answers carry the target's records (as CoreDNS's
#: A/AAAA handling; ANY because the in-cluster chase already answers it with every type).
_CHASED_TYPES = frozenset({"A", "AAAA", "ANY"})
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
_RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
_UDP_DEFAULT, _UDP_MAX, _EDNS_ADVERTISED = 512, 4096, 1232
_TCP_IDLE_TIMEOUT = 10.0


# --- the model's output ---------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One resource record in presentation form: ``data`` is the RDATA as in a zone file
    (an address, a target name with trailing dot, ``"<prio> <weight> <port> <target>"``
    for SRV, ``"<mname> <rname> <serial> <refresh> <retry> <expire> <minimum>"`` for SOA)."""

    name: str
    rtype: str
    ttl: int
    data: str


@dataclass(frozen=True)
class Answer:
    """The model's answer to one question. ``forward`` means the name is not the cluster's:
    the server must ask upstream (the other fields are then empty). ``chase`` is set when
    an A/AAAA/ANY answer is a CNAME chain (ExternalName Services) ending at a name outside
    the cluster: the server resolves that name upstream for the asked type and appends
    the upstream's answer records after ``answers`` (which are complete without them)."""

    rcode: Rcode = "NOERROR"
    answers: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    forward: bool = False
    chase: str | None = None


# --- the model's input, parsed ----------------------------------------------------------
@dataclass(frozen=True)
class _Port:
    name: str
    protocol: str  # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True)
class _Service:
    """A Service as DNS answers it: as read, the addresses its own name has (none for
    headless and ExternalName Services) and its named ports as SRV labels."""

    info: Service
    cluster_ips: tuple[str, ...]
    ports: tuple[_Port, ...]


@dataclass(frozen=True)
class _Slice:
    service: tuple[str, str] | None  # (namespace, service name)
    endpoints: tuple[SliceEndpoint, ...]  # none unless the slice's addresses are IPs
    ports: tuple[_Port, ...]


@dataclass(frozen=True)
class _Target:
    """One address of a headless Service's published endpoint."""

    label: str  # the endpoint's DNS label: hostname or dashed address
    address: str
    ports: tuple[_Port, ...]


@dataclass
class _HeadlessView:
    targets: list[_Target] = field(default_factory=list)
    by_label: dict[str, list[_Target]] = field(default_factory=dict)


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _undashed(label: str) -> str | None:
    """The address a dashed pod label names (``10-1-2-3``, ``fd00--1``), or None."""
    if label.count("-") == 3:
        ip = canonical_ip(label.replace("-", "."))
        if ip is not None and ":" not in ip:
            return ip
    ip = canonical_ip(label.replace("-", ":"))
    return ip if ip is not None and ":" in ip else None


def _srv_ports(ports: Iterable[ServicePort | EndpointPort]) -> tuple[_Port, ...]:
    """The named ports with a port number; name and protocol lower case (SRV labels)."""
    return tuple(
        _Port(p.name.lower(), p.protocol.lower(), p.port)
        for p in ports
        if p.name and p.port is not None
    )


def _service_view(obj: Obj) -> _Service:
    svc = read_service(obj)
    addressed = not svc.headless and svc.external_name is None
    return _Service(svc, svc.cluster_ips if addressed else (), _srv_ports(svc.ports))


def _slice_view(obj: Obj) -> _Slice:
    sl = read_endpoint_slice(obj)
    endpoints = sl.endpoints if sl.address_type in IP_ADDRESS_TYPES else ()
    return _Slice(sl.service, endpoints, _srv_ports(sl.ports))


def _label(ep: SliceEndpoint, address: str) -> str:
    """An endpoint's DNS label: its hostname (lower case), else its dashed address."""
    return ep.hostname.lower() if ep.hostname else _dashed(address)


def _pod_ips(pod: Obj) -> tuple[str, ...]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return ()  # the node's address, or released
    raw = [p.get("ip") for p in status.get("podIPs") or () if isinstance(p, dict)]
    if not raw and status.get("podIP"):
        raw = [status["podIP"]]
    return tuple(filter(None, map(canonical_ip, raw)))


def _reverse_ip(name: str) -> str | None:
    """The address an ``in-addr.arpa``/``ip6.arpa`` name (lower case, no dot) stands for."""
    if name.endswith(".in-addr.arpa"):
        octets = name.removesuffix(".in-addr.arpa").split(".")
        return canonical_ip(".".join(reversed(octets))) if len(octets) == 4 else None
    if name.endswith(".ip6.arpa"):
        nibbles = name.removesuffix(".ip6.arpa").split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        digits = "".join(reversed(nibbles))
        return canonical_ip(":".join(digits[i : i + 4] for i in range(0, 32, 4)))
    return None


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _index_add(index: dict[str, set[tuple[str, str]]], ips: Iterable[str], key: Any) -> None:
    for ip in ips:
        index.setdefault(ip, set()).add(key)


def _index_remove(index: dict[str, set[tuple[str, str]]], ips: Iterable[str], key: Any) -> None:
    for ip in ips:
        keys = index.get(ip)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del index[ip]


# --- the model ------------------------------------------------------------------------
class ClusterRecords:
    """The cluster zone: Services, EndpointSlices and pods indexed by the names and
    addresses DNS asks for. Not thread-safe; call it from the event loop that feeds it."""

    def __init__(self, domain: str = "cluster.local", *, ttl: int = 5) -> None:
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self.serial = int(time.time())  # SOA serial: when this model was created
        self._services: dict[tuple[str, str], _Service] = {}
        self._namespace_services: dict[str, int] = {}
        self._slices: dict[tuple[str, str], _Slice] = {}
        self._service_slices: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._views: dict[tuple[str, str], _HeadlessView] = {}
        self._pods: dict[tuple[str, str], tuple[str, ...]] = {}
        self._ip_services: dict[str, set[tuple[str, str]]] = {}
        self._ip_slices: dict[str, set[tuple[str, str]]] = {}
        self._ip_pods: dict[str, set[tuple[str, str]]] = {}

    @classmethod
    def from_informers(
        cls,
        services: Informer,
        slices: Informer,
        pods: Informer,
        domain: str = "cluster.local",
    ) -> ClusterRecords:
        """A model loaded with the informers' current contents and kept current by their
        events (register before or after sync: both work)."""
        records = cls(domain)
        for svc in services.items():
            records.upsert_service(svc)
        for eps in slices.items():
            records.upsert_slice(eps)
        for pod in pods.items():
            records.upsert_pod(pod)
        services.on(
            add=records.upsert_service,
            update=lambda _old, new: records.upsert_service(new),
            delete=records.delete_service,
        )
        slices.on(
            add=records.upsert_slice,
            update=lambda _old, new: records.upsert_slice(new),
            delete=records.delete_slice,
        )
        pods.on(
            add=records.upsert_pod,
            update=lambda _old, new: records.upsert_pod(new),
            delete=records.delete_pod,
        )
        return records

    # --- updates --------------------------------------------------------------------
    def upsert_service(self, svc: Obj) -> None:
        key = object_key(svc)
        self._drop_service(key)
        parsed = _service_view(svc)
        self._services[key] = parsed
        self._namespace_services[key[0]] = self._namespace_services.get(key[0], 0) + 1
        _index_add(self._ip_services, parsed.cluster_ips, key)

    def delete_service(self, svc: Obj) -> None:
        self._drop_service(object_key(svc))

    def _drop_service(self, key: tuple[str, str]) -> None:
        self._views.pop(key, None)
        old = self._services.pop(key, None)
        if old is None:
            return
        _index_remove(self._ip_services, old.cluster_ips, key)
        remaining = self._namespace_services[key[0]] - 1
        if remaining:
            self._namespace_services[key[0]] = remaining
        else:
            del self._namespace_services[key[0]]

    def upsert_slice(self, eps: Obj) -> None:
        key = object_key(eps)
        self._drop_slice(key)
        parsed = _slice_view(eps)
        self._slices[key] = parsed
        if parsed.service is not None:
            self._service_slices.setdefault(parsed.service, set()).add(key)
            self._views.pop(parsed.service, None)
        _index_add(self._ip_slices, (a for ep in parsed.endpoints for a in ep.addresses), key)

    def delete_slice(self, eps: Obj) -> None:
        self._drop_slice(object_key(eps))

    def _drop_slice(self, key: tuple[str, str]) -> None:
        old = self._slices.pop(key, None)
        if old is None:
            return
        _index_remove(self._ip_slices, (a for ep in old.endpoints for a in ep.addresses), key)
        if old.service is not None:
            self._views.pop(old.service, None)
            keys = self._service_slices.get(old.service)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._service_slices[old.service]

    def upsert_pod(self, pod: Obj) -> None:
        key = object_key(pod)
        self._drop_pod(key)
        ips = _pod_ips(pod)
        if ips:
            self._pods[key] = ips
            _index_add(self._ip_pods, ips, key)

    def delete_pod(self, pod: Obj) -> None:
        self._drop_pod(object_key(pod))

    def _drop_pod(self, key: tuple[str, str]) -> None:
        old = self._pods.pop(key, None)
        if old is not None:
            _index_remove(self._ip_pods, old, key)

    # --- queries --------------------------------------------------------------------
    def in_zone(self, qname: str) -> bool:
        name = qname.rstrip(".").lower()
        return name == self.domain or name.endswith("." + self.domain)

    def resolve(self, qname: str, qtype: str, *, ttl: int | None = None) -> Answer:
        """Answer ``qname``/``qtype`` (``"A"``, ``"SRV"``, …) from the cluster, or say it
        must be forwarded. Answers use the name as asked (case kept)."""
        query = _Query(self, _fqdn(qname), qtype.upper(), self.ttl if ttl is None else ttl)
        name = query.owner[:-1].lower()
        if name.endswith((".in-addr.arpa", ".ip6.arpa")):
            return query.reverse(name)
        if not self.in_zone(name):
            return Answer(forward=True)
        return query.zone(name, 0)

    def soa(self, ttl: int | None = None) -> Record:
        ttl = self.ttl if ttl is None else ttl
        d = self.domain
        data = f"ns.dns.{d}. hostmaster.{d}. {self.serial} {SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {ttl}"
        return Record(f"{d}.", "SOA", ttl, data)

    def _view(self, svc: _Service) -> _HeadlessView:
        key = svc.info.key
        view = self._views.get(key)
        if view is not None:
            return view
        view = _HeadlessView()
        seen: set[tuple[str, str]] = set()
        for slice_key in sorted(self._service_slices.get(key, ())):
            eps = self._slices[slice_key]
            for ep in eps.endpoints:
                if not (ep.ready or svc.info.publish_not_ready):
                    continue
                for address in ep.addresses:
                    target = _Target(_label(ep, address), address, eps.ports)
                    if (target.label, address) in seen:
                        continue
                    seen.add((target.label, address))
                    view.targets.append(target)
                    view.by_label.setdefault(target.label, []).append(target)
        self._views[key] = view
        return view

    def _ptr_names(self, ip: str) -> list[str]:
        d = self.domain
        names = sorted(f"{n}.{ns}.svc.{d}." for ns, n in self._ip_services.get(ip, ()))
        if names:
            return names
        for slice_key in sorted(self._ip_slices.get(ip, ())):
            eps = self._slices[slice_key]
            svc = self._services.get(eps.service) if eps.service else None
            if svc is None or not svc.info.headless:
                continue
            for ep in eps.endpoints:
                if ip in ep.addresses:
                    service = f"{svc.info.name}.{svc.info.namespace}.svc.{d}."
                    names.append(f"{_label(ep, ip)}.{service}")
        if names:
            return sorted(set(names))
        return sorted(f"{_dashed(ip)}.{ns}.pod.{d}." for ns, _ in self._ip_pods.get(ip, ()))


@dataclass
class _Query:
    """One question being answered (the model, the owner name as asked, type, TTL)."""

    records: ClusterRecords
    owner: str
    qtype: str
    ttl: int

    # --- outcomes
    def _ok(self, answers: Sequence[Record], additional: Sequence[Record] = ()) -> Answer:
        if not answers:
            return self._nodata()
        return Answer("NOERROR", tuple(answers), tuple(additional))

    def _nodata(self) -> Answer:
        return Answer("NOERROR", authority=(self.records.soa(self.ttl),))

    def _nxdomain(self) -> Answer:
        return Answer("NXDOMAIN", authority=(self.records.soa(self.ttl),))

    def _wants(self, *types: str) -> bool:
        return self.qtype in types or self.qtype == "ANY"

    def _addresses(self, owner: str, addresses: Iterable[str]) -> list[Record]:
        out = []
        for ip in addresses:
            rtype = "AAAA" if ":" in ip else "A"
            if self._wants(rtype):
                out.append(Record(owner, rtype, self.ttl, ip))
        return out

    def _glue(self, owner: str, addresses: Iterable[str]) -> list[Record]:
        return [Record(owner, "AAAA" if ":" in ip else "A", self.ttl, ip) for ip in addresses]

    # --- names
    def zone(self, name: str, depth: int) -> Answer:
        domain = self.records.domain
        rest = name[: -len(domain)].rstrip(".")
        labels = rest.split(".")[::-1] if rest else []
        if not labels:
            return self._apex()
        if labels[0] == "svc":
            return self._service_names(labels[1:], depth)
        if labels[0] == "pod":
            return self._pod_names(labels[1:])
        return self._nxdomain()

    def _apex(self) -> Answer:
        records = self.records
        answers = []
        if self._wants("SOA"):
            answers.append(records.soa(self.ttl))
        if self._wants("NS"):
            answers.append(
                Record(f"{records.domain}.", "NS", self.ttl, f"ns.dns.{records.domain}.")
            )
        return self._ok(answers)

    def _pod_names(self, labels: list[str]) -> Answer:
        if not labels:
            return self._nodata()
        if len(labels) == 1:
            return self._nodata()  # pods insecure: every namespace's pod subdomain exists
        if len(labels) > 2:
            return self._nxdomain()
        ip = _undashed(labels[1])
        if ip is None:
            return self._nxdomain()
        return self._ok(self._addresses(self.owner, [ip]))

    def _service_names(self, labels: list[str], depth: int) -> Answer:
        records = self.records
        if not labels:
            return self._nodata()
        namespace = labels[0]
        if len(labels) == 1:
            exists = namespace in records._namespace_services
            return self._nodata() if exists else self._nxdomain()
        svc = records._services.get((namespace, labels[1]))
        if svc is None:
            return self._nxdomain()
        rest = labels[2:]
        if svc.info.external_name is not None:
            return self._nxdomain() if rest else self._external(svc, depth)
        if not rest:
            if svc.info.headless:
                view = records._view(svc)
                return self._ok(self._addresses(self.owner, (t.address for t in view.targets)))
            return self._ok(self._addresses(self.owner, svc.cluster_ips))
        if len(rest) == 1 and rest[0].startswith("_"):  # _proto: an empty non-terminal
            exists = any(p.protocol == rest[0][1:] for p in self._service_ports(svc))
            return self._nodata() if exists else self._nxdomain()
        if len(rest) == 1 and svc.info.headless:
            targets = records._view(svc).by_label.get(rest[0])
            if not targets:
                return self._nxdomain()
            return self._ok(self._addresses(self.owner, (t.address for t in targets)))
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(svc, rest[1][1:], rest[0][1:])
        return self._nxdomain()

    def _service_ports(self, svc: _Service) -> list[_Port]:
        ports = list(svc.ports)
        if svc.info.headless:
            ports.extend(p for t in self.records._view(svc).targets for p in t.ports)
        return ports

    def _srv(self, svc: _Service, port_name: str, protocol: str) -> Answer:
        d = self.records.domain
        service_name = f"{svc.info.name}.{svc.info.namespace}.svc.{d}."
        hits: list[tuple[str, int]] = []  # (target name, port)
        additional: list[Record] = []
        if svc.info.headless:
            for t in self.records._view(svc).targets:
                for p in t.ports:
                    if p.name == port_name and p.protocol == protocol:
                        target = f"{t.label}.{service_name}"
                        hits.append((target, p.port))
                        additional.extend(self._glue(target, [t.address]))
        else:
            for p in svc.ports:
                if p.name == port_name and p.protocol == protocol:
                    hits.append((service_name, p.port))
            if hits:
                additional = self._glue(service_name, svc.cluster_ips)
        if not hits:
            exists = any(
                p.name == port_name and p.protocol == protocol for p in self._service_ports(svc)
            )
            return self._nodata() if exists else self._nxdomain()
        if not self._wants("SRV"):
            return self._nodata()
        weight = 100 // len(hits)
        answers = [
            Record(self.owner, "SRV", self.ttl, f"0 {weight} {port} {target}")
            for target, port in hits
        ]
        return self._ok(answers, additional)

    def _external(self, svc: _Service, depth: int) -> Answer:
        """The CNAME to ``spec.externalName``, followed by the target's records when the
        target is in the cluster (chased here; ``depth`` bounds the chain against
        ExternalNames pointing at each other: past it the chain stops at a CNAME), or with
        :attr:`Answer.chase` naming the target for the server when it is outside."""
        target = _fqdn(str(svc.info.external_name))
        cname = Record(self.owner, "CNAME", self.ttl, target)
        target_name = target[:-1].lower()
        if self.qtype == "CNAME" or depth >= MAX_CNAME_DEPTH:
            return Answer("NOERROR", (cname,))
        if not self.records.in_zone(target_name):
            chase = target if self.qtype in _CHASED_TYPES else None
            return Answer("NOERROR", (cname,), chase=chase)
        chained = _Query(self.records, target, self.qtype, self.ttl).zone(target_name, depth + 1)
        return Answer(
            chained.rcode,
            (cname, *chained.answers),
            chained.additional,
            chained.authority,
            chase=chained.chase,
        )

    def reverse(self, name: str) -> Answer:
        ip = _reverse_ip(name)
        names = self.records._ptr_names(ip) if ip else []
        if not names:
            return Answer(forward=True)  # fallthrough: not a cluster address
        if not self._wants("PTR"):
            return Answer("NOERROR")
        return Answer("NOERROR", tuple(Record(self.owner, "PTR", self.ttl, n) for n in names))


# --- the server -------------------------------------------------------------------------
@dataclass(frozen=True)
class DnsOptions:
    domain: str = "cluster.local"
    listen: Sequence[Address] = (("127.0.0.1", 53),)
    upstreams: Sequence[Address] | None = None  # None: the nameservers of resolv_conf
    ttl: int = 5
    forward_timeout: float = 2.0  # per upstream and transport
    resolv_conf: str = "/etc/resolv.conf"
    #: Bind listen addresses that are not (yet) on any interface (Linux ``IP_FREEBIND``):
    #: a container bridge's gateway exists only once the engine has created the bridge.
    freebind: bool = False


_IP_FREEBIND = 15  # linux/in.h; the socket module of Python 3.11 lacks the constant


def freebind_socket(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        level = socket.IPPROTO_IPV6 if family == socket.AF_INET6 else socket.IPPROTO_IP
        sock.setsockopt(level, _IP_FREEBIND, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def upstreams_from_resolv_conf(
    path: str | Path = "/etc/resolv.conf", exclude: Sequence[Address] = ()
) -> list[Address]:
    """The ``nameserver`` addresses of a resolv.conf as (ip, 53), without those in
    ``exclude`` (this server's own addresses; a wildcard listen address excludes the
    loopback nameservers of its family on its port, ``::`` those of both). A missing file gives no upstreams."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    found: list[Address] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            ip = canonical_ip(fields[1])
            if ip is not None and (ip, 53) not in found and not _is_own((ip, 53), exclude):
                found.append((ip, 53))
    return found


def _is_own(upstream: Address, listen: Sequence[Address]) -> bool:
    ip, port = upstream
    for host, listen_port in listen:
        if listen_port != port:
            continue
        own = canonical_ip(host) if host else "0.0.0.0"
        if own == ip:
            return True
        address = ipaddress.ip_address(ip)
        if own == "::" and address.is_loopback:  # dual-stack wildcard
            return True
        if own == "0.0.0.0" and address.is_loopback and address.version == 4:
            return True
    return False


class _UpstreamError(Exception):
    pass


@dataclass(frozen=True)
class _Forward:
    """A parsed request (a ``dnslib.DNSRecord``) that must be answered upstream."""

    request: Any


@dataclass(frozen=True)
class _Chase:
    """A cluster answer whose CNAME chain ends outside the cluster: ``reply`` (a
    ``dnslib.DNSRecord``, the cluster part) gets the upstream's records for ``target``
    appended; ``packet`` is ``reply`` packed as it is, the answer when that fails."""

    request: Any
    reply: Any
    packet: bytes
    target: str


def _record_to_rr(record: Record) -> Any:
    rtype, data = record.rtype, record.data
    rdata: Any
    if rtype == "A":
        rdata = A(data)
    elif rtype == "AAAA":
        rdata = AAAA(data)
    elif rtype == "CNAME":
        rdata = CNAME(data)
    elif rtype == "PTR":
        rdata = PTR(data)
    elif rtype == "NS":
        rdata = NS(data)
    elif rtype == "SRV":
        priority, weight, port, target = data.split()
        rdata = SRV(int(priority), int(weight), int(port), target)
    elif rtype == "SOA":
        mname, rname, *times = data.split()
        rdata = SOA(mname, rname, tuple(int(t) for t in times))
    else:  # pragma: no cover - the model only produces the types above
        raise ValueError(f"unsupported record type {rtype}")
    return RR(record.name, getattr(QTYPE, rtype), rdata=rdata, ttl=record.ttl)


def _error_reply(data: bytes, rcode: str) -> bytes | None:
    """A bare reply (header only) carrying ``rcode`` for a query we cannot parse."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack("!HH", data[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | _RCODES[rcode], 0, 0, 0, 0)


def _udp_limit(request: Any) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(_UDP_DEFAULT, min(int(rr.rclass), _UDP_MAX))
    return _UDP_DEFAULT


def _fit_udp(packet: bytes, limit: int) -> bytes:
    """``packet`` as is when it fits in ``limit`` bytes, else its header and question with
    TC set (the client retries over TCP)."""
    if len(packet) <= limit:
        return packet
    full = DNSRecord.parse(packet)
    header = DNSHeader(id=full.header.id, bitmap=full.header.bitmap)
    header.tc = 1
    return bytes(DNSRecord(header, questions=full.questions).pack())


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes) -> None:
        self.qid = qid
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[:2] == self.qid and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc or ConnectionError("upstream socket closed"))


class _ServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        transport = self.transport
        if transport is None:
            return
        outcome = self.server._local(data, udp=True)
        if isinstance(outcome, bytes):
            transport.sendto(outcome, addr)
        elif outcome is not None:
            pending = outcome

            async def upstream() -> None:
                try:
                    packet = await self.server._upstream(data, pending, udp=True)
                except Exception as exc:
                    question = str(pending.request.q)
                    log.warning("dns.forward_failed", question=question, error=repr(exc))
                    packet = _error_reply(data, "SERVFAIL") or b""
                if packet and not transport.is_closing():
                    transport.sendto(packet, addr)

            self.server._spawn(upstream())


class DnsServer:
    """Serves a :class:`ClusterRecords` over UDP and TCP on every listen address."""

    def __init__(self, records: ClusterRecords, options: DnsOptions | None = None) -> None:
        self.records = records
        self.options = options or DnsOptions()
        if records.domain != self.options.domain.strip(".").lower():
            raise ValueError(
                f"records are for {records.domain!r}, options for {self.options.domain!r}"
            )
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._addresses: list[Address] = []
        self._upstreams: list[Address] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def addresses(self) -> list[Address]:
        """The bound (host, port) pairs, one per listen address (port 0 → the picked one;
        UDP and TCP share it)."""
        return list(self._addresses)

    @property
    def upstreams(self) -> list[Address]:
        return list(self._upstreams)

    async def start(self) -> None:
        try:
            for host, port in self.options.listen:
                await self._bind(host, port)
        except BaseException:
            await self.stop()
            raise
        if self.options.upstreams is not None:
            self._upstreams = list(self.options.upstreams)
        else:
            self._upstreams = upstreams_from_resolv_conf(
                self.options.resolv_conf, [*self.options.listen, *self._addresses]
            )
        log.info("dns.started", addresses=self._addresses, upstreams=self._upstreams)

    async def _bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        attempts = 5 if port == 0 else 1
        for attempt in range(attempts):
            if self.options.freebind:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _ServerProtocol(self),
                    sock=freebind_socket(host, port, socket.SOCK_DGRAM),
                )
            else:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _ServerProtocol(self), local_addr=(host, port)
                )
            bound = udp.get_extra_info("sockname")
            try:
                if self.options.freebind:
                    server = await asyncio.start_server(
                        self._serve_tcp, sock=freebind_socket(host, bound[1], socket.SOCK_STREAM)
                    )
                else:
                    server = await asyncio.start_server(self._serve_tcp, host, bound[1])
            except OSError:
                udp.close()
                if attempt + 1 == attempts:
                    raise
                continue
            self._udp.append(udp)
            self._tcp.append(server)
            self._addresses.append((host, int(bound[1])))
            return

    async def stop(self) -> None:
        for udp in self._udp:
            udp.close()
        for server in self._tcp:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._tcp:
            await server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._udp, self._tcp, self._addresses = [], [], []

    # --- handling -------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _local(self, data: bytes, *, udp: bool) -> bytes | _Forward | _Chase | None:
        """The reply to ``data`` when it can be made here, what must be asked upstream
        first (the whole question, or an ExternalName's outside target), or None when it
        must be dropped (a response, garbage)."""
        if len(data) >= 3 and data[2] & 0x80:
            return None  # a response: never answer it (loops)
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return _error_reply(data, "FORMERR")
        if request.header.opcode != 0:
            return _error_reply(data, "NOTIMP")
        if len(request.questions) != 1:
            return _error_reply(data, "FORMERR")
        try:
            return self._answer(request, udp=udp)
        except Exception as exc:  # a record dnslib cannot encode, say: fail this query only
            log.warning("dns.answer_failed", question=str(request.q), error=repr(exc))
            return _error_reply(data, "SERVFAIL")

    def _answer(self, request: Any, *, udp: bool) -> bytes | _Forward | _Chase:
        question = request.q
        chase: str | None = None
        qname = str(question.qname)
        reverse = qname.rstrip(".").lower().endswith((".in-addr.arpa", ".ip6.arpa"))
        if not (reverse or self.records.in_zone(qname)):
            return _Forward(request)
        reply = request.reply(ra=1, aa=1)
        if question.qclass not in (CLASS.IN, getattr(CLASS, "*")):
            if not self.records.in_zone(qname):
                return _Forward(request)
            reply.header.rcode = _RCODES["REFUSED"]
        else:
            answer = self.records.resolve(qname, str(QTYPE[question.qtype]), ttl=self.options.ttl)
            if answer.forward:
                return _Forward(request)
            reply.header.rcode = _RCODES[answer.rcode]
            reply.add_answer(*map(_record_to_rr, answer.answers))
            reply.add_auth(*map(_record_to_rr, answer.authority))
            reply.add_ar(*map(_record_to_rr, answer.additional))
            chase = answer.chase
        if any(rr.rtype == QTYPE.OPT for rr in request.ar):
            reply.add_ar(EDNS0(udp_len=_EDNS_ADVERTISED))
        packet = bytes(reply.pack())  # encodes the cluster part now: failures SERVFAIL here
        if chase is not None and self._upstreams:
            return _Chase(request, reply, packet, chase)
        return _fit_udp(packet, _udp_limit(request)) if udp else packet

    async def _upstream(self, data: bytes, pending: _Forward | _Chase, *, udp: bool) -> bytes:
        """The reply to ``data`` that needs the upstreams, fitted to the client's UDP size
        when ``udp``."""
        if isinstance(pending, _Chase):
            packet = await self._chase(pending)
        else:
            packet = await self._forward(data, pending.request)
        return _fit_udp(packet, _udp_limit(pending.request)) if udp else packet

    async def _chase(self, pending: _Chase) -> bytes:
        """The cluster answer with the upstream's answer records for its outside CNAME
        target (same type as asked; its own CNAME chain included) appended, as CoreDNS's
        ``kubernetes`` plugin does through its upstream. When no upstream answers in
        time, or answers with an error, the cluster answer alone (NOERROR with the CNAME):
        the ExternalName part is ours and correct, and a stub resolver can still see the
        target name — SERVFAIL would hide it, and make the pod retry the whole search
        list. The upstream's rcode is not copied (an outside NXDOMAIN stays NOERROR, as in
        CoreDNS: the asked name does exist)."""
        reply = pending.reply
        try:
            query = DNSRecord.question(pending.target, QTYPE[reply.q.qtype])
            packet = await self._ask_upstreams(bytes(query.pack()), query)
            if packet is None:
                raise _UpstreamError("no upstream answered")
            found = DNSRecord.parse(packet)
            if found.header.rcode not in (_RCODES["NOERROR"], _RCODES["NXDOMAIN"]):
                raise _UpstreamError(f"upstream rcode {found.header.rcode}")
            reply.add_answer(*found.rr)
            return bytes(reply.pack())
        except Exception as exc:
            log.debug("dns.chase_failed", target=pending.target, error=repr(exc))
            return pending.packet

    async def _forward(self, data: bytes, request: Any) -> bytes:
        """The upstream answer to ``data`` (client's ID restored), or SERVFAIL."""
        packet = await self._ask_upstreams(data, request)
        if packet is not None:
            return data[:2] + packet[2:]
        reply = request.reply(ra=1, aa=0)
        reply.header.rcode = _RCODES["SERVFAIL"]
        return bytes(reply.pack())

    async def _ask_upstreams(self, data: bytes, request: Any) -> bytes | None:
        """The first upstream reply to the query ``data`` (``request`` parsed), sent under
        a fresh random ID (which the reply carries), or None when none answers."""
        qid = secrets.token_bytes(2)
        query = qid + data[2:]
        timeout = self.options.forward_timeout
        for upstream in self._upstreams:
            try:
                packet = await asyncio.wait_for(self._udp_exchange(query, qid, upstream), timeout)
                if packet[2] & 0x02:  # TC: ask again over TCP
                    packet = await asyncio.wait_for(self._tcp_exchange(query, upstream), timeout)
                self._check_reply(packet, qid, request)
                return packet
            except (OSError, TimeoutError, EOFError, _UpstreamError) as exc:
                log.debug("dns.upstream_failed", upstream=upstream, error=repr(exc))
        return None

    @staticmethod
    async def _udp_exchange(query: bytes, qid: bytes, upstream: Address) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UpstreamProtocol(qid), remote_addr=upstream
        )
        try:
            transport.sendto(query)
            return await protocol.reply
        finally:
            transport.close()

    @staticmethod
    async def _tcp_exchange(query: bytes, upstream: Address) -> bytes:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    def _check_reply(packet: bytes, qid: bytes, request: Any) -> None:
        try:
            reply = DNSRecord.parse(packet)
        except Exception as exc:
            raise _UpstreamError(f"unparsable reply: {exc}") from exc
        if packet[:2] != qid or not reply.header.qr or len(reply.questions) != 1:
            raise _UpstreamError("reply does not match the query")
        asked, got = request.q, reply.q
        if (str(got.qname).lower(), got.qtype) != (str(asked.qname).lower(), asked.qtype):
            raise _UpstreamError("reply is for another question")

    async def _handle(self, data: bytes) -> bytes | None:
        outcome = self._local(data, udp=False)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await self._upstream(data, outcome, udp=False)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", prefix)
                data = await asyncio.wait_for(reader.readexactly(length), _TCP_IDLE_TIMEOUT)
                reply = await self._handle(data)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


__all__ = [
    "Answer",
    "ClusterRecords",
    "DnsOptions",
    "DnsServer",
    "Record",
    "upstreams_from_resolv_conf",
]
