"""The podman implementation of the kubelet's container runtime interface.

:class:`PodmanRuntime` drives the ``podman`` CLI (podman 4) with asyncio subprocesses and
parses its ``--format json`` output. A sandbox is a podman pod (its infra container holds
the shared network, IPC and UTS namespaces and carries the pod's labels); containers are
created in the pod with ``podman create --pod``. Every invocation passes the global flags
this project's machines need (runc, cgroupfs, file events) and a ``containers.conf``
rendered from ``runtimes/containers.conf`` with the machine's hard ulimits (see
``scripts/engines.sh`` and the shared ENVIRONMENT.md).

Who calls it: the kubelet (:mod:`runtime.kubelet`), through
:class:`runtime.kubelet.cri.ContainerRuntime`.

The first part of this module holds the helpers the docker runtime
(:mod:`runtime.kubelet.runtimes.docker`) shares: running an engine command, mapping its
errors to :mod:`runtime.kubelet.cri` errors, parsing timestamps, streaming logs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import tempfile
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runtime.kubelet.cri import (
    LABEL_CONTAINER_NAME,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_PREFIX,
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
    PortMapping,
    RegistryAuth,
    RuntimeError_,
    SandboxConfig,
    SandboxState,
    SandboxStatus,
)
from runtime.kubelet.runtimes.bridge import GatewayUnknown, bridge_gateway
from runtime.kubelet.runtimes.cliexec import open_cli_attach, open_cli_exec
from runtime.kubelet.runtimes.podman_service import ApiCallFailed, PodmanService, label_filter

# =====================================================================================
# Shared with runtimes/docker.py
# =====================================================================================

#: Which kind of object an engine container is to us: a sandbox (podman infra / docker
#: pause container) or a workload container. Lets "all of ours" be one label filter.
LABEL_ROLE = f"{LABEL_PREFIX}/cri-role"
ROLE_SANDBOX = "sandbox"
ROLE_CONTAINER = "container"
#: The sandbox a docker container joined (docker has no pods to filter on).
LABEL_SANDBOX_ID = f"{LABEL_PREFIX}/sandbox-id"

#: Labels a container inherits from its sandbox, so the kubelet can list a pod's
#: containers by pod UID without repeating them in every ContainerConfig.
POD_LEVEL_LABELS = (LABEL_POD_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_NODE)

_NOT_FOUND_RE = re.compile(
    r"no such (container|pod|object)|no container with (name or )?id|no pod with (name or )?id"
    r"|container .* does not exist|no such id",
    re.IGNORECASE,
)
_NO_IMAGE_RE = re.compile(
    r"image not known|no such image|unable to find image|image .*not found|"
    r"manifest unknown|repository .* not found",
    re.IGNORECASE,
)
_INVALID_RE = re.compile(
    r"executable file .* not found|no such file or directory|permission denied|"
    r"invalid (argument|reference|mount|port|option)|is not a valid|not a directory|"
    r"invalid .*format|bad .*format|unknown (flag|shorthand)|must be",
    re.IGNORECASE,
)
_ZERO_TIME_PREFIX = "0001-01-01"
_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True)
class Completed:
    """The outcome of one engine command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def err(self) -> str:
        text = self.stderr.decode(errors="replace").strip()
        return text or self.stdout.decode(errors="replace").strip()

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace").strip()

    def describe(self) -> str:
        shown = " ".join(self.argv[:4])
        return f"`{shown} …` failed (exit {self.returncode}): {self.err or 'no output'}"


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()


async def run_engine(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    stdin: bytes | None = None,
) -> Completed:
    """Run one engine command to completion; kill it on timeout or cancellation.

    Output goes to temporary files, not pipes: engine commands that start a container
    leave a daemon (conmon) holding whatever the command's stdout was, so waiting for a
    pipe's end of file could wait forever (it does under uvloop, whose pipes are
    sockets). The command's own exit is what counts.
    """
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=dict(env) if env is not None else None,
                # conmon writes files (e.g. "oom") into its working directory.
                cwd=tempfile.gettempdir(),
            )
        except FileNotFoundError as exc:
            raise RuntimeError_(
                f"{argv[0]} is not installed (run scripts/engines.sh's ensure functions)",
                retryable=False,
            ) from exc
        try:
            await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            await _kill(proc)
            raise RuntimeError_(
                f"`{' '.join(argv[:4])} …` did not finish within {timeout:g} s", retryable=True
            ) from None
        except BaseException:
            await _kill(proc)
            raise
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    return Completed(tuple(argv), proc.returncode if proc.returncode is not None else -1, out, err)


