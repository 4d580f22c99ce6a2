"""The cluster networking's wiring (runtime.network.wiring): the cluster DNS address, the
kube-dns Service and slice, and which nameserver the kubelets are given."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from kubeclient.rest import Client
from runtime.network.dns import ClusterRecords, DnsOptions, DnsServer
from runtime.network.proxy import ProxyOptions
from runtime.network.wiring import (
    ClusterNetwork,
    NetworkConfig,
    NetworkError,
    cluster_dns_ip,
    ensure_ip_forward,
    kube_dns_service,
    kube_dns_slice,
)


def test_the_cluster_dns_ip_is_the_tenth_address_of_the_service_cidr() -> None:
    assert cluster_dns_ip("10.43.0.0/16") == "10.43.0.10"
    assert cluster_dns_ip("10.96.0.0/12") == "10.96.0.10"
    assert cluster_dns_ip("192.168.7.0/24") == "192.168.7.10"


def test_kube_dns_is_a_selectorless_cluster_ip_service_on_53_udp_and_tcp() -> None:
    svc = kube_dns_service("10.43.0.10")
    assert svc["metadata"]["namespace"] == "kube-system"
    assert svc["spec"]["clusterIP"] == "10.43.0.10"
    assert "selector" not in svc["spec"]
    assert [(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]] == [
        ("dns", "UDP", 53),
        ("dns-tcp", "TCP", 53),
    ]


def test_the_kube_dns_slice_points_at_the_gateway_and_names_its_service() -> None:
    eps = kube_dns_slice("172.17.0.1", 53)
    labels = eps["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "kube-dns"
    assert labels["endpointslice.kubernetes.io/managed-by"] == "cluster.gitops.dev"
    assert eps["endpoints"] == [{"addresses": ["172.17.0.1"], "conditions": {"ready": True}}]
    assert {p["name"] for p in eps["ports"]} == {"dns", "dns-tcp"}


def network(config: NetworkConfig, *, proxy: bool, gateway_dns: bool) -> ClusterNetwork:
    net = ClusterNetwork(cast(Client, object()), config)
    net.proxy = cast(Any, object()) if proxy else None
    net._gateway_dns = gateway_dns
    return net


def test_kubelets_get_the_cluster_ip_when_the_proxy_and_the_gateway_listener_run() -> None:
    config = NetworkConfig(engine=True, gateway="10.88.0.1")
    assert network(config, proxy=True, gateway_dns=True).cluster_dns == ("10.43.0.10",)


def test_without_the_proxy_kubelets_get_the_gateway_address_itself() -> None:
    config = NetworkConfig(engine=True, gateway="10.88.0.1")
    assert network(config, proxy=False, gateway_dns=True).cluster_dns == ("10.88.0.1",)


def test_without_a_gateway_listener_kubelets_get_no_cluster_dns() -> None:
    config = NetworkConfig(engine=True, gateway=None)
    assert network(config, proxy=True, gateway_dns=False).cluster_dns == ()


def test_fake_runtime_kubelets_get_the_cluster_ip() -> None:
    assert network(NetworkConfig(), proxy=False, gateway_dns=False).cluster_dns == ("10.43.0.10",)


def test_the_dns_server_binds_a_gateway_address_that_is_on_no_interface_yet() -> None:
    # podman's bridge (and its gateway address) appears with the first container; with
    # freebind the DNS server listens there already (nothing is sent to it here).
    async def go() -> list[tuple[str, int]]:
        server = DnsServer(
            ClusterRecords(),
            DnsOptions(listen=(("198.51.100.77", 0),), upstreams=[], freebind=True),
        )
        await server.start()
        try:
            return server.addresses
        finally:
            await server.stop()

    (address,) = asyncio.run(go())
    assert address[0] == "198.51.100.77" and address[1] > 0


def test_an_engine_cluster_whose_bridge_address_is_unknown_refuses_to_start() -> None:
    net = ClusterNetwork(cast(Client, None), NetworkConfig(engine=True, gateway=None))
    with pytest.raises(NetworkError, match="pods would get no cluster DNS"):
        asyncio.run(net._start_dns())
    assert net.dns is None and net.cluster_dns == ()


def test_a_gateway_dns_port_held_by_another_server_refuses_to_start_naming_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.3", 0))
        port = taken.getsockname()[1]
        config = NetworkConfig(engine=True, gateway="127.0.0.3", dns_port=port)
        net = ClusterNetwork(cast(Client, None), config)
        with pytest.raises(NetworkError) as caught:
            asyncio.run(net._start_dns())
    assert f"127.0.0.3:{port}" in str(caught.value)
    assert "no cluster DNS" in str(caught.value)


def test_a_cluster_without_the_service_proxy_says_so_in_its_warnings() -> None:
    config = NetworkConfig(
        engine=True,
        gateway="10.88.0.1",
        proxy=ProxyOptions(iptables="/nonexistent/iptables"),
    )
    net = ClusterNetwork(cast(Client, None), config)
    asyncio.run(net._start_proxy())
    assert net.proxy is None
    (warning,) = net.warnings
    assert warning.startswith("no service proxy:") and "cluster IPs will not answer" in warning


def test_ip_forwarding_is_turned_on_when_off_and_a_failure_is_a_warning(tmp_path: Path) -> None:
    knob = tmp_path / "ip_forward"
    knob.write_text("0\n")
    assert ensure_ip_forward(knob) is None
    assert knob.read_text() == "1\n"
    assert ensure_ip_forward(knob) is None  # already on: nothing written
    warning = ensure_ip_forward(tmp_path / "missing" / "ip_forward")
    assert warning is not None and "net.ipv4.ip_forward" in warning
