"""The service without a cluster: suspended Applications, a destination that cannot be
reached, dependsOn gating, the HTTP endpoints and webhooks, retries, and the app-of-apps
set following the commits of a real local repository."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from gitops.config import Config
from gitops.service import Service, ServiceAppStatus, ServiceOptions
from tests.conftest import free_port
from tests.unit.test_source_git import commit, make_repo

T = TypeVar("T")
REMOTE = "https://git.example.com/org/web.git"


def config(*apps: dict[str, Any]) -> Config:
    return Config.model_validate({"applications": list(apps)})


def remote_app(name: str, **spec: Any) -> dict[str, Any]:
    return {"name": name, "source": {"repoURL": REMOTE}, **spec}


def statuses(service: Service) -> dict[str, ServiceAppStatus]:
    out = {}
    for status in service.statuses():
        assert isinstance(status, ServiceAppStatus)
        out[status.name] = status
    return out


async def eventually(what: str, check: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.02)


def running(
    cfg: Config, tmp_path: Path, body: Callable[[Service], Awaitable[None]], **options: Any
) -> None:
    async def go() -> None:
        service = Service(cfg, ServiceOptions(state_dir=tmp_path / "state", **options))
        await service.start()
        try:
            await body(service)
        finally:
            await service.stop()

    asyncio.run(go())


def unreachable_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {{server: "https://127.0.0.1:{free_port()}", insecure-skip-tls-verify: true}}
users:
- name: someone
  user: {{token: not-a-secret}}
contexts:
- name: gone
  context: {{cluster: gone, user: someone}}
current-context: gone
"""
    )
    return path


def test_a_builtin_destination_without_a_kubeconfig_fails_clearly_and_is_not_retried(
    tmp_path: Path,
) -> None:
    async def body(service: Service) -> None:
        status = await eventually("the first run", lambda: statuses(service)["web"].runs)
        web = statuses(service)["web"]
        assert status == 1
        assert web.sync_status == "Failed"
        assert "built-in cluster is not running" in web.last_error
        assert web.state == "idle"  # a permanent error waits for a commit or the interval
        assert web.history[0].result == "failed"
        assert not service.not_ready()

    running(config(remote_app("web")), tmp_path, body, listen=None)


def test_a_suspended_application_is_not_run_and_its_status_says_suspended(
    tmp_path: Path,
) -> None:
    async def body(service: Service) -> None:
        await eventually("the other run", lambda: statuses(service)["web"].runs)
        await service.trigger("paused", "by hand")
        await asyncio.sleep(0.1)
        paused = statuses(service)["paused"]
        assert (paused.sync_status, paused.state, paused.runs) == ("Suspended", "suspended", 0)
        assert paused.history == []
        assert service.not_ready() == []  # readiness ignores suspended Applications
        with pytest.raises(Exception, match="unknown application"):
            await service.trigger("nope", "by hand")

    running(
        config(remote_app("web"), remote_app("paused", suspend=True)),
        tmp_path,
        body,
        listen=None,
    )


def test_an_application_waits_until_its_dependencies_are_synced_and_healthy(
    tmp_path: Path,
) -> None:
    async def body(service: Service) -> None:
        assert service.url is not None
        await eventually("the database's run", lambda: statuses(service)["db"].runs)
        await asyncio.sleep(0.1)
        web = statuses(service)["web"]
        assert web.state == "waiting for db"
        assert web.runs == 0 and web.history == []
        async with aiohttp.ClientSession() as http, http.get(f"{service.url}/readyz") as r:
            assert r.status == 503
            assert (await r.json())["waiting"] == ["web"]

    running(
        config(remote_app("web", dependsOn=["db"]), remote_app("db")),
        tmp_path,
        body,
        listen="127.0.0.1:0",
    )


def github(body: bytes, secret: str | None, event: str = "push") -> dict[str, str]:
    headers = {"X-GitHub-Event": event, "Content-Type": "application/json"}
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return headers