def is_not_found(text: str) -> bool:
    return bool(_NOT_FOUND_RE.search(text))


def engine_error(result: Completed, *, what: str = "") -> RuntimeError_:
    """The :mod:`cri` error that best describes a failed engine command."""
    message = f"{what}: {result.describe()}" if what else result.describe()
    return classify_error(result.err, message)


def classify_error(text: str, message: str, *, not_found: bool = False) -> RuntimeError_:
    """The :mod:`cri` error for an engine's error ``text`` (CLI output or API message),
    reported as ``message``."""
    if _NO_IMAGE_RE.search(text):
        return ImageNotFound(message, retryable=True)
    if not_found or is_not_found(text):
        return NotFound(message)
    if _INVALID_RE.search(text):
        return InvalidConfig(message)
    return RuntimeError_(message, retryable=True)


def parse_time(value: Any) -> float | None:
    """Unix seconds from an engine timestamp (RFC 3339 with nanoseconds, or a number);
    None for the zero time or anything empty."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    text = str(value).strip()
    if text.startswith(_ZERO_TIME_PREFIX):
        return None
    match = _TIME_RE.match(text)
    if not match:
        return None
    day, clock, frac, zone = match.groups()
    zone = zone or "Z"
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    micro = (frac or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}").timestamp()


def exit_reason(exit_code: int | None, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    if exit_code is None:
        return ""
    return "Completed" if exit_code == 0 else "Error"


def label_args(labels: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    return args


def label_filters(labels: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    return args


def labels_match(have: Mapping[str, str] | None, want: Mapping[str, str] | None) -> bool:
    have = have or {}
    return all(have.get(k) == v for k, v in (want or {}).items())


def port_args(mappings: Iterable[PortMapping]) -> list[str]:
    args: list[str] = []
    for pm in mappings:
        if not pm.host_port:
            continue
        host_ip = pm.host_ip
        if host_ip and ":" in host_ip and not host_ip.startswith("["):
            host_ip = f"[{host_ip}]"
        prefix = f"{host_ip}:" if host_ip else ""
        args += ["-p", f"{prefix}{pm.host_port}:{pm.container_port}/{pm.protocol.lower()}"]
    return args


def sandbox_dns_args(config: SandboxConfig) -> list[str]:
    args: list[str] = []
    if config.dns is not None:
        for server in config.dns.nameservers:
            args += ["--dns", server]
        for search in config.dns.searches:
            args += ["--dns-search", search]
        for option in config.dns.options:
            args += ["--dns-option", option]
    for ip, hostnames in config.host_aliases:
        for hostname in hostnames:
            args += ["--add-host", f"{hostname}:{ip}"]
    return args


def sandbox_labels(config: SandboxConfig) -> dict[str, str]:
    return {
        **config.labels,
        LABEL_POD_UID: config.pod_uid,
        LABEL_POD_NAME: config.name,
        LABEL_POD_NAMESPACE: config.namespace,
        LABEL_SANDBOX_ATTEMPT: str(config.attempt),
        LABEL_ROLE: ROLE_SANDBOX,
    }


def sandbox_name(config: SandboxConfig) -> str:
    return f"k8s_{config.name}_{config.namespace}_{config.pod_uid}_{config.attempt}"


def container_name(sandbox: str, config: ContainerConfig) -> str:
    # A random suffix: the kubelet may create a container's replacement before it
    # removes the old one.
    return f"{sandbox}--{config.name}--{secrets.token_hex(3)}"


def container_labels(
    pod_labels: Mapping[str, str], config: ContainerConfig, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    inherited = {k: pod_labels[k] for k in POD_LEVEL_LABELS if k in pod_labels}
    return {
        **inherited,
        **config.labels,
        LABEL_CONTAINER_NAME: config.name,
        LABEL_ROLE: ROLE_CONTAINER,
        **(extra or {}),
    }


def swap_limit_supported() -> bool:
    """Whether memory+swap can be limited (cgroup v1 memsw accounting, or cgroup v2)."""
    return (
        Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        or Path("/sys/fs/cgroup/cgroup.controllers").exists()
    )


def container_create_args(config: ContainerConfig, *, swap_limit: bool) -> list[str]:
    """The ``create`` flags of the CLI (everything but the environment, which never goes
    on a command line, networking, the name, the log driver and the image/command)."""
    args: list[str] = ["--pull", "never"]
    for mount in config.mounts:
        spec = f"{mount.host_path}:{mount.container_path}"
        args += ["-v", f"{spec}:ro" if mount.read_only else spec]
    if config.working_dir:
        args += ["--workdir", config.working_dir]
    sec = config.security
    if sec.run_as_user is not None:
        user = str(sec.run_as_user)
        if sec.run_as_group is not None:
            user += f":{sec.run_as_group}"
        args += ["--user", user]
    elif sec.run_as_group is not None:
        # No user given: keep the image's user (root for ours) with the group asked for.
        args += ["--user", f"0:{sec.run_as_group}"]
    for gid in sec.supplemental_groups:
        args += ["--group-add", str(gid)]
    if sec.read_only_root_filesystem:
        args.append("--read-only")
    if sec.privileged:
        args.append("--privileged")
    for cap in sec.add_capabilities:
        args += ["--cap-add", cap]
    for cap in sec.drop_capabilities:
        args += ["--cap-drop", cap]
    if sec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if sec.seccomp_profile:
        args += ["--security-opt", f"seccomp={sec.seccomp_profile}"]
    if sec.host_pid:
        args += ["--pid", "host"]
    res = config.resources
    if res.cpu_millis:
        args += ["--cpus", f"{res.cpu_millis / 1000:.3f}"]
    if res.cpu_request_millis:
        args += ["--cpu-shares", str(max(2, res.cpu_request_millis * 1024 // 1000))]
    if res.memory_bytes:
        args += ["--memory", str(res.memory_bytes)]
        if swap_limit:
            args += ["--memory-swap", str(res.memory_bytes)]  # no swap, as in Kubernetes
    if config.stdin:
        args.append("-i")
    if config.tty:
        args.append("-t")
    return args


def command_args(config: ContainerConfig) -> tuple[list[str], list[str]]:
    """(flags before the image, arguments after it) for Kubernetes command/args
    semantics: ``command`` replaces the image's entrypoint (and, as in Kubernetes,
    drops the image's cmd when ``args`` is empty); ``args`` replaces the cmd."""
    if config.command:
        return ["--entrypoint", config.command[0]], [*config.command[1:], *config.args]
    return [], list(config.args)


