"""The fake container runtime: no processes, no engine — sandboxes and containers are
records in memory that change state on a clock, like kwok's fake nodes.

Who uses it: unit tests of the kubelet and scale benchmarks with thousands of nodes on
one machine. Behaviour is configurable per runtime (:class:`FakeOptions`: image pull and
start delays, which images exist) and per container through environment variables, so
tests can describe a container's life in its pod spec:

* ``FAKE_RUN_SECONDS``: the container exits after this many seconds (default: runs
  until stopped);
* ``FAKE_EXIT_CODE``: its exit code when it exits on its own (default 0);
* ``FAKE_EXEC_EXIT_CODE``: what ``exec`` (exec probes) returns (default 0), and the
  exit code of an ``exec_session``;
* ``FAKE_EXEC_STDOUT`` / ``FAKE_EXEC_STDERR``: what an ``exec_session`` writes first
  (see :class:`FakeExecSession`: no command runs, whatever the command is);
* ``FAKE_IGNORE_SIGTERM=1``: a stop waits for the whole timeout, as an engine killing a
  container that ignores SIGTERM would;
* ``FAKE_OOM=1``: the exit is reported as ``OOMKilled`` (exit code 137).

Every behaviour is real state kept and reported honestly; nothing pretends to run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace

from kubemodel.images import InvalidImage, normalize_image
from runtime.kubelet.cri import (
    STDERR,
    STDOUT,
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOptions,
    ExecResult,
    ImageNotFound,
    ImagePullFailed,
    InvalidConfig,
    LogOptions,
    NotFound,
    RegistryAuth,
    RuntimeError_,
    SandboxConfig,
    SandboxState,
    SandboxStatus,
)


@dataclass
class FakeOptions:
    pull_seconds: float = 0.0
    start_seconds: float = 0.0
    sandbox_seconds: float = 0.0
    # Images present without a pull; None means every image is present.
    local_images: set[str] | None = None
    # Images a pull can fetch; None means every image can be pulled.
    pullable_images: set[str] | None = None
    clock: Callable[[], float] = time.time
    # Pod IPs come from a /24 per node (like a node's podCIDR): 10.<64 + n/256>.<n%256>.x
    node_index: int = 0


@dataclass
class _Container:
    status: ContainerStatus
    config: ContainerConfig
    log: list[tuple[float, bytes]] = field(default_factory=list)
    exit_task: asyncio.TimerHandle | None = None


class FakeExecSession:
    """What the fake runtime's ``exec_session`` returns; nothing runs. Its output is the
    container's ``FAKE_EXEC_STDOUT`` on stdout, then ``FAKE_EXEC_STDERR`` on stderr (on
    stdout in tty mode, as a terminal merges them); then, when stdin was asked for,
    everything written to stdin comes back on stdout (like ``cat``) until stdin is
    closed. The session then exits with ``FAKE_EXEC_EXIT_CODE`` (default 0); without
    stdin it exits at once. Sizes given to :meth:`resize` in tty mode are recorded in
    ``sizes`` as (width, height); :meth:`close` before the exit ends it with 137, as a
    kill would."""

    def __init__(
        self, command: tuple[str, ...], options: ExecOptions, env: Mapping[str, str]
    ) -> None:
        self.command = command
        self.options = options
        self.sizes: list[tuple[int, int]] = []
        self.closed = False
        self._code = int(env.get("FAKE_EXEC_EXIT_CODE", "0"))
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stdout = env.get("FAKE_EXEC_STDOUT", "").encode()
        stderr = env.get("FAKE_EXEC_STDERR", "").encode()
        if stdout:
            self._output.put_nowait((STDOUT, stdout))
        if stderr:
            self._output.put_nowait((STDOUT if options.tty else STDERR, stderr))
        self._stdin_open = options.stdin
        if not options.stdin:
            self._finish(self._code)

    def _finish(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)
            self._output.put_nowait(None)

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_open and data:
            self._output.put_nowait((STDOUT, data))

    async def close_stdin(self) -> None:
        if self._stdin_open:
            self._stdin_open = False
            self._finish(self._code)

    async def read(self) -> tuple[int, bytes] | None:
        if self._exit.done() and self._output.empty():
            return None
        return await self._output.get()

    async def resize(self, width: int, height: int) -> None:
        if self.options.tty:
            self.sizes.append((width, height))

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        self.closed = True
        self._stdin_open = False
        self._finish(137)


def _env(config: ContainerConfig) -> dict[str, str]:
    return dict(config.env)


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    return not wanted or all(labels.get(k) == v for k, v in wanted.items())


class FakeRuntime:
    """A :class:`~runtime.kubelet.cri.ContainerRuntime` without processes."""

    name = "fake"

    def __init__(self, options: FakeOptions | None = None) -> None:
        self.options = options or FakeOptions()
        self._sandboxes: dict[str, SandboxStatus] = {}
        self._containers: dict[str, _Container] = {}
        self._ids = itertools.count(1)
        self._ips = itertools.count(0)
        self._pulled: set[str] = set()
        self.calls: list[str] = []  # operation log, for tests
        self.exec_sessions: list[FakeExecSession] = []  # every exec_session, for tests

    def _id(self, kind: str) -> str:
        return hashlib.sha256(f"{kind}-{next(self._ids)}-{id(self)}".encode()).hexdigest()[:32]

    def _ip(self) -> str:
        n = next(self._ips)
        index = self.options.node_index
        return f"10.{64 + index // 256 % 192}.{index % 256}.{n % 253 + 2}"

    async def version(self) -> str:
        return "fake-1.0"

    # --- images ---------------------------------------------------------------------
    def _present(self, image: str) -> bool:
        local = self.options.local_images
        return local is None or _known(image, local) or _known(image, self._pulled)

    async def image_id(self, image: str) -> str | None:
        if not self._present(image):
            return None
        return "sha256:" + hashlib.sha256(image.encode()).hexdigest()

    async def image_user(self, image: str) -> str:
        """Fake images run as root (no ``USER``), like the busybox images of the tests."""
        if not self._present(image):
            raise ImageNotFound(f"image {image} is not present")
        return ""

    async def pull_image(self, image: str, auth: tuple[RegistryAuth, ...] = ()) -> str:
        self.calls.append(f"pull {image}")
        if self.options.pull_seconds:
            await asyncio.sleep(self.options.pull_seconds)
        pullable = self.options.pullable_images
        if pullable is not None and not _known(image, pullable):
            raise ImagePullFailed(f"fake registry has no image {image!r}")
        self._pulled.add(image)
        return "sha256:" + hashlib.sha256(image.encode()).hexdigest()

    # --- sandboxes ------------------------------------------------------------------
    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        self.calls.append(f"run_sandbox {config.namespace}/{config.name}")
        if self.options.sandbox_seconds:
            await asyncio.sleep(self.options.sandbox_seconds)
        status = SandboxStatus(
            id=self._id("sandbox"),
            pod_uid=config.pod_uid,
            state=SandboxState.READY,
            ip="" if config.host_network else self._ip(),
            labels=dict(config.labels),
            created_at=self.options.clock(),
        )
        self._sandboxes[status.id] = status
        return status

    def _sandbox(self, sandbox_id: str) -> SandboxStatus:
        found = self._sandboxes.get(sandbox_id)
        if found is None:
            raise NotFound(f"sandbox {sandbox_id} not found")
        return found

    async def stop_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(f"stop_sandbox {sandbox_id[:8]}")
        if sandbox_id not in self._sandboxes:
            return
        for cid, c in list(self._containers.items()):
            if c.status.sandbox_id == sandbox_id and c.status.state == ContainerState.RUNNING:
                self._exit(cid, 137, "Error")
        self._sandboxes[sandbox_id] = replace(
            self._sandboxes[sandbox_id], state=SandboxState.NOT_READY
        )

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(f"remove_sandbox {sandbox_id[:8]}")
        await self.stop_sandbox(sandbox_id)
        self._sandboxes.pop(sandbox_id, None)
        for cid in [
            cid for cid, c in self._containers.items() if c.status.sandbox_id == sandbox_id
        ]:
            await self.remove_container(cid)

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        return self._sandbox(sandbox_id)

    async def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxStatus]:
        return [s for s in self._sandboxes.values() if _matches(s.labels, labels)]

    # --- containers -----------------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        self._sandbox(sandbox_id)
        self.calls.append(f"create {config.name}")
        image_id = await self.image_id(config.image)
        if image_id is None:
            raise NotFound(f"image {config.image!r} is not present")
        cid = self._id("container")
        self._containers[cid] = _Container(
            ContainerStatus(
                id=cid,
                sandbox_id=sandbox_id,
                name=config.name,
                state=ContainerState.CREATED,
                image=config.image,
                image_id=image_id,
                labels=dict(config.labels),
                created_at=self.options.clock(),
            ),
            config,
        )
        return cid

    def _get(self, container_id: str) -> _Container:
        found = self._containers.get(container_id)
        if found is None:
            raise NotFound(f"container {container_id} not found")
        return found

    async def start_container(self, container_id: str) -> None:
        c = self._get(container_id)
        self.calls.append(f"start {c.config.name}")
        if self.options.start_seconds:
            await asyncio.sleep(self.options.start_seconds)
        now = self.options.clock()
        c.status = replace(c.status, state=ContainerState.RUNNING, started_at=now)
        c.log.append((now, f"fake container {c.config.name} started\n".encode()))
        env = _env(c.config)
        if "FAKE_RUN_SECONDS" in env:
            code = int(env.get("FAKE_EXIT_CODE", "0"))
            oom = env.get("FAKE_OOM") == "1"
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            delay = float(env["FAKE_RUN_SECONDS"])
            c.exit_task = asyncio.get_running_loop().call_later(
                delay, self._exit, container_id, 137 if oom else code, reason
            )

    def _exit(self, container_id: str, code: int, reason: str) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != ContainerState.RUNNING:
            return
        if c.exit_task is not None:
            c.exit_task.cancel()
            c.exit_task = None
        now = self.options.clock()
        c.status = replace(
            c.status, state=ContainerState.EXITED, finished_at=now, exit_code=code, reason=reason
        )
        c.log.append((now, f"fake container {c.config.name} exited with {code}\n".encode()))

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.status.state != ContainerState.RUNNING:
            return
        self.calls.append(f"stop {c.config.name}")
        if _env(c.config).get("FAKE_IGNORE_SIGTERM") == "1":
            await asyncio.sleep(timeout)
            self._exit(container_id, 137, "Error")
        else:
            self._exit(container_id, 143, "Error")

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.pop(container_id, None)
        if c is not None and c.exit_task is not None:
            c.exit_task.cancel()

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._get(container_id).status

    async def list_containers(
        self, labels: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        return [c.status for c in self._containers.values() if _matches(c.status.labels, labels)]

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> ExecResult:
        c = self._get(container_id)
        if c.status.state != ContainerState.RUNNING:
            return ExecResult(126, b"", b"container is not running\n")
        code = int(_env(c.config).get("FAKE_EXEC_EXIT_CODE", "0"))
        return ExecResult(code, b"", b"")

    async def exec_session(
        self, container_id: str, command: tuple[str, ...], options: ExecOptions
    ) -> FakeExecSession:
        c = self._get(container_id)
        if not command:
            raise InvalidConfig("exec needs a command")
        if c.status.state != ContainerState.RUNNING:
            raise RuntimeError_(f"container {c.config.name} is not running", retryable=False)
        self.calls.append(f"exec_session {c.config.name} {' '.join(command)}")
        session = FakeExecSession(command, options, _env(c.config))
        self.exec_sessions.append(session)
        return session

    async def attach_session(self, container_id: str, options: ExecOptions) -> FakeExecSession:
        """Like :meth:`exec_session` of the container's own command (an echo of stdin)."""
        c = self._get(container_id)
        return await self.exec_session(
            container_id, tuple(c.config.command) or ("attach",), options
        )

    async def logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        c = self._get(container_id)
        lines = list(c.log)
        if options.since_seconds is not None:
            cutoff = self.options.clock() - options.since_seconds
            lines = [entry for entry in lines if entry[0] >= cutoff]
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines :] if options.tail_lines else []
        for when, line in lines:
            if options.timestamps:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
                yield f"{stamp}.{int(when % 1 * 1e9):09d}Z ".encode() + line
            else:
                yield line

    async def close(self) -> None:
        """Nothing to release: the fake runtime holds only memory."""

    async def network_gateway(self) -> str | None:
        """No bridge network: the fake runtime's pod IPs are on no interface."""
        return None

    async def stats(self, container_id: str) -> ContainerStats:
        c = self._get(container_id)
        env = _env(c.config)
        return ContainerStats(
            cpu_usage_nanocores=int(env.get("FAKE_CPU_NANOCORES", "0")),
            cpu_usage_core_nanoseconds=0,
            memory_working_set_bytes=int(env.get("FAKE_MEMORY_BYTES", "0")),
            timestamp=self.options.clock(),
        )


def _known(image: str, names: set[str]) -> bool:
    """``image`` is one of ``names``, as Kubernetes compares references (``nginx`` is
    ``docker.io/library/nginx:latest``)."""
    try:
        wanted = normalize_image(image)
    except InvalidImage:
        return image in names
    for name in names:
        try:
            if normalize_image(name) == wanted:
                return True
        except InvalidImage:
            continue
    return False
