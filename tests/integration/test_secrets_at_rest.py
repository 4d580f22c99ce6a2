"""Secrets encrypted at rest in the built-in cluster (runtime.api.encryption), through
real ``gitops cluster up`` processes over HTTPS: no value in any file of the state
directory while the cluster runs or after it stops, key rotation by restart, a wrong key
refusing to start, identity first writing plain text and back."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration

VALUE = b"s3cr3t-at-rest-" + secrets.token_hex(8).encode()
ENCODED = base64.b64encode(VALUE)
STRING_VALUE = "string-data-" + secrets.token_hex(8)


def request(cluster: ClusterProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {cluster.token}",
    }
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


SECRETS_PATH = "/api/v1/namespaces/default/secrets"


def create_secret(cluster: ClusterProcess, name: str) -> dict[str, Any]:
    status, created = request(
        cluster,
        "POST",
        SECRETS_PATH,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {"password": ENCODED.decode()},
            "stringData": {"token": STRING_VALUE},
        },
    )
    assert status == 201, created
    # An update and a label change: more rows in the watch history.
    created["metadata"]["labels"] = {"rotated": "no"}
    status, updated = request(cluster, "PUT", f"{SECRETS_PATH}/{name}", created)
    assert status == 200, updated
    return dict(updated)


def read_secret(cluster: ClusterProcess, name: str) -> dict[str, Any]:
    status, body = request(cluster, "GET", f"{SECRETS_PATH}/{name}")
    assert status == 200, body
    assert body["data"]["password"] == ENCODED.decode()
    assert base64.b64decode(body["data"]["token"]).decode() == STRING_VALUE
    return dict(body)


def watch_from_the_start(cluster: ClusterProcess) -> list[dict[str, Any]]:
    """The Secrets' watch history from revision 1 (served from the store's history)."""
    req = urllib.request.Request(
        f"{cluster.url}{SECRETS_PATH}?watch=true&resourceVersion=1&timeoutSeconds=2",
        headers={"Authorization": f"Bearer {cluster.token}"},
    )
    with urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=10) as r:
        events = [json.loads(line) for line in r if line.strip()]
    return [e for e in events if e["type"] != "BOOKMARK"]


def leaks(state_dir: Path) -> list[str]:
    """Files under the state directory holding a value: raw, base64 or from stringData."""
    needles = (VALUE, ENCODED, STRING_VALUE.encode(), base64.b64encode(STRING_VALUE.encode()))
    found = []
    for path in state_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(str(path.relative_to(state_dir)))
    return found


def stored_prefixes(state_dir: Path) -> dict[str, set[bytes]]:
    """The prefix of every stored Secret row, per table (``{`` for plain JSON)."""
    conn = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
    try:
        out: dict[str, set[bytes]] = {}
        for table in ("objects", "events"):
            values = [
                bytes(r[0])
                for r in conn.execute(f"SELECT data FROM {table} WHERE res='core/secrets'")
            ]
            assert values, f"no Secret rows in {table}"
            out[table] = {
                v[: v.index(b":", 18) + 1] if v.startswith(b"k8s:enc:") else v[:1] for v in values
            }
        return out
    finally:
        conn.close()


def config_text(*providers: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{"resources": ["secrets"], "providers": list(providers)}],
        }
    )


def aesgcm(*keys: tuple[str, str]) -> dict[str, Any]:
    return {"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_a_secrets_value_is_in_no_file_of_the_state_dir_while_running_and_after_stop(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cluster = ClusterProcess(state)
    cluster.start()
    try:
        create_secret(cluster, "db")
        read_secret(cluster, "db")
        history = watch_from_the_start(cluster)
        assert [(e["type"], e["object"]["data"]["password"]) for e in history] == [
            ("ADDED", ENCODED.decode()),
            ("MODIFIED", ENCODED.decode()),
        ]
        assert leaks(state) == []  # the database, its WAL and SHM, the log, the rest
        assert (state / "state.db-wal").exists()
        assert stored_prefixes(state) == {
            "objects": {b"k8s:enc:aesgcm:v1:key1:"},
            "events": {b"k8s:enc:aesgcm:v1:key1:"},
        }
    finally:
        assert cluster.stop() == 0
    assert leaks(state) == []
    config = state / "encryption-config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert "aesgcm" in config.read_text()


def test_after_a_key_rotation_every_row_is_under_the_new_key_and_the_old_key_can_go(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cluster = ClusterProcess(state)
    cluster.start()
    try:
        written = create_secret(cluster, "db")
    finally:
        cluster.stop()
    config_path = state / "encryption-config.yaml"
    config = yaml.safe_load(config_path.read_text())
    keys = config["resources"][0]["providers"][0]["aesgcm"]["keys"]
    assert [k["name"] for k in keys] == ["key1"]
    keys.insert(0, {"name": "key2", "secret": new_key()})
    config_path.write_text(yaml.safe_dump(config))
    cluster.start()
    try:
        body = read_secret(cluster, "db")
        assert body["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
        history = watch_from_the_start(cluster)  # the history was rewritten, not lost
        assert [e["object"]["data"]["password"] for e in history] == [ENCODED.decode()] * 2
    finally:
        cluster.stop()
    under_key2 = {b"k8s:enc:aesgcm:v1:key2:"}
    assert stored_prefixes(state) == {"objects": under_key2, "events": under_key2}
    assert leaks(state) == []
    del keys[1]  # the old key is not needed any more
    config_path.write_text(yaml.safe_dump(config))
    cluster.start()
    try:
        read_secret(cluster, "db")
        create_secret(cluster, "after")
        read_secret(cluster, "after")
    finally:
        cluster.stop()
    assert stored_prefixes(state) == {"objects": under_key2, "events": under_key2}


def test_a_wrong_key_refuses_to_start_with_an_error_saying_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / "state"
    operator = tmp_path / "encryption.yaml"
    operator.write_text(config_text(aesgcm(("prod-2025", new_key())), {"identity": {}}))
    flag = ("--encryption-provider-config", str(operator))
    cluster = ClusterProcess(state, extra_args=flag)
    cluster.start()
    try:
        create_secret(cluster, "db")
    finally:
        cluster.stop()
    assert not (state / "encryption-config.yaml").exists()  # the operator's file only
    operator.write_text(config_text(aesgcm(("prod-2025", new_key())), {"identity": {}}))
    with pytest.raises(RuntimeError) as refused:
        cluster.start()
    log = str(refused.value)
    assert "server exited with 1" in log
    assert "of secrets" in log and "default/db" in log
    assert 'aesgcm key "prod-2025"' in log and str(operator) in log
    assert 'put back the secret key "prod-2025" had when the value was written' in log
    assert "Traceback" not in log


def test_identity_first_stores_plain_text_and_putting_aesgcm_first_encrypts_it_again(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    operator = tmp_path / "encryption.yaml"
    key = aesgcm(("key1", new_key()))
    operator.write_text(config_text({"identity": {}}, key))
    cluster = ClusterProcess(state, extra_args=("--encryption-provider-config", str(operator)))
    cluster.start()
    try:
        create_secret(cluster, "db")
        read_secret(cluster, "db")
    finally:
        cluster.stop()
    assert stored_prefixes(state) == {"objects": {b"{"}, "events": {b"{"}}
    assert "state.db" in leaks(state)
    operator.write_text(config_text(key, {"identity": {}}))
    cluster.start()
    try:
        read_secret(cluster, "db")
    finally:
        cluster.stop()
    assert stored_prefixes(state) == {
        "objects": {b"k8s:enc:aesgcm:v1:key1:"},
        "events": {b"k8s:enc:aesgcm:v1:key1:"},
    }
    assert leaks(state) == []


def test_a_lost_key_file_refuses_to_start_and_restoring_it_brings_everything_back(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    cluster = ClusterProcess(state)
    cluster.start()
    try:
        create_secret(cluster, "db")
    finally:
        cluster.stop()
    config = state / "encryption-config.yaml"
    backup = config.read_bytes()
    config.unlink()
    with pytest.raises(RuntimeError) as refused:
        cluster.start()
    assert "did not exist: a new key was tried and not kept" in str(refused.value)
    assert not config.exists()  # the next start fails the same way until it is restored
    config.write_bytes(backup)
    config.chmod(0o600)
    cluster.start()
    try:
        read_secret(cluster, "db")
    finally:
        cluster.stop()
