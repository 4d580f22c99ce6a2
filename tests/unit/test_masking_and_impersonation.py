"""Secret stand-ins that cannot be tested offline (gitops.changeset.masked: a keyed
HMAC, the key in the state directory) and the impersonation headers every request of an
Application with a ServiceAccount carries (kubeclient: kubeconfig ``as``/``as-groups``,
gitops.cluster.Destination.impersonate), checked on a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path

import yaml
from aiohttp import web

from gitops import changeset
from gitops.changeset import SECRET_MASK, masked, use_mask_key
from gitops.cluster import Destination
from gitops.config import Config
from gitops.service.destinations import service_account_user
from kubeclient.rest import Client, ClusterConfig, load_kubeconfig


def test_a_stand_in_cannot_be_recomputed_from_a_guess_without_the_key(tmp_path: Path) -> None:
    use_mask_key(tmp_path / "a")
    stand_in = masked("hunter2")
    assert stand_in.startswith(SECRET_MASK)
    assert masked("hunter2") == stand_in  # equal values, equal stand-ins: changes still show
    assert masked("hunter3") != stand_in
    # The old, unsalted form a report reader could test guesses against:
    assert hashlib.sha256(repr("hunter2").encode()).hexdigest()[:8] not in stand_in
    use_mask_key(tmp_path / "b")
    assert masked("hunter2") != stand_in  # another key, another stand-in


def test_the_mask_key_is_kept_0600_in_the_state_dir_and_reused(tmp_path: Path) -> None:
    use_mask_key(tmp_path)
    key_file = tmp_path / changeset.MASK_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = masked({"a": "b"})
    use_mask_key(tmp_path)
    assert masked({"a": "b"}) == first


def test_a_service_account_of_the_application_or_its_project_is_impersonated() -> None:
    config = Config.model_validate(
        {
            "applications": [
                {
                    "name": "own",
                    "project": "team",
                    "source": {"repoURL": "https://example.com/x.git"},
                    "destination": {"namespace": "team-a"},
                    "serviceAccountName": "deployer",
                },
                {
                    "name": "inherited",
                    "project": "team",
                    "source": {"repoURL": "https://example.com/x.git"},
                    "destination": {"namespace": "team-a"},
                },
                {"name": "plain", "source": {"repoURL": "https://example.com/x.git"}},
            ],
            "projects": [
                {
                    "name": "team",
                    "sourceRepos": ["https://example.com/*"],
                    "destinations": [{"namespace": "team-*"}],
                    "serviceAccountName": "gitops",
                }
            ],
        }
    )
    users = {a.name: service_account_user(a, config) for a in config.applications}
    assert users == {
        "own": "system:serviceaccount:team-a:deployer",
        "inherited": "system:serviceaccount:team-a:gitops",
        "plain": None,
    }


def _record_headers() -> tuple[web.Application, list[list[tuple[str, str]]]]:
    seen: list[list[tuple[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append([(k, v) for k, v in request.headers.items() if k.startswith("Impersonate")])
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app, seen


def test_every_request_of_an_impersonating_destination_carries_the_headers(
    tmp_path: Path,
) -> None:
    async def go() -> list[list[tuple[str, str]]]:
        app, seen = _record_headers()
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            dest = Destination(ClusterConfig(server=f"http://127.0.0.1:{port}"))
            dest.impersonate = "system:serviceaccount:team-a:deployer"
            async with dest:
                await dest.client.request("GET", "/api")
                await dest.client.request("GET", "/apis")
            config = ClusterConfig(
                server=f"http://127.0.0.1:{port}",
                impersonate="jane",
                impersonate_groups=("dev", "ops"),
            )
            async with Client(config) as client:
                await client.request("GET", "/api")
        finally:
            await runner.cleanup()
        return seen

    seen = asyncio.run(go())
    assert seen[:2] == [[("Impersonate-User", "system:serviceaccount:team-a:deployer")]] * 2
    assert seen[2] == [
        ("Impersonate-User", "jane"),
        ("Impersonate-Group", "dev"),
        ("Impersonate-Group", "ops"),
    ]


def test_kubeconfig_as_and_as_groups_become_impersonation(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t", "as": "bob", "as-groups": ["g1"]}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = load_kubeconfig(path)
    assert (config.impersonate, config.impersonate_groups) == ("bob", ("g1",))
