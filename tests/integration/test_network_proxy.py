"""The service proxy (runtime/network/proxy.py) on real iptables, in network namespaces
the test creates: a "host" namespace with a bridge ``gtb0`` (gateway 10.99.0.1/24) and
ip_forward on, "pod" namespaces on veth pairs (10.99.0.x, default route via the gateway)
running small Python TCP and UDP servers that answer with their name and the client
address they saw. The proxy's rules go into the "host" namespace only
(``ProxyOptions(netns=...)``); clients connect to cluster IPs from a pod namespace.
Nothing outside these namespaces is touched; all are deleted at the end.

The "host" has a default route via 10.99.0.254 (nobody), standing for a real host's
uplink: traffic to a cluster IP that is not DNATed is forwarded there, through the
filter FORWARD chain, where the proxy's REJECT rules live."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime.network.proxy import ProxyOptions, ProxyRules, ServiceProxy

pytestmark = pytest.mark.integration

GATEWAY = "10.99.0.1"
CLUSTER_IP = "10.43.0.10"
TCP_TARGET = 8080
UDP_TARGET = 5353
PORTS = (str(TCP_TARGET), str(UDP_TARGET))

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", int(sys.argv[2])))
tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", int(sys.argv[3])))
def serve_udp():
    while True:
        data, addr = udp.recvfrom(2048)
        udp.sendto(f"{name} {addr[0]}".encode(), addr)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, addr = tcp.accept()
    conn.sendall(f"{name} {addr[0]}\n".encode())
    conn.close()
"""

CLIENT = r"""
import json, socket, sys, time
proto, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
results = []
for _ in range(count):
    started = time.monotonic()
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=3) as s:
                answer = s.makefile().readline().strip()
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(b"hello", (host, port))
                answer = s.recv(2048).decode()
        results.append({"answer": answer})
    except OSError as exc:
        results.append({"error": type(exc).__name__, "seconds": time.monotonic() - started})
print(json.dumps(results))
"""


def netns_exec(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns]


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


@dataclass
class Topology:
    host: str
    pods: dict[str, str]  # pod name -> netns
    ips: dict[str, str]  # pod name -> IP
    namespaces: list[str] = field(default_factory=list)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def client(self, netns: str, proto: str, ip: str, port: int, count: int) -> list[Any]:
        out = sh(
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-c",
            CLIENT,
            proto,
            ip,
            str(port),
            str(count),
        )
        result: list[Any] = json.loads(out)
        return result


def _create(topo: Topology, name: str) -> str:
    netns = f"{topo.host}-{name}" if name else topo.host
    sh("ip", "netns", "add", netns)
    topo.namespaces.append(netns)
    sh("ip", "-n", netns, "link", "set", "lo", "up")
    return netns


def _build(topo: Topology, pods: list[str]) -> None:
    host = _create(topo, "")
    sh("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "-n", host, "link", "add", "gtb0", "type", "bridge")
    sh("ip", "-n", host, "addr", "add", f"{GATEWAY}/24", "dev", "gtb0")
    sh("ip", "-n", host, "link", "set", "gtb0", "up")
    sh("ip", "-n", host, "route", "add", "default", "via", "10.99.0.254", "dev", "gtb0")
    for i, pod in enumerate(pods, start=11):
        netns = _create(topo, pod)
        veth = f"gtv{i}"
        sh(
            "ip",
            "-n",
            host,
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns,
        )
        sh("ip", "-n", host, "link", "set", veth, "master", "gtb0", "up")
        ip = f"10.99.0.{i}"
        sh("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "route", "add", "default", "via", GATEWAY)
        topo.pods[pod] = netns
        topo.ips[pod] = ip


def _start_servers(topo: Topology, names: list[str]) -> None:
    for name in names:
        proc = subprocess.Popen(
            [*netns_exec(topo.pods[name]), sys.executable, "-c", SERVER, name, *PORTS],
            stdout=subprocess.PIPE,
            text=True,
        )
        topo.servers.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"


def _teardown(topo: Topology) -> None:
    for proc in topo.servers:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    for netns in reversed(topo.namespaces):
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture
def topo() -> Iterator[Topology]:
    reason = _can_run()
    if reason:  # a precondition scripts/test.sh provides: fail, never skip
        pytest.fail(f"the service proxy test cannot run: {reason}")
    topology = Topology(host=f"gitops-test-{secrets.token_hex(3)}", pods={}, ips={})
    try:
        _build(topology, ["pod1", "pod2", "pod3", "client"])
        _start_servers(topology, ["pod1", "pod2", "pod3"])
        yield topology
    finally:
        _teardown(topology)
    assert not any(ns in sh("ip", "netns", "list") for ns in topology.namespaces)


# --- objects ------------------------------------------------------------------------------
def service(name: str, ip: str, *, affinity: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "clusterIP": ip,
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": TCP_TARGET},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": UDP_TARGET},
        ],
    }
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def endpoint_slice(service_name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-abcde",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": TCP_TARGET, "protocol": "TCP"},
            {"name": "dns", "port": UDP_TARGET, "protocol": "UDP"},
        ],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


