"""The built-in cluster's networking, started and stopped as one piece: the service proxy
(:mod:`runtime.network.proxy`), the cluster DNS server (:mod:`runtime.network.dns`) with
its ``kube-system/kube-dns`` Service, the ingress controller
(:mod:`runtime.network.ingress`) and the host ports of NodePort and LoadBalancer
Services (:mod:`runtime.network.hostports`). Called by :class:`runtime.cluster.Cluster`
(``gitops cluster up``), which passes the kubelets :attr:`ClusterNetwork.cluster_dns`.

What runs where:

* Always (every runtime except ``none``): the ``kube-dns`` Service in ``kube-system``
  (ClusterIP, ``clusterIP`` the 10th address of the service CIDR — 10.43.0.10 for the
  default 10.43.0.0/16 — ports 53/UDP ``dns`` and 53/TCP ``dns-tcp``, no selector) is
  created when missing.
* The host ports (every runtime except ``none``, the fake one too): each NodePort and
  LoadBalancer Service port listens on ``--service-host`` (``NetworkConfig.service_host``,
  127.0.0.1 by default) at its node port, LoadBalancer ports also at their own port, and
  LoadBalancer Services get ``status.loadBalancer.ingress`` = that address; a port that
  cannot be bound is a Warning event on the Service (component
  ``service-lb-controller``). This traffic is relayed in userspace by this process;
  cluster-IP traffic from pods goes through the proxy's kernel rules instead.
* With a container engine (podman, docker; ``NetworkConfig.engine``):

  - the service proxy (iptables DNAT of cluster IPs to endpoints), its leftovers of a
    crashed run removed first and everything removed on stop. Without a usable
    ``iptables`` (missing, not permitted) a warning is logged and the cluster runs
    without Service IPs.
  - the DNS server, on the engine bridge's gateway address port 53 (where pods reach
    the host) and on 127.0.0.1 (an ephemeral port, for the host and tests), forwarding
    other names to the host's resolv.conf nameservers. The ``kube-dns`` EndpointSlice
    (managed by ``cluster.gitops.dev``) points at the gateway address, so the proxy
    DNATs the cluster DNS IP to the server; pods get that cluster IP as nameserver
    (:attr:`ClusterNetwork.cluster_dns`). Without the proxy they get the gateway
    address itself (and :attr:`ClusterNetwork.warnings` says Service IPs do not
    answer). When the gateway is unknown or cannot be listened on, :meth:`start`
    raises :class:`NetworkError`: a cluster whose pods cannot resolve Service names
    refuses to start rather than look healthy.

* With the fake runtime no proxy and no DNS server run: fake pods have no network, and
  thousands of fake pods would cost a cluster-wide pod cache for nothing. The kubelets
  still get the kube-dns cluster IP as cluster DNS (no ``MissingClusterDNS`` events).
* The ingress controller, on any runtime, when an ingress port is configured
  (``--ingress-port``/``--ingress-tls-port`` on ``--ingress-host``): the default
  IngressClass ``builtin`` is created when missing, the router serves the routes, and
  every handled Ingress gets ``status.loadBalancer.ingress`` = the bind address.

Every listener and rule is removed again by :meth:`ClusterNetwork.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from kubeclient.events import EventRecorder
from kubeclient.factory import InformerFactory
from kubeclient.rest import Client, KubeError
from runtime.network import hostports as hostports_mod
from runtime.network import ingress as ingress_mod
from runtime.network import proxy as proxy_mod
from runtime.network.dns import ClusterRecords, DnsOptions, DnsServer
from runtime.network.objects import SERVICE_NAME_LABEL

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

KUBE_DNS = ("kube-system", "kube-dns")
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# A label value cannot contain "/": the controller name in label-value form.
MANAGED_BY = "cluster.gitops.dev"
DNS_PORT = 53


@dataclass(frozen=True)
class NetworkConfig:
    """How the cluster's networking runs (see the module docstring)."""

    service_cidr: str = "10.43.0.0/16"
    cluster_domain: str = "cluster.local"
    #: Whether pods run on a container engine (podman, docker): proxy and DNS server.
    engine: bool = False
    #: The engine bridge's gateway address (None: unknown, no DNS listener for pods).
    gateway: str | None = None
    dns_port: int = DNS_PORT
    ingress_host: str = "127.0.0.1"
    ingress_port: int | None = None
    ingress_tls_port: int | None = None
    #: Where NodePort and LoadBalancer ports listen (``--service-host``).
    service_host: str = "127.0.0.1"
    proxy: proxy_mod.ProxyOptions = field(default_factory=proxy_mod.ProxyOptions)


