"""Watchers of local repositories for the service: one :class:`~gitops.source.RefWatcher`
per repository and revision, shared by the Applications that use them.

An Application's ``repoURL`` may be a directory inside a repository
(:func:`gitops.sync.locate`): the enclosing repository is watched. A new commit calls
``on_commit(names, commit)`` on the event loop (the watcher's thread hands it over with
``call_soon_threadsafe``). Used by :mod:`gitops.service.core`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog

from gitops.config import Application
from gitops.errors import GitopsError
from gitops.source import RefWatcher, local_path
from gitops.sync import locate

log = structlog.get_logger(__name__)

WatchKey = tuple[Path, str]
"""(repository directory, revision)."""


class RepoWatchers:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_commit: Callable[[list[str], str], None]
    ) -> None:
        self._loop = loop
        self._on_commit = on_commit
        self._watchers: dict[WatchKey, tuple[RefWatcher, set[str]]] = {}
        self._closed = False

    def names(self, key: WatchKey) -> list[str]:
        entry = self._watchers.get(key)
        return sorted(entry[1]) if entry else []

    async def watch(self, app: Application) -> WatchKey | None:
        """Watch ``app``'s repository if it is local; the key to :meth:`unwatch` it with
        (``None``: nothing to watch, or it cannot be watched: logged)."""
        if local_path(app.source.repo_url) is None:
            return None
        try:
            location = await asyncio.to_thread(locate, app.source.repo_url)
        except GitopsError as exc:
            log.warning("cannot watch the repository", app=app.name, error=str(exc))
            return None
        path = local_path(location.url)
        if path is None:
            return None
        key = (path, app.source.revision)
        if key not in self._watchers:
            watcher = RefWatcher(path, app.source.revision, self._callback(key))
            try:
                await asyncio.to_thread(watcher.start)
            except GitopsError as exc:
                log.warning("cannot watch the repository", app=app.name, error=str(exc))
                return None
            if self._closed or key in self._watchers:  # stopped, or raced with another app
                await asyncio.to_thread(watcher.stop)
                if self._closed:
                    return None
            else:
                self._watchers[key] = (watcher, set())
                log.debug("watching the repository", path=str(path), revision=key[1])
        self._watchers[key][1].add(app.name)
        return key

    async def unwatch(self, name: str, key: WatchKey | None) -> None:
        entry = self._watchers.get(key) if key is not None else None
        if entry is None or key is None:
            return
        entry[1].discard(name)
        if not entry[1]:
            del self._watchers[key]
            await asyncio.to_thread(entry[0].stop)

    async def close(self) -> None:
        """Stop every watcher (joins their threads)."""
        self._closed = True
        watchers = [w for w, _ in self._watchers.values()]
        self._watchers.clear()
        for watcher in watchers:
            await asyncio.to_thread(watcher.stop)

    def _callback(self, key: WatchKey) -> Callable[[str], None]:
        def on_thread(commit: str) -> None:
            self._loop.call_soon_threadsafe(self._deliver, key, commit)

        return on_thread

    def _deliver(self, key: WatchKey, commit: str) -> None:
        names = self.names(key)
        if names:
            log.debug("new commit", path=str(key[0]), commit=commit[:12], apps=names)
            self._on_commit(names, commit)
