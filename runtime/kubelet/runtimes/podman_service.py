"""A private ``podman system service`` and an HTTP client for its libpod API.

Starting the podman binary costs tens of milliseconds of CPU per command before it does
anything (Go runtime, configuration, database); a pod start needs half a dozen
commands, and the kubelet's relist two more per second. On a small machine that
overhead alone made pod startup twice as slow as ``podman kube play``. So the podman
runtime keeps one podman process running — ``podman system service`` on a Unix socket
in a private directory — and talks to it over HTTP (libpod API v4), which is what the
podman CLI itself does in remote mode.

:class:`PodmanService` starts the service on first use with the runtime's global flags
and ``CONTAINERS_CONF``, asks the kernel to stop it when the kubelet process dies
(``PR_SET_PDEATHSIG``), restarts it once if it went away, and stops it in
:meth:`PodmanService.close`. Containers outlive the service (each has its own conmon).

:func:`api_error` maps a failed call to the :mod:`runtime.kubelet.cri` error that
describes it, with the same rules as failed CLI commands.

Who calls it: :class:`runtime.kubelet.runtimes.podman.PodmanRuntime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp

from runtime.kubelet.cri import RuntimeError_

API = "http://podman/v4.0.0/libpod"
#: The service exits after this many idle seconds (the kubelet's relist keeps it busy;
#: a service orphaned by a killed kubelet goes away by itself). A call after an idle
#: exit starts it again.
IDLE_EXIT = 60
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ApiCallFailed(Exception):
    """A libpod API call answered with an error status."""

    def __init__(self, status: int, message: str, what: str) -> None:
        super().__init__(f"{what}: podman API answered {status}: {message}")
        self.status = status
        self.message = message
        self.what = what


class PodmanService:
    """One ``podman system service`` process owned by this runtime, and a client for it."""

    def __init__(
        self,
        global_args: Sequence[str],
        env: Mapping[str, str],
        *,
        start_timeout: float = 20.0,
        request_timeout: float = 120.0,
    ) -> None:
        self.global_args = list(global_args)
        self.env = dict(env)
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        # A plain Popen, not an asyncio process: the service outlives event loops (tests
        # and the CLI may use one runtime from several asyncio.run calls).
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket: Path | None = None
        self._log: IO[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def pid(self) -> int | None:
        """The service's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # --- lifecycle ----------------------------------------------------------------------
    async def _ensure(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:  # concurrent first calls start one service
            if self._proc is None or self._proc.poll() is not None:
                self._stop_process()
                await self._start()
                if self._session is not None and self._session_loop is loop:
                    await self._session.close()  # it points at the old socket
                self._session = None
            if self._session is None or self._session_loop is not loop or self._session.closed:
                self._session = self._new_session()
                self._session_loop = loop
            return self._session

    def _new_session(self) -> aiohttp.ClientSession:
        assert self._socket is not None
        connector = aiohttp.UnixConnector(path=str(self._socket), limit=64)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout())

    async def _start(self) -> None:
        sock = Path(tempfile.gettempdir()) / f"gitops-podman-{secrets.token_hex(6)}.sock"
        # Output goes to an anonymous file: read on a failed start, gone with us.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (held while the service runs)
        try:
            self._proc = subprocess.Popen(
                [*self.global_args, "system", "service", f"--time={IDLE_EXIT}", f"unix://{sock}"],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=self.env,
                cwd=tempfile.gettempdir(),
                preexec_fn=_die_with_parent,
                start_new_session=True,  # a Ctrl-C meant for us is not for it
            )
        except FileNotFoundError as exc:
            raise RuntimeError_(
                f"{self.global_args[0]} is not installed (scripts/engines.sh ensure_podman)",
                retryable=False,
            ) from exc
        self._socket = sock
        deadline = time.monotonic() + self.start_timeout
        async with self._new_session() as session:
            while self._proc.poll() is None and time.monotonic() < deadline:
                if sock.exists():
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with session.get(f"{API}/_ping") as response:
                            if response.status == 200:
                                return
                await asyncio.sleep(0.02)
        self._log.seek(0)
        output = self._log.read()[-2000:].decode(errors="replace")
        self._stop_process()
        raise RuntimeError_(
            f"podman system service did not start within {self.start_timeout:g} s: "
            f"{output.strip() or 'no output'}",
            retryable=True,
        )

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # podman removes its socket on SIGTERM
            try:
                proc.wait(10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._socket is not None:
            self._socket.unlink(missing_ok=True)
            self._socket = None
        if self._log is not None:
            self._log.close()
            self._log = None

    async def close(self) -> None:
        """Stop the service (idempotent; containers keep running)."""
        session, self._session = self._session, None
        if session is not None and self._session_loop is asyncio.get_running_loop():
            await session.close()
        self._session_loop = None
        self._stop_process()

    # --- calls ----------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> Any:
        """Call the API; the decoded JSON answer (None when empty). Raises
        :class:`ApiCallFailed` for an error status not in ``ok_statuses``."""
        for attempt in (1, 2):
            session = await self._ensure()
            try:
                async with session.request(
                    method,
                    f"{API}{path}",
                    params=params,
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout or self.request_timeout),
                ) as response:
                    raw = await response.read()
                    if response.status >= 400 and response.status not in ok_statuses:
                        raise ApiCallFailed(response.status, _message(raw), what)
                    if not raw.strip():
                        return None
                    try:
                        return json.loads(raw)
                    except json.JSONDecodeError:
                        return raw.decode(errors="replace")
            except aiohttp.ClientConnectorError as exc:
                # The request never reached podman: start it again and retry once.
                if attempt == 2:
                    raise RuntimeError_(f"{what}: podman service unreachable: {exc}") from exc
                self._stop_process()
            except TimeoutError as exc:
                raise RuntimeError_(
                    f"{what}: podman did not answer in time", retryable=True
                ) from exc
            except aiohttp.ClientError as exc:
                raise RuntimeError_(f"{what}: podman API call failed: {exc}") from exc
        raise AssertionError("unreachable")


def _message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace").strip() or "no message"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("cause") or data)
    return str(data)


def label_filter(labels: Mapping[str, str]) -> str:
    """The ``filters`` query parameter selecting containers by all of ``labels``."""
    return json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
