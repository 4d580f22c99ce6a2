"""Tests of the built-in ingress controller (runtime/network/ingress.py): the pure route
table (hosts, paths, merging, defaults, ports, classes, TLS selection), and the router
end to end on 127.0.0.1 with small aiohttp servers playing the pods."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeclient.rest import Client, ClusterConfig
from runtime.network.ingress import (
    CONTROLLER,
    Backend,
    Endpoint,
    IngressOptions,
    IngressRouter,
    RouteTable,
    bind_informers,
    default_ingress_class,
    publish_status,
    resolve_endpoints,
)

Obj = dict[str, Any]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


# --- object builders --------------------------------------------------------------------
def path(p: str, service: str, port: int | str, path_type: str = "Prefix") -> Obj:
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {
        "path": p,
        "pathType": path_type,
        "backend": {"service": {"name": service, "port": port_ref}},
    }


def rule(host: str | None, *paths: Obj) -> Obj:
    out: Obj = {"http": {"paths": list(paths)}}
    if host:
        out["host"] = host
    return out


def ingress(
    name: str,
    *rules: Obj,
    created: str = "2026-01-01T00:00:00Z",
    class_name: str | None = "builtin",
    default: tuple[str, int | str] | None = None,
    tls: list[Obj] | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str = "default",
) -> Obj:
    spec: Obj = {"rules": list(rules)}
    if class_name:
        spec["ingressClassName"] = class_name
    if default:
        port = default[1]
        spec["defaultBackend"] = {
            "service": {
                "name": default[0],
                "port": {"number": port} if isinstance(port, int) else {"name": port},
            }
        }
    if tls:
        spec["tls"] = tls
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def service(name: str, *ports: tuple[str, int], namespace: str = "default") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": n} for n, p in ports]
        },
    }


def endpoint_slice(
    service_name: str,
    port_name: str,
    port: int,
    *addresses: str,
    ready: bool = True,
    name: str | None = None,
    namespace: str = "default",
) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abc",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
    }


def web_service(name: str, port: int = 80, target: int = 8080, *addresses: str) -> list[Obj]:
    """A Service with port ``http`` and a slice with ready endpoints at ``target``."""
    return [service(name, ("http", port)), endpoint_slice(name, "http", target, *addresses)]


def table_with(*objects: Obj, **kwargs: Any) -> RouteTable:
    table = RouteTable(**kwargs)
    by_kind: dict[str, list[Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    table.update(
        by_kind.get("Ingress", []),
        by_kind.get("Service", []),
        by_kind.get("EndpointSlice", []),
        by_kind.get("Secret", []),
        by_kind.get("IngressClass") if "IngressClass" in by_kind else None,
    )
    return table


def target(table: RouteTable, host: str, p: str) -> str | None:
    route = table.match(host, p)
    return None if route is None else route.backend.service


# --- hosts and paths ----------------------------------------------------------------------
def test_exact_hosts_route_only_their_own_host() -> None:
    table = table_with(
        ingress("a", rule("a.example.com", path("/", "svc-a", 80))),
        ingress("b", rule("b.example.com", path("/", "svc-b", 80))),
    )
    assert target(table, "a.example.com", "/x") == "svc-a"
    assert target(table, "B.Example.com:8080", "/x") == "svc-b"
    assert target(table, "c.example.com", "/x") is None


def test_a_wildcard_host_matches_exactly_one_label_and_exact_hosts_win() -> None:
    table = table_with(
        ingress("w", rule("*.example.com", path("/", "wild", 80))),
        ingress("e", rule("exact.example.com", path("/", "exact", 80))),
    )
    assert target(table, "foo.example.com", "/") == "wild"
    assert target(table, "exact.example.com", "/") == "exact"
    assert target(table, "example.com", "/") is None
    assert target(table, "a.b.example.com", "/") is None


def test_rules_without_host_match_any_host_after_the_hosts_own_rules() -> None:
    table = table_with(
        ingress("any", rule(None, path("/", "catch-all", 80))),
        ingress("h", rule("h.local", path("/api", "api", 80))),
    )
    assert target(table, "whatever.test", "/a") == "catch-all"
    assert target(table, "h.local", "/api/v1") == "api"
    assert target(table, "h.local", "/other") == "catch-all"


def test_prefix_paths_match_element_wise_and_ignore_a_trailing_slash() -> None:
    table = table_with(ingress("p", rule("h", path("/foo", "foo", 80), path("/bar/", "bar", 80))))
    assert target(table, "h", "/foo") == "foo"
    assert target(table, "h", "/foo/") == "foo"
    assert target(table, "h", "/foo/bar") == "foo"
    assert target(table, "h", "/foobar") is None
    assert target(table, "h", "/bar") == "bar"
    assert target(table, "h", "/bar/baz") == "bar"


def test_exact_paths_match_only_the_identical_path() -> None:
    table = table_with(ingress("e", rule("h", path("/foo", "foo", 80, "Exact"))))
    assert target(table, "h", "/foo") == "foo"
    assert target(table, "h", "/foo/") is None
    assert target(table, "h", "/foo/bar") is None


def test_implementation_specific_paths_are_prefixes() -> None:
    table = table_with(ingress("i", rule("h", path("/docs", "docs", 80, "ImplementationSpecific"))))
    assert target(table, "h", "/docs/intro") == "docs"
    assert target(table, "h", "/docsx") is None


def test_the_longest_path_wins_and_exact_beats_an_equal_prefix() -> None:
    table = table_with(
        ingress(
            "l",
            rule(
                "h",
                path("/", "root", 80),
                path("/api", "api", 80),
                path("/api/v2", "v2", 80),
                path("/api/v2", "v2-exact", 80, "Exact"),
            ),
        )
    )
    assert target(table, "h", "/") == "root"
    assert target(table, "h", "/static/x.js") == "root"
    assert target(table, "h", "/api/v1/users") == "api"
    assert target(table, "h", "/api/v2/users") == "v2"
    assert target(table, "h", "/api/v2") == "v2-exact"


def test_ingresses_of_one_host_merge_and_the_oldest_wins_a_conflict() -> None:
    table = table_with(
        ingress("newer", rule("h", path("/", "new-root", 80)), created="2026-02-01T00:00:00Z"),
        ingress(
            "older",
            rule("h", path("/", "old-root", 80), path("/api", "api", 80)),
            created="2026-01-01T00:00:00Z",
        ),
        ingress("more", rule("h", path("/admin", "admin", 80)), created="2026-03-01T00:00:00Z"),
    )
    assert target(table, "h", "/") == "old-root"
    assert target(table, "h", "/api") == "api"
    assert target(table, "h", "/admin/x") == "admin"
    route = table.match("h", "/")
    assert route is not None and route.ingress == "default/older"


def test_equal_creation_times_are_ordered_by_namespace_and_name() -> None:
    table = table_with(
        ingress("b", rule("h", path("/", "from-b", 80))),
        ingress("a", rule("h", path("/", "from-a", 80))),
    )
    assert target(table, "h", "/") == "from-a"


def test_a_host_uses_its_ingress_default_backend_then_the_global_one() -> None:
    table = table_with(
        ingress("global", default=("fallback", 80), created="2026-01-01T00:00:00Z"),
        ingress(
            "site",
            rule("site.local", path("/app", "app", 80)),
            default=("site-default", 80),
            created="2026-01-02T00:00:00Z",
        ),
        ingress("other", rule("other.local", path("/app", "other", 80))),
    )
    assert target(table, "site.local", "/app") == "app"
    assert target(table, "site.local", "/nothing") == "site-default"
    assert target(table, "other.local", "/nothing") == "fallback"
    assert target(table, "unknown.local", "/") == "fallback"
    route = table.match("unknown.local", "/")
    assert route is not None and route.source == "default" and route.ingress == "default/global"


def test_without_any_default_backend_an_unmatched_request_has_no_route() -> None:
    table = table_with(ingress("a", rule("a", path("/x", "x", 80))))
    assert table.match("a", "/y") is None


# --- backends and endpoints ---------------------------------------------------------------
def test_a_backend_by_port_number_resolves_to_the_slices_target_port() -> None:
    table = table_with(
        ingress("a", rule("h", path("/", "web", 80))),
        *web_service("web", 80, 8080, "10.0.0.2", "10.0.0.1"),
    )
    route = table.match("h", "/")
    assert route is not None
    assert route.backend == Backend("default", "web", 80)
    assert route.endpoints == (Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080))


def test_a_backend_by_port_name_resolves_through_the_services_ports() -> None:
    svc = service("multi", ("metrics", 9090), ("http", 80))
    slices = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "multi-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "multi"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}],
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
    }
    table = table_with(ingress("a", rule("h", path("/", "multi", "http"))), svc, slices)
    route = table.match("h", "/")
    assert route is not None and route.endpoints == (Endpoint("10.0.0.5", 8080),)
    assert str(route.backend) == "default/multi:http"


def test_only_ready_endpoints_count_and_none_ready_gives_an_empty_route() -> None:
    svc = service("web", ("http", 80))
    mixed = endpoint_slice("web", "http", 8080, "10.0.0.1", name="web-1")
    mixed["endpoints"].append({"addresses": ["10.0.0.9"], "conditions": {"ready": False}})
    mixed["endpoints"].append({"addresses": ["10.0.0.3"], "conditions": {}})  # nil means ready
    assert resolve_endpoints(svc, [mixed], 80) == (
        Endpoint("10.0.0.1", 8080),
        Endpoint("10.0.0.3", 8080),
    )
    table = table_with(
        ingress("a", rule("h", path("/", "web", 80))),
        svc,
        endpoint_slice("web", "http", 8080, "10.0.0.1", ready=False),
    )
    route = table.match("h", "/")
    assert route is not None and route.endpoints == ()
    assert str(route.backend) == "default/web:80"


def test_an_unknown_service_or_port_has_no_endpoints() -> None:
    svc, slices = web_service("web", 80, 8080, "10.0.0.1")
    assert resolve_endpoints(None, [slices], 80) == ()
    assert resolve_endpoints(svc, [slices], 81) == ()
    assert resolve_endpoints(svc, [slices], "grpc") == ()


def test_endpoint_changes_are_seen_by_the_next_match() -> None:
    svc, slices = web_service("web", 80, 8080, "10.0.0.1")
    table = table_with(ingress("a", rule("h", path("/", "web", 80))), svc, slices)
    table.upsert(endpoint_slice("web", "http", 8080, "10.0.0.1", "10.0.0.2"))
    route = table.match("h", "/")
    assert route is not None and len(route.endpoints) == 2
    table.remove(slices)
    route = table.match("h", "/")
    assert route is not None and route.endpoints == ()


# --- classes -----------------------------------------------------------------------------
def test_ingresses_of_other_classes_are_ignored() -> None:
    table = table_with(
        ingress("mine", rule("mine", path("/", "a", 80))),
        ingress("nginx", rule("theirs", path("/", "b", 80)), class_name="nginx"),
        ingress(
            "legacy-other",
            rule("legacy-other", path("/", "c", 80)),
            class_name=None,
            annotations={"kubernetes.io/ingress.class": "nginx"},
        ),
        ingress(
            "legacy-mine",
            rule("legacy-mine", path("/", "d", 80)),
            class_name=None,
            annotations={"kubernetes.io/ingress.class": "builtin"},
        ),
    )
    assert target(table, "mine", "/") == "a"
    assert target(table, "theirs", "/") is None
    assert target(table, "legacy-other", "/") is None
    assert target(table, "legacy-mine", "/") == "d"
    assert [i["metadata"]["name"] for i in table.handled_ingresses()] == ["legacy-mine", "mine"]


def test_ingresses_without_class_are_handled_only_while_the_class_is_default() -> None:
    unclassed = ingress("u", rule("u", path("/", "u", 80)), class_name=None)
    default_class = default_ingress_class()
    assert default_class["spec"]["controller"] == CONTROLLER
    table = table_with(unclassed, default_class)
    assert target(table, "u", "/") == "u"
    not_default = {**default_class, "metadata": {"name": "builtin", "annotations": {}}}
    table.upsert(not_default)
    assert target(table, "u", "/") is None
    assert table_with(unclassed, default_class=False).match("u", "/") is None


def test_another_ingress_class_of_this_controller_is_served_too() -> None:
    extra = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "public"},
        "spec": {"controller": CONTROLLER},
    }
    table = table_with(ingress("p", rule("p", path("/", "p", 80)), class_name="public"), extra)
    assert target(table, "p", "/") == "p"


def test_incremental_updates_recompile_only_what_changed() -> None:
    table = table_with(
        *(ingress(f"i{n}", rule(f"h{n}", path("/", f"s{n}", 80))) for n in range(300))
    )
    assert target(table, "h150", "/") == "s150"
    table.upsert(ingress("i150", rule("moved", path("/", "s150", 80))))
    assert target(table, "h150", "/") is None
    assert target(table, "moved", "/") == "s150"
    table.remove(ingress("i7", rule("h7", path("/", "s7", 80))))
    assert target(table, "h7", "/") is None
    assert target(table, "h8", "/") == "s8"
    assert len(table.handled_ingresses()) == 299


# --- TLS ----------------------------------------------------------------------------------
@dataclass
class Pki:
    """A test CA and certificates it signs."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cert: x509.Certificate | None = None

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def ca_pem(self) -> str:
        assert self.cert is not None
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, *hosts: str) -> tuple[bytes, bytes]:
        assert self.cert is not None
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def secret(self, name: str, *hosts: str) -> Obj:
        crt, key = self.issue(*hosts)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "data": {
                "tls.crt": base64.b64encode(crt).decode(),
                "tls.key": base64.b64encode(key).decode(),
            },
        }


