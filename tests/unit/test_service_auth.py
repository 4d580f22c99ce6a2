"""Who may call the service: the API token (a 0600 file in the state directory, reused
across restarts), protected reads, unsigned webhooks refused unless allowed on a
loopback listener, and replayed deliveries ignored. A real Service with its HTTP server
on 127.0.0.1, real SQLite status; the Applications' runs fail at their destination."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from gitops.errors import ConfigError
from gitops.service import (
    ReadAccess,
    Service,
    ServiceOptions,
    WebhookPolicy,
    load_or_create_token,
    token_path,
)
from gitops.service.auth import Credential, credential, is_loopback
from gitops.service.replay import DeliveryLog
from tests.unit.test_service import config, eventually, github, remote_app, running, statuses

SECRET = "s3cret"


def push_body(after: str = "a" * 40) -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "after": after,
            "repository": {"clone_url": "https://git.example.com/org/web.git"},
        }
    ).encode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_api_token_is_generated_0600_on_the_first_start_and_reused_after_a_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    seen: list[str] = []

    async def body(service: Service) -> None:
        assert service.token_file == token_path(state) == state / "service-token"
        assert service.api_token is not None and len(service.api_token) >= 32
        assert service.token_file.read_text().strip() == service.api_token
        assert mode(service.token_file) == 0o600
        assert mode(state) == 0o700
        seen.append(service.api_token)

    cfg = config(remote_app("web"))
    with capture_logs() as logs:
        running(cfg, tmp_path, body, listen="127.0.0.1:0")
        running(cfg, tmp_path, body, listen="127.0.0.1:0")
    assert len(seen) == 2 and seen[0] == seen[1]
    assert load_or_create_token(state) == seen[0]
    assert not any(seen[0] in repr(event) for event in logs)  # never logged


def test_a_token_file_others_can_read_is_narrowed_and_a_bad_one_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = token_path(state)
    state.mkdir()
    path.write_text("operator-chosen-token-1234\n")
    path.chmod(0o644)
    assert load_or_create_token(state) == "operator-chosen-token-1234"
    assert mode(path) == 0o600
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16"):
        load_or_create_token(state)


def test_a_token_given_in_the_options_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    async def body(service: Service) -> None:
        assert service.api_token == "given-token-0123456789"
        assert service.token_file is None
        assert not token_path(tmp_path / "state").exists()

    running(
        config(remote_app("web")),
        tmp_path,
        body,
        listen="127.0.0.1:0",
        api_token="given-token-0123456789",
    )


def test_an_unsigned_webhook_is_refused_without_a_secret_unless_it_carries_the_api_token(
    tmp_path: Path,
) -> None:
    push = push_body()

    async def body(service: Service) -> None:
        assert service.url is not None and service.api_token is not None
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        url = f"{service.url}/webhook"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=push, headers=github(push, None)) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"] == "Bearer"
                message = (await r.json())["message"]
                assert "unsigned webhooks are refused" in message
                assert "webhookSecretEnv" in message and "GITOPS_WEBHOOK_SECRET" in message
            for wrong in ("Bearer not-the-token", f"Basic {service.api_token}", "Bearer"):
                headers = {**github(push, None), "Authorization": wrong}
                async with http.post(url, data=push, headers=headers) as r:
                    assert r.status == 403, wrong
            # A webhook signed with some secret is still unsigned for a service without one.
            async with http.post(url, data=push, headers=github(push, "guess")) as r:
                assert r.status == 401
            await asyncio.sleep(0.1)
            assert statuses(service)["web"].runs == 1  # nothing was triggered
            headers = {**github(push, None), **bearer(service.api_token)}
            async with http.post(url, data=push, headers=headers) as r:
                assert r.status == 200
                assert await r.json() == {"triggered": ["web"]}
        await eventually("the triggered run", lambda: statuses(service)["web"].runs == 2)

    running(config(remote_app("web")), tmp_path, body, listen="127.0.0.1:0")


def test_with_a_secret_a_signed_webhook_needs_no_token_and_a_wrong_token_is_refused(
    tmp_path: Path,
) -> None:
    push = push_body()

    async def body(service: Service) -> None:
        assert service.url is not None and service.api_token is not None
        url = f"{service.url}/webhook"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=push, headers=github(push, None)) as r:
                assert r.status == 401
            headers = {**github(push, SECRET), **bearer("wrong-token-0123456789")}
            async with http.post(url, data=push, headers=headers) as r:
                assert r.status == 403
            async with http.post(url, data=push, headers=github(push, SECRET)) as r:
                assert r.status == 200 and (await r.json())["triggered"] == ["web"]

    running(config(remote_app("web")), tmp_path, body, listen="127.0.0.1:0", webhook_secret=SECRET)


def test_read_endpoints_need_the_token_only_when_asked_and_healthz_never(tmp_path: Path) -> None:
    async def protected(service: Service) -> None:
        assert service.url is not None and service.api_token is not None
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.url}/healthz") as r:
                assert r.status == 200
            for path in ("/status", "/metrics", "/readyz"):
                async with http.get(f"{service.url}{path}") as r:
                    assert r.status == 401, path
                    assert "API token" in (await r.json())["message"]
                async with http.get(f"{service.url}{path}", headers=bearer("nope" * 5)) as r:
                    assert r.status == 403, path
                async with http.get(f"{service.url}{path}", headers=bearer(service.api_token)) as r:
                    assert r.status == 200, path

    async def open_reads(service: Service) -> None:
        assert service.url is not None
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/status", "/metrics"):
                async with http.get(f"{service.url}{path}") as r:
                    assert r.status == 200, path

    cfg = config(remote_app("web"))
    running(cfg, tmp_path, protected, listen="127.0.0.1:0", read_access=ReadAccess.TOKEN)
    running(cfg, tmp_path, open_reads, listen="127.0.0.1:0")


def test_unsigned_webhooks_are_accepted_when_allowed_on_a_loopback_listener(
    tmp_path: Path,
) -> None:
    push = push_body()

    async def body(service: Service) -> None:
        assert service.url is not None
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{service.url}/webhook", data=push, headers=github(push, None)) as r,
        ):
            assert r.status == 200 and (await r.json())["triggered"] == ["web"]

    running(
        config(remote_app("web")),
        tmp_path,
        body,
        listen="127.0.0.1:0",
        webhooks=WebhookPolicy(allow_unsigned=True),
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0"])
def test_allowing_unsigned_webhooks_on_a_listener_that_is_not_loopback_refuses_to_start(
    tmp_path: Path, listen: str
) -> None:
    async def go() -> None:
        service = Service(
            config(remote_app("web")),
            ServiceOptions(
                state_dir=tmp_path / "state",
                listen=listen,
                webhooks=WebhookPolicy(allow_unsigned=True),
            ),
        )
        with pytest.raises(ConfigError, match="loopback listener") as e:
            await service.start()
        assert "webhook secret" in str(e.value)
        assert service.url is None
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(go())


def test_loopback_listeners_are_told_apart_from_the_others() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", ""):
        assert not is_loopback(host), host


def test_bearer_tokens_are_recognised_exactly() -> None:
    token = "t" * 20
    assert credential(None, token) is Credential.NONE
    assert credential("", token) is Credential.NONE
    assert credential(f"Bearer {token}", token) is Credential.VALID
    assert credential(f"bearer  {token} ", token) is Credential.VALID
    assert credential(f"Bearer {token}x", token) is Credential.WRONG
    assert credential(f"Token {token}", token) is Credential.WRONG
    assert credential("Bearer \udcff", token) is Credential.WRONG  # undecodable bytes


def test_a_replayed_signed_delivery_is_ignored_and_triggers_only_once(tmp_path: Path) -> None:
    first, second = push_body("a" * 40), push_body("b" * 40)

    def delivered(body: bytes, delivery: str | None) -> dict[str, str]:
        headers = github(body, SECRET)
        if delivery is not None:
            headers["X-GitHub-Delivery"] = delivery
        return headers

    async def body(service: Service) -> None:
        assert service.url is not None
        url = f"{service.url}/webhook"
        await eventually("the first run", lambda: statuses(service)["web"].runs == 1)
        async with aiohttp.ClientSession() as http:

            async def post(body: bytes, delivery: str | None) -> tuple[int, object]:
                async with http.post(url, data=body, headers=delivered(body, delivery)) as r:
                    return r.status, await r.json()

            assert await post(first, "d-1") == (200, {"triggered": ["web"]})
            await eventually("the triggered run", lambda: statuses(service)["web"].runs == 2)
            ignored = (200, {"message": "duplicate delivery ignored", "triggered": []})
            assert await post(first, "d-1") == ignored  # the provider's redelivery
            assert await post(first, "d-2") == ignored  # the same signed body, a new ID
            assert await post(first, None) == ignored
            await asyncio.sleep(0.3)
            assert statuses(service)["web"].runs == 2
            assert statuses(service)["web"].state == "idle"
            # Another push (no delivery ID: accepted) triggers again, once.
            assert await post(second, None) == (200, {"triggered": ["web"]})
            await eventually("the second push's run", lambda: statuses(service)["web"].runs == 3)
            assert await post(second, "d-3") == ignored

    running(config(remote_app("web")), tmp_path, body, listen="127.0.0.1:0", webhook_secret=SECRET)


def test_the_delivery_log_forgets_after_its_window_and_beyond_its_capacity() -> None:
    now = [0.0]
    deliveries = DeliveryLog(window=600, capacity=3, clock=lambda: now[0])
    assert deliveries.claim(["a"]) and not deliveries.claim(["a"])
    assert deliveries.claim([]) and deliveries.claim([])  # nothing to recognise it by
    now[0] = 599.0
    assert not deliveries.claim(["a", "new"])  # one key seen is enough; "new" not kept
    assert deliveries.claim(["new"])
    now[0] = 1198.0  # "a" was seen again at 599: still remembered
    assert not deliveries.claim(["a"])
    now[0] = 1800.0
    assert deliveries.claim(["a"]) and len(deliveries) == 1
    assert deliveries.claim(["b"]) and deliveries.claim(["c"]) and deliveries.claim(["d"])
    assert len(deliveries) == 3
    assert deliveries.claim(["a"])  # the oldest went first
    deliveries.release(["a"])
    assert deliveries.claim(["a"])
    with pytest.raises(ValueError):
        DeliveryLog(window=0, capacity=1)
