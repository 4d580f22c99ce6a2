"""Interactive commands in containers through an engine CLI (``podman exec`` or
``docker exec``): the :class:`~runtime.kubelet.cri.ExecSession` of the podman and docker
runtimes.

Who calls it: :meth:`PodmanRuntime.exec_session` and :meth:`DockerRuntime.exec_session`
(:mod:`runtime.kubelet.runtimes`), which build the engine's argv with :func:`exec_args`
and start it with :func:`start_cli_exec`; the kubelet's exec endpoint
(:mod:`runtime.kubelet.remotecommand`) then drives the session.

Without a tty the CLI's stdin (with ``--interactive`` when stdin is wanted), stdout and
stderr are pipes. With a tty the CLI gets a pseudo-terminal made here (``pty.openpty``,
switched to raw mode so bytes pass unchanged) as its stdin, stdout and stderr, and
``--tty``: the engine gives the command a terminal of its own in the container, and the
CLI forwards our terminal's size to it. :meth:`CliExecSession.resize` sets the window
size of our pty (TIOCSWINSZ) and sends SIGWINCH to the CLI, which is how both CLIs learn
that the size changed (the CLI runs in a session of its own without a controlling
terminal, so the kernel would not signal it). Closing stdin in tty mode sends EOT (^D),
which the container's terminal turns into end of file for a reading command.

The end of the output is end of file on every stream, or, because an engine may leave a
helper process (conmon) holding the CLI's stdout, the CLI's exit followed by
``OUTPUT_GRACE`` seconds without output.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import tempfile
import termios
import tty
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.kubelet.cri import (
    STDERR,
    STDOUT,
    ExecOptions,
    InvalidConfig,
    RuntimeError_,
)

READ_SIZE = 32 * 1024
OUTPUT_GRACE = 0.5  # seconds without output after the CLI exited: the output has ended
EOT = b"\x04"


def exec_args(container_id: str, command: Sequence[str], options: ExecOptions) -> list[str]:
    """The engine CLI arguments (after the binary and global flags) for one exec; both
    podman and docker take these."""
    flags = ["--interactive"] if options.stdin else []
    if options.tty:
        flags.append("--tty")
    return ["exec", *flags, container_id, *command]


@dataclass
class _Source:
    """One output stream: its channel and how to read its next chunk (b"" at its end)."""

    channel: int
    read_chunk: Callable[[], Awaitable[bytes]]
    pending: asyncio.Task[bytes] | None = None


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: None if ready.done() else ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, lambda: None if ready.done() else ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(fd)


def _pty_reader(fd: int) -> Callable[[], Awaitable[bytes]]:
    async def read_chunk() -> bytes:
        while True:
            try:
                return os.read(fd, READ_SIZE)
            except BlockingIOError:
                await _readable(fd)
            except OSError:  # EIO: every slave descriptor is closed (the CLI exited)
                return b""

    return read_chunk


def _stream_reader(stream: asyncio.StreamReader) -> Callable[[], Awaitable[bytes]]:
    async def read_chunk() -> bytes:
        return await stream.read(READ_SIZE)

    return read_chunk


class CliExecSession:
    """A running ``<engine> exec`` (see the module docstring); made by
    :func:`start_cli_exec`."""

    def __init__(
        self, proc: asyncio.subprocess.Process, options: ExecOptions, master: int | None
    ) -> None:
        self._proc = proc
        self._options = options
        self._master = master
        self._exited: asyncio.Task[int] = asyncio.ensure_future(proc.wait())
        self._stdin_open = options.stdin
        self._closed = False
        if master is not None:
            self._sources = [_Source(STDOUT, _pty_reader(master))]
        else:
            assert proc.stdout is not None and proc.stderr is not None
            self._sources = [
                _Source(STDOUT, _stream_reader(proc.stdout)),
                _Source(STDERR, _stream_reader(proc.stderr)),
            ]

    async def write_stdin(self, data: bytes) -> None:
        if not self._stdin_open or not data:
            return
        if self._master is not None:
            await self._write_pty(data)
            return
        stdin = self._proc.stdin
        if stdin is None:
            return
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            self._stdin_open = False  # the command stopped reading: like a closed pipe

    async def _write_pty(self, data: bytes) -> None:
        assert self._master is not None
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                await _writable(self._master)
                continue
            except OSError:
                self._stdin_open = False
                return
            view = view[written:]

    async def close_stdin(self) -> None:
        if not self._stdin_open:
            return
        if self._master is not None:
            await self._write_pty(EOT)
        elif self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        self._stdin_open = False

    async def read(self) -> tuple[int, bytes] | None:
        while self._sources and not self._closed:
            for source in self._sources:
                if source.pending is None:
                    source.pending = asyncio.ensure_future(source.read_chunk())
            waiting: list[asyncio.Future[Any]] = [s.pending for s in self._sources if s.pending]
            running = not self._exited.done()
            if running:
                waiting.append(self._exited)
            done, _ = await asyncio.wait(
                waiting,
                timeout=None if running else OUTPUT_GRACE,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:  # exited, and what still holds the output stays silent
                self._drop_sources()
                return None
            for source in list(self._sources):
                task = source.pending
                if task is None or not task.done():
                    continue
                source.pending = None
                data = b"" if task.cancelled() or task.exception() else task.result()
                if not data:
                    self._sources.remove(source)
                    continue
                return source.channel, data
        self._drop_sources()
        return None

    def _drop_sources(self) -> None:
        for source in self._sources:
            if source.pending is not None:
                source.pending.cancel()
        self._sources = []

    async def resize(self, width: int, height: int) -> None:
        if self._master is None or width < 1 or height < 1:
            return
        size = struct.pack("HHHH", min(height, 0xFFFF), min(width, 0xFFFF), 0, 0)
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, size)
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGWINCH)

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_sources()
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        with contextlib.suppress(Exception):
            await self._exited
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self._master is not None:
            os.close(self._master)
            self._master = None


def attach_args(container_id: str, options: ExecOptions) -> list[str]:
    """The engine CLI arguments for attaching to a container (both podman and docker):
    signals are not proxied (the session's end must only detach), stdin only when asked.
    A terminal needs no flag: the CLI follows the container's own ``tty``."""
    flags = ["--sig-proxy=false"] + ([] if options.stdin else ["--no-stdin"])
    return ["attach", *flags, container_id]


async def open_cli_attach(
    cli: Sequence[str], container_id: str, options: ExecOptions, env: Mapping[str, str]
) -> CliExecSession:
    """The podman and docker runtimes' ``attach_session``: ``cli`` (the engine binary and
    its global flags) with :func:`attach_args`. The caller has seen the container running
    in the node's listing; if it stopped since, the engine's error is the session's
    output and exit code."""
    return await start_cli_exec([*cli, *attach_args(container_id, options)], env, options)


async def open_cli_exec(
    cli: Sequence[str],
    container_id: str,
    command: Sequence[str],
    options: ExecOptions,
    env: Mapping[str, str],
) -> CliExecSession:
    """The podman and docker runtimes' ``exec_session``: refuse an empty command, then
    start ``cli`` with :func:`exec_args` (a container that stopped meanwhile: as
    :func:`open_cli_attach`)."""
    if not command:
        raise InvalidConfig("exec needs a command")
    return await start_cli_exec([*cli, *exec_args(container_id, command, options)], env, options)


async def start_cli_exec(
    argv: Sequence[str], env: Mapping[str, str], options: ExecOptions
) -> CliExecSession:
    """Start ``argv`` (an engine's ``exec``, see :func:`exec_args`) as a session."""
    master: int | None = None
    slave: int | None = None
    if options.tty:
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
    stdin = asyncio.subprocess.PIPE if options.stdin else asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=slave if slave is not None else stdin,
            stdout=slave if slave is not None else asyncio.subprocess.PIPE,
            stderr=slave if slave is not None else asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=tempfile.gettempdir(),  # conmon writes files into its working directory
            start_new_session=True,  # no signals from the kubelet's own terminal
        )
    except BaseException as exc:
        if master is not None:
            os.close(master)
        if isinstance(exc, FileNotFoundError):
            raise RuntimeError_(f"{argv[0]} is not installed", retryable=False) from exc
        raise
    finally:
        if slave is not None:
            os.close(slave)  # the CLI holds it now: its exit makes the master read EIO
    return CliExecSession(proc, options, master)
