"""``pods/exec`` over WebSocket: the API server's half of ``kubectl exec``.

Who calls it: :class:`runtime.server.app.ApiApp`, for ASGI ``websocket`` scopes on
``pods/{name}/exec`` (kubectl 1.35 offers ``v5.channel.k8s.io`` first, the official Python
client ``v4.channel.k8s.io``) and for plain HTTP requests on ``pods/exec`` (kubectl's SPDY
fallback, which is refused). The channel protocol itself (stdin on channel 0, stdout 1,
stderr 2, the Status on 3, resize 4, v5's close signal 255) is spoken by the pod's kubelet
(``/exec/{namespace}/{pod}/{container}`` in :mod:`runtime.kubelet.server`): the API server
validates the request as kube-apiserver does, opens a WebSocket to the kubelet offering
the client's subprotocols, accepts the client's WebSocket with the subprotocol the kubelet
chose, and relays frames verbatim both ways, closing each side when the other closes.

Errors before the handshake completes (no such pod, an ambiguous or unknown container, a
completed pod, no command, an unreachable kubelet) reject the client's handshake with the
HTTP status and a ``Status`` body (uvicorn's ``websocket.http.response`` extension), or,
where that extension is missing, close it with 1008/1011 and the message as reason.

kubectl falls back to SPDY whenever the WebSocket handshake fails, which would hide the
real error behind "only WebSocket is supported"; so the error of a failed WebSocket
attempt that got past validation (the kubelet refused or was unreachable) is remembered
for a few seconds (:class:`RecentFailures`) and answered to the SPDY attempt with the same
query on the same pod that follows it, which kubectl then prints.

``pods/attach`` is validated like ``exec`` (without a command) and relayed to the
kubelet's ``/attach`` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from kubemodel import errors
from kubemodel.errors import ApiError

log = structlog.get_logger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The pod subresources that stream over a WebSocket (only ``exec`` is served).
STREAM_SUBRESOURCES = frozenset({"exec", "attach"})
#: Annotation naming the container kubectl picks when a pod has several.
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
#: The WebSocket extension of uvicorn that lets an app answer a handshake with HTTP.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"
#: Largest frame relayed from the kubelet (uvicorn's own default limit for clients).
MAX_FRAME = 16 * 1024 * 1024
#: How long the error of a failed WebSocket attempt is kept for the SPDY retry.
FAILURE_MEMORY_SECONDS = 15.0
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"", "0", "f", "false"})
# Close codes that may not be sent on the wire (RFC 6455 7.4.1): what to send instead.
_UNSENDABLE_CLOSE = {1005: 1000, 1006: 1001, 1015: 1011}

SPDY_REFUSAL = (
    "pods/exec is served over WebSocket only (v5.channel.k8s.io or v4.channel.k8s.io, which "
    "kubectl 1.30 and later and the official clients speak); the built-in cluster does not "
    "support SPDY"
)


@dataclass(frozen=True)
class StreamQuery:
    """The ``PodExecOptions`` of a request's query string (``command`` may repeat)."""

    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


@dataclass(frozen=True)
class ExecTarget:
    """A validated exec request: where it runs and with which streams."""

    namespace: str
    pod: str
    container: str
    node_name: str
    query: StreamQuery
    sub: str = "exec"  # or "attach"

    def kubelet_path(self) -> str:
        """The kubelet's ``/exec`` (or ``/attach``) path with its query (flags as
        ``1``/``0``)."""
        q = self.query
        params: list[tuple[str, str]] = [("command", c) for c in q.command]
        for flag, value in (
            ("stdin", q.stdin),
            ("stdout", q.stdout),
            ("stderr", q.stderr),
            ("tty", q.tty),
        ):
            params.append((flag, "1" if value else "0"))
        parts = (self.namespace, self.pod, self.container)
        path = "/".join(urllib.parse.quote(p, safe="") for p in parts)
        return f"/{self.sub}/{path}?{urllib.parse.urlencode(params)}"


@dataclass(frozen=True)
class KubeletEndpoint:
    """How to reach one node's kubelet (as ``pods/log`` does)."""

    node_name: str
    base: str  # https://host:port
    ssl: ssl.SSLContext
    token: str