def cluster_dns_ip(service_cidr: str) -> str:
    """The cluster DNS Service's IP: the 10th address of the service CIDR (kubeadm's
    choice; 10.43.0.10 for 10.43.0.0/16)."""
    return str(ipaddress.IPv4Network(service_cidr).network_address + 10)


def kube_dns_service(cluster_ip: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBE_DNS[1],
            "namespace": KUBE_DNS[0],
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT},
            ],
        },
    }


def kube_dns_slice(address: str, port: int) -> Obj:
    """The EndpointSlice of ``kube-dns``: the DNS server's address on the bridge."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": KUBE_DNS[1],
            "namespace": KUBE_DNS[0],
            "labels": {
                SERVICE_NAME_LABEL: KUBE_DNS[1],
                MANAGED_BY_LABEL: MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        ],
    }


async def _create_if_missing(
    client: Client, api_version: str, plural: str, obj: Obj, namespace: str | None
) -> None:
    try:
        await client.create(api_version, plural, obj, namespace=namespace)
    except KubeError as exc:
        if exc.status != 409:
            raise


async def _put(client: Client, api_version: str, plural: str, obj: Obj, namespace: str) -> None:
    """Create ``obj`` or replace the stored one's labels and contents."""
    name = str(obj["metadata"]["name"])
    try:
        current = await client.get(api_version, plural, name, namespace=namespace)
    except KubeError as exc:
        if not exc.not_found:
            raise
        await client.create(api_version, plural, obj, namespace=namespace)
        return
    desired = {**obj, "metadata": {**current["metadata"], "labels": obj["metadata"]["labels"]}}
    if any(current.get(k) != desired.get(k) for k in ("endpoints", "ports", "addressType")) or (
        current["metadata"].get("labels") != obj["metadata"]["labels"]
    ):
        await client.replace(api_version, plural, name, desired, namespace=namespace)


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def ensure_ip_forward(path: Path = IP_FORWARD) -> str | None:
    """Turn on IPv4 forwarding when it is off (a connection from a pod to a cluster IP
    whose endpoint is another pod on the same bridge is routed through the host; the
    engines usually turn it on, a fresh host may have it off). Returns a warning when it
    is off and cannot be turned on, else None."""
    try:
        if path.read_text().strip() == "1":
            return None
        path.write_text("1\n")
    except OSError as exc:
        return (
            f"net.ipv4.ip_forward is off and cannot be turned on ({exc.strerror or exc}): "
            "connections from pods to cluster IPs of other pods will not answer; run "
            "`sysctl -w net.ipv4.ip_forward=1` as root"
        )
    log.info("network.ip_forward_enabled", path=str(path))
    return None


class NetworkError(Exception):
    """The networking cannot start (e.g. an ingress port is taken); the message says
    what to do."""


