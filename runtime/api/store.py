"""The durable object store of the built-in cluster: a versioned key/value store on
SQLite (WAL), with an in-memory index for reads and an in-process watch hub.

Who calls it: :mod:`runtime.api.objects` (the semantic layer: admission, metadata,
finalizers, patches) for every read and write. Nothing else writes to it.

Model (the same as kine/etcd):

* every write gets the next global integer revision, which becomes the object's
  ``metadata.resourceVersion``; revisions are dense, one per write;
* writes carry a precondition (the revision the caller read); a mismatch is a
  :class:`Conflict`;
* a write is acknowledged only after its SQLite transaction committed (a dedicated
  writer thread batches concurrent writes into one transaction); watchers see an
  event only after it is durable, so nothing acknowledged or observed is lost on
  SIGKILL;
* the event log is kept in SQLite too (compacted to the newest ``event_retention``
  events) so a watcher can resume from its last revision even across a restart; an
  older revision is answered with :class:`Expired` (HTTP 410).

Encryption at rest (:mod:`runtime.api.encryption`, ``StoreOptions.encryption``): the
writer thread seals the values of the resources the config lists (Secrets by default)
before they reach SQLite, in the ``objects`` table and in the ``events`` history alike,
so no plain value is ever written; memory keeps plain JSON. At start every value is
opened (one that cannot be stops the store from opening, with an
:class:`~runtime.api.encryption.EncryptionError`), and rows not under the current write
key (a rotated key, encryption turned on or off) are rewritten in place with the same
revision, history past the retained window is dropped, and the database is vacuumed and
its WAL truncated so that no old form remains in free pages. Idempotent: a second start
writes nothing.

Reads (``get``/``list``) see committed state only. Writers that must build on the
newest state (read-modify-write in the object layer) use :meth:`Store.latest`, which
also sees writes still waiting for their commit.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from kubemodel.files import private_database
from runtime.api.encryption import (
    DecryptError,
    EncryptionConfig,
    Unsealer,
    describe_stored,
    storage_aad,
)

log = structlog.get_logger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class StoreError(Exception):
    """Base of store errors; the object layer maps them to API errors."""


class Conflict(StoreError):
    """The object changed since the revision the caller based its write on."""


class Exists(StoreError):
    """Create of a key that already exists."""


class Missing(StoreError):
    """Update or delete of a key that does not exist."""


class Expired(StoreError):
    """A watch asked for a revision older than the retained event window."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Unavailable(StoreError):
    """The store cannot write (a previous commit failed, or it is closed)."""


MAX_OBJECT_BYTES = 1536 * 1024
"""The largest object stored, as JSON: etcd's default request limit (1.5 MiB)."""


