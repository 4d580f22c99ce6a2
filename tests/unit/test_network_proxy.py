"""Tests of the service proxy (runtime/network/proxy.py): the iptables-restore text
rendered from Services and EndpointSlices (DNAT, probabilities, affinity, UDP, named
ports, readiness, REJECT for Services without endpoints, skipped Service kinds,
deletion), the informer wiring, and ServiceProxy's command sequence against fake
``iptables``/``iptables-restore`` scripts that record their calls (no root needed; the
real kernel is exercised by tests/integration/test_network_proxy.py)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.network.proxy import (
    ProxyError,
    ProxyOptions,
    ProxyRules,
    ServiceProxy,
    bind_informers,
    declared_chains,
)

Obj = dict[str, Any]


# --- object builders --------------------------------------------------------------------
def service(
    name: str = "web",
    cluster_ip: str = "10.43.0.10",
    ports: list[Obj] | None = None,
    namespace: str = "default",
    **spec: Any,
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "clusterIP": cluster_ip,
            "ports": ports
            if ports is not None
            else [{"name": "http", "port": 80, "protocol": "TCP"}],
            **spec,
        },
    }


def endpoint(ip: str, ready: bool | None = True) -> Obj:
    out: Obj = {"addresses": [ip]}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    return out


def endpoint_slice(
    service_name: str = "web",
    endpoints: list[Obj] | None = None,
    ports: list[Obj] | None = None,
    name: str | None = None,
    namespace: str = "default",
    address_type: str = "IPv4",
) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abcde",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "ports": ports
        if ports is not None
        else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints if endpoints is not None else [endpoint("10.99.0.11")],
    }


def rules_of(*objs: Obj) -> ProxyRules:
    rules = ProxyRules()
    for obj in objs:
        rules.upsert(obj)
    return rules


def lines(text: str, pattern: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(pattern, line)]


def svc_chain_of(nat: str) -> str:
    (chain,) = set(re.findall(r"-j (GITOPS-SVC-\w+)", nat))
    return str(chain)


# --- rendering ----------------------------------------------------------------------------
def test_a_cluster_ip_port_is_dnatted_to_its_ready_endpoint_and_masqueraded() -> None:
    nat, filter_ = rules_of(service(), endpoint_slice()).render()

    assert nat.startswith("*nat\n") and nat.endswith("COMMIT\n")
    chain = svc_chain_of(nat)
    (jump,) = lines(nat, "^-A GITOPS-SERVICES ")
    assert jump == (
        '-A GITOPS-SERVICES -d 10.43.0.10/32 -m comment --comment "default/web:http cluster IP"'
        f" -p tcp -m tcp --dport 80 -j {chain}"
    )
    svc_rules = lines(nat, f"^-A {chain} ")
    assert svc_rules[0] == f"-A {chain} -j GITOPS-MARK-MASQ"
    (pick,) = svc_rules[1:]
    assert "statistic" not in pick  # a single endpoint is taken unconditionally
    sep = pick.split(" -j ")[-1]
    assert lines(nat, f"^-A {sep} ") == [
        f'-A {sep} -p tcp -m comment --comment "default/web:http"'
        " -j DNAT --to-destination 10.99.0.11:8080"
    ]
    assert "-A GITOPS-MARK-MASQ -j MARK --or-mark 0x4000" in nat
    assert "-A GITOPS-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN" in nat
    assert lines(nat, "^-A GITOPS-POSTROUTING .*-j MASQUERADE")
    assert lines(filter_, "^-A ") == []


def test_every_chain_used_is_declared_so_a_restore_flushes_it() -> None:
    nat, filter_ = rules_of(service(), endpoint_slice()).render()
    used = set(re.findall(r"^-A (\S+)", nat, re.M)) | set(re.findall(r"-j (GITOPS-\S+)", nat))
    assert used <= declared_chains(nat)
    assert declared_chains(filter_) == {"GITOPS-FILTER-SERVICES"}
    assert all(c.startswith("GITOPS-") and len(c) <= 28 for c in declared_chains(nat))


@pytest.mark.parametrize(
    ("count", "probabilities"),
    [
        (1, []),
        (2, ["0.5000000000"]),
        (3, ["0.3333333333", "0.5000000000"]),
        (4, ["0.2500000000", "0.3333333333", "0.5000000000"]),
    ],
)
def test_endpoints_are_picked_with_probabilities_one_over_the_remaining_count(
    count: int, probabilities: list[str]
) -> None:
    eps = [endpoint(f"10.99.0.{10 + i}") for i in range(count)]
    nat, _ = rules_of(service(), endpoint_slice(endpoints=eps)).render()

    picks = lines(nat, f"^-A {svc_chain_of(nat)} .*-j GITOPS-SEP-")
    assert len(picks) == count
    found = [m.group(1) for p in picks if (m := re.search(r"--probability (\S+)", p))]
    assert found == probabilities
    assert "statistic" not in picks[-1]
    targets = [re.search(r"-> (\S+)\"", p).group(1) for p in picks]  # type: ignore[union-attr]
    assert targets == [f"10.99.0.{10 + i}:8080" for i in range(count)]


def test_client_ip_affinity_checks_recent_lists_before_picking_and_sets_them_on_dnat() -> None:
    svc = service(sessionAffinity="ClientIP")
    eps = endpoint_slice(endpoints=[endpoint("10.99.0.11"), endpoint("10.99.0.12")])
    nat, _ = rules_of(svc, eps).render()

    chain = svc_chain_of(nat)
    svc_rules = lines(nat, f"^-A {chain} ")
    checks = [r for r in svc_rules if "--rcheck" in r]
    assert len(checks) == 2
    assert svc_rules[1:3] == checks  # after the mark, before the random picks
    for check in checks:
        sep = check.split(" -j ")[-1]
        assert f"-m recent --name {sep} --rcheck --seconds 10800 --reap -j {sep}" in check
        (dnat,) = lines(nat, f"^-A {sep} ")
        assert f"-m recent --name {sep} --set -j DNAT" in dnat


def test_the_affinity_timeout_comes_from_the_session_affinity_config() -> None:
    svc = service(
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    nat, _ = rules_of(svc, endpoint_slice()).render()
    assert lines(nat, "--rcheck --seconds 60 --reap")


def test_without_affinity_there_are_no_recent_matches() -> None:
    nat, _ = rules_of(service(sessionAffinity="None"), endpoint_slice()).render()
    assert "recent" not in nat


def test_udp_ports_get_udp_rules_and_their_own_chains() -> None:
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    slice_ports = [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
    ]
    nat, _ = rules_of(service(ports=ports), endpoint_slice(ports=slice_ports)).render()

    udp = lines(nat, "^-A GITOPS-SERVICES .*-p udp -m udp --dport 53 ")
    tcp = lines(nat, "^-A GITOPS-SERVICES .*-p tcp -m tcp --dport 53 ")
    assert len(udp) == len(tcp) == 1
    assert udp[0].split(" -j ")[-1] != tcp[0].split(" -j ")[-1]
    assert lines(nat, "-p udp .*-j DNAT --to-destination 10.99.0.11:5353")


def test_sctp_ports_are_ignored() -> None:
    ports = [{"name": "s", "port": 9, "protocol": "SCTP"}]
    nat, filter_ = rules_of(
        service(ports=ports), endpoint_slice(ports=[{"name": "s", "port": 9, "protocol": "SCTP"}])
    ).render()
    assert lines(nat, "^-A GITOPS-SERVICES") == [] and lines(filter_, "^-A ") == []


def test_each_service_port_takes_the_slice_port_of_the_same_name() -> None:
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
    ]
    slice_ports = [
        {"name": "metrics", "port": 19090, "protocol": "TCP"},
        {"name": "http", "port": 8080, "protocol": "TCP"},
    ]
    nat, _ = rules_of(service(ports=ports), endpoint_slice(ports=slice_ports)).render()

    for port, target in ((80, 8080), (9090, 19090)):
        (jump,) = lines(nat, f"^-A GITOPS-SERVICES .*--dport {port} ")
        chain = jump.split(" -j ")[-1]
        (pick,) = lines(nat, f"^-A {chain} .*-j GITOPS-SEP-")
        sep = pick.split(" -j ")[-1]
        assert lines(nat, f"^-A {sep} .*--to-destination 10.99.0.11:{target}$")


def test_an_unnamed_service_port_takes_the_unnamed_slice_port() -> None:
    svc = service(ports=[{"port": 80}])
    eps = endpoint_slice(ports=[{"port": 8080, "protocol": "TCP"}])
    nat, _ = rules_of(svc, eps).render()
    assert lines(nat, '--comment "default/web cluster IP"')
    assert lines(nat, "--to-destination 10.99.0.11:8080$")


def test_a_slice_port_of_another_name_or_protocol_gives_no_endpoints() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    eps = endpoint_slice(
        ports=[
            {"name": "web", "port": 8080, "protocol": "TCP"},
            {"name": "http", "port": 8080, "protocol": "UDP"},
        ]
    )
    nat, filter_ = rules_of(svc, eps).render()
    assert "DNAT" not in nat
    assert len(lines(filter_, "REJECT")) == 1


def test_not_ready_endpoints_are_skipped_and_a_missing_ready_condition_counts_as_ready() -> None:
    eps = endpoint_slice(
        endpoints=[
            endpoint("10.99.0.11", ready=False),
            endpoint("10.99.0.12", ready=None),
            endpoint("10.99.0.13"),
        ]
    )
    nat, _ = rules_of(service(), eps).render()
    targets = re.findall(r"--to-destination (\S+)", nat)
    assert targets == ["10.99.0.12:8080", "10.99.0.13:8080"]


def test_endpoints_of_several_slices_are_merged_once_each_in_address_order() -> None:
    first = endpoint_slice(name="web-1", endpoints=[endpoint("10.99.0.12"), endpoint("10.99.0.9")])
    second = endpoint_slice(
        name="web-2", endpoints=[endpoint("10.99.0.12"), endpoint("10.99.0.100")]
    )
    other = endpoint_slice("api", name="api-1", endpoints=[endpoint("10.99.0.50")])
    nat, _ = rules_of(service(), first, second, other).render()
    assert re.findall(r"--to-destination (\S+)", nat) == [
        "10.99.0.9:8080",
        "10.99.0.12:8080",
        "10.99.0.100:8080",
    ]


def test_ipv6_and_fqdn_slices_and_addresses_are_ignored() -> None:
    v6 = endpoint_slice(name="web-v6", address_type="IPv6", endpoints=[endpoint("fd00::1")])
    fqdn = endpoint_slice(
        name="web-fqdn", address_type="FQDN", endpoints=[endpoint("example.test")]
    )
    nat, filter_ = rules_of(service(), v6, fqdn).render()
    assert "DNAT" not in nat
    assert lines(filter_, "REJECT")


def test_a_service_without_ready_endpoints_is_rejected_in_the_filter_table() -> None:
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]
    eps = endpoint_slice(endpoints=[endpoint("10.99.0.11", ready=False)])
    nat, filter_ = rules_of(service(ports=ports), eps).render()

    assert lines(nat, "^-A GITOPS-SERVICES") == []
    assert declared_chains(nat) == {"GITOPS-SERVICES", "GITOPS-MARK-MASQ", "GITOPS-POSTROUTING"}
    assert lines(filter_, "^-A ") == [
        '-A GITOPS-FILTER-SERVICES -d 10.43.0.10/32 -m comment --comment "default/web:http has no'
        ' endpoints" -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset',
        '-A GITOPS-FILTER-SERVICES -d 10.43.0.10/32 -m comment --comment "default/web:dns has no'
        ' endpoints" -p udp -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable',
    ]


def test_headless_and_external_name_services_get_no_rules() -> None:
    headless = service("db", cluster_ip="None")
    external = {
        "kind": "Service",
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.test", "ports": [{"port": 80}]},
    }
    pending = service("new", cluster_ip="")
    v6_only = service("six", cluster_ip="fd00:43::10")
    nat, filter_ = rules_of(
        headless, external, pending, v6_only, endpoint_slice("db"), endpoint_slice("ext")
    ).render()
    assert lines(nat, "^-A GITOPS-SERVICES") == []
    assert lines(filter_, "^-A ") == []


def test_every_ipv4_cluster_ip_of_a_service_is_matched() -> None:
    svc = service(clusterIPs=["10.43.0.10", "fd00:43::10"])
    nat, _ = rules_of(svc, endpoint_slice()).render()
    assert len(lines(nat, "^-A GITOPS-SERVICES -d 10.43.0.10/32")) == 1
    assert "fd00" not in nat


def test_removing_a_slice_or_a_service_takes_its_rules_away() -> None:
    svc, eps = service(), endpoint_slice()
    rules = rules_of(svc, eps)
    assert "DNAT" in rules.render()[0]

    rules.remove(eps)
    nat, filter_ = rules.render()
    assert "DNAT" not in nat and "GITOPS-SVC-" not in nat
    assert lines(filter_, "REJECT")

    rules.remove(svc)
    nat, filter_ = rules.render()
    assert lines(nat, "^-A GITOPS-SERVICES") == [] and lines(filter_, "^-A ") == []


def test_a_service_turning_headless_loses_its_rules() -> None:
    rules = rules_of(service(), endpoint_slice())
    rules.upsert(service(cluster_ip="None"))
    assert lines(rules.render()[0], "^-A GITOPS-SERVICES") == []


def test_rendering_is_stable_and_chain_names_depend_only_on_the_service_port() -> None:
    a = rules_of(service(), endpoint_slice(), service("api", "10.43.0.11"), endpoint_slice("api"))
    b = rules_of(endpoint_slice("api"), service("api", "10.43.0.11"), endpoint_slice(), service())
    assert a.render() == b.render()
    other_ns = rules_of(service(namespace="prod"), endpoint_slice(namespace="prod"))
    assert declared_chains(a.render()[0]).isdisjoint(
        declared_chains(other_ns.render()[0])
        - {"GITOPS-SERVICES", "GITOPS-MARK-MASQ", "GITOPS-POSTROUTING"}
    )


def test_the_masquerade_mark_is_configurable() -> None:
    rules = ProxyRules(ProxyOptions(masquerade_mark="0x8000"))
    rules.upsert(service())
    nat, _ = rules.render()
    assert "-A GITOPS-MARK-MASQ -j MARK --or-mark 0x8000" in nat
    assert "--mark 0x8000/0x8000 -j RETURN" in nat


def test_other_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="'Pod'"):
        ProxyRules().upsert({"kind": "Pod", "metadata": {"name": "p"}})
    with pytest.raises(ValueError, match="None"):
        ProxyRules().remove({"metadata": {"name": "p"}})


# --- informer wiring ------------------------------------------------------------------------
class FakeSource:
    def __init__(self, *items: Obj) -> None:
        self._items = list(items)
        self.add: Callable[[Obj], None] | None = None
        self.update: Callable[[Obj, Obj], None] | None = None
        self.delete: Callable[[Obj], None] | None = None

    def items(self) -> list[Obj]:
        return list(self._items)

    def on(
        self,
        add: Callable[[Obj], None] | None = None,
        update: Callable[[Obj, Obj], None] | None = None,
        delete: Callable[[Obj], None] | None = None,
    ) -> None:
        self.add, self.update, self.delete = add, update, delete


def test_bind_informers_loads_the_caches_and_follows_events_without_kind_fields() -> None:
    svc = service()
    del svc["kind"]  # list items from the API carry no kind
    services, slices = FakeSource(svc), FakeSource()
    rules = ProxyRules()
    changed = asyncio.Event()

    bind_informers(rules, services=services, slices=slices, changed=changed)
    assert changed.is_set()
    assert lines(rules.render()[1], "REJECT")

    changed.clear()
    eps = endpoint_slice()
    del eps["kind"]
    assert slices.add is not None and slices.update is not None and slices.delete is not None
    slices.add(eps)
    assert changed.is_set() and "DNAT" in rules.render()[0]

    changed.clear()
    moved = endpoint_slice(endpoints=[endpoint("10.99.0.77")])
    slices.update(eps, moved)
    assert changed.is_set() and "10.99.0.77:8080" in rules.render()[0]

    changed.clear()
    slices.delete(moved)
    assert changed.is_set() and "DNAT" not in rules.render()[0]

    assert services.delete is not None
    services.delete(svc)
    assert lines(rules.render()[1], "REJECT") == []


# --- ServiceProxy against fake binaries ---------------------------------------------------
FAKE_IPTABLES = """\
import json, os, sys
from pathlib import Path
state = Path(__file__).parent
args = sys.argv[1:]
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(args) + "\\n")
table = args[args.index("-t") + 1] if "-t" in args else "filter"
if "-S" in args:
    listing = state / f"listing-{table}"
    sys.stdout.write(listing.read_text() if listing.exists() else "")
