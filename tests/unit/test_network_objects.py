"""The shared reader of Services and EndpointSlices (runtime/network/objects.py): plain
dicts in, typed frozen dataclasses out, plus the ready-endpoint lookup the proxy, the
host-port relays and the ingress router share."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from runtime.network.objects import (
    DEFAULT_AFFINITY_TIMEOUT,
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    ServicePort,
    SliceEndpoint,
    address_type,
    canonical_ip,
    object_key,
    read_endpoint_slice,
    read_service,
    ready_addresses,
    ready_endpoints,
    valid_port,
)

Obj = dict[str, Any]


def service(spec: Obj, **meta: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", **meta},
        "spec": spec,
    }


def endpoint_slice(
    *endpoints: Obj, ports: list[Obj] | None = None, address_type: str | None = "IPv4"
) -> Obj:
    obj: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abc",
            "namespace": "shop",
            "labels": {SERVICE_NAME_LABEL: "web"},
        },
        "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
        "endpoints": list(endpoints),
    }
    if address_type is not None:
        obj["addressType"] = address_type
    return obj


# --- helpers ----------------------------------------------------------------------------
def test_an_object_key_uses_the_given_default_for_a_missing_namespace() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "ns"}}) == ("ns", "a")
    assert object_key({"metadata": {"name": "a"}}) == ("", "a")
    assert object_key({"metadata": {"name": "a"}}, "default") == ("default", "a")
    assert object_key({}) == ("", "")


def test_canonical_ip_compresses_ipv6_drops_a_zone_and_rejects_non_addresses() -> None:
    assert canonical_ip("10.0.0.1") == "10.0.0.1"
    assert canonical_ip("FD00:0:0::0001") == "fd00::1"
    assert canonical_ip("fe80::1%eth0") == "fe80::1"
    assert canonical_ip("None") is None
    assert canonical_ip("web.example.com") is None
    assert canonical_ip(None) is None


def test_the_address_type_of_an_address_is_its_endpoint_slice_family() -> None:
    assert address_type("10.0.0.1") == "IPv4"
    assert address_type("fd00::1") == "IPv6"


def test_only_integers_from_1_to_65535_are_valid_ports() -> None:
    assert valid_port(80) == 80
    assert valid_port(65535) == 65535
    for value in (0, 65536, -1, True, "80", 80.0, None):
        assert valid_port(value) is None, value


# --- Services ---------------------------------------------------------------------------
def test_a_service_is_read_with_canonical_cluster_ips_and_typed_ports() -> None:
    svc = read_service(
        service(
            {
                "type": "NodePort",
                "clusterIP": "10.43.0.10",
                "clusterIPs": ["10.43.0.10", "FD00:43::000A"],
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "udp", "targetPort": 5353},
                    {"port": 99999, "protocol": "SCTP", "nodePort": True},
                    "not a port",
                ],
            },
            creationTimestamp="2024-01-02T03:04:05Z",
        )
    )
    assert svc.key == ("shop", "web")
    assert svc.type == "NodePort"
    assert svc.cluster_ips == ("10.43.0.10", "fd00:43::a")
    assert not svc.headless and svc.external_name is None
    assert svc.ports == (
        ServicePort("http", 80, "TCP", 30080, "web"),
        ServicePort("dns", 53, "UDP", None, 5353),
        ServicePort("", None, "SCTP", None, None),
    )
    assert svc.created == "2024-01-02T03:04:05Z"
    assert svc.affinity_timeout is None
    assert not svc.publish_not_ready and svc.load_balancer_class is None


def test_a_service_without_cluster_ips_falls_back_to_its_cluster_ip() -> None:
    assert read_service(service({"clusterIP": "10.43.0.7"})).cluster_ips == ("10.43.0.7",)
    assert read_service(service({})).cluster_ips == ()


def test_a_service_without_type_or_namespace_reads_as_cluster_ip_in_the_default_given() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web"}, "spec": {}}
    assert read_service(obj).type == "ClusterIP"
    assert read_service(obj).namespace == ""
    assert read_service(obj, default_namespace="default").key == ("default", "web")
    assert read_service(obj).created == ""


def test_cluster_ip_none_makes_a_service_headless_without_addresses() -> None:
    svc = read_service(service({"clusterIP": "None", "clusterIPs": ["None"]}))
    assert svc.headless
    assert svc.cluster_ips == ()


def test_an_external_name_service_has_its_target_and_is_never_headless() -> None:
    svc = read_service(
        service({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "None"})
    )
    assert svc.external_name == "db.example.com"
    assert not svc.headless


def test_an_external_name_outside_an_external_name_service_is_ignored() -> None:
    svc = read_service(service({"externalName": "db.example.com", "clusterIP": "None"}))
    assert svc.external_name is None
    assert svc.headless
    empty = read_service(service({"type": "ExternalName", "externalName": ""}))
    assert empty.external_name is None


def test_client_ip_affinity_takes_a_positive_timeout_and_defaults_otherwise() -> None:
    def timeout(spec: Obj) -> int | None:
        return read_service(service(spec)).affinity_timeout

    config = {"clientIP": {"timeoutSeconds": 60}}
    assert timeout({"sessionAffinity": "ClientIP", "sessionAffinityConfig": config}) == 60
    assert timeout({"sessionAffinity": "ClientIP"}) == DEFAULT_AFFINITY_TIMEOUT == 10800
    for bad in (0, -5, True, "60", None):
        bad_config = {"clientIP": {"timeoutSeconds": bad}}
        spec = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": bad_config}
        assert timeout(spec) == DEFAULT_AFFINITY_TIMEOUT, bad
    assert timeout({"sessionAffinity": "None", "sessionAffinityConfig": config}) is None
    assert timeout({}) is None


def test_publish_not_ready_addresses_and_the_load_balancer_class_are_read() -> None:
    svc = read_service(
        service(
            {
                "type": "LoadBalancer",
                "publishNotReadyAddresses": True,
                "loadBalancerClass": "example.com/lb",
            }
        )
    )
    assert svc.publish_not_ready
    assert svc.load_balancer_class == "example.com/lb"
    assert read_service(service({"loadBalancerClass": ""})).load_balancer_class is None


def test_a_service_with_garbage_in_its_spec_reads_as_empty_rather_than_failing() -> None:
    svc = read_service(
        {
            "metadata": None,
            "spec": {"ports": "80", "clusterIPs": "10.0.0.1", "sessionAffinity": "ClientIP"},
        }
    )
    assert svc.key == ("", "")
    assert svc.ports == () and svc.cluster_ips == ()
    assert svc.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT


# --- EndpointSlices -----------------------------------------------------------------------
def test_an_endpoint_slice_names_its_service_by_label_in_its_own_namespace() -> None:
    sl = read_endpoint_slice(endpoint_slice())
    assert sl.key == ("shop", "web-abc")
    assert sl.service == ("shop", "web")
    unlabelled = endpoint_slice()
    unlabelled["metadata"]["labels"] = {}
    assert read_endpoint_slice(unlabelled).service is None
    no_namespace = endpoint_slice()
    del no_namespace["metadata"]["namespace"]
    assert read_endpoint_slice(no_namespace).service == ("", "web")
    assert read_endpoint_slice(no_namespace, default_namespace="default").service == (
        "default",
        "web",
    )


def test_the_address_type_is_kept_as_written_and_empty_when_missing() -> None:
    assert read_endpoint_slice(endpoint_slice(address_type="IPv6")).address_type == "IPv6"
    assert read_endpoint_slice(endpoint_slice(address_type="FQDN")).address_type == "FQDN"
    assert read_endpoint_slice(endpoint_slice(address_type=None)).address_type == ""


def test_endpoint_slice_ports_are_typed_like_service_ports() -> None:
    sl = read_endpoint_slice(
        endpoint_slice(
            ports=[
                {"name": "http", "port": 8080},
                {"name": "dns", "port": 5353, "protocol": "udp"},
                {"port": None, "protocol": "TCP"},
            ]
        )
    )
    assert sl.ports == (
        EndpointPort("http", 8080, "TCP"),
        EndpointPort("dns", 5353, "UDP"),
        EndpointPort("", None, "TCP"),
    )


def test_endpoints_have_canonical_addresses_and_conditions_as_the_api_defines_them() -> None:
    sl = read_endpoint_slice(
        endpoint_slice(
            {"addresses": ["10.0.0.1"], "hostname": "web-0"},
            {"addresses": ["bogus", "10.0.0.2"], "conditions": {"ready": False}},
            {
                "addresses": ["FD00::0002"],
                "conditions": {"ready": False, "serving": True, "terminating": True},
            },
            {"addresses": [], "conditions": {"ready": True, "serving": False}},
        )
    )
    assert sl.endpoints == (
        SliceEndpoint(("10.0.0.1",), "web-0", ready=True, serving=True, terminating=False),
        SliceEndpoint(("10.0.0.2",), None, ready=False, serving=False, terminating=False),
        SliceEndpoint(("fd00::2",), None, ready=False, serving=True, terminating=True),
        SliceEndpoint((), None, ready=True, serving=False, terminating=False),
    )
    assert [ep.address for ep in sl.endpoints] == ["10.0.0.1", "10.0.0.2", "fd00::2", None]


def test_the_read_objects_are_frozen() -> None:
    sl = read_endpoint_slice(endpoint_slice())
    with pytest.raises(dataclasses.FrozenInstanceError):
        sl.name = "other"  # type: ignore[misc]


# --- ready endpoints ----------------------------------------------------------------------
def slices(*objs: Obj) -> list[EndpointSlice]:
    return [read_endpoint_slice(o) for o in objs]


def test_ready_addresses_are_the_first_address_of_each_ready_endpoint_at_the_named_port() -> None:
    found = ready_addresses(
        slices(
            endpoint_slice(
                {"addresses": ["10.0.0.1", "10.0.0.9"]},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.3"], "conditions": {}},
                ports=[{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
            )
        ),
        "http",
        "TCP",
    )
    assert found == {("10.0.0.1", 8080), ("10.0.0.3", 8080)}


def test_ready_addresses_match_the_port_name_and_protocol_exactly() -> None:
    sl = slices(
        endpoint_slice(
            {"addresses": ["10.0.0.1"]},
            ports=[{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        )
    )
    assert ready_addresses(sl, "", "TCP") == {("10.0.0.1", 80)}
    assert ready_addresses(sl, "dns", "UDP") == {("10.0.0.1", 53)}
    assert ready_addresses(sl, "dns", "TCP") == set()
    assert ready_addresses(sl, "http", "TCP") == set()


def test_ready_addresses_count_an_address_in_several_slices_once() -> None:
    one = endpoint_slice({"addresses": ["10.0.0.1"]})
    two = endpoint_slice({"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]})
    assert ready_addresses(slices(one, two), "http", "TCP") == {
        ("10.0.0.1", 8080),
        ("10.0.0.2", 8080),
    }


def test_ready_addresses_keep_the_address_types_asked_for() -> None:
    v4 = endpoint_slice({"addresses": ["10.0.0.1"]})
    v6 = endpoint_slice({"addresses": ["fd00::1"]}, address_type="IPv6")
    fqdn = endpoint_slice({"addresses": ["db.example.com"]}, address_type="FQDN")
    both = slices(v4, v6, fqdn)
    assert ready_addresses(both, "http", "TCP") == {("10.0.0.1", 8080), ("fd00::1", 8080)}
    assert ready_addresses(both, "http", "TCP", address_types=("IPv4",)) == {("10.0.0.1", 8080)}


def test_a_slice_without_address_type_counts_as_ipv4() -> None:
    sl = slices(endpoint_slice({"addresses": ["10.0.0.1"]}, address_type=None))
    assert ready_addresses(sl, "http", "TCP", address_types=("IPv4",)) == {("10.0.0.1", 8080)}


def test_an_address_of_the_wrong_family_for_its_slice_is_not_used() -> None:
    sl = slices(endpoint_slice({"addresses": ["fd00::1", "10.0.0.1"]}))
    assert ready_addresses(sl, "http", "TCP") == set()


def test_ready_endpoints_are_sorted_endpoints_whose_netloc_brackets_ipv6() -> None:
    sl = slices(endpoint_slice({"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.1"]}))
    found = ready_endpoints(sl, "http", "TCP")
    assert found == (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080))
    assert found[0].netloc == "10.0.0.1:8080"
    assert Endpoint("fd00::1", 80).netloc == "[fd00::1]:80"
