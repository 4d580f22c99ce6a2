"""State on disk is private to its user (kubemodel.files): the cluster's store and its
WAL, the status database, the Git cache — whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.source import GitSource
from gitops.status import StatusStore
from kubemodel.files import private_database, private_dir
from runtime.api.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_database_and_its_wal_files_are_0600_in_a_0700_directory(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "state" / "x.db"
    private_database(db)
    assert mode(db) == 0o600 and mode(db.parent) == 0o700
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").write_bytes(b"")
        Path(f"{db}{suffix}").chmod(0o644)
    private_database(db)
    assert all(mode(Path(f"{db}{s}")) == 0o600 for s in ("-wal", "-shm"))
    private_dir(tmp_path / "open")
    (tmp_path / "open").chmod(0o755)
    assert mode(private_dir(tmp_path / "open")) == 0o700


def test_the_cluster_store_writes_nothing_others_can_read(tmp_path: Path, open_umask: None) -> None:
    async def go() -> None:
        store = Store(tmp_path / "cluster" / "state.db")
        await store.open()
        await store.create("core/configmaps", "default", "a", {"metadata": {"name": "a"}})
        await store.close()

    asyncio.run(go())
    files = sorted((tmp_path / "cluster").iterdir())
    assert files and all(mode(f) == 0o600 for f in files), [(f.name, oct(mode(f))) for f in files]


def test_the_status_database_and_the_git_cache_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    StatusStore(tmp_path / "state" / "status.sqlite").close()
    assert mode(tmp_path / "state" / "status.sqlite") == 0o600
    GitSource(tmp_path / "cache")
    assert {mode(tmp_path / "cache" / d) for d in ("", "repos", "trees")} == {0o700}