def test_tls_secrets_are_chosen_by_sni_with_wildcards_and_oldest_first() -> None:
    pki = Pki()
    table = table_with(
        ingress(
            "a",
            rule("shop.local", path("/", "shop", 80)),
            tls=[{"hosts": ["shop.local"], "secretName": "shop-tls"}],
        ),
        ingress(
            "b",
            rule("x.apps.local", path("/", "apps", 80)),
            tls=[{"hosts": ["*.apps.local"], "secretName": "apps-tls"}],
        ),
        ingress(
            "c",
            rule("shop.local", path("/late", "late", 80)),
            tls=[{"hosts": ["shop.local"], "secretName": "late-tls"}],
            created="2026-06-01T00:00:00Z",
        ),
        ingress("d", rule("nohosts.local", path("/", "n", 80)), tls=[{"secretName": "shop-tls"}]),
        pki.secret("shop-tls", "shop.local", "nohosts.local"),
        pki.secret("apps-tls", "*.apps.local"),
        pki.secret("late-tls", "shop.local"),
    )
    assert table.secret_for("SHOP.local") == "default/shop-tls"
    assert table.secret_for("x.apps.local") == "default/apps-tls"
    assert table.secret_for("nohosts.local") == "default/shop-tls"
    assert table.secret_for("a.b.apps.local") is None
    assert isinstance(table.certificate_for("shop.local"), ssl.SSLContext)
    assert table.certificate_for("y.apps.local") is table.certificate_for("x.apps.local")
    assert table.certificate_for("unknown.local") is None


