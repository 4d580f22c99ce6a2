"""The built-in cluster's ingress controller: routes HTTP(S) requests to Services by the
cluster's Ingresses (``networking.k8s.io/v1``) and proxies them to ready endpoints.

Who calls it: the process that runs the built-in cluster. It creates the IngressClass
from :func:`default_ingress_class`, feeds a :class:`RouteTable` from informers
(:func:`bind_informers`), serves it with an :class:`IngressRouter`, and reports the
listen address on handled Ingresses with :func:`publish_status`. The routing table is
pure (plain dicts in, :class:`Route` out) so it is tested without an API server.

Which Ingresses are handled: ``spec.ingressClassName`` naming this controller's class
(``builtin`` by default, or any IngressClass whose ``spec.controller`` is
:data:`CONTROLLER`); without a class name, the legacy annotation
``kubernetes.io/ingress.class`` naming such a class; with neither, only when the class
is the default one (annotation ``ingressclass.kubernetes.io/is-default-class: "true"``).
Others are ignored.

How a request is routed (``RouteTable.match``), following ingress-nginx's model of one
virtual server per host, with every handled Ingress naming that host merged into it:

1. The host (Host header, lower-cased, port and trailing dot removed) selects the rules
   of that exact host; failing that, those of the wildcard host ``*.<rest>`` (a wildcard
   stands for exactly one label: ``*.example.com`` matches ``a.example.com``, neither
   ``example.com`` nor ``a.b.example.com``).
2. Among that host's paths the best match wins: an ``Exact`` path equal to the request
   path first (an exact match is never shorter than a prefix match), then the ``Prefix``
   path with the most elements. ``Prefix`` matches element-wise (``/foo`` and ``/foo/``
   match ``/foo``, ``/foo/`` and ``/foo/bar`` but not ``/foobar``).
   ``ImplementationSpecific`` is treated as ``Prefix``.
3. No path matched: the ``spec.defaultBackend`` of the oldest Ingress that has rules for
   that host and a default backend.
4. Then rules without a host (they apply to every host), the same way (paths, then the
   default backend of the oldest Ingress with host-less rules).
5. Then the global default backend: ``spec.defaultBackend`` of the oldest handled
   Ingress that has one. Nothing left: 404.

Conflicts (the same path and type for the same host in several Ingresses) go to the
oldest Ingress, by ``creationTimestamp`` then ``namespace/name``. Backends name a
Service port by number or name; the Service's port gives the port name, which selects
the EndpointSlices' port (the target port, resolved per pod by the EndpointSlice
controller). Endpoints are the ready ones (``conditions.ready`` not false, first
address) of the Service's slices (label ``kubernetes.io/service-name``); the router
picks them round-robin and tries the next one when a connection is refused. No ready
endpoint: 503 ``no ready endpoints for service ns/name:port``. Resource backends
(``backend.resource``), ExternalName Services and FQDN slices have no endpoints here.

TLS: each ``spec.tls`` entry's Secret (type ``kubernetes.io/tls``, ``tls.crt`` and
``tls.key``) serves the entry's hosts (exact or wildcard; an entry without hosts serves
the hosts of the Ingress's rules), chosen by SNI; conflicts go to the oldest Ingress.
Unknown or missing SNI gets a self-signed fallback certificate. There is no automatic
HTTP to HTTPS redirect.

Proxying: HTTP/1.1 on both sides, bodies streamed both ways, keep-alive to clients and a
connection pool to backends, hop-by-hop headers removed, Host passed through,
``X-Forwarded-For`` appended to (client address), ``X-Forwarded-Proto``,
``X-Forwarded-Host``, ``X-Forwarded-Port`` and ``X-Real-IP`` set. WebSocket upgrades are
relayed message by message (aiohttp's WebSocketResponse to the client, ``ws_connect``
to the backend), so subprotocols are negotiated with the backend first and close codes
pass through; pings are answered by each side locally, not relayed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict
from yarl import URL

from kubeclient.informer import ObjectSource, key_of
from kubeclient.rest import Client
from runtime.network.objects import (
    Endpoint,
    EndpointSlice,
    Service,
    read_endpoint_slice,
    read_service,
    ready_endpoints,
)
from runtime.network.upstream import Connection, ResponseHead, UpstreamError, Upstreams
from runtime.server import tls

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

CONTROLLER = "gitops.dev/ingress-builtin"
"""``spec.controller`` of the IngressClasses this controller implements."""
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
TLS_SECRET_TYPE = "kubernetes.io/tls"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
WEBSOCKET_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
SHUTDOWN_TIMEOUT = 5.0
BACKEND_CONNECTIONS = 1024
MAX_CONNECT_ATTEMPTS = 3


# --- options and results ------------------------------------------------------------------
@dataclass(frozen=True)
class IngressOptions:
    """Where the router listens (None: not at all; port 0: any free port) and for which
    IngressClass name it routes."""

    class_name: str = "builtin"
    http: tuple[str, int] | None = ("127.0.0.1", 80)
    https: tuple[str, int] | None = None
    connect_timeout: float = 5.0


@dataclass(frozen=True)
class Backend:
    """A Service port named by an Ingress backend (``port`` is a number or a name)."""

    namespace: str
    service: str
    port: int | str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True)
class Route:
    """Where a request goes. ``endpoints`` empty: answer 503. ``source`` is ``path`` for a
    matched rule path and ``default`` for a default backend; ``path`` and ``path_type``
    are the rule's (empty for a default backend)."""

    backend: Backend
    endpoints: tuple[Endpoint, ...]
    ingress: str
    source: str
    path: str = ""
    path_type: str = ""