@dataclass
class Proxy:
    rules: ProxyRules
    proxy: ServiceProxy

    def sync(self) -> bool:
        return asyncio.run(self.proxy.sync())


@pytest.fixture
def proxy(topo: Topology) -> Iterator[Proxy]:
    options = ProxyOptions(netns=topo.host)
    rules = ProxyRules(options)
    service_proxy = ServiceProxy(rules, options)
    try:
        yield Proxy(rules, service_proxy)
    finally:
        asyncio.run(service_proxy.cleanup())
    assert our_rules(topo.host) == []


def our_rules(netns: str) -> list[str]:
    """Every line of ``iptables -S`` in both tables that mentions a GITOPS- chain."""
    lines: list[str] = []
    for table in ("nat", "filter"):
        listing = sh("ip", "netns", "exec", netns, "iptables", "-t", table, "-S")
        lines += [line for line in listing.splitlines() if "GITOPS-" in line]
    return lines


def answers(results: list[Any]) -> list[str]:
    assert all("answer" in r for r in results), results
    return [str(r["answer"]) for r in results]


def set_br_netfilter(netns: str, value: int) -> bool:
    path = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not path.exists():
        return False
    sh("ip", "netns", "exec", netns, "sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={value}")
    return True


# --- tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("br_netfilter", [0, 1], ids=["without-br_netfilter", "with-br_netfilter"])
def test_a_cluster_ip_answers_from_a_pod_and_connections_spread_over_three_endpoints(
    topo: Topology, proxy: Proxy, br_netfilter: int
) -> None:
    if not set_br_netfilter(topo.host, br_netfilter):
        pytest.skip("br_netfilter is not loaded: bridge-nf-call-iptables does not exist")
    proxy.rules.upsert(service("web", CLUSTER_IP))
    proxy.rules.upsert(
        endpoint_slice("web", [topo.ips["pod1"], topo.ips["pod2"], topo.ips["pod3"]])
    )
    assert proxy.sync() is True
    assert proxy.sync() is False  # unchanged: nothing written

    seen = answers(topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 40))
    names = {a.split()[0] for a in seen}
    assert names == {"pod1", "pod2", "pod3"}
    # Masqueraded: every endpoint saw the bridge gateway as the client.
    assert {a.split()[1] for a in seen} == {GATEWAY}


def test_the_host_itself_reaches_a_cluster_ip_through_the_output_chain(
    topo: Topology, proxy: Proxy
) -> None:
    proxy.rules.upsert(service("web", CLUSTER_IP))
    proxy.rules.upsert(endpoint_slice("web", [topo.ips["pod2"]]))
    proxy.sync()

    assert [a.split()[0] for a in answers(topo.client(topo.host, "tcp", CLUSTER_IP, 80, 3))] == [
        "pod2"
    ] * 3


