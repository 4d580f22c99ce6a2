"""No crash without a status: a run that raises something unexpected (our bug) is
recorded as a failed run with its phase, not retried, logged with its traceback, and
counts for readiness; a first fetch that fails is Failed, never Synced. A real Service
(HTTP on 127.0.0.1, SQLite status), real Git repositories; the destination refuses
connections, so these runs never reach a cluster."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gitops import sync as syncing
from gitops.config import Config
from gitops.service import Service
from gitops.status import StatusStore, sync_status
from gitops.sync import Mode, SyncResult, internal_error
from tests.conftest import free_port
from tests.unit.test_service import (
    config,
    eventually,
    running,
    statuses,
    unreachable_kubeconfig,
)
from tests.unit.test_source_git import commit, make_repo

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  k: v\n"


def local_app(tmp_path: Path) -> Config:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"app/cm.yaml": CONFIGMAP})
    return config({"name": "web", "source": {"repoURL": str(repo), "path": "app"}})


async def readyz(service: Service) -> int:
    assert service.url is not None
    async with aiohttp.ClientSession() as http, http.get(f"{service.url}/readyz") as r:
        return r.status


def crashes(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "run crashed"]


def only_crash(tmp_path: Path, body: Any) -> dict[str, Any]:
    """Run ``body`` against a service of one local Application; the one crash it logged."""
    with capture_logs() as logs:
        running(
            local_app(tmp_path),
            tmp_path,
            body,
            listen="127.0.0.1:0",
            builtin_kubeconfig=unreachable_kubeconfig(tmp_path),
        )
    (crash,) = crashes(logs)
    return crash


def test_a_run_that_raises_inside_the_build_is_a_failed_run_of_the_build_and_the_service_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_build(*_: object, **__: object) -> object:
        raise RuntimeError("a bug in the builder")

    monkeypatch.setattr(syncing, "build", broken_build)

    async def body(service: Service) -> None:
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        web = statuses(service)["web"]
        assert web.sync_status == "Failed"
        assert web.last_error == "internal error in build: RuntimeError: a bug in the builder"
        assert len(web.revision) == 40  # the commit whose build crashed
        assert web.history[0].result == "failed"
        assert web.state == "idle"  # not retried: our bug does not go away by itself
        assert await readyz(service) == 200
        assert 'gitops_sync_total{app="web",result="failed"} 1' in service.metrics_text()

    crash = only_crash(tmp_path, body)
    assert crash["app"] == "web" and crash["phase"] == "build"
    assert isinstance(crash["exc_info"], RuntimeError)  # rendered as a traceback


def test_a_recursion_error_while_planning_is_a_failed_run_of_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def deep(*_: object, **__: object) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(syncing.planning, "plan", deep)

    async def body(service: Service) -> None:
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        web = statuses(service)["web"]
        assert (web.sync_status, web.history[0].result) == ("Failed", "failed")
        assert web.last_error == (
            "internal error in plan: RecursionError: maximum recursion depth exceeded"
        )
        assert await readyz(service) == 200

    running(
        local_app(tmp_path),
        tmp_path,
        body,
        listen="127.0.0.1:0",
        builtin_kubeconfig=unreachable_kubeconfig(tmp_path),
    )


def test_a_crash_around_the_pipeline_is_recorded_with_its_phase_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gitops.service.core as core

    def no_appsync(*_: object, **__: object) -> object:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(core, "AppSync", no_appsync)

    async def body(service: Service) -> None:
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        web = statuses(service)["web"]
        assert web.sync_status == "Failed"
        assert web.last_error == (
            "internal error in destination: OSError: [Errno 24] Too many open files"
        )
        assert await readyz(service) == 200

    crash = only_crash(tmp_path, body)
    assert crash["phase"] == "destination" and isinstance(crash["exc_info"], OSError)


def test_a_run_whose_status_cannot_be_recorded_still_counts_and_is_recorded_when_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = StatusStore.record
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky(self: StatusStore, result: SyncResult) -> None:
        if failures:
            raise failures.pop()
        real(self, result)

    monkeypatch.setattr(StatusStore, "record", flaky)

    async def body(service: Service) -> None:
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        web = statuses(service)["web"]
        assert web.last_error == "internal error in record: OperationalError: disk I/O error"
        assert web.sync_status == "Failed"
        assert await readyz(service) == 200

    running(
        local_app(tmp_path),
        tmp_path,
        body,
        listen="127.0.0.1:0",
        builtin_kubeconfig=unreachable_kubeconfig(tmp_path),
    )


def test_a_first_fetch_that_fails_is_failed_without_a_revision_never_synced(
    tmp_path: Path,
) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}/org/app.git"
    missing = tmp_path / "no-such-repository"
    cfg = config(
        {"name": "remote", "source": {"repoURL": nothing_listens}},
        {"name": "local", "source": {"repoURL": str(missing)}},
    )

    async def body(service: Service) -> None:
        await eventually("both runs", lambda: all(s.runs for s in statuses(service).values()))
        for name, where in (("remote", nothing_listens), ("local", str(missing))):
            status = statuses(service)[name]
            assert status.sync_status == "Failed", name
            assert status.revision == "", name
            assert status.last_error.startswith(f"fetching {where} failed"), status.last_error
            assert status.history[0].result == "failed"
        assert await readyz(service) == 200

    running(
        cfg,
        tmp_path,
        body,
        listen="127.0.0.1:0",
        builtin_kubeconfig=unreachable_kubeconfig(tmp_path),
    )


def test_a_failed_fetch_keeps_a_good_revision_s_sync_status_but_without_one_it_is_failed() -> None:
    first = SyncResult("web", Mode.SYNC, error="fetching x failed", error_phase="fetch")
    assert sync_status(first) == "Failed"
    later = SyncResult(
        "web", Mode.PLAN, revision="c" * 40, error="fetching x failed", error_phase="fetch"
    )
    assert sync_status(later) == "Synced"  # the last good revision, still applied


def test_an_internal_error_names_the_phase_and_the_exception_and_stays_short() -> None:
    assert internal_error("apply", KeyError("kind")) == "internal error in apply: KeyError: 'kind'"
    assert internal_error("build", MemoryError()) == "internal error in build: MemoryError"
    long = internal_error("plan", ValueError("x" * 5000))
    assert len(long) < 1100 and long.endswith("…")

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise TypeError("no")

    assert internal_error("fetch", Unprintable()) == (
        "internal error in fetch: Unprintable: (the exception cannot be shown)"
    )
