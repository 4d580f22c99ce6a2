"""Service and ingress semantics on real containers, on podman AND on docker, in one
``gitops cluster up --runtime podman|docker`` per engine (each test in its own
namespace):

* a pod that fails its readiness probe loses its proxy rules within a few probe periods
  and stops receiving the Service's traffic;
* a StatefulSet pod reaches its sibling as ``web-0.web`` through the headless Service;
* the example repository's guestbook (an Ingress with host ``guestbook.local``, ``/api``
  → backend, ``/`` → frontend) answers on the ingress port over HTTP, and over HTTPS
  with the certificate of a TLS Secret chosen by SNI;
* NodePort and LoadBalancer Services answer on 127.0.0.1;
* ``sessionAffinity: ClientIP`` keeps a client on one pod; a UDP Service port reaches
  its endpoint (a DNS server) through the proxy;
* an ExternalName Service naming another Service takes a pod there (CNAME and the
  target's address in one answer);
* deleting a Service removes its rules and its DNS names;
* stopping the cluster leaves no rule, interface, process or container behind.

Clients are busybox pods whose output the tests read from the pod log (there is no
``kubectl exec``); the host checks the proxy's rules with ``iptables -S`` and asks the
cluster DNS directly."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeclient.rest import Client
from runtime.network.ingress import self_signed_certificate
from tests.conftest import ROOT, ClusterProcess, free_port
from tests.integration.harness import BRIDGES, run, web_deployment
from tests.integration.netharness import (
    client_pod,
    cluster_dns_address,
    dns_lookup,
    fetch_pod,
    gitops_rules,
    http_get,
    namespace,
    pod_log,
    ready_endpoints,
    ready_pods,
    results,
    run_client,
    until,
    web_service,
)

pytestmark = pytest.mark.integration

GUESTBOOK = ROOT / "examples" / "repo" / "apps" / "guestbook"


@dataclass
class HostState:
    """What the host had before the cluster started: interfaces and processes."""

    interfaces: set[str]
    pids: set[int]

    @staticmethod
    def now() -> HostState:
        return HostState(interfaces(), set(processes()))


@dataclass
class Cluster:
    engine: str
    proc: ClusterProcess
    ingress_port: int
    ingress_tls_port: int
    before: HostState
    stopped: bool = field(default=False)


def interfaces() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().partition("@")[0] for line in out.stdout.splitlines()}


def processes() -> dict[int, str]:
    """pid → command line of every process (kernel threads left out)."""
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            found[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def our_containers(engine: str) -> list[str]:
    out = subprocess.run(
        [engine, "ps", "-a", "--filter", "label=gitops.builtin/node", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.split()


@pytest.fixture(scope="module", params=["podman", "docker"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    engine: str = request.param
    ingress_port, ingress_tls_port = free_port(), free_port()
    before = HostState.now()
    proc = ClusterProcess(
        tmp_path_factory.mktemp(f"svc-{engine}"),
        runtime=engine,
        extra_args=(
            "--ingress-port",
            str(ingress_port),
            "--ingress-tls-port",
            str(ingress_tls_port),
        ),
    )
    proc.start(timeout=90.0)
    state = Cluster(engine, proc, ingress_port, ingress_tls_port, before)
    try:
        yield state
    finally:
        proc.stop(timeout=90.0)


async def create_all(client: Client, ns: str, *objects: dict[str, Any]) -> None:
    await client.create("v1", "namespaces", namespace(ns))
    for obj in objects:
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural = {"Deployment": "deployments", "Service": "services", "StatefulSet": "statefulsets"}
        await client.create(api_version, plural[kind], obj, namespace=ns)


# --- readiness ----------------------------------------------------------------------------
def flaky_deployment() -> dict[str, Any]:
    """Two httpd pods that are ready while /www/ready exists; ``GET /cgi-bin/unready``
    removes it (so the test can fail one pod's readiness probe from the host)."""
    deployment = web_deployment("flaky", 2)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    cgi = (
        r"#!/bin/sh\nbusybox rm -f /www/ready\n"
        r"echo Content-Type: text/plain\necho\necho unready\n"
    )
    container["command"] = [
        "sh",
        "-c",
        "mkdir -p /www/cgi-bin && echo $POD_NAME > /www/index.html && echo ok > /www/ready"
        f" && printf '{cgi}' > /www/cgi-bin/unready && busybox chmod +x /www/cgi-bin/unready"
        " && exec httpd -f -p 8080 -h /www",
    ]
    container["readinessProbe"] = {
        "httpGet": {"path": "/ready", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    return deployment


def dnat_to(address: str) -> bool:
    """Whether a proxy rule DNATs to ``address`` (ip:port)."""
    return any(f"--to-destination {address}" in rule for rule in gitops_rules())


def host_get(url: str) -> str:
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=10)
    try:
        conn.request("GET", "/" + rest)
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


def test_a_pod_failing_readiness_stops_receiving_traffic_within_a_few_probe_periods(
    cluster: Cluster,
) -> None:
    ns = "ready"

    async def body(client: Client) -> None:
        await create_all(client, ns, flaky_deployment(), web_service("flaky"))

        async def two_ready() -> dict[str, str] | None:
            pods = await ready_pods(client, ns, "app=flaky")
            eps = await ready_endpoints(client, ns, "flaky")
            ok = len(pods) == 2 and sorted(eps) == sorted(pods.values())
            return pods if ok and all(dnat_to(f"{ip}:8080") for ip in pods.values()) else None

        pods = await until("2 ready flaky pods with proxy rules", two_ready)
        (victim, victim_ip), (survivor, _) = sorted(pods.items())

        started = time.monotonic()
        reply = await asyncio.to_thread(host_get, f"http://{victim_ip}:8080/cgi-bin/unready")
        assert reply == "unready"

        async def rules_gone() -> bool:
            return not dnat_to(f"{victim_ip}:8080")

        await until(f"{victim}'s proxy rule to go", rules_gone)
        elapsed = time.monotonic() - started
        print(f"{cluster.engine}: unready pod out of the proxy rules after {elapsed:.1f} s")
        # Probe period 1 s, failure threshold 2: a few periods, with room for a slow CI.
        assert elapsed < 10.0, elapsed
        assert await ready_endpoints(client, ns, "flaky") == [pods[survivor]]

        lines = await run_client(client, ns, fetch_pod("after", ["http://flaky"], repeat=20))
        got = results(lines)
        assert len(got) == 20 and {(v, b) for v, _, b in got} == {("GOT", survivor)}, lines

    run(cluster.proc, body)


# --- StatefulSet and headless Service -------------------------------------------------------
def peers_statefulset() -> dict[str, Any]:
    """Two httpd pods serving their own name; each keeps fetching both members by
    ``<pod>.web`` and prints ``PEER <pod> <body>`` (or ``NOPEER <pod> <error>``)."""
    loop = (
        "while true; do for p in web-0 web-1; do "
        'if out=$(busybox timeout 5 wget -qO- "http://$p.web:8080/" 2>&1); '
        'then echo "PEER $p $out"; else echo "NOPEER $p $out"; fi; done; sleep 1; done'
    )
    statefulset = web_deployment("web", 2)
    statefulset["kind"] = "StatefulSet"
    statefulset["spec"]["serviceName"] = "web"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "sh",
        "-c",
        f"mkdir -p /www && echo $POD_NAME > /www/index.html && httpd -p 8080 -h /www && {loop}",
    ]
    return statefulset


def test_a_statefulset_pod_reaches_its_sibling_by_name_through_the_headless_service(
    cluster: Cluster,
) -> None:
    ns = "sts"
    headless = web_service("web", clusterIP="None")
    headless["spec"]["ports"] = [{"name": "http", "port": 8080, "targetPort": "http"}]

    async def body(client: Client) -> None:
        await create_all(client, ns, headless, peers_statefulset())

        async def both_ready() -> dict[str, str] | None:
            pods = await ready_pods(client, ns, "app=web")
            return pods if len(pods) == 2 else None

        pods = await until("web-0 and web-1 ready", both_ready)

        async def sibling_reached() -> list[str] | None:
            lines = await pod_log(client, ns, "web-1")
            return lines if "PEER web-0 web-0" in lines else None

        lines = await until("web-1 to reach web-0 by web-0.web", sibling_reached)
        print("\n".join(lines[-4:]))

        server = await cluster_dns_address(client)
        fqdn = f"web-0.web.{ns}.svc.cluster.local"
        assert await asyncio.to_thread(dns_lookup, server, fqdn) == ("NOERROR", [pods["web-0"]])
        # The headless name itself answers every ready pod.
        rcode, ips = await asyncio.to_thread(dns_lookup, server, f"web.{ns}.svc.cluster.local")
        assert (rcode, sorted(ips)) == ("NOERROR", sorted(pods.values()))

    run(cluster.proc, body)


# --- the guestbook Ingress ------------------------------------------------------------------
def guestbook_objects() -> list[dict[str, Any]]:
    """The example repository's guestbook app, as committed."""
    objects: list[dict[str, Any]] = []
    for path in sorted(GUESTBOOK.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return sorted(objects, key=lambda obj: obj["kind"] != "Namespace")


PLURALS = {
    "Namespace": ("v1", "namespaces"),
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "Ingress": ("networking.k8s.io/v1", "ingresses"),
}


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:``port`` presenting ``host`` as SNI and Host (curl's
    ``--resolve host:port:127.0.0.1``)."""

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def https_get(port: int, host: str, path: str, cafile: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cafile))
    conn = _SniConnection(host, port, timeout=10, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode().strip()
    finally:
        conn.close()


def test_the_guestbook_ingress_routes_api_to_the_backend_and_the_rest_to_the_frontend(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = "guestbook"
    cert, key = self_signed_certificate("guestbook.local")
    cafile = tmp_path / "guestbook.crt"
    cafile.write_bytes(cert)

    async def body(client: Client) -> None:
        for obj in guestbook_objects():
            api_version, plural = PLURALS[obj["kind"]]
            target = None if obj["kind"] == "Namespace" else ns
            await client.create(api_version, plural, obj, namespace=target)

        async def routed() -> tuple[str, str] | None:
            api = await asyncio.to_thread(
                http_get, cluster.ingress_port, "guestbook.local", "/api/"
            )
            root = await asyncio.to_thread(http_get, cluster.ingress_port, "guestbook.local", "/")
            if api[0] == 200 and root[0] == 200:
                return api[1].strip(), root[1].strip()
            return None

        assert await until("the guestbook through the ingress", routed) == ("backend", "frontend")
        ingress = await client.get("networking.k8s.io/v1", "ingresses", "guestbook", namespace=ns)
        assert ingress["status"]["loadBalancer"]["ingress"], ingress["status"]

        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "guestbook-tls"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert.decode(), "tls.key": key.decode()},
        }
        await client.create("v1", "secrets", secret, namespace=ns)
        await client.patch(
            "networking.k8s.io/v1",
            "ingresses",
            "guestbook",
            {"spec": {"tls": [{"hosts": ["guestbook.local"], "secretName": "guestbook-tls"}]}},
            namespace=ns,
        )

        async def over_https() -> tuple[str, str] | None:
            try:
                api = await asyncio.to_thread(
                    https_get, cluster.ingress_tls_port, "guestbook.local", "/api/", cafile
                )
                root = await asyncio.to_thread(
                    https_get, cluster.ingress_tls_port, "guestbook.local", "/", cafile
                )
            except (OSError, ssl.SSLError):  # the Secret's certificate not served yet
                return None
            return (api[1], root[1]) if api[0] == 200 and root[0] == 200 else None

        assert await until("the guestbook over HTTPS", over_https) == ("backend", "frontend")

    run(cluster.proc, body)


# --- host ports -----------------------------------------------------------------------------
def test_node_port_and_load_balancer_services_answer_on_loopback(cluster: Cluster) -> None:
    ns = "ports"
    lb_port = free_port()
    node_port_svc = web_service("web", type="NodePort")
    node_port_svc["metadata"]["name"] = "web-np"
    balancer = web_service("web", type="LoadBalancer")
    balancer["metadata"]["name"] = "web-lb"
    balancer["spec"]["ports"][0]["port"] = lb_port

    async def body(client: Client) -> None:
        await create_all(client, ns, web_deployment("web", 1), node_port_svc, balancer)
        (pod,) = await until("the web pod", lambda: ready_pods(client, ns, "app=web"))
        svc = await client.get("v1", "services", "web-np", namespace=ns)
        node_port = svc["spec"]["ports"][0]["nodePort"]
        assert 30000 <= node_port <= 32767

        for port in (node_port, lb_port):

            async def answered(p: int = port) -> str | None:
                status, text = await asyncio.to_thread(http_get, p, "any")
                return text.strip() if status == 200 else None

            assert await until(f"the pod on 127.0.0.1:{port}", answered) == pod

        async def published() -> list[Any] | None:
            got = await client.get("v1", "services", "web-lb", namespace=ns)
            return ((got.get("status") or {}).get("loadBalancer") or {}).get("ingress")

        assert await until("the load balancer status", published) == [{"ip": "127.0.0.1"}]

    run(cluster.proc, body)


# --- affinity and UDP -----------------------------------------------------------------------
def test_client_ip_affinity_keeps_a_pod_and_a_udp_port_reaches_its_endpoint(
    cluster: Cluster,
) -> None:
    ns = "udp"
    sticky = web_service("web", sessionAffinity="ClientIP")
    resolver = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "resolver"},
        "spec": {"ports": [{"name": "dns", "port": 5353, "targetPort": 53, "protocol": "UDP"}]},
    }

    async def body(client: Client) -> None:
        await create_all(client, ns, web_deployment("web", 3), sticky, resolver)
        server = await cluster_dns_address(client)
        endpoints = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "resolver-1",
                "labels": {"kubernetes.io/service-name": "resolver"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [server]}],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
        }
        await client.create("discovery.k8s.io/v1", "endpointslices", endpoints, namespace=ns)

        async def three_ready() -> set[str] | None:
            pods = await ready_pods(client, ns, "app=web")
            eps = await ready_endpoints(client, ns, "web")
            return set(pods) if len(pods) == 3 and len(eps) == 3 else None

        replicas = await until("3 ready web pods", three_ready)
        lines = await run_client(client, ns, fetch_pod("sticky", ["http://web"], repeat=12))
        got = results(lines)
        assert len(got) == 12 and all(v == "GOT" for v, _, _ in got), lines
        (chosen,) = {b for _, _, b in got}
        assert chosen in replicas

        web = await client.get("v1", "services", "web", namespace=ns)
        svc = await client.get("v1", "services", "resolver", namespace=ns)
        resolver_ip = svc["spec"]["clusterIP"]
        lookup = f"busybox nslookup web.{ns}.svc.cluster.local {resolver_ip}:5353"
        lines = await run_client(client, ns, client_pod("udp", lookup))
        print("\n".join(lines))
        assert f"Address: {web['spec']['clusterIP']}" in lines, lines

    run(cluster.proc, body)


# --- ExternalName ---------------------------------------------------------------------------
def test_an_external_name_service_takes_a_pod_to_its_target(cluster: Cluster) -> None:
    ns = "alias"
    alias = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "alias"},
        "spec": {"type": "ExternalName", "externalName": f"web.{ns}.svc.cluster.local"},
    }

    async def body(client: Client) -> None:
        await create_all(client, ns, web_deployment("web", 1), web_service("web"), alias)
        (pod,) = await until("the web pod", lambda: ready_pods(client, ns, "app=web"))
        await until("a ready endpoint", lambda: ready_endpoints(client, ns, "web"))
        # The pod's resolver gets the CNAME and the target's address in one answer.
        lines = await run_client(client, ns, fetch_pod("via-alias", ["http://alias"]))
        assert results(lines) == [("GOT", "http://alias", pod)], lines

    run(cluster.proc, body)


# --- deleting a Service ---------------------------------------------------------------------
def test_deleting_a_service_removes_its_rules_and_dns_names(cluster: Cluster) -> None:
    ns = "gone"

    async def body(client: Client) -> None:
        await create_all(client, ns, web_deployment("web", 1), web_service("web"))
        await until("a ready endpoint", lambda: ready_endpoints(client, ns, "web"))
        ip = (await client.get("v1", "services", "web", namespace=ns))["spec"]["clusterIP"]
        server = await cluster_dns_address(client)
        name = f"web.{ns}.svc.cluster.local"

        async def ruled() -> bool:
            return any(f"-d {ip}/32" in rule for rule in gitops_rules())

        await until("the Service's proxy rules", ruled)
        assert await asyncio.to_thread(dns_lookup, server, name) == ("NOERROR", [ip])

        started = time.monotonic()
        await client.delete("v1", "services", "web", namespace=ns)

        async def forgotten() -> bool:
            rcode, _ = await asyncio.to_thread(dns_lookup, server, name)
            return not await ruled() and rcode == "NXDOMAIN"

        await until("the rules and the name to go", forgotten)
        print(
            f"{cluster.engine}: rules and name gone {time.monotonic() - started:.1f} s after delete"
        )

    run(cluster.proc, body)


# --- stopping -------------------------------------------------------------------------------
def test_stopping_the_cluster_leaves_no_rule_interface_process_or_container(
    cluster: Cluster,
) -> None:
    state_dir = str(cluster.proc.state_dir)
    assert our_containers(cluster.engine), "the tests above ran no pod"
    code = cluster.proc.stop(timeout=90.0)
    assert code == 0, code

    assert gitops_rules() == []
    assert our_containers(cluster.engine) == []
    # Engine bridges belong to the engine (created on its first container, kept by it).
    assert interfaces() - cluster.before.interfaces <= set(BRIDGES)
    left = {
        pid: cmd
        for pid, cmd in processes().items()
        if pid not in cluster.before.pids
        and (state_dir in cmd or any(w in cmd for w in ("conmon", "containerd-shim", "httpd")))
    }
    assert left == {}