class TooLarge(StoreError):
    """The object is larger than :data:`MAX_OBJECT_BYTES` as JSON."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the object is {size} bytes as JSON, over the limit of {MAX_OBJECT_BYTES}"
        )
        self.size = size


@dataclass(slots=True)
class Entry:
    """An object as stored: its revision, JSON bytes, and what selectors need."""

    rv: int
    data: bytes
    namespace: str
    name: str
    labels: dict[str, str]
    fields: dict[str, str]

    def obj(self) -> dict[str, Any]:
        """A fresh, mutable copy of the object."""
        value: dict[str, Any] = orjson.loads(self.data)
        return value


@dataclass(slots=True)
class Event:
    rv: int
    type: str
    res: str
    entry: Entry
    prev: Entry | None = None


Indexer = Callable[[str, dict[str, Any]], tuple[dict[str, str], dict[str, str]]]


def default_indexer(res: str, obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    from runtime.api.selectors import selectable_fields

    labels = (obj.get("metadata") or {}).get("labels") or {}
    return dict(labels), selectable_fields(res, obj)


@dataclass
class StoreOptions:
    """How the store keeps its data."""

    # Events retained for watch resume (memory and SQLite); older revisions get 410.
    event_retention: int = 20_000
    # PRAGMA synchronous: NORMAL survives process crashes (SIGKILL) in WAL mode;
    # FULL also survives power loss at the cost of an fsync per commit.
    synchronous: str = "NORMAL"
    # Most writes committed in one transaction by the writer thread.
    max_batch: int = 512
    # Encryption at rest of the resources it lists (runtime.api.encryption); None stores
    # every value as JSON (and refuses to open encrypted ones).
    encryption: EncryptionConfig | None = None


@dataclass(slots=True)
class _Opened:
    """A row opened at start; ``seal_again`` is its value under the current write key
    when ``stale``."""

    entry: Entry
    stale: bool = False
    seal_again: bytes = b""


@dataclass
class _Op:
    rv: int
    res: str
    namespace: str
    name: str
    type: str
    entry: Entry
    prev: Entry | None
    future: asyncio.Future[Entry]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (res, ns, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, type TEXT NOT NULL,
    res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class _Writer(threading.Thread):
    """Commits batches of operations; hands results back to the event loop."""

    def __init__(
        self,
        db_path: str,
        options: StoreOptions,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[list[_Op], BaseException | None], None],
    ) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._db_path = db_path
        self._options = options
        self._loop = loop
        self._done = done
        self._since_compaction = 0
        self._encryption = options.encryption

    def run(self) -> None:
        db = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._options.synchronous}")
        try:
            while True:
                first = self.queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._options.max_batch:
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                error: BaseException | None = None
                try:
                    self._commit(db, batch)
                except BaseException as exc:  # report every failure to the waiting writers
                    error = exc
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                self._loop.call_soon_threadsafe(self._done, batch, error)
                if stop:
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[_Op]) -> None:
        db.execute("BEGIN IMMEDIATE")
        puts = []
        dels = []
        events = []
        encryption = self._encryption
        for op in batch:
            data = op.entry.data
            if encryption is not None:
                transformer = encryption.transformer(op.res)
                if transformer is not None:  # sealed before SQLite sees it, never after
                    data = transformer.seal(data, storage_aad(op.res, op.namespace, op.name))
            if op.type == DELETED:
                dels.append((op.res, op.namespace, op.name))
            else:
                puts.append((op.res, op.namespace, op.name, op.rv, data))
            events.append((op.rv, op.type, op.res, op.namespace, op.name, data))
        if puts:
            db.executemany(
                "INSERT OR REPLACE INTO objects (res, ns, name, rv, data) VALUES (?,?,?,?,?)", puts
            )
        if dels:
            db.executemany("DELETE FROM objects WHERE res=? AND ns=? AND name=?", dels)
        db.executemany(
            "INSERT OR REPLACE INTO events (rv, type, res, ns, name, data) VALUES (?,?,?,?,?,?)",
            events,
        )
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (batch[-1].rv,))
        self._since_compaction += len(batch)
        if self._since_compaction >= max(1000, self._options.event_retention // 10):
            self._since_compaction = 0
            floor = batch[-1].rv - self._options.event_retention
            db.execute("DELETE FROM events WHERE rv <= ?", (floor,))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)", (floor,))
        db.execute("COMMIT")


@dataclass
class _Resource:
    """The committed objects of one resource: namespace -> name -> Entry."""

    by_ns: dict[str, dict[str, Entry]] = field(default_factory=dict)
    count: int = 0
    _sorted: list[tuple[str, str]] | None = None

    def sorted_keys(self) -> list[tuple[str, str]]:
        if self._sorted is None:
            self._sorted = sorted((ns, name) for ns, names in self.by_ns.items() for name in names)
        return self._sorted

    def put(self, entry: Entry) -> None:
        names = self.by_ns.setdefault(entry.namespace, {})
        if entry.name not in names:
            self.count += 1
            self._sorted = None
        names[entry.name] = entry

    def remove(self, namespace: str, name: str) -> None:
        names = self.by_ns.get(namespace)
        if names and names.pop(name, None) is not None:
            self.count -= 1
            self._sorted = None
            if not names:
                del self.by_ns[namespace]


class Store:
    """Versioned objects with watch. All methods run on the owning event loop."""

    def __init__(
        self, path: Path, options: StoreOptions | None = None, indexer: Indexer = default_indexer
    ) -> None:
        self.path = path
        self.options = options or StoreOptions()
        self._indexer = indexer
        self._resources: dict[str, _Resource] = {}
        self._pending: dict[tuple[str, str, str], Entry | None] = {}
        self._pending_count: dict[tuple[str, str, str], int] = {}
        self._rv = 0  # newest assigned revision
        self._committed_rv = 0
        self._compacted = 0  # events with rv <= this are gone
        self._events: list[Event] = []
        self._event_rvs: list[int] = []
        self._waiters: set[asyncio.Event] = set()
        self._writer: _Writer | None = None
        self._failed: BaseException | None = None
        self._listeners: list[Callable[[Event], None]] = []

    # --- life cycle -------------------------------------------------------------------
    async def open(self) -> None:
        """Load committed state from disk (creating the database) and start the writer."""
        await asyncio.to_thread(self._load)
        loop = asyncio.get_running_loop()
        self._writer = _Writer(str(self.path), self.options, loop, self._on_committed)
        self._writer.start()

    def _load(self) -> None:
        private_database(self.path)  # 0600, and so its -wal and -shm files
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
            self._rv = self._committed_rv = int(row[0]) if row else 0
            row = db.execute("SELECT value FROM meta WHERE key='compacted'").fetchone()
            self._compacted = int(row[0]) if row else 0
            unsealer = Unsealer(self.options.encryption)
            stale_objects: list[tuple[bytes, str, str, str]] = []
            stale_events: list[tuple[bytes, int]] = []
            for res, ns, name, rv, data in db.execute(
                "SELECT res, ns, name, rv, data FROM objects"
            ):
                stored = self._open_entry(unsealer, res, ns, name, int(rv), bytes(data))
                if stored is None:
                    continue
                if stored.stale:
                    stale_objects.append((stored.seal_again, res, ns, name))
                self._resources.setdefault(res, _Resource()).put(stored.entry)
            floor = max(self._compacted, self._rv - self.options.event_retention)
            self._compacted = floor
            previous: dict[tuple[str, str, str], Entry] = {}
            for rv, typ, res, ns, name, data in db.execute(
                "SELECT rv, type, res, ns, name, data FROM events WHERE rv > ? ORDER BY rv",
                (floor,),
            ):
                opened = self._open_entry(unsealer, res, ns, name, int(rv), bytes(data))
                if opened is None:
                    continue
                if opened.stale:
                    stale_events.append((opened.seal_again, int(rv)))
                entry = opened.entry
                key = (res, ns, name)
                self._append_event(Event(int(rv), typ, res, entry, previous.get(key)))
                previous[key] = entry
            error = unsealer.error()
            if error is not None:
                raise error
            # History past the retained window is never read again: its rows only matter
            # when they are not in the current write form (then they go with the rewrite).
            remnants = any(
                unsealer.is_stale_remnant(res, bytes(data))
                for res, data in db.execute("SELECT res, data FROM events WHERE rv <= ?", (floor,))
            )
            if stale_objects or stale_events or remnants:
                self._rewrite(db, stale_objects, stale_events, floor)
            elif db.execute("SELECT 1 FROM meta WHERE key='scrub'").fetchone():
                self._scrub(db)  # a rewrite committed, its scrub interrupted
        finally:
            db.close()
        log.info(
            "store.loaded",
            path=str(self.path),
            revision=self._rv,
            objects=sum(r.count for r in self._resources.values()),
        )

    def _open_entry(
        self, unsealer: Unsealer, res: str, namespace: str, name: str, rv: int, stored: bytes
    ) -> _Opened | None:
        """A stored row as an entry (None when it cannot be opened: the unsealer has the
        error); a stale one also carries its value sealed under the current write key."""
        opened = unsealer.open(res, namespace, name, stored)
        if opened is None:
            return None
        data, stale = opened
        try:
            entry = self._make_entry(res, namespace, name, rv, data)
        except orjson.JSONDecodeError:
            if data is stored:
                raise  # not encrypted: a damaged database, as before
            # aescbc has no authentication: a wrong key yields noise, never served
            what = describe_stored(stored)
            unsealer.fail(
                res,
                namespace,
                name,
                DecryptError(
                    what,
                    "the decrypted value is not an object (the key's secret is not the one "
                    "that wrote it)",
                    f"put back the secret {what} had when the value was written",
                ),
            )
            return None
        if not stale:
            return _Opened(entry)
        transformer = unsealer.transformer(res)
        assert transformer is not None
        return _Opened(entry, True, transformer.seal(data, storage_aad(res, namespace, name)))

    def _rewrite(
        self,
        db: sqlite3.Connection,
        objects: list[tuple[bytes, str, str, str]],
        events: list[tuple[bytes, int]],
        floor: int,
    ) -> None:
        """Store stale rows under the current write key in place (same revisions), drop
        the history past the retained window, then scrub the old forms from the file."""
        db.execute("PRAGMA secure_delete=ON")
        db.execute("BEGIN IMMEDIATE")
        db.executemany("UPDATE objects SET data=? WHERE res=? AND ns=? AND name=?", objects)
        db.executemany("UPDATE events SET data=? WHERE rv=?", events)
        db.execute("DELETE FROM events WHERE rv <= ?", (floor,))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)", (floor,))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('scrub', 1)")
        db.execute("COMMIT")
        log.info(
            "store.rewritten_under_current_keys",
            path=str(self.path),
            objects=len(objects),
            history=len(events),
        )
        self._scrub(db)

    def _scrub(self, db: sqlite3.Connection) -> None:
        """VACUUM (no free page keeps an old form) and truncate the WAL."""
        db.execute("VACUUM")
        db.execute("DELETE FROM meta WHERE key='scrub'")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.queue.put(None)
            await asyncio.to_thread(writer.join)
        self._failed = self._failed or Unavailable("store closed")
        self._wake()

    # --- reads ------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        """The newest committed revision."""
        return self._committed_rv

    def get(self, res: str, namespace: str, name: str) -> Entry | None:
        r = self._resources.get(res)
        if r is None:
            return None
        names = r.by_ns.get(namespace)
        return names.get(name) if names else None

    def latest(self, res: str, namespace: str, name: str) -> Entry | None:
        """The newest state including writes not yet committed (for read-modify-write)."""
        key = (res, namespace, name)
        if key in self._pending:
            return self._pending[key]
        return self.get(res, namespace, name)

    def count(self, res: str, namespace: str | None = None) -> int:
        r = self._resources.get(res)
        if r is None:
            return 0
        if namespace is None:
            return r.count
        return len(r.by_ns.get(namespace, {}))

    def iter(
        self, res: str, namespace: str | None = None, *, after: tuple[str, str] | None = None
    ) -> Iterator[Entry]:
        """Committed entries of ``res`` in key order (namespace, name), after ``after``."""
        r = self._resources.get(res)
        if r is None:
            return
        if namespace is not None:
            names = r.by_ns.get(namespace)
            if not names:
                return
            keys = sorted(names)
            start = bisect.bisect_right(keys, after[1]) if after else 0
            for name in keys[start:]:
                entry = names.get(name)
                if entry is not None:
                    yield entry
            return
        keys2 = r.sorted_keys()
        start = bisect.bisect_right(keys2, after) if after else 0
        for ns, name in keys2[start:]:
            entry = r.by_ns.get(ns, {}).get(name)
            if entry is not None:
                yield entry

    def namespaces_of(self, res: str) -> list[str]:
        r = self._resources.get(res)
        return sorted(r.by_ns) if r else []

    def resources(self) -> list[str]:
        return sorted(self._resources)

    # --- writes -----------------------------------------------------------------------
    def _make_entry(self, res: str, namespace: str, name: str, rv: int, data: bytes) -> Entry:
        obj = orjson.loads(data)
        labels, fields = self._indexer(res, obj)
        return Entry(rv, data, namespace, name, labels, fields)

    def _check(
        self, res: str, namespace: str, name: str, expect: int | None, create: bool
    ) -> Entry | None:
        if self._failed is not None or self._writer is None:
            raise Unavailable(str(self._failed or "store not open"))
        current = self.latest(res, namespace, name)
        if create:
            if current is not None:
                raise Exists(f"{res} {namespace}/{name}")
            return None
        if current is None:
            raise Missing(f"{res} {namespace}/{name}")
        if expect is not None and current.rv != expect:
            raise Conflict(f"{res} {namespace}/{name}: have {current.rv}, expected {expect}")
        return current

    async def create(self, res: str, namespace: str, name: str, obj: dict[str, Any]) -> Entry:
        """Store a new object; sets ``metadata.resourceVersion`` in ``obj``."""
        self._check(res, namespace, name, None, True)
        return await self._submit(res, namespace, name, obj, ADDED, None)

    async def update(
        self, res: str, namespace: str, name: str, obj: dict[str, Any], expect: int | None
    ) -> Entry:
        """Replace an object written at revision ``expect`` (None: whatever is there)."""
        prev = self._check(res, namespace, name, expect, False)
        return await self._submit(res, namespace, name, obj, MODIFIED, prev)

    async def delete(
        self, res: str, namespace: str, name: str, obj: dict[str, Any], expect: int | None
    ) -> Entry:
        """Remove an object; ``obj`` is its final state, sent to watchers with a new rv."""
        prev = self._check(res, namespace, name, expect, False)
        return await self._submit(res, namespace, name, obj, DELETED, prev)

    async def _submit(
        self, res: str, namespace: str, name: str, obj: dict[str, Any], typ: str, prev: Entry | None
    ) -> Entry:
        assert self._writer is not None
        self._rv += 1
        rv = self._rv
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        data = orjson.dumps(obj)
        if len(data) > MAX_OBJECT_BYTES and typ != DELETED:
            self._rv -= 1  # not handed out: nothing happened
            raise TooLarge(len(data))
        labels, fields = self._indexer(res, obj)
        entry = Entry(rv, data, namespace, name, labels, fields)
        key = (res, namespace, name)
        self._pending[key] = None if typ == DELETED else entry
        self._pending_count[key] = self._pending_count.get(key, 0) + 1
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._writer.queue.put(_Op(rv, res, namespace, name, typ, entry, prev, future))
        return await future

    def _on_committed(self, batch: list[_Op], error: BaseException | None) -> None:
        for op in batch:
            key = (op.res, op.namespace, op.name)
            left = self._pending_count.get(key, 1) - 1
            if left <= 0:
                self._pending_count.pop(key, None)
                self._pending.pop(key, None)
            else:
                self._pending_count[key] = left
        if error is not None:
            self._failed = error
            log.error("store.commit_failed", error=str(error), batch=len(batch))
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(Unavailable(f"commit failed: {error}"))
            return
        for op in batch:
            r = self._resources.setdefault(op.res, _Resource())
            if op.type == DELETED:
                r.remove(op.namespace, op.name)
            else:
                r.put(op.entry)
            self._committed_rv = op.rv
            event = Event(op.rv, op.type, op.res, op.entry, op.prev)
            self._append_event(event)
            for listener in self._listeners:
                listener(event)
            if not op.future.done():
                op.future.set_result(op.entry)
        self._wake()

    # --- events -----------------------------------------------------------------------
    def _append_event(self, event: Event) -> None:
        self._events.append(event)
        self._event_rvs.append(event.rv)
        limit = self.options.event_retention
        if len(self._events) > limit + limit // 4 + 16:
            drop = len(self._events) - limit
            self._compacted = self._event_rvs[drop - 1]
            del self._events[:drop]
            del self._event_rvs[:drop]

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` synchronously for every committed event (in revision order)."""
        self._listeners.append(listener)

    def events_after(self, rv: int) -> list[Event]:
        """Committed events with revision > rv; raises Expired when rv is compacted."""
        if rv < self._compacted:
            raise Expired(rv, self._compacted + 1)
        start = bisect.bisect_right(self._event_rvs, rv)
        return self._events[start:]

    @contextlib.contextmanager
    def waiter(self) -> Iterator[asyncio.Event]:
        """An asyncio.Event set whenever new events are committed (clear it after use)."""
        ev = asyncio.Event()
        self._waiters.add(ev)
        try:
            yield ev
        finally:
            self._waiters.discard(ev)

    @property
    def closed(self) -> bool:
        return self._writer is None