elif "-C" in args:
    sys.exit(0 if (state / "jumps-present").exists() else 1)
"""

FAKE_RESTORE = """\
import json, sys
from pathlib import Path
state = Path(__file__).parent
text = sys.stdin.read()
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(["RESTORE", *sys.argv[1:], text]) + "\\n")
if (state / "restore-fails").exists():
    sys.stderr.write("iptables-restore: line 3 failed\\n")
    sys.exit(1)
"""


class Fakes:
    def __init__(self, root: Path) -> None:
        self.root = root
        for name, body in (("iptables", FAKE_IPTABLES), ("iptables-restore", FAKE_RESTORE)):
            path = root / name
            path.write_text(f"#!{sys.executable}\n{body}")
            path.chmod(0o755)
        self.options = ProxyOptions(
            iptables=str(root / "iptables"), iptables_restore=str(root / "iptables-restore")
        )

    def calls(self) -> list[list[str]]:
        log = self.root / "calls.jsonl"
        if not log.exists():
            return []
        result = [json.loads(line) for line in log.read_text().splitlines()]
        log.unlink()
        return result

    def restores(self, calls: list[list[str]]) -> list[str]:
        return [c[-1] for c in calls if c[0] == "RESTORE"]


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_sync_writes_both_tables_with_noflush_inserts_missing_jumps_and_skips_when_unchanged(
    fakes: Fakes,
) -> None:
    rules = rules_of(service(), endpoint_slice())
    proxy = ServiceProxy(rules, fakes.options)

    assert run(proxy.sync()) is True
    calls = fakes.calls()
    (restore,) = [c for c in calls if c[0] == "RESTORE"]
    assert "--noflush" in restore
    nat, filter_ = rules.render()
    assert restore[-1] == nat + filter_
    inserts = [c for c in calls if "-I" in c]
    assert {(c[c.index("-t") + 1], c[c.index("-I") + 1]) for c in inserts} == {
        ("nat", "PREROUTING"),
        ("nat", "OUTPUT"),
        ("nat", "POSTROUTING"),
        ("filter", "INPUT"),
        ("filter", "FORWARD"),
        ("filter", "OUTPUT"),
    }
    assert all(c[c.index("-I") + 2] == "1" and "gitops-cluster" in c for c in inserts)

    assert run(proxy.sync()) is False
    assert fakes.calls() == []

    rules.remove(endpoint_slice())
    (fakes.root / "jumps-present").touch()
    assert run(proxy.sync()) is True
    calls = fakes.calls()
    assert len(fakes.restores(calls)) == 1
    assert not [c for c in calls if "-I" in c]  # jumps found by -C


def test_chains_no_longer_generated_are_flushed_and_deleted(fakes: Fakes) -> None:
    (fakes.root / "listing-nat").write_text(
        "-P PREROUTING ACCEPT\n-N DOCKER\n-N GITOPS-SERVICES\n-N GITOPS-SVC-OLDOLDOLDOLDOLDO\n"
        "-N GITOPS-SEP-OLDOLDOLDOLDOLDO\n-A GITOPS-SVC-OLDOLDOLDOLDOLDO -j GITOPS-SEP-OLDOLDOLDOLDOLDO\n"
    )
    proxy = ServiceProxy(rules_of(service(), endpoint_slice()), fakes.options)
    run(proxy.sync())
    (text,) = fakes.restores(fakes.calls())
    nat = text.split("COMMIT\n")[0]
    assert ":GITOPS-SVC-OLDOLDOLDOLDOLDO - [0:0]" in nat
    assert nat.rstrip().splitlines()[-2:] == [
        "-X GITOPS-SEP-OLDOLDOLDOLDOLDO",
        "-X GITOPS-SVC-OLDOLDOLDOLDOLDO",
    ]
    assert "DOCKER" not in text and "-X GITOPS-SERVICES" not in text


def test_cleanup_deletes_jumps_to_our_chains_and_our_chains_only(fakes: Fakes) -> None:
    (fakes.root / "listing-nat").write_text(
        "-P PREROUTING ACCEPT\n-N DOCKER\n-N GITOPS-SERVICES\n-N GITOPS-POSTROUTING\n"
        '-A PREROUTING -m comment --comment "gitops-cluster" -j GITOPS-SERVICES\n'
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
        "-A POSTROUTING -m comment --comment gitops-cluster -j GITOPS-POSTROUTING\n"
        "-A GITOPS-SERVICES -d 10.43.0.10/32 -j GITOPS-SVC-X\n"
    )
    proxy = ServiceProxy(ProxyRules(), fakes.options)
    run(proxy.cleanup())
    calls = fakes.calls()
    deletes = [c[c.index("-D") :] for c in calls if "-D" in c]
    assert deletes == [
        [
            "-D",
            "PREROUTING",
            "-m",
            "comment",
            "--comment",
            "gitops-cluster",
            "-j",
            "GITOPS-SERVICES",
        ],
        [
            "-D",
            "POSTROUTING",
            "-m",
            "comment",
            "--comment",
            "gitops-cluster",
            "-j",
            "GITOPS-POSTROUTING",
        ],
    ]
    (text,) = fakes.restores(calls)
    assert text == (
        "*nat\n:GITOPS-POSTROUTING - [0:0]\n:GITOPS-SERVICES - [0:0]\n"
        "-X GITOPS-POSTROUTING\n-X GITOPS-SERVICES\nCOMMIT\n"
    )


def test_cleanup_with_nothing_left_writes_nothing(fakes: Fakes) -> None:
    run(ServiceProxy(ProxyRules(), fakes.options).cleanup())
    assert fakes.restores(fakes.calls()) == []


def test_a_failed_restore_raises_and_the_next_sync_tries_again(fakes: Fakes) -> None:
    proxy = ServiceProxy(rules_of(service(), endpoint_slice()), fakes.options)
    (fakes.root / "restore-fails").touch()
    with pytest.raises(ProxyError, match="line 3 failed") as info:
        run(proxy.sync())
    assert info.value.retryable
    (fakes.root / "restore-fails").unlink()
    assert run(proxy.sync()) is True


def test_a_missing_binary_is_a_permanent_error(tmp_path: Path) -> None:
    options = ProxyOptions(iptables=str(tmp_path / "nope"), iptables_restore=str(tmp_path / "nope"))
    with pytest.raises(ProxyError, match="cannot run") as info:
        run(ServiceProxy(rules_of(service()), options).sync())
    assert not info.value.retryable


def test_commands_run_inside_the_given_network_namespace() -> None:
    proxy = ServiceProxy(ProxyRules(), ProxyOptions(netns="gitops-test-x"))
    assert proxy._iptables("-t", "nat", "-S")[:5] == [
        "ip",
        "netns",
        "exec",
        "gitops-test-x",
        "iptables",
    ]


def test_run_coalesces_a_burst_of_changes_into_few_syncs(fakes: Fakes) -> None:
    rules = ProxyRules()
    proxy = ServiceProxy(rules, fakes.options)

    async def scenario() -> None:
        changed = asyncio.Event()
        task = asyncio.create_task(proxy.run(changed, min_interval=0.3))
        for i in range(20):
            rules.upsert(service(f"s{i}", f"10.43.0.{i + 1}"))
            changed.set()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.8)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    restores = fakes.restores(fakes.calls())
    assert 1 <= len(restores) <= 3
    assert "10.43.0.20/32" in restores[-1]  # the last state was written