def _flag(values: dict[str, list[str]], name: str) -> bool:
    raw = (values.get(name) or [""])[-1].strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise errors.bad_request(f"{name} must be true or false, not {raw!r}")


def parse_stream_query(raw: bytes) -> StreamQuery:
    """The exec options of a raw query string; 400 on a flag that is not a boolean."""
    values = urllib.parse.parse_qs(raw.decode("latin-1"), keep_blank_values=True)
    return StreamQuery(
        container=(values.get("container") or [""])[-1],
        command=tuple(values.get("command") or ()),
        stdin=_flag(values, "stdin"),
        stdout=_flag(values, "stdout"),
        stderr=_flag(values, "stderr"),
        tty=_flag(values, "tty"),
    )


def _names(spec: dict[str, Any], key: str) -> list[str]:
    return [str(c.get("name")) for c in spec.get(key) or []]


def choose_container(pod: dict[str, Any], name: str, requested: str) -> str:
    """The container a log or exec request means, as kube-apiserver decides: the one
    asked for if the pod has it (init and ephemeral containers included), else the only
    container, else the one named by the ``kubectl.kubernetes.io/default-container``
    annotation; 400 otherwise, naming the choices."""
    spec = pod.get("spec") or {}
    names = _names(spec, "containers")
    init_names = _names(spec, "initContainers")
    if requested:
        if requested not in (*names, *init_names, *_names(spec, "ephemeralContainers")):
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    default = str(annotations.get(DEFAULT_CONTAINER_ANNOTATION) or "")
    if default and default in names:
        return default
    if not names:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    message = (
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )
    if init_names:
        message += f" or one of the init containers: [{' '.join(init_names)}]"
    raise errors.bad_request(message)