def auth_file_json(auth: Sequence[RegistryAuth]) -> bytes:
    """A containers-auth.json / docker config.json with the given credentials."""
    auths: dict[str, dict[str, str]] = {}
    for entry in auth:
        item: dict[str, str] = {}
        if entry.username or entry.password:
            raw = f"{entry.username}:{entry.password}".encode()
            item["auth"] = base64.b64encode(raw).decode()
        if entry.token:
            item["identitytoken"] = entry.token
        auths[entry.server] = item
    return json.dumps({"auths": auths}).encode()


def decode_json_list(result: Completed) -> list[dict[str, Any]]:
    """The list of objects in an engine's JSON output (``[]`` for empty output)."""
    text = result.stdout.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # `docker inspect` of several IDs prints one array; `--format {{json .}}` prints
        # one object per line.
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    return []


def logs_args(options: LogOptions) -> list[str]:
    args: list[str] = []
    if options.follow:
        args.append("--follow")
    if options.tail_lines is not None:
        args += ["--tail", str(max(0, options.tail_lines))]
    if options.since_seconds is not None:
        args += ["--since", f"{max(0, options.since_seconds)}s"]
    if options.timestamps:
        args.append("--timestamps")
    return args


async def stream_logs(
    argv: Sequence[str], env: Mapping[str, str] | None, options: LogOptions
) -> AsyncIterator[bytes]:
    """Yield the lines of an engine's ``logs`` command: the container's stdout and
    stderr, merged in the order the engine writes them, up to ``limit_bytes``. Without
    ``follow`` the (bounded) output is read first, so an engine error is raised rather
    than yielded as a line. Closing the iterator kills the command."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        limit=1024 * 1024,
    )
    remaining = options.limit_bytes
    try:
        assert proc.stdout is not None
        if not options.follow:
            data = await asyncio.wait_for(proc.stdout.read(), 300.0)
            code = await proc.wait()
            if code != 0:
                raise engine_error(Completed(tuple(argv), code, b"", data), what="logs")
            lines = data.splitlines(keepends=True)
            for line in lines:
                if remaining is not None:
                    if remaining <= 0:
                        return
                    line = line[:remaining]
                    remaining -= len(line)
                yield line
            return
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line longer than the stream limit: pass it in pieces
                line = await proc.stdout.read(1024 * 1024)
            if not line:
                break
            if remaining is not None:
                if remaining <= 0:
                    break
                line = line[:remaining]
                remaining -= len(line)
            yield line
        await proc.wait()
    finally:
        await _kill(proc)


class CpuRate:
    """Turns cumulative CPU nanoseconds into an instantaneous rate, per container, from
    the previous sample (the way the kubelet's summary API reports ``usageNanoCores``)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, container_id: str, cumulative_ns: int, now: float) -> int | None:
        previous = self._last.get(container_id)
        self._last[container_id] = (now, cumulative_ns)
        if previous is None or now <= previous[0] or cumulative_ns < previous[1]:
            return None
        return int((cumulative_ns - previous[1]) / (now - previous[0]))

    def forget(self, container_id: str) -> None:
        self._last.pop(container_id, None)


class InspectCache:
    """Inspect data of the containers a listing returned, inspected again only when
    their listing row changed (a relist of an idle node costs one list call)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    async def resolve(
        self,
        rows: Sequence[tuple[str, tuple[Any, ...]]],
        inspect: Callable[[str], Awaitable[dict[str, Any] | None]],
    ) -> list[dict[str, Any]]:
        """``rows``: (container id, what the listing says of it). Returns the inspect
        data of those still there, in order."""
        stale = [cid for cid, key in rows if cid not in self._data or self._data[cid][0] != key]
        fresh = await asyncio.gather(*(inspect(cid) for cid in stale))
        keys = dict(rows)
        for cid, data in zip(stale, fresh, strict=True):
            if data is None:
                self._data.pop(cid, None)
            else:
                self._data[cid] = (keys[cid], data)
        return [self._data[cid][1] for cid, _ in rows if cid in self._data]

    def forget(self, container_id: str) -> None:
        self._data.pop(container_id, None)

    def forget_where(self, test: Callable[[dict[str, Any]], bool]) -> None:
        for cid in [cid for cid, (_, data) in self._data.items() if test(data)]:
            del self._data[cid]


def map_state(status: str) -> ContainerState:
    status = status.lower()
    if status in ("created", "configured", "initialized"):
        return ContainerState.CREATED
    if status in ("running", "paused", "restarting", "stopping"):
        return ContainerState.RUNNING
    if status in ("exited", "stopped", "dead", "removing"):
        return ContainerState.EXITED
    return ContainerState.UNKNOWN


# =====================================================================================
# podman
# =====================================================================================

CONF_TEMPLATE = Path(__file__).with_name("containers.conf")


def podman_limits() -> tuple[int, int]:
    """(nofile, nproc) hard limits podman can apply to containers on this machine:
    podman caps its own RLIMIT_NPROC at kernel.pid_max."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    except (OSError, ValueError):
        pid_max = 4194304
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    if nproc == resource.RLIM_INFINITY or nproc > pid_max:
        nproc = pid_max
    return int(nofile), int(nproc)


def render_containers_conf(directory: Path) -> Path:
    """Write containers.conf for this machine into ``directory`` (only if it changed),
    as scripts/engines.sh's ensure_podman does; returns its path."""
    nofile, nproc = podman_limits()
    text = CONF_TEMPLATE.read_text().replace("@NOFILE@", str(nofile)).replace("@NPROC@", str(nproc))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "containers.conf"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return path


@dataclass(frozen=True)
class _Pod:
    name: str
    infra_id: str
    labels: Mapping[str, str]


def _ns(mode: str) -> dict[str, str]:
    return {"nsmode": mode}


def sandbox_spec(config: SandboxConfig) -> dict[str, Any]:
    """The libpod PodSpecGenerator for a sandbox (what ``podman pod create`` flags say)."""
    name = sandbox_name(config)
    spec: dict[str, Any] = {
        "name": name,
        "infra_name": f"{name}-infra",
        "labels": sandbox_labels(config),
    }
    # hostIPC: the containers use the host's IPC namespace, so the pod shares none.
    ipc = [] if config.host_ipc else ["ipc"]
    if config.host_network:
        spec["netns"] = _ns("host")
        spec["utsns"] = _ns("host")
        spec["shared_namespaces"] = [*ipc, "net"]
    else:
        spec["shared_namespaces"] = ["net", *ipc, "uts"]
        spec["hostname"] = config.hostname
        spec["portmappings"] = [
            {
                "host_ip": pm.host_ip,
                "container_port": pm.container_port,
                "host_port": pm.host_port,
                "protocol": pm.protocol.lower(),
            }
            for pm in config.port_mappings
            if pm.host_port
        ]
    if config.dns is not None:
        spec["dns_server"] = list(config.dns.nameservers)
        spec["dns_search"] = list(config.dns.searches)
        spec["dns_option"] = list(config.dns.options)
    spec["hostadd"] = [
        f"{hostname}:{ip}" for ip, hostnames in config.host_aliases for hostname in hostnames
    ]
    return spec


def container_spec(
    pod: _Pod, sandbox_id: str, config: ContainerConfig, *, swap_limit: bool
) -> dict[str, Any]:
    """The libpod SpecGenerator for a container in a sandbox (the same settings as
    :func:`container_create_args` gives ``podman create``)."""
    spec: dict[str, Any] = {
        "name": container_name(pod.name, config),
        "pod": sandbox_id,
        "image": config.image,
        "labels": container_labels(pod.labels, config),
        "env": dict(config.env),
        "stdin": config.stdin,
        "terminal": config.tty,
    }
    if config.command:
        spec["entrypoint"] = [config.command[0]]
        spec["command"] = [*config.command[1:], *config.args]
    elif config.args:
        spec["command"] = list(config.args)
    if config.working_dir:
        spec["work_dir"] = config.working_dir
    spec["mounts"] = [
        {
            "destination": m.container_path,
            "source": m.host_path,
            "type": "bind",
            "options": ["rbind", "ro" if m.read_only else "rw"],
        }
        for m in config.mounts
    ]
    sec = config.security
    if sec.run_as_user is not None:
        spec["user"] = str(sec.run_as_user)
        if sec.run_as_group is not None:
            spec["user"] += f":{sec.run_as_group}"
    elif sec.run_as_group is not None:
        spec["user"] = f"0:{sec.run_as_group}"
    if sec.supplemental_groups:
        spec["groups"] = [str(g) for g in sec.supplemental_groups]
    if sec.read_only_root_filesystem:
        spec["read_only_filesystem"] = True
        spec["read_only_tmpfs"] = False  # Kubernetes mounts no tmpfs either
    spec["privileged"] = sec.privileged
    if sec.add_capabilities:
        spec["cap_add"] = list(sec.add_capabilities)
    if sec.drop_capabilities:
        spec["cap_drop"] = list(sec.drop_capabilities)
    if sec.no_new_privileges:
        spec["no_new_privileges"] = True
    if sec.seccomp_profile:
        spec["seccomp_profile_path"] = sec.seccomp_profile
    if sec.host_pid:
        spec["pidns"] = _ns("host")
    if sec.host_ipc:
        spec["ipcns"] = _ns("host")
    res = config.resources
    limits: dict[str, Any] = {}
    if res.cpu_millis or res.cpu_request_millis:
        cpu: dict[str, int] = {}
        if res.cpu_millis:
            cpu["period"] = 100_000
            cpu["quota"] = res.cpu_millis * 100
        if res.cpu_request_millis:
            cpu["shares"] = max(2, res.cpu_request_millis * 1024 // 1000)
        limits["cpu"] = cpu
    if res.memory_bytes:
        memory = {"limit": res.memory_bytes}
        if swap_limit:
            memory["swap"] = res.memory_bytes  # no swap, as in Kubernetes
        limits["memory"] = memory
    if limits:
        spec["resource_limits"] = limits
    if config.log_path:
        spec["log_configuration"] = {"driver": "k8s-file", "path": config.log_path}
    return spec


class PodmanRuntime:
    """:class:`runtime.kubelet.cri.ContainerRuntime` over podman.

    Sandboxes, containers, listings and image checks go through a private ``podman
    system service`` (:mod:`runtime.kubelet.runtimes.podman_service`); pulls, exec, logs
    and stats run the podman CLI. ``containers_conf``: the containers.conf to use; by
    default ``$CONTAINERS_CONF`` when set, else one rendered from the template into
    ``state_dir`` (default ``~/.cache/gitops-cluster/podman``). ``host_ip`` is reported
    as the IP of host-network sandboxes. Call :meth:`close` to stop the service.
    """

    name = "podman"

    def __init__(
        self,
        *,
        binary: str = "podman",
        containers_conf: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        host_ip: str = "127.0.0.1",
        command_timeout: float = 120.0,
    ) -> None:
        self.binary = shutil.which(binary) or binary
        if containers_conf is None:
            from_env = os.environ.get("CONTAINERS_CONF", "")
            if from_env and Path(from_env).is_file():
                containers_conf = from_env
            else:
                directory = (
                    Path(state_dir)
                    if state_dir is not None
                    else Path.home() / ".cache" / "gitops-cluster" / "podman"
                )
                containers_conf = render_containers_conf(directory)
        self.containers_conf = str(Path(containers_conf).resolve())
        self.env = {**os.environ, "CONTAINERS_CONF": self.containers_conf}
        self.host_ip = host_ip
        self.command_timeout = command_timeout
        self._global = [
            self.binary,
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        self.service = PodmanService(self._global, self.env, request_timeout=command_timeout)
        self._swap_limit = swap_limit_supported()
        self._pods: dict[str, _Pod] = {}
        self._cpu = CpuRate()
        self._inspected = InspectCache()

    async def close(self) -> None:
        await self.service.close()

    async def network_gateway(self) -> str | None:
        """The host's address on podman's default network ``podman`` (typically
        10.88.0.1; its bridge ``cni-podman0`` or ``podman0`` appears with the first
        container, the address is known before)."""
        result = await self._run("network", "inspect", "podman")
        if not result.ok:
            raise RuntimeError_(
                f"cannot inspect podman's default network 'podman': {result.describe()}"
            )
        networks = decode_json_list(result)
        if not networks:
            raise RuntimeError_("podman has no default network 'podman'")
        network = networks[0]
        subnets = [s for s in network.get("subnets") or [] if isinstance(s, dict)]
        try:
            return bridge_gateway(
                "podman",
                gateways=[str(s.get("gateway") or "") for s in subnets],
                subnets=[str(s.get("subnet") or "") for s in subnets],
                interface=str(network.get("network_interface") or "") or None,
            )
        except GatewayUnknown as exc:
            raise RuntimeError_(str(exc), retryable=False) from None

    # --- plumbing -----------------------------------------------------------------------
    async def _run(self, *args: str, timeout: float | None = None) -> Completed:
        return await run_engine(
            [*self._global, *args], env=self.env, timeout=timeout or self.command_timeout
        )

    async def _check(self, *args: str, what: str = "", timeout: float | None = None) -> Completed:
        result = await self._run(*args, timeout=timeout)
        if not result.ok:
            raise engine_error(result, what=what)
        return result

    async def _api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One libpod API call; errors become :mod:`cri` errors (404 is None when
        ``missing_ok``)."""
        try:
            return await self.service.call(
                method,
                path,
                what=what,
                params=params,
                body=body,
                timeout=timeout,
                ok_statuses=(304,),
            )
        except ApiCallFailed as exc:
            if exc.status == 404 and missing_ok:
                return None
            raise classify_error(exc.message, str(exc), not_found=exc.status == 404) from None

    async def _inspect_one(self, container_id: str) -> dict[str, Any] | None:
        data = await self._api(
            "GET", f"/containers/{container_id}/json", what="inspect", missing_ok=True
        )
        return data if isinstance(data, dict) else None

    async def _list(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Inspect data of the containers with ``labels``, inspecting again only those
        whose state changed since the previous listing."""
        rows = await self._api(
            "GET",
            "/containers/json",
            what="list containers",
            params={"all": "true", "filters": label_filter(labels)},
        )
        listed = [
            (
                str(row.get("Id")),
                (row.get("State"), row.get("StartedAt"), row.get("ExitedAt"), row.get("ExitCode")),
            )
            for row in rows or []
        ]
        return await self._inspected.resolve(listed, self._inspect_one)

    # --- engine and images ----------------------------------------------------------------
    async def version(self) -> str:
        result = await self._check("version", "--format", "json", what="podman version")
        data = json.loads(result.stdout)
        client = data.get("Client") or {}
        return str(client.get("Version") or data.get("Version") or "unknown")

    async def image_id(self, image: str) -> str | None:
        data = await self._api(
            "GET", f"/images/{quote(image, safe='')}/json", what="image inspect", missing_ok=True
        )
        if not isinstance(data, dict):
            return None
        return _sha(str(data.get("Id") or ""))

    async def image_user(self, image: str) -> str:
        data = await self._api(
            "GET", f"/images/{quote(image, safe='')}/json", what="image inspect", missing_ok=True
        )
        if not isinstance(data, dict):
            raise ImageNotFound(f"image {image} is not present")
        config = data.get("Config") or {}
        return str(config.get("User") or data.get("User") or "")

    async def pull_image(self, image: str, auth: tuple[RegistryAuth, ...] = ()) -> str:
        with tempfile.TemporaryDirectory(prefix="gitops-auth-") as tmp:
            args = ["pull", "--quiet"]
            if auth:
                authfile = Path(tmp) / "auth.json"
                authfile.write_bytes(auth_file_json(auth))
                authfile.chmod(0o600)
                args += ["--authfile", str(authfile)]
            result = await self._run(*args, image, timeout=600.0)
        if not result.ok:
            raise ImagePullFailed(f"pulling {image} failed: {result.err or 'no output'}")
        found = await self.image_id(image)
        if found is None:
            raise ImagePullFailed(f"pulled {image} but podman does not list it")
        return found

    # --- sandboxes --------------------------------------------------------------------
    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        name = sandbox_name(config)
        created = await self._api(
            "POST", "/pods/create", what=f"creating pod {name}", body=sandbox_spec(config)
        )
        pod_id = str((created or {}).get("Id") or "")
        try:
            await self._api("POST", f"/pods/{pod_id}/start", what=f"starting pod {name}")
        except RuntimeError_:
            await self._api(
                "DELETE",
                f"/pods/{pod_id}",
                what="pod rm",
                params={"force": "true"},
                missing_ok=True,
            )
            raise
        infra = await self._inspect_one(f"{name}-infra")
        if infra is None:
            raise NotFound(f"pod {name} has no infra container")
        return self._remember(infra)

    def _remember(self, infra: Mapping[str, Any]) -> SandboxStatus:
        status = self._sandbox_from_infra(infra)
        name = str(infra.get("Name") or "").removesuffix("-infra")
        self._pods[status.id] = _Pod(name, str(infra.get("Id")), status.labels)
        return status

    def _sandbox_from_infra(self, infra: Mapping[str, Any]) -> SandboxStatus:
        config = infra.get("Config") or {}
        labels = dict(config.get("Labels") or {})
        state = infra.get("State") or {}
        running = bool(state.get("Running"))
        ip = ""
        if running:
            if (infra.get("HostConfig") or {}).get("NetworkMode") == "host":
                ip = self.host_ip
            else:
                ip = _ip_of(infra)
        return SandboxStatus(
            id=str(infra.get("Pod") or ""),
            pod_uid=labels.get(LABEL_POD_UID, ""),
            state=SandboxState.READY if running else SandboxState.NOT_READY,
            ip=ip,
            labels=labels,
            created_at=parse_time(infra.get("Created")) or 0.0,
        )

    async def _pod(self, sandbox_id: str) -> _Pod:
        pod = self._pods.get(sandbox_id)
        if pod is not None:
            return pod
        data = await self._api("GET", f"/pods/{sandbox_id}/json", what="pod inspect")
        if not isinstance(data, dict):
            raise NotFound(f"no pod {sandbox_id}")
        infra_id = str(data.get("InfraContainerID") or "")
        pod = _Pod(str(data.get("Name") or ""), infra_id, dict(data.get("Labels") or {}))
        self._pods[str(data.get("Id") or sandbox_id)] = pod
        return pod

    async def stop_sandbox(self, sandbox_id: str) -> None:
        await self._api(
            "POST",
            f"/pods/{sandbox_id}/stop",
            what="pod stop",
            params={"t": "0"},
            missing_ok=True,
        )

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await self._api(
            "DELETE",
            f"/pods/{sandbox_id}",
            what="pod rm",
            params={"force": "true"},
            missing_ok=True,
        )
        self._pods.pop(sandbox_id, None)
        self._inspected.forget_where(lambda data: data.get("Pod") == sandbox_id)

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        pod = await self._pod(sandbox_id)
        infra = await self._inspect_one(pod.infra_id)
        if infra is None:
            self._pods.pop(sandbox_id, None)
            raise NotFound(f"no pod {sandbox_id}")
        return self._remember(infra)

    async def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxStatus]:
        want = {LABEL_ROLE: ROLE_SANDBOX, **(labels or {})}
        found = [self._remember(c) for c in await self._list(want) if c.get("IsInfra")]
        return [s for s in found if labels_match(s.labels, want)]

    # --- containers -------------------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        pod = await self._pod(sandbox_id)
        if config.log_path:
            Path(config.log_path).parent.mkdir(parents=True, exist_ok=True)
        spec = container_spec(pod, sandbox_id, config, swap_limit=self._swap_limit)
        created = await self._api(
            "POST", "/containers/create", what=f"creating container {config.name}", body=spec
        )
        return str((created or {}).get("Id") or "")

    async def start_container(self, container_id: str) -> None:
        await self._api("POST", f"/containers/{container_id}/start", what="start")

    async def stop_container(self, container_id: str, timeout: float) -> None:
        seconds = max(0, math.ceil(timeout))
        await self._api(
            "POST",
            f"/containers/{container_id}/stop",
            what="stop",
            params={"timeout": str(seconds)},
            timeout=seconds + 60.0,
            missing_ok=True,
        )

    async def remove_container(self, container_id: str) -> None:
        await self._api(
            "DELETE",
            f"/containers/{container_id}",
            what="rm",
            params={"force": "true", "timeout": "0"},
            missing_ok=True,
        )
        self._cpu.forget(container_id)
        self._inspected.forget(container_id)

    async def container_status(self, container_id: str) -> ContainerStatus:
        found = await self._inspect_one(container_id)
        if found is None:
            raise NotFound(f"no container {container_id}")
        return self._status(found)

    def _status(self, data: Mapping[str, Any]) -> ContainerStatus:
        config = data.get("Config") or {}
        state = data.get("State") or {}
        labels = dict(config.get("Labels") or {})
        cstate = map_state(str(state.get("Status") or ""))
        exit_code: int | None = None
        finished: float | None = None
        reason = ""
        started = parse_time(state.get("StartedAt"))
        if cstate is ContainerState.EXITED:
            exit_code = int(state.get("ExitCode") or 0)
            finished = parse_time(state.get("FinishedAt"))
            if finished is not None and started is not None and finished < started:
                finished = started  # docker stamps StartedAt after a quick exit's FinishedAt
            reason = exit_reason(exit_code, bool(state.get("OOMKilled")))
        image_id = str(data.get("Image") or "")
        return ContainerStatus(
            id=str(data.get("Id")),
            sandbox_id=str(data.get("Pod") or ""),
            name=labels.get(LABEL_CONTAINER_NAME, str(data.get("Name") or "")),
            state=cstate,
            image=str(data.get("ImageName") or config.get("Image") or ""),
            image_id=_sha(image_id) if image_id else "",
            labels=labels,
            created_at=parse_time(data.get("Created")) or 0.0,
            started_at=started,
            finished_at=finished,
            exit_code=exit_code,
            reason=reason,
            message=str(state.get("Error") or ""),
        )

    async def list_containers(
        self, labels: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        want = {LABEL_ROLE: ROLE_CONTAINER, **(labels or {})}
        found = [self._status(c) for c in await self._list(want) if not c.get("IsInfra")]
        return [c for c in found if labels_match(c.labels, want)]

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> ExecResult:
        if not command:
            raise InvalidConfig("exec needs a command")
        result = await self._run("exec", container_id, *command, timeout=timeout)
        if result.returncode == 125 and (
            is_not_found(result.err) or "can only create exec sessions" in result.err
        ):
            if is_not_found(result.err):
                raise NotFound(f"exec: {result.describe()}")
            raise RuntimeError_(f"exec: container is not running: {result.err}", retryable=False)
        return ExecResult(result.returncode, result.stdout, result.stderr)

    async def exec_session(
        self, container_id: str, command: tuple[str, ...], options: ExecOptions
    ) -> ExecSession:
        """``podman exec`` with pipes or a pty (:mod:`runtime.kubelet.runtimes.cliexec`)."""
        return await open_cli_exec(self._global, container_id, command, options, self.env)

    async def attach_session(self, container_id: str, options: ExecOptions) -> ExecSession:
        """``podman attach`` with pipes or a pty (:mod:`runtime.kubelet.runtimes.cliexec`)."""
        return await open_cli_attach(self._global, container_id, options, self.env)

    def logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        return self._logs(container_id, options)

    async def _logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        if options.follow:
            await self.container_status(container_id)  # NotFound before streaming
        argv = [*self._global, "logs", *logs_args(options), container_id]
        async for line in stream_logs(argv, self.env, options):
            yield line

    async def stats(self, container_id: str) -> ContainerStats:
        result = await self._check(
            "stats",
            "--no-stream",
            "--format",
            "{{json .ContainerStats}}",
            container_id,
            what="stats",
        )
        rows = decode_json_list(result)
        if not rows:
            raise NotFound(f"no stats for container {container_id}")
        row = rows[0]
        now = time.time()
        cumulative = int(row.get("CPUNano") or 0)
        rate = self._cpu.rate(container_id, cumulative, now)
        if rate is None:  # first sample: podman's average since start (percent of a CPU)
            rate = int(float(row.get("CPU") or 0.0) * 1e7)
        return ContainerStats(
            cpu_usage_nanocores=rate,
            cpu_usage_core_nanoseconds=cumulative,
            memory_working_set_bytes=int(row.get("MemUsage") or 0),
            timestamp=now,
        )


def _sha(image_id: str) -> str:
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"


def _ip_of(data: Mapping[str, Any]) -> str:
    settings = data.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return str(settings["IPAddress"])
    for network in (settings.get("Networks") or {}).values():
        if isinstance(network, dict) and network.get("IPAddress"):
            return str(network["IPAddress"])
    return ""