@pytest.mark.parametrize("br_netfilter", [0, 1], ids=["without-br_netfilter", "with-br_netfilter"])
def test_a_pod_reaches_its_own_service_hairpin(
    topo: Topology, proxy: Proxy, br_netfilter: int
) -> None:
    if not set_br_netfilter(topo.host, br_netfilter):
        pytest.skip("br_netfilter is not loaded: bridge-nf-call-iptables does not exist")
    if br_netfilter:
        # With br_netfilter a packet DNATed to a pod on the same bridge is bridged, not
        # routed, and goes back out the port it came in: that needs the port's hairpin
        # mode, which podman's CNI bridge sets ("hairpinMode": true), as kubelet does.
        sh("ip", "-n", topo.host, "link", "set", "gtv11", "type", "bridge_slave", "hairpin", "on")
    proxy.rules.upsert(service("solo", CLUSTER_IP))
    proxy.rules.upsert(endpoint_slice("solo", [topo.ips["pod1"]]))
    proxy.sync()

    seen = answers(topo.client(topo.pods["pod1"], "tcp", CLUSTER_IP, 80, 5))
    assert seen == [f"pod1 {GATEWAY}"] * 5


def test_udp_service_ports_are_forwarded_to_the_endpoints(topo: Topology, proxy: Proxy) -> None:
    proxy.rules.upsert(service("dns", CLUSTER_IP))
    proxy.rules.upsert(
        endpoint_slice("dns", [topo.ips["pod1"], topo.ips["pod2"], topo.ips["pod3"]])
    )
    proxy.sync()

    seen = answers(topo.client(topo.pods["client"], "udp", CLUSTER_IP, 53, 30))
    assert {a.split()[0] for a in seen} == {"pod1", "pod2", "pod3"}


def test_client_ip_affinity_keeps_a_client_on_one_endpoint(topo: Topology, proxy: Proxy) -> None:
    proxy.rules.upsert(service("sticky", CLUSTER_IP, affinity=True))
    proxy.rules.upsert(
        endpoint_slice("sticky", [topo.ips["pod1"], topo.ips["pod2"], topo.ips["pod3"]])
    )
    proxy.sync()

    seen = answers(topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 15))
    assert len({a.split()[0] for a in seen}) == 1


def test_a_service_whose_endpoints_are_removed_refuses_connections_at_once(
    topo: Topology, proxy: Proxy
) -> None:
    svc = service("web", CLUSTER_IP)
    eps = endpoint_slice("web", [topo.ips["pod1"], topo.ips["pod2"]])
    proxy.rules.upsert(svc)
    proxy.rules.upsert(eps)
    proxy.sync()
    assert len(answers(topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 2))) == 2

    proxy.rules.remove(eps)
    assert proxy.sync() is True
    started = time.monotonic()
    results = topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 3)
    assert [r.get("error") for r in results] == ["ConnectionRefusedError"] * 3
    assert time.monotonic() - started < 2.0
    # The endpoints' chains are gone from the kernel, not just unreferenced.
    assert not [line for line in our_rules(topo.host) if "GITOPS-SEP-" in line]

    proxy.rules.upsert(endpoint_slice("web", [topo.ips["pod3"]]))
    proxy.sync()
    assert answers(topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 1))[0].startswith("pod3")


def test_cleanup_leaves_no_gitops_chain_or_jump_rule(topo: Topology, proxy: Proxy) -> None:
    proxy.rules.upsert(service("web", CLUSTER_IP))
    proxy.rules.upsert(service("empty", "10.43.0.11"))
    proxy.rules.upsert(endpoint_slice("web", [topo.ips["pod1"]]))
    proxy.sync()
    rules = our_rules(topo.host)
    assert any(r.startswith("-A PREROUTING") for r in rules)
    assert any(r.startswith("-A FORWARD") for r in rules)
    assert any("REJECT" in r for r in rules)

    asyncio.run(proxy.proxy.cleanup())
    assert our_rules(topo.host) == []
    asyncio.run(proxy.proxy.cleanup())  # idempotent
    assert our_rules(topo.host) == []
    # After cleanup the next sync writes everything again.
    assert proxy.sync() is True
    assert answers(topo.client(topo.pods["client"], "tcp", CLUSTER_IP, 80, 1))[0].startswith("pod1")
