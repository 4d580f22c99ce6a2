"""Durability under SIGKILL, and bearer-token authentication, against a real server process."""

from __future__ import annotations

import json
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration


def _request(
    cluster: ClusterProcess,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = "default",
    timeout: float = 10,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token == "default":
        token = cluster.token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _configmap(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"n": name},
    }


def test_without_valid_credentials_nothing_is_read_or_written(cluster: ClusterProcess) -> None:
    # No credentials: system:anonymous, whom RBAC allows nothing here (403); a token
    # that does not verify: 401, never anonymous.
    for token, code, reason in ((None, 403, "Forbidden"), ("wrong-token", 401, "Unauthorized")):
        status, body = _request(
            cluster, "GET", "/api/v1/namespaces/default/configmaps", token=token
        )
        assert (status, body["reason"]) == (code, reason)
        status, _ = _request(
            cluster,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            _configmap("intruder"),
            token=token,
        )
        assert status == code
    status, _ = _request(cluster, "GET", "/api/v1/namespaces/default/configmaps/intruder")
    assert status == 404


def test_acknowledged_writes_survive_sigkill_and_a_resuming_watcher_misses_nothing(
    tmp_path: Path,
) -> None:
    server = ClusterProcess(tmp_path / "state")
    server.start()
    try:
        status, listed = _request(server, "GET", "/api/v1/namespaces/default/configmaps")
        start_rv = listed["metadata"]["resourceVersion"]
        seen: dict[str, str] = {}
        last_rv = [start_rv]

        def follow() -> None:
            ctx = server.ssl_context()
            req = urllib.request.Request(
                f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={last_rv[0]}",
                headers={"Authorization": f"Bearer {server.token}"},
            )
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                    for line in r:
                        event = json.loads(line)
                        meta = event["object"]["metadata"]
                        seen[meta["name"]] = meta["resourceVersion"]
                        last_rv[0] = meta["resourceVersion"]
            except (OSError, ValueError, ssl.SSLError):
                return

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        acknowledged: dict[str, str] = {}
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set() and i < 5000:
                try:
                    status, body = _request(
                        server,
                        "POST",
                        "/api/v1/namespaces/default/configmaps",
                        _configmap(f"cm-{i}"),
                        timeout=5,
                    )
                except OSError:
                    return
                if status == 201:
                    acknowledged[body["metadata"]["name"]] = body["metadata"]["resourceVersion"]
                i += 1

        threads = [threading.Thread(target=writer) for _ in range(1)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        watcher.join(timeout=10)
        assert len(acknowledged) >= 150

        server.start()
        status, listed = _request(server, "GET", "/api/v1/namespaces/default/configmaps")
        stored = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]}
        for name, rv in acknowledged.items():
            assert stored.get(name) == rv, f"{name} lost or changed: {rv} -> {stored.get(name)}"
        follow_again = threading.Thread(target=follow, daemon=True)
        status, _ = _request(
            server, "POST", "/api/v1/namespaces/default/configmaps", _configmap("after-restart")
        )
        assert status == 201
        follow_again.start()
        deadline = time.monotonic() + 20
        while "after-restart" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        for name, rv in stored.items():
            assert seen.get(name) == rv, f"the watcher missed {name}@{rv}"
        assert "after-restart" in seen
    finally:
        server.stop()