def test_the_endpoints_answer_and_a_signed_push_triggers_the_applications_of_its_repository(
    tmp_path: Path,
) -> None:
    push = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "a" * 40,
            "repository": {"clone_url": "https://GIT.example.com/org/web"},
        }
    ).encode()

    async def body(service: Service) -> None:
        url = service.url
        assert url is not None
        await eventually("two runs", lambda: all(s.runs for s in statuses(service).values()))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{url}/status") as r:
                apps = {a["name"]: a for a in (await r.json())["applications"]}
                assert apps["web"]["sync_status"] == "Failed"
                assert apps["web"]["history"][0]["result"] == "failed"
            async with http.get(f"{url}/metrics") as r:
                assert 'gitops_sync_total{app="web",result="failed"} 1' in await r.text()
            for headers, code in [
                (github(push, None), 401),
                (github(push, "wrong"), 403),
                (github(push, "s3cret", event="issues"), 202),
                ({"Content-Type": "application/json"}, 400),
            ]:
                async with http.post(f"{url}/webhook", data=push, headers=headers) as r:
                    assert r.status == code, await r.text()
            assert statuses(service)["web"].runs == 1
            async with http.post(f"{url}/webhook", data=push, headers=github(push, "s3cret")) as r:
                assert r.status == 200
                assert (await r.json()) == {"triggered": ["web"]}
        await eventually("the triggered run", lambda: statuses(service)["web"].runs == 2)
        assert statuses(service)["other"].runs == 1

    other = {"name": "other", "source": {"repoURL": "https://git.example.com/org/other.git"}}
    running(
        config(remote_app("web"), other),
        tmp_path,
        body,
        listen="127.0.0.1:0",
        webhook_secret="s3cret",
    )


def child(name: str, path: str, interval: str = "1h") -> str:
    return (
        "apiVersion: gitops.dev/v1alpha1\nkind: Application\n"
        f"metadata:\n  name: {name}\nspec:\n  source:\n    path: {path}\n"
        f"  interval: {interval}\n---\n"
    )


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def test_declared_applications_follow_the_commits_and_unreachable_clusters_are_retried(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(
        repo,
        {
            "apps/children.yaml": child("child-a", "a") + child("child-b", "b"),
            "a/cm.yaml": configmap("a"),
            "b/cm.yaml": configmap("b"),
        },
    )
    root = {"name": "root", "source": {"repoURL": str(repo), "path": "apps"}, "interval": "1h"}

    async def body(service: Service) -> None:
        await eventually(
            "the declared applications", lambda: {"child-a", "child-b"} <= set(statuses(service))
        )
        now = statuses(service)
        assert now["child-a"].declared_by == "root" and now["root"].declared_by == ""
        # The cluster refuses connections: a retryable failure, retried with backoff.
        await eventually(
            "the retry", lambda: statuses(service)["root"].state.startswith("retrying at")
        )
        assert "127.0.0.1" in statuses(service)["root"].last_error

        commit(repo, {"apps/children.yaml": child("child-b", "b", interval="2h")}, "drop a")
        await eventually("child-a removed", lambda: "child-a" not in service.applications())
        await eventually(
            "child-b updated", lambda: service.applications()["child-b"].interval == 7200
        )
        assert statuses(service)["child-b"].declared_by == "root"

    running(
        config(root),
        tmp_path,
        body,
        listen=None,
        builtin_kubeconfig=unreachable_kubeconfig(tmp_path),
    )


def test_logs_are_one_json_object_per_line_when_stderr_is_not_a_terminal() -> None:
    import io
    import logging

    import structlog

    from gitops.service import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    try:
        configure_logging(False, stream=out)
        log = structlog.get_logger("test")
        log.debug("hidden", app="web")
        log.warning("drift detected", app="web", objects=["ConfigMap/default/x"])
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "drift detected"
    assert event["level"] == "warning"
    assert event["app"] == "web" and event["objects"] == ["ConfigMap/default/x"]
    assert "timestamp" in event


def test_a_listen_address_in_use_fails_the_start_and_leaves_nothing_open(tmp_path: Path) -> None:
    import socket

    async def go() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = Service(
                config(remote_app("web")),
                ServiceOptions(state_dir=tmp_path / "state", listen=f"127.0.0.1:{port}"),
            )
            with pytest.raises(OSError):
                await service.start()
            assert service.url is None
            await service.stop()  # stopping again is harmless
            assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(go())
