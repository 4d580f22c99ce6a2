"""Where the kubelet reads the objects a pod refers to: ConfigMaps, Secrets,
PersistentVolumeClaims and PersistentVolumes.

Who calls it: :mod:`runtime.kubelet.env` (``envFrom``, ``valueFrom``) and
:mod:`runtime.kubelet.volumes` (configMap, secret, projected and PVC volumes) read
through an :class:`ObjectSource`. The kubelet gives them a :class:`CachedSource` over its
API client; tests give them an in-memory source.

:class:`CachedSource` plays the part of Kubernetes' TTL-based ConfigMap/Secret managers
(``pkg/kubelet/util/manager``'s cache-based manager): each object is fetched at most once
per ``ttl`` seconds, a "not found" answer is cached like an object, concurrent reads of
the same object share one request, and when the API server cannot be reached a stale
copy is served rather than failing a pod that already had it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kubeclient.rest import Client, KubeError

Key = tuple[str, str, str, str]  # (apiVersion, plural, namespace, name)


class SourceError(Exception):
    """An object could not be read for a reason other than "not found" (the API server
    is unreachable, refused the request, ...). Worth retrying unless said otherwise."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


@runtime_checkable
class ObjectSource(Protocol):
    """Read one object by apiVersion, resource plural, namespace ("" for cluster-scoped
    kinds) and name."""

    async def get(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist; raises :class:`SourceError`."""
        ...


@dataclass
class _Entry:
    value: dict[str, Any] | None
    fetched_at: float


class CachedSource:
    """An :class:`ObjectSource` over an API client, caching each object for ``ttl``
    seconds (Kubernetes' default for the kubelet's TTL managers is one minute).

    Returned objects are shared with the cache: callers must not modify them.
    """

    def __init__(
        self,
        client: Client,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._inflight: dict[Key, asyncio.Future[dict[str, Any] | None]] = {}
        self.fetches = 0  # requests sent to the API server (for tests and metrics)

    @property
    def client(self) -> Client:
        """The API client the objects are read with (the kubelet's own)."""
        return self._client

    @property
    def ttl(self) -> float:
        return self._ttl

    async def get(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        key: Key = (api_version, plural, namespace, name)
        while True:
            entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.fetched_at < self._ttl:
                return entry.value
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                # The reader that was fetching was cancelled: fetch again.
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._fetch(key, entry)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]

    async def _fetch(self, key: Key, stale: _Entry | None) -> dict[str, Any] | None:
        api_version, plural, namespace, name = key
        self.fetches += 1
        try:
            obj = await self._client.get(api_version, plural, name, namespace or None)
        except KubeError as exc:
            if exc.not_found:
                self._entries[key] = _Entry(None, self._clock())
                return None
            if stale is not None:
                # As the kubelet's managers do: keep serving what we had while the API
                # server cannot answer, and try again on the next read.
                return stale.value
            where = f"{namespace}/{name}" if namespace else name
            raise SourceError(
                f"couldn't get {plural} {where}: {exc.message or exc}",
                retryable=exc.retryable or exc.status in (401, 403),
            ) from exc
        self._entries[key] = _Entry(obj, self._clock())
        self._prune()
        return obj

    def invalidate(self, namespace: str, name: str) -> None:
        """Forget every cached object with this namespace and name (of any kind), so the
        next read goes to the API server (e.g. when a watch saw it change)."""
        for key in [k for k in self._entries if k[2] == namespace and k[3] == name]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def _prune(self) -> None:
        # Keep the cache bounded by what pods still read: drop entries idle for 10 TTLs.
        if len(self._entries) < 1024:
            return
        horizon = self._clock() - 10 * self._ttl
        for key in [k for k, e in self._entries.items() if e.fetched_at < horizon]:
            del self._entries[key]
