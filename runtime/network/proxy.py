"""The built-in cluster's service proxy: makes every Service's cluster IP answer, by
writing iptables rules that DNAT connections to one ready endpoint — what kube-proxy does
in its ``iptables`` mode (with ``--masquerade-all``).

Who calls it: the process that runs the built-in cluster (``gitops cluster up``). It
builds a :class:`ProxyRules`, feeds it from the Service and EndpointSlice informers with
:func:`bind_informers`, and runs :meth:`ServiceProxy.run` (a debounced sync loop). It
calls :meth:`ServiceProxy.cleanup` at start (leftovers of a crashed run) and on stop.

Two layers:

* :class:`ProxyRules` is pure: Services and EndpointSlices go in (``upsert``/``remove``),
  the text for ``iptables-restore --noflush`` comes out (:meth:`ProxyRules.render`, one
  text for the ``nat`` table and one for ``filter``). Unit-tested without iptables.
* :class:`ServiceProxy` applies that text (asyncio subprocesses, optionally inside a
  network namespace via ``ip netns exec``), skips a sync whose text equals the last one
  applied, deletes chains that are no longer generated, keeps the jump rules from the
  built-in chains in place, and removes everything again (:meth:`ServiceProxy.cleanup`).

The network it works in: pods live in network namespaces attached to a bridge on the
host (podman's ``cni-podman0``, 10.88.0.0/16 with gateway 10.88.0.1; docker's
``docker0``, 172.17.0.0/16); their default route is the bridge's gateway address, i.e.
the host. Cluster IPs (the service CIDR, e.g. 10.43.0.0/16) are on no interface, so a
packet from a pod to a cluster IP is routed to the host, where ``nat PREROUTING`` DNATs
it to one ready endpoint (pod IP and target port); connections made by the host itself
go through ``nat OUTPUT`` the same way. Source and destination pods may sit on the same
bridge (or be the same pod: hairpin), where the endpoint's reply would go straight back
to the client without passing the host's conntrack and never be un-DNATed. So every
connection DNATed to an endpoint is also masqueraded (SNAT to the address of the
outgoing interface — the bridge gateway): the service chain marks the packet, ``nat
POSTROUTING`` masquerades marked packets. This works with or without ``br_netfilter``
and for hairpin traffic, at the cost of endpoints seeing the gateway as client address.
One condition for hairpin with ``br_netfilter`` on (``bridge-nf-call-iptables=1``): a
packet DNATed to a pod on the same bridge is then bridged rather than routed, back out
the port it came in, which the bridge only does when that port's hairpin mode is on —
podman's CNI bridge config sets it (``"hairpinMode": true``); docker sets it only with
``--userland-proxy=false`` (kubelet's ``--hairpin-mode`` exists for the same reason).

Chains (all ours start with ``GITOPS-``; nothing else is touched). This module owns that
prefix in the ``nat`` and ``filter`` tables: any ``GITOPS-`` chain it does not generate is
deleted as stale on the next sync, so no other part may create chains with it.

``nat`` table

* ``GITOPS-SERVICES``, jumped to from ``PREROUTING`` and ``OUTPUT``: per cluster IP and
  Service port (TCP, UDP; SCTP is ignored) ``-d <ip>/32 -p <proto> --dport <port>`` →
  that port's ``GITOPS-SVC-<hash>``.
* ``GITOPS-SVC-<hash>``: first ``-j GITOPS-MARK-MASQ``; then, with ``sessionAffinity:
  ClientIP``, per endpoint ``-m recent --name <sep chain> --rcheck --seconds <timeout>
  --reap`` → that endpoint (timeout ``sessionAffinityConfig.clientIP.timeoutSeconds``,
  10800 by default); then the endpoints, each taken with ``-m statistic --mode random
  --probability 1/n``, ``1/(n-1)``, …, the last one unconditionally (printed with ten
  decimals, as kube-proxy), which picks each of ``n`` endpoints with probability
  ``1/n``.
* ``GITOPS-SEP-<hash>``: ``-j DNAT --to-destination <ip>:<port>`` (with affinity also
  ``-m recent --name <this chain> --set``).
* ``GITOPS-MARK-MASQ``: ``-j MARK --or-mark <mark>`` (``0x4000`` by default).
* ``GITOPS-POSTROUTING``, jumped to from ``POSTROUTING``: unmarked packets return; marked
  ones have the mark cleared and are ``MASQUERADE``d (``--random-fully``).

``filter`` table

* ``GITOPS-FILTER-SERVICES``, jumped to from ``INPUT``, ``FORWARD`` and ``OUTPUT`` for
  new connections (``-m conntrack --ctstate NEW``): a Service port without ready
  endpoints is rejected, so clients fail at once (connection refused) instead of timing
  out: ``-j REJECT --reject-with tcp-reset`` for TCP, ``--reject-with
  icmp-port-unreachable`` for UDP. kube-proxy uses ``icmp-port-unreachable`` for TCP as
  well, but ICMP errors are subject to the kernel's per-destination rate limit
  (``net.ipv4.icmp_ratelimit``, 1 s): measured here (kernel 6.18), the first SYNs of a
  client got no ICMP at all and its connects hung for seconds, where a TCP reset is
  answered at once and is not rate-limited. UDP clients may still see the ICMP error
  late or not at all for the same reason.

Chain names are ``GITOPS-SVC-``/``GITOPS-SEP-`` plus the first 16 characters of the
base32 SHA-256 of ``ns/name:port/PROTO`` (plus ``/ip:port`` for an endpoint): stable
across restarts and within iptables' 28-character limit.

Applying: each sync writes the full contents of every ``GITOPS-`` chain with one
``iptables-restore --noflush`` (both tables): ``:CHAIN - [0:0]`` lines create or flush
our chains, ``-X`` lines delete our chains that are no longer generated (found with
``iptables -S``); rules of other chains are never flushed. The jump rules (one each,
commented ``gitops-cluster``) are inserted at the top of the built-in chains when
``iptables -C`` does not find them. A sync whose generated text equals the last applied
one does nothing; :meth:`ServiceProxy.run` also re-applies everything every
:attr:`ProxyOptions.resync_period` seconds, repairing rules someone else flushed.

Endpoints: the EndpointSlices (``discovery.k8s.io/v1``) labelled
``kubernetes.io/service-name`` with the Service's name, ``addressType`` IPv4; an
endpoint counts when ``conditions.ready`` is not false (first address); its port is the
slice port whose name (and protocol) equals the Service port's name (unnamed ports match
unnamed ones). Duplicates across slices count once. Headless (``clusterIP: None``) and
ExternalName Services get no rules.

Not supported (deliberately):

* NodePort and LoadBalancer: not in this module — another part of the built-in cluster
  binds those host ports with a userspace listener. ``spec.externalIPs`` and
  ``loadBalancerIP`` get no rules either.
* IPv6 (cluster IPs and endpoints of the IPv6 family are ignored: ``iptables`` is
  IPv4), ``internalTrafficPolicy: Local`` (one node: every endpoint is local anyway),
  falling back to terminating endpoints, SCTP.
* Deleting stale UDP conntrack entries when endpoints change (kube-proxy runs
  ``conntrack -D``; that tool is not installed here): an existing UDP flow keeps its
  endpoint until its conntrack entry expires; new flows (new source port) see the change.
* The client address is not preserved (masquerade-all, see above).
* No filter ``FORWARD`` accept rules (kube-proxy's ``KUBE-FORWARD``): a host whose
  ``FORWARD`` policy is DROP must let bridge traffic through itself, as docker
  (``-i docker0 -o docker0``) and podman's CNI ``firewall`` plugin do for their bridges.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from kubeclient.informer import ObjectSource
from runtime.network.objects import (
    EndpointSlice,
    address_type,
    object_key,
    read_endpoint_slice,
    read_service,
    ready_addresses,
)

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

CHAIN_PREFIX = "GITOPS-"
SERVICES_CHAIN = "GITOPS-SERVICES"
MARK_MASQ_CHAIN = "GITOPS-MARK-MASQ"
POSTROUTING_CHAIN = "GITOPS-POSTROUTING"
FILTER_SERVICES_CHAIN = "GITOPS-FILTER-SERVICES"
_PROTOCOLS = ("TCP", "UDP")
# How a port without endpoints is refused: a TCP reset for TCP (an ICMP error would be
# subject to the kernel's per-host ICMP rate limit, see the module docstring).
_REJECT_WITH = {"TCP": "tcp-reset", "UDP": "icmp-port-unreachable"}


class ProxyError(Exception):
    """Applying or removing rules failed; ``retryable`` says whether trying again may
    help (a missing binary will not; a failing ``iptables-restore`` might)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class ProxyOptions:
    """How rules are applied. ``netns`` runs every command in that network namespace
    (``ip netns exec``; for tests); ``comment`` marks the jump rules; ``resync_period``
    is how often :meth:`ServiceProxy.run` re-applies everything (``None``: never)."""

    iptables: str = "iptables"
    iptables_restore: str = "iptables-restore"
    masquerade_mark: str = "0x4000"
    netns: str | None = None
    comment: str = "gitops-cluster"
    resync_period: float | None = 30.0


