"""The docker implementation of the kubelet's container runtime interface.

:class:`DockerRuntime` drives the ``docker`` CLI with asyncio subprocesses, as the
podman runtime drives podman (the helpers are shared, in
:mod:`runtime.kubelet.runtimes.podman`). A sandbox is a "pause" container on the default
bridge (``localhost/gitops-pause:1``; there is no registry to pull
``registry.k8s.io/pause`` from, so the runtime makes that image itself from the host's
static catatonit or busybox before its first sandbox when docker lacks it:
:mod:`runtime.kubelet.runtimes.sandbox_image`); it owns the pod's network namespace, hostname, /etc/hosts and resolv.conf, and shares
its IPC namespace. Containers join it with ``--network container:<pause>`` and
``--ipc container:<pause>``, so they share localhost and one IP (172.17.x.x).

The CLI is used for everything but ``stats``: its output is human-formatted there
("1.2MiB / 23GiB"), so stats come from the Engine API's one-shot
``/containers/{id}/stats`` over the daemon's unix socket. (The CLI costs ~25 ms per
call; a container start costs 300-500 ms in dockerd itself, so the API would not make
pods start measurably faster, and the CLI handles log multiplexing, exec and errors.)

Who calls it: the kubelet (:mod:`runtime.kubelet`), through
:class:`runtime.kubelet.cri.ContainerRuntime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runtime.kubelet.cri import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SANDBOX_ATTEMPT,
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOptions,
    ExecResult,
    ExecSession,
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
from runtime.kubelet.runtimes.bridge import GatewayUnknown, bridge_gateway
from runtime.kubelet.runtimes.cliexec import open_cli_attach, open_cli_exec
from runtime.kubelet.runtimes.podman import (
    LABEL_ROLE,
    LABEL_SANDBOX_ID,
    ROLE_CONTAINER,
    ROLE_SANDBOX,
    Completed,
    CpuRate,
    InspectCache,
    auth_file_json,
    command_args,
    container_create_args,
    container_labels,
    container_name,
    decode_json_list,
    engine_error,
    exit_reason,
    is_not_found,
    label_args,
    labels_match,
    logs_args,
    map_state,
    parse_time,
    port_args,
    run_engine,
    sandbox_dns_args,
    sandbox_labels,
    sandbox_name,
    stream_logs,
    swap_limit_supported,
)
from runtime.kubelet.runtimes.podman_service import label_filter
from runtime.kubelet.runtimes.sandbox_image import NoPauseBinary, pause_rootfs

PAUSE_IMAGE = "localhost/gitops-pause:1"


def default_docker_binary() -> str:
    """``$DOCKER`` (exported by ensure_docker), else Debian's client (a newer
    ``/usr/local/bin/docker`` may shadow it on PATH), else whatever ``docker`` is."""
    from_env = os.environ.get("DOCKER", "")
    if from_env:
        return from_env
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


def default_docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return "/var/run/docker.sock"


class DockerRuntime:
    """:class:`runtime.kubelet.cri.ContainerRuntime` over the docker CLI.

    ``pause_image`` is the sandbox container's image; ``host_ip`` is reported as the IP
    of host-network sandboxes.
    """

    name = "docker"

    def __init__(
        self,
        *,
        binary: str | None = None,
        socket: str | None = None,
        pause_image: str = PAUSE_IMAGE,
        host_ip: str = "127.0.0.1",
        command_timeout: float = 120.0,
    ) -> None:
        self.binary = binary or default_docker_binary()
        self.socket = socket or default_docker_socket()
        self.pause_image = pause_image
        self.host_ip = host_ip
        self.command_timeout = command_timeout
        self.env = dict(os.environ)
        self._swap_limit = swap_limit_supported()
        self._sandbox_labels: dict[str, Mapping[str, str]] = {}
        self._cpu = CpuRate()
        self._inspected = InspectCache()
        self._pause_ready = False
        self._pause_lock = asyncio.Lock()

    # --- plumbing -----------------------------------------------------------------------
    async def _run(
        self,
        *args: str,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> Completed:
        return await run_engine(
            [self.binary, *args],
            env=env or self.env,
            timeout=timeout or self.command_timeout,
            stdin=stdin,
        )

    async def _check(self, *args: str, what: str = "", timeout: float | None = None) -> Completed:
        result = await self._run(*args, timeout=timeout)
        if not result.ok:
            raise engine_error(result, what=what)
        return result

    async def _inspect(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Inspect containers in one call; IDs that vanished meanwhile are left out
        (docker prints the others and fails)."""
        if not ids:
            return []
        result = await self._run("container", "inspect", *ids)
        if not result.ok and (len(ids) == 1 or not is_not_found(result.err)):
            if is_not_found(result.err):
                return []
            raise engine_error(result, what="inspect")
        return decode_json_list(result)

    async def _ps(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The listing rows (ID, state, labels) of every container with ``labels``."""
        rows = await self._api_get(f"/containers/json?all=1&filters={quote(label_filter(labels))}")
        return [row for row in rows or [] if isinstance(row, dict)]

    async def _ps_ids(self, labels: Mapping[str, str]) -> list[str]:
        return [str(row.get("Id")) for row in await self._ps(labels)]

    async def _inspect_one(self, container_id: str) -> dict[str, Any] | None:
        try:
            data = await self._api_get(f"/containers/{container_id}/json")
        except NotFound:
            return None
        return data if isinstance(data, dict) else None

    async def _list(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Inspect data of the containers with ``labels``; only containers whose state
        changed since the previous listing are inspected again (docker never restarts
        ours: a restart is a new container)."""
        rows = [(str(row.get("Id")), (row.get("State"),)) for row in await self._ps(labels)]
        return await self._inspected.resolve(rows, self._inspect_one)

    async def _api_get(self, path: str, timeout: float = 30.0) -> Any:
        """GET a Docker Engine API path over the unix socket (HTTP/1.0: no chunking)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RuntimeError_(f"cannot reach dockerd at {self.socket}: {exc}") from exc
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise RuntimeError_(f"dockerd sent a malformed answer to {path}") from None
        if status == 404:
            raise NotFound(f"docker: {body.decode(errors='replace').strip()}")
        if status >= 400:
            raise RuntimeError_(f"docker {path}: HTTP {status}: {body.decode(errors='replace')}")
        return json.loads(body)

    # --- engine and images ----------------------------------------------------------------
    async def version(self) -> str:
        result = await self._check(
            "version", "--format", "{{.Server.Version}}", what="docker version"
        )
        return result.out

    async def image_id(self, image: str) -> str | None:
        try:
            data = await self._api_get(f"/images/{quote(image, safe='/:@')}/json")
        except NotFound:
            return None
        return str(data.get("Id") or "") or None if isinstance(data, dict) else None

    async def image_user(self, image: str) -> str:
        try:
            data = await self._api_get(f"/images/{quote(image, safe='/:@')}/json")
        except NotFound:
            raise ImageNotFound(f"image {image} is not present") from None
        config = (data.get("Config") or {}) if isinstance(data, dict) else {}
        return str(config.get("User") or "")

    async def pull_image(self, image: str, auth: tuple[RegistryAuth, ...] = ()) -> str:
        with tempfile.TemporaryDirectory(prefix="gitops-auth-") as tmp:
            env = self.env
            if auth:
                config = Path(tmp) / "config.json"
                config.write_bytes(auth_file_json(auth))
                config.chmod(0o600)
                env = {**self.env, "DOCKER_CONFIG": tmp}
            result = await self._run("pull", "--quiet", image, timeout=600.0, env=env)
        if not result.ok:
            raise ImagePullFailed(f"pulling {image} failed: {result.err or 'no output'}")
        found = await self.image_id(image)
        if found is None:
            raise ImagePullFailed(f"pulled {image} but docker does not list it")
        return found

    async def ensure_pause_image(self) -> None:
        """Make the sandbox image when docker lacks it (once; concurrent callers wait for
        the one import), as a kubelet pulls its pause image before the first sandbox."""
        if self._pause_ready:
            return
        async with self._pause_lock:
            if not self._pause_ready:  # another caller may have made it meanwhile
                if await self.image_id(self.pause_image) is None:
                    await self._make_pause_image()
                self._pause_ready = True

    async def _make_pause_image(self) -> None:
        try:
            rootfs = await asyncio.to_thread(pause_rootfs)
        except NoPauseBinary as exc:
            raise ImageNotFound(
                f"the sandbox image {self.pause_image} is missing and cannot be made: {exc}",
                retryable=False,
            ) from None
        args = ["import"]
        for change in rootfs.import_changes():
            args += ["--change", change]
        result = await self._run(*args, "-", self.pause_image, stdin=rootfs.tar)
        if not result.ok:
            raise engine_error(result, what=f"making the sandbox image {self.pause_image}")

    # --- sandboxes --------------------------------------------------------------------
    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        await self.ensure_pause_image()
        name = sandbox_name(config)
        labels = sandbox_labels(config)
        args = ["run", "--detach", "--pull", "never", "--name", name, "--ipc", "shareable"]
        if config.host_network:
            args += ["--network", "host"]
        else:
            args += ["--network", "bridge", "--hostname", config.hostname]
            args += port_args(config.port_mappings)
            args += sandbox_dns_args(config)
        args += label_args(labels)
        args.append(self.pause_image)
        result = await self._run(*args)
        if not result.ok:
            # `docker run` leaves a created container behind when the start fails
            await self._run("rm", "--force", name)
            if "no such image" in result.err.lower():
                self._pause_ready = False  # removed behind our back: made again next time
                raise ImageNotFound(
                    f"the sandbox image {self.pause_image} is missing ({result.err})",
                    retryable=True,
                )
            raise engine_error(result, what=f"starting sandbox {name}")
        sandbox_id = result.out.splitlines()[-1].strip()
        found = await self._inspect([sandbox_id])
        if not found:
            raise NotFound(f"sandbox {name} vanished after it started")
        return self._sandbox(found[0])

    def _sandbox(self, data: Mapping[str, Any]) -> SandboxStatus:
        config = data.get("Config") or {}
        labels = dict(config.get("Labels") or {})
        state = data.get("State") or {}
        running = bool(state.get("Running"))
        ip = ""
        if running:
            if (data.get("HostConfig") or {}).get("NetworkMode") == "host":
                ip = self.host_ip
            else:
                ip = _bridge_ip(data)
        sandbox_id = str(data.get("Id"))
        self._sandbox_labels[sandbox_id] = labels
        return SandboxStatus(
            id=sandbox_id,
            pod_uid=labels.get(LABEL_POD_UID, ""),
            state=SandboxState.READY if running else SandboxState.NOT_READY,
            ip=ip,
            labels=labels,
            created_at=parse_time(data.get("Created")) or 0.0,
        )

    async def _members(self, sandbox_id: str) -> list[str]:
        return await self._ps_ids({LABEL_SANDBOX_ID: sandbox_id})

    async def stop_sandbox(self, sandbox_id: str) -> None:
        ids = [*await self._members(sandbox_id), sandbox_id]
        result = await self._run("stop", "--time", "0", *ids)
        if not result.ok and not _only_not_found(result):
            raise engine_error(result, what="stop sandbox")

    async def remove_sandbox(self, sandbox_id: str) -> None:
        ids = [*await self._members(sandbox_id), sandbox_id]
        result = await self._run("rm", "--force", *ids)
        if not result.ok and not _only_not_found(result):
            raise engine_error(result, what="remove sandbox")
        self._sandbox_labels.pop(sandbox_id, None)
        for cid in ids:
            self._inspected.forget(cid)

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        found = await self._inspect([sandbox_id])
        if (
            not found
            or (found[0].get("Config") or {}).get("Labels", {}).get(LABEL_ROLE) != ROLE_SANDBOX
        ):
            raise NotFound(f"no sandbox {sandbox_id}")
        return self._sandbox(found[0])

    async def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxStatus]:
        want = {LABEL_ROLE: ROLE_SANDBOX, **(labels or {})}
        found = [self._sandbox(c) for c in await self._list(want)]
        return [s for s in found if labels_match(s.labels, want)]

    # --- containers -------------------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        pod_labels = self._sandbox_labels.get(sandbox_id)
        if pod_labels is None:
            pod_labels = (await self.sandbox_status(sandbox_id)).labels
        pod_name = sandbox_name_from(pod_labels, sandbox_id)
        args = ["create", "--name", container_name(pod_name, config)]
        ipc = "host" if config.security.host_ipc else f"container:{sandbox_id}"
        args += ["--network", f"container:{sandbox_id}", "--ipc", ipc]
        args += label_args(container_labels(pod_labels, config, {LABEL_SANDBOX_ID: sandbox_id}))
        args += container_create_args(config, swap_limit=self._swap_limit)
        if config.stdin and config.stdin_once:
            args += ["--attach", "stdin"]  # docker sets StdinOnce for an attached stdin
        # config.log_path: docker keeps its own json-file log; `logs` reads it.
        before, after = command_args(config)
        with tempfile.TemporaryDirectory(prefix="gitops-env-") as tmp:
            env_args, env = container_env(config.env, Path(tmp) / "env", self.env)
            args += [*env_args, *before, config.image, *after]
            result = await self._run(*args, env=env)
        if not result.ok:
            raise engine_error(result, what=f"creating container {config.name}")
        return result.out.splitlines()[-1].strip()

    async def start_container(self, container_id: str) -> None:
        await self._check("start", container_id, what="start")

    async def stop_container(self, container_id: str, timeout: float) -> None:
        seconds = max(0, math.ceil(timeout))
        result = await self._run("stop", "--time", str(seconds), container_id, timeout=seconds + 60)
        if not result.ok and not is_not_found(result.err):
            raise engine_error(result, what="stop")

    async def remove_container(self, container_id: str) -> None:
        result = await self._run("rm", "--force", container_id)
        if not result.ok and not is_not_found(result.err):
            raise engine_error(result, what="rm")
        self._cpu.forget(container_id)
        self._inspected.forget(container_id)

    async def container_status(self, container_id: str) -> ContainerStatus:
        found = await self._inspect([container_id])
        if not found:
            raise NotFound(f"no container {container_id}")
        return _status(found[0])

    async def list_containers(
        self, labels: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        want = {LABEL_ROLE: ROLE_CONTAINER, **(labels or {})}
        found = [_status(c) for c in await self._list(want)]
        return [c for c in found if labels_match(c.labels, want)]

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> ExecResult:
        if not command:
            raise InvalidConfig("exec needs a command")
        result = await self._run("exec", container_id, *command, timeout=timeout)
        err = result.err
        if result.returncode != 0 and (
            err.startswith("Error response from daemon:") or err.startswith("Error: No such")
        ):
            if is_not_found(err):
                raise NotFound(f"exec: {result.describe()}")
            if "is not running" in err:
                raise RuntimeError_(f"exec: container is not running: {err}", retryable=False)
        return ExecResult(result.returncode, result.stdout, result.stderr)

    async def exec_session(
        self, container_id: str, command: tuple[str, ...], options: ExecOptions
    ) -> ExecSession:
        """``docker exec`` with pipes or a pty (:mod:`runtime.kubelet.runtimes.cliexec`)."""
        return await open_cli_exec([self.binary], container_id, command, options, self.env)

    async def attach_session(self, container_id: str, options: ExecOptions) -> ExecSession:
        """``docker attach`` with pipes or a pty (:mod:`runtime.kubelet.runtimes.cliexec`)."""
        return await open_cli_attach([self.binary], container_id, options, self.env)

    def logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        return self._logs(container_id, options)

    async def _logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        if options.follow:
            await self.container_status(container_id)  # NotFound before streaming
        argv = [self.binary, "logs", *logs_args(options), container_id]
        async for line in stream_logs(argv, self.env, options):
            yield line

    async def close(self) -> None:
        """Nothing to release: each call is its own docker CLI process."""

    async def network_gateway(self) -> str | None:
        """The host's address on docker's default ``bridge`` network (typically
        172.17.0.1). A dockerd started for the first time states no IPAM gateway: then
        the bridge interface's address, else the subnet's first host
        (:func:`runtime.kubelet.runtimes.bridge.bridge_gateway`)."""
        result = await self._run("network", "inspect", "bridge")
        if not result.ok:
            raise RuntimeError_(f"cannot inspect docker's bridge network: {result.describe()}")
        networks = decode_json_list(result)
        if not networks:
            raise RuntimeError_("docker has no default bridge network")
        network = networks[0]
        configs = [
            c for c in (network.get("IPAM") or {}).get("Config") or [] if isinstance(c, dict)
        ]
        options = network.get("Options") or {}
        try:
            return bridge_gateway(
                "bridge",
                gateways=[str(c.get("Gateway") or "") for c in configs],
                subnets=[str(c.get("Subnet") or "") for c in configs],
                interface=str(options.get("com.docker.network.bridge.name") or "docker0"),
            )
        except GatewayUnknown as exc:
            raise RuntimeError_(str(exc), retryable=False) from None

    async def stats(self, container_id: str) -> ContainerStats:
        data = await self._api_get(f"/containers/{container_id}/stats?stream=false&one-shot=true")
        memory = data.get("memory_stats") or {}
        if not memory:
            raise RuntimeError_(f"container {container_id} is not running", retryable=False)
        inner = memory.get("stats") or {}
        inactive = int(inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0)
        usage = int(memory.get("usage") or 0)
        cpu = ((data.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        now = parse_time(data.get("read")) or time.time()
        rate = self._cpu.rate(container_id, int(cpu), now)
        return ContainerStats(
            cpu_usage_nanocores=rate or 0,
            cpu_usage_core_nanoseconds=int(cpu),
            memory_working_set_bytes=max(0, usage - inactive),
            timestamp=now,
        )


# Variables the docker CLI itself reads: a container's value for one of them must not
# reach the CLI's environment (DOCKER_HOST would send the request elsewhere).
_CLI_VARIABLES = ("DOCKER_", "HOME", "PATH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "XDG_")


def container_env(
    env: Sequence[tuple[str, str]], env_file: Path, cli_env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """A container's environment for ``docker create`` without any value on its command
    line (where every local user could read it in /proc): values go into ``env_file``
    (0600, removed with its directory once the container is created); a value holding a
    line break, which an env file cannot carry, goes by name (``-e KEY``) with the value
    in the CLI process's own environment. Returns the arguments and that environment."""
    lines: list[str] = []
    args: list[str] = []
    extra: dict[str, str] = {}
    for key, value in env:
        if "\n" not in value and "\r" not in value:
            lines.append(f"{key}={value}")
            continue
        if key.upper().startswith(_CLI_VARIABLES):
            raise InvalidConfig(
                f"environment variable {key}: a multi-line value cannot be given to docker "
                "under a name the docker command reads itself"
            )
        args += ["-e", key]
        extra[key] = value
    if lines:
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        args = ["--env-file", str(env_file), *args]
    return args, {**cli_env, **extra}


def sandbox_name_from(labels: Mapping[str, str], sandbox_id: str) -> str:
    name = labels.get(LABEL_POD_NAME)
    if not name:
        return sandbox_id[:12]
    return (
        f"k8s_{name}_{labels.get(LABEL_POD_NAMESPACE, '')}_"
        f"{labels.get(LABEL_POD_UID, '')}_{labels.get(LABEL_SANDBOX_ATTEMPT, '0')}"
    )


def _only_not_found(result: Completed) -> bool:
    lines = [line for line in result.err.splitlines() if line.strip()]
    return bool(lines) and all(is_not_found(line) for line in lines)


def _bridge_ip(data: Mapping[str, Any]) -> str:
    settings = data.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return str(settings["IPAddress"])
    for network in (settings.get("Networks") or {}).values():
        if isinstance(network, dict) and network.get("IPAddress"):
            return str(network["IPAddress"])
    return ""


def _status(data: Mapping[str, Any]) -> ContainerStatus:
    config = data.get("Config") or {}
    state = data.get("State") or {}
    labels = dict(config.get("Labels") or {})
    cstate = map_state(str(state.get("Status") or ""))
    exit_code: int | None = None
    finished: float | None = None
    reason = ""
    if cstate is ContainerState.EXITED:
        exit_code = int(state.get("ExitCode") or 0)
        finished = parse_time(state.get("FinishedAt"))
        started = parse_time(state.get("StartedAt"))
        if finished is not None and started is not None and finished < started:
            finished = started  # docker records StartedAt after a quick exit's FinishedAt
        reason = exit_reason(exit_code, bool(state.get("OOMKilled")))
    sandbox_id = labels.get(LABEL_SANDBOX_ID, "")
    if not sandbox_id:
        mode = str((data.get("HostConfig") or {}).get("NetworkMode") or "")
        sandbox_id = mode.removeprefix("container:") if mode.startswith("container:") else ""
    return ContainerStatus(
        id=str(data.get("Id")),
        sandbox_id=sandbox_id,
        name=labels.get(LABEL_CONTAINER_NAME, str(data.get("Name") or "").lstrip("/")),
        state=cstate,
        image=str(config.get("Image") or ""),
        image_id=str(data.get("Image") or ""),
        labels=labels,
        created_at=parse_time(data.get("Created")) or 0.0,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=finished,
        exit_code=exit_code,
        reason=reason,
        message=str(state.get("Error") or ""),
    )