def test_a_missing_or_malformed_tls_secret_yields_no_certificate() -> None:
    broken = Pki().secret("bad-tls", "bad.local")
    broken["data"]["tls.key"] = base64.b64encode(b"not a key").decode()
    table = table_with(
        ingress(
            "a",
            rule("bad.local", path("/", "s", 80)),
            rule("missing.local", path("/", "s", 80)),
            tls=[
                {"hosts": ["bad.local"], "secretName": "bad-tls"},
                {"hosts": ["missing.local"], "secretName": "nope"},
            ],
        ),
        broken,
    )
    assert table.certificate_for("bad.local") is None
    assert table.certificate_for("missing.local") is None


# --- wiring ---------------------------------------------------------------------------------
class FakeSource:
    """The informer surface bind_informers uses: a cache and its event handlers."""

    def __init__(self, *objects: Obj) -> None:
        self.objects = list(objects)
        self.handlers: dict[str, Callable[..., None]] = {}

    def items(self) -> list[Obj]:
        return list(self.objects)

    def on(
        self,
        add: Callable[[Obj], None] | None = None,
        update: Callable[[Obj, Obj], None] | None = None,
        delete: Callable[[Obj], None] | None = None,
    ) -> None:
        assert add and update and delete
        self.handlers = {"add": add, "update": update, "delete": delete}


