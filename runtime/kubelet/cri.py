"""The container runtime interface of the built-in kubelet.

Modelled on Kubernetes' CRI (RuntimeService and ImageService): a *sandbox* holds a
pod's shared network namespace (a podman pod, or a docker "pause" container the others
join) and gets one IP; *containers* run inside a sandbox. The kubelet owns all policy
(restarts, backoff, probes, ordering, status); a runtime only does what it is told and
reports what is true. Every sandbox and container carries the labels the kubelet gives
it (``LABEL_POD_UID`` and friends), so a restarted kubelet finds and re-adopts them with
:meth:`ContainerRuntime.list_sandboxes` / :meth:`ContainerRuntime.list_containers`.

Who calls it: :mod:`runtime.kubelet` only. Implementations live in
:mod:`runtime.kubelet.runtimes` (podman, docker, fake).

Errors: implementations raise :class:`RuntimeError_` subclasses; ``retryable`` says
whether the kubelet should try again later (engine busy, network) or report a
permanent failure (bad image reference, invalid config).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Labels every sandbox and container carries (values are strings).
LABEL_PREFIX = "gitops.builtin"
LABEL_POD_UID = f"{LABEL_PREFIX}/pod-uid"
LABEL_POD_NAME = f"{LABEL_PREFIX}/pod-name"
LABEL_POD_NAMESPACE = f"{LABEL_PREFIX}/pod-namespace"
LABEL_NODE = f"{LABEL_PREFIX}/node"
LABEL_CONTAINER_NAME = f"{LABEL_PREFIX}/container-name"
LABEL_CONTAINER_HASH = f"{LABEL_PREFIX}/container-hash"  # of the container spec
LABEL_RESTART_COUNT = f"{LABEL_PREFIX}/restart-count"
#: The ID of the container this one replaces when that one was lost (removed with the
#: cluster's stop, or by hand) rather than seen to exit: its lastState is then unknown.
LABEL_LOST_PREVIOUS = f"{LABEL_PREFIX}/lost-previous"
LABEL_SANDBOX_ATTEMPT = f"{LABEL_PREFIX}/sandbox-attempt"


class RuntimeError_(Exception):
    """A container engine operation failed."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ImageNotFound(RuntimeError_):
    """The image is not present locally (and, for pulls, could not be fetched)."""

    retryable = True


class ImagePullFailed(RuntimeError_):
    """Pulling failed: registry unreachable, auth failed, or the reference is invalid."""

    retryable = True


class NotFound(RuntimeError_):
    """The sandbox or container does not exist (any more)."""

    retryable = False


class InvalidConfig(RuntimeError_):
    """The engine refused the configuration (e.g. bad command, bad mount)."""

    retryable = False


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(enum.StrEnum):
    READY = "ready"
    NOT_READY = "notready"


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int = 0  # 0: not published on the host
    protocol: str = "TCP"  # TCP | UDP | SCTP
    host_ip: str = ""


@dataclass(frozen=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxConfig:
    """What the kubelet asks for a pod's sandbox."""

    pod_uid: str
    name: str
    namespace: str
    hostname: str
    labels: Mapping[str, str] = field(default_factory=dict)
    port_mappings: tuple[PortMapping, ...] = ()
    dns: DNSConfig | None = None
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames)
    host_network: bool = False
    host_ipc: bool = False
    """The containers use the host's IPC namespace (the sandbox shares none)."""
    attempt: int = 0


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    cpu_millis: int | None = None  # limit, in thousandths of a CPU
    memory_bytes: int | None = None  # limit
    cpu_request_millis: int | None = None  # for cpu shares


@dataclass(frozen=True)
class SecurityConfig:
    run_as_user: int | None = None
    run_as_group: int | None = None
    read_only_root_filesystem: bool = False
    privileged: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    supplemental_groups: tuple[int, ...] = ()
    no_new_privileges: bool = False
    """``allowPrivilegeEscalation: false``: the process and its children cannot gain
    privileges (the kernel's no_new_privs)."""
    seccomp_profile: str = ""
    """"": the engine's default profile (RuntimeDefault); ``unconfined``; or the path of
    a profile file (Localhost)."""
    host_pid: bool = False
    host_ipc: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """What the kubelet asks for one container (all expansion already done)."""

    name: str
    image: str
    command: tuple[str, ...] = ()  # empty: the image's entrypoint
    args: tuple[str, ...] = ()  # empty: the image's cmd
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    stdin: bool = False
    # The container's stdin closes when the first attached client detaches (docker;
    # podman closes it after every attach that ends its input).
    stdin_once: bool = False
    tty: bool = False
    log_path: str = ""  # where the runtime should keep the container's log, if it can


@dataclass(frozen=True)
class SandboxStatus:
    id: str
    pod_uid: str
    state: SandboxState
    ip: str  # "" until known; the host IP for host-network sandboxes
    labels: Mapping[str, str]
    created_at: float  # unix seconds


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    state: ContainerState
    image: str
    image_id: str
    labels: Mapping[str, str]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""  # "OOMKilled", "Error", "Completed" for exited containers
    message: str = ""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ExecOptions:
    """How to run an interactive command (``kubectl exec``) in a container.

    ``stdin``: the command reads what :meth:`ExecSession.write_stdin` sends (else its
    stdin is empty). ``tty``: the command gets a terminal; its stderr is merged into
    stdout (as in Kubernetes) and :meth:`ExecSession.resize` sets the terminal's size.
    """

    stdin: bool = False
    tty: bool = False


