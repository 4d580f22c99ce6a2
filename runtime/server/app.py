"""The HTTP front of the built-in cluster: Kubernetes REST over ASGI.

Who calls it: uvicorn (see :mod:`runtime.server.serve`), with every request of kubectl,
the official clients, the reconciler, the kubelets, the scheduler and the controllers.
Every request first passes the :class:`~runtime.server.gate.Gate` (authentication,
impersonation, RBAC and the Node authorizer: 401/403), then it routes ``/api`` and ``/apis`` paths to
resources and subresources, negotiates content (JSON, YAML bodies, the four patch
types, ``as=Table``, ``as=PartialObjectMetadata``, gzip), streams watches as chunked
JSON lines, and renders every :class:`~kubemodel.errors.ApiError` as a ``Status``.
ASGI ``websocket`` scopes are ``pods/exec``: authenticated and validated here, then
relayed to the pod's kubelet by :mod:`runtime.server.streaming`.
The semantics live in :mod:`runtime.api.objects`; this module only translates HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from kubemodel import errors, yamljson
from kubemodel.errors import ApiError
from runtime.api import protobuf
from runtime.api.objects import ObjectAPI, WriteOptions, WriteResult
from runtime.api.registry import ResourceInfo
from runtime.api.selectors import FieldRequirement, FieldSelector, LabelSelector
from runtime.api.store import ADDED, DELETED, MODIFIED, Entry, Expired
from runtime.auth import reviews
from runtime.auth.serviceaccount import TokenIssuer
from runtime.auth.tokenrequest import create_token
from runtime.auth.user import UserInfo
from runtime.server import streaming, tables
from runtime.server.discovery import Discovery
from runtime.server.gate import Gate
from runtime.server.metrics import GROUP as METRICS_GROUP
from runtime.server.metrics import MetricsAPI
from runtime.server.openapi import OpenAPI
from runtime.server.peercert import peer_of

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
GZIP_MIN = 128 * 1024
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
PROTOBUF_OPENAPI = "application/com.github.proto-openapi.spec.v2"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
}
VERSION_INFO = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0-gitops",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}


@dataclass
class ServerOptions:
    """Behaviour of the HTTP front."""

    # Period of BOOKMARK events on watches that allow them (Kubernetes: about a minute).
    bookmark_interval: float = 60.0
    # Default watch duration when the client gives no timeoutSeconds.
    watch_timeout: float = 1800.0
    server_address: str = "127.0.0.1:6443"
    gzip_level: int = 1
    # The cluster CA, to verify kubelets' serving certificates when proxying logs.
    ca_file: str = ""
    # The credential the API server presents to kubelets (logs, exec, stats); never
    # accepted by the API server itself.
    kubelet_client_token: str = ""


@dataclass
class Security:
    """Who may call the server: the authenticator chain, the authorizer, and the
    ServiceAccount token issuer (TokenRequest; None: not served)."""

    gate: Gate
    token_issuer: TokenIssuer | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    accept: str = ""
    user_agent: str = ""
    body_bytes: bytes = b""
    raw_query: bytes = b""
    warnings: list[str] = field(default_factory=list)
    #: Every header as sent, repeated ones too (``Impersonate-Group``).
    header_list: list[tuple[str, str]] = field(default_factory=list)
    #: Who the request acts as (set by the gate before routing).
    user: UserInfo | None = None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: A JSON body written as kube-apiserver's serializer writes it (Go's encoding/json:
    #: HTML characters escaped, a trailing newline; indented for ``pretty``). The large
    #: cached OpenAPI documents go out as they are.
    go_encoded: bool = True


_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_escaped(body: bytes) -> bytes:
    """JSON as Go's encoding/json writes it: ``<``, ``>``, ``&``, U+2028 and U+2029
    escaped (they only occur inside strings, so the meaning is unchanged)."""
    for raw, escaped in _GO_ESCAPES:
        if raw in body:
            body = body.replace(raw, escaped)
    return body


def _pretty(req: Request) -> bool:
    """kube-apiserver's isPrettyPrint: ``?pretty=true``, else a browser's, curl's or
    wget's User-Agent."""
    if "pretty" in req.query:
        return req.flag("pretty")
    return req.user_agent.startswith(("curl", "Wget", "Mozilla/5.0"))


def _go_json(req: Request, body: bytes) -> bytes:
    """A JSON body as kube-apiserver writes it: compact with a trailing newline, or
    indented by two spaces without one when pretty printing."""
    if _pretty(req):
        try:
            body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
        except orjson.JSONDecodeError:
            return body
        return go_escaped(body)
    return go_escaped(body) + b"\n"


@dataclass
class StreamingResponse:
    """A response whose body arrives in pieces (container logs)."""

    status: int
    chunks: AsyncIterator[bytes]
    content_type: bytes = b"text/plain"


def _parse_query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    out: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        out[key] = value
    return out


