"""ExternalName Services through the cluster DNS server (runtime/network/dns.py): the
CNAME followed by the target's records — chased in the model for in-cluster targets,
asked of a fake upstream resolver on 127.0.0.1 for outside ones — over UDP and TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dnslib import QTYPE, DNSRecord

from runtime.network.dns import ClusterRecords, DnsServer
from tests.unit.test_network_dns import ZONE, FakeUpstream, ask, rcode, serve, service

EXAMPLE_ORG = "example.org. 60 IN A 192.0.2.10\nexample.org. 60 IN AAAA 2001:db8::10"


class ChasingUpstream(FakeUpstream):
    """The fake upstream, but answering like a recursive resolver: a name's CNAME is
    followed by the target's records (the chain an upstream hands back)."""

    def answer(self, packet: bytes, transport: str) -> bytes:
        request = DNSRecord.parse(packet)
        self.seen.append((transport, str(request.q.qname), request.header.id))
        reply = request.reply()
        name = request.q.qname
        for _ in range(8):
            cnames = [rr for rr in self.zone if rr.rname == name and rr.rtype == QTYPE.CNAME]
            if not cnames:
                break
            reply.add_answer(*cnames)
            name = cnames[0].rdata.label
        reply.add_answer(
            *(rr for rr in self.zone if rr.rname == name and rr.rtype == request.q.qtype)
        )
        return bytes(reply.pack())


def with_upstream(
    upstream: FakeUpstream,
    records: ClusterRecords,
    check: Callable[[int], Awaitable[None]],
    **options: Any,
) -> list[tuple[str, str, int]]:
    """Run ``check(port)`` against a server over ``records`` forwarding to ``upstream``;
    the questions the upstream saw."""

    async def go() -> list[tuple[str, str, int]]:
        async with upstream:

            async def test(server: DnsServer) -> None:
                await check(server.addresses[0][1])

            await asyncio.to_thread(serve, records, test, upstreams=[upstream.address], **options)
            return upstream.seen

    return asyncio.run(go())


def rows(reply: Any) -> list[tuple[str, str, str, int]]:
    return [(str(rr.rname), QTYPE[rr.rtype], str(rr.rdata), rr.ttl) for rr in reply.rr]


def test_an_external_name_to_an_outside_name_answers_the_cname_then_the_upstreams_a() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", "shop", external_name="example.org"))

    async def check(port: int) -> None:
        for tcp in (False, True):
            # What a pod asks for ``ext`` after its search list ``shop.svc.cluster.local``.
            reply = await ask(port, "ext.shop.svc.cluster.local", tcp=tcp)
            assert rcode(reply) == "NOERROR" and reply.header.aa
            assert rows(reply) == [
                ("ext.shop.svc.cluster.local.", "CNAME", "example.org.", 5),
                ("example.org.", "A", "192.0.2.10", 60),
            ]

    seen = with_upstream(FakeUpstream(EXAMPLE_ORG), records, check)
    assert [(transport, name) for transport, name, _ in seen] == [
        ("udp", "example.org."),
        ("udp", "example.org."),
    ]


def test_an_aaaa_question_chases_the_outside_targets_aaaa_records() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", external_name="example.org"))

    async def check(port: int) -> None:
        reply = await ask(port, "ext.default.svc.cluster.local", "AAAA")
        assert [(t, d) for _, t, d, _ in rows(reply)] == [
            ("CNAME", "example.org."),
            ("AAAA", "2001:db8::10"),
        ]

    with_upstream(FakeUpstream(EXAMPLE_ORG), records, check)


def test_the_upstreams_own_cname_chain_follows_ours_in_order() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("cdn", external_name="www.example.org"))
    zone = "www.example.org. 300 IN CNAME edge.example.net.\nedge.example.net. 20 IN A 192.0.2.77"

    async def check(port: int) -> None:
        reply = await ask(port, "cdn.default.svc.cluster.local")
        assert rows(reply) == [
            ("cdn.default.svc.cluster.local.", "CNAME", "www.example.org.", 5),
            ("www.example.org.", "CNAME", "edge.example.net.", 300),
            ("edge.example.net.", "A", "192.0.2.77", 20),
        ]

    with_upstream(ChasingUpstream(zone), records, check)