def test_bound_informers_load_the_table_and_keep_it_current() -> None:
    first = ingress("a", rule("h", path("/", "web", 80)))
    del first["kind"]  # list items may carry no kind
    ingresses, services, slices, secrets = (
        FakeSource(first),
        FakeSource(service("web", ("http", 80))),
        FakeSource(),
        FakeSource(),
    )
    seen: list[str] = []
    table = RouteTable()
    bind_informers(
        table,
        ingresses=ingresses,
        services=services,
        slices=slices,
        secrets=secrets,
        changed=lambda obj: seen.append(obj["metadata"]["name"]),
    )
    assert target(table, "h", "/") == "web"
    slices.handlers["add"](endpoint_slice("web", "http", 8080, "10.0.0.1"))
    route = table.match("h", "/")
    assert route is not None and route.endpoints == (Endpoint("10.0.0.1", 8080),)
    ingresses.handlers["update"](first, ingress("a", rule("h2", path("/", "web", 80))))
    assert target(table, "h", "/") is None and target(table, "h2", "/") == "web"
    ingresses.handlers["delete"](first)
    assert target(table, "h2", "/") is None
    assert seen == ["a"]


def config(port: int) -> ClusterConfig:
    return ClusterConfig(server=f"http://127.0.0.1:{port}")


