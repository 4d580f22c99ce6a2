"""The kubelet: registers its Node, renews its Lease, reports node status, watches the
pods bound to its node and runs one worker per pod that calls
:class:`~runtime.kubelet.podsync.PodSyncer` until the pod is gone.

Who runs it: ``gitops cluster up`` (one kubelet per node, in-process) and
``gitops kubelet`` (a kubelet as its own process). It talks to the API server only
through :mod:`kubeclient` over HTTPS, and to containers only through a
:class:`~runtime.kubelet.cri.ContainerRuntime`.

Restart safety: everything the kubelet decides is re-derived from the API and the
runtime's labelled containers, so a new kubelet process adopts the running containers
of its pods (no restarts, no duplicates) and removes those of pods deleted meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import platform
import shutil
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from kubeclient.events import EventRecorder
from kubeclient.informer import Informer, key_of
from kubeclient.rest import Client, KubeError
from runtime.kubelet import cri, eviction
from runtime.kubelet.cri import ContainerRuntime, RegistryAuth
from runtime.kubelet.env import CachedSource, container_env
from runtime.kubelet.podsync import PodSyncer, SyncOptions
from runtime.kubelet.probes import ProbeManager
from runtime.kubelet.server import KubeletServer
from runtime.kubelet.volumes import VolumeManager

log = structlog.get_logger(__name__)

KUBELET_VERSION = "v1.35.0-gitops"
LEASE_NAMESPACE = "kube-node-lease"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _host_memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1])}Ki"
    except OSError:
        pass
    return "4Gi"


def _host_disk(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).total // 1024}Ki"
    except OSError:
        return "50Gi"


@dataclass
class KubeletOptions:
    node_name: str
    root_dir: Path
    node_ip: str = "127.0.0.1"
    capacity: dict[str, str] = field(default_factory=dict)  # defaults from the host
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    status_interval: float = 60.0  # node status is also written whenever it changes
    source_ttl: float = 2.0  # how long ConfigMaps/Secrets are cached for env and volumes
    sync: SyncOptions | None = None
    port: int = 0  # where this kubelet serves logs (0: any free port)
    # Serving logs: the token the API server presents, and a certificate signed by the
    # cluster CA (cert, key). Without a token, logs are not served.
    server_token: str = ""
    server_cert: tuple[Path, Path] | None = None
    # Cluster DNS for pods (``--cluster-dns``/``--cluster-domain``); used when ``sync``
    # is None (an explicit SyncOptions carries its own).
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    # How often pods' emptyDir usage is checked against their sizeLimit (Kubernetes'
    # eviction monitoring period).
    eviction_interval: float = 10.0


class _PodEvents:
    """The kubelet's view of the shared event recorder: events about pods, with the
    container's field path."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    def event(
        self, pod: Mapping[str, Any], kind: str, reason: str, message: str, field_path: str = ""
    ) -> None:
        self.recorder.event(pod, kind, reason, "", message, field_path=field_path)


class _PullSecrets:
    def __init__(self, source: CachedSource) -> None:
        self.source = source

    async def pull_auth(self, pod: Mapping[str, Any]) -> tuple[RegistryAuth, ...]:
        namespace = str((pod.get("metadata") or {}).get("namespace"))
        out: list[RegistryAuth] = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self.source.get("v1", "secrets", namespace, str(ref.get("name")))
            if not secret:
                continue
            data = secret.get("data") or {}
            raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
            if not raw:
                continue
            try:
                doc = orjson.loads(base64.b64decode(raw))
            except ValueError:
                continue
            auths = doc.get("auths", doc) if isinstance(doc, dict) else {}
            for server, entry in auths.items():
                if not isinstance(entry, dict):
                    continue
                user, password = str(entry.get("username", "")), str(entry.get("password", ""))
                if entry.get("auth") and not user:
                    decoded = base64.b64decode(str(entry["auth"])).decode(errors="replace")
                    user, _, password = decoded.partition(":")
                out.append(
                    RegistryAuth(
                        server=str(server),
                        username=user,
                        password=password,
                        token=str(entry.get("identitytoken", "")),
                    )
                )
        return tuple(out)


