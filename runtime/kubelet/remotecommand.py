"""Kubernetes' remotecommand channel protocol over WebSocket, the kubelet side of
``kubectl exec``.

Who calls it: the kubelet's HTTPS endpoint (:mod:`runtime.kubelet.server`) parses the
request with :func:`parse_exec_request`, picks the subprotocol with :func:`negotiate`,
upgrades, and hands the WebSocket and the :class:`~runtime.kubelet.cri.ExecSession` to
:func:`serve`. The pure helpers (framing, statuses, resize decoding) are tested alone.

The protocol (semantics of Kubernetes' ``wsstream`` and the kubelet's remotecommand
server; no code of theirs is used): every message is binary and starts with a channel
byte — 0 stdin (client to server), 1 stdout, 2 stderr, 3 error/status (server to
client), 4 terminal resize (client to server, JSON ``{"Width": 80, "Height": 24}``; a
stream of such objects, keys in any case, sizes below 1 ignored). Text frames are
treated as their UTF-8 bytes, as upstream does: the Python client writes str data as
text frames (the ``base64.channel.k8s.io`` variants are not offered, so nothing is
base64). Supported subprotocols: ``v5.channel.k8s.io``, ``v4.channel.k8s.io``,
``v3.channel.k8s.io``, ``v2.channel.k8s.io`` and ``channel.k8s.io`` (also what a client
offering none gets); the first of the client's list that is supported wins.

* Right after the upgrade, one empty message on the lowest output channel asked for
  (stdout, else stderr, else the status channel) tells the client the stream is up.
* v4 and v5 end with a JSON ``metav1.Status`` on channel 3: Success, or Failure with
  reason ``NonZeroExitCode`` and the exit code as the ``ExitCode`` cause; v1 to v3 send
  only the message text of a failure.
* v5 adds the close signal: ``[255, channel]``; ``[255, 0]`` closes the command's stdin.
  v1 to v4 clients cannot close stdin short of closing the WebSocket.
* After the command exits: its remaining output, the status, then a normal closure.
  When the client goes away first, the session is closed: the engine CLI is killed (as
  containerd kills the exec'd process when the request ends). The engines cannot kill
  an exec'd process from outside, so the command gets end of file on stdin (or a hang-up
  of its terminal) but one that reads neither runs on in the container until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from runtime.kubelet.cri import ExecSession

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
PROTOCOLS = (V5, V4, V3, V2, V1)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: [255, channel] closes that channel


class ExecRequestError(ValueError):
    """The exec request is malformed (HTTP 400 before any upgrade)."""


@dataclass(frozen=True)
class ExecRequest:
    """What the client asked: the command and the streams it wants."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    attach: bool = False  # attach to the container's own process (no command)


def _flag(name: str, values: Sequence[str]) -> bool:
    value = values[-1] if values else ""
    if value in ("", "0", "false", "False"):
        return False
    if value in ("1", "true", "True"):
        return True
    raise ExecRequestError(f"invalid value {value!r} for {name}: use 1, 0, true or false")


def parse_exec_request(query: Iterable[tuple[str, str]], *, attach: bool = False) -> ExecRequest:
    """The request from the query string's (name, value) pairs (``command`` repeated;
    none for ``attach``). With a tty stderr is dropped (a terminal merges it into
    stdout), as the kubelet does."""
    params: dict[str, list[str]] = {}
    for key, value in query:
        params.setdefault(key, []).append(value)
    command = () if attach else tuple(params.get("command", ()))
    if not command and not attach:
        raise ExecRequestError("you must specify at least one command for the container")
    stdin, stdout, stderr, tty = (
        _flag(name, params.get(name, ())) for name in ("stdin", "stdout", "stderr", "tty")
    )
    if tty:
        stderr = False
    if not (stdin or stdout or stderr):
        raise ExecRequestError("you must specify at least 1 of stdin, stdout, stderr")
    return ExecRequest(command, stdin, stdout, stderr, tty, attach)


def offered_protocols(header: str) -> list[str]:
    """The subprotocols of a ``Sec-WebSocket-Protocol`` header, in the client's order."""
    return [p.strip() for p in header.split(",") if p.strip()]