STDOUT = 1  # the channel numbers of ExecSession.read (those of the exec protocol)
STDERR = 2


class ExecSession(Protocol):
    """A command running in a container, started by
    :meth:`ContainerRuntime.exec_session`. Owned by one caller (the kubelet's exec
    endpoint); :meth:`close` must be called in every case."""

    async def write_stdin(self, data: bytes) -> None:
        """Send bytes to the command's stdin (ignored without ``ExecOptions.stdin`` or
        after :meth:`close_stdin`)."""
        ...

    async def close_stdin(self) -> None:
        """End of input: the command reads end of file (in tty mode: an EOT, ^D, as a
        terminal's user would type). Idempotent."""
        ...

    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output as ``(STDOUT | STDERR, data)``; None once the
        command has exited and all of its output was read."""
        ...

    async def resize(self, width: int, height: int) -> None:
        """Set the terminal's size in columns and rows (ignored without a tty)."""
        ...

    async def wait(self) -> int:
        """The command's exit code (waits for it to exit)."""
        ...

    async def close(self) -> None:
        """Stop the command if it still runs and release everything. Idempotent."""
        ...


@dataclass(frozen=True)
class ContainerStats:
    cpu_usage_nanocores: int  # instantaneous rate, like the kubelet's summary API
    cpu_usage_core_nanoseconds: int  # cumulative
    memory_working_set_bytes: int
    timestamp: float


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry, from the pod's imagePullSecrets."""

    server: str
    username: str = ""
    password: str = ""
    token: str = ""


@runtime_checkable
class ContainerRuntime(Protocol):
    """A container engine, as the kubelet sees it. All methods are safe to call
    concurrently for different sandboxes/containers."""

    name: str  # "podman" | "docker" | "fake"

    async def version(self) -> str:
        """The engine's version; raises when the engine is unusable."""
        ...

    # --- images ---------------------------------------------------------------------
    async def image_id(self, image: str) -> str | None:
        """The local image's ID, or None when it is not present."""
        ...

    async def image_user(self, image: str) -> str:
        """The user a present image runs as (its ``USER``: a name, a uid, ``uid:gid``;
        "" for none, i.e. root). Raises :class:`ImageNotFound` when it is not present."""
        ...

    async def pull_image(self, image: str, auth: tuple[RegistryAuth, ...] = ()) -> str:
        """Pull and return the image ID; raises ImagePullFailed."""
        ...

    # --- sandboxes ------------------------------------------------------------------
    async def run_sandbox(self, config: SandboxConfig) -> SandboxStatus:
        """Create and start a sandbox (network namespace, hostname, DNS, port mappings)."""
        ...

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox and every container in it (idempotent)."""
        ...

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove a stopped sandbox and its containers (idempotent)."""
        ...

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus: ...

    async def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxStatus]:
        """Sandboxes whose labels include ``labels`` (all of ours when None)."""
        ...

    # --- containers -----------------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """Create (not start) a container in the sandbox; returns its ID."""
        ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (idempotent)."""
        ...

    async def remove_container(self, container_id: str) -> None:
        """Remove a container (idempotent; stops it first if needed)."""
        ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(
        self, labels: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        """Containers whose labels include ``labels`` (all of ours when None)."""
        ...

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> ExecResult:
        """Run a command in a running container (exec probes, ``kubectl exec``)."""
        ...

    async def exec_session(
        self, container_id: str, command: tuple[str, ...], options: ExecOptions
    ) -> ExecSession:
        """Start an interactive command in a running container (``kubectl exec``);
        InvalidConfig without a command. The caller checks that the container runs (the
        kubelet's endpoint, from the node's listing); an engine refusing afterwards (the
        container stopped meanwhile) shows as the session's output and exit code."""
        ...

    async def attach_session(self, container_id: str, options: ExecOptions) -> ExecSession:
        """Attach to the running container's own stdio (``kubectl attach``, ``kubectl run
        -i``): its output from now on, and its stdin when ``options.stdin`` (the container
        must have been created with ``stdin: true``). Ending the session detaches; the
        container keeps running. The caller checks that the container runs, as for
        :meth:`exec_session`."""
        ...

    def logs(self, container_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        """The container's output, as raw lines (with RFC 3339 timestamps when asked)."""
        ...

    async def stats(self, container_id: str) -> ContainerStats: ...

    async def network_gateway(self) -> str | None:
        """The host's address on the bridge network the sandboxes attach to (the pods'
        default gateway, where host services such as the cluster DNS listen for them);
        None when the runtime has no such network (fake). Raises :class:`RuntimeError_`
        saying why when the runtime has one but its address cannot be found."""
        ...

    async def close(self) -> None:
        """Release what the runtime holds (connections, helper processes); sandboxes and
        containers keep running. Idempotent."""
        ...
