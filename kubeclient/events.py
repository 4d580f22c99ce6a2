"""An event recorder with client-go's correlation: identical events (same object, type,
reason and message) become one Event whose ``count`` and ``lastTimestamp`` are patched;
more than 10 distinct messages with the same object/reason within 10 minutes collapse
into one "(combined from similar events): …" Event; a token bucket per object (burst 25,
one more every 5 minutes) drops the rest; writes are paced by a client-side QPS limit
(as client-go rate-limits a component's requests) so that events never take the API
server's capacity away from bindings; and a bounded queue, sent by a few background
workers, drops events under pressure instead of slowing the caller — as the Kubernetes
event broadcaster does.

Who calls it: the scheduler (``Scheduled``, ``FailedScheduling``, ``Preempted``) and the
kubelet (``Pulled``, ``Started``, ``BackOff``, ``Unhealthy``, …). Events are core/v1 Events with
``source.component``, ``reportingComponent`` and ``reportingInstance`` set, so
``kubectl describe``/``kubectl events`` show them "From default-scheduler".
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from kubeclient.rest import Client, KubeError, resource_path

log = structlog.get_logger(__name__)

MAX_MESSAGE = 1024
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_WINDOW = 600.0
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(message: str) -> str:
    """kube-scheduler's truncateMessage (the events API caps notes at 1024 bytes)."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 3] + "..."


@dataclass
class _Observed:
    name: str
    count: int
    first: str


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, now: float) -> None:
        self.tokens = float(SPAM_BURST)
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(
            float(SPAM_BURST), self.tokens + (now - self.updated) / SPAM_REFILL_SECONDS
        )
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventRecorder:
    def __init__(
        self,
        client: Client,
        component: str = "default-scheduler",
        *,
        instance: str | None = None,
        host: str = "",
        max_queue: int = 1000,
        workers: int = 2,
        qps: float = 50.0,
        burst: int = 200,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.component = component
        self.instance = instance or f"{component}-{socket.gethostname()}"
        self.host = host
        self.clock = clock
        self.workers = workers
        self.max_queue = max_queue
        self.cache_size = cache_size
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._tokens_at = clock()
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._observed: OrderedDict[tuple[str, ...], _Observed] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], tuple[float, set[str]]] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def _q(self) -> asyncio.Queue[dict[str, Any]]:
        if self._queue is None:
            self._queue = asyncio.Queue(self.max_queue)
        return self._queue

    def event(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        action: str,
        message: str,
        related: Mapping[str, Any] | None = None,
        *,
        field_path: str = "",
    ) -> None:
        """Record an event about ``obj`` (never blocks; may drop under pressure);
        ``field_path`` names the part of it, e.g. ``spec.containers{web}``."""
        meta = obj.get("metadata") or {}
        involved = {
            "apiVersion": str(obj.get("apiVersion") or "v1"),
            "kind": str(obj.get("kind") or "Pod"),
            "namespace": str(meta.get("namespace") or ""),
            "name": str(meta.get("name") or ""),
            "uid": str(meta.get("uid") or ""),
        }
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = str(meta["resourceVersion"])
        if field_path:
            involved["fieldPath"] = field_path
        item = {
            "involvedObject": involved,
            "type": event_type,
            "reason": reason,
            "action": action,
            "message": truncate(message),
        }
        if related is not None:
            rmeta = related.get("metadata") or {}
            item["related"] = {
                "apiVersion": str(related.get("apiVersion") or "v1"),
                "kind": str(related.get("kind") or "Pod"),
                "namespace": str(rmeta.get("namespace") or ""),
                "name": str(rmeta.get("name") or ""),
                "uid": str(rmeta.get("uid") or ""),
            }
        q = self._q()
        try:
            q.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        """Send queued events until cancelled."""
        tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has been sent (for tests and shutdown)."""
        q = self._q()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(q.join(), timeout)

    async def _pace(self) -> None:
        """Wait for a write token (``qps`` per second, ``burst`` at most)."""
        if self.qps <= 0:
            return
        while True:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._tokens_at) * self.qps)
            self._tokens_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self.qps)

    async def _worker(self) -> None:
        q = self._q()
        while True:
            item = await q.get()
            try:
                await self._pace()
                await self._send(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an event must never break the scheduler
                self.failed += 1
                log.debug("event.failed", reason=item.get("reason"), error=str(exc))
            finally:
                q.task_done()

    # --- correlation ----------------------------------------------------------------------------
    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _correlate(self, item: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
        """(dedup key, message to send) or None when the spam filter drops it."""
        inv = item["involvedObject"]
        obj_key = (inv["kind"], inv["namespace"], inv["name"], inv["uid"], inv["apiVersion"])
        now = self.clock()
        bucket = self._buckets.get(obj_key)
        if bucket is None:
            bucket = _Bucket(now)
        self._remember(self._buckets, obj_key, bucket)
        if not bucket.take(now):
            return None
        similar_key = (*obj_key, item["type"], item["reason"])
        first_seen, messages = self._similar.get(similar_key, (now, set()))
        if now - first_seen > AGGREGATE_WINDOW:
            first_seen, messages = now, set()
        messages.add(item["message"])
        self._remember(self._similar, similar_key, (first_seen, messages))
        if len(messages) > AGGREGATE_MAX_EVENTS:
            return similar_key, "(combined from similar events): " + item["message"]
        return (*similar_key, item["message"]), item["message"]

    async def _send(self, item: dict[str, Any]) -> None:
        correlated = self._correlate(item)
        if correlated is None:
            self.dropped += 1
            return
        key, message = correlated
        inv = item["involvedObject"]
        namespace = inv["namespace"] or "default"
        ts = now_rfc3339()
        seen = self._observed.get(key)
        if seen is not None:
            patch = {"count": seen.count + 1, "lastTimestamp": ts, "message": message}
            try:
                await self.client.patch("v1", "events", seen.name, patch, namespace)
                seen.count += 1
                self._remember(self._observed, key, seen)
                self.sent += 1
                return
            except KubeError as exc:
                if not exc.not_found:
                    raise
        name = f"{inv['name']}.{time.time_ns():x}"
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": inv,
            "reason": item["reason"],
            "message": message,
            "type": item["type"],
            "action": item["action"],
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        if "related" in item:
            body["related"] = item["related"]
        await self.client.request("POST", resource_path("v1", "events", namespace), body=body)
        self._remember(self._observed, key, _Observed(name, 1, ts))
        self.sent += 1
