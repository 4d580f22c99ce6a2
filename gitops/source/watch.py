"""Notice new commits in a local repository as they happen, without polling.

:class:`RefWatcher` watches a local repository's ``refs/`` tree, ``packed-refs`` and
``HEAD`` (of a work tree's ``.git``, a linked work tree, or a bare repository) with
watchdog. Bursts of file events (a commit touches several files) are debounced; then the
watched revision is resolved again and the callback is called with the new commit SHA
only if it changed. The callback runs on the watcher's timer thread: the service passes
a function that hands the commit to its event loop (``loop.call_soon_threadsafe``).

Used by the service for Applications whose repository URL is a local path or
``file://`` URL (see :func:`gitops.source.git.local_path`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from gitops.errors import SourceError
from gitops.source.git import resolve_local
from gitops.source.revisions import HEAD

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WatchOptions:
    debounce_seconds: float = 0.1


class RefWatcher:
    """Calls ``callback(commit)`` when ``revision`` of the repository at ``path`` moves."""

    def __init__(
        self,
        path: Path,
        revision: str,
        callback: Callable[[str], None],
        options: WatchOptions | None = None,
    ) -> None:
        self.path = path
        self.revision = revision or HEAD
        self.callback = callback
        self.options = options or WatchOptions()
        self.commit: str | None = None
        """The commit last resolved (``None`` while the revision does not resolve)."""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: Any = None
        self._git_dir, self._common_dir = _git_dirs(path)

    def start(self) -> None:
        """Resolve the revision now and start watching. Raises :class:`SourceError` if
        ``path`` is not a repository (a revision that does not resolve yet is fine)."""
        self.commit = self._resolve()
        handler = _Handler(self)
        observer = Observer()
        observer.daemon = True
        refs = self._common_dir / "refs"
        observer.schedule(handler, str(self._common_dir), recursive=False)
        if refs.is_dir():
            observer.schedule(handler, str(refs), recursive=True)
        if self._git_dir != self._common_dir:
            observer.schedule(handler, str(self._git_dir), recursive=False)
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop watching and join the observer thread; a pending check is dropped."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    def __enter__(self) -> RefWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------

    def _relevant(self, path: str) -> bool:
        p = Path(path)
        if p.name.endswith(".lock"):
            return False
        if p.name in ("HEAD", "packed-refs") and p.parent in (self._git_dir, self._common_dir):
            return True
        return (self._common_dir / "refs") in p.parents

    def _changed(self) -> None:
        with self._lock:
            if self._observer is None:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.options.debounce_seconds, self._check)
            self._timer.daemon = True
            self._timer.start()

    def _check(self) -> None:
        with self._lock:
            self._timer = None
            if self._observer is None:
                return
        commit = self._resolve()
        if commit is None or commit == self.commit:
            return
        self.commit = commit
        try:
            self.callback(commit)
        except Exception:
            log.exception("ref watcher callback failed", path=str(self.path))

    def _resolve(self) -> str | None:
        try:
            return resolve_local(self.path, self.revision)
        except SourceError as e:
            log.debug("watched revision does not resolve", path=str(self.path), error=e.message)
            return None


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: RefWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            path = raw.decode() if isinstance(raw, bytes) else str(raw)
            if path and self._watcher._relevant(path):
                self._watcher._changed()
                return


def _git_dirs(path: Path) -> tuple[Path, Path]:
    """The git directory (holding HEAD) and the common directory (refs, packed-refs)."""
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{path} is not a git repository", retryable=False) from None
    try:
        return Path(repo.git_dir).resolve(), Path(repo.common_dir).resolve()
    finally:
        repo.close()