class ClusterNetwork:
    """The proxy, DNS server, ingress controller and host ports of one cluster (start,
    then stop)."""

    def __init__(self, client: Client, config: NetworkConfig) -> None:
        self.client = client
        self.config = config
        self.dns_ip = cluster_dns_ip(config.service_cidr)
        self.factory = InformerFactory(client)
        self.proxy: proxy_mod.ServiceProxy | None = None
        self.dns: DnsServer | None = None
        self.router: ingress_mod.IngressRouter | None = None
        self.table: ingress_mod.RouteTable | None = None
        self.hostports: hostports_mod.HostPorts | None = None
        self.events: EventRecorder | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._status_tasks: set[asyncio.Task[Any]] = set()
        self._gateway_dns = False
        #: What runs degraded, for the first lines of the start-up banner.
        self.warnings: list[str] = []

    @property
    def cluster_dns(self) -> tuple[str, ...]:
        """What the kubelets use as ``--cluster-dns``: the kube-dns cluster IP when pods
        reach the DNS server through it (proxy and gateway listener up); the gateway
        address itself when only the proxy is missing; else none. Without an engine
        (fake runtime) the kube-dns cluster IP: fake pods have no network to use it on,
        and pretending they do spares every pod a ``MissingClusterDNS`` event."""
        if not self.config.engine:
            return (self.dns_ip,)
        if not self._gateway_dns or self.config.gateway is None:
            return ()
        return (self.dns_ip,) if self.proxy is not None else (self.config.gateway,)

    @property
    def dns_addresses(self) -> list[tuple[str, int]]:
        return self.dns.addresses if self.dns is not None else []

    @property
    def ingress_ports(self) -> dict[str, int]:
        return self.router.ports if self.router is not None else {}

    def summary(self) -> list[str]:
        """What runs, for the ``cluster up`` banner."""
        lines: list[str] = []
        if self.proxy is not None:
            lines.append("service proxy: iptables (chains GITOPS-*)")
        if self.dns is not None:
            listen = ", ".join(f"{h}:{p}" for h, p in self.dns.addresses)
            lines.append(f"cluster DNS: {listen} (pods use {', '.join(self.cluster_dns) or '-'})")
        for name, port in sorted(self.ingress_ports.items()):
            lines.append(f"ingress {name}: {self.config.ingress_host}:{port}")
        if self.hostports is not None:
            lines.append(f"service node ports and load balancers: {self.config.service_host}")
        return lines

    async def start(self) -> None:
        await _create_if_missing(
            self.client, "v1", "services", kube_dns_service(self.dns_ip), KUBE_DNS[0]
        )
        if self.config.engine:
            await self._start_proxy()
            await self._start_dns()
        if self.config.ingress_port is not None or self.config.ingress_tls_port is not None:
            await self._start_ingress()
        await self._start_hostports()
        self.factory.start()
        await self.factory.wait_synced()
        if self.table is not None:
            for ing in self.table.handled_ingresses():
                self._publish(ing)

    async def _start_proxy(self) -> None:
        rules = proxy_mod.ProxyRules()
        proxy = proxy_mod.ServiceProxy(rules, self.config.proxy)
        try:
            await proxy.cleanup()
        except proxy_mod.ProxyError as exc:
            hint = (
                "Service cluster IPs will not answer (pods still resolve names through "
                "the DNS server on the bridge): run as root with iptables installed "
                "(apt-get install iptables)"
            )
            log.warning("network.proxy_unavailable", error=exc.message, hint=hint)
            self.warnings.append(f"no service proxy: {exc.message}. {hint}")
            return
        forwarding = ensure_ip_forward()
        if forwarding is not None:
            self.warnings.append(forwarding)
        changed = asyncio.Event()
        proxy_mod.bind_informers(
            rules,
            services=self.factory.informer("v1", "services"),
            slices=self.factory.informer("discovery.k8s.io/v1", "endpointslices"),
            changed=changed,
        )
        self.proxy = proxy
        task = asyncio.create_task(proxy.run(changed))
        task.add_done_callback(_report_proxy_end)
        self._tasks.append(task)

    async def _start_dns(self) -> None:
        records = ClusterRecords.from_informers(
            self.factory.informer("v1", "services"),
            self.factory.informer("discovery.k8s.io/v1", "endpointslices"),
            self.factory.informer("v1", "pods"),
            self.config.cluster_domain,
        )
        gateway = self.config.gateway
        if gateway is None:
            # A cluster whose pods cannot resolve Service names must not look healthy.
            raise NetworkError(
                "pods would get no cluster DNS: the container engine's bridge address is "
                "unknown, so the DNS server has no address pods can reach"
            )
        listen = ((gateway, self.config.dns_port), ("127.0.0.1", 0))
        server = DnsServer(
            records,
            DnsOptions(domain=self.config.cluster_domain, listen=listen, freebind=True),
        )
        try:
            await server.start()
        except OSError as exc:
            raise NetworkError(
                f"pods would get no cluster DNS: cannot listen on {gateway}:"
                f"{self.config.dns_port} (the engine bridge's address): "
                f"{exc.strerror or exc}. Is another DNS server bound to port "
                f"{self.config.dns_port} on all addresses (e.g. dnsmasq)? Stop it, or bind it "
                "to 127.0.0.1 only."
            ) from exc
        self.dns = server
        self._gateway_dns = True
        await _put(
            self.client,
            "discovery.k8s.io/v1",
            "endpointslices",
            kube_dns_slice(gateway, self.config.dns_port),
            KUBE_DNS[0],
        )

    async def _start_ingress(self) -> None:
        await _create_if_missing(
            self.client,
            "networking.k8s.io/v1",
            "ingressclasses",
            ingress_mod.default_ingress_class(),
            None,
        )
        host = self.config.ingress_host
        table = ingress_mod.RouteTable()
        ingress_mod.bind_informers(
            table,
            ingresses=self.factory.informer("networking.k8s.io/v1", "ingresses"),
            services=self.factory.informer("v1", "services"),
            slices=self.factory.informer("discovery.k8s.io/v1", "endpointslices"),
            secrets=self.factory.informer("v1", "secrets"),
            ingress_classes=self.factory.informer("networking.k8s.io/v1", "ingressclasses"),
            changed=self._publish,
        )
        router = ingress_mod.IngressRouter(
            table,
            ingress_mod.IngressOptions(
                http=(host, self.config.ingress_port)
                if self.config.ingress_port is not None
                else None,
                https=(host, self.config.ingress_tls_port)
                if self.config.ingress_tls_port is not None
                else None,
            ),
        )
        try:
            await router.start()
        except OSError as exc:
            ports = [p for p in (self.config.ingress_port, self.config.ingress_tls_port) if p]
            raise NetworkError(
                f"cannot listen for ingress on {host} port(s) {ports}: "
                f"{exc.strerror or exc}: choose other --ingress-port/--ingress-tls-port"
            ) from exc
        self.table, self.router = table, router

    async def _start_hostports(self) -> None:
        events = EventRecorder(self.client, "service-lb-controller")
        self.events = events
        self._tasks.append(asyncio.create_task(events.run()))
        hostports = hostports_mod.HostPorts(
            hostports_mod.HostPortsOptions(host=self.config.service_host),
            status=self._publish_service,
            event=lambda svc, kind, reason, message: events.event(
                svc, kind, reason, "Listen", message
            ),
        )
        hostports_mod.bind_informers(
            hostports,
            services=self.factory.informer("v1", "services"),
            slices=self.factory.informer("discovery.k8s.io/v1", "endpointslices"),
        )
        await hostports.start()
        self.hostports = hostports

    def _publish_service(self, svc: Obj, ingress: list[Obj]) -> None:
        """Set a LoadBalancer Service's status (in the background)."""

        async def publish() -> None:
            try:
                await hostports_mod.publish_status(self.client, svc, ingress)
            except KubeError as exc:
                if not exc.not_found:  # deleted meanwhile: nothing to report on
                    log.warning("network.service_status_failed", error=str(exc))

        task = asyncio.create_task(publish())
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    def _publish(self, ing: Obj) -> None:
        """Report the bind address on a handled Ingress (in the background)."""
        if self.table is None or not self.table.handles(ing):
            return
        if ingress_mod.status_is_current(ing, self.config.ingress_host):
            return

        async def publish() -> None:
            try:
                await ingress_mod.publish_status(self.client, ing, self.config.ingress_host)
            except KubeError as exc:
                if not exc.not_found:  # deleted meanwhile: nothing to report on
                    log.warning("network.ingress_status_failed", error=str(exc))

        task = asyncio.create_task(publish())
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    async def stop(self) -> None:
        """Stop everything in reverse order; removes the listeners and the rules."""
        if self.hostports is not None:
            await self.hostports.stop()
            self.hostports = None
        if self.events is not None:
            await self.events.flush(timeout=2.0)
            self.events = None
        for task in [*self._status_tasks, *self._tasks]:
            task.cancel()
        for task in [*self._status_tasks, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.router is not None:
            await self.router.stop()
            self.router = None
        if self.dns is not None:
            await self.dns.stop()
            self.dns = None
        if self.proxy is not None:
            try:
                await self.proxy.cleanup()
            except proxy_mod.ProxyError as exc:
                log.warning("network.proxy_cleanup_failed", error=exc.message)
            self.proxy = None
        await self.factory.stop()


def _report_proxy_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("network.proxy_stopped", error=str(exc))