# --- the model --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Port:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class _Service:
    """A Service as far as the proxy cares: IPv4 cluster IPs, TCP and UDP ports."""

    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    ports: tuple[_Port, ...]
    affinity_timeout: int | None  # seconds, None without ClientIP affinity


def _key(obj: Obj) -> tuple[str, str]:
    return object_key(obj, "default")


def _service_view(obj: Obj) -> _Service | None:
    """The Service as far as the proxy cares, or None when it gets no rules."""
    svc = read_service(obj, default_namespace="default")
    if svc.type == "ExternalName":
        return None
    ips = tuple(ip for ip in svc.cluster_ips if address_type(ip) == "IPv4")
    if not ips:  # headless ("None"), not allocated yet, or IPv6 only
        return None
    ports = tuple(
        _Port(p.name, p.port, p.protocol)
        for p in svc.ports
        if p.protocol in _PROTOCOLS and p.port is not None
    )
    return _Service(svc.namespace, svc.name, ips, ports, svc.affinity_timeout)


def _chain_name(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def _display(svc: _Service, port: _Port) -> str:
    base = f"{svc.namespace}/{svc.name}"
    return f"{base}:{port.name}" if port.name else base


def _comment(text: str) -> str:
    """A ``-m comment`` argument that survives iptables-restore's quoting (≤ 256 bytes)."""
    cleaned = "".join(c for c in text if c.isprintable() and c not in "\"'\\")
    return f'-m comment --comment "{cleaned[:255]}"'


def _probability(remaining: int) -> str:
    return f"{1.0 / remaining:0.10f}"


class ProxyRules:
    """Services and EndpointSlices in, ``iptables-restore`` text out. Pure and
    synchronous: informer handlers call :meth:`upsert`/:meth:`remove`, the sync loop
    calls :meth:`render`."""

    def __init__(self, options: ProxyOptions | None = None) -> None:
        self.options = options or ProxyOptions()
        self._services: dict[tuple[str, str], _Service] = {}
        self._slices: dict[tuple[str, str], EndpointSlice] = {}

    # --- updates ------------------------------------------------------------------------
    def upsert(self, obj: Obj) -> None:
        """Add or replace a Service or an EndpointSlice (by ``kind``)."""
        kind = obj.get("kind")
        if kind == "Service":
            self.upsert_service(obj)
        elif kind == "EndpointSlice":
            self.upsert_slice(obj)
        else:
            raise ValueError(f"the service proxy takes Services and EndpointSlices, not {kind!r}")

    def remove(self, obj: Obj) -> None:
        """Forget a Service or an EndpointSlice (by ``kind``; only its name counts)."""
        kind = obj.get("kind")
        if kind == "Service":
            self.remove_service(obj)
        elif kind == "EndpointSlice":
            self.remove_slice(obj)
        else:
            raise ValueError(f"the service proxy takes Services and EndpointSlices, not {kind!r}")

    def upsert_service(self, svc: Obj) -> None:
        parsed = _service_view(svc)
        if parsed is None:
            self._services.pop(_key(svc), None)
        else:
            self._services[_key(svc)] = parsed

    def remove_service(self, svc: Obj) -> None:
        self._services.pop(_key(svc), None)

    def upsert_slice(self, eps: Obj) -> None:
        self._slices[_key(eps)] = read_endpoint_slice(eps, default_namespace="default")

    def remove_slice(self, eps: Obj) -> None:
        self._slices.pop(_key(eps), None)

    # --- rendering ----------------------------------------------------------------------
    def _endpoints(self, svc: _Service, port: _Port) -> list[tuple[str, int]]:
        """Ready ``(ip, target port)`` of one Service port, sorted, without duplicates."""
        owned = (sl for sl in self._slices.values() if sl.service == (svc.namespace, svc.name))
        found = ready_addresses(owned, port.name, port.protocol, address_types=("IPv4",))
        return sorted(found, key=lambda e: (ipaddress.IPv4Address(e[0]), e[1]))

    def render(self) -> tuple[str, str]:
        """``(nat, filter)``: each a complete ``*table … COMMIT`` text for
        ``iptables-restore --noflush`` that declares (and so flushes) and fills every
        chain this proxy owns, in a stable order."""
        mark = self.options.masquerade_mark
        nat_chains = [SERVICES_CHAIN, MARK_MASQ_CHAIN, POSTROUTING_CHAIN]
        nat_rules = [
            f"-A {MARK_MASQ_CHAIN} -j MARK --or-mark {mark}",
            f"-A {POSTROUTING_CHAIN} -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A {POSTROUTING_CHAIN} -j MARK --xor-mark {mark}",
            f"-A {POSTROUTING_CHAIN} {_comment('service traffic requiring SNAT')}"
            " -j MASQUERADE --random-fully",
        ]
        service_rules: list[str] = []
        chain_rules: list[str] = []
        filter_rules: list[str] = []
        for key in sorted(self._services):
            svc = self._services[key]
            for port in svc.ports:
                shown = _display(svc, port)
                proto = port.protocol.lower()
                endpoints = self._endpoints(svc, port)
                match = f"-p {proto} -m {proto} --dport {port.port}"
                if not endpoints:
                    for ip in svc.cluster_ips:
                        filter_rules.append(
                            f"-A {FILTER_SERVICES_CHAIN} -d {ip}/32 "
                            f"{_comment(f'{shown} has no endpoints')} {match}"
                            f" -j REJECT --reject-with {_REJECT_WITH[port.protocol]}"
                        )
                    continue
                svc_chain = _chain_name("GITOPS-SVC-", shown, port.protocol)
                nat_chains.append(svc_chain)
                for ip in svc.cluster_ips:
                    service_rules.append(
                        f"-A {SERVICES_CHAIN} -d {ip}/32 "
                        f"{_comment(f'{shown} cluster IP')} {match} -j {svc_chain}"
                    )
                chain_rules.append(f"-A {svc_chain} -j {MARK_MASQ_CHAIN}")
                seps = [
                    (_chain_name("GITOPS-SEP-", shown, port.protocol, f"{ip}:{p}"), ip, p)
                    for ip, p in endpoints
                ]
                if svc.affinity_timeout is not None:
                    for sep, ip, p in seps:
                        chain_rules.append(
                            f"-A {svc_chain} {_comment(f'{shown} -> {ip}:{p}')}"
                            f" -m recent --name {sep} --rcheck"
                            f" --seconds {svc.affinity_timeout} --reap -j {sep}"
                        )
                for i, (sep, ip, p) in enumerate(seps):
                    remaining = len(seps) - i
                    pick = (
                        f" -m statistic --mode random --probability {_probability(remaining)}"
                        if remaining > 1
                        else ""
                    )
                    chain_rules.append(
                        f"-A {svc_chain} {_comment(f'{shown} -> {ip}:{p}')}{pick} -j {sep}"
                    )
                for sep, ip, p in seps:
                    nat_chains.append(sep)
                    recent = (
                        f" -m recent --name {sep} --set" if svc.affinity_timeout is not None else ""
                    )
                    chain_rules.append(
                        f"-A {sep} -p {proto} {_comment(shown)}{recent}"
                        f" -j DNAT --to-destination {ip}:{p}"
                    )
        nat = _table("nat", nat_chains, nat_rules + service_rules + chain_rules)
        filter_ = _table("filter", [FILTER_SERVICES_CHAIN], filter_rules)
        return nat, filter_


def _table(name: str, chains: Iterable[str], rules: Iterable[str]) -> str:
    lines = [f"*{name}", *(f":{c} - [0:0]" for c in chains), *rules, "COMMIT"]
    return "\n".join(lines) + "\n"


def declared_chains(text: str) -> set[str]:
    """The chains a ``*table … COMMIT`` text declares (``:NAME …`` lines)."""
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}