def _request(scope: Scope, method: str) -> Request:
    headers: dict[str, str] = {}
    header_list: list[tuple[str, str]] = []
    for k, v in scope["headers"]:
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        headers[name] = value
        header_list.append((name, value))
    raw_query: bytes = scope.get("query_string", b"")
    return Request(
        method=method,
        path=scope["path"],
        query=_parse_query(raw_query),
        headers=headers,
        accept=headers.get("accept", ""),
        user_agent=headers.get("user-agent", ""),
        raw_query=raw_query,
        header_list=header_list,
    )


def _api_path(path: str) -> tuple[str, str, list[str]] | None:
    """(group, version, rest) of a resource path under ``/api/v1`` or
    ``/apis/{group}/{version}``; None for discovery and other paths."""
    parts = path.rstrip("/").split("/")[1:]
    if parts and parts[0] == "api" and len(parts) > 2:
        return "", parts[1], parts[2:]
    if parts and parts[0] == "apis" and len(parts) > 3:
        return parts[1], parts[2], parts[3:]
    return None


MAX_BODY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's MaxRequestBodyBytes: a bigger body is refused (413) unread."""

_BODY_TYPES = frozenset(
    {"", "application/json", "application/yaml", "application/x-yaml", "text/yaml", *PATCH_TYPES}
)
"""Body media types besides protobuf (no Content-Type is taken as JSON)."""


def _parse_body(req: Request, content_type: str) -> Any:
    """The request body as JSON data: JSON, YAML (the sigs.k8s.io/yaml dialect, aliases
    and nesting bounded: :mod:`kubemodel.yamljson`) or protobuf; 400 for what does not
    parse or nests deeper than kube-apiserver's clients ever send, 415 for other media
    types."""
    data = req.body_bytes
    if not data:
        raise errors.bad_request("the request body is empty")
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == protobuf.CONTENT_TYPE:
        return protobuf.decode(data)
    if ctype not in _BODY_TYPES:
        raise errors.unsupported_media_type(ctype)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = _yaml_body(data)
    if yamljson.depth_of(body, yamljson.MAX_NESTING_DEPTH) > yamljson.MAX_NESTING_DEPTH:
        raise errors.bad_request(
            f"the request body is nested deeper than {yamljson.MAX_NESTING_DEPTH} levels"
        )
    return body