# --- pure helpers: classes, hosts, paths, backends ----------------------------------------
def default_ingress_class(name: str = "builtin") -> Obj:
    """The IngressClass the wiring code creates: this controller's, and the default."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": CONTROLLER},
    }


def normalize_host(host: str | None) -> str:
    """A Host header or SNI name as matched: lower case, no port, no trailing dot."""
    host = (host or "").strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _wildcard_of(host: str) -> str | None:
    """The wildcard pattern (``*.rest``) a host would match, if it has a label to spare."""
    _, dot, rest = host.partition(".")
    return f"*.{rest}" if dot and rest else None


def path_segments(path: str) -> tuple[str, ...]:
    return tuple(s for s in path.split("/") if s)


def _backend_ref(namespace: str, backend: Obj | None) -> Backend | None:
    service = (backend or {}).get("service")
    if not isinstance(service, dict) or not service.get("name"):
        return None  # resource backends are not supported
    port = service.get("port") or {}
    ref: int | str | None = port.get("number") if port.get("number") else port.get("name")
    if ref is None or ref == "":
        return None
    return Backend(namespace, str(service["name"]), ref)


def _age_key(obj: Obj) -> tuple[str, str]:
    """Order of precedence on conflicts: older first, then by namespace/name."""
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or "9999"), key_of(obj))


@dataclass(frozen=True)
class _PathRule:
    exact: bool
    path: str
    segments: tuple[str, ...]
    backend: Backend
    ingress: str
    path_type: str

    def route(self, endpoints: tuple[Endpoint, ...]) -> Route:
        return Route(self.backend, endpoints, self.ingress, "path", self.path, self.path_type)


@dataclass(frozen=True)
class _Ingress:
    """One handled Ingress, compiled: its rules per host (None: no host)."""

    key: str
    order: tuple[str, str]
    rules: dict[str | None, tuple[_PathRule, ...]]
    default: Backend | None
    tls: tuple[tuple[tuple[str, ...], str], ...]  # (hosts, secret key)


def _compile_ingress(ing: Obj) -> _Ingress:
    meta = ing.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    key = key_of(ing)
    spec = ing.get("spec") or {}
    rules: dict[str | None, list[_PathRule]] = {}
    for rule in spec.get("rules") or []:
        host = normalize_host(rule.get("host")) or None
        paths = rules.setdefault(host, [])
        for p in (rule.get("http") or {}).get("paths") or []:
            backend = _backend_ref(namespace, p.get("backend"))
            if backend is None:
                continue
            path_type = str(p.get("pathType") or "ImplementationSpecific")
            path = str(p.get("path") or "/")
            if not path.startswith("/"):
                path = "/" + path
            exact = path_type == "Exact"
            segments = path_segments(path)
            if not exact:
                path = "/" + "/".join(segments)
            paths.append(_PathRule(exact, path, segments, backend, key, path_type))
    tls: list[tuple[tuple[str, ...], str]] = []
    rule_hosts = tuple(h for h in rules if h)
    for entry in spec.get("tls") or []:
        if not entry.get("secretName"):
            continue
        hosts = tuple(normalize_host(h) for h in entry.get("hosts") or () if h) or rule_hosts
        tls.append((hosts, f"{namespace}/{entry['secretName']}"))
    return _Ingress(
        key,
        _age_key(ing),
        {h: tuple(r) for h, r in rules.items()},
        _backend_ref(namespace, spec.get("defaultBackend")),
        tuple(tls),
    )


@dataclass
class _HostRoutes:
    exact: dict[str, _PathRule]
    prefix: dict[tuple[str, ...], _PathRule]
    default: tuple[Backend, str] | None

    def match(self, path: str) -> _PathRule | None:
        rule = self.exact.get(path)
        if rule is not None or not self.prefix:
            return rule
        segments = path_segments(path)
        for n in range(len(segments), -1, -1):
            rule = self.prefix.get(segments[:n])
            if rule is not None:
                return rule
        return None


def _merge_host(host: str | None, ingresses: list[_Ingress]) -> _HostRoutes:
    routes = _HostRoutes({}, {}, None)
    for ing in sorted(ingresses, key=lambda i: i.order):
        for rule in ing.rules.get(host, ()):
            if rule.exact:
                routes.exact.setdefault(rule.path, rule)
            else:
                routes.prefix.setdefault(rule.segments, rule)
        if routes.default is None and ing.default is not None:
            routes.default = (ing.default, ing.key)
    return routes


def resolve_endpoints(
    service: Obj | None, slices: Iterable[Obj], port: int | str
) -> tuple[Endpoint, ...]:
    """Ready endpoints of a Service port (number or name), sorted; () when the Service or
    its port is unknown or no endpoint is ready."""
    return _endpoints_of(
        read_service(service) if service is not None else None,
        [read_endpoint_slice(s) for s in slices],
        port,
    )


def _endpoints_of(
    service: Service | None, slices: Iterable[EndpointSlice], port: int | str
) -> tuple[Endpoint, ...]:
    """:func:`resolve_endpoints` on Services and EndpointSlices already read."""
    if service is None or service.type == "ExternalName":
        return ()
    port_name = next(
        (
            sp.name
            for sp in service.ports
            if (sp.port == port if isinstance(port, int) else sp.name != "" and sp.name == port)
            and sp.protocol == "TCP"
        ),
        None,
    )
    if port_name is None:
        return ()
    return ready_endpoints(slices, port_name, "TCP")


# --- TLS material -------------------------------------------------------------------------
def context_from_pem(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server-side SSLContext for a PEM certificate chain and key (raises ssl.SSLError
    or ValueError when they are unusable)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="ingress-tls-") as tmp:
        cert = Path(tmp) / "tls.crt"
        key = Path(tmp) / "tls.key"
        cert.write_bytes(cert_pem)
        key.touch(0o600)
        key.write_bytes(key_pem)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def self_signed_certificate(common_name: str = "gitops-ingress-fallback") -> tuple[bytes, bytes]:
    """A fresh self-signed (certificate, key) pair in PEM, for SNI names nobody serves."""
    key = tls.new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), tls.key_pem(key)


def _secret_pair(secret: Obj) -> tuple[bytes, bytes] | None:
    if secret.get("type") != TLS_SECRET_TYPE:
        return None
    data = secret.get("data") or {}
    try:
        cert = base64.b64decode(data.get("tls.crt") or "", validate=True)
        key = base64.b64decode(data.get("tls.key") or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    return (cert, key) if cert and key else None


# --- the table ----------------------------------------------------------------------------
class RouteTable:
    """Routes and certificates from Ingress, Service, EndpointSlice, Secret and
    IngressClass objects. Feed it whole (:meth:`update`) or object by object
    (:meth:`upsert`, :meth:`remove`); an Ingress change recompiles only the hosts it
    touches, and endpoints are resolved per Service on demand and cached.

    Whether this class is the default: from the IngressClass objects when any were given,
    else ``default_class`` (the object :func:`default_ingress_class` makes is).
    """

    def __init__(self, class_name: str = "builtin", *, default_class: bool = True) -> None:
        self.class_name = class_name
        self._assume_default = default_class
        self._classes: dict[str, Obj] | None = None
        self._ingresses: dict[str, Obj] = {}
        self._compiled: dict[str, _Ingress] = {}
        self._by_host: dict[str | None, set[str]] = {}
        self._routes: dict[str | None, _HostRoutes] = {}
        self._defaults: set[str] = set()
        self._global_default: tuple[Backend, str] | None = None
        self._services: dict[str, Service] = {}
        self._slices: dict[str, dict[str, EndpointSlice]] = {}
        self._slice_service: dict[str, str] = {}
        self._endpoints: dict[str, dict[int | str, tuple[Endpoint, ...]]] = {}
        self._secrets: dict[str, Obj] = {}
        self._tls_ingresses: set[str] = set()
        self._tls_hosts: dict[str, str] = {}
        self._contexts: dict[str, ssl.SSLContext | None] = {}

    # --- classes ---------------------------------------------------------------------
    def _class_names(self) -> tuple[set[str], bool]:
        names = {self.class_name}
        if self._classes is None:
            return names, self._assume_default
        default = False
        for name, cls in self._classes.items():
            if name == self.class_name or (cls.get("spec") or {}).get("controller") == CONTROLLER:
                names.add(name)
                annotations = (cls.get("metadata") or {}).get("annotations") or {}
                default = default or annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        return names, default

    def handles(self, ingress: Obj) -> bool:
        """Whether this controller serves the Ingress (by class, see the module doc)."""
        names, default = self._class_names()
        name = (ingress.get("spec") or {}).get("ingressClassName")
        if name:
            return str(name) in names
        legacy = ((ingress.get("metadata") or {}).get("annotations") or {}).get(
            LEGACY_CLASS_ANNOTATION
        )
        if legacy:
            return str(legacy) in names
        return default

    def handled_ingresses(self) -> list[Obj]:
        return [self._ingresses[k] for k in sorted(self._compiled)]

    # --- feeding -------------------------------------------------------------------
    def update(
        self,
        ingresses: Iterable[Obj],
        services: Iterable[Obj],
        slices: Iterable[Obj],
        secrets: Iterable[Obj],
        ingress_classes: Iterable[Obj] | None = None,
    ) -> None:
        """Replace everything with these objects (IngressClasses kept when None)."""
        if ingress_classes is not None:
            self._classes = {key_of(c): c for c in ingress_classes}
        self._services = {key_of(s): read_service(s) for s in services}
        self._slices, self._slice_service, self._endpoints = {}, {}, {}
        for s in slices:
            self._put_slice(s)
        self._secrets = {key_of(s): s for s in secrets if s.get("type") == TLS_SECRET_TYPE}
        self._contexts = {}
        self._ingresses = {key_of(i): i for i in ingresses}
        self._rebuild()

    def upsert(self, obj: Obj) -> None:
        """Add or replace one object (dispatched by ``kind``; other kinds are ignored)."""
        kind = obj.get("kind")
        key = key_of(obj)
        if kind == "Ingress":
            self._ingresses[key] = obj
            self._recompile(key)
        elif kind == "Service":
            self._services[key] = read_service(obj)
            self._endpoints.pop(key, None)
        elif kind == "EndpointSlice":
            self._drop_slice(key)
            self._put_slice(obj)
        elif kind == "Secret":
            if obj.get("type") == TLS_SECRET_TYPE:
                self._secrets[key] = obj
            else:
                self._secrets.pop(key, None)
            self._contexts.pop(key, None)
        elif kind == "IngressClass":
            if self._classes is None:
                self._classes = {}
            self._classes[key] = obj
            self._rebuild()

    def remove(self, obj: Obj) -> None:
        """Forget one object (dispatched by ``kind``)."""
        kind = obj.get("kind")
        key = key_of(obj)
        if kind == "Ingress":
            if self._ingresses.pop(key, None) is not None:
                self._recompile(key)
        elif kind == "Service":
            self._services.pop(key, None)
            self._endpoints.pop(key, None)
        elif kind == "EndpointSlice":
            self._drop_slice(key)
        elif kind == "Secret":
            self._secrets.pop(key, None)
            self._contexts.pop(key, None)
        elif kind == "IngressClass" and self._classes is not None:
            self._classes.pop(key, None)
            self._rebuild()

    def _put_slice(self, s: Obj) -> None:
        read = read_endpoint_slice(s, default_namespace="default")
        if read.service is None:
            return
        service = "/".join(read.service)
        key = key_of(s)
        self._slices.setdefault(service, {})[key] = read
        self._slice_service[key] = service
        self._endpoints.pop(service, None)

    def _drop_slice(self, key: str) -> None:
        service = self._slice_service.pop(key, None)
        if service is None:
            return
        slices = self._slices.get(service, {})
        slices.pop(key, None)
        if not slices:
            self._slices.pop(service, None)
        self._endpoints.pop(service, None)

    # --- compiling -----------------------------------------------------------------
    def _rebuild(self) -> None:
        self._compiled = {
            k: _compile_ingress(i) for k, i in self._ingresses.items() if self.handles(i)
        }
        self._by_host = {}
        for key, ing in self._compiled.items():
            for host in ing.rules:
                self._by_host.setdefault(host, set()).add(key)
        self._routes = {
            h: _merge_host(h, [self._compiled[k] for k in keys])
            for h, keys in self._by_host.items()
        }
        self._defaults = {k for k, i in self._compiled.items() if i.default is not None}
        self._tls_ingresses = {k for k, i in self._compiled.items() if i.tls}
        self._refresh_default()
        self._refresh_tls()

    def _recompile(self, key: str) -> None:
        old = self._compiled.pop(key, None)
        obj = self._ingresses.get(key)
        new = _compile_ingress(obj) if obj is not None and self.handles(obj) else None
        hosts: set[str | None] = set()
        if old is not None:
            for host in old.rules:
                self._by_host.get(host, set()).discard(key)
                hosts.add(host)
        if new is not None:
            self._compiled[key] = new
            for host in new.rules:
                self._by_host.setdefault(host, set()).add(key)
                hosts.add(host)
        for host in hosts:
            keys = self._by_host.get(host)
            if keys:
                self._routes[host] = _merge_host(host, [self._compiled[k] for k in keys])
            else:
                self._by_host.pop(host, None)
                self._routes.pop(host, None)
        self._defaults.discard(key)
        if new is not None and new.default is not None:
            self._defaults.add(key)
        if (old is not None and old.default) or (new is not None and new.default):
            self._refresh_default()
        self._tls_ingresses.discard(key)
        if new is not None and new.tls:
            self._tls_ingresses.add(key)
        if (old is not None and old.tls) or (new is not None and new.tls):
            self._refresh_tls()

    def _refresh_default(self) -> None:
        owners = sorted((self._compiled[k] for k in self._defaults), key=lambda i: i.order)
        first = owners[0] if owners else None
        self._global_default = (
            (first.default, first.key) if first is not None and first.default else None
        )

    def _refresh_tls(self) -> None:
        hosts: dict[str, str] = {}
        for ing in sorted((self._compiled[k] for k in self._tls_ingresses), key=lambda i: i.order):
            for names, secret in ing.tls:
                for name in names:
                    hosts.setdefault(name, secret)
        self._tls_hosts = hosts

    # --- queries -------------------------------------------------------------------
    def endpoints(self, backend: Backend) -> tuple[Endpoint, ...]:
        service = f"{backend.namespace}/{backend.service}"
        cache = self._endpoints.setdefault(service, {})
        found = cache.get(backend.port)
        if found is None:
            found = _endpoints_of(
                self._services.get(service),
                self._slices.get(service, {}).values(),
                backend.port,
            )
            cache[backend.port] = found
        return found

    def _host_routes(self, host: str) -> _HostRoutes | None:
        routes = self._routes.get(host)
        if routes is None:
            wildcard = _wildcard_of(host)
            routes = self._routes.get(wildcard) if wildcard else None
        return routes

    def match(self, host: str, path: str) -> Route | None:
        """The route for a request (see the module doc for the order), or None (404)."""
        for routes in (self._host_routes(normalize_host(host)), self._routes.get(None)):
            if routes is None:
                continue
            rule = routes.match(path or "/")
            if rule is not None:
                return rule.route(self.endpoints(rule.backend))
            if routes.default is not None:
                backend, ingress = routes.default
                return Route(backend, self.endpoints(backend), ingress, "default")
        if self._global_default is not None:
            backend, ingress = self._global_default
            return Route(backend, self.endpoints(backend), ingress, "default")
        return None

    def secret_for(self, sni: str) -> str | None:
        """The key (ns/name) of the TLS Secret serving an SNI name, if any."""
        host = normalize_host(sni)
        secret = self._tls_hosts.get(host)
        if secret is None:
            wildcard = _wildcard_of(host)
            secret = self._tls_hosts.get(wildcard) if wildcard else None
        return secret

    def certificate_for(self, sni: str) -> ssl.SSLContext | None:
        """The server context for an SNI name: its Ingress TLS Secret's certificate, or
        None (unknown name, missing or unusable Secret)."""
        key = self.secret_for(sni)
        if key is None:
            return None
        if key not in self._contexts:
            secret = self._secrets.get(key)
            pair = _secret_pair(secret) if secret is not None else None
            ctx: ssl.SSLContext | None = None
            if pair is not None:
                try:
                    ctx = context_from_pem(*pair)
                except (ssl.SSLError, ValueError, OSError) as exc:
                    log.warning("ingress.tls_secret_unusable", secret=key, error=str(exc))
            if secret is None:
                return None  # not cached: the Secret may still arrive
            self._contexts[key] = ctx
        return self._contexts[key]


# --- wiring to informers and the API ------------------------------------------------------


def bind_informers(
    table: RouteTable,
    *,
    ingresses: ObjectSource,
    services: ObjectSource,
    slices: ObjectSource,
    secrets: ObjectSource,
    ingress_classes: ObjectSource | None = None,
    changed: Callable[[Obj], None] | None = None,
) -> None:
    """Load the table from the informers' caches and keep it current from their events.
    ``changed`` is called with every added or updated Ingress (e.g. to publish status)."""

    def kinded(kind: str, obj: Obj) -> Obj:
        return obj if obj.get("kind") == kind else {**obj, "kind": kind}

    table.update(
        ingresses.items(),
        services.items(),
        slices.items(),
        secrets.items(),
        ingress_classes.items() if ingress_classes is not None else None,
    )
    sources: list[tuple[str, ObjectSource]] = [
        ("Ingress", ingresses),
        ("Service", services),
        ("EndpointSlice", slices),
        ("Secret", secrets),
    ]
    if ingress_classes is not None:
        sources.append(("IngressClass", ingress_classes))
    for kind, source in sources:

        def upsert(obj: Obj, kind: str = kind) -> None:
            table.upsert(kinded(kind, obj))
            if kind == "Ingress" and changed is not None:
                changed(obj)

        def replace(_old: Obj, new: Obj, kind: str = kind) -> None:
            upsert(new, kind)

        def remove(obj: Obj, kind: str = kind) -> None:
            table.remove(kinded(kind, obj))

        source.on(add=upsert, update=replace, delete=remove)


def load_balancer_ingress(address: str) -> list[Obj]:
    """``status.loadBalancer.ingress`` for a listen address (an IP or a host name)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return [{"hostname": address}]
    return [{"ip": address}]


