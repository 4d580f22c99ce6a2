"""The scheduling queue — kube-scheduler's PriorityQueue: an active heap ordered by
priority then queue time (a pod's creation time when first seen), a backoff heap
(1 s doubling to 10 s per failed attempt: podInitialBackoff/podMaxBackoff), and the
unschedulable pods, which wait for a cluster event that may help them (or 5 minutes,
podMaxInUnschedulablePodsDuration) before going back through backoff.

Who calls it: :class:`runtime.scheduler.scheduler.Scheduler` — informer handlers add,
update and delete pending pods and report cluster events; the scheduling loop pops one
pod at a time and hands failures back. Keys are ``namespace/name``. Single-threaded
(asyncio); a pod is never popped twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime

from runtime.scheduler.podinfo import PodInfo


def _epoch(rfc3339: str) -> float:
    if not rfc3339:
        return time.time()
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class QueuedPod:
    """A pending pod and its queue bookkeeping (``framework.QueuedPodInfo``)."""

    __slots__ = (
        "attempts",
        "cycle",
        "info",
        "initial_attempt",
        "key",
        "last_attempt",
        "queued_at",
        "seq",
        "unschedulable_plugins",
        "updated",
        "where",
    )

    def __init__(self, info: PodInfo, queued_at: float, seq: int) -> None:
        self.info = info
        self.key = info.key
        self.queued_at = queued_at
        self.seq = seq
        self.attempts = 0
        self.initial_attempt: float | None = None
        self.last_attempt = 0.0
        self.unschedulable_plugins: set[str] = set()
        self.cycle = 0
        self.updated = False
        self.where = ""

    def __repr__(self) -> str:
        return f"QueuedPod({self.key}, {self.where}, attempts={self.attempts})"


ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT, GATED = (
    "active",
    "backoff",
    "unschedulable",
    "in-flight",
    "gated",
)


class SchedulingQueue:
    def __init__(
        self,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_seconds = max_unschedulable_seconds
        self.clock = clock
        self._pods: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, QueuedPod]] = []
        self._backoff: list[tuple[float, int, QueuedPod]] = []
        self._seq = itertools.count()
        self._cycle = 0
        self._move_request_cycle = -1
        self._ready: asyncio.Event | None = None
        self._closed = False

    # --- sizes, for metrics and tests --------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: str) -> bool:
        return key in self._pods

    def get(self, key: str) -> QueuedPod | None:
        return self._pods.get(key)

    def where(self, key: str) -> str:
        qp = self._pods.get(key)
        return qp.where if qp else ""

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0, GATED: 0}
        for qp in self._pods.values():
            out[qp.where] += 1
        return out

    @property
    def cycle(self) -> int:
        return self._cycle

    # --- placement ----------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._ready is not None:
            self._ready.set()

    def _set_unschedulable(self, qp: QueuedPod) -> None:
        qp.where = UNSCHEDULABLE
        self._unschedulable[qp.key] = qp

    def _to_active(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        qp.where = ACTIVE
        heapq.heappush(self._active, (-qp.info.priority, qp.queued_at, next(self._seq), qp))
        self._wake()

    def _backoff_duration(self, qp: QueuedPod) -> float:
        d = self.initial_backoff
        for _ in range(1, qp.attempts):
            if d > self.max_backoff - d:
                return self.max_backoff
            d += d
        return min(d, self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.last_attempt + self._backoff_duration(qp)

    def _to_backoff_or_active(self, qp: QueuedPod) -> None:
        if qp.attempts and self.backoff_expiry(qp) > self.clock():
            self._unschedulable.pop(qp.key, None)
            qp.where = BACKOFF
            heapq.heappush(self._backoff, (self.backoff_expiry(qp), next(self._seq), qp))
            self._wake()
        else:
            self._to_active(qp)

    # --- informer-driven changes ------------------------------------------------------------------
    def add(self, info: PodInfo) -> None:
        """A pending pod appeared (or a pod became pending for this scheduler)."""
        if self._closed:
            return
        if info.key in self._pods:
            self.update(info)
            return
        qp = QueuedPod(info, _epoch(info.creation), next(self._seq))
        self._pods[info.key] = qp
        if info.gated:
            qp.where = GATED
        else:
            self._to_active(qp)

    def update(self, info: PodInfo) -> None:
        """A pending pod changed: take the new version; an unschedulable (or gated) pod
        whose spec or labels changed gets another chance."""
        qp = self._pods.get(info.key)
        if qp is None:
            self.add(info)
            return
        changed = _meaningful_change(qp.info, info)
        qp.info = info
        if not changed:
            return
        if qp.where == IN_FLIGHT:
            qp.updated = True
        elif qp.where == GATED:
            if not info.gated:
                self._to_active(qp)
        elif qp.where == UNSCHEDULABLE:
            if info.gated:
                self._unschedulable.pop(qp.key, None)
                qp.where = GATED
            else:
                self._to_backoff_or_active(qp)

    def delete(self, key: str) -> None:
        qp = self._pods.pop(key, None)
        self._unschedulable.pop(key, None)
        if qp is not None:
            qp.where = ""  # heap entries are dropped lazily

    # --- the scheduling loop ----------------------------------------------------------------------
    def _flush_backoff(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, qp = heapq.heappop(self._backoff)
            if qp.where == BACKOFF and self._pods.get(qp.key) is qp:
                self._to_active(qp)

    def pop_nowait(self) -> QueuedPod | None:
        self._flush_backoff()
        while self._active:
            _, _, _, qp = heapq.heappop(self._active)
            if qp.where != ACTIVE or self._pods.get(qp.key) is not qp:
                continue
            qp.where = IN_FLIGHT
            qp.attempts += 1
            qp.updated = False
            self._cycle += 1
            qp.cycle = self._cycle
            if qp.initial_attempt is None:
                qp.initial_attempt = self.clock()
            return qp
        return None

    async def pop(self) -> QueuedPod | None:
        """The next pod to schedule; waits for one. None once closed."""
        if self._ready is None:
            self._ready = asyncio.Event()
        while not self._closed:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            self._ready.clear()
            timeout = None
            if self._backoff:
                timeout = max(0.0, self._backoff[0][0] - self.clock()) + 0.001
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        return None

    def done(self, qp: QueuedPod) -> None:
        """The pod was scheduled (assumed): it leaves the queue."""
        if self._pods.get(qp.key) is qp:
            del self._pods[qp.key]
        qp.where = ""

    def requeue_unschedulable(self, qp: QueuedPod, plugins: set[str]) -> None:
        """No node fits: wait for a cluster event (or go through backoff right away when
        one already happened while the pod was being scheduled)."""
        if self._pods.get(qp.key) is not qp:
            return
        qp.last_attempt = self.clock()
        qp.queued_at = time.time()
        qp.unschedulable_plugins = set(plugins)
        if qp.updated or self._move_request_cycle >= qp.cycle:
            self._to_backoff_or_active(qp)
        else:
            self._set_unschedulable(qp)

    def requeue_backoff(self, qp: QueuedPod) -> None:
        """An error (not a verdict): retry after the backoff."""
        if self._pods.get(qp.key) is not qp:
            if qp.key in self._pods or not qp.key:
                return
            self._pods[qp.key] = qp
        qp.last_attempt = self.clock()
        qp.queued_at = time.time()
        qp.unschedulable_plugins = set()
        self._to_backoff_or_active(qp)

    def readd(self, qp: QueuedPod) -> None:
        """A pod whose binding failed after it left the queue comes back, with backoff."""
        if qp.key in self._pods:
            return
        self._pods[qp.key] = qp
        self.requeue_backoff(qp)

    # --- cluster events ------------------------------------------------------------------------------
    def move_all(self, helps: Callable[[QueuedPod], bool] | None = None) -> int:
        """A cluster event that may make unschedulable pods schedulable: those for which
        ``helps`` says so (all by default) go back through backoff. Returns how many."""
        self._move_request_cycle = self._cycle
        moved = 0
        for qp in list(self._unschedulable.values()):
            if helps is None or helps(qp):
                self._to_backoff_or_active(qp)
                moved += 1
        return moved

    def flush_unschedulable_leftover(self) -> int:
        """Pods unschedulable for longer than ``max_unschedulable_seconds`` get retried."""
        now = self.clock()
        moved = 0
        for qp in list(self._unschedulable.values()):
            if now - qp.last_attempt >= self.max_unschedulable_seconds:
                self._to_backoff_or_active(qp)
                moved += 1
        return moved

    def pending(self) -> list[QueuedPod]:
        return list(self._pods.values())

    def close(self) -> None:
        self._closed = True
        self._wake()


def _meaningful_change(old: PodInfo, new: PodInfo) -> bool:
    """``isPodUpdated``: anything but status, resourceVersion, generation and managedFields."""
    if old.pod is new.pod:
        return False
    a, b = old.pod, new.pod
    if a.get("spec") != b.get("spec"):
        return True
    ma = dict(a.get("metadata") or {})
    mb = dict(b.get("metadata") or {})
    for k in ("resourceVersion", "generation", "managedFields"):
        ma.pop(k, None)
        mb.pop(k, None)
    return ma != mb