def _yaml_body(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.bad_request(
            f"the request body is neither JSON nor YAML: not valid UTF-8 (byte {exc.start})"
        ) from None
    try:
        documents = yamljson.load_documents(text)
    except yamljson.YamlError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise errors.bad_request(
            f"the request body is neither JSON nor YAML{where}: {exc.message}"
        ) from None
    if len(documents) > 1:
        raise errors.bad_request("the request body holds more than one YAML document")
    return documents[0][0] if documents else None


class _Accept:
    """What the client asked for in ``Accept``: the first entry the server can serve wins
    (a Table, partial object metadata, or plain JSON)."""

    def __init__(self, header: str) -> None:
        self.table = False
        self.partial = False
        self.json_ok = not header.strip()
        self.table_version = "meta.k8s.io/v1"
        for part in header.split(","):
            fields = [f.strip() for f in part.split(";")]
            media = fields[0].lower()
            if media not in ("application/json", "application/yaml", "*/*", "application/*"):
                continue
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            as_ = params.get("as")
            if as_ is None:
                self.json_ok = True
                return
            if params.get("g") != "meta.k8s.io" or params.get("v", "v1") not in ("v1", "v1beta1"):
                continue
            if as_ == "Table":
                self.table = self.json_ok = True
                self.table_version = "meta.k8s.io/" + params.get("v", "v1")
                return
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                self.partial = self.json_ok = True
                return


class ApiApp:
    """The ASGI application."""

    def __init__(self, api: ObjectAPI, options: ServerOptions, security: Security) -> None:
        self.api = api
        self.options = options
        self.security = security
        self.discovery = Discovery(api.registry, options.server_address)
        self.openapi = OpenAPI(api.registry)
        self._shutdown = asyncio.Event()
        self._kubelet_ssl_context: ssl.SSLContext | None = None
        self._stream_failures = streaming.RecentFailures()
        self.metrics = MetricsAPI(api, self._kubelet_summary)
        api.on_registry_change(self._registry_changed)

    def _registry_changed(self) -> None:
        self.discovery.invalidate()
        self.openapi.invalidate()

    def shutdown(self) -> None:
        """End open watches so the server can stop promptly."""
        self._shutdown.set()

    async def _kubelet_summary(self, node_name: str) -> dict[str, Any]:
        summary: dict[str, Any] = await self.kubelet_get(node_name, "/stats/summary")
        return summary

    # --- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        req = _request(scope, scope["method"])
        try:
            self._admit(req, scope, websocket=False)
            if req.method in ("POST", "PUT", "PATCH", "DELETE"):
                req.body_bytes = await self._read_body(receive)
            if req.method == "GET" and req.flag("watch"):
                await self._route_watch(req, scope, receive, send)
                return
            routed = await self._route(req)
            if isinstance(routed, StreamingResponse):
                await self._stream(send, receive, routed)
                return
            response = routed
        except ApiError as exc:
            response = Response(exc.code, orjson.dumps(exc.status()))
            if exc.retry_after:
                response.headers.append((b"retry-after", str(exc.retry_after).encode()))
        except Exception as exc:  # report, never drop the connection silently
            log.exception("request.failed", method=req.method, path=req.path)
            err = errors.internal(f"{type(exc).__name__}: {exc}")
            response = Response(500, orjson.dumps(err.status()))
        await self._send(send, req, response)

    def _admit(self, req: Request, scope: Scope, *, websocket: bool) -> None:
        """Authenticate and authorise ``req`` (401/403), recording who it acts as."""
        req.user = self.security.gate.admit(
            req.method, req.path, req.query, req.header_list, peer_of(scope), websocket
        )

    def _kubelet_token(self) -> str:
        return self.options.kubelet_client_token

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        """The request body, refused (413) as soon as it passes :data:`MAX_BODY_BYTES`."""
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise errors.too_large(f"limit is {MAX_BODY_BYTES}")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _send(self, send: Send, req: Request, response: Response) -> None:
        body = response.body
        if response.go_encoded and response.content_type == JSON:
            body = _go_json(req, body)
        headers = [
            (b"content-type", response.content_type),
            (b"cache-control", b"no-cache, private"),
        ]
        headers.extend(response.headers)
        for warning in req.warnings:
            text = warning.replace('"', '\\"')
            headers.append((b"warning", f'299 - "{text}"'.encode()))
        if len(body) >= GZIP_MIN and "gzip" in req.headers.get("accept-encoding", ""):
            body = await asyncio.to_thread(gzip.compress, body, self.options.gzip_level)
            headers.append((b"content-encoding", b"gzip"))
            headers.append((b"vary", b"Accept-Encoding"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- routing ------------------------------------------------------------------------
    async def _stream(self, send: Send, receive: Receive, response: StreamingResponse) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type),
                    (b"cache-control", b"no-cache, private"),
                    (b"transfer-encoding", b"chunked"),
                ],
            }
        )
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            async for chunk in response.chunks:
                if gone.is_set() or self._shutdown.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _route(self, req: Request) -> Response | StreamingResponse:
        path = req.path.rstrip("/") or "/"
        if path in HEALTH_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return Response(200, b"ok", b"text/plain; charset=utf-8")
        if path == "/version":
            return Response(200, orjson.dumps(VERSION_INFO))
        if path.startswith("/openapi/"):
            return self._openapi(req, path)
        if path == "/":
            paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/openapi/v2",
                "/openapi/v3",
                "/readyz",
                "/version",
            ]
            paths += [f"/apis/{g}" for g in self.api.registry.groups() if g]
            paths.append(f"/apis/{METRICS_GROUP}")
            return Response(200, orjson.dumps({"paths": sorted(paths)}))
        parts = path.split("/")[1:]
        if parts[0] == "api":
            if len(parts) <= 2:
                return self._discovery(req, path)
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) <= 3:
                return self._discovery(req, path)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.no_such_path()
        if group == METRICS_GROUP:
            return Response(200, await self.metrics.handle(req.method, version, rest, req.query))
        return await self._resource(req, group, version, rest)

    def _discovery(self, req: Request, path: str) -> Response:
        if req.method != "GET":
            raise errors.method_not_allowed(f"{req.method} is not supported on {path}")
        doc = self.discovery.document(path)
        if doc is None:
            raise errors.no_such_path()
        return Response(200, doc)

    def _openapi(self, req: Request, path: str) -> Response:
        if path == "/openapi/v2":
            if PROTOBUF_OPENAPI in req.accept:
                return Response(
                    200,
                    self.openapi.v2_protobuf(),
                    b"application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    [(b"etag", f'"{self.openapi.etag()}"'.encode())],
                )
            return Response(
                200,
                self.openapi.v2_json(),
                headers=[(b"etag", f'"{self.openapi.etag()}"'.encode())],
                go_encoded=False,
            )
        if path == "/openapi/v3":
            return Response(200, self.openapi.v3_index(), go_encoded=False)
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.v3_group_version(path[len("/openapi/v3/") :])
            if doc is not None:
                return Response(200, doc, go_encoded=False)
        raise errors.no_such_path()

    def _split(
        self, group: str, version: str, rest: list[str]
    ) -> tuple[ResourceInfo, str, str, str]:
        namespace = ""
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and group == ""
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ) or (len(rest) >= 3 and rest[0] == "namespaces" and group != ""):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3 or not rest:
            raise errors.no_such_path()
        info = self.api.registry.get(group, version, rest[0])
        if info is None:
            raise errors.no_such_path()
        if namespace and not info.namespaced:
            raise errors.no_such_path()
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        if sub and sub not in info.subresources:
            raise errors.no_such_path()
        return info, namespace, name, sub

    def _write_options(self, req: Request) -> WriteOptions:
        dry = req.query.get("dryRun", "")
        if dry and dry != "All":
            raise errors.bad_request(f"Invalid dryRun value: {dry!r}, only 'All' is supported")
        manager = req.query.get("fieldManager", "")
        if not manager and req.user_agent:
            manager = req.user_agent.split("/", 1)[0][:128]
        validation = req.query.get("fieldValidation", "Warn") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f"fieldValidation must be one of Strict, Warn, Ignore, not {validation!r}"
            )
        return WriteOptions(
            dry_run=bool(dry),
            field_manager=manager,
            force=req.flag("force"),
            field_validation=validation,
            requester=req.user,
        )

    async def _resource(
        self, req: Request, group: str, version: str, rest: list[str]
    ) -> Response | StreamingResponse:
        info, namespace, name, sub = self._split(group, version, rest)
        method = req.method
        if info.verbs == ("create",) and method == "POST":
            return self._review(req, info, namespace)
        if not name:
            if method == "GET":
                self._verb(info, "list")
                return self._list(req, info, namespace or None)
            if method == "POST":
                self._verb(info, "create")
                body = _parse_body(req, req.headers.get("content-type", ""))
                result = await self.api.create(info, namespace, body, self._write_options(req))
                return self._object_response(req, info, result, 201)
            if method == "DELETE":
                self._verb(info, "deletecollection")
                return await self._delete_collection(req, info, namespace or None)
            raise errors.method_not_allowed(f"{method} is not supported on a collection")
        if sub == "scale":
            return await self._scale(req, info, namespace, name)
        if sub == "log":
            return await self._log(req, info, namespace, name)
        if sub in streaming.STREAM_SUBRESOURCES:
            raise self._stream_refusal(req, info, namespace, name, sub)
        if sub == "token" and info.store_key == "core/serviceaccounts":
            return await self._token_request(req, namespace, name)
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed("only POST is supported on pods/binding")
            body = _parse_body(req, req.headers.get("content-type", ""))
            await self.api.bind(info, namespace, name, body, self._write_options(req))
            return Response(201, orjson.dumps(errors.status_object("Success", code=201)))
        if sub in ("eviction", "ephemeralcontainers", "approval"):
            raise errors.method_not_allowed(
                f"{info.plural}/{sub} is not implemented by the built-in cluster yet"
            )
        if method == "GET":
            self._verb(info, "get")
            entry = self.api.get(info, namespace, name)
            return self._entry_response(req, info, entry)
        if method == "PUT":
            self._verb(info, "update")
            body = _parse_body(req, req.headers.get("content-type", ""))
            result = await self.api.replace(
                info, namespace, name, body, self._write_options(req), sub
            )
            return self._object_response(req, info, result, 201 if result.created else 200)
        if method == "PATCH":
            self._verb(info, "patch")
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None or patch_type == "unsupported":
                raise errors.unsupported_media_type(ctype)
            body = _parse_body(req, ctype)
            result = await self.api.patch(
                info, namespace, name, patch_type, body, self._write_options(req), sub
            )
            return self._object_response(req, info, result, 201 if result.created else 200)
        if method == "DELETE":
            self._verb(info, "delete")
            options = self._delete_options(req)
            result = await self.api.delete(info, namespace, name, options, self._write_options(req))
            return self._delete_response(req, info, name, options, result)
        raise errors.method_not_allowed(f"{method} is not supported")

    def _delete_response(
        self,
        req: Request,
        info: ResourceInfo,
        name: str,
        options: dict[str, Any],
        result: WriteResult,
    ) -> Response:
        """kube-apiserver's DELETE answer (handlers/delete.go over the generic registry):
        an object still there (grace period, finalizers, a namespace or CRD marked for
        deletion) and a dry run answer with the object; an object removed at once with
        the object itself where the registry returns deleted objects
        (:attr:`ResourceInfo.returns_deleted_object`: pods, services, …), else a Success
        ``Status`` naming it. Always 200, except 202 for an object not yet removed when
        the request set the deprecated ``orphanDependents=false``."""
        code = 200
        if result.pending and options.get("orphanDependents") is False:
            code = 202
        if result.pending or req.query.get("dryRun") or info.returns_deleted_object:
            return self._object_response(req, info, result, code)
        req.warnings.extend(result.warnings)
        meta = result.obj.get("metadata") or {}
        status = errors.deleted_status(name, info.group, info.plural, str(meta.get("uid", "")))
        return Response(code, orjson.dumps(status))

    @staticmethod
    def _verb(info: ResourceInfo, verb: str) -> None:
        if verb not in info.verbs:
            raise errors.method_not_allowed(
                f"{verb} is not supported on resource {info.group_resource}"
            )

    def _delete_options(self, req: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if req.body_bytes:
            body = _parse_body(req, req.headers.get("content-type", ""))
            if isinstance(body, dict):
                options = body
        if "propagationPolicy" in req.query:
            options["propagationPolicy"] = req.query["propagationPolicy"]
        if "gracePeriodSeconds" in req.query:
            try:
                options["gracePeriodSeconds"] = int(req.query["gracePeriodSeconds"])
            except ValueError as exc:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from exc
        if "orphanDependents" in req.query:
            options["orphanDependents"] = req.flag("orphanDependents")
        if "dryRun" in req.query:
            options.setdefault("dryRun", [req.query["dryRun"]])
        if options.get("dryRun") and "dryRun" not in req.query:
            req.query["dryRun"] = "All"
        return options

    # --- rendering ------------------------------------------------------------------------
    def _object_response(
        self, req: Request, info: ResourceInfo, result: WriteResult, status: int
    ) -> Response:
        req.warnings.extend(result.warnings)
        accept = _Accept(req.accept)
        if accept.table:
            table = tables.to_table(
                info,
                [result.obj],
                now=dt.datetime.now(dt.UTC),
                include_object=req.query.get("includeObject", "Metadata"),
                api_version=accept.table_version,
            )
            return Response(status, orjson.dumps(table))
        if accept.partial:
            return Response(status, orjson.dumps(_partial(result.obj)))
        return Response(status, orjson.dumps(result.obj))

    def _entry_response(self, req: Request, info: ResourceInfo, entry: Entry) -> Response:
        accept = _Accept(req.accept)
        if accept.table:
            obj = self.api.convert(info, entry.obj())
            table = tables.to_table(
                info,
                [obj],
                now=dt.datetime.now(dt.UTC),
                include_object=req.query.get("includeObject", "Metadata"),
                resource_version=str(entry.rv),
                api_version=accept.table_version,
            )
            return Response(200, orjson.dumps(table))
        if accept.partial:
            obj = self.api.convert(info, entry.obj())
            return Response(200, orjson.dumps(_partial(obj)))
        if not accept.json_ok:
            raise errors.not_acceptable("only application/json is served")
        return Response(200, self.api.render(info, entry))

    def _list(self, req: Request, info: ResourceInfo, namespace: str | None) -> Response:
        labels, fields = self.api.parse_selectors(
            info, req.query.get("labelSelector"), req.query.get("fieldSelector")
        )
        try:
            limit = int(req.query.get("limit") or 0)
        except ValueError as exc:
            raise errors.bad_request("limit must be an integer") from exc
        result = self.api.list_objects(
            info,
            namespace,
            labels,
            fields,
            limit=max(limit, 0),
            continue_token=req.query.get("continue", ""),
        )
        accept = _Accept(req.accept)
        if accept.table:
            objs = [self.api.convert(info, e.obj()) for e in result.items]
            table = tables.to_table(
                info,
                objs,
                now=dt.datetime.now(dt.UTC),
                include_object=req.query.get("includeObject", "Metadata"),
                resource_version=str(result.resource_version),
                continue_token=result.continue_token,
                remaining=result.remaining,
                api_version=accept.table_version,
            )
            return Response(200, orjson.dumps(table))
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        if accept.partial:
            items = [_partial(self.api.convert(info, e.obj())) for e in result.items]
            body = orjson.dumps(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": items,
                }
            )
            return Response(200, body)
        if not accept.json_ok:
            raise errors.not_acceptable("only application/json is served")
        head = orjson.dumps(
            {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta}
        )
        parts = [self.api.render(info, e) for e in result.items]
        body = b"".join([head[:-1], b',"items":[', b",".join(parts), b"]}"])
        return Response(200, body)

    async def _delete_collection(
        self, req: Request, info: ResourceInfo, namespace: str | None
    ) -> Response:
        labels, fields = self.api.parse_selectors(
            info, req.query.get("labelSelector"), req.query.get("fieldSelector")
        )
        options = self._delete_options(req)
        deleted, warnings = await self.api.delete_collection(
            info, namespace, labels, fields, options, self._write_options(req)
        )
        req.warnings.extend(warnings)
        body = {
            "kind": info.list_kind,
            "apiVersion": info.api_version,
            "metadata": {"resourceVersion": str(self.api.store.revision)},
            "items": deleted,
        }
        return Response(200, orjson.dumps(body))

    async def _scale(self, req: Request, info: ResourceInfo, namespace: str, name: str) -> Response:
        opts = self._write_options(req)
        entry = self.api.get(info, namespace, name)
        current = self.api.to_scale(info, self.api.convert(info, entry.obj()))
        if req.method == "GET":
            return Response(200, orjson.dumps(current))
        if req.method == "PUT":
            body = _parse_body(req, req.headers.get("content-type", ""))
            if not isinstance(body, dict):
                raise errors.bad_request("the body must be a Scale object")
        elif req.method == "PATCH":
            from kubemodel import patch as patching

            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            kind = PATCH_TYPES.get(ctype)
            data = _parse_body(req, ctype)
            if kind == "json":
                body = patching.json_patch(
                    current, data, max_copy_bytes=patching.JSON_PATCH_MAX_COPY_BYTES
                )
            elif kind in ("merge", "strategic", "apply"):
                body = patching.merge_patch(current, data)
            else:
                raise errors.unsupported_media_type(ctype)
        else:
            raise errors.method_not_allowed(f"{req.method} is not supported on scale")
        result = await self.api.update_scale(info, namespace, name, body, opts)
        return Response(200, orjson.dumps(result.obj))

    async def _log(
        self, req: Request, info: ResourceInfo, namespace: str, name: str
    ) -> StreamingResponse:
        """pods/log: validate the container, then proxy the node's kubelet endpoint."""
        if req.method != "GET":
            raise errors.method_not_allowed("only GET is supported on pods/log")
        pod = self.api.get(info, namespace, name).obj()
        spec = pod.get("spec") or {}
        container = streaming.choose_container(pod, name, req.query.get("container", ""))
        node_name = spec.get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        query = {
            k: v
            for k, v in req.query.items()
            if k in ("follow", "previous", "tailLines", "sinceSeconds", "timestamps", "limitBytes")
        }
        base = self._kubelet_base(str(node_name), "read logs from")
        url = f"{base}/containerLogs/{namespace}/{name}/{container}"
        import aiohttp

        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        try:
            resp = await session.get(
                url,
                params=query,
                ssl=self._kubelet_ssl(),
                headers={"Authorization": f"Bearer {self._kubelet_token()}"},
            )
        except aiohttp.ClientError as exc:
            await session.close()
            raise streaming.kubelet_unreachable(str(node_name), exc) from exc
        if resp.status >= 400:
            text = await resp.text()
            resp.release()
            await session.close()
            raise streaming.kubelet_error(str(node_name), resp.status, text)
        return StreamingResponse(200, self._relay(session, resp))

    def _kubelet_base(self, node_name: str, purpose: str) -> str:
        """``https://{InternalIP}:{kubelet port}`` of a node, from its status (as the
        kube-apiserver finds a kubelet); 503 when the node publishes no endpoint."""
        nodes = self.api.registry.get("", "v1", "nodes")
        assert nodes is not None
        node = self.api.get(nodes, "", node_name).obj()
        status = node.get("status") or {}
        port = int(
            ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
        )
        address = next(
            (
                a.get("address")
                for a in status.get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            None,
        )
        if not port or not address:
            raise errors.unavailable(f"node {node_name!r} has no kubelet endpoint to {purpose}")
        host = f"[{address}]" if ":" in str(address) else str(address)
        return f"https://{host}:{port}"

    def _kubelet_ssl(self) -> ssl.SSLContext:
        """Verifies kubelets' serving certificates against the cluster CA (built once)."""
        if self._kubelet_ssl_context is None:
            self._kubelet_ssl_context = ssl.create_default_context(
                cafile=self.options.ca_file or None
            )
        return self._kubelet_ssl_context

    async def kubelet_get(self, node_name: str, path: str) -> Any:
        """GET a JSON document from a node's kubelet endpoint (the metrics API's source:
        ``/stats/summary``); 503 when the kubelet cannot be reached."""
        import aiohttp

        url = self._kubelet_base(node_name, "read stats from") + path
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(
                    url,
                    ssl=self._kubelet_ssl(),
                    headers={"Authorization": f"Bearer {self._kubelet_token()}"},
                ) as resp,
            ):
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.unavailable(
                        f"the kubelet of node {node_name!r} answered {resp.status}: "
                        f"{raw.decode(errors='replace').strip()}"
                    )
                return orjson.loads(raw)
        except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            raise streaming.kubelet_unreachable(node_name, exc) from exc

    # --- pods/exec (WebSocket) -------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket request: only ``pods/exec`` is served (see :mod:`streaming`)."""
        if (await receive())["type"] != "websocket.connect":
            return
        req = _request(scope, "GET")
        key: streaming.FailureKey | None = None
        try:
            self._admit(req, scope, websocket=True)
            located = _api_path(req.path)
            if located is None:
                raise errors.no_such_path()
            info, namespace, name, sub = self._split(*located)
            if sub not in streaming.STREAM_SUBRESOURCES:
                raise errors.bad_request(
                    "only pods/exec and pods/attach are served over WebSocket by the built-in "
                    "cluster"
                )
            target = self._exec_target(req, info, namespace, name, sub)
            key = (namespace, name, sub, req.raw_query)
            endpoint = streaming.KubeletEndpoint(
                target.node_name,
                self._kubelet_base(target.node_name, "exec in"),
                self._kubelet_ssl(),
                self._kubelet_token(),
            )
            upstream = await streaming.open_kubelet(
                endpoint, target, list(scope.get("subprotocols") or ())
            )
        except ApiError as exc:
            if key is not None:
                self._stream_failures.remember(key, exc)
            await streaming.reject(scope, send, exc)
            return
        except Exception as exc:  # report, never drop the handshake silently
            log.exception("exec.failed", path=req.path)
            await streaming.reject(scope, send, errors.internal(f"{type(exc).__name__}: {exc}"))
            return
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
            await streaming.relay(receive, send, upstream.ws)
        finally:
            await upstream.close()

    def _exec_target(
        self, req: Request, info: ResourceInfo, namespace: str, name: str, sub: str
    ) -> streaming.ExecTarget:
        """Validate a pods/exec (or attach) request."""
        query = streaming.parse_stream_query(req.raw_query)
        pod = self.api.get(info, namespace, name).obj()
        return streaming.exec_target(pod, namespace, name, sub, query)

    def _stream_refusal(
        self, req: Request, info: ResourceInfo, namespace: str, name: str, sub: str
    ) -> ApiError:
        """pods/exec without a WebSocket (kubectl's SPDY fallback): the request's own
        validation error, else the error of the WebSocket attempt that just failed on the
        same pod, else a 400 saying only WebSocket streaming is served."""
        if req.method not in ("GET", "POST"):
            return errors.method_not_allowed(f"{req.method} is not supported on pods/{sub}")
        self._exec_target(req, info, namespace, name, sub)
        failed = self._stream_failures.take((namespace, name, sub, req.raw_query))
        return failed if failed is not None else errors.bad_request(streaming.SPDY_REFUSAL)

    @staticmethod
    async def _relay(session: Any, resp: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.release()
            await session.close()

    def _review(self, req: Request, info: ResourceInfo, namespace: str) -> Response:
        """The review APIs (:mod:`runtime.auth.reviews`), answered 201 with a status."""
        body = _parse_body(req, req.headers.get("content-type", ""))
        if not isinstance(body, dict):
            raise errors.bad_request("the body must be an object")
        body["apiVersion"] = info.api_version
        body["kind"] = info.kind
        assert req.user is not None
        gate = self.security.gate
        answered = reviews.review(
            info.kind,
            body,
            namespace,
            req.user,
            gate.authorizer,
            gate.authenticator.authenticate_token,
        )
        return Response(201, orjson.dumps(answered))

    async def _token_request(self, req: Request, namespace: str, name: str) -> Response:
        """``serviceaccounts/token``: a TokenRequest answered with a signed token."""
        if req.method != "POST":
            raise errors.method_not_allowed("only POST is supported on serviceaccounts/token")
        issuer = self.security.token_issuer
        if issuer is None:
            raise errors.not_found("", "serviceaccounts/token", name)
        assert req.user is not None
        body = _parse_body(req, req.headers.get("content-type", ""))
        answered = await create_token(self.api, issuer, namespace, name, body, req.user)
        return Response(201, orjson.dumps(answered))

    # --- watch ------------------------------------------------------------------------------
    async def _route_watch(self, req: Request, scope: Scope, receive: Receive, send: Send) -> None:
        located = _api_path(req.path)
        if located is None:
            raise errors.no_such_path()
        info, namespace, name, sub = self._split(*located)
        if sub:
            raise errors.method_not_allowed("watch is not supported on subresources")
        self._verb(info, "watch")
        labels, fields = self.api.parse_selectors(
            info, req.query.get("labelSelector"), req.query.get("fieldSelector")
        )
        if name:
            fields = FieldSelector(
                (*fields.requirements, FieldRequirement("metadata.name", name, True))
            )
        watch = _Watch(self, req, info, namespace or None, labels, fields, send, receive)
        await watch.run()


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


class _Watch:
    """One watch stream: initial events, then committed events, bookmarks and timeout."""

    def __init__(
        self,
        app: ApiApp,
        req: Request,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        send: Send,
        receive: Receive,
    ) -> None:
        self.app = app
        self.req = req
        self.info = info
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.send = send
        self.receive = receive
        self.accept = _Accept(req.accept)
        self.include = req.query.get("includeObject", "Metadata")
        self.closed = asyncio.Event()
        self.headers_sent = False

    def _matches(self, entry: Entry | None) -> bool:
        if entry is None:
            return False
        if self.namespace is not None and entry.namespace != self.namespace:
            return False
        if not self.labels.empty() and not self.labels.matches(entry.labels):
            return False
        return self.fields.empty() or self.fields.matches(entry.fields)

    def _line(self, kind: str, entry: Entry) -> bytes:
        if self.accept.table:
            obj = self.app.api.convert(self.info, entry.obj())
            row = tables.table_row_for_watch(
                self.info,
                obj,
                now=dt.datetime.now(dt.UTC),
                include_object=self.include,
                headers=not self.headers_sent,
                api_version=self.accept.table_version,
            )
            self.headers_sent = True
            return orjson.dumps({"type": kind, "object": row}) + b"\n"
        if self.accept.partial:
            obj = self.app.api.convert(self.info, entry.obj())
            return orjson.dumps({"type": kind, "object": _partial(obj)}) + b"\n"
        return (
            b'{"type":"'
            + kind.encode()
            + b'","object":'
            + self.app.api.render(self.info, entry)
            + b"}\n"
        )

    def _bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        kind = self.info.kind
        api_version = self.info.api_version
        if self.accept.table:
            kind, api_version = "Table", self.accept.table_version
        return (
            orjson.dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": kind, "apiVersion": api_version, "metadata": meta},
                }
            )
            + b"\n"
        )

    async def _write(self, data: bytes) -> None:
        if data:
            body = go_escaped(data)
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.closed.set()
                return

    async def run(self) -> None:
        store = self.app.api.store
        q = self.req.query
        rv_param = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents") == "true"
        bookmarks = self.req.flag("allowWatchBookmarks")
        try:
            timeout = (
                float(q["timeoutSeconds"])
                if q.get("timeoutSeconds")
                else self.app.options.watch_timeout
            )
        except ValueError as exc:
            raise errors.bad_request("timeoutSeconds must be a number") from exc
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise errors.invalid_object(
                "meta.k8s.io",
                "ListOptions",
                "",
                [
                    errors.forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )
                ],
            )
        start_rv: int
        if rv_param and rv_param != "0":
            try:
                start_rv = int(rv_param)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion {rv_param!r}") from exc
        else:
            start_rv = store.revision
        initial: list[bytes] = []
        if not rv_param or rv_param == "0" or send_initial:
            if send_initial and rv_param and rv_param != "0" and start_rv > store.revision:
                raise errors.unavailable("Too large resource version")
            rv_now = store.revision
            for entry in store.iter(self.info.store_key, self.namespace):
                if self._matches(entry):
                    initial.append(self._line(ADDED, entry))
            start_rv = rv_now
            if send_initial:
                initial.append(self._bookmark(rv_now, initial_end=True))
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-cache, private"),
                    (b"transfer-encoding", b"chunked"),
                ],
            }
        )
        disconnect = asyncio.ensure_future(self._watch_disconnect())
        try:
            if initial:
                await self._write(b"".join(initial))
            await self._stream(start_rv, timeout, bookmarks)
        finally:
            disconnect.cancel()
            if not self.closed.is_set():
                try:
                    await self.send({"type": "http.response.body", "body": b"", "more_body": False})
                except Exception:  # the client is gone
                    log.debug("watch.close_failed")

    async def _stream(self, rv: int, timeout: float, bookmarks: bool) -> None:
        store = self.app.api.store
        deadline = time.monotonic() + timeout
        interval = self.app.options.bookmark_interval
        next_bookmark = time.monotonic() + interval
        shutdown = self.app._shutdown
        with store.waiter() as wake:
            while not self.closed.is_set() and not shutdown.is_set():
                wake.clear()
                try:
                    events = store.events_after(rv)
                except Expired as exc:
                    status = errors.gone(str(exc)).status()
                    await self._write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
                    return
                if events:
                    out = []
                    for event in events:
                        if event.res != self.info.store_key:
                            continue
                        line = self._event_line(event.type, event.entry, event.prev)
                        if line:
                            out.append(line)
                    rv = events[-1].rv
                    if out:
                        await self._write(b"".join(out))
                    continue
                now = time.monotonic()
                if now >= deadline:
                    return
                if bookmarks and now >= next_bookmark:
                    await self._write(self._bookmark(store.revision))
                    next_bookmark = now + interval
                wait_for = min(deadline, next_bookmark if bookmarks else deadline) - now
                waiters = [
                    asyncio.ensure_future(wake.wait()),
                    asyncio.ensure_future(self.closed.wait()),
                    asyncio.ensure_future(shutdown.wait()),
                ]
                try:
                    await asyncio.wait(
                        waiters, timeout=max(wait_for, 0.001), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for w in waiters:
                        w.cancel()

    def _event_line(self, kind: str, entry: Entry, prev: Entry | None) -> bytes:
        now_match = self._matches(entry)
        if kind == MODIFIED:
            was = self._matches(prev) if prev is not None else now_match
            if now_match and was:
                return self._line(MODIFIED, entry)
            if now_match:
                return self._line(ADDED, entry)
            if was:
                return self._line(DELETED, entry)
            return b""
        if kind in (ADDED, DELETED):
            return self._line(kind, entry) if now_match else b""
        return b""