class Kubelet:
    def __init__(self, client: Client, runtime: ContainerRuntime, options: KubeletOptions) -> None:
        self.client = client
        self.runtime = runtime
        self.options = options
        self.node_name = options.node_name
        options.root_dir.mkdir(parents=True, exist_ok=True)
        self._capacity: dict[str, str] | None = None
        self.source = CachedSource(client, ttl=options.source_ttl)
        self.volumes = VolumeManager(
            options.root_dir / "pods", self.source, node_allocatable=self.capacity()
        )
        self.events = EventRecorder(
            client, "kubelet", instance=options.node_name, host=options.node_name
        )
        self.recorder = _PodEvents(self.events)
        self.probes = ProbeManager(runtime, self._wake_uid)
        sync = options.sync or SyncOptions(
            node_name=options.node_name,
            node_ip=options.node_ip,
            cluster_dns=options.cluster_dns,
            cluster_domain=options.cluster_domain,
            seccomp_root=options.root_dir / "seccomp",
        )
        self.syncer = PodSyncer(
            runtime,
            sync,
            env=self._env,
            volumes=self.volumes,
            probes=self.probes,
            recorder=self.recorder,
            secrets=_PullSecrets(self.source),
        )
        self.pods = Informer(
            client, "v1", "pods", field_selector=f"spec.nodeName={options.node_name}"
        )
        self._by_uid: dict[str, dict[str, Any]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.ready = asyncio.Event()
        self.server = KubeletServer(
            runtime, options.server_token, self._find_pod, node_name=options.node_name
        )

    def _find_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods.get(f"{namespace}/{name}")

    # --- capacity and node object ------------------------------------------------------
    def capacity(self) -> dict[str, str]:
        """The node's capacity: the host's, overridden by the options (read once)."""
        if self._capacity is None:
            cap = {
                "cpu": str(os.cpu_count() or 1),
                "memory": _host_memory(),
                "pods": "110",
                "ephemeral-storage": _host_disk(self.options.root_dir),
                "hugepages-2Mi": "0",
            }
            cap.update(self.options.capacity)
            self._capacity = cap
        return dict(self._capacity)

    def _conditions(self) -> list[dict[str, Any]]:
        now = _now()

        def cond(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return {
                "type": kind,
                "status": status,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }

        return [
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]

    async def _node_status(self, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        cap = self.capacity()
        old = {str(c.get("type")): c for c in ((previous or {}).get("conditions") or [])}
        conditions = self._conditions()
        for c in conditions:  # keep transition times of unchanged conditions
            before = old.get(c["type"])
            if before and before.get("status") == c["status"]:
                c["lastTransitionTime"] = before.get("lastTransitionTime", c["lastTransitionTime"])
        version = await self.runtime.version()
        return {
            "capacity": cap,
            "allocatable": dict(cap),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.options.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.options.port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": f"{self.runtime.name}://{version}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                    platform.machine(), platform.machine()
                ),
            },
        }

    async def register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64" if platform.machine() == "x86_64" else platform.machine(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"
            if platform.machine() == "x86_64"
            else platform.machine(),
            **self.options.labels,
        }
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": labels},
            "spec": {"taints": self.options.taints} if self.options.taints else {},
            "status": await self._node_status(None),
        }
        try:
            await self.client.create("v1", "nodes", body)
        except KubeError as exc:
            if not exc.already_exists:
                raise
            current = await self.client.get("v1", "nodes", self.node_name)
            await self.client.patch("v1", "nodes", self.node_name, {"metadata": {"labels": labels}})
            await self.client.patch(
                "v1",
                "nodes",
                self.node_name,
                {"status": await self._node_status(current.get("status"))},
                subresource="status",
            )
        log.info("kubelet.registered", node=self.node_name, runtime=self.runtime.name)

    async def _lease_loop(self) -> None:
        node = await self.client.get("v1", "nodes", self.node_name)
        owner = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": self.node_name,
                "uid": (node.get("metadata") or {}).get("uid"),
            }
        ]
        while True:
            body = {
                "spec": {
                    "holderIdentity": self.node_name,
                    "leaseDurationSeconds": self.options.lease_duration,
                    "renewTime": _micro_now(),
                }
            }
            try:
                await self.client.patch(
                    "coordination.k8s.io/v1", "leases", self.node_name, body, LEASE_NAMESPACE
                )
            except KubeError as exc:
                if exc.not_found:
                    lease = {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": self.node_name,
                            "namespace": LEASE_NAMESPACE,
                            "ownerReferences": owner,
                        },
                        **body,
                    }
                    with contextlib.suppress(KubeError):
                        await self.client.create(
                            "coordination.k8s.io/v1", "leases", lease, LEASE_NAMESPACE
                        )
                else:
                    log.debug("kubelet.lease_failed", node=self.node_name, error=str(exc))
            await asyncio.sleep(self.options.lease_renew_interval)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.status_interval)
            try:
                node = await self.client.get("v1", "nodes", self.node_name)
                await self.client.patch(
                    "v1",
                    "nodes",
                    self.node_name,
                    {"status": await self._node_status(node.get("status"))},
                    subresource="status",
                )
            except KubeError as exc:
                log.debug("kubelet.status_failed", node=self.node_name, error=str(exc))

    # --- pods ------------------------------------------------------------------------------
    async def _env(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str
    ) -> list[tuple[str, str]]:
        return await container_env(
            dict(pod),
            dict(container),
            self.source,
            node_name=self.node_name,
            node_ip=self.options.node_ip,
            pod_ip=pod_ip,
            pod_ips=[pod_ip] if pod_ip else [],
            node_allocatable=self.capacity(),
        )

    def _on_pod(self, pod: dict[str, Any]) -> None:
        uid = str((pod.get("metadata") or {}).get("uid"))
        before = self._by_uid.get(uid)
        self._by_uid[uid] = pod
        if before is not None and _same_desired(before, pod):
            return  # only the status changed (often our own write): nothing to do
        self._wake_uid(uid)

    def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        uid = str((pod.get("metadata") or {}).get("uid"))
        self._by_uid.pop(uid, None)
        self._wake_uid(uid, last=pod)

    def _wake_uid(self, uid: str, last: dict[str, Any] | None = None) -> None:
        wake = self._wakes.get(uid)
        if wake is None:
            pod = self._by_uid.get(uid) or last
            if pod is None:
                return
            wake = asyncio.Event()
            self._wakes[uid] = wake
            self._workers[uid] = asyncio.create_task(self._worker(uid, pod))
        wake.set()

    def _later(self, uid: str, delay: float) -> None:
        old = self._timers.pop(uid, None)
        if old is not None:
            old.cancel()
        self._timers[uid] = asyncio.get_running_loop().call_later(
            max(delay, 0.05), self._wake_uid, uid
        )

    async def _worker(self, uid: str, first: dict[str, Any]) -> None:
        last = first
        wake = self._wakes[uid]
        try:
            while True:
                await wake.wait()
                wake.clear()
                pod = self._by_uid.get(uid)
                try:
                    if pod is None:
                        await self.syncer.kill(last, grace=2.0, reason="")
                        await self.syncer.remove(uid)
                        return
                    last = pod
                    if (pod.get("metadata") or {}).get("deletionTimestamp"):
                        await self._terminate(pod)
                        continue
                    result = await self.syncer.sync(pod)
                    if result.status is not None:
                        await self._write_status(pod, result.status)
                    if result.requeue_after is not None:
                        self._later(uid, result.requeue_after)
                except KubeError as exc:
                    log.debug("kubelet.sync_retry", pod=key_of(last), error=str(exc))
                    self._later(uid, 1.0)
                except cri.RuntimeError_ as exc:
                    log.warning("kubelet.runtime_error", pod=key_of(last), error=str(exc))
                    self._later(uid, 2.0)
        finally:
            self._wakes.pop(uid, None)
            self._workers.pop(uid, None)
            timer = self._timers.pop(uid, None)
            if timer is not None:
                timer.cancel()

    async def _terminate(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        await self.syncer.kill(pod, grace=grace, reason="Killing")
        status = await self.syncer.final_status(pod)
        await self._write_status(pod, status)
        await self.syncer.remove(str(meta.get("uid")))
        try:
            await self.client.delete(
                "v1",
                "pods",
                str(meta.get("name")),
                str(meta.get("namespace")),
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta.get("uid")},
                },
            )
        except KubeError as exc:
            if not (exc.not_found or exc.status == 409):
                raise

    async def _write_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        if status == (pod.get("status") or {}):
            return
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(
                "v1",
                "pods",
                str(meta.get("name")),
                {"status": status},
                str(meta.get("namespace")),
                subresource="status",
            )
        except KubeError as exc:
            if not exc.not_found:
                raise

    async def _cleanup_orphans(self) -> None:
        """Remove containers of pods that are no longer bound here (deleted while down)."""
        known = set(self._by_uid)
        snapshot = await self.syncer.relister.now()
        for uid in snapshot.uids() - known:
            log.info("kubelet.orphan_removed", node=self.node_name, pod_uid=uid)
            await self.syncer.remove(uid)
        for uid in self.volumes.pod_dirs():
            if uid not in known:
                await self.volumes.teardown(uid)

    async def _probe_events_loop(self) -> None:
        """Turn probe results into Unhealthy/ProbeWarning Events."""
        while True:
            await asyncio.sleep(1.0)
            for ev in self.probes.events():
                pod = self._by_uid.get(ev.pod_uid) or {
                    "metadata": {"uid": ev.pod_uid, "name": ev.pod_name, "namespace": ev.namespace}
                }
                self.recorder.event(pod, ev.type, ev.reason, ev.message, ev.field_path)

    async def _eviction_loop(self) -> None:
        """Evict pods whose emptyDir volumes use more than their sizeLimit
        (:mod:`runtime.kubelet.eviction`)."""
        while True:
            await asyncio.sleep(self.options.eviction_interval)
            for uid, pod in list(self._by_uid.items()):
                meta, status = pod.get("metadata") or {}, pod.get("status") or {}
                if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
                    continue
                if not eviction.size_limits(pod):
                    continue
                failure = await asyncio.to_thread(
                    eviction.check_pod, pod, self.volumes.empty_dir_path
                )
                if failure is not None and self.syncer.evict(uid, failure):
                    log.info("kubelet.evicted", pod=meta.get("name"), message=failure.message)
                    self.recorder.event(pod, "Warning", failure.reason, failure.message)
                    self._wake_uid(uid)

    def _on_engine_change(self, uids: set[str]) -> None:
        """The relist saw these pods' containers change (exit, start, vanish): sync now."""
        for uid in uids:
            if uid in self._by_uid:
                self._wake_uid(uid)

    async def run(self) -> None:
        """Register, then keep the node's pods in sync until cancelled."""
        if self.options.server_token:
            ctx = None
            if self.options.server_cert is not None:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(
                    str(self.options.server_cert[0]), str(self.options.server_cert[1])
                )
            self.options.port = await self.server.start(
                self.options.node_ip, self.options.port, ctx
            )
        await self.register()
        self.pods.on(
            add=self._on_pod,
            update=lambda _old, new: self._on_pod(new),
            delete=self._on_pod_deleted,
        )
        self._tasks = [
            asyncio.create_task(self._lease_loop()),
            asyncio.create_task(self._status_loop()),
            asyncio.create_task(self.events.run()),
            asyncio.create_task(self.pods.run()),
            asyncio.create_task(self._probe_events_loop()),
            asyncio.create_task(self._eviction_loop()),
        ]
        try:
            await self.pods.synced.wait()
            await self._cleanup_orphans()
            self._tasks.append(
                asyncio.create_task(
                    self.syncer.relister.run(
                        self.syncer.options.relist_period, self._on_engine_change
                    )
                )
            )
            self.ready.set()
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def remove_all_containers(self) -> None:
        """Stop and remove every sandbox and container of this node (cluster shutdown)."""
        snapshot = await self.syncer.relister.now()
        await asyncio.gather(*(self.syncer.remove(uid) for uid in snapshot.uids()))

    async def stop(self) -> None:
        """Stop watching and working. Containers keep running (a kubelet restart adopts them)."""
        tasks = [*self._tasks, *self._workers.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        await self.probes.close()
        await self.server.stop()


def _gate_conditions(pod: dict[str, Any]) -> dict[str, Any]:
    """The status of the pod's readiness-gate conditions (written by other controllers)."""
    gates = {g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []}
    if not gates:
        return {}
    return {
        c.get("type"): c.get("status")
        for c in (pod.get("status") or {}).get("conditions") or []
        if c.get("type") in gates
    }


def _same_desired(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when two versions of a pod differ only in status and bookkeeping metadata
    (other than readiness-gate conditions, which change the pod's Ready)."""
    if old.get("spec") != new.get("spec"):
        return False
    if _gate_conditions(old) != _gate_conditions(new):
        return False
    ignore = ("resourceVersion", "managedFields", "generation")
    old_meta = {k: v for k, v in (old.get("metadata") or {}).items() if k not in ignore}
    new_meta = {k: v for k, v in (new.get("metadata") or {}).items() if k not in ignore}
    return old_meta == new_meta


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"
