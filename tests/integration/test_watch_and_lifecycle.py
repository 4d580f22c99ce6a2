"""Watch semantics over real HTTPS (bookmarks, 410 Gone, initial events, selector
transitions) and the server's clean shutdown with watches open."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    proc = ClusterProcess(
        tmp_path_factory.mktemp("watch"),
        extra_args=("--bookmark-interval", "0.5", "--event-retention", "20"),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _connection(server: ClusterProcess, timeout: float = 10) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=server.ssl_context(), timeout=timeout
    )


def _call(server: ClusterProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = _connection(server)
    try:
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _watch(
    server: ClusterProcess, path: str, until: int, timeout: float = 15
) -> list[dict[str, Any]]:
    """Read watch events from ``path`` until ``until`` events arrived or the stream ends."""
    conn = _connection(server, timeout=timeout)
    conn.request("GET", path, headers={"Authorization": f"Bearer {server.token}"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(events) < until and time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            events.append(json.loads(line))
    finally:
        conn.close()
    return events


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}


def test_a_watch_that_allows_bookmarks_receives_them(server: ClusterProcess) -> None:
    events = _watch(
        server,
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=0",
        1,
    )
    assert events[0]["type"] == "BOOKMARK"
    assert events[0]["object"]["kind"] == "ConfigMap"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > 0


def test_a_revision_older_than_the_retained_window_gets_410_gone(server: ClusterProcess) -> None:
    _call(
        server,
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}},
    )
    for i in range(40):
        status, _ = _call(server, "POST", "/api/v1/namespaces/gone/configmaps", _cm(f"c{i}"))
        assert status == 201
    events = _watch(server, "/api/v1/namespaces/gone/configmaps?watch=true&resourceVersion=1", 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


def test_send_initial_events_lists_then_marks_the_end_with_a_bookmark(
    server: ClusterProcess,
) -> None:
    _call(
        server,
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "initial"}},
    )
    for name in ("a", "b"):
        _call(server, "POST", "/api/v1/namespaces/initial/configmaps", _cm(name))
    events = _watch(
        server,
        "/api/v1/namespaces/initial/configmaps?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        3,
    )
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events[:2]] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    assert events[2]["type"] == "BOOKMARK"
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_objects_moving_in_and_out_of_a_label_selector_are_added_and_deleted(
    server: ClusterProcess,
) -> None:
    _, listed = _call(server, "GET", "/api/v1/namespaces/default/configmaps")
    rv = listed["metadata"]["resourceVersion"]
    _call(server, "POST", "/api/v1/namespaces/default/configmaps", _cm("mover", team="x"))
    conn = _connection(server)
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/merge-patch+json",
    }
    for team in ("blue", "x"):
        conn.request(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/mover",
            json.dumps({"metadata": {"labels": {"team": team}}}),
            headers,
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.close()
    events = _watch(
        server,
        f"/api/v1/namespaces/default/configmaps?watch=true&labelSelector=team%3Dblue&resourceVersion={rv}",
        2,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "mover"),
        ("DELETED", "mover"),
    ]


def test_sigterm_stops_the_server_cleanly_with_a_watch_open(tmp_path: Path) -> None:
    proc = ClusterProcess(tmp_path / "state")
    proc.start()
    conn = _connection(proc, timeout=30)
    conn.request(
        "GET", "/api/v1/configmaps?watch=true", headers={"Authorization": f"Bearer {proc.token}"}
    )
    assert conn.getresponse().status == 200
    started = time.monotonic()
    code = proc.stop(signal.SIGTERM, timeout=20)
    conn.close()
    assert code == 0
    assert time.monotonic() - started < 10
