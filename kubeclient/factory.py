"""Shared informers: one list+watch per resource for every controller in a process.

client-go's SharedInformerFactory, in asyncio. Controllers ask the factory for the
informer of a resource (``factory.informer("v1", "pods")``) while they are being built,
register their handlers and indexes on it, and the controller manager starts every
informer once with :meth:`InformerFactory.run`; :meth:`InformerFactory.wait_synced`
returns when all caches hold a full list. Two controllers asking for the same resource
share one cache, one watch and one copy of each object.

Who calls it: :mod:`runtime.controllers.manager` and the controllers it builds.
"""

from __future__ import annotations

import asyncio
import contextlib

from kubeclient.informer import Informer, wait_synced
from kubeclient.rest import Client


class InformerFactory:
    """Builds at most one :class:`Informer` per (apiVersion, plural)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[str, str], Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def informer(self, api_version: str, plural: str) -> Informer:
        """The shared, cluster-wide informer of a resource (created on first ask)."""
        key = (api_version, plural)
        found = self._informers.get(key)
        if found is None:
            found = Informer(self.client, api_version, plural)
            self._informers[key] = found
            if self._started:  # asked for after start: run it too
                self._tasks.append(asyncio.create_task(found.run()))
        return found

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer asked for so far (later ones start when asked for)."""
        self._started = True
        for informer in self._informers.values():
            self._tasks.append(asyncio.create_task(informer.run()))

    async def wait_synced(self, timeout: float = 60.0) -> None:
        await wait_synced(*self._informers.values(), timeout=timeout)

    async def stop(self) -> None:
        self._started = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
