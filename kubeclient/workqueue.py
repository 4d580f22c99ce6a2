"""A work queue of keys with de-duplication, delays and per-key exponential backoff,
as client-go's rate-limiting work queue: a key is never processed by two workers at
once; a key added while it is being processed runs again after :meth:`WorkQueue.done`.

Who calls it: controllers and the scheduler (``namespace/name`` keys on the queue, never
objects), through :func:`run_workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 300.0) -> None:
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()
        self._shutdown = False
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        when = loop.time() + delay
        if existing is not None:
            if existing.when() <= when:
                return
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self.base_delay * (2**failures), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key to process, or None once the queue is shut down."""
        while not self._queue:
            if self._shutdown:
                return None
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._ready.set()


Sync = Callable[[str], Awaitable[None]]


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", True))


async def run_workers(queue: WorkQueue, sync: Sync, *, workers: int = 1, name: str = "") -> None:
    """Process keys until the queue shuts down. A failing ``sync`` is retried with backoff
    when its error is retryable (the error's ``retryable`` attribute, default True)."""

    async def worker() -> None:
        while True:
            key = await queue.get()
            if key is None:
                return
            try:
                await sync(key)
            except Exception as exc:
                if _retryable(exc):
                    log.debug("sync.retry", controller=name, key=key, error=str(exc))
                    queue.add_rate_limited(key)
                else:
                    log.warning("sync.failed", controller=name, key=key, error=str(exc))
                    queue.forget(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
