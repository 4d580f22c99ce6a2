"""The reconciler service against a real built-in cluster process (fake runtime) and real
Git repositories in tmp_path: first sync, a commit applied within about a second, the
HTTP endpoints, webhooks, and status that survives a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gitops.config import Config
from gitops.service import Service, ServiceAppStatus, ServiceOptions
from kubeclient.rest import Client, KubeError, load_kubeconfig
from tests.conftest import ClusterProcess
from tests.integration.harness import started, until
from tests.unit.test_source_git import commit, make_repo

pytestmark = pytest.mark.integration

SECRET = "webhook-secret"


def configmap(name: str, value: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value!r}\n"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("cluster"), runtime="fake") as proc:
        yield proc


def config_for(repo: Path) -> Config:
    return Config.model_validate(
        {
            "applications": [
                {
                    "name": "demo",
                    "source": {"repoURL": str(repo / "deploy"), "path": "app"},
                    "destination": {"cluster": "builtin", "namespace": "default"},
                    "interval": "1h",
                }
            ]
        }
    )


async def value_of(client: Client, name: str) -> str | None:
    try:
        obj = await client.get("v1", "configmaps", name, "default")
    except KeyError:
        return None
    except KubeError as exc:
        if exc.not_found:
            return None
        raise
    data: dict[str, Any] = obj.get("data") or {}
    return data.get("value")


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def demo(service: Service) -> ServiceAppStatus:
    (status,) = service.statuses()
    assert isinstance(status, ServiceAppStatus)
    return status


def test_the_service_syncs_commits_serves_its_endpoints_and_keeps_status(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"deploy/app/cm.yaml": configmap("demo", "one")}, "first")
    state = tmp_path / "state"
    options = ServiceOptions(
        state_dir=state,
        listen="127.0.0.1:0",
        webhook_secret=SECRET,
        builtin_kubeconfig=cluster.kubeconfig,
    )

    async def body() -> int:
        service = Service(config_for(repo), options)
        await service.start()
        try:
            async with (
                Client(load_kubeconfig(cluster.kubeconfig)) as client,
                aiohttp.ClientSession() as http,
            ):
                assert service.url is not None and service.url.startswith("http://127.0.0.1:")
                await until("the first sync", lambda: _is(value_of(client, "demo"), "one"), 30)
                await until("the first run recorded", lambda: _true(demo(service).runs >= 1), 30)

                async with http.get(f"{service.url}/healthz") as r:
                    assert r.status == 200
                async with http.get(f"{service.url}/readyz") as r:
                    assert r.status == 200, await r.text()

                # A commit is applied without waiting for the interval (the watcher
                # triggers the run; the latency figure is bench/gitops_bench.py's).
                commit(repo, {"deploy/app/cm.yaml": configmap("demo", "two")}, "second")
                t0 = time.monotonic()
                while await value_of(client, "demo") != "two":
                    assert time.monotonic() - t0 < 10, "the commit was not applied"
                    await asyncio.sleep(0.02)
                await until("the second run recorded", lambda: _true(demo(service).runs >= 2), 30)

                async with http.get(f"{service.url}/metrics") as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain")
                    metrics = await r.text()
                assert 'gitops_sync_total{app="demo",result="applied"} 2' in metrics
                assert 'gitops_app_healthy{app="demo"} 1' in metrics
                assert 'gitops_sync_duration_seconds_count{app="demo"} 2' in metrics

                async with http.get(f"{service.url}/status") as r:
                    assert r.status == 200
                    (shown,) = (await r.json())["applications"]
                assert shown["name"] == "demo"
                assert shown["sync_status"] == "Synced"
                assert shown["health"] == "Healthy"
                assert shown["revision_message"] == "second"
                assert [h["result"] for h in shown["history"]] == ["applied", "applied"]

                # Webhooks: refused without or with a wrong signature, accepted when signed.
                head = demo(service).revision
                payload = json.dumps(
                    {
                        "ref": "refs/heads/main",
                        "after": head,
                        "repository": {"clone_url": str(repo / "deploy")},
                    }
                ).encode()
                unsigned = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
                async with http.post(f"{service.url}/webhook", data=payload, headers=unsigned) as r:
                    assert r.status == 401
                async with http.post(
                    f"{service.url}/webhook", data=payload, headers=signed(payload, "wrong")
                ) as r:
                    assert r.status == 403
                assert demo(service).runs == 2
                ping = b'{"zen": "hi"}'
                async with http.post(
                    f"{service.url}/webhook",
                    data=ping,
                    headers={**signed(ping), "X-GitHub-Event": "ping"},
                ) as r:
                    assert r.status == 202
                async with http.post(
                    f"{service.url}/webhook", data=payload, headers=signed(payload)
                ) as r:
                    assert r.status == 200
                    assert (await r.json())["triggered"] == ["demo"]
                await until("the webhook's run", lambda: _true(demo(service).runs >= 3), 30)
                # Nothing new in the repository: the triggered run was a drift check.
                assert demo(service).history[0].mode == "heal"
                return len(demo(service).history)
        finally:
            await service.stop()

    runs = asyncio.run(body())
    assert runs == 3

    async def restarted() -> None:
        again = Service(config_for(repo), ServiceOptions(state_dir=state, listen=None))
        await again.start()
        try:
            # Its own first run fails at once (no built-in cluster given) and adds a row
            # without a revision; the three runs before the restart are all still there.
            status = again.statuses(history=10)[0]
            assert status.revision_message == "second"
            assert [h.mode for h in status.history if h.revision] == ["heal", "sync", "sync"]
            assert again.url is None
        finally:
            await again.stop()

    asyncio.run(restarted())


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def _true(value: bool) -> bool:
    return value


def test_drift_is_healed_with_backoff_or_reported_and_dependencies_run_first(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(
        repo,
        {
            "healer/cm.yaml": configmap("healed", "desired"),
            "reporter/cm.yaml": configmap("reported", "desired"),
        },
    )
    cfg = Config.model_validate(
        {
            "applications": [
                {
                    "name": "reporter",
                    "source": {"repoURL": str(repo), "path": "reporter"},
                    "interval": "1h",
                    "dependsOn": ["healer"],
                },
                {
                    "name": "healer",
                    "source": {"repoURL": str(repo), "path": "healer"},
                    "interval": "1h",
                    "selfHeal": True,
                    "retry": {"backoff": {"duration": "1s"}},
                },
            ]
        }
    )
    options = ServiceOptions(
        state_dir=tmp_path / "state", listen=None, builtin_kubeconfig=cluster.kubeconfig
    )

    def events(logs: list[dict[str, Any]], name: str, app: str) -> list[dict[str, Any]]:
        return [e for e in logs if e["event"] == name and e.get("app") == app]

    async def body(logs: list[dict[str, Any]]) -> None:
        service = Service(cfg, options)
        await service.start()
        try:
            async with Client(load_kubeconfig(cluster.kubeconfig)) as client:

                def runs(name: str) -> int:
                    return next(
                        s.runs
                        for s in service.statuses()
                        if isinstance(s, ServiceAppStatus) and s.name == name
                    )

                await until("both first runs", lambda: _true(runs("reporter") >= 1), 30)
                order = [(e["event"], e.get("app")) for e in logs]
                assert order.index(("sync finished", "healer")) < order.index(
                    ("run started", "reporter")
                )

                async def tamper(name: str) -> None:
                    await client.patch(
                        "v1", "configmaps", name, {"data": {"value": "tampered"}}, "default"
                    )

                await tamper("healed")
                await tamper("reported")
                await service.trigger("healer", "test")
                await service.trigger("reporter", "test")
                await until("the heal", lambda: _is(value_of(client, "healed"), "desired"), 10)
                await until(
                    "the heal's follow-up check",
                    lambda: _true(bool(events(logs, "self-heal check scheduled", "healer"))),
                    10,
                )
                await until("the report", lambda: _true(runs("reporter") >= 2), 10)
                assert await value_of(client, "reported") == "tampered"
                (reported,) = events(logs, "drift detected", "reporter")
                assert reported["objects"] == ["ConfigMap/default/reported"]
                assert reported["healed"] is False
                status = {s.name: s for s in service.statuses()}
                assert status["reporter"].sync_status == "OutOfSync"
                assert status["reporter"].drift == 1

                # The drift comes back before the follow-up check: it heals again, and
                # the wait before the next check doubles.
                await tamper("healed")
                await until(
                    "the second heal",
                    lambda: _true(len(events(logs, "self-heal check scheduled", "healer")) >= 2),
                    10,
                )
                assert await value_of(client, "healed") == "desired"
                waits = [e["seconds"] for e in events(logs, "self-heal check scheduled", "healer")]
                assert waits == [1.0, 2.0]
                healed = events(logs, "drift detected", "healer")
                assert [e["healed"] for e in healed] == [True, True]

                # A healing run is recorded OutOfSync (gitops.status.sync_status); the
                # follow-up check then finds nothing and the Application is Synced again.
                def synced() -> bool:
                    return {s.name: s for s in service.statuses()}["healer"].sync_status == "Synced"

                await until("the clean follow-up check", lambda: _true(synced()), 10)
                assert len(events(logs, "self-heal check scheduled", "healer")) == 2
        finally:
            await service.stop()

    with capture_logs() as logs:
        asyncio.run(body(logs))


def test_a_run_that_crashes_while_applying_keeps_the_last_good_state_and_the_service_ready(
    cluster: ClusterProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops import sync as syncing

    repo = make_repo(tmp_path / "repo")
    commit(
        repo,
        {
            "deploy/app/cm.yaml": configmap("demo", "one"),
            "deploy/app/extra.yaml": configmap("extra", "kept"),
        },
        "first",
    )
    (repo / "deploy/app/extra.yaml").unlink()
    options = ServiceOptions(
        state_dir=tmp_path / "state",
        listen="127.0.0.1:0",
        builtin_kubeconfig=cluster.kubeconfig,
    )
    real_apply = syncing.applying.apply

    async def broken_apply(*_: object, **__: object) -> object:
        raise RuntimeError("a bug while applying")

    async def body() -> None:
        service = Service(config_for(repo), options)
        await service.start()
        try:
            async with (
                Client(load_kubeconfig(cluster.kubeconfig)) as client,
                aiohttp.ClientSession() as http,
            ):
                await until("the first run recorded", lambda: _true(demo(service).runs >= 1), 30)
                good = demo(service)
                assert (good.sync_status, good.revision_message) == ("Synced", "first")

                monkeypatch.setattr(syncing.applying, "apply", broken_apply)
                commit(repo, {"deploy/app/cm.yaml": configmap("demo", "two")}, "second")
                await until("the crashed run", lambda: _true(demo(service).runs >= 2), 30)
                crashed = demo(service)
                assert crashed.sync_status == "Failed"
                assert crashed.last_error == (
                    "internal error in apply: RuntimeError: a bug while applying"
                )
                assert crashed.history[0].result == "failed"
                # Nothing of the second commit applied, nothing pruned.
                assert await value_of(client, "demo") == "one"
                assert await value_of(client, "extra") == "kept"
                async with http.get(f"{service.url}/readyz") as r:
                    assert r.status == 200, await r.text()

                # Once the bug is gone, the next run syncs the second commit from the
                # last good one: it applies and prunes.
                monkeypatch.setattr(syncing.applying, "apply", real_apply)
                await service.trigger("demo", "test")
                await until("the recovery", lambda: _is(value_of(client, "demo"), "two"), 30)
                await until("the prune", lambda: _is_none(value_of(client, "extra")), 30)
                await until(
                    "Synced again", lambda: _true(demo(service).sync_status == "Synced"), 30
                )
                assert demo(service).last_error == ""
        finally:
            await service.stop()

    asyncio.run(body())


async def _is_none(value: Any) -> bool:
    return await value is None
