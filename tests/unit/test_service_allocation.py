"""Service cluster IP and node port allocation (runtime/api/services.py) through the
object layer over a real SQLite store: dynamic and requested IPs, headless and
ExternalName Services, type changes, node ports, dry-run, release on delete, restarts,
concurrent creates and server-side apply idempotence."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api import services
from runtime.api.objects import ApiOptions, ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.store import Store

MANAGER = WriteOptions(field_manager="tests")
DRY = WriteOptions(field_manager="tests", dry_run=True)
CIDR = ipaddress.IPv4Network("10.43.0.0/16")


def run(
    tmp_path: Path,
    body: Callable[[ObjectAPI], Awaitable[None]],
    options: ApiOptions | None = None,
) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin(), options)
        await api.bootstrap()
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


def svcs(api: ObjectAPI) -> ResourceInfo:
    found = api.registry.get("", "v1", "services")
    assert found is not None
    return found


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def create(api: ObjectAPI, name: str, **spec: Any) -> dict[str, Any]:
    return (await api.create(svcs(api), "default", service(name, **spec), MANAGER)).obj


async def rejected(api: ObjectAPI, body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as err:
        await api.create(svcs(api), "default", body, MANAGER)
    return err.value


async def merge(api: ObjectAPI, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    return (await api.patch(svcs(api), "default", name, "merge", patch, MANAGER)).obj


async def delete(api: ObjectAPI, name: str) -> None:
    await api.delete(svcs(api), "default", name, None, MANAGER)


def in_range(ip: str, cidr: ipaddress.IPv4Network = CIDR) -> bool:
    addr = ipaddress.IPv4Address(ip)
    return addr in cidr and addr not in (cidr.network_address, cidr.broadcast_address)


# --- configuration ------------------------------------------------------------------------
def test_the_service_cidr_must_be_an_ipv4_network_of_a_usable_size() -> None:
    assert services.parse_service_cidr("10.43.0.0/16") == CIDR
    for bad, words in [
        ("fd00::/108", "only IPv4"),
        ("10.0.0.0/8", "too large"),
        ("10.0.0.0/31", "too small"),
        ("10.43.0.1/16", "host bits"),
        ("banana", "invalid service CIDR"),
    ]:
        with pytest.raises(services.ServiceNetworkError, match=words):
            services.parse_service_cidr(bad)


def test_node_port_ranges_accept_first_last_and_base_plus_count() -> None:
    assert services.parse_port_range("30000-32767") == services.PortRange(30000, 32767)
    assert services.parse_port_range("30000+10") == services.PortRange(30000, 30010)
    assert str(services.parse_port_range("31000")) == "31000-31000"
    for bad in ("32767-30000", "0-10", "a-b", "30000-70000"):
        with pytest.raises(services.ServiceNetworkError):
            services.parse_port_range(bad)


def test_an_api_with_an_unusable_service_cidr_is_not_built(tmp_path: Path) -> None:
    with pytest.raises(services.ServiceNetworkError):
        ObjectAPI(
            Store(tmp_path / "s.db"),
            Registry(),
            schema.builtin(),
            ApiOptions(service_cidr="fd00::/64"),
        )


# --- cluster IPs ------------------------------------------------------------------------------
def test_the_kubernetes_service_holds_the_first_ip_of_the_range(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = api.get(svcs(api), "default", "kubernetes").obj()
        spec = out["spec"]
        assert spec["clusterIP"] == "10.43.0.1" and spec["clusterIPs"] == ["10.43.0.1"]
        assert spec["ports"] == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 7443}
        ]
        assert out["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        assert api.services.ip_holder("10.43.0.1") == out["metadata"]["uid"]

    run(tmp_path, body, ApiOptions(apiserver_port=7443))


def test_a_new_service_gets_a_free_ip_of_the_range_and_single_stack_fields(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        spec = (await create(api, "web"))["spec"]
        ip = spec["clusterIP"]
        assert in_range(ip) and ip != "10.43.0.1"
        assert spec["clusterIPs"] == [ip]
        assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
        stored = api.get(svcs(api), "default", "web").obj()
        assert stored["spec"]["clusterIP"] == ip
        # An empty clusterIP asks for one too.
        assert in_range((await create(api, "empty", clusterIP=""))["spec"]["clusterIP"])

    run(tmp_path, body)


def test_dynamic_ips_come_from_the_upper_band_and_are_distinct(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        ips = [(await create(api, f"s{i}"))["spec"]["clusterIP"] for i in range(40)]
        assert len(set(ips)) == 40
        # A /16 keeps its first 256 addresses for explicit requests.
        assert all(int(ipaddress.IPv4Address(ip)) - int(CIDR.network_address) > 256 for ip in ips)

    run(tmp_path, body)


def test_a_tiny_range_is_exhausted_with_a_clear_error_and_freed_by_a_delete(
    tmp_path: Path,
) -> None:
    cidr = ipaddress.IPv4Network("10.96.0.0/29")

    async def body(api: ObjectAPI) -> None:
        ips = {(await create(api, f"s{i}"))["spec"]["clusterIP"] for i in range(5)}
        # .1 is the kubernetes Service's; .2-.6 are the rest of a /29.
        assert ips == {f"10.96.0.{n}" for n in range(2, 7)}
        err = await rejected(api, service("one-too-many"))
        assert err.code == 500 and err.reason == "InternalError"
        assert (
            err.message == "Internal error occurred: failed to allocate a serviceIP: range is full"
        )
        await delete(api, "s0")
        assert in_range((await create(api, "again"))["spec"]["clusterIP"], cidr)

    run(tmp_path, body, ApiOptions(service_cidr=str(cidr)))


def test_a_requested_ip_is_granted_when_free_and_in_range(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        spec = (await create(api, "dns", clusterIP="10.43.0.10"))["spec"]
        assert spec["clusterIP"] == "10.43.0.10" and spec["clusterIPs"] == ["10.43.0.10"]
        err = await rejected(api, service("dns2", clusterIP="10.43.0.10"))
        assert err.code == 422
        assert err.message == (
            'Service "dns2" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.10"}: '
            "failed to allocate IP 10.43.0.10: provided IP is already allocated"
        )
        err = await rejected(api, service("far", clusterIP="10.96.0.10"))
        assert err.code == 422
        assert err.message == (
            'Service "far" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: '
            "failed to allocate IP 10.96.0.10: the provided IP (10.96.0.10) is not in the "
            "valid range. The range of valid IPs is 10.43.0.0/16"
        )
        for edge in ("10.43.0.0", "10.43.255.255"):
            err = await rejected(api, service("edge", clusterIP=edge))
            assert "is not in the valid range" in err.message

    run(tmp_path, body)


def test_ipv6_and_dual_stack_requests_are_refused_on_this_single_stack_cluster(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        err = await rejected(api, service("v6", clusterIP="fd00::10"))
        assert err.code == 422
        assert 'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster' in (
            err.message
        )
        err = await rejected(api, service("ds", ipFamilyPolicy="RequireDualStack"))
        assert "this cluster is not configured for dual-stack services" in err.message

    run(tmp_path, body)


def test_headless_and_external_name_services_get_no_ip(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        held = len(api.services.ips)
        headless = (await create(api, "db", clusterIP="None", selector={"app": "db"}))["spec"]
        assert headless["clusterIP"] == "None" and headless["clusterIPs"] == ["None"]
        ext = (await create(api, "up", type="ExternalName", externalName="example.com"))["spec"]
        assert "clusterIP" not in ext and "clusterIPs" not in ext
        assert len(api.services.ips) == held

    run(tmp_path, body)


def test_the_cluster_ip_may_not_change_once_set(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "fixed", clusterIP="10.43.0.20")
        with pytest.raises(ApiError) as err:
            await merge(
                api, "fixed", {"spec": {"clusterIP": "10.43.0.21", "clusterIPs": ["10.43.0.21"]}}
            )
        assert err.value.code == 422
        assert "spec.clusterIPs[0]" in err.value.message
        assert "may not change once set" in err.value.message
        assert api.services.ip_holder("10.43.0.21") is None

    run(tmp_path, body)


def test_changing_to_and_from_external_name_releases_and_allocates(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        ip = (await create(api, "flip", clusterIP="10.43.0.30"))["spec"]["clusterIP"]
        out = await merge(api, "flip", {"spec": {"type": "ExternalName", "externalName": "a.b"}})
        spec = out["spec"]
        assert "clusterIP" not in spec and "ipFamilies" not in spec
        assert api.services.ip_holder(ip) is None
        # The released IP can be requested by another Service.
        assert (await create(api, "taker", clusterIP=ip))["spec"]["clusterIP"] == ip
        back = await merge(api, "flip", {"spec": {"type": "ClusterIP"}})
        assert in_range(back["spec"]["clusterIP"]) and back["spec"]["clusterIP"] != ip

    run(tmp_path, body)


def test_a_dry_run_shows_an_ip_without_keeping_it(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        held = len(api.services.ips)
        dry = (await api.create(svcs(api), "default", service("dry"), DRY)).obj
        ip = dry["spec"]["clusterIP"]
        assert in_range(ip)
        assert len(api.services.ips) == held and api.services.ip_holder(ip) is None
        kept = await create(api, "wet", clusterIP=ip)
        assert kept["spec"]["clusterIP"] == ip

    run(tmp_path, body)


def test_deleting_a_service_releases_its_ip_and_node_ports(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await create(api, "np", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
        ip = out["spec"]["clusterIP"]
        await delete(api, "np")
        assert api.services.ip_holder(ip) is None and api.services.port_holder(30080) is None
        again = await create(
            api, "np2", type="NodePort", clusterIP=ip, ports=[{"port": 80, "nodePort": 30080}]
        )
        assert again["spec"]["clusterIP"] == ip

    run(tmp_path, body)


def test_concurrent_creates_never_share_an_ip(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        outs = await asyncio.gather(*(create(api, f"c{i}") for i in range(60)))
        ips = [o["spec"]["clusterIP"] for o in outs]
        assert len(set(ips)) == 60

    run(tmp_path, body, ApiOptions(service_cidr="10.96.0.0/25"))


def test_a_restarted_api_rebuilds_the_allocations_from_the_store(tmp_path: Path) -> None:
    taken: dict[str, Any] = {}
    options_cidr = ipaddress.IPv4Network("10.96.0.0/29")

    async def first(api: ObjectAPI) -> None:
        out = await create(api, "kept", type="NodePort", ports=[{"port": 80, "nodePort": 30100}])
        taken["ip"] = out["spec"]["clusterIP"]
        for i in range(3):
            await create(api, f"fill{i}")

    async def second(api: ObjectAPI) -> None:
        assert api.services.ip_holder(taken["ip"]) is not None
        err = await rejected(api, service("dup", clusterIP=taken["ip"]))
        assert "provided IP is already allocated" in err.message
        err = await rejected(
            api, service("dup2", type="NodePort", ports=[{"port": 80, "nodePort": 30100}])
        )
        assert "provided port is already allocated" in err.message
        # kubernetes, kept and fill0-2 hold five of the six usable IPs of the /29.
        assert in_range((await create(api, "last"))["spec"]["clusterIP"], options_cidr)
        err = await rejected(api, service("full"))
        assert err.code == 500

    options = ApiOptions(service_cidr=str(options_cidr))
    run(tmp_path, first, options)
    run(tmp_path, second, options)


# --- node ports -------------------------------------------------------------------------------
def test_node_ports_are_chosen_in_range_and_requested_ones_are_checked(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await create(
            api,
            "np",
            type="NodePort",
            ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30080}],
        )
        ports = out["spec"]["ports"]
        assert 30000 <= ports[0]["nodePort"] <= 32767 and ports[0]["nodePort"] != 30080
        assert ports[1]["nodePort"] == 30080
        err = await rejected(
            api, service("clash", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
        )
        assert err.code == 422
        assert err.message == (
            'Service "clash" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
            "provided port is already allocated"
        )
        err = await rejected(
            api, service("low", type="NodePort", ports=[{"port": 80, "nodePort": 8080}])
        )
        assert err.message == (
            'Service "low" is invalid: spec.ports[0].nodePort: Invalid value: 8080: '
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        )

    run(tmp_path, body)


def test_a_failed_node_port_gives_back_the_ip_taken_for_the_same_create(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "first", type="NodePort", ports=[{"port": 80, "nodePort": 30001}])
        held = len(api.services.ips)
        await rejected(
            api, service("second", type="NodePort", ports=[{"port": 80, "nodePort": 30001}])
        )
        assert len(api.services.ips) == held

    run(tmp_path, body)


def test_one_port_number_over_tcp_and_udp_shares_its_node_port(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await create(
            api,
            "dns",
            type="NodePort",
            ports=[
                {"name": "udp", "port": 53, "protocol": "UDP"},
                {"name": "tcp", "port": 53, "protocol": "TCP"},
            ],
        )
        a, b = (p["nodePort"] for p in out["spec"]["ports"])
        assert a == b

    run(tmp_path, body)


def test_node_ports_are_kept_on_update_and_released_with_their_port(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await create(
            api, "np", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]
        )
        a, b = (p["nodePort"] for p in out["spec"]["ports"])
        replacement = service("np", type="NodePort", ports=[{"name": "a", "port": 80}])
        replacement["metadata"]["resourceVersion"] = out["metadata"]["resourceVersion"]
        new = (await api.replace(svcs(api), "default", "np", replacement, MANAGER)).obj
        assert [p["nodePort"] for p in new["spec"]["ports"]] == [a]
        assert api.services.port_holder(a) is not None and api.services.port_holder(b) is None

    run(tmp_path, body)


def test_changing_to_cluster_ip_clears_and_releases_the_node_ports(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await create(api, "np", type="NodePort", ports=[{"port": 80, "nodePort": 30500}])
        assert out["spec"]["externalTrafficPolicy"] == "Cluster"
        new = await merge(api, "np", {"spec": {"type": "ClusterIP"}})
        assert "nodePort" not in new["spec"]["ports"][0]
        assert "externalTrafficPolicy" not in new["spec"]
        assert new["spec"]["clusterIP"] == out["spec"]["clusterIP"]
        assert api.services.port_holder(30500) is None
        again = await merge(api, "np", {"spec": {"type": "NodePort"}})
        assert 30000 <= again["spec"]["ports"][0]["nodePort"] <= 32767

    run(tmp_path, body)


def test_load_balancers_get_node_ports_unless_told_not_to_and_a_health_check_port(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        lb = (await create(api, "lb", type="LoadBalancer"))["spec"]
        assert 30000 <= lb["ports"][0]["nodePort"] <= 32767
        assert "healthCheckNodePort" not in lb
        bare = await create(api, "bare", type="LoadBalancer", allocateLoadBalancerNodePorts=False)
        assert "nodePort" not in bare["spec"]["ports"][0]
        local = await create(api, "local", type="LoadBalancer", externalTrafficPolicy="Local")
        hc = local["spec"]["healthCheckNodePort"]
        assert 30000 <= hc <= 32767 and hc != local["spec"]["ports"][0]["nodePort"]
        err = await rejected(
            api,
            service(
                "clash", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=hc
            ),
        )
        assert err.code == 500
        assert err.message == (
            "Internal error occurred: failed to allocate requested HealthCheck NodePort "
            f"{hc}: provided port is already allocated"
        )
        await merge(api, "local", {"spec": {"externalTrafficPolicy": "Cluster"}})
        assert api.services.port_holder(hc) is None

    run(tmp_path, body)


def test_an_exhausted_node_port_range_is_a_clear_error(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(
            api, "a", type="NodePort", ports=[{"name": "x", "port": 1}, {"name": "y", "port": 2}]
        )
        err = await rejected(api, service("b", type="NodePort"))
        assert err.code == 500
        assert (
            err.message == "Internal error occurred: failed to allocate a nodePort: range is full"
        )

    run(tmp_path, body, ApiOptions(service_node_port_range="30000-30001"))


# --- server-side apply --------------------------------------------------------------------------
def test_applying_the_same_manifest_twice_changes_nothing(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        manifest = service("ssa", type="NodePort", selector={"app": "x"})
        apply = WriteOptions(field_manager="kubectl")
        first = (await api.patch(svcs(api), "default", "ssa", "apply", manifest, apply)).obj
        assert in_range(first["spec"]["clusterIP"])
        managed = str(first["metadata"]["managedFields"])
        assert "clusterIP" not in managed and "nodePort" not in managed
        dry = WriteOptions(field_manager="kubectl", dry_run=True)
        preview = (await api.patch(svcs(api), "default", "ssa", "apply", manifest, dry)).obj
        again = (await api.patch(svcs(api), "default", "ssa", "apply", manifest, apply)).obj
        for out in (preview, again):
            assert out["spec"] == first["spec"]
            assert out["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    run(tmp_path, body)


def test_applying_a_cluster_ip_type_over_a_node_port_service_releases_its_ports(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        apply = WriteOptions(field_manager="kubectl")
        node = service("web", type="NodePort", ports=[{"name": "http", "port": 80}])
        first = (await api.patch(svcs(api), "default", "web", "apply", node, apply)).obj
        port = first["spec"]["ports"][0]["nodePort"]
        plain = service("web", type="ClusterIP", ports=[{"name": "http", "port": 80}])
        out = (await api.patch(svcs(api), "default", "web", "apply", plain, apply)).obj
        assert "nodePort" not in out["spec"]["ports"][0]
        assert out["spec"]["clusterIP"] == first["spec"]["clusterIP"]
        assert api.services.port_holder(port) is None

    run(tmp_path, body)


def test_services_from_before_a_range_change_keep_their_values(tmp_path: Path) -> None:
    async def first(api: ObjectAPI) -> None:
        await create(api, "old", type="NodePort", clusterIP="10.43.0.40")

    async def second(api: ObjectAPI) -> None:
        out = await merge(api, "old", {"metadata": {"labels": {"touched": "yes"}}})
        assert out["spec"]["clusterIP"] == "10.43.0.40"
        assert out["metadata"]["labels"] == {"touched": "yes"}

    run(tmp_path, first)
    run(
        tmp_path,
        second,
        ApiOptions(service_cidr="10.96.0.0/24", service_node_port_range="40000-40100"),
    )


# --- speed ----------------------------------------------------------------------------------------
def test_thousands_of_allocations_stay_fast() -> None:
    alloc = services.ServiceAllocator(CIDR, services.PortRange(30000, 32767), lambda: ())
    started = time.monotonic()
    seen = set()
    for i in range(3000):
        svc: dict[str, Any] = {
            "metadata": {"uid": f"u{i}", "namespace": "n", "name": f"s{i}"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
        }
        alloc.allocate(svc, None).commit()
        seen.add(svc["spec"]["clusterIP"])
    assert len(seen) == 3000
    assert time.monotonic() - started < 2.0
