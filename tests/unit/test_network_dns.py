"""The cluster DNS server (runtime/network/dns.py): the name → records model for Services,
EndpointSlices and pods, and the UDP/TCP server with forwarding, exercised on loopback
only (a fake upstream resolver on 127.0.0.1 stands in for the host's nameservers)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from dnslib import QTYPE, RR, DNSHeader, DNSRecord

from kubeclient.informer import Informer
from kubeclient.rest import Client
from runtime.network.dns import (
    Answer,
    ClusterRecords,
    DnsOptions,
    DnsServer,
    Record,
    upstreams_from_resolv_conf,
)

T = TypeVar("T")
ZONE = "cluster.local"


# --- object builders --------------------------------------------------------------------
def service(
    name: str,
    ns: str = "default",
    *,
    cluster_ip: str = "10.96.0.10",
    cluster_ips: list[str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    publish_not_ready: bool = False,
    external_name: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": cluster_ip, "ports": ports or []}
    if cluster_ips:
        spec["clusterIPs"] = cluster_ips
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    if external_name:
        spec = {"type": "ExternalName", "externalName": external_name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def endpoint(ip: str, *, hostname: str | None = None, ready: bool | None = True) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(
    name: str,
    svc: str,
    endpoints: list[dict[str, Any]],
    ns: str = "default",
    *,
    ports: list[dict[str, Any]] | None = None,
    address_type: str = "IPv4",
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports or [],
    }


def pod(name: str, ip: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


HTTP = {"name": "http", "port": 80, "protocol": "TCP"}


def data(answer: Answer, rtype: str | None = None) -> list[str]:
    return sorted(r.data for r in answer.answers if rtype is None or r.rtype == rtype)


def headless_web() -> ClusterRecords:
    """A StatefulSet-style headless Service ``web`` with two ready pods and one not ready."""
    records = ClusterRecords(ZONE)
    records.upsert_service(service("web", cluster_ip="None", ports=[HTTP]))
    records.upsert_slice(
        endpoint_slice(
            "web-abc",
            "web",
            [
                endpoint("10.244.0.5", hostname="web-0"),
                endpoint("10.244.0.6", hostname="web-1"),
                endpoint("10.244.0.7", hostname="web-2", ready=False),
            ],
            ports=[{"name": "http", "port": 8080, "protocol": "TCP"}],
        )
    )
    return records


# --- the model: services ----------------------------------------------------------------
def test_a_service_name_resolves_to_its_cluster_ip_with_a_five_second_ttl() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", "shop", cluster_ip="10.96.1.2"))

    answer = records.resolve("api.shop.svc.cluster.local.", "A")

    assert answer == Answer(
        "NOERROR", (Record("api.shop.svc.cluster.local.", "A", 5, "10.96.1.2"),)
    )


def test_an_ipv4_only_service_has_no_aaaa_records_but_the_name_exists() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))

    answer = records.resolve("api.default.svc.cluster.local", "AAAA")

    assert answer.rcode == "NOERROR" and answer.answers == ()
    assert [r.rtype for r in answer.authority] == ["SOA"]
    assert answer.authority[0].data.endswith(" 5")  # negative-caching TTL = record TTL


def test_a_dual_stack_service_answers_a_and_aaaa_by_family() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(
        service("api", cluster_ip="10.96.1.2", cluster_ips=["10.96.1.2", "fd00:96::2"])
    )

    assert data(records.resolve("api.default.svc.cluster.local", "A")) == ["10.96.1.2"]
    assert data(records.resolve("api.default.svc.cluster.local", "AAAA")) == ["fd00:96::2"]


def test_names_match_case_insensitively_and_answers_keep_the_asked_case() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))

    answer = records.resolve("API.Default.SVC.Cluster.Local", "a")

    assert answer.answers == (Record("API.Default.SVC.Cluster.Local.", "A", 5, "10.96.1.2"),)


def test_the_ttl_can_be_chosen_per_query() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api"))

    assert records.resolve("api.default.svc.cluster.local", "A", ttl=30).answers[0].ttl == 30


def test_a_changed_cluster_ip_replaces_the_old_one_in_answers_and_reverse_lookups() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))
    records.upsert_service(service("api", cluster_ip="10.96.1.3"))

    assert data(records.resolve("api.default.svc.cluster.local", "A")) == ["10.96.1.3"]
    assert records.resolve("2.1.96.10.in-addr.arpa", "PTR").forward
    assert data(records.resolve("3.1.96.10.in-addr.arpa", "PTR")) == [
        "api.default.svc.cluster.local."
    ]


# --- the model: headless services ------------------------------------------------------
def test_a_headless_service_resolves_to_its_ready_endpoints_only() -> None:
    records = headless_web()

    answer = records.resolve("web.default.svc.cluster.local", "A")

    assert data(answer) == ["10.244.0.5", "10.244.0.6"]


def test_an_endpoint_without_a_ready_condition_counts_as_ready() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("db", cluster_ip="None"))
    records.upsert_slice(endpoint_slice("db-1", "db", [endpoint("10.244.1.1", ready=None)]))

    assert data(records.resolve("db.default.svc.cluster.local", "A")) == ["10.244.1.1"]


def test_publish_not_ready_addresses_publishes_every_endpoint() -> None:
    records = headless_web()
    records.upsert_service(service("web", cluster_ip="None", ports=[HTTP], publish_not_ready=True))

    assert data(records.resolve("web.default.svc.cluster.local", "A")) == [
        "10.244.0.5",
        "10.244.0.6",
        "10.244.0.7",
    ]
    assert data(records.resolve("web-2.web.default.svc.cluster.local", "A")) == ["10.244.0.7"]


def test_endpoint_hostnames_resolve_under_the_headless_service() -> None:
    records = headless_web()

    assert data(records.resolve("web-0.web.default.svc.cluster.local", "A")) == ["10.244.0.5"]
    assert data(records.resolve("web-1.web.default.svc.cluster.local", "A")) == ["10.244.0.6"]
    assert records.resolve("web-2.web.default.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert records.resolve("web-9.web.default.svc.cluster.local", "A").rcode == "NXDOMAIN"


def test_an_endpoint_without_hostname_is_named_by_its_dashed_address() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("db", cluster_ip="None"))
    records.upsert_slice(endpoint_slice("db-1", "db", [endpoint("10.244.1.1")]))

    answer = records.resolve("10-244-1-1.db.default.svc.cluster.local", "A")

    assert data(answer) == ["10.244.1.1"]


def test_endpoints_of_several_slices_are_merged_and_follow_slice_updates() -> None:
    records = headless_web()
    records.upsert_slice(
        endpoint_slice("web-def", "web", [endpoint("10.244.0.8", hostname="web-3")])
    )
    assert data(records.resolve("web.default.svc.cluster.local", "A")) == [
        "10.244.0.5",
        "10.244.0.6",
        "10.244.0.8",
    ]

    records.upsert_slice(endpoint_slice("web-def", "web", [endpoint("10.244.0.8", ready=False)]))
    assert data(records.resolve("web.default.svc.cluster.local", "A")) == [
        "10.244.0.5",
        "10.244.0.6",
    ]

    records.delete_slice(endpoint_slice("web-abc", "web", []))
    answer = records.resolve("web.default.svc.cluster.local", "A")
    assert answer.rcode == "NOERROR" and answer.answers == ()  # exists, no ready endpoint


def test_a_normal_service_does_not_expose_endpoint_names() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))
    records.upsert_slice(endpoint_slice("api-1", "api", [endpoint("10.244.1.1", hostname="a")]))

    assert records.resolve("a.api.default.svc.cluster.local", "A").rcode == "NXDOMAIN"


def test_ipv6_endpoints_answer_aaaa_and_fqdn_slices_are_ignored() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("db", cluster_ip="None"))
    records.upsert_slice(endpoint_slice("db-6", "db", [endpoint("fd00::5")], address_type="IPv6"))
    records.upsert_slice(
        endpoint_slice("db-f", "db", [endpoint("example.com")], address_type="FQDN")
    )

    assert data(records.resolve("db.default.svc.cluster.local", "AAAA")) == ["fd00::5"]
    assert records.resolve("db.default.svc.cluster.local", "A").answers == ()
    assert data(records.resolve("fd00--5.db.default.svc.cluster.local", "AAAA")) == ["fd00::5"]


# --- the model: SRV ------------------------------------------------------------------------
def test_a_named_port_of_a_normal_service_has_one_srv_record_to_the_service() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2", ports=[HTTP]))

    answer = records.resolve("_http._tcp.api.default.svc.cluster.local", "SRV")

    assert answer.answers == (
        Record(
            "_http._tcp.api.default.svc.cluster.local.",
            "SRV",
            5,
            "0 100 80 api.default.svc.cluster.local.",
        ),
    )
    assert answer.additional == (Record("api.default.svc.cluster.local.", "A", 5, "10.96.1.2"),)


def test_srv_names_need_a_named_port_of_the_right_protocol() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(
        service("api", ports=[HTTP, {"port": 9000, "protocol": "TCP"}])  # second unnamed
    )

    assert records.resolve("_http._udp.api.default.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    assert records.resolve("_grpc._tcp.api.default.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    # The _proto level is an existing (empty) name; an A question for the SRV name is NODATA.
    assert records.resolve("_tcp.api.default.svc.cluster.local", "SRV") == Answer(
        "NOERROR", authority=(records.soa(),)
    )
    nodata = records.resolve("_http._tcp.api.default.svc.cluster.local", "A")
    assert nodata.rcode == "NOERROR" and nodata.answers == ()


def test_a_headless_service_has_one_srv_record_per_ready_endpoint_with_addresses() -> None:
    records = headless_web()
    records.upsert_slice(
        endpoint_slice(
            "web-x",
            "web",
            [endpoint("10.244.0.9")],
            ports=[{"name": "http", "port": 8081, "protocol": "TCP"}],
        )
    )

    answer = records.resolve("_http._tcp.web.default.svc.cluster.local", "SRV")

    assert data(answer) == [
        "0 33 8080 web-0.web.default.svc.cluster.local.",
        "0 33 8080 web-1.web.default.svc.cluster.local.",
        "0 33 8081 10-244-0-9.web.default.svc.cluster.local.",
    ]
    assert sorted((r.name, r.rtype, r.data) for r in answer.additional) == [
        ("10-244-0-9.web.default.svc.cluster.local.", "A", "10.244.0.9"),
        ("web-0.web.default.svc.cluster.local.", "A", "10.244.0.5"),
        ("web-1.web.default.svc.cluster.local.", "A", "10.244.0.6"),
    ]


def test_a_headless_service_without_ready_endpoints_has_no_srv_records() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("db", cluster_ip="None", ports=[HTTP]))
    records.upsert_slice(
        endpoint_slice("db-1", "db", [endpoint("10.244.1.1", ready=False)], ports=[HTTP])
    )

    answer = records.resolve("_http._tcp.db.default.svc.cluster.local", "SRV")

    assert answer.rcode == "NOERROR" and answer.answers == ()


# --- the model: ExternalName, pods, PTR ------------------------------------------------
def test_an_external_name_service_is_a_cname_whose_outside_target_is_left_to_the_server() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("db", external_name="db.example.com"))
    cname = (Record("db.default.svc.cluster.local.", "CNAME", 5, "db.example.com."),)

    for qtype in ("A", "AAAA", "ANY"):
        answer = records.resolve("db.default.svc.cluster.local", qtype)
        assert answer == Answer("NOERROR", cname, chase="db.example.com.")
    for qtype in ("CNAME", "TXT"):
        assert records.resolve("db.default.svc.cluster.local", qtype) == Answer("NOERROR", cname)
    assert records.resolve("x.db.default.svc.cluster.local", "A").rcode == "NXDOMAIN"


def test_an_external_name_inside_the_cluster_domain_is_followed() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", "shop", cluster_ip="10.96.1.2"))
    records.upsert_service(service("alias", external_name="api.shop.svc.cluster.local"))
    records.upsert_service(service("broken", external_name="gone.shop.svc.cluster.local"))

    answer = records.resolve("alias.default.svc.cluster.local", "A")
    assert [(r.rtype, r.data) for r in answer.answers] == [
        ("CNAME", "api.shop.svc.cluster.local."),
        ("A", "10.96.1.2"),
    ]
    assert answer.answers[1].name == "api.shop.svc.cluster.local."
    broken = records.resolve("broken.default.svc.cluster.local", "A")
    assert broken.rcode == "NXDOMAIN" and broken.answers[0].rtype == "CNAME"


def test_an_external_name_loop_stops_after_a_bounded_chain() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("a", external_name="b.default.svc.cluster.local"))
    records.upsert_service(service("b", external_name="a.default.svc.cluster.local"))

    answer = records.resolve("a.default.svc.cluster.local", "A")

    assert all(r.rtype == "CNAME" for r in answer.answers) and len(answer.answers) == 9


def test_dashed_pod_names_resolve_to_the_address_they_spell() -> None:
    records = ClusterRecords(ZONE)

    assert data(records.resolve("10-244-0-5.default.pod.cluster.local", "A")) == ["10.244.0.5"]
    assert data(records.resolve("fd00--5.any.pod.cluster.local", "AAAA")) == ["fd00::5"]
    assert records.resolve("10-244-0-5.default.pod.cluster.local", "AAAA").answers == ()
    assert records.resolve("10-244-0-500.default.pod.cluster.local", "A").rcode == "NXDOMAIN"
    assert records.resolve("x.10-244-0-5.default.pod.cluster.local", "A").rcode == "NXDOMAIN"


def test_reverse_lookups_name_services_endpoints_and_pods() -> None:
    records = headless_web()
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))
    records.upsert_pod(pod("web-0", "10.244.0.5"))
    records.upsert_pod(pod("solo", "10.244.3.3", "tools"))
    records.upsert_pod(pod("v6", "fd00::7", "tools"))

    def ptr(name: str) -> list[str]:
        return data(records.resolve(name, "PTR"))

    assert ptr("2.1.96.10.in-addr.arpa.") == ["api.default.svc.cluster.local."]
    assert ptr("5.0.244.10.in-addr.arpa") == ["web-0.web.default.svc.cluster.local."]
    assert ptr("3.3.244.10.in-addr.arpa") == ["10-244-3-3.tools.pod.cluster.local."]
    v6 = ".".join(reversed("fd000000000000000000000000000007")) + ".ip6.arpa"
    assert ptr(v6) == ["fd00--7.tools.pod.cluster.local."]
    assert records.resolve("9.9.9.9.in-addr.arpa", "PTR").forward
    assert records.resolve("2.1.96.10.in-addr.arpa", "A") == Answer("NOERROR")


def test_deleted_and_finished_pods_leave_the_reverse_zone() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_pod(pod("a", "10.244.3.3"))
    records.upsert_pod(pod("host", "192.0.2.1", hostNetwork=True))
    finished = pod("b", "10.244.3.4")
    finished["status"]["phase"] = "Succeeded"
    records.upsert_pod(finished)

    assert not records.resolve("3.3.244.10.in-addr.arpa", "PTR").forward
    assert records.resolve("1.2.0.192.in-addr.arpa", "PTR").forward
    assert records.resolve("4.3.244.10.in-addr.arpa", "PTR").forward
    records.delete_pod(pod("a", "10.244.3.3"))
    assert records.resolve("3.3.244.10.in-addr.arpa", "PTR").forward


# --- the model: existence ---------------------------------------------------------------
def test_missing_names_are_nxdomain_with_the_zone_soa_and_existing_ones_nodata() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", "shop"))
    soa = records.soa()

    assert soa.name == "cluster.local." and soa.data.startswith(
        "ns.dns.cluster.local. hostmaster.cluster.local. "
    )
    for name in (
        "nope.shop.svc.cluster.local",
        "api.other.svc.cluster.local",
        "other.svc.cluster.local",
        "www.cluster.local",
        "a.b.api.shop.svc.cluster.local",
    ):
        assert records.resolve(name, "A") == Answer("NXDOMAIN", authority=(soa,)), name
    for name in ("shop.svc.cluster.local", "svc.cluster.local", "pod.cluster.local"):
        assert records.resolve(name, "A") == Answer("NOERROR", authority=(soa,)), name
    assert records.resolve("cluster.local", "SOA").answers == (soa,)
    assert data(records.resolve("cluster.local", "NS")) == ["ns.dns.cluster.local."]


def test_a_search_path_expansion_of_a_full_name_is_nxdomain_not_forwarded() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("web"))

    answer = records.resolve("web.default.svc.cluster.local.default.svc.cluster.local", "A")

    assert answer.rcode == "NXDOMAIN" and not answer.forward


def test_names_outside_the_cluster_domain_are_to_be_forwarded() -> None:
    records = ClusterRecords("corp.internal")
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))

    assert records.resolve("example.com", "A") == Answer(forward=True)
    assert records.resolve("api.default.svc.cluster.local", "A").forward
    assert records.resolve("xcorp.internal", "A").forward
    assert data(records.resolve("api.default.svc.corp.internal", "A")) == ["10.96.1.2"]


def test_deleting_the_last_service_of_a_namespace_removes_the_namespace_name() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("a", "shop"))
    records.upsert_service(service("b", "shop"))
    records.delete_service(service("a", "shop"))

    assert records.resolve("a.shop.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert records.resolve("shop.svc.cluster.local", "A").rcode == "NOERROR"
    records.delete_service(service("b", "shop"))
    assert records.resolve("shop.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert records.resolve("10.0.96.10.in-addr.arpa", "PTR").forward


def test_thousands_of_services_are_indexed_for_constant_time_lookups() -> None:
    records = ClusterRecords(ZONE)
    for i in range(5000):
        records.upsert_service(
            service(f"s{i}", f"ns{i % 50}", cluster_ip=f"10.96.{i // 250}.{i % 250}")
        )
    start = time.perf_counter()
    for i in range(5000):
        assert records.resolve(f"s{i}.ns{i % 50}.svc.cluster.local", "A").answers
    assert time.perf_counter() - start < 5.0


def test_the_model_follows_informer_events() -> None:
    client = cast(Client, None)  # never used: events are applied directly
    services = Informer(client, "v1", "services")
    slices = Informer(client, "discovery.k8s.io/v1", "endpointslices")
    pods = Informer(client, "v1", "pods")
    services._apply("ADDED", service("api", cluster_ip="10.96.1.2"))  # already cached

    records = ClusterRecords.from_informers(services, slices, pods, ZONE)
    assert data(records.resolve("api.default.svc.cluster.local", "A")) == ["10.96.1.2"]

    services._apply("MODIFIED", service("api", cluster_ip="10.96.1.3"))
    services._apply("ADDED", service("db", cluster_ip="None"))
    slices._apply("ADDED", endpoint_slice("db-1", "db", [endpoint("10.244.1.1")]))
    pods._apply("ADDED", pod("p", "10.244.2.2"))
    assert data(records.resolve("api.default.svc.cluster.local", "A")) == ["10.96.1.3"]
    assert data(records.resolve("db.default.svc.cluster.local", "A")) == ["10.244.1.1"]
    assert not records.resolve("2.2.244.10.in-addr.arpa", "PTR").forward

    services._apply("DELETED", service("api"))
    slices._apply("DELETED", endpoint_slice("db-1", "db", []))
    pods._apply("DELETED", pod("p", "10.244.2.2"))
    assert records.resolve("api.default.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert records.resolve("db.default.svc.cluster.local", "A").answers == ()
    assert records.resolve("2.2.244.10.in-addr.arpa", "PTR").forward


def test_upstreams_come_from_resolv_conf_without_this_servers_own_address(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "search example.com\nnameserver 127.0.0.53\nnameserver 127.0.0.1\n"
        "nameserver ::1\nnameserver bogus\noptions ndots:5\n"
    )

    assert upstreams_from_resolv_conf(conf, [("127.0.0.1", 53)]) == [
        ("127.0.0.53", 53),
        ("::1", 53),
    ]
    assert upstreams_from_resolv_conf(conf, [("0.0.0.0", 53)]) == [("::1", 53)]
    assert upstreams_from_resolv_conf(conf, [("127.0.0.1", 5353)])[1] == ("127.0.0.1", 53)
    assert upstreams_from_resolv_conf(tmp_path / "missing") == []


# --- the server ---------------------------------------------------------------------------
class FakeUpstream:
    """A tiny resolver on 127.0.0.1 (UDP and TCP, one port) answering from zone lines;
    ``truncate_udp`` makes every UDP answer truncated, ``silent`` answers nothing."""

    def __init__(self, zone: str = "", *, truncate_udp: bool = False, silent: bool = False) -> None:
        self.zone = [RR.fromZone(line)[0] for line in zone.strip().splitlines() if line]
        self.truncate_udp = truncate_udp
        self.silent = silent
        self.seen: list[tuple[str, str, int]] = []  # (transport, qname, id)
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def answer(self, packet: bytes, transport: str) -> bytes:
        request = DNSRecord.parse(packet)
        self.seen.append((transport, str(request.q.qname), request.header.id))
        reply = request.reply()
        matches = [
            rr for rr in self.zone if rr.rname == request.q.qname and rr.rtype == request.q.qtype
        ]
        reply.add_answer(*matches)
        if not matches:
            reply.header.rcode = 3
        if transport == "udp" and self.truncate_udp:
            header = DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap)
            header.tc = 1
            reply = DNSRecord(header, questions=request.questions)
        return cast(bytes, reply.pack())

    async def __aenter__(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        outer = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: Any) -> None:
                reply = outer.answer(data, "udp")  # recorded even when silent
                if not outer.silent:
                    self.transport.sendto(reply, addr)

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = self.answer(await reader.readexactly(length), "tcp")
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
            writer.close()

        # UDP picks a free port; TCP may find that number taken by someone else: retry.
        for attempt in range(10):
            self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(tcp, "127.0.0.1", self.port)
            except OSError:
                self._udp.close()
                if attempt == 9:
                    raise
                continue
            return self
        raise AssertionError("unreachable")

    async def __aexit__(self, *exc: object) -> None:
        assert self._udp is not None and self._tcp is not None
        self._udp.close()
        self._tcp.close()
        await self._tcp.wait_closed()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


async def ask(port: int, name: str, qtype: str = "A", *, tcp: bool = False) -> Any:
    question = DNSRecord.question(name, qtype)
    raw = await asyncio.to_thread(question.send, "127.0.0.1", port, tcp=tcp, timeout=5)
    reply = DNSRecord.parse(raw)
    assert reply.header.id == question.header.id
    return reply


def serve(
    records: ClusterRecords,
    test: Callable[[DnsServer], Awaitable[T]],
    **options: Any,
) -> T:
    async def go() -> T:
        opts = DnsOptions(
            listen=(("127.0.0.1", 0),), upstreams=options.pop("upstreams", ()), **options
        )
        server = DnsServer(records, opts)
        await server.start()
        try:
            return await test(server)
        finally:
            await server.stop()

    return asyncio.run(go())


def rcode(reply: Any) -> str:
    return {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 1: "FORMERR", 5: "REFUSED"}[
        reply.header.rcode
    ]


def test_the_server_answers_cluster_names_over_udp_and_tcp_on_one_picked_port() -> None:
    records = headless_web()
    records.upsert_service(service("api", cluster_ip="10.96.1.2", ports=[HTTP]))

    async def test(server: DnsServer) -> None:
        [(host, port)] = server.addresses
        assert host == "127.0.0.1" and port != 0
        for tcp in (False, True):
            reply = await ask(port, "api.default.svc.cluster.local", tcp=tcp)
            assert rcode(reply) == "NOERROR" and reply.header.aa
            assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("10.96.1.2", 5)]
            srv = await ask(port, "_http._tcp.web.default.svc.cluster.local", "SRV", tcp=tcp)
            assert sorted(str(rr.rdata) for rr in srv.rr) == [
                "0 50 8080 web-0.web.default.svc.cluster.local.",
                "0 50 8080 web-1.web.default.svc.cluster.local.",
            ]
            assert sorted(str(rr.rdata) for rr in srv.ar) == ["10.244.0.5", "10.244.0.6"]
            missing = await ask(port, "nope.default.svc.cluster.local", tcp=tcp)
            assert rcode(missing) == "NXDOMAIN"
            assert [QTYPE[rr.rtype] for rr in missing.auth] == ["SOA"]
            ext = await ask(port, "10-1-2-3.default.pod.cluster.local", tcp=tcp)
            assert [str(rr.rdata) for rr in ext.rr] == ["10.1.2.3"]

    serve(records, test)


def test_the_configured_ttl_is_used_on_the_wire() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))

    async def test(server: DnsServer) -> None:
        reply = await ask(server.addresses[0][1], "api.default.svc.cluster.local")
        assert [rr.ttl for rr in reply.rr] == [30]

    serve(records, test, ttl=30)


def test_a_large_answer_is_truncated_over_udp_and_complete_over_tcp() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("big", cluster_ip="None"))
    records.upsert_slice(
        endpoint_slice("big-1", "big", [endpoint(f"10.244.1.{i}") for i in range(1, 81)])
    )

    async def test(server: DnsServer) -> None:
        port = server.addresses[0][1]
        udp = await ask(port, "big.default.svc.cluster.local")
        assert udp.header.tc and udp.rr == []
        tcp = await ask(port, "big.default.svc.cluster.local", tcp=True)
        assert not tcp.header.tc and len(tcp.rr) == 80

    serve(records, test)


def test_names_outside_the_cluster_are_forwarded_upstream_with_a_fresh_id() -> None:
    records = ClusterRecords(ZONE)

    async def test(upstream: FakeUpstream) -> None:
        async def check(server: DnsServer) -> None:
            port = server.addresses[0][1]
            for tcp in (False, True):
                reply = await ask(port, "www.example.com", tcp=tcp)
                assert rcode(reply) == "NOERROR"
                assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.10"]
            missing = await ask(port, "gone.example.com")
            assert rcode(missing) == "NXDOMAIN"

        await asyncio.to_thread(serve, records, check, upstreams=[upstream.address])
        assert [name for _, name, _ in upstream.seen] == [
            "www.example.com.",
            "www.example.com.",
            "gone.example.com.",
        ]

    async def go() -> None:
        async with FakeUpstream("www.example.com. 60 IN A 192.0.2.10") as upstream:
            await test(upstream)

    asyncio.run(go())


def test_a_truncated_upstream_answer_is_retried_over_tcp() -> None:
    records = ClusterRecords(ZONE)
    zone = "\n".join(f"many.example.com. 60 IN A 192.0.2.{i}" for i in range(1, 11))

    async def go() -> None:
        async with FakeUpstream(zone, truncate_udp=True) as upstream:

            async def check(server: DnsServer) -> None:
                reply = await ask(server.addresses[0][1], "many.example.com")
                assert not reply.header.tc and len(reply.rr) == 10

            await asyncio.to_thread(serve, records, check, upstreams=[upstream.address])
            assert [transport for transport, _, _ in upstream.seen] == ["udp", "tcp"]

    asyncio.run(go())


def test_a_silent_upstream_is_skipped_and_servfail_when_none_answers() -> None:
    records = ClusterRecords(ZONE)

    async def go() -> None:
        async with (
            FakeUpstream(silent=True) as silent,
            FakeUpstream("www.example.com. 60 IN A 192.0.2.10") as good,
        ):

            async def failover(server: DnsServer) -> None:
                reply = await ask(server.addresses[0][1], "www.example.com")
                assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.10"]

            async def servfail(server: DnsServer) -> None:
                reply = await ask(server.addresses[0][1], "www.example.com")
                assert rcode(reply) == "SERVFAIL"

            await asyncio.to_thread(
                serve,
                records,
                failover,
                upstreams=[silent.address, good.address],
                forward_timeout=0.2,
            )
            await asyncio.to_thread(
                serve, records, servfail, upstreams=[silent.address], forward_timeout=0.2
            )
            assert len(silent.seen) == 2

    asyncio.run(go())


def test_a_server_without_upstreams_answers_servfail_for_outside_names() -> None:
    async def test(server: DnsServer) -> None:
        assert rcode(await ask(server.addresses[0][1], "www.example.com")) == "SERVFAIL"

    serve(ClusterRecords(ZONE), test)


def test_search_path_accidents_and_unknown_cluster_names_never_reach_upstream() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("web"))

    async def go() -> None:
        async with FakeUpstream() as upstream:

            async def check(server: DnsServer) -> None:
                port = server.addresses[0][1]
                name = "web.default.svc.cluster.local.default.svc.cluster.local"
                assert rcode(await ask(port, name)) == "NXDOMAIN"
                assert rcode(await ask(port, "x.cluster.local", "TXT")) == "NXDOMAIN"

            await asyncio.to_thread(serve, records, check, upstreams=[upstream.address])
            assert upstream.seen == []

    asyncio.run(go())


def test_default_upstreams_are_read_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\nnameserver 127.0.0.2\n")

    async def test(server: DnsServer) -> None:
        assert server.upstreams == [("127.0.0.1", 53), ("127.0.0.2", 53)]

    serve(ClusterRecords(ZONE), test, upstreams=None, resolv_conf=str(conf))


def test_malformed_and_non_query_messages_get_error_codes() -> None:
    async def test(server: DnsServer) -> None:
        port = server.addresses[0][1]

        def exchange(packet: bytes) -> bytes | None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.5)
                sock.sendto(packet, ("127.0.0.1", port))
                try:
                    return sock.recv(512)
                except TimeoutError:
                    return None

        garbage = await asyncio.to_thread(
            exchange, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff"
        )
        assert garbage is not None and garbage[:2] == b"\x12\x34" and garbage[3] & 0x0F == 1
        notify = DNSRecord.question("cluster.local", "SOA")
        notify.header.opcode = 4
        reply = await asyncio.to_thread(exchange, notify.pack())
        assert reply is not None and DNSRecord.parse(reply).header.rcode == 4
        response = DNSRecord.question("cluster.local").reply().pack()
        assert await asyncio.to_thread(exchange, response) is None  # responses are ignored
        assert await asyncio.to_thread(exchange, b"\x00") is None

    serve(ClusterRecords(ZONE), test)


def test_records_and_options_must_agree_on_the_cluster_domain() -> None:
    with pytest.raises(ValueError, match=r"corp\.internal"):
        DnsServer(ClusterRecords(ZONE), DnsOptions(domain="corp.internal"))


def test_a_record_that_cannot_be_encoded_fails_only_its_own_query() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("bad", external_name="x" * 70 + ".example.com"))
    records.upsert_service(service("api", cluster_ip="10.96.1.2"))

    async def test(server: DnsServer) -> None:
        port = server.addresses[0][1]
        assert rcode(await ask(port, "bad.default.svc.cluster.local")) == "SERVFAIL"
        assert rcode(await ask(port, "api.default.svc.cluster.local")) == "NOERROR"

    serve(records, test)