def test_publish_status_patches_the_status_subresource_once() -> None:
    received: list[tuple[str, str, Obj]] = []

    async def patch(request: web.Request) -> web.Response:
        body = await request.json()
        received.append((request.path, request.headers["Content-Type"], body))
        return web.json_response({"kind": "Ingress", **body})

    async def main() -> None:
        app = web.Application()
        app.router.add_patch(
            "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}/status", patch
        )
        async with serve(app) as port, Client(config(port)) as client:
            ing = ingress("web", rule("h", path("/", "web", 80)), namespace="shop")
            out = await publish_status(client, ing, "127.0.0.1")
            assert out is not None
            ing["status"] = out["status"]
            assert await publish_status(client, ing, "127.0.0.1") is None

    run(main())
    assert received == [
        (
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status",
            "application/merge-patch+json",
            {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}},
        )
    ]


# --- end to end -------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[int]:
    """Serve an aiohttp app on 127.0.0.1 (a free port); yields the port."""
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    await web.SockSite(runner, sock).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@dataclass
class Pod:
    """A backend server playing a pod: says its name, and records who connected."""

    name: str
    peers: list[tuple[str, int]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    streams: list[web.Request] = field(default_factory=list)

    def app(self) -> web.Application:
        """Serves its pages under / and /api/ (the router does not rewrite paths)."""
        app = web.Application()
        for prefix in ("", "/api"):
            app.router.add_get(f"{prefix}/stream", self.stream)
            app.router.add_get(f"{prefix}/broken", self.broken)
            app.router.add_get(f"{prefix}/ws", self.websocket)
            app.router.add_post(f"{prefix}/upload", self.upload)
        app.router.add_route("*", "/{tail:.*}", self.hello)
        return app

    async def broken(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"only part")
        assert request.transport is not None
        request.transport.close()
        return response

    async def hello(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        return web.json_response(
            {
                "pod": self.name,
                "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )

    async def upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        return web.Response(text=f"{self.name} got {len(data)} bytes")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.streams.append(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first chunk;")
        await asyncio.wait_for(self.release.wait(), 10)
        await response.write(b"second chunk")
        await response.write_eof()
        return response

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("echo.v1",))
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                if message.data == "bye":
                    await ws.close(code=4001, message=b"bye")
                    break
                await ws.send_str(f"{self.name}: {message.data}")
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws


@dataclass
class Setup:
    router: IngressRouter
    pods: dict[str, Pod]
    table: RouteTable
    pki: Pki

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.router.ports['http']}"


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def guestbook() -> AsyncIterator[Setup]:
    """guestbook.local: /api → service api (pod a), / → service frontend (pods b1, b2);
    service down has no ready endpoint; service flaky has a dead and a live endpoint."""
    pods = {n: Pod(n) for n in ("a", "b1", "b2", "c")}
    async with contextlib.AsyncExitStack() as stack:
        ports = {n: await stack.enter_async_context(serve(p.app())) for n, p in pods.items()}
        pki = Pki()
        objects = [
            ingress(
                "guestbook",
                rule(
                    "guestbook.local",
                    path("/api", "api", 80),
                    path("/", "frontend", "web"),
                    path("/down", "down", 80),
                    path("/flaky", "flaky", 80),
                ),
                tls=[{"hosts": ["guestbook.local"], "secretName": "guestbook-tls"}],
            ),
            pki.secret("guestbook-tls", "guestbook.local"),
            service("api", ("http", 80)),
            endpoint_slice("api", "http", ports["a"], "127.0.0.1"),
            service("frontend", ("web", 80)),
            endpoint_slice("frontend", "web", ports["b1"], "127.0.0.1", name="frontend-1"),
            endpoint_slice("frontend", "web", ports["b2"], "127.0.0.1", name="frontend-2"),
            service("down", ("http", 80)),
            endpoint_slice("down", "http", ports["a"], "127.0.0.1", ready=False),
            service("flaky", ("http", 80)),
            endpoint_slice("flaky", "http", dead_port(), "127.0.0.1", name="flaky-1"),
            endpoint_slice("flaky", "http", ports["c"], "127.0.0.1", name="flaky-2"),
        ]
        table = table_with(*objects)
        router = IngressRouter(table, IngressOptions(http=("127.0.0.1", 0), https=("127.0.0.1", 0)))
        await router.start()
        stack.push_async_callback(router.stop)
        yield Setup(router, pods, table, pki)


def test_requests_are_routed_by_path_and_round_robin_across_endpoints() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            seen = []
            for p in ("/api/entries?x=1", "/", "/index.html", "/", "/"):
                async with http.get(g.http + p, headers={"Host": "guestbook.local"}) as r:
                    assert r.status == 200
                    body = await r.json()
                    seen.append((body["pod"], body["path"]))
            assert seen[0] == ("a", "/api/entries?x=1")
            frontends = [pod for pod, _ in seen[1:]]
            assert sorted(frontends) == ["b1", "b1", "b2", "b2"]
            assert frontends[0] != frontends[1] and frontends[1] != frontends[2]

    run(main())


def test_forwarding_headers_are_set_and_hop_by_hop_headers_removed() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            headers = {
                "Host": "guestbook.local",
                "X-Forwarded-For": "203.0.113.7",
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "drop me",
                "Keep-Alive": "timeout=5",
                "X-App": "kept",
            }
            async with http.get(g.http + "/api", headers=headers) as r:
                seen = (await r.json())["headers"]
            port = g.router.ports["http"]
        assert seen["host"] == "guestbook.local"
        assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == "guestbook.local"
        assert seen["x-forwarded-port"] == str(port)
        assert seen["x-app"] == "kept"
        assert "x-secret-hop" not in seen and "keep-alive" not in seen

    run(main())


def test_unmatched_requests_get_404_and_backends_without_ready_endpoints_503() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            async with http.get(g.http + "/", headers={"Host": "nobody.local"}) as r:
                assert r.status == 404
                assert "no Ingress rule matches host 'nobody.local'" in await r.text()
            async with http.get(g.http + "/down", headers={"Host": "guestbook.local"}) as r:
                assert r.status == 503
                assert await r.text() == "no ready endpoints for service default/down:80\n"
                assert r.headers["Content-Type"].startswith("text/plain")

    run(main())


def test_a_refused_endpoint_is_skipped_for_the_next_one() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.get(g.http + "/flaky", headers={"Host": "guestbook.local"}) as r:
                    assert r.status == 200
                    assert (await r.json())["pod"] == "c"

    run(main())


def test_request_bodies_are_streamed_to_the_backend() -> None:
    async def main() -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"x" * 16384

        async with guestbook() as g, aiohttp.ClientSession() as http:
            headers = {"Host": "guestbook.local"}
            async with http.post(g.http + "/upload", data=b"y" * 100_000, headers=headers) as r:
                assert r.status == 200
                assert (await r.text()).endswith("got 100000 bytes")
            async with http.post(g.http + "/upload", data=chunks(), headers=headers) as r:
                assert r.status == 200
                assert (await r.text()).endswith("got 1048576 bytes")

    run(main())


def test_a_streamed_response_arrives_before_the_backend_finishes() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            pods = [g.pods["b1"], g.pods["b2"]]
            async with http.get(g.http + "/stream", headers={"Host": "guestbook.local"}) as r:
                assert r.status == 200
                first = await asyncio.wait_for(r.content.readexactly(len(b"first chunk;")), 5)
                assert first == b"first chunk;"
                for pod in pods:
                    pod.release.set()
                assert await r.content.read() == b"second chunk"

    run(main())


def test_a_client_leaving_mid_stream_closes_the_backend_connection() -> None:
    async def main() -> None:
        async with guestbook() as g:
            reader, writer = await asyncio.open_connection("127.0.0.1", g.router.ports["http"])
            writer.write(b"GET /api/stream HTTP/1.1\r\nHost: guestbook.local\r\n\r\n")
            await reader.readuntil(b"first chunk;")
            writer.close()
            await writer.wait_closed()
            backend = g.pods["a"].streams[0].transport
            for _ in range(200):
                if backend is None or backend.is_closing():
                    break
                await asyncio.sleep(0.01)
            assert backend is None or backend.is_closing()
            g.pods["a"].release.set()

    run(main())


def test_a_backend_breaking_off_mid_body_breaks_off_the_client_too() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async with http.get(
                    g.http + "/api/broken", headers={"Host": "guestbook.local"}
                ) as r:
                    assert r.status == 200
                    await r.read()
                raise AssertionError("a truncated body was passed off as complete")
            async with http.get(g.http + "/api/ok", headers={"Host": "guestbook.local"}) as r:
                assert r.status == 200

    run(main())


def test_one_client_connection_carries_several_requests_and_backends_are_pooled() -> None:
    async def main() -> None:
        async with guestbook() as g:
            reader, writer = await asyncio.open_connection("127.0.0.1", g.router.ports["http"])
            try:
                for n in range(3):
                    writer.write(f"GET /api/{n} HTTP/1.1\r\nHost: guestbook.local\r\n\r\n".encode())
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200")
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    body = await reader.readexactly(length)
                    assert f'"/api/{n}"'.encode() in body
            finally:
                writer.close()
                await writer.wait_closed()
            assert len(g.pods["a"].peers) == 3
            assert len(set(g.pods["a"].peers)) == 1  # one pooled backend connection

    run(main())


def test_https_serves_the_ingress_certificate_by_sni_and_a_fallback_otherwise() -> None:
    async def main() -> None:
        async with guestbook() as g:
            port = g.router.ports["https"]
            trusting = ssl.create_default_context(cadata=g.pki.ca_pem)
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    f"https://127.0.0.1:{port}/api/secure",
                    headers={"Host": "guestbook.local"},
                    ssl=trusting,
                    server_hostname="guestbook.local",
                ) as r,
            ):
                body = await r.json()
                assert body["pod"] == "a"
                assert body["headers"]["x-forwarded-proto"] == "https"
            lax = ssl.create_default_context()
            lax.check_hostname = False
            lax.verify_mode = ssl.CERT_NONE
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=lax, server_hostname="stranger.local"
            )
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            await writer.wait_closed()
            subject = x509.load_der_x509_certificate(der).subject
            assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
                "gitops-ingress-fallback"
            )

    run(main())