def test_an_external_name_to_an_in_cluster_service_answers_cname_then_cluster_ip() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("api", "shop", cluster_ip="10.96.1.2"))
    records.upsert_service(service("alias", external_name="api.shop.svc.cluster.local"))

    async def check(port: int) -> None:
        for tcp in (False, True):
            reply = await ask(port, "alias.default.svc.cluster.local", tcp=tcp)
            assert rcode(reply) == "NOERROR"
            assert rows(reply) == [
                ("alias.default.svc.cluster.local.", "CNAME", "api.shop.svc.cluster.local.", 5),
                ("api.shop.svc.cluster.local.", "A", "10.96.1.2", 5),
            ]

    assert with_upstream(FakeUpstream(EXAMPLE_ORG), records, check) == []


def test_an_in_cluster_chain_ending_outside_gets_the_upstream_records_after_every_cname() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", "shop", external_name="example.org"))
    records.upsert_service(service("alias", external_name="ext.shop.svc.cluster.local"))

    async def check(port: int) -> None:
        reply = await ask(port, "alias.default.svc.cluster.local")
        assert [(n, t, d) for n, t, d, _ in rows(reply)] == [
            ("alias.default.svc.cluster.local.", "CNAME", "ext.shop.svc.cluster.local."),
            ("ext.shop.svc.cluster.local.", "CNAME", "example.org."),
            ("example.org.", "A", "192.0.2.10"),
        ]

    with_upstream(FakeUpstream(EXAMPLE_ORG), records, check)


def test_a_loop_of_two_external_names_terminates_with_the_cnames_it_has() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("a", external_name="b.default.svc.cluster.local"))
    records.upsert_service(service("b", external_name="a.default.svc.cluster.local"))

    async def check(port: int) -> None:
        for tcp in (False, True):
            reply = await asyncio.wait_for(ask(port, "a.default.svc.cluster.local", tcp=tcp), 5)
            assert rcode(reply) == "NOERROR"
            assert [t for _, t, _, _ in rows(reply)] == ["CNAME"] * 9

    assert with_upstream(FakeUpstream(), records, check) == []


def test_an_upstream_timeout_still_answers_the_cname_with_noerror() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", external_name="example.org"))

    async def check(port: int) -> None:
        for tcp in (False, True):
            reply = await ask(port, "ext.default.svc.cluster.local", tcp=tcp)
            assert rcode(reply) == "NOERROR"
            assert rows(reply) == [
                ("ext.default.svc.cluster.local.", "CNAME", "example.org.", 5),
            ]

    silent = FakeUpstream(EXAMPLE_ORG, silent=True)
    seen = with_upstream(silent, records, check, forward_timeout=0.2)
    assert len(seen) == 2  # it was asked, and did not answer


def test_an_outside_nxdomain_keeps_noerror_and_the_cname() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", external_name="gone.example.org"))

    async def check(port: int) -> None:
        reply = await ask(port, "ext.default.svc.cluster.local")
        assert rcode(reply) == "NOERROR"
        assert [t for _, t, _, _ in rows(reply)] == ["CNAME"]

    with_upstream(FakeUpstream(EXAMPLE_ORG), records, check)


def test_a_cname_question_answers_only_the_cname_without_asking_upstream() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", external_name="example.org"))

    async def check(port: int) -> None:
        for tcp in (False, True):
            reply = await ask(port, "ext.default.svc.cluster.local", "CNAME", tcp=tcp)
            assert rows(reply) == [
                ("ext.default.svc.cluster.local.", "CNAME", "example.org.", 5),
            ]

    assert with_upstream(FakeUpstream(EXAMPLE_ORG), records, check) == []


def test_a_chased_answer_too_large_for_udp_is_truncated_and_complete_over_tcp() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("many", external_name="many.example.org"))
    zone = "\n".join(f"many.example.org. 60 IN A 192.0.2.{i}" for i in range(1, 41))

    async def check(port: int) -> None:
        udp = await ask(port, "many.default.svc.cluster.local")
        assert udp.header.tc and udp.rr == []
        tcp = await ask(port, "many.default.svc.cluster.local", tcp=True)
        assert not tcp.header.tc
        assert [t for _, t, _, _ in rows(tcp)] == ["CNAME"] + ["A"] * 40

    with_upstream(FakeUpstream(zone), records, check)


def test_without_upstreams_an_external_name_answers_the_cname_alone() -> None:
    records = ClusterRecords(ZONE)
    records.upsert_service(service("ext", external_name="example.org"))

    async def test(server: DnsServer) -> None:
        reply = await ask(server.addresses[0][1], "ext.default.svc.cluster.local")
        assert rcode(reply) == "NOERROR" and [t for _, t, _, _ in rows(reply)] == ["CNAME"]

    serve(records, test)
