"""One pod's sync: compare the pod spec with what the container runtime runs, do the
next steps (sandbox, images, init containers in order, containers, restarts with
backoff, liveness restarts, graceful termination), and compute the pod's status.

Who calls it: :class:`runtime.kubelet.kubelet.Kubelet`'s per-pod workers, level-
triggered: every call re-reads the runtime's state and decides from scratch, so a
kubelet restarted at any point continues where the old one stopped. A sync returns
when the next step needs time (a container starting, a backoff, a probe); the result
says when to sync again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from kubemodel.images import InvalidImage, normalize_image
from runtime.api import quantity
from runtime.kubelet import cri
from runtime.kubelet.cri import (
    ContainerConfig,
    ContainerRuntime,
    ContainerState,
    ContainerStatus,
    Mount,
    PortMapping,
    RegistryAuth,
    Resources,
    SandboxConfig,
    SandboxState,
    SandboxStatus,
)
from runtime.kubelet.env import expand
from runtime.kubelet.pleg import Relister
from runtime.kubelet.resolvconf import ClusterDnsSettings, PodDns, pod_dns
from runtime.kubelet.security import security_config, verify_run_as_non_root
from runtime.kubelet.status import (
    DEADLINE_EXCEEDED,
    ContainerView,
    KubeletFailure,
    PodView,
    Waiting,
    pod_status,
)

log = structlog.get_logger(__name__)


class Recorder(Protocol):
    def event(
        self, pod: Mapping[str, Any], kind: str, reason: str, message: str, field_path: str = ""
    ) -> None: ...


class Env(Protocol):
    async def __call__(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str
    ) -> list[tuple[str, str]]: ...


class Volumes(Protocol):
    async def setup(
        self, pod: dict[str, Any], *, pod_ip: str = "", node_name: str = "", node_ip: str = ""
    ) -> None: ...

    def mounts(
        self, pod: dict[str, Any], container: dict[str, Any], env: Mapping[str, str] | None = None
    ) -> list[Mount]: ...

    async def teardown(self, pod_uid: str) -> None: ...


class Probes(Protocol):
    def sync_pod(
        self, pod: dict[str, Any], pod_ip: str, containers: Mapping[str, ContainerStatus]
    ) -> None: ...

    def readiness(self, pod_uid: str, container_name: str) -> bool: ...

    def started(self, pod_uid: str, container_name: str) -> bool: ...

    def liveness_failed(
        self, pod_uid: str, container_name: str, container_id: str
    ) -> str | None: ...

    def remove_pod(self, pod_uid: str) -> None: ...


class Secrets(Protocol):
    async def pull_auth(self, pod: Mapping[str, Any]) -> tuple[RegistryAuth, ...]: ...


@dataclass
class SyncOptions:
    node_name: str
    node_ip: str = "127.0.0.1"
    restart_backoff_initial: float = 10.0
    restart_backoff_max: float = 300.0
    # A container that ran this long resets its restart backoff.
    restart_backoff_reset: float = 600.0
    image_backoff_initial: float = 10.0
    image_backoff_max: float = 300.0
    resync: float = 60.0
    """Seconds between two syncs of a pod nothing happened to (Kubernetes' kubelet
    ``--sync-frequency``, 1 min): engine changes (the relist), probe results, API
    changes and backoff expiries sync a pod at once, so this only refreshes volumes
    and catches what was missed. Each pod's period is spread by ±10% so thousands of
    pods do not sync in one burst."""
    # How often the kubelet relists the node's sandboxes and containers (pods whose
    # containers changed are synced at once).
    relist_period: float = 1.0
    #: The cluster DNS server addresses pods with ``dnsPolicy: ClusterFirst`` use
    #: (kubelet ``--cluster-dns``; empty: they fall back to ``Default``).
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    #: The host's resolv.conf (kubelet ``--resolv-conf``): search domains and ``Default``.
    resolv_conf: str = "/etc/resolv.conf"
    #: Where ``Localhost`` seccomp profiles are (kubelet ``<root-dir>/seccomp``).
    seccomp_root: Path = Path("/var/lib/kubelet/seccomp")


class Backoff:
    """Per-key exponential backoff (kubelet's flowcontrol.Backoff)."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update)

    def remaining(self, key: str, since: float | None, now: float) -> float:
        """Seconds left in the backoff window that started at ``since`` (default: the
        last :meth:`next`); 0 means the next attempt may go."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        start = entry[1] if since is None else since
        return max(0.0, start + entry[0] - now)

    def next(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        delay = self.initial if entry is None else min(entry[0] * 2, self.maximum)
        self._entries[key] = (delay, now)
        return delay

    def current(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry else 0.0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


@dataclass
class SyncResult:
    requeue_after: float | None = None
    status: dict[str, Any] | None = None


def container_hash(container: Mapping[str, Any]) -> str:
    """A hash of the container spec: a change means the container must be replaced."""
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _millis(value: Any) -> int | None:
    parsed = quantity.parse(value)
    if parsed is None:
        return None
    return int((parsed * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _bytes(value: Any) -> int | None:
    parsed = quantity.parse(value)
    if parsed is None:
        return None
    return int(parsed.to_integral_value(rounding="ROUND_CEILING"))


def _resources(container: Mapping[str, Any]) -> Resources:
    res = container.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    return Resources(
        cpu_millis=_millis(limits["cpu"]) if "cpu" in limits else None,
        memory_bytes=_bytes(limits["memory"]) if "memory" in limits else None,
        cpu_request_millis=_millis(requests["cpu"]) if "cpu" in requests else None,
    )


def sandbox_config(
    pod: Mapping[str, Any], node_name: str, attempt: int, dns: PodDns | None = None
) -> SandboxConfig:
    """The sandbox the kubelet asks the runtime for; ``dns`` is the pod's computed DNS
    (:func:`runtime.kubelet.resolvconf.pod_dns`; default: without cluster DNS)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name", ""))[:63]
    ports: list[PortMapping] = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.append(
                    PortMapping(
                        int(p["containerPort"]),
                        int(p["hostPort"]),
                        str(p.get("protocol", "TCP")),
                        str(p.get("hostIP", "")),
                    )
                )
    if dns is None:
        dns = pod_dns(pod, ClusterDnsSettings())
    aliases = tuple(
        (str(a.get("ip")), tuple(str(h) for h in a.get("hostnames") or ()))
        for a in spec.get("hostAliases") or []
    )
    return SandboxConfig(
        pod_uid=str(meta.get("uid")),
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        hostname=hostname,
        labels={
            cri.LABEL_POD_UID: str(meta.get("uid")),
            cri.LABEL_POD_NAME: str(meta.get("name")),
            cri.LABEL_POD_NAMESPACE: str(meta.get("namespace")),
            cri.LABEL_NODE: node_name,
            cri.LABEL_SANDBOX_ATTEMPT: str(attempt),
        },
        port_mappings=tuple(ports),
        dns=dns.config,
        host_aliases=aliases,
        host_network=bool(spec.get("hostNetwork")),
        host_ipc=bool(spec.get("hostIPC")),
        attempt=attempt,
    )


@dataclass
class _PodState:
    sandboxes: list[SandboxStatus] = field(default_factory=list)
    containers: list[ContainerStatus] = field(default_factory=list)

    def sandbox(self) -> SandboxStatus | None:
        ready = [s for s in self.sandboxes if s.state == SandboxState.READY]
        return max(ready, key=lambda s: s.created_at) if ready else None

    def instances(self, name: str, sandbox_id: str | None) -> list[ContainerStatus]:
        found = [
            c
            for c in self.containers
            if c.labels.get(cri.LABEL_CONTAINER_NAME) == name
            and (sandbox_id is None or c.sandbox_id == sandbox_id)
        ]
        return sorted(
            found,
            key=lambda c: (int(c.labels.get(cri.LABEL_RESTART_COUNT, "0")), c.created_at),
            reverse=True,
        )


class PodSyncer:
    """Drives one node's pods toward their specs through a :class:`ContainerRuntime`."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        options: SyncOptions,
        *,
        env: Env,
        volumes: Volumes,
        probes: Probes,
        recorder: Recorder,
        secrets: Secrets,
        clock: Any = time.time,
        relister: Relister | None = None,
    ) -> None:
        self.runtime = runtime
        self.options = options
        self.env = env
        self.volumes = volumes
        self.probes = probes
        self.recorder = recorder
        self.secrets = secrets
        self.clock = clock
        self.restart_backoff = Backoff(options.restart_backoff_initial, options.restart_backoff_max)
        self.image_backoff = Backoff(options.image_backoff_initial, options.image_backoff_max)
        self._waiting: dict[tuple[str, str], Waiting] = {}
        # Pulls in flight by image reference (concurrent pulls of one image coalesce).
        self._pulls: dict[str, asyncio.Future[str]] = {}
        self.relister = relister or Relister(runtime, {cri.LABEL_NODE: options.node_name})
        # pod uid -> when (relister clock) we last changed that pod in the engine
        self._changed_at: dict[str, float] = {}
        # pod uid -> the eviction decided for it (until the pod is removed)
        self._evictions: dict[str, KubeletFailure] = {}

    def evict(self, uid: str, failure: KubeletFailure) -> bool:
        """Mark the pod for eviction: its next sync kills it and reports ``failure``
        (phase Failed). False when it was already marked."""
        if uid in self._evictions:
            return False
        self._evictions[uid] = failure
        return True

    # --- runtime state ---------------------------------------------------------------
    async def state(self, uid: str) -> _PodState:
        """The pod's sandboxes and containers from the node's shared listing, made after
        our last change to the pod. Changes the engine makes by itself (exits) reach the
        listing within the kubelet's relist period, and the relist wakes the pod."""
        snapshot = await self.relister.newer_than(self._changed_at.get(uid, 0.0))
        return _PodState(*snapshot.pod(uid))

    @contextlib.contextmanager
    def _changing(self, pod: Mapping[str, Any] | str) -> Iterator[None]:
        """Around a call that changes the pod in the engine: later :meth:`state` calls
        wait for a listing that started after it ended (or failed)."""
        uid = pod if isinstance(pod, str) else str((pod.get("metadata") or {}).get("uid"))
        try:
            yield
        finally:
            self._changed_at[uid] = self.relister.clock()

    # --- the sync ------------------------------------------------------------------------
    async def sync(self, pod: dict[str, Any]) -> SyncResult:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid"))
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            await self.kill(pod, grace=0.0, reason="")
            return SyncResult()
        now = self.clock()
        state = await self.state(uid)
        deadline = spec.get("activeDeadlineSeconds")
        start_time = status.get("startTime")
        failure = self._evictions.get(uid)
        # An eviction kills at once (Kubernetes' hard eviction); a deadline gracefully.
        grace = 0.0
        if failure is None and deadline is not None and start_time:
            started = _parse_time(start_time)
            if started is not None and now - started >= int(deadline):
                failure = DEADLINE_EXCEEDED
                grace = float(spec.get("terminationGracePeriodSeconds", 30))
        if failure is not None:
            await self.kill(pod, grace=grace, reason=failure.reason)
            state = await self.state(uid)
            view = self._view(pod, state, state.sandbox(), initialized=False)
            view.failure = failure
            return SyncResult(status=pod_status(view, now=now))
        sandbox = state.sandbox()
        requeue: list[float] = [self.options.resync * random.uniform(0.9, 1.1)]
        if sandbox is None:
            # A new sandbox means every container starts again (the kubelet kills the rest).
            for c in state.containers:
                if c.state == ContainerState.RUNNING:
                    with self._changing(uid):
                        await self.runtime.stop_container(c.id, 2.0)
            attempt = len(state.sandboxes)
            sandbox = await self._new_sandbox(pod, attempt)
            if sandbox is None:
                view = self._view(pod, state, None, initialized=False)
                return SyncResult(requeue_after=5.0, status=pod_status(view, now=now))
            if state.containers:
                state = await self.state(uid)
            else:  # a new pod: nothing else changed, no need to ask the engine again
                state = _PodState([*state.sandboxes, sandbox], [])
        try:
            await self.volumes.setup(
                pod,
                pod_ip=sandbox.ip,
                node_name=self.options.node_name,
                node_ip=self.options.node_ip,
            )
        except Exception as exc:
            self.recorder.event(pod, "Warning", "FailedMount", str(getattr(exc, "message", exc)))
            view = self._view(pod, state, sandbox, initialized=False)
            for cv in view.regular + view.init:
                if cv.current is None:
                    cv.waiting = Waiting("ContainerCreating")
            return SyncResult(
                requeue_after=min(self.options.resync, 5.0), status=pod_status(view, now=now)
            )
        initialized = await self._sync_init(pod, state, sandbox, requeue)
        if initialized is None:  # an init container failed for good
            state = await self.state(uid)
            view = self._view(pod, state, sandbox, initialized=False)
            view.init_failed = True
            return SyncResult(status=pod_status(view, now=now))
        if initialized:
            await self._sync_containers(pod, state, sandbox, requeue)
        state = await self.state(uid)  # the same listing unless something changed
        running = {
            c.labels.get(cri.LABEL_CONTAINER_NAME, ""): c
            for c in state.containers
            if c.sandbox_id == sandbox.id and c.state == ContainerState.RUNNING
        }
        self.probes.sync_pod(pod, sandbox.ip, running)
        view = self._view(pod, state, sandbox, initialized=bool(initialized))
        await self._gc_instances(state)
        return SyncResult(requeue_after=min(requeue), status=pod_status(view, now=now))

    async def _new_sandbox(self, pod: dict[str, Any], attempt: int) -> SandboxStatus | None:
        try:
            dns = pod_dns(
                pod,
                ClusterDnsSettings(
                    self.options.cluster_dns,
                    self.options.cluster_domain,
                    self.options.resolv_conf,
                ),
            )
            for reason, message in dns.warnings:
                self.recorder.event(pod, "Warning", reason, message)
            with self._changing(pod):
                return await self.runtime.run_sandbox(
                    sandbox_config(pod, self.options.node_name, attempt, dns)
                )
        except cri.RuntimeError_ as exc:
            self.recorder.event(
                pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}"
            )
            return None

    def _key(self, pod: Mapping[str, Any], name: str) -> str:
        return f"{(pod.get('metadata') or {}).get('uid')}/{name}"

    async def _sync_init(
        self, pod: dict[str, Any], state: _PodState, sandbox: SandboxStatus, requeue: list[float]
    ) -> bool | None:
        """True when every init container is done (sidecars started); None on failure."""
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        uid = str((pod.get("metadata") or {}).get("uid"))
        for container in spec.get("initContainers") or []:
            name = str(container["name"])
            sidecar = container.get("restartPolicy") == "Always"
            instances = state.instances(name, sandbox.id)
            cur = instances[0] if instances else None
            if sidecar:
                if cur is not None and cur.state == ContainerState.RUNNING:
                    if not self.probes.started(uid, name):
                        requeue.append(1.0)
                        return False
                    continue
                await self._start_with_backoff(pod, container, sandbox, instances, requeue, True)
                return False
            if cur is not None and cur.state == ContainerState.EXITED and cur.exit_code == 0:
                continue
            if cur is not None and cur.state == ContainerState.RUNNING:
                requeue.append(1.0)
                return False
            if cur is not None and cur.state == ContainerState.EXITED and policy == "Never":
                return None
            await self._start_with_backoff(pod, container, sandbox, instances, requeue, True)
            return False
        return True

    async def _sync_containers(
        self, pod: dict[str, Any], state: _PodState, sandbox: SandboxStatus, requeue: list[float]
    ) -> None:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        uid = str((pod.get("metadata") or {}).get("uid"))
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        for container in spec.get("containers") or []:
            name = str(container["name"])
            instances = state.instances(name, sandbox.id)
            cur = instances[0] if instances else None
            if cur is not None and cur.state == ContainerState.RUNNING:
                why = self.probes.liveness_failed(uid, name, cur.id)
                changed = cur.labels.get(cri.LABEL_CONTAINER_HASH) != container_hash(container)
                if why or changed:
                    message = (
                        f"Container {name} failed liveness probe, will be restarted"
                        if why
                        else f"Container {name} definition changed, will be restarted"
                    )
                    self.recorder.event(pod, "Normal", "Killing", message, _field(pod, name))
                    await self._stop(pod, container, cur, grace)
                    requeue.append(0.0)
                continue
            if cur is not None and cur.state == ContainerState.CREATED:
                with self._changing(pod):
                    await self.runtime.start_container(cur.id)
                continue
            exited = cur is not None and cur.state == ContainerState.EXITED
            done = policy == "Never" or (
                policy == "OnFailure" and cur is not None and cur.exit_code == 0
            )
            if exited and done:
                continue
            await self._start_with_backoff(pod, container, sandbox, instances, requeue, False)

    async def _start_with_backoff(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        sandbox: SandboxStatus,
        instances: list[ContainerStatus],
        requeue: list[float],
        init: bool,
    ) -> None:
        name = str(container["name"])
        key = self._key(pod, name)
        now = self.clock()
        cur = instances[0] if instances else None
        if cur is not None and cur.state == ContainerState.EXITED:
            ran = (cur.finished_at or now) - (cur.started_at or now)
            if ran >= self.options.restart_backoff_reset:
                self.restart_backoff.reset(key)
            since = cur.finished_at or now
            left = self.restart_backoff.remaining(key, since, now)
            if left > 0:
                delay = self.restart_backoff.current(key)
                meta = pod.get("metadata") or {}
                self._waiting[(key, "restart")] = Waiting(
                    "CrashLoopBackOff",
                    f"back-off {_go_duration(delay)} restarting failed container={name} "
                    f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})",
                )
                self.recorder.event(
                    pod,
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container "
                    f"{name} in pod {meta.get('name')}_{meta.get('namespace')}"
                    f"({meta.get('uid')})",
                    _field(pod, name),
                )
                requeue.append(left)
                return
            self.restart_backoff.next(key, now)
        self._waiting.pop((key, "restart"), None)
        await self._start(pod, container, sandbox, instances, requeue, init)

    async def _start(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        sandbox: SandboxStatus,
        instances: list[ContainerStatus],
        requeue: list[float],
        init: bool,
    ) -> None:
        name = str(container["name"])
        key = self._key(pod, name)
        if not await self._ensure_image(pod, container, requeue):
            return
        # What the engine is asked for: the reference as Kubernetes means it, never the
        # engine's own short-name resolution (podman would look in localhost/ first).
        image = normalize_image(str(container.get("image", "")))
        try:
            security = security_config(pod, container, self.options.seccomp_root)
            verify_run_as_non_root(pod, container, await self.runtime.image_user(image))
            env = await self.env(pod, container, sandbox.ip)
            mounts = self.volumes.mounts(pod, container, dict(env))
        except Exception as exc:
            reason = str(getattr(exc, "reason", "CreateContainerConfigError"))
            message = str(getattr(exc, "message", exc))
            self._waiting[(key, "config")] = Waiting(reason, message)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {message}", _field(pod, name))
            requeue.append(min(self.options.resync, 5.0))
            return
        self._waiting.pop((key, "config"), None)
        env_map = dict(env)
        restart_count = 0
        lost = ""
        if instances:
            restart_count = int(instances[0].labels.get(cri.LABEL_RESTART_COUNT, "0")) + 1
        else:
            restart_count, lost = _lost_instance(pod, name, self.runtime.name)
        meta = pod.get("metadata") or {}
        config = ContainerConfig(
            name=name,
            image=image,
            command=tuple(expand(str(a), env_map) for a in container.get("command") or ()),
            args=tuple(expand(str(a), env_map) for a in container.get("args") or ()),
            working_dir=str(container.get("workingDir", "")),
            env=tuple(env),
            mounts=tuple(mounts),
            labels={
                cri.LABEL_POD_UID: str(meta.get("uid")),
                cri.LABEL_POD_NAME: str(meta.get("name")),
                cri.LABEL_POD_NAMESPACE: str(meta.get("namespace")),
                cri.LABEL_NODE: self.options.node_name,
                cri.LABEL_CONTAINER_NAME: name,
                cri.LABEL_CONTAINER_HASH: container_hash(container),
                cri.LABEL_RESTART_COUNT: str(restart_count),
                **({cri.LABEL_LOST_PREVIOUS: lost} if lost else {}),
            },
            resources=_resources(container),
            security=security,
            stdin=bool(container.get("stdin")),
            stdin_once=bool(container.get("stdinOnce")),
            tty=bool(container.get("tty")),
        )
        try:
            with self._changing(pod):
                cid = await self.runtime.create_container(sandbox.id, config)
        except cri.RuntimeError_ as exc:
            self._waiting[(key, "create")] = Waiting("CreateContainerError", str(exc))
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc}", _field(pod, name))
            requeue.append(min(self.options.resync, 5.0))
            return
        self._waiting.pop((key, "create"), None)
        self.recorder.event(
            pod, "Normal", "Created", f"Created container {name}", _field(pod, name)
        )
        try:
            with self._changing(pod):
                await self.runtime.start_container(cid)
        except cri.RuntimeError_ as exc:
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc}", _field(pod, name))
            requeue.append(1.0)
            return
        self.recorder.event(
            pod, "Normal", "Started", f"Started container {name}", _field(pod, name)
        )
        requeue.append(1.0 if init else self.options.resync)

    async def _ensure_image(
        self, pod: dict[str, Any], container: dict[str, Any], requeue: list[float]
    ) -> bool:
        name = str(container["name"])
        key = self._key(pod, name)
        image = str(container.get("image", ""))
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        try:
            ref = normalize_image(image)
        except InvalidImage as exc:
            message = (
                f'Failed to apply default image tag "{image}": couldn\'t parse image name '
                f'"{image}": {exc}'
            )
            self._waiting[(key, "image")] = Waiting("InvalidImageName", message)
            self.recorder.event(pod, "Warning", "InspectFailed", message, _field(pod, name))
            requeue.append(self.options.resync)
            return False
        present = await self.runtime.image_id(ref)
        if policy == "Never":
            if present is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                self._waiting[(key, "image")] = Waiting("ErrImageNeverPull", message)
                self.recorder.event(pod, "Warning", "ErrImageNeverPull", message, _field(pod, name))
                requeue.append(min(self.options.resync, 5.0))
                return False
            self._waiting.pop((key, "image"), None)
            self.recorder.event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                _field(pod, name),
            )
            return True
        if policy == "IfNotPresent" and present is not None:
            self._waiting.pop((key, "image"), None)
            self.recorder.event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                _field(pod, name),
            )
            return True
        now = self.clock()
        image_key = f"{key}/{image}"
        left = self.image_backoff.remaining(image_key, None, now)
        if left > 0:
            self._waiting[(key, "image")] = Waiting(
                "ImagePullBackOff", f'Back-off pulling image "{image}"'
            )
            self.recorder.event(
                pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', _field(pod, name)
            )
            requeue.append(left)
            return False
        self.recorder.event(pod, "Normal", "Pulling", f'Pulling image "{image}"', _field(pod, name))
        started = self.clock()
        try:
            auth = await self.secrets.pull_auth(pod)
            await self._pull(ref, auth)
        except cri.RuntimeError_ as exc:
            delay = self.image_backoff.next(image_key, self.clock())
            message = f'Failed to pull image "{image}": {exc}'
            self._waiting[(key, "image")] = Waiting("ErrImagePull", message)
            self.recorder.event(pod, "Warning", "Failed", message, _field(pod, name))
            requeue.append(delay)
            return False
        self.image_backoff.reset(image_key)
        self._waiting.pop((key, "image"), None)
        took = self.clock() - started
        self.recorder.event(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {took:.3f}s',
            _field(pod, name),
        )
        return True

    async def _pull(self, ref: str, auth: tuple[RegistryAuth, ...]) -> None:
        """Pull ``ref``; pulls of one image by several containers at once wait for the
        one in flight instead of starting their own (the kubelet's image puller)."""
        inflight = self._pulls.get(ref)
        if inflight is None:
            inflight = asyncio.ensure_future(self.runtime.pull_image(ref, auth))
            self._pulls[ref] = inflight
            inflight.add_done_callback(lambda done: self._pull_done(ref, done))
        await asyncio.shield(inflight)

    def _pull_done(self, ref: str, done: asyncio.Future[str]) -> None:
        self._pulls.pop(ref, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter got it, or none is left to

    async def _stop(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        status: ContainerStatus,
        grace: float,
    ) -> None:
        started = self.clock()
        hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
        if hook:
            await self._run_hook(pod, container, status, hook, grace)
        remaining = max(grace - (self.clock() - started), 0.0)
        with self._changing(pod):
            await self.runtime.stop_container(status.id, remaining)

    async def _run_hook(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        status: ContainerStatus,
        hook: Mapping[str, Any],
        grace: float,
    ) -> None:
        name = str(container.get("name"))
        try:
            if "exec" in hook:
                command = tuple(str(a) for a in (hook["exec"] or {}).get("command") or ())
                result = await asyncio.wait_for(
                    self.runtime.exec(status.id, command, grace), grace or None
                )
                if result.exit_code != 0:
                    self.recorder.event(
                        pod,
                        "Warning",
                        "FailedPreStopHook",
                        f"PreStopHook failed: exit code {result.exit_code}",
                        _field(pod, name),
                    )
            elif "sleep" in hook:
                await asyncio.sleep(min(float((hook["sleep"] or {}).get("seconds", 0)), grace))
        except (TimeoutError, cri.RuntimeError_) as exc:
            self.recorder.event(
                pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {exc}", _field(pod, name)
            )

    async def kill(self, pod: Mapping[str, Any], *, grace: float, reason: str) -> None:
        """Stop every container of the pod (preStop hooks first) and its sandbox; the
        instances stay for logs until :meth:`remove`."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid"))
        state = await self.state(uid)
        specs = {
            str(c.get("name")): c
            for c in [
                *((pod.get("spec") or {}).get("initContainers") or []),
                *((pod.get("spec") or {}).get("containers") or []),
            ]
        }
        running = [c for c in state.containers if c.state == ContainerState.RUNNING]
        if running and reason:
            for c in running:
                name = c.labels.get(cri.LABEL_CONTAINER_NAME, "")
                self.recorder.event(
                    pod, "Normal", "Killing", f"Stopping container {name}", _field(pod, name)
                )
        await asyncio.gather(
            *(
                self._stop(pod, specs.get(c.labels.get(cri.LABEL_CONTAINER_NAME, ""), {}), c, grace)
                for c in running
            )
        )
        for s in state.sandboxes:
            if s.state == SandboxState.READY:
                with self._changing(uid):
                    await self.runtime.stop_sandbox(s.id)
        self.probes.remove_pod(uid)

    async def remove(self, uid: str) -> None:
        """Remove every container, sandbox and volume of a pod (idempotent)."""
        state = await self.state(uid)
        with self._changing(uid):
            for c in state.containers:
                await self.runtime.remove_container(c.id)
            for s in state.sandboxes:
                await self.runtime.remove_sandbox(s.id)
        await self.volumes.teardown(uid)
        self.probes.remove_pod(uid)
        self._changed_at.pop(uid, None)
        self._evictions.pop(uid, None)
        prefix = f"{uid}/"
        self.restart_backoff.forget_prefix(prefix)
        self.image_backoff.forget_prefix(prefix)
        for key in [k for k in self._waiting if k[0].startswith(prefix)]:
            del self._waiting[key]

    async def _gc_instances(self, state: _PodState) -> None:
        """Keep the newest two instances of each container (current and previous)."""
        by_name: dict[str, list[ContainerStatus]] = {}
        for c in state.containers:
            by_name.setdefault(c.labels.get(cri.LABEL_CONTAINER_NAME, ""), []).append(c)
        for instances in by_name.values():
            ordered = sorted(
                instances,
                key=lambda c: (int(c.labels.get(cri.LABEL_RESTART_COUNT, "0")), c.created_at),
                reverse=True,
            )
            for old in ordered[2:]:
                if old.state != ContainerState.RUNNING:
                    with self._changing(old.labels.get(cri.LABEL_POD_UID, "")):
                        await self.runtime.remove_container(old.id)

    # --- status -----------------------------------------------------------------------
    def _view(
        self,
        pod: Mapping[str, Any],
        state: _PodState,
        sandbox: SandboxStatus | None,
        *,
        initialized: bool,
    ) -> PodView:
        spec = pod.get("spec") or {}
        uid = str((pod.get("metadata") or {}).get("uid"))
        sandbox_id = sandbox.id if sandbox else None

        def view(container: Mapping[str, Any], sidecar: bool) -> ContainerView:
            name = str(container.get("name"))
            instances = state.instances(name, None)
            current = [c for c in instances if c.sandbox_id == sandbox_id] if sandbox_id else []
            cur = current[0] if current else (instances[0] if instances else None)
            prev = instances[1] if len(instances) > 1 else None
            key = self._key(pod, name)
            waiting = None
            for kind in ("image", "config", "create", "restart"):
                if (key, kind) in self._waiting and (
                    cur is None or cur.state != ContainerState.RUNNING
                ):
                    waiting = self._waiting[(key, kind)]
                    break
            running = cur is not None and cur.state == ContainerState.RUNNING
            started = running and self.probes.started(uid, name)
            ready = started and self.probes.readiness(uid, name)
            return ContainerView(
                name=name,
                image=str(container.get("image", "")),
                runtime=self.runtime.name,
                current=cur,
                previous=prev,
                restart_count=int(cur.labels.get(cri.LABEL_RESTART_COUNT, "0")) if cur else 0,
                lost_previous=(
                    cur.labels.get(cri.LABEL_LOST_PREVIOUS, "") if cur and prev is None else ""
                ),
                waiting=waiting,
                ready=ready,
                started=started,
                sidecar=sidecar,
            )

        init = [
            view(c, c.get("restartPolicy") == "Always") for c in spec.get("initContainers") or []
        ]
        regular = [view(c, False) for c in spec.get("containers") or []]
        if not initialized:
            for v in regular:
                if v.current is None and v.waiting is None:
                    v.waiting = Waiting("PodInitializing")
        return PodView(
            pod=pod,
            sandbox_ready=sandbox is not None and sandbox.state == SandboxState.READY,
            pod_ip=sandbox.ip if sandbox else "",
            host_ip=self.options.node_ip,
            init=init,
            regular=regular,
            initialized=initialized,
            terminating=bool((pod.get("metadata") or {}).get("deletionTimestamp")),
        )

    async def final_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The status of a pod whose containers were stopped (deletion, terminal phase)."""
        uid = str((pod.get("metadata") or {}).get("uid"))
        state = await self.state(uid)
        view = self._view(
            pod,
            state,
            None,
            initialized=bool(
                ((pod.get("status") or {}).get("conditions") or [])
                and any(
                    c.get("type") == "Initialized" and c.get("status") == "True"
                    for c in (pod.get("status") or {}).get("conditions") or []
                )
            ),
        )
        view.terminating = True
        return pod_status(view, now=self.clock())


def _field(pod: Mapping[str, Any], name: str) -> str:
    spec = pod.get("spec") or {}
    for c in spec.get("initContainers") or []:
        if c.get("name") == name:
            return f"spec.initContainers{{{name}}}"
    return f"spec.containers{{{name}}}"


def _parse_time(value: str) -> float | None:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _go_duration(seconds: float) -> str:
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _lost_instance(pod: Mapping[str, Any], name: str, runtime: str) -> tuple[int, str]:
    """(restart count, lost container ID) for a container about to be created with no
    instance on the node: when the pod's reported status names an earlier container of
    this runtime that is gone (the cluster's stop removed it, or someone did by hand),
    the new one is its restart — the count goes on and the lost one is remembered for
    ``lastState``, as Kubernetes' kubelet keeps counting across a node's restart."""
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []
    ):
        if entry.get("name") != name:
            continue
        engine, _, cid = str(entry.get("containerID") or "").partition("://")
        if engine != runtime or not cid:
            return 0, ""
        return int(entry.get("restartCount") or 0) + 1, cid
    return 0, ""
