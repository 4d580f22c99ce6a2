"""HTTP/1.1 exchanges between the ingress router and a backend pod: one request written
out, the response's head and body read back as they arrive, and the connection kept
for the next request when both sides allow it. Called by
:class:`runtime.network.ingress.IngressRouter` for every request that is not a
WebSocket upgrade (those go through aiohttp's client).

Why not aiohttp's client here: the router's own cost per request decides the ingress
throughput (bench/network_bench.py), and aiohttp's client request machinery (request
and response objects, tracing, cookie and redirect handling, timeouts, happy-eyeballs
connects) was half of the router's time in a profile. This is a plain asyncio protocol
on the event loop's transport with ``httptools`` (llhttp, the parser of Node.js) parsing
the response, which is all a reverse proxy needs:

* the request head is written as given (hop-by-hop headers already removed by the
  caller), the body streamed with its Content-Length or chunked when it has none;
* the response head is parsed into status, reason and headers; informational (1xx)
  responses are skipped; the body is delivered in the chunks the parser produces, with
  reading paused while more than :data:`HIGH_WATER` bytes wait for the client;
* a body delimited by the connection closing ends at EOF; a body cut short (fewer
  bytes than its Content-Length, an unfinished chunked body) is an error;
* a HEAD request's response has no body whatever its headers say (the connection is
  not reused);
* idle connections are pooled per backend address (up to :data:`MAX_IDLE` each) and
  checked on reuse; a reused connection that fails before any response byte arrives is
  retried once on a fresh connection when the request had no body to replay.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict

#: Response bytes buffered for a slow client before the backend is no longer read.
HIGH_WATER = 256 * 1024
#: Idle connections kept per backend address.
MAX_IDLE = 32


class UpstreamError(Exception):
    """The exchange failed. ``connect`` says whether no connection could be made (the
    caller may try another endpoint); otherwise the backend broke off or sent something
    that is not HTTP."""

    def __init__(self, message: str, *, connect: bool = False) -> None:
        super().__init__(message)
        self.connect = connect


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: str
    headers: CIMultiDict[str]


class Connection(asyncio.Protocol):
    """One backend connection; parses one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # has carried a request before (a pooled connection)
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False
        self._reset()
        self._can_write: asyncio.Future[None] | None = None

    def _reset(self) -> None:
        self._reason = b""
        self._headers: list[tuple[str, str]] = []
        self._head: asyncio.Future[ResponseHead] = asyncio.get_running_loop().create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: UpstreamError | None = None
        self._received_any = False
        self._paused = False
        self._framed = False  # the body has a Content-Length or chunked framing
        self._keep_alive = False  # the finished response lets the connection be reused

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        if self._complete or (self._head_only and self._head.done()):
            return  # bytes after the response (or a HEAD response's stray body): ignored
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the backend switched protocols on a plain request")
        except httptools.HttpParserError as exc:
            self._fail(f"the backend's response is not valid HTTP: {exc}")

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete or self._error is not None:
            self._wake()
            return
        if not self._head.done():
            self._fail(
                f"the backend closed the connection: {exc}"
                if exc
                else "the backend closed the connection"
            )
        elif self._framed or exc is not None:
            # A body with a length or chunked framing that did not finish.
            self._fail("the backend broke off the response body")
        else:  # a body delimited by the connection's end
            self._complete = True
        self._wake()

    def pause_writing(self) -> None:
        if self._can_write is None:
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    # --- httptools callbacks ------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real response follows
            self._reason, self._headers = b"", []
            return
        headers: CIMultiDict[str] = CIMultiDict(self._headers)
        self._framed = "Content-Length" in headers or "chunked" in (
            headers.get("Transfer-Encoding", "").lower()
        )
        self._head.set_result(ResponseHead(status, self._reason.decode("latin-1"), headers))
        if self._head_only:
            self._complete = True
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._head.done():
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()
            self._wake()

    # --- used by the router ---------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self._error = UpstreamError(message)
        if not self._head.done():
            self._head.set_exception(self._error)
            self._head.exception()  # retrieved: the caller may never ask (client gone)
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def start(self, head_only: bool) -> None:
        """Prepare for a new response."""
        self._head_only = head_only
        self._reset()

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("the backend closed the connection")
        self.transport.write(data)
        if self._can_write is not None:
            await self._can_write

    async def head(self) -> ResponseHead:
        return await self._head

    @property
    def complete(self) -> bool:
        """The whole response has arrived (what :meth:`take_all` returns is the body)."""
        return self._complete

    @property
    def received_any(self) -> bool:
        return self._received_any

    def take_all(self) -> bytes:
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; raises :class:`UpstreamError` when the
        backend breaks off."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= HIGH_WATER // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
                continue
            if self._complete:
                return
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    @property
    def reusable(self) -> bool:
        return (
            self._complete
            and not self.closed
            and not self._head_only
            and not self._chunks
            and self._keep_alive
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


def _request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Upstreams:
    """Connections to backends, pooled by address."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def _connect(self, address: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(Connection, address, port), self.connect_timeout
            )
        except TimeoutError as exc:
            raise UpstreamError(
                f"connect timed out after {self.connect_timeout} s", connect=True
            ) from exc
        except OSError as exc:
            raise UpstreamError(str(exc), connect=True) from exc
        return conn

    def _take_idle(self, key: tuple[str, int]) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, key: tuple[str, int], conn: Connection) -> None:
        """Return ``conn`` after its response was read to the end (closed if it cannot
        carry another request)."""
        if not conn.reusable:
            conn.close()
            return
        conn.used = True
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE:
            conn.close()
        else:
            idle.append(conn)

    async def send(
        self,
        address: str,
        port: int,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: AsyncIterator[bytes] | None,
    ) -> tuple[Connection, ResponseHead]:
        """Send the request and wait for the response head: the connection (to read the
        body from and then :meth:`release`) and the head."""
        key = (address, port)
        head_only = method == "HEAD"
        if body is not None and "Content-Length" not in headers:
            headers = headers.copy()
            headers["Transfer-Encoding"] = "chunked"
        chunked = body is not None and "Content-Length" not in headers
        data = _request_head(method, target, headers.items())
        for _ in range(2):
            conn = self._take_idle(key) or await self._connect(address, port)
            conn.start(head_only)
            try:
                await conn.write(data)
                if body is not None:
                    async for chunk in body:
                        if chunk:
                            await conn.write(
                                b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
                            )
                    if chunked:
                        await conn.write(b"0\r\n\r\n")
                return conn, await conn.head()
            except UpstreamError:
                conn.close()
                # A pooled connection the backend closed meanwhile: once more, fresh.
                if conn.used and not conn.received_any and body is None:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
