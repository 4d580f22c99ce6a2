"""The store encrypts listed resources at rest (runtime.api.store with
runtime.api.encryption): sealed before SQLite sees them, in the objects table and the
watch history, plain in memory; rewritten in place at start after a rotation; refused at
start when a value cannot be decrypted. Real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runtime.api.encryption import EncryptionConfig, EncryptionError, parse_config
from runtime.api.store import Store, StoreOptions

VALUE = b"correct-horse-battery-staple-4711"
ENCODED = base64.b64encode(VALUE)
KEY1 = base64.b64encode(b"1" * 32).decode()
KEY2 = base64.b64encode(b"2" * 32).decode()
SECRETS = "core/secrets"


def encryption(*providers: str) -> EncryptionConfig:
    return parse_config(
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources: [secrets]\n"
        f"    providers: [{', '.join(providers)}]\n",
        "enc.yaml",
    )


def aesgcm(*keys: tuple[str, str]) -> str:
    listed = ", ".join(f"{{name: {name}, secret: {secret}}}" for name, secret in keys)
    return f"{{aesgcm: {{keys: [{listed}]}}}}"


IDENTITY = "{identity: {}}"


def secret(name: str, value: bytes = ENCODED) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"password": value.decode()},
    }


def configmap(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"greeting": "hello-plain-configmap"},
    }


def files_with_value(directory: Path) -> list[str]:
    """Files under ``directory`` holding the value, raw or base64."""
    return [
        f.name
        for f in directory.rglob("*")
        if f.is_file() and (VALUE in f.read_bytes() or ENCODED in f.read_bytes())
    ]


def rows(db: Path, res: str = SECRETS) -> dict[str, list[bytes]]:
    """The stored values of ``res`` in both tables (read with a connection of our own)."""
    conn = sqlite3.connect(db)
    try:
        objects = [
            bytes(r[0]) for r in conn.execute("SELECT data FROM objects WHERE res=?", (res,))
        ]
        events = [bytes(r[0]) for r in conn.execute("SELECT data FROM events WHERE res=?", (res,))]
    finally:
        conn.close()
    return {"objects": objects, "events": events}


def prefixes(db: Path, res: str = SECRETS) -> set[bytes]:
    return {
        value[: value.index(b":", 18) + 1] if value.startswith(b"k8s:enc:") else value[:1]
        for table in rows(db, res).values()
        for value in table
    }


def digest(directory: Path) -> dict[str, str]:
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(directory.iterdir())
        if f.is_file()
    }


async def write_secrets(db: Path, config: EncryptionConfig | None, **options: Any) -> None:
    store = Store(db, StoreOptions(encryption=config, **options))
    await store.open()
    a = await store.create(SECRETS, "default", "db", secret("db"))
    await store.update(SECRETS, "default", "db", secret("db"), a.rv)
    b = await store.create(SECRETS, "default", "gone", secret("gone"))
    await store.delete(SECRETS, "default", "gone", secret("gone"), b.rv)
    await store.create("core/configmaps", "default", "cm", configmap("cm"))
    await store.close()


async def read_secret(db: Path, config: EncryptionConfig | None) -> tuple[dict[str, Any], int]:
    store = Store(db, StoreOptions(encryption=config))
    await store.open()
    try:
        entry = store.get(SECRETS, "default", "db")
        assert entry is not None
        return entry.obj(), store.revision
    finally:
        await store.close()


def test_a_secret_is_sealed_in_both_tables_and_never_plain_in_the_file_or_its_wal(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state" / "state.db"
    config = encryption(aesgcm(("key1", KEY1)), IDENTITY)

    async def go() -> None:
        store = Store(db, StoreOptions(encryption=config))
        await store.open()
        created = await store.create(SECRETS, "default", "db", secret("db"))
        await store.update(SECRETS, "default", "db", secret("db"), created.rv)
        await store.create("core/configmaps", "default", "cm", configmap("cm"))
        # While it runs: the WAL holds the commits, memory the plain object.
        assert Path(f"{db}-wal").stat().st_size > 0
        assert files_with_value(db.parent) == []
        entry = store.get(SECRETS, "default", "db")
        assert entry is not None and entry.obj()["data"]["password"] == ENCODED.decode()
        history = [e.entry.obj() for e in store.events_after(0) if e.res == SECRETS]
        assert [o["data"]["password"] for o in history] == [ENCODED.decode()] * 2
        await store.close()

    asyncio.run(go())
    assert files_with_value(db.parent) == []
    assert prefixes(db) == {b"k8s:enc:aesgcm:v1:key1:"}
    assert len(rows(db)["events"]) == 2
    assert all(v.startswith(b"{") for t in rows(db, "core/configmaps").values() for v in t)
    obj, _ = asyncio.run(read_secret(db, config))
    assert obj["data"]["password"] == ENCODED.decode()


def test_after_a_rotation_every_row_is_rewritten_in_place_under_the_new_key(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    asyncio.run(write_secrets(db, encryption(aesgcm(("key1", KEY1)))))
    before, revision = asyncio.run(read_secret(db, encryption(aesgcm(("key1", KEY1)))))
    rotated = encryption(aesgcm(("key2", KEY2), ("key1", KEY1)))
    after, revision_after = asyncio.run(read_secret(db, rotated))
    assert (after, revision_after) == (before, revision)  # nothing observable changed
    assert prefixes(db) == {b"k8s:enc:aesgcm:v1:key2:"}
    assert len(rows(db)["events"]) == 4  # the history too, every row kept
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    assert b"k8s:enc:aesgcm:v1:key1:" not in stored  # no old form left in free pages
    unchanged = digest(tmp_path)
    asyncio.run(read_secret(db, rotated))
    assert digest(tmp_path) == unchanged  # idempotent: the second start writes nothing
    only_new = encryption(aesgcm(("key2", KEY2)))
    assert asyncio.run(read_secret(db, only_new)) == (before, revision)


def test_identity_first_stores_plain_and_encrypting_again_rewrites_everything(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    asyncio.run(write_secrets(db, encryption(aesgcm(("key1", KEY1)))))
    plain = encryption(IDENTITY, aesgcm(("key1", KEY1)))
    obj, _ = asyncio.run(read_secret(db, plain))
    assert prefixes(db) == {b"{"}
    assert files_with_value(tmp_path) == ["state.db"]
    asyncio.run(write_secrets(tmp_path / "more.db", plain))
    assert prefixes(tmp_path / "more.db") == {b"{"}  # new writes are plain too
    (tmp_path / "more.db").unlink()
    encrypted = encryption(aesgcm(("key1", KEY1)), IDENTITY)
    assert asyncio.run(read_secret(db, encrypted))[0] == obj
    assert prefixes(db) == {b"k8s:enc:aesgcm:v1:key1:"}
    assert files_with_value(tmp_path) == []


def test_turning_encryption_on_leaves_no_plain_value_even_in_freed_pages(tmp_path: Path) -> None:
    db = tmp_path / "state.db"

    async def unencrypted() -> None:
        store = Store(db, StoreOptions(event_retention=10))
        await store.open()
        for i in range(300):
            await store.create(SECRETS, "default", f"s{i}", secret(f"s{i}"))
        await store.close()

    asyncio.run(unencrypted())
    # History compacted by an SQLite built without SECURE_DELETE (Debian's has it on):
    # the deleted rows stay in free pages until the scrub.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("DELETE FROM events WHERE rv <= 290")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', 290)")
    conn.commit()
    conn.execute("DELETE FROM objects WHERE name != 's7'")
    conn.commit()
    conn.close()
    assert "state.db" in files_with_value(tmp_path)
    config = encryption(aesgcm(("key1", KEY1)), IDENTITY)

    async def reopen() -> int:
        store = Store(db, StoreOptions(encryption=config, event_retention=10))
        await store.open()
        count = store.count(SECRETS)
        entry = store.get(SECRETS, "default", "s7")
        assert entry is not None and entry.obj()["data"]["password"] == ENCODED.decode()
        await store.close()
        return count

    assert asyncio.run(reopen()) == 1
    assert files_with_value(tmp_path) == []
    assert prefixes(db) == {b"k8s:enc:aesgcm:v1:key1:"}


def test_a_wrong_key_stops_the_store_from_opening_and_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(write_secrets(db, encryption(aesgcm(("key1", KEY1)))))
    unchanged = digest(tmp_path)
    wrong = encryption(aesgcm(("key1", KEY2)))
    with pytest.raises(EncryptionError) as refused:
        asyncio.run(read_secret(db, wrong))
    message = str(refused.value)
    assert "of secrets" in message and "default/db" in message
    assert 'aesgcm key "key1"' in message and "does not decrypt" in message
    assert 'put back the secret key "key1" had' in message and "enc.yaml" in message
    assert KEY1 not in message and KEY2 not in message
    assert digest(tmp_path) == unchanged  # nothing rewritten, nothing dropped


def test_a_key_removed_too_early_stops_the_store_naming_the_key_to_add_back(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    asyncio.run(write_secrets(db, encryption(aesgcm(("key1", KEY1)))))
    with pytest.raises(EncryptionError) as refused:
        asyncio.run(read_secret(db, encryption(aesgcm(("key2", KEY2)))))
    assert 'add aesgcm key "key1" back to the providers of secrets' in str(refused.value)
    plain = tmp_path / "plain.db"
    asyncio.run(write_secrets(plain, None))
    with pytest.raises(EncryptionError, match="plain text and no identity provider"):
        asyncio.run(read_secret(plain, encryption(aesgcm(("key1", KEY1)))))


def test_encrypted_values_need_a_config_that_lists_their_resource(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(write_secrets(db, encryption(aesgcm(("key1", KEY1)))))
    with pytest.raises(EncryptionError, match="the store was opened without one"):
        asyncio.run(read_secret(db, None))
    other = parse_config(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources: [{resources: [configmaps], providers: [{identity: {}}]}]\n"
    )
    with pytest.raises(EncryptionError, match="the config lists no providers for secrets"):
        asyncio.run(read_secret(db, other))


def test_an_interrupted_scrub_is_finished_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    config = encryption(aesgcm(("key1", KEY1)))
    asyncio.run(write_secrets(db, config))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO meta (key, value) VALUES ('scrub', 1)")
    conn.commit()
    conn.close()
    asyncio.run(read_secret(db, config))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT 1 FROM meta WHERE key='scrub'").fetchone() is None
    conn.close()
