"""The SQLite store: revisions, preconditions, durability across reopen, watch events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime.api.store import (
    ADDED,
    DELETED,
    MODIFIED,
    Conflict,
    Exists,
    Expired,
    Missing,
    Store,
    StoreOptions,
)


def _pod(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {},
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_every_write_gets_the_next_revision(tmp_path: Path) -> None:
    async def go() -> list[int]:
        store = Store(tmp_path / "s.db")
        await store.open()
        a = await store.create("core/pods", "default", "a", _pod("a"))
        b = await store.create("core/pods", "default", "b", _pod("b"))
        c = await store.update("core/pods", "default", "a", _pod("a", x="1"), a.rv)
        d = await store.delete("core/pods", "default", "b", _pod("b"), b.rv)
        await store.close()
        return [a.rv, b.rv, c.rv, d.rv]

    assert run(go()) == [1, 2, 3, 4]


def test_a_stale_revision_is_a_conflict_and_a_missing_key_is_missing(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "s.db")
        await store.open()
        a = await store.create("core/pods", "default", "a", _pod("a"))
        await store.update("core/pods", "default", "a", _pod("a", v="2"), a.rv)
        with pytest.raises(Conflict):
            await store.update("core/pods", "default", "a", _pod("a", v="3"), a.rv)
        with pytest.raises(Exists):
            await store.create("core/pods", "default", "a", _pod("a"))
        with pytest.raises(Missing):
            await store.delete("core/pods", "default", "zz", _pod("zz"), None)
        await store.close()

    run(go())


def test_objects_and_revisions_survive_a_reopen(tmp_path: Path) -> None:
    async def write() -> dict[str, int]:
        store = Store(tmp_path / "s.db")
        await store.open()
        out = {}
        for i in range(50):
            entry = await store.create("core/pods", "default", f"p{i}", _pod(f"p{i}"))
            out[f"p{i}"] = entry.rv
        await store.close()
        return out

    async def read() -> tuple[dict[str, int], int]:
        store = Store(tmp_path / "s.db")
        await store.open()
        got = {e.name: e.rv for e in store.iter("core/pods", "default")}
        rv = store.revision
        await store.close()
        return got, rv

    written = run(write())
    got, rv = run(read())
    assert got == written
    assert rv == 50


def test_events_after_a_revision_resume_across_a_reopen(tmp_path: Path) -> None:
    async def write() -> None:
        store = Store(tmp_path / "s.db")
        await store.open()
        a = await store.create("core/pods", "default", "a", _pod("a"))
        a2 = await store.update("core/pods", "default", "a", _pod("a", v="2"), a.rv)
        await store.delete("core/pods", "default", "a", _pod("a", v="2"), a2.rv)
        await store.close()

    async def read() -> list[tuple[int, str]]:
        store = Store(tmp_path / "s.db")
        await store.open()
        events = [(e.rv, e.type) for e in store.events_after(1)]
        await store.close()
        return events

    run(write())
    assert run(read()) == [(2, MODIFIED), (3, DELETED)]


def test_a_revision_older_than_the_retained_window_is_expired(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "s.db", StoreOptions(event_retention=10))
        await store.open()
        for i in range(40):
            await store.create("core/pods", "default", f"p{i}", _pod(f"p{i}"))
        with pytest.raises(Expired):
            store.events_after(1)
        assert [e.rv for e in store.events_after(39)] == [40]
        await store.close()

    run(go())


def test_concurrent_writes_commit_in_revision_order_and_wake_waiters(tmp_path: Path) -> None:
    async def go() -> list[str]:
        store = Store(tmp_path / "s.db")
        await store.open()
        with store.waiter() as wake:
            entries = await asyncio.gather(
                *(store.create("core/pods", "ns", f"p{i}", _pod(f"p{i}", "ns")) for i in range(100))
            )
            assert wake.is_set()
        assert sorted(e.rv for e in entries) == list(range(1, 101))
        events = store.events_after(0)
        assert [e.rv for e in events] == list(range(1, 101))
        await store.close()
        return [e.type for e in events]

    assert set(run(go())) == {ADDED}


def test_latest_sees_a_write_before_its_commit(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "s.db")
        await store.open()
        task = asyncio.ensure_future(store.create("core/pods", "default", "a", _pod("a")))
        await asyncio.sleep(0)
        assert store.latest("core/pods", "default", "a") is not None
        await task
        assert store.get("core/pods", "default", "a") is not None
        await store.close()

    run(go())


def test_labels_and_fields_are_indexed_for_selectors(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "s.db")
        await store.open()
        pod = _pod("a", app="web")
        pod["spec"]["nodeName"] = "node-1"
        entry = await store.create("core/pods", "default", "a", pod)
        assert entry.labels == {"app": "web"}
        assert entry.fields["spec.nodeName"] == "node-1"
        assert entry.fields["metadata.name"] == "a"
        await store.close()

    run(go())