def _with_deletions(text: str, stale: Iterable[str]) -> str:
    """``text`` with ``stale`` chains declared (so flushed: rules of other stale chains
    may jump to them) right after the table line and deleted (``-X``) before COMMIT."""
    stale = sorted(stale)
    if not stale:
        return text
    lines = text.splitlines()
    commit = len(lines) - 1 - lines[::-1].index("COMMIT")
    return (
        "\n".join(
            [
                lines[0],
                *(f":{c} - [0:0]" for c in stale),
                *lines[1:commit],
                *(f"-X {c}" for c in stale),
                *lines[commit:],
            ]
        )
        + "\n"
    )


# --- applying -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Jump:
    table: str
    chain: str  # built-in chain holding the jump
    spec: tuple[str, ...]  # the rule after the chain name


def _jumps(options: ProxyOptions) -> list[_Jump]:
    comment = ("-m", "comment", "--comment", options.comment)
    new = ("-m", "conntrack", "--ctstate", "NEW")
    return [
        _Jump("nat", "PREROUTING", (*comment, "-j", SERVICES_CHAIN)),
        _Jump("nat", "OUTPUT", (*comment, "-j", SERVICES_CHAIN)),
        _Jump("nat", "POSTROUTING", (*comment, "-j", POSTROUTING_CHAIN)),
        _Jump("filter", "INPUT", (*new, *comment, "-j", FILTER_SERVICES_CHAIN)),
        _Jump("filter", "FORWARD", (*new, *comment, "-j", FILTER_SERVICES_CHAIN)),
        _Jump("filter", "OUTPUT", (*new, *comment, "-j", FILTER_SERVICES_CHAIN)),
    ]


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: str
    stderr: str


