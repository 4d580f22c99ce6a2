"""Application status and sync history, in a SQLite file that survives restarts.

The service records every run (:class:`~gitops.sync.SyncResult`) here; ``gitops
status`` and the service's ``/status`` read it. One row per Application holds the
current view (revision, sync status, health, last error, drift), and a history table
keeps the last :data:`HISTORY_LIMIT` runs of each. Writes are small and happen once per
run; they go through a lock and a short transaction, called from a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitops.sync import Mode, SyncResult
from kubemodel.files import private_database

HISTORY_LIMIT = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    revision TEXT NOT NULL DEFAULT '',
    revision_message TEXT NOT NULL DEFAULT '',
    sync_status TEXT NOT NULL DEFAULT 'Unknown',
    health TEXT NOT NULL DEFAULT 'Unknown',
    health_message TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    drift INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    started_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    revision TEXT NOT NULL,
    result TEXT NOT NULL,
    counts TEXT NOT NULL,
    seconds REAL NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_app ON history (app, id);
"""


@dataclass
class HistoryRow:
    started_at: str
    mode: str
    revision: str
    result: str
    counts: dict[str, int]
    seconds: float
    error: str


@dataclass
class AppStatus:
    name: str
    revision: str = ""
    revision_message: str = ""
    sync_status: str = "Unknown"
    """Synced, OutOfSync, Failed or Unknown."""
    health: str = "Unknown"
    health_message: str = ""
    last_error: str = ""
    drift: int = 0
    """Objects out of sync found by the last run."""
    updated_at: str = ""
    history: list[HistoryRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sync_status(result: SyncResult) -> str:
    """``Failed`` when the run failed — including a fetch that failed before any
    revision was built (nothing can be said in sync); a fetch that failed after a good
    revision keeps that revision's Synced / OutOfSync (the error is in ``last_error``)."""
    if result.error and (result.error_phase != "fetch" or not result.revision):
        return "Failed"
    if result.changes.failed:
        return "Failed"
    if result.drifted and not result.applied:
        return "OutOfSync"  # a plan, or a heal without selfHeal: drift reported, not fixed
    return "Synced"


def outcome(result: SyncResult) -> str:
    if not result.ok:
        return "failed"
    if result.mode is Mode.PLAN:
        return "drift" if result.drifted else "in-sync"
    return "applied" if result.drifted else "unchanged"


class StatusStore:
    """The status database of one state directory."""

    def __init__(self, path: Path) -> None:
        private_database(path)  # 0600, and so its -wal and -shm files
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, result: SyncResult) -> None:
        """Store one run: the Application's current view and a history row."""
        status = sync_status(result)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._db.execute(
                    "SELECT revision, revision_message, health, health_message FROM apps WHERE name = ?",
                    (result.app,),
                ).fetchone()
                revision, message = result.revision, result.revision_message
                health, health_message = result.health.status.value, result.health.message
                if current is not None:
                    if not revision:
                        revision, message = current[0], current[1]
                    if health == "Unknown" and result.mode is not Mode.SYNC:
                        health, health_message = current[2], current[3]
                # Objects still out of sync after the run (none once a run applied them).
                drift = 0 if result.applied else sum(1 for e in result.changes.entries if e.changed)
                self._db.execute(
                    "INSERT INTO apps (name, revision, revision_message, sync_status, health,"
                    " health_message, last_error, drift, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET revision=excluded.revision,"
                    " revision_message=excluded.revision_message, sync_status=excluded.sync_status,"
                    " health=excluded.health, health_message=excluded.health_message,"
                    " last_error=excluded.last_error, drift=excluded.drift,"
                    " updated_at=excluded.updated_at",
                    (
                        result.app,
                        revision,
                        message,
                        status,
                        health,
                        health_message,
                        result.error,
                        drift,
                        result.started_at,
                    ),
                )
                self._db.execute(
                    "INSERT INTO history (app, started_at, mode, revision, result, counts,"
                    " seconds, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        result.app,
                        result.started_at,
                        result.mode.value,
                        result.revision,
                        outcome(result),
                        json.dumps(result.changes.counts()),
                        result.seconds,
                        result.error,
                    ),
                )
                self._db.execute(
                    "DELETE FROM history WHERE app = ? AND id NOT IN"
                    " (SELECT id FROM history WHERE app = ? ORDER BY id DESC LIMIT ?)",
                    (result.app, result.app, HISTORY_LIMIT),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def statuses(self, names: list[str] | None = None, history: int = 5) -> list[AppStatus]:
        """Each Application's status (all, or those named), with its recent runs."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, revision, revision_message, sync_status, health, health_message,"
                " last_error, drift, updated_at FROM apps ORDER BY name"
            ).fetchall()
            out = []
            for row in rows:
                if names is not None and row[0] not in names:
                    continue
                status = AppStatus(*row)
                for h in self._db.execute(
                    "SELECT started_at, mode, revision, result, counts, seconds, error"
                    " FROM history WHERE app = ? ORDER BY id DESC LIMIT ?",
                    (row[0], history),
                ).fetchall():
                    status.history.append(
                        HistoryRow(h[0], h[1], h[2], h[3], json.loads(h[4]), h[5], h[6])
                    )
                out.append(status)
            return out
