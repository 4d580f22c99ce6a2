"""The kubelet's view of its container engine: one relist per node, shared by every pod.

Kubernetes' kubelet does not ask the runtime about each pod separately: its pod
lifecycle event generator (PLEG) relists every sandbox and container of the node about
once a second, stores the result in a pod cache, and wakes the workers of pods whose
containers changed; a pod worker reads the cache, waiting only until it holds a relist
newer than the worker's previous sync. This module is that pair.

:class:`Relister` owns the latest :class:`Snapshot` of the node's sandboxes and
containers. :meth:`Relister.newer_than` returns a snapshot taken at or after a moment,
relisting at once when the one it holds is older; concurrent callers share one relist,
so twenty pod workers starting together cost the engine two listings, not forty.
:meth:`Relister.run` relists periodically and reports the pods whose sandboxes or
containers changed (started, exited, appeared, vanished) so their workers sync now
instead of at their next timer.

Who calls it: :class:`runtime.kubelet.podsync.PodSyncer` (state of one pod) and
:class:`runtime.kubelet.kubelet.Kubelet` (periodic relist, orphan clean-up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from runtime.kubelet import cri
from runtime.kubelet.cri import ContainerRuntime, ContainerStatus, SandboxStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Every sandbox and container of a node, as listed from one moment on."""

    taken_at: float
    sandboxes: dict[str, list[SandboxStatus]] = field(default_factory=dict)
    containers: dict[str, list[ContainerStatus]] = field(default_factory=dict)

    def pod(self, uid: str) -> tuple[list[SandboxStatus], list[ContainerStatus]]:
        """The sandboxes and containers of one pod (empty lists when it has none)."""
        return list(self.sandboxes.get(uid, ())), list(self.containers.get(uid, ()))

    def uids(self) -> set[str]:
        return (set(self.sandboxes) | set(self.containers)) - {""}

    def fingerprint(self, uid: str) -> tuple[tuple[str, str, str], ...]:
        """What, of a pod, makes its worker want to look again: ids, states and IPs."""
        sandboxes, containers = self.pod(uid)
        rows = [(s.id, s.state.value, s.ip) for s in sandboxes]
        rows += [(c.id, c.state.value, str(c.exit_code)) for c in containers]
        return tuple(sorted(rows))


_T = TypeVar("_T", SandboxStatus, ContainerStatus)


def _by_uid(items: Iterable[_T]) -> dict[str, list[_T]]:
    grouped: dict[str, list[_T]] = {}
    for item in items:
        grouped.setdefault(item.labels.get(cri.LABEL_POD_UID, ""), []).append(item)
    return grouped


class Relister:
    """The latest listing of a node's sandboxes and containers, refreshed on demand.

    ``labels`` select the node's objects in the engine (several nodes may share one
    engine). ``clock`` must be monotonic.
    """

    def __init__(
        self,
        runtime: ContainerRuntime,
        labels: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.labels = dict(labels)
        self.clock = clock
        self._snapshot: Snapshot | None = None
        self._inflight: asyncio.Future[Snapshot] | None = None
        self._inflight_started = 0.0
        self.relists = 0

    @property
    def latest(self) -> Snapshot | None:
        return self._snapshot

    async def newer_than(self, moment: float) -> Snapshot:
        """A snapshot whose listing started at or after ``moment`` (relists if needed)."""
        while True:
            snap = self._snapshot
            if snap is not None and snap.taken_at >= moment:
                return snap
            inflight = self._inflight
            if inflight is None:
                inflight = self._start()
            elif self._inflight_started < moment:
                # Started too early to be enough: let it finish, then start another.
                await asyncio.wait([inflight])
                continue
            return await asyncio.shield(inflight)

    async def now(self) -> Snapshot:
        """A snapshot listed from now on."""
        return await self.newer_than(self.clock())

    def _start(self) -> asyncio.Future[Snapshot]:
        self._inflight_started = self.clock()
        task = asyncio.ensure_future(self._relist(self._inflight_started))
        self._inflight = task
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[Snapshot]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is None:
            snap = task.result()
            if self._snapshot is None or snap.taken_at >= self._snapshot.taken_at:
                self._snapshot = snap

    async def _relist(self, started: float) -> Snapshot:
        sandboxes, containers = await asyncio.gather(
            self.runtime.list_sandboxes(self.labels), self.runtime.list_containers(self.labels)
        )
        self.relists += 1
        return Snapshot(started, _by_uid(sandboxes), _by_uid(containers))

    async def run(self, period: float, on_change: Callable[[set[str]], None]) -> None:
        """Relist about every ``period`` seconds (reusing on-demand relists) and report
        the pods whose sandboxes or containers changed since the previous report."""
        seen: Snapshot | None = None
        while True:
            try:
                snap = await self.newer_than(self.clock() - period)
            except cri.RuntimeError_ as exc:
                log.warning("kubelet.relist_failed", error=str(exc))
                await asyncio.sleep(period)
                continue
            if seen is not None and snap is not seen:
                changed = {
                    uid
                    for uid in snap.uids() | seen.uids()
                    if snap.fingerprint(uid) != seen.fingerprint(uid)
                }
                if changed:
                    on_change(changed)
            seen = snap
            wait = snap.taken_at + period - self.clock()
            await asyncio.sleep(max(wait, period / 10))