def negotiate(offered: Sequence[str]) -> str | None:
    """The first offered subprotocol this server speaks; ``channel.k8s.io`` when the
    client offers none; None when it offers only others (the upgrade is refused)."""
    if not offered:
        return V1
    return next((p for p in offered if p in PROTOCOLS), None)


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(command: Sequence[str], code: int) -> dict[str, Any]:
    """The Failure a non-zero exit becomes (the kubelet's words, with the command as
    Go prints a string slice)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> dict[str, Any]:
    """The Failure when the command could not be run at all."""
    text = f"error executing command in container: {message}"
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {text}",
        "reason": "InternalError",
        "details": {"causes": [{"message": text}]},
        "code": 500,
    }


def status_payload(protocol: str, status: dict[str, Any]) -> bytes | None:
    """What goes on channel 3 at the end: the Status JSON (v4, v5), or only a failure's
    message (v1 to v3); None when nothing is sent."""
    if protocol in (V4, V5):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return None
    return str(status.get("message", "")).encode()


class ResizeDecoder:
    """Turns the resize channel's bytes into (width, height) pairs: a stream of JSON
    objects that may be split across or packed into messages, field names matched
    without regard to case (as Go's encoding/json does). After a malformed object the
    channel is ignored, as the kubelet stops reading it."""

    def __init__(self) -> None:
        self._buffer = ""
        self._broken = False
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        if self._broken:
            return []
        self._buffer += data.decode(errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return sizes
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if text.startswith("{") and "}" not in text:
                    self._buffer = text  # an object split across messages
                    return sizes
                self._broken = True
                self._buffer = ""
                return sizes
            self._buffer = text[end:]
            size = _size(value)
            if size is None:
                self._broken = True
                self._buffer = ""
                return sizes
            if size[0] >= 1 and size[1] >= 1:
                sizes.append(size)


def _size(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, dict):
        return None
    fields = {str(k).lower(): v for k, v in value.items()}
    width, height = fields.get("width", 0), fields.get("height", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        return None
    if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
        return None
    return width, height


async def _pump_input(
    ws: web.WebSocketResponse, session: ExecSession, protocol: str, request: ExecRequest
) -> None:
    """Client to command: stdin, resizes and (v5) the close signal. Returns when the
    client closes the WebSocket or goes away."""
    resize = ResizeDecoder()
    async for message in ws:
        if message.type is WSMsgType.BINARY:
            data = bytes(message.data)
        elif message.type is WSMsgType.TEXT:
            data = str(message.data).encode()
        else:  # ERROR; CLOSE and CLOSED end the iteration
            break
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if protocol == V5 and channel == CLOSE:
            if payload == bytes((STDIN,)):
                await session.close_stdin()
        elif channel == STDIN and request.stdin:
            await session.write_stdin(payload)
        elif channel == RESIZE and request.tty:
            for width, height in resize.feed(payload):
                await session.resize(width, height)
        # anything else is for a channel the client cannot write: ignored, as upstream


async def serve(
    ws: web.WebSocketResponse,
    session: ExecSession,
    protocol: str,
    request: ExecRequest,
) -> None:
    """Run one exec over an upgraded WebSocket until the command exits (then send its
    status and close normally) or the client goes away (then kill it). Closes both."""
    client_gone = False

    async def input_side() -> None:
        nonlocal client_gone
        try:
            await _pump_input(ws, session, protocol, request)
        finally:
            client_gone = True
            await session.close()  # ends the output side's read()

    reader = asyncio.create_task(input_side())
    try:
        while (chunk := await session.read()) is not None:
            channel, data = chunk
            if (channel == STDOUT and request.stdout) or (channel == STDERR and request.stderr):
                await ws.send_bytes(frame(channel, data))
        code = await session.wait()
        if not client_gone:
            command = request.command
            # An attach ends when the container's streams do: success, whatever its exit.
            ok = code == 0 or request.attach
            status = success_status() if ok else exit_code_status(command, code)
            payload = status_payload(protocol, status)
            if payload is not None:
                await ws.send_bytes(frame(ERROR, payload))
    except ConnectionResetError:  # the client went away mid-send
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await session.close()
        await ws.close()


async def send_opening(ws: web.WebSocketResponse, request: ExecRequest) -> None:
    """The empty message on the lowest output channel that says the stream is up."""
    channel = STDOUT if request.stdout else STDERR if request.stderr else ERROR
    await ws.send_bytes(frame(channel))


async def send_failure(ws: web.WebSocketResponse, protocol: str, message: str) -> None:
    """The command could not start: an InternalError status, then a normal closure."""
    payload = status_payload(protocol, internal_error_status(message))
    with contextlib.suppress(ConnectionResetError):
        if payload is not None:
            await ws.send_bytes(frame(ERROR, payload))
    await ws.close()
