"""The ingress router's backend exchanges (runtime.network.upstream) against raw TCP
servers on loopback that answer with exactly the bytes each test needs: framing by
Content-Length, chunks and the connection's end; informational responses; HEAD; bodies
cut short; request bodies chunked; pooled connections reused, and retried when the
backend closed them meanwhile; a refused connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
from multidict import CIMultiDict

from runtime.network.upstream import HIGH_WATER, UpstreamError, Upstreams

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request head and its body (by Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
    if any(x.startswith(b"transfer-encoding: chunked") for x in lines):
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    return head, await reader.readexactly(length)


def headers(**extra: str) -> CIMultiDict[str]:
    return CIMultiDict({"Host": "backend", **extra})


async def exchange(
    upstreams: Upstreams,
    port: int,
    method: str = "GET",
    body: AsyncIterator[bytes] | None = None,
    **extra: str,
) -> tuple[int, str, bytes]:
    conn, head = await upstreams.send("127.0.0.1", port, method, "/x?y=1", headers(**extra), body)
    data = b"".join([chunk async for chunk in conn.body()])
    upstreams.release(("127.0.0.1", port), conn)
    return head.status, head.headers.get("X-Id", ""), data


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


def test_a_response_framed_by_content_length_keeps_its_connection_for_the_next_request() -> None:
    peers: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        for n in range(2):
            head, _ = await read_request(reader)
            assert head.startswith(b"GET /x?y=1 HTTP/1.1\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nX-Id: %d\r\nContent-Length: 5\r\n\r\nhello" % n)
        writer.close()

    async def main() -> None:
        server, port = await serve(handler)
        upstreams = Upstreams(2.0)
        assert await exchange(upstreams, port) == (200, "0", b"hello")
        assert await exchange(upstreams, port) == (200, "1", b"hello")
        assert len(peers) == 1
        upstreams.close()
        server.close()

    run(main())


def test_chunked_and_connection_delimited_bodies_are_read_to_their_end() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"abc", b"defg"):
            writer.write(b"%x\r\n%b\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def main() -> None:
        upstreams = Upstreams(2.0)
        for handler, body in ((chunked, b"abcdefg"), (until_close, b"all of it")):
            server, port = await serve(handler)
            assert await exchange(upstreams, port) == (200, "", body)
            server.close()
        upstreams.close()

    run(main())


def test_informational_responses_are_skipped_and_head_responses_have_no_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def main() -> None:
        server, port = await serve(handler)
        upstreams = Upstreams(2.0)
        assert await exchange(upstreams, port) == (201, "", b"ok")
        assert await exchange(upstreams, port, "HEAD") == (200, "", b"")
        upstreams.close()
        server.close()

    run(main())


def test_a_body_cut_short_is_an_error_and_garbage_is_not_http() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        upstreams = Upstreams(2.0)
        server, port = await serve(short)
        with pytest.raises(UpstreamError, match="broke off"):
            await exchange(upstreams, port)
        server.close()
        server, port = await serve(garbage)
        with pytest.raises(UpstreamError, match="not valid HTTP") as caught:
            await exchange(upstreams, port)
        assert not caught.value.connect
        server.close()
        upstreams.close()

    run(main())


def test_a_request_body_without_length_is_sent_chunked_and_one_with_length_as_is() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"", b"two"):
            yield part

    async def main() -> None:
        server, port = await serve(handler)
        upstreams = Upstreams(2.0)
        assert await exchange(upstreams, port, "POST", parts()) == (204, "", b"")
        await exchange(upstreams, port, "PUT", parts(), **{"Content-Length": "7"})
        (head1, body1), (head2, body2) = seen
        assert b"transfer-encoding: chunked" in head1.lower() and body1 == b"one two"
        assert b"transfer-encoding" not in head2.lower() and body2 == b"one two"
        upstreams.close()
        server.close()

    run(main())


def test_a_pooled_connection_the_backend_closed_is_retried_on_a_fresh_one() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # Keep-alive promised, then the connection is dropped once the next request comes.
        await reader.read(1)
        writer.transport.abort()

    async def main() -> None:
        server, port = await serve(handler)
        upstreams = Upstreams(2.0)
        assert await exchange(upstreams, port) == (200, "", b"ok")
        assert await exchange(upstreams, port) == (200, "", b"ok")
        assert connections == 2
        upstreams.close()
        server.close()

    run(main())


def test_a_large_body_is_read_with_backpressure_and_arrives_whole() -> None:
    size = HIGH_WATER * 4

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()

    async def main() -> None:
        server, port = await serve(handler)
        upstreams = Upstreams(2.0)
        conn, head = await upstreams.send("127.0.0.1", port, "GET", "/", headers(), None)
        await asyncio.sleep(0.2)  # let the backend get ahead of us
        received = 0
        async for chunk in conn.body():
            received += len(chunk)
        assert (head.status, received) == (200, size)
        upstreams.release(("127.0.0.1", port), conn)
        upstreams.close()
        server.close()

    run(main())


def test_a_refused_connect_says_so() -> None:
    async def main() -> None:
        async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)

        server, port = await serve(ignore)
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamError) as caught:
            await exchange(Upstreams(2.0), port)
        assert caught.value.connect

    run(main())