def status_is_current(ingress: Obj, address: str) -> bool:
    current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return bool(current == load_balancer_ingress(address))


async def publish_status(client: Client, ingress: Obj, ip: str) -> Obj | None:
    """Set the Ingress's ``status.loadBalancer.ingress`` to ``ip`` through the status
    subresource (a merge patch); None when it already says so."""
    if status_is_current(ingress, ip):
        return None
    meta = ingress.get("metadata") or {}
    return await client.patch(
        "networking.k8s.io/v1",
        "ingresses",
        str(meta.get("name")),
        {"status": {"loadBalancer": {"ingress": load_balancer_ingress(ip)}}},
        namespace=str(meta.get("namespace") or "default"),
        subresource="status",
    )


# --- the proxy ----------------------------------------------------------------------------
def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def _connection_tokens(headers: Any) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _end_to_end(headers: Any, extra: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """Headers without hop-by-hop ones (fixed list and those named by Connection)."""
    drop = HOP_BY_HOP | _connection_tokens(headers) | extra
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in drop:
            out.add(name, value)
    return out


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    return "upgrade" in _connection_tokens(request.headers) and (
        request.headers.get("Upgrade", "").lower() == "websocket"
    )


def _forward_headers(
    request: web.BaseRequest, extra: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    headers = _end_to_end(request.headers, extra)
    peer = request.remote or ""
    previous = ", ".join(request.headers.getall("X-Forwarded-For", ()))
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    headers["X-Real-IP"] = peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.headers.get("Host", "")
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        headers["X-Forwarded-Port"] = str(sockname[1])
    return headers


class IngressRouter:
    """The HTTP and HTTPS listeners that route by a :class:`RouteTable` and proxy."""

    def __init__(self, table: RouteTable, options: IngressOptions) -> None:
        self.table = table
        self.options = options
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None  # for WebSocket upgrades
        self._upstreams: Upstreams | None = None  # for everything else
        self._ports: dict[str, int] = {}
        self._turns: dict[Backend, int] = {}
        self._sockets: list[tuple[web.WebSocketResponse, aiohttp.ClientWebSocketResponse]] = []
        self._fallback: ssl.SSLContext | None = None

    @property
    def ports(self) -> dict[str, int]:
        """The bound ports by listener (``http``, ``https``), once started."""
        return dict(self._ports)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=BACKEND_CONNECTIONS, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.options.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )
        self._upstreams = Upstreams(self.options.connect_timeout)
        # Cancelled handlers on client disconnect close their backend connection at once.
        # No access log: a line per request would cost the router a tenth of its time.
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        try:
            for name, address in (("http", self.options.http), ("https", self.options.https)):
                if address is None:
                    continue
                host, port = address
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.create_server((host, port), family=family, backlog=512)
                self._ports[name] = int(sock.getsockname()[1])
                context = self._server_context() if name == "https" else None
                site = web.SockSite(self._runner, sock, ssl_context=context)
                await site.start()
        except BaseException:
            await self.stop()
            raise
        log.info("ingress.started", ports=self._ports, ingress_class=self.options.class_name)

    async def stop(self) -> None:
        for client_ws, upstream in list(self._sockets):
            with contextlib.suppress(Exception):
                await client_ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
            with contextlib.suppress(Exception):
                await upstream.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._upstreams is not None:
            self._upstreams.close()
            self._upstreams = None
        self._ports = {}

    # --- TLS -----------------------------------------------------------------------
    def _server_context(self) -> ssl.SSLContext:
        context = context_from_pem(*self_signed_certificate())
        context.sni_callback = self._select_certificate
        self._fallback = context
        return context

    def _select_certificate(
        self, conn: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        chosen = self.table.certificate_for(server_name) if server_name else None
        if chosen is not None:
            conn.context = chosen
        return None

    # --- requests ------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        route = self.table.match(host, request.path)
        if route is None:
            return _text(404, f"no Ingress rule matches host {host!r} and path {request.path!r}")
        if not route.endpoints:
            return _text(503, f"no ready endpoints for service {route.backend}")
        if is_websocket_upgrade(request):
            return await self._websocket(request, route)
        return await self._proxy(request, route)

    def _candidates(self, route: Route) -> list[Endpoint]:
        """Endpoints to try, round-robin: the next in turn first, then its successors."""
        n = len(route.endpoints)
        turn = self._turns.get(route.backend, 0)
        self._turns[route.backend] = turn + 1
        return [route.endpoints[(turn + i) % n] for i in range(min(n, MAX_CONNECT_ATTEMPTS))]

    async def _proxy(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        assert self._upstreams is not None
        headers = _forward_headers(request)
        if "Host" not in headers:  # an HTTP/1.0 client without one
            headers["Host"] = request.host
        failure = ""
        for endpoint in self._candidates(route):
            body = request.content.iter_any() if request.body_exists else None
            try:
                conn, head = await self._upstreams.send(
                    endpoint.address, endpoint.port, request.method, request.raw_path, headers, body
                )
                break
            except UpstreamError as exc:
                if exc.connect:
                    failure = f"{endpoint.netloc}: {exc}"
                    continue
                return _text(502, f"upstream {route.backend} ({endpoint.netloc}) failed: {exc}")
        else:
            return _text(502, f"upstream {route.backend} unreachable: {failure}")
        key = (endpoint.address, endpoint.port)
        try:
            response = await self._relay(request, conn, head)
        except BaseException:  # cancelled (client gone) or failed: drop the connection
            conn.close()
            raise
        self._upstreams.release(key, conn)
        return response

    async def _relay(
        self, request: web.BaseRequest, conn: Connection, head: ResponseHead
    ) -> web.StreamResponse:
        headers = _end_to_end(head.headers)
        if conn.complete and request.method != "HEAD" and head.status not in (204, 304):
            # The whole response is here: one write to the client.
            return web.Response(
                status=head.status, reason=head.reason, headers=headers, body=conn.take_all()
            )
        response = web.StreamResponse(status=head.status, reason=head.reason, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in conn.body():
                await response.write(chunk)
        except ConnectionResetError:  # the client went away
            conn.close()
            return response
        except UpstreamError as exc:  # the backend broke off: so does the client
            log.info("ingress.upstream_broken", path=request.raw_path, error=str(exc))
            conn.close()
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _websocket(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        assert self._session is not None
        endpoint = self._candidates(route)[0]
        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", ())
            for p in value.split(",")
            if p.strip()
        ]
        try:
            upstream = await self._session.ws_connect(
                URL(f"ws://{endpoint.netloc}{request.raw_path}", encoded=True),
                headers=_forward_headers(request, WEBSOCKET_HANDSHAKE),
                protocols=protocols,
                max_msg_size=0,
                autoclose=True,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status if exc.status >= 400 else 502
            return _text(
                status, f"upstream {route.backend} refused the WebSocket upgrade ({exc.status})"
            )
        except aiohttp.ClientError as exc:
            return _text(502, f"upstream {route.backend} ({endpoint.netloc}) failed: {exc}")
        client_ws = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (), max_msg_size=0
        )
        pair = (client_ws, upstream)
        self._sockets.append(pair)
        try:
            await client_ws.prepare(request)
            await _pump_both(client_ws, upstream)
        finally:
            self._sockets.remove(pair)
            await upstream.close()
            await client_ws.close()
        return client_ws


WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: WebSocket, sink: WebSocket) -> None:
    """Relay data messages until the source closes; then close the sink the same way."""
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.ERROR:
            break
    code = source.close_code or aiohttp.WSCloseCode.OK
    if code in (aiohttp.WSCloseCode.ABNORMAL_CLOSURE, 1005):  # not sendable on the wire
        code = aiohttp.WSCloseCode.OK
    await sink.close(code=code)


async def _pump_both(
    client_ws: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    tasks = [
        asyncio.create_task(_pump(client_ws, upstream)),
        asyncio.create_task(_pump(upstream, client_ws)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