def exec_target(
    pod: dict[str, Any], namespace: str, name: str, sub: str, query: StreamQuery
) -> ExecTarget:
    """Validate an exec (or attach) request against its pod; :class:`ApiError` (400)
    with kube-apiserver's and kubectl's messages when it cannot run."""
    phase = str((pod.get("status") or {}).get("phase") or "")
    if phase in ("Succeeded", "Failed"):
        verb = "exec into" if sub == "exec" else "attach to"
        raise errors.bad_request(
            f"cannot {verb} a container in a completed pod; current phase is {phase}"
        )
    container = choose_container(pod, name, query.container)
    node_name = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    if sub == "exec" and not query.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (query.stdin or query.stdout or query.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return ExecTarget(namespace, name, container, node_name, query, sub)


#: (namespace, pod, subresource, raw query): kubectl's SPDY retry repeats the query.
FailureKey = tuple[str, str, str, bytes]


class RecentFailures:
    """Errors of WebSocket attempts that passed validation but failed at the kubelet,
    kept briefly per request for kubectl's SPDY retry of the same request."""

    def __init__(self, ttl: float = FAILURE_MEMORY_SECONDS, limit: int = 256) -> None:
        self._ttl = ttl
        self._limit = limit
        self._errors: dict[FailureKey, tuple[float, ApiError]] = {}

    def remember(self, key: FailureKey, error: ApiError) -> None:
        now = time.monotonic()
        self._errors = {k: v for k, v in self._errors.items() if now - v[0] < self._ttl}
        if len(self._errors) >= self._limit:
            self._errors.pop(next(iter(self._errors)))
        self._errors[key] = (now, error)

    def take(self, key: FailureKey) -> ApiError | None:
        found = self._errors.pop(key, None)
        if found is None or time.monotonic() - found[0] >= self._ttl:
            return None
        return found[1]


def kubelet_error(node_name: str, status: int, text: str) -> ApiError:
    """The API error for a kubelet's refusal (as ``pods/log`` reports it): its 4xx
    answers are the client's fault (400), anything else the cluster's (500)."""
    text = text.strip() or f"the kubelet of node {node_name!r} answered {status}"
    if status < 500 and status not in (401, 403):
        return ApiError(400, "BadRequest", text)
    return ApiError(500, "InternalError", text)


def kubelet_unreachable(node_name: str, exc: BaseException) -> ApiError:
    """503 for a kubelet that cannot be reached (a refused connection names the address,
    not aiohttp's connection key)."""
    cause = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = f"{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    return errors.unavailable(f"cannot reach the kubelet of node {node_name!r}: {cause}")


@dataclass
class KubeletStream:
    """An open WebSocket to a kubelet (close with :meth:`close`)."""

    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse

    @property
    def protocol(self) -> str | None:
        return self.ws.protocol

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.session.close()


async def open_kubelet(
    endpoint: KubeletEndpoint, target: ExecTarget, subprotocols: list[str]
) -> KubeletStream:
    """Open the kubelet's exec WebSocket, offering ``subprotocols``; the kubelet's error
    text (read from its refusal of the handshake) becomes an :class:`ApiError`, an
    unreachable kubelet a 503."""
    refusal: list[str] = []

    async def keep_refusal(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status >= 400:
            with contextlib.suppress(Exception):
                body = await asyncio.wait_for(response.read(), 10)
                refusal.append(body.decode(errors="replace"))
        return response

    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        middlewares=(keep_refusal,),
    )
    try:
        ws = await session.ws_connect(
            endpoint.base + target.kubelet_path(),
            protocols=subprotocols,
            ssl=endpoint.ssl,
            headers={"Authorization": f"Bearer {endpoint.token}"},
            max_msg_size=MAX_FRAME,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        if exc.status == 101:
            message = f"the kubelet's WebSocket handshake failed: {exc.message}"
            raise errors.internal(message) from exc
        raise kubelet_error(endpoint.node_name, exc.status, "".join(refusal)) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        await session.close()
        raise kubelet_unreachable(endpoint.node_name, exc) from exc
    return KubeletStream(session, ws)


async def reject(scope: MutableMapping[str, Any], send: Send, error: ApiError) -> None:
    """Refuse a WebSocket handshake: the HTTP status and the ``Status`` as JSON where
    the server lets the app answer with HTTP, else a close with 1008 (the client's
    fault) or 1011 (the server's) and the message as reason."""
    if HTTP_RESPONSE_EXTENSION in (scope.get("extensions") or {}):
        body = orjson.dumps(error.status())
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-cache, private"),
            (b"content-length", str(len(body)).encode()),
        ]
        if error.retry_after:
            headers.append((b"retry-after", str(error.retry_after).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": error.code, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    reason = error.message.encode()[:123].decode(errors="ignore")
    code = 1008 if error.code < 500 else 1011
    await send({"type": "websocket.close", "code": code, "reason": reason})


def _sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _UNSENDABLE_CLOSE.get(code, code)


async def relay(receive: Receive, send: Send, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay an accepted client WebSocket and the kubelet's until either closes; the
    close (code and reason) is passed on to the other side."""
    client_gone = asyncio.Event()

    async def from_client() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if message.get("bytes") is not None:
                    await upstream.send_bytes(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send_str(message["text"])
            elif kind == "websocket.disconnect":
                client_gone.set()
                reason = str(message.get("reason") or "").encode()
                await upstream.close(code=_sendable(message.get("code")), message=reason)
                return

    async def from_kubelet() -> None:
        reason = ""
        while True:
            message = await upstream.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": message.data})
            elif message.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": message.data})
            elif message.type == aiohttp.WSMsgType.CLOSE:
                reason = str(message.extra or "")
                break
            elif message.type == aiohttp.WSMsgType.ERROR:
                log.info("exec.kubelet_error", error=str(message.data))
                break
            else:  # CLOSING / CLOSED: our own close, on the client's behalf
                break
        if client_gone.is_set():
            return
        code = upstream.close_code if upstream.close_code is not None else 1011
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": _sendable(code), "reason": reason})

    to_kubelet = asyncio.ensure_future(from_client())
    to_client = asyncio.ensure_future(from_kubelet())
    try:
        await asyncio.wait((to_kubelet, to_client), return_when=asyncio.FIRST_COMPLETED)
        if client_gone.is_set():  # let the close handshake with the kubelet finish
            await asyncio.wait((to_kubelet,), timeout=15)
        for task in (to_kubelet, to_client):
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.info("exec.relay_ended", error=repr(task.exception()))
    finally:
        for task in (to_kubelet, to_client):
            task.cancel()
        await asyncio.gather(to_kubelet, to_client, return_exceptions=True)
