"""A pod's resolv.conf as the kubelet computes it (runtime.kubelet.resolvconf): the DNS
policies, the merge with ``dnsConfig``, the limits, and the fallback without cluster DNS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.kubelet.cri import DNSConfig
from runtime.kubelet.podsync import sandbox_config
from runtime.kubelet.resolvconf import (
    ClusterDnsSettings,
    HostResolvConf,
    parse_resolv_conf,
    pod_dns,
    read_host_resolv_conf,
)

HOST = HostResolvConf(
    nameservers=("192.0.2.53",), searches=("corp.example",), options=("timeout:2",)
)
CLUSTER = ClusterDnsSettings(cluster_dns=("10.43.0.10",))


def pod(spec: dict[str, Any] | None = None, namespace: str = "shop") -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "namespace": namespace, "uid": "u1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **(spec or {})},
    }


def test_cluster_first_uses_the_cluster_dns_with_namespace_searches_then_the_hosts() -> None:
    dns = pod_dns(pod(), CLUSTER, HOST)
    assert dns.config == DNSConfig(
        nameservers=("10.43.0.10",),
        searches=("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
        options=("ndots:5",),
    )
    assert dns.warnings == ()


def test_the_cluster_domain_is_configurable() -> None:
    settings = ClusterDnsSettings(cluster_dns=("10.0.0.10",), cluster_domain="k8s.test.")
    config = pod_dns(pod(), settings, HostResolvConf()).config
    assert config is not None
    assert config.searches == ("shop.svc.k8s.test", "svc.k8s.test", "k8s.test")


def test_default_policy_is_left_to_the_engine() -> None:
    assert pod_dns(pod({"dnsPolicy": "Default"}), CLUSTER, HOST).config is None


def test_default_policy_with_dns_config_merges_into_the_hosts_resolv_conf() -> None:
    spec = {
        "dnsPolicy": "Default",
        "dnsConfig": {
            "nameservers": ["192.0.2.54"],
            "options": [{"name": "timeout", "value": "5"}],
        },
    }
    assert pod_dns(pod(spec), CLUSTER, HOST).config == DNSConfig(
        nameservers=("192.0.2.53", "192.0.2.54"),
        searches=("corp.example",),
        options=("timeout:5",),
    )


def test_host_network_pods_with_cluster_first_behave_as_default() -> None:
    assert pod_dns(pod({"hostNetwork": True}), CLUSTER, HOST).config is None


def test_cluster_first_with_host_net_uses_the_cluster_dns() -> None:
    spec = {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
    config = pod_dns(pod(spec), CLUSTER, HOST).config
    assert config is not None and config.nameservers == ("10.43.0.10",)


def test_without_cluster_dns_cluster_first_falls_back_to_default_with_a_warning() -> None:
    dns = pod_dns(pod(), ClusterDnsSettings(), HOST)
    assert dns.config is None
    assert [reason for reason, _ in dns.warnings] == ["MissingClusterDNS"]
    assert 'Falling back to "Default" policy' in dns.warnings[0][1]


def test_dns_config_appends_deduplicated_nameservers_and_searches_and_overrides_options() -> None:
    spec = {
        "dnsConfig": {
            "nameservers": ["10.43.0.10", "192.0.2.7"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        }
    }
    assert pod_dns(pod(spec), CLUSTER, HOST).config == DNSConfig(
        nameservers=("10.43.0.10", "192.0.2.7"),
        searches=(
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "extra.example",
        ),
        options=("ndots:2", "edns0"),
    )


def test_more_than_three_nameservers_are_cut_with_a_warning() -> None:
    spec = {"dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}}
    dns = pod_dns(pod(spec), CLUSTER, HOST)
    assert dns.config is not None
    assert dns.config.nameservers == ("10.43.0.10", "192.0.2.1", "192.0.2.2")
    assert [reason for reason, _ in dns.warnings] == ["DNSConfigForming"]


def test_more_than_32_search_domains_are_cut_with_a_warning() -> None:
    spec = {"dnsConfig": {"searches": [f"d{i}.example" for i in range(40)]}}
    dns = pod_dns(pod(spec), CLUSTER, HostResolvConf())
    assert dns.config is not None
    assert len(dns.config.searches) == 32
    assert dns.config.searches[:4] == (
        "shop.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "d0.example",
    )
    assert [reason for reason, _ in dns.warnings] == ["DNSConfigForming"]


def test_policy_none_takes_dns_config_alone() -> None:
    spec = {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.9"], "searches": ["a.b"]}}
    assert pod_dns(pod(spec), CLUSTER, HOST).config == DNSConfig(
        nameservers=("192.0.2.9",), searches=("a.b",), options=()
    )


def test_resolv_conf_parsing_keeps_the_last_search_line_and_skips_comments() -> None:
    text = (
        "# generated\nnameserver 192.0.2.1\nsearch old.example\n"
        "search a.example b.example. ; trailing\nnameserver 192.0.2.2 # second\n"
        "options ndots:2 rotate\n"
    )
    assert parse_resolv_conf(text) == HostResolvConf(
        ("192.0.2.1", "192.0.2.2"), ("a.example", "b.example"), ("ndots:2", "rotate")
    )


def test_the_hosts_resolv_conf_is_read_from_the_configured_path(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.1\nsearch lab.example\n")
    settings = ClusterDnsSettings(cluster_dns=("10.43.0.10",), resolv_conf=str(path))
    config = pod_dns(pod(namespace="default"), settings).config
    assert config is not None and config.searches[-1] == "lab.example"
    assert read_host_resolv_conf(str(tmp_path / "missing")) == HostResolvConf()


def test_the_sandbox_config_carries_the_computed_dns() -> None:
    dns = pod_dns(pod(), CLUSTER, HOST)
    assert sandbox_config(pod(), "node-0", 0, dns).dns == dns.config
    assert sandbox_config(pod({"dnsPolicy": "None"}), "node-0", 0).dns == DNSConfig()