class ServiceProxy:
    """Applies a :class:`ProxyRules`' text to the kernel and removes it again."""

    def __init__(self, rules: ProxyRules, options: ProxyOptions) -> None:
        self.rules = rules
        self.options = options
        self._applied: tuple[str, str] | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget what was applied: the next :meth:`sync` writes everything again."""
        self._applied = None

    async def sync(self) -> bool:
        """Write the current rules unless they equal the last ones written; True when it
        wrote. Raises :class:`ProxyError` when a command fails (the next sync retries)."""
        async with self._lock:
            nat, filter_ = self.rules.render()
            if (nat, filter_) == self._applied:
                return False
            started = time.monotonic()
            existing = {t: await self._our_chains(t) for t in ("nat", "filter")}
            text = _with_deletions(nat, existing["nat"] - declared_chains(nat))
            text += _with_deletions(filter_, existing["filter"] - declared_chains(filter_))
            await self._check(self._iptables_restore(), text, "iptables-restore")
            for jump in _jumps(self.options):
                await self._ensure_jump(jump)
            self._applied = (nat, filter_)
            log.debug("service proxy rules applied", seconds=time.monotonic() - started)
            return True

    async def run(self, changed: asyncio.Event, min_interval: float = 0.05) -> None:
        """Sync whenever ``changed`` is set, at most once per ``min_interval`` seconds
        (events in between are coalesced, like kube-proxy's ``minSyncPeriod``), and
        re-apply everything every ``options.resync_period``. Failed syncs are retried
        (after ``max(min_interval, 1s)``); runs until cancelled."""
        last = float("-inf")
        while True:
            try:
                await asyncio.wait_for(changed.wait(), timeout=self.options.resync_period)
            except TimeoutError:
                self.invalidate()
            delay = last + min_interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            changed.clear()
            last = time.monotonic()
            try:
                await self.sync()
            except ProxyError as exc:
                log.warning("service proxy sync failed", error=exc.message)
                if not exc.retryable:
                    raise
                await asyncio.sleep(max(min_interval, 1.0))
                changed.set()

    async def cleanup(self) -> None:
        """Remove every rule that jumps to a ``GITOPS-`` chain from the other chains, then
        flush and delete every ``GITOPS-`` chain, in both tables. Idempotent."""
        async with self._lock:
            self._applied = None
            text = ""
            for table in ("nat", "filter"):
                listing = await self._check(self._iptables("-t", table, "-S"), None, "iptables -S")
                for line in listing.splitlines():
                    words = shlex.split(line)
                    if (
                        len(words) > 2
                        and words[0] == "-A"
                        and not words[1].startswith(CHAIN_PREFIX)
                        and _jump_target(words).startswith(CHAIN_PREFIX)
                    ):
                        args = ("-t", table, "-D", *words[1:])
                        await self._check(self._iptables(*args), None, "iptables -D")
                chains = _chains_of(listing)
                if chains:
                    text += _with_deletions(f"*{table}\nCOMMIT\n", chains)
            if text:
                await self._check(self._iptables_restore(), text, "iptables-restore")

    # --- commands -----------------------------------------------------------------------
    def _command(self, *args: str) -> list[str]:
        prefix = ["ip", "netns", "exec", self.options.netns] if self.options.netns else []
        return [*prefix, *args]

    def _iptables(self, *args: str) -> list[str]:
        return self._command(self.options.iptables, "-w", "5", *args)

    def _iptables_restore(self) -> list[str]:
        return self._command(self.options.iptables_restore, "-w", "5", "--noflush")

    async def _run(self, argv: list[str], stdin: str | None) -> _Result:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ProxyError(f"cannot run {argv[0]}: {exc}", retryable=False) from exc
        try:
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        except asyncio.CancelledError:
            # Stopped mid-command: end the child and reap it, so no pipe outlives the loop.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.communicate()
            raise
        return _Result(
            proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def _check(self, argv: list[str], stdin: str | None, what: str) -> str:
        result = await self._run(argv, stdin)
        if result.returncode != 0:
            raise ProxyError(
                f"{what} failed (exit {result.returncode}): {result.stderr.strip()[:2000]}"
            )
        return result.stdout

    async def _our_chains(self, table: str) -> set[str]:
        listing = await self._check(self._iptables("-t", table, "-S"), None, "iptables -S")
        return _chains_of(listing)

    async def _ensure_jump(self, jump: _Jump) -> None:
        exists = await self._run(
            self._iptables("-t", jump.table, "-C", jump.chain, *jump.spec), None
        )
        if exists.returncode != 0:
            args = ("-t", jump.table, "-I", jump.chain, "1", *jump.spec)
            await self._check(self._iptables(*args), None, "iptables -I")


def _chains_of(listing: str) -> set[str]:
    """Our chains in an ``iptables -S`` listing."""
    return {
        words[1]
        for words in (line.split() for line in listing.splitlines())
        if len(words) == 2 and words[0] == "-N" and words[1].startswith(CHAIN_PREFIX)
    }


def _jump_target(words: list[str]) -> str:
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return ""


# --- wiring to informers --------------------------------------------------------------------


def bind_informers(
    rules: ProxyRules,
    *,
    services: ObjectSource,
    slices: ObjectSource,
    changed: asyncio.Event,
) -> None:
    """Load ``rules`` from the informers' caches and keep it current from their events,
    setting ``changed`` after each change (the event :meth:`ServiceProxy.run` waits on)."""

    def handlers(
        upsert: Callable[[Obj], None], remove: Callable[[Obj], None]
    ) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None], Callable[[Obj], None]]:
        def add(obj: Obj) -> None:
            upsert(obj)
            changed.set()

        def update(_old: Obj, new: Obj) -> None:
            add(new)

        def delete(obj: Obj) -> None:
            remove(obj)
            changed.set()

        return add, update, delete

    for svc in services.items():
        rules.upsert_service(svc)
    for eps in slices.items():
        rules.upsert_slice(eps)
    add, update, delete = handlers(rules.upsert_service, rules.remove_service)
    services.on(add=add, update=update, delete=delete)
    add, update, delete = handlers(rules.upsert_slice, rules.remove_slice)
    slices.on(add=add, update=update, delete=delete)
    changed.set()
