"""The built-in cluster's scheduler: informers fill the cache and the queue, one loop
pops a pod, runs a scheduling cycle (:mod:`runtime.scheduler.framework`), assumes the
pod on the chosen node at once and hands the binding (``pods/binding``) to a pool of
bind workers; failures become ``PodScheduled=False`` conditions and ``FailedScheduling``
events, and unschedulable pods wait for a cluster event (node added or changed, pod
deleted, …) or five minutes.

Who calls it: ``gitops cluster up`` (:mod:`runtime.cluster`) runs
``await Scheduler(client).run()`` next to the API server; the integration tests and
``bench/scheduler_bench.py`` run it in their own event loop against a server process.
It reaches the API server only through :mod:`kubeclient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubeclient.events import EventRecorder, now_rfc3339
from kubeclient.informer import Informer, running, wait_synced
from kubeclient.rest import STRATEGIC_PATCH, Client, KubeError, resource_path
from runtime.scheduler.framework import (
    FitError,
    Framework,
    FrameworkOptions,
    NoNodesAvailable,
    ScheduleResult,
)
from runtime.scheduler.nodeinfo import ClusterState
from runtime.scheduler.plugins import volumes as volume_plugins
from runtime.scheduler.plugins.podtopologyspread import controller_selector
from runtime.scheduler.podinfo import TERMINAL_PHASES, PodInfo
from runtime.scheduler.preemption import Plan, preempt
from runtime.scheduler.queue import QueuedPod, SchedulingQueue
from runtime.scheduler.status import DRA_NO_CLAIMS, NO_NODES

log = structlog.get_logger(__name__)

# Plugins whose verdict a given kind of cluster event can change (EventsToRegister).
_POD_DELETE_HELPS = frozenset(
    {"NodeResourcesFit", "NodePorts", "InterPodAffinity", "PodTopologySpread", "VolumeRestrictions"}
)
_POD_ADD_HELPS = frozenset({"InterPodAffinity", "PodTopologySpread"})
_VOLUME_HELPS = frozenset({"VolumeRestrictions", "VolumeBinding", "VolumeZone"})
_NAMESPACE_HELPS = frozenset({"InterPodAffinity"})


@dataclass
class SchedulerOptions:
    """How the scheduler behaves. The client it is given should allow at least
    ``bind_parallelism + event_workers + 12`` connections (each informer's watch holds one)."""

    scheduler_name: str = "default-scheduler"
    bind_parallelism: int = 16
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    max_unschedulable_seconds: float = 300.0
    unschedulable_flush_interval: float = 30.0
    percentage_of_nodes_to_score: int = 0
    # Treat NotReady/Unknown/pressure conditions and spec.unschedulable as the NoSchedule
    # taints the node lifecycle controller adds for them.
    condition_taints: bool = True
    preemption: bool = True
    # Add the DynamicResources PostFilter note kube-scheduler >= 1.34 puts in messages.
    dynamic_resources_note: bool = True
    # Watch services and ReplicaSets/StatefulSets/ReplicationControllers for the default
    # spreading of a controller's pods.
    default_spreading: bool = True
    # Watch PVCs, PVs and StorageClasses for the volume plugins.
    volumes: bool = True
    volume_bind_timeout: float = 600.0
    # Assumed pods whose binding is not written yet; scheduling pauses beyond this.
    max_pending_binds: int = 512
    event_queue: int = 1000
    event_workers: int = 2
    event_qps: float = 50.0
    event_burst: int = 200
    # Hand the event loop back after this much scheduling work (seconds).
    time_slice: float = 0.002
    seed: int | None = None
    latency_samples: int = 200_000


@dataclass
class SchedulerStats:
    scheduled: int = 0
    unschedulable: int = 0
    errors: int = 0
    bind_failures: int = 0
    preemptions: int = 0
    # (pod key, seconds from entering the queue to bound, seconds from the successful
    # attempt's start to bound)
    latencies: list[tuple[str, float, float]] = field(default_factory=list)
    first_bound: float = 0.0
    last_bound: float = 0.0


class Scheduler:
    """``await Scheduler(client).run()`` schedules until cancelled."""

    def __init__(self, client: Client, options: SchedulerOptions | None = None) -> None:
        self.client = client
        self.options = options or SchedulerOptions()
        o = self.options
        self.state = ClusterState(condition_taints=o.condition_taints)
        self.queue = SchedulingQueue(
            initial_backoff=o.pod_initial_backoff,
            max_backoff=o.pod_max_backoff,
            max_unschedulable_seconds=o.max_unschedulable_seconds,
        )
        self.framework = Framework(
            FrameworkOptions(
                percentage_of_nodes_to_score=o.percentage_of_nodes_to_score,
                dynamic_resources=o.dynamic_resources_note,
                seed=o.seed,
            )
        )
        self.recorder = EventRecorder(
            client,
            o.scheduler_name,
            max_queue=o.event_queue,
            workers=o.event_workers,
            qps=o.event_qps,
            burst=o.event_burst,
        )
        self.stats = SchedulerStats()
        self.ready = asyncio.Event()
        self._binds: asyncio.Queue[tuple[QueuedPod, PodInfo, ScheduleResult, float]] | None = None
        self._pending_binds = 0
        self._bind_room = asyncio.Event()
        self._status_sent: dict[str, tuple[str, str, str, str]] = {}
        self._nominations: dict[str, tuple[str, PodInfo]] = {}  # uid → (node, pod)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._added: dict[str, float] = {}
        self.informers: dict[str, Informer] = {}

    # --- wiring ----------------------------------------------------------------------------------
    def _informers(self) -> list[Informer]:
        c = self.client
        s = self.state
        pods = Informer(c, "v1", "pods")
        pods.on(
            add=lambda o: self._on_pod(None, o), update=self._on_pod, delete=self._on_pod_deleted
        )
        nodes = Informer(c, "v1", "nodes")
        nodes.on(
            add=self._on_node, update=lambda _o, n: self._on_node(n), delete=self._on_node_deleted
        )
        namespaces = Informer(c, "v1", "namespaces")
        namespaces.on(
            add=lambda o: self._on_namespace(None, o),
            update=self._on_namespace,
            delete=lambda o: s.remove_namespace(str(o["metadata"]["name"])),
        )
        out = {"namespaces": namespaces, "nodes": nodes}
        if self.options.volumes:
            pvcs = Informer(c, "v1", "persistentvolumeclaims")
            pvcs.on(
                add=lambda o: self._volume_event(s.set_pvc, o),
                update=lambda _o, n: self._volume_event(s.set_pvc, n),
                delete=lambda o: self._volume_event(
                    lambda x: s.remove_pvc(
                        f"{x['metadata'].get('namespace')}/{x['metadata']['name']}"
                    ),
                    o,
                ),
            )
            pvs = Informer(c, "v1", "persistentvolumes")
            pvs.on(
                add=lambda o: self._volume_event(s.set_pv, o),
                update=lambda _o, n: self._volume_event(s.set_pv, n),
                delete=lambda o: self._volume_event(
                    lambda x: s.remove_pv(str(x["metadata"]["name"])), o
                ),
            )
            classes = Informer(c, "storage.k8s.io/v1", "storageclasses")
            classes.on(
                add=lambda o: self._volume_event(s.set_storage_class, o),
                update=lambda _o, n: self._volume_event(s.set_storage_class, n),
                delete=lambda o: self._volume_event(
                    lambda x: s.remove_storage_class(str(x["metadata"]["name"])), o
                ),
            )
            out.update(
                {
                    "persistentvolumeclaims": pvcs,
                    "persistentvolumes": pvs,
                    "storageclasses": classes,
                }
            )
        if self.options.default_spreading:
            services = Informer(c, "v1", "services")
            services.on(
                add=s.set_service,
                update=lambda _o, n: s.set_service(n),
                delete=lambda o: s.remove_service(
                    str(o["metadata"].get("namespace")), str(o["metadata"]["name"])
                ),
            )
            out["services"] = services
            for kind, api, plural in (
                ("ReplicaSet", "apps/v1", "replicasets"),
                ("StatefulSet", "apps/v1", "statefulsets"),
                ("ReplicationController", "v1", "replicationcontrollers"),
            ):
                inf = Informer(c, api, plural)
                self._watch_controllers(inf, kind)
                out[plural] = inf
        out["pods"] = pods  # last: the rest of the cache is there when pods arrive
        self.informers = out
        return list(out.values())

    def _watch_controllers(self, informer: Informer, kind: str) -> None:
        def put(obj: Mapping[str, Any]) -> None:
            self.state.set_controller(kind, obj, controller_selector(obj, kind))

        def remove(obj: Mapping[str, Any]) -> None:
            meta = obj.get("metadata") or {}
            self.state.remove_controller(kind, str(meta.get("namespace")), str(meta.get("name")))

        informer.on(add=put, update=lambda _old, new: put(new), delete=remove)

    async def run(self) -> None:
        """Run informers, the scheduling loop, bind workers and the event recorder until
        cancelled."""
        self._binds = asyncio.Queue()
        informers = self._informers()
        required = [self.informers["nodes"], self.informers["namespaces"]]
        optional = [i for i in informers[:-1] if i not in required]
        async with running(*informers[:-1]):
            await wait_synced(*required, timeout=120)
            try:
                await wait_synced(*optional, timeout=30)
            except TimeoutError:
                missing = [i.plural for i in optional if not i.synced.is_set()]
                log.warning("scheduler.informers_not_synced", resources=missing)
            async with running(informers[-1]):
                await wait_synced(informers[-1], timeout=120)
                self.ready.set()
                log.info(
                    "scheduler.started",
                    name=self.options.scheduler_name,
                    nodes=len(self.state.order),
                )
                workers = [
                    asyncio.create_task(self._bind_worker())
                    for _ in range(self.options.bind_parallelism)
                ]
                aux = [
                    asyncio.create_task(self.recorder.run()),
                    asyncio.create_task(self._flush_loop()),
                ]
                try:
                    await self._loop()
                finally:
                    self.queue.close()
                    for t in [*workers, *aux, *self._tasks]:
                        t.cancel()
                    for t in [*workers, *aux, *list(self._tasks)]:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await t

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- informer handlers ----------------------------------------------------------------------------
    def _responsible(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (
            (spec.get("schedulerName") or "default-scheduler") == self.options.scheduler_name
            and not spec.get("nodeName")
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
        )

    def _on_pod(self, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        meta = new.get("metadata") or {}
        spec = new.get("spec") or {}
        uid = str(meta.get("uid") or "")
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if spec.get("nodeName"):
            if key in self.queue:
                self.queue.delete(key)
            self._drop_nomination(uid)
            if (new.get("status") or {}).get("phase") in TERMINAL_PHASES:
                if self.state.remove_pod(uid) is not None:
                    self.queue.move_all(_helps(_POD_DELETE_HELPS))
                return
            existing = self.state.pod(uid)
            if existing is not None:
                labels_changed = existing.labels != (meta.get("labels") or {})
                pi = existing.with_meta(new)
                was_ours = self.state.is_assumed(uid)
            else:
                pi = PodInfo(new)
                labels_changed = True
                was_ours = False
            self.state.add_pod(pi)
            if labels_changed and not was_ours:
                self.queue.move_all(_helps(_POD_ADD_HELPS))
            return
        if self._responsible(new):
            if self.state.is_assumed(uid):
                return  # being bound
            queued = self.queue.where(key)
            if old is not None and queued and old.get("spec") == spec:
                current = self.queue.get(key)
                pi = (
                    current.info.with_meta(new)
                    if current is not None and current.info.uid == uid
                    else PodInfo(new)
                )
            else:
                pi = PodInfo(new)
            if not queued:
                self._added[key] = time.perf_counter()
            if queued:
                self.queue.update(pi)
            else:
                self.queue.add(pi)
            nominated = str((new.get("status") or {}).get("nominatedNodeName") or "")
            if nominated:
                self._nominate(pi, nominated)
            else:
                self._drop_nomination(uid)
        else:
            self.queue.delete(key)
            self._drop_nomination(uid)
            self._added.pop(key, None)

    def _on_pod_deleted(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.queue.delete(key)
        self._added.pop(key, None)
        self._drop_nomination(uid)
        self._status_sent.pop(uid, None)
        if self.state.remove_pod(uid) is not None:
            self.queue.move_all(_helps(_POD_DELETE_HELPS))

    def _on_node(self, node: Mapping[str, Any]) -> None:
        if self.state.upsert_node(node) != "unchanged":
            self.queue.move_all()

    def _on_node_deleted(self, node: Mapping[str, Any]) -> None:
        self.state.remove_node(str((node.get("metadata") or {}).get("name") or ""))

    def _on_namespace(self, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        self.state.set_namespace(new)
        old_labels = ((old or {}).get("metadata") or {}).get("labels")
        if old is None or old_labels != (new.get("metadata") or {}).get("labels"):
            self.queue.move_all(_helps(_NAMESPACE_HELPS))

    def _volume_event(
        self, apply: Callable[[Mapping[str, Any]], None], obj: Mapping[str, Any]
    ) -> None:
        apply(obj)
        self.queue.move_all(_helps(_VOLUME_HELPS))

    # --- nominations (preemption) ------------------------------------------------------------------
    def _nominate(self, pi: PodInfo, node: str) -> None:
        current = self._nominations.get(pi.uid)
        if current is not None and current[0] == node:
            lst = self.framework.nominated.get(node, [])
            for i, p in enumerate(lst):
                if p.uid == pi.uid:
                    lst[i] = pi
            self._nominations[pi.uid] = (node, pi)
            return
        self._drop_nomination(pi.uid)
        self._nominations[pi.uid] = (node, pi)
        self.framework.nominated.setdefault(node, []).append(pi)

    def _drop_nomination(self, uid: str) -> None:
        entry = self._nominations.pop(uid, None)
        if entry is None:
            return
        node = entry[0]
        lst = [p for p in self.framework.nominated.get(node, []) if p.uid != uid]
        if lst:
            self.framework.nominated[node] = lst
        else:
            self.framework.nominated.pop(node, None)

    # --- the scheduling loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        slice_start = time.perf_counter()
        while True:
            qp = self.queue.pop_nowait()
            if qp is None:
                await asyncio.sleep(0)  # let bind workers and informers run first
                qp = self.queue.pop_nowait() or await self.queue.pop()
                if qp is None:
                    return
                slice_start = time.perf_counter()
            try:
                self.schedule_one(qp)
            except Exception as exc:  # a bug must not stop scheduling
                log.exception("scheduler.cycle_failed", pod=qp.key, error=repr(exc))
                self.stats.errors += 1
                self.queue.requeue_backoff(qp)
            if self._pending_binds >= self.options.max_pending_binds:
                self._bind_room.clear()
                await self._bind_room.wait()
                slice_start = time.perf_counter()
            elif time.perf_counter() - slice_start > self.options.time_slice:
                await asyncio.sleep(0)
                slice_start = time.perf_counter()

    def schedule_one(self, qp: QueuedPod) -> None:
        """One scheduling cycle for a popped pod (synchronous: the cache cannot change
        under it)."""
        pi = qp.info
        started = time.perf_counter()
        if not self._responsible(pi.pod) or self.state.is_assumed(pi.uid):
            self.queue.done(qp)
            return
        try:
            result = self.framework.schedule(pi, self.state)
        except FitError as err:
            self._unschedulable(qp, err)
            return
        except NoNodesAvailable:
            self.stats.unschedulable += 1
            self._failed(qp, "Unschedulable", NO_NODES, None)
            self.queue.requeue_unschedulable(qp, set())
            return
        self.state.assume(pi, result.node)
        self.queue.done(qp)
        self._drop_nomination(pi.uid)
        assert self._binds is not None
        self._pending_binds += 1
        self._binds.put_nowait((qp, pi, result, started))

    def _unschedulable(self, qp: QueuedPod, err: FitError) -> None:
        pi = qp.info
        self.stats.unschedulable += 1
        parts = [DRA_NO_CLAIMS] if self.options.dynamic_resources_note else []
        nominated: str | None = None
        plan: Plan | None = None
        if self.options.preemption:
            msg, plan = preempt(self.framework, pi, self.state, err)
            if plan is None:
                parts.append(msg)
        err.postfilter_msg = "" if plan is not None else ", ".join(parts)
        if plan is not None:
            nominated = plan.node
            self.stats.preemptions += 1
            self._nominate(pi, plan.node)
            self._spawn(self._evict(pi, plan))
        elif str((pi.pod.get("status") or {}).get("nominatedNodeName") or ""):
            nominated = ""  # clear a stale nomination
            self._drop_nomination(pi.uid)
        self.queue.requeue_unschedulable(qp, err.plugins)
        self._failed(qp, "Unschedulable", err.message, nominated)

    def _failed(self, qp: QueuedPod, reason: str, message: str, nominated: str | None) -> None:
        pod = qp.info.pod
        self.recorder.event(pod, "Warning", "FailedScheduling", "Scheduling", message)
        self._update_status(qp.info, reason, message, nominated)

    def _update_status(self, pi: PodInfo, reason: str, message: str, nominated: str | None) -> None:
        status = pi.pod.get("status") or {}
        current = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        nnn_now = str(status.get("nominatedNodeName") or "")
        wanted = ("False", reason, message, nnn_now if nominated is None else nominated)
        have = (
            (
                str(current.get("status")),
                str(current.get("reason") or ""),
                str(current.get("message") or ""),
                nnn_now,
            )
            if current
            else None
        )
        if have == wanted or self._status_sent.get(pi.uid) == wanted:
            return
        self._status_sent[pi.uid] = wanted
        transition = (
            current.get("lastTransitionTime")
            if current and current.get("status") == "False"
            else now_rfc3339()
        )
        body: dict[str, Any] = {
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": reason,
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": transition,
                    }
                ]
            }
        }
        if nominated is not None and nominated != nnn_now:
            body["status"]["nominatedNodeName"] = nominated or None
        self._spawn(self._patch_status(pi, body))

    async def _patch_status(self, pi: PodInfo, body: dict[str, Any]) -> None:
        try:
            await self.client.patch(
                "v1",
                "pods",
                pi.name,
                body,
                pi.namespace,
                subresource="status",
                content_type=STRATEGIC_PATCH,
            )
        except KubeError as exc:
            self._status_sent.pop(pi.uid, None)
            if not exc.not_found:
                log.debug("scheduler.status_failed", pod=pi.key, error=str(exc))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.unschedulable_flush_interval)
            self.queue.flush_unschedulable_leftover()

    # --- binding -----------------------------------------------------------------------------------------
    async def _bind_worker(self) -> None:
        assert self._binds is not None
        while True:
            qp, pi, result, started = await self._binds.get()
            try:
                await self._bind(qp, pi, result, started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("scheduler.bind_crashed", pod=pi.key, error=repr(exc))
                self.state.forget(pi.uid)
            finally:
                self._binds.task_done()
                self._pending_binds -= 1
                if self._pending_binds < self.options.max_pending_binds:
                    self._bind_room.set()

    async def _bind(
        self, qp: QueuedPod, pi: PodInfo, result: ScheduleResult, started: float
    ) -> None:
        try:
            if result.volumes is not None and result.volumes.delayed:
                await self._prebind_volumes(pi, result)
            await self.client.request(
                "POST",
                resource_path("v1", "pods", pi.namespace, pi.name, "binding"),
                body={
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": pi.name, "namespace": pi.namespace, "uid": pi.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": result.node},
                },
            )
        except (KubeError, TimeoutError) as exc:
            self.state.forget(pi.uid)
            self.stats.bind_failures += 1
            log.info("scheduler.bind_failed", pod=pi.key, node=result.node, error=str(exc))
            self.queue.move_all(_helps(_POD_DELETE_HELPS))
            if isinstance(exc, KubeError) and (
                exc.not_found
                or (
                    exc.status == 409
                    and ("already assigned" in exc.message or "being deleted" in exc.message)
                )
            ):
                return  # deleted, or bound by someone else: the informer will tell
            message = f"binding rejected: {exc}"
            self.recorder.event(pi.pod, "Warning", "FailedScheduling", "Scheduling", message)
            self._update_status(pi, "SchedulerError", message, None)
            self.queue.readd(qp)
            return
        self.state.finish_binding(pi.uid)
        now = time.perf_counter()
        added = self._added.pop(pi.key, started)
        self.stats.scheduled += 1
        if not self.stats.first_bound:
            self.stats.first_bound = now
        self.stats.last_bound = now
        if len(self.stats.latencies) < self.options.latency_samples:
            self.stats.latencies.append((pi.key, now - added, now - started))
        self.recorder.event(
            pi.pod,
            "Normal",
            "Scheduled",
            "Binding",
            f"Successfully assigned {pi.namespace}/{pi.name} to {result.node}",
        )

    async def _prebind_volumes(self, pi: PodInfo, result: ScheduleResult) -> None:
        """VolumeBinding's PreBind: bind matching static PVs (claimRef) or ask the
        provisioner for the chosen node (``volume.kubernetes.io/selected-node``), then wait
        until the claims are bound."""
        vs = result.volumes
        assert vs is not None
        ni = self.state.nodes[result.node]
        chosen: set[str] = set()
        keys = []
        for pvc in vs.delayed:
            meta = pvc.get("metadata") or {}
            keys.append(f"{meta.get('namespace')}/{meta.get('name')}")
            pv = volume_plugins.find_matching_pv(pvc, ni, self.state, chosen)
            if pv is not None:
                name = str((pv.get("metadata") or {}).get("name"))
                chosen.add(name)
                ref = {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": meta.get("namespace"),
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                }
                await self.client.patch(
                    "v1",
                    "persistentvolumes",
                    name,
                    {
                        "metadata": {
                            "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}
                        },
                        "spec": {"claimRef": ref},
                    },
                )
            else:
                await self.client.patch(
                    "v1",
                    "persistentvolumeclaims",
                    str(meta.get("name")),
                    {
                        "metadata": {
                            "annotations": {volume_plugins.SELECTED_NODE_ANNOTATION: result.node}
                        }
                    },
                    str(meta.get("namespace")),
                )
        deadline = time.monotonic() + self.options.volume_bind_timeout
        while True:
            if all(
                (self.state.pvcs.get(k) or {}).get("status", {}).get("phase") == "Bound"
                for k in keys
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out waiting for PersistentVolumeClaims {', '.join(keys)} to be bound"
                )
            await asyncio.sleep(0.2)

    async def _evict(self, preemptor: PodInfo, plan: Plan) -> None:
        """Carry out a preemption plan: DisruptionTarget condition, delete, event."""
        for victim in plan.victims:
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": f"{self.options.scheduler_name}: preempting to accommodate a higher priority pod",
                "lastTransitionTime": now_rfc3339(),
            }
            try:
                await self.client.patch(
                    "v1",
                    "pods",
                    victim.name,
                    {"status": {"conditions": [condition]}},
                    victim.namespace,
                    subresource="status",
                    content_type=STRATEGIC_PATCH,
                )
                await self.client.delete("v1", "pods", victim.name, victim.namespace)
            except KubeError as exc:
                if not exc.not_found:
                    log.warning("scheduler.preempt_failed", victim=victim.key, error=str(exc))
                continue
            self.recorder.event(
                victim.pod,
                "Normal",
                "Preempted",
                "Preempting",
                f"Preempted by pod {preemptor.uid} on node {plan.node}",
                related=preemptor.pod,
            )


def _helps(plugins: frozenset[str]) -> Callable[[QueuedPod], bool]:
    def check(qp: QueuedPod) -> bool:
        return not qp.unschedulable_plugins or bool(qp.unschedulable_plugins & plugins)

    return check