def test_websockets_are_relayed_both_ways_with_subprotocol_and_close_code() -> None:
    async def main() -> None:
        async with (
            guestbook() as g,
            aiohttp.ClientSession() as http,
            http.ws_connect(
                g.http + "/ws",
                headers={"Host": "guestbook.local"},
                protocols=("echo.v1",),
            ) as ws,
        ):
            assert ws.protocol == "echo.v1"
            await ws.send_str("hello")
            first = await ws.receive_str(timeout=5)
            assert first.endswith(": hello")
            await ws.send_bytes(b"abc")
            assert await ws.receive_bytes(timeout=5) == b"cba"
            await ws.send_str("bye")
            closing = await ws.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4001

    run(main())


def test_stop_releases_the_ports() -> None:
    async def main() -> None:
        router = IngressRouter(RouteTable(), IngressOptions(http=("127.0.0.1", 0)))
        await router.start()
        port = router.ports["http"]
        assert set(router.ports) == {"http"}
        await router.stop()
        assert router.ports == {}
        with socket.create_server(("127.0.0.1", port)):
            pass

    run(main())


def test_a_backend_refusing_the_websocket_upgrade_gives_502() -> None:
    async def main() -> None:
        async with guestbook() as g, aiohttp.ClientSession() as http:
            with contextlib.suppress(aiohttp.WSServerHandshakeError):
                await http.ws_connect(g.http + "/api/plain", headers={"Host": "guestbook.local"})
                raise AssertionError("the upgrade was accepted")
            async with http.get(
                g.http + "/api/plain",
                headers={
                    "Host": "guestbook.local",
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
                    "Sec-WebSocket-Version": "13",
                },
            ) as r:
                assert r.status == 502
                assert "refused the WebSocket upgrade (200)" in await r.text()

    run(main())
