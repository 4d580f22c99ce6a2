"""The service's HTTP endpoints (aiohttp.web), served by :class:`gitops.service.Service`.

* ``GET /healthz``: 200 while the process is alive (never needs a token);
* ``GET /readyz``: 200 once every non-suspended Application has completed one run
  (a run that crashed counts), else 503 with the names still waiting;
* ``GET /metrics``: Prometheus text exposition (:mod:`gitops.service.metrics`);
* ``GET /status``: JSON, every Application's status with its history;
* ``POST /webhook``: a push webhook (GitHub, GitLab, Gitea), verified with the shared
  secret (:func:`gitops.source.parse_webhook`): 400/401/403 when refused, 202 when
  ignored (pings, other events), 200 with the Applications it triggered.

Who may call them (:class:`Access`, :mod:`gitops.service.auth`): ``POST /webhook``
needs a valid provider signature (or GitLab token) when a webhook secret is set, or the
service's API token (``Authorization: Bearer <token>``) in any case; without a secret an
unsigned webhook is refused (401, saying how to configure one) unless the
:class:`~gitops.service.auth.WebhookPolicy` allows it (loopback listeners only). A
wrong bearer token is 403 wherever it is sent. With
:attr:`~gitops.service.auth.ReadAccess.TOKEN` the read endpoints need the token too
(401 without, 403 wrong). A push delivered again within the replay window (same
delivery ID, or the same signed body) is answered 200 ``duplicate delivery ignored``
and triggers nothing (:mod:`gitops.service.replay`); a push without delivery ID and
without a signed body cannot be recognised as a replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web

from gitops.service.auth import Credential, ReadAccess, WebhookPolicy, credential
from gitops.service.metrics import CONTENT_TYPE
from gitops.service.replay import DeliveryLog
from gitops.source import WebhookIgnored, WebhookPush, WebhookRejected, parse_webhook
from gitops.status import AppStatus

log = structlog.get_logger(__name__)

MAX_WEBHOOK_BYTES = 5 * 1024 * 1024
"""GitHub caps payloads at 25 MB but pushes are far smaller; bigger bodies get 413."""

UNSIGNED_REFUSED = (
    "unsigned webhooks are refused: configure a webhook secret (service.webhookSecretEnv"
    " in the config of gitops serve, $GITOPS_WEBHOOK_SECRET for gitops up) and set the"
    " same secret in the Git provider's webhook, or send the service's API token"
    " (Authorization: Bearer <token>, the file service-token in its state directory)"
)
DUPLICATE = "duplicate delivery ignored"


class Endpoints(Protocol):
    """What the HTTP server asks of the service."""

    def not_ready(self) -> list[str]: ...

    def metrics_text(self) -> str: ...

    def status_report(self) -> list[AppStatus]: ...

    async def on_push(self, push: WebhookPush) -> list[str]: ...


@dataclass(frozen=True)
class Access:
    """Who may call which endpoint (see the module docstring)."""

    token: str | None = None
    """The API token; ``None``: no request can authenticate with one (tests only)."""
    webhook_secret: str | None = None
    reads: ReadAccess = ReadAccess.OPEN
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _unauthorized(message: str) -> web.Response:
    return _json({"message": message}, status=401, headers={"WWW-Authenticate": "Bearer"})


def _forbidden() -> web.Response:
    return _json({"message": "the bearer token does not match"}, status=403)


def replay_keys(push: WebhookPush, body: bytes) -> list[str]:
    """What identifies a delivery: its ID, and the digest of a body whose signature
    was verified (the delivery header is not signed: a captured request may come back
    with a new one)."""
    keys = [f"{push.provider}:{push.delivery}"] if push.delivery else []
    if push.signed:
        keys.append("sha256:" + hashlib.sha256(body).hexdigest())
    return keys


def build_app(service: Endpoints, access: Access) -> web.Application:
    deliveries = DeliveryLog(access.webhooks.replay_window, access.webhooks.replay_capacity)

    def caller(request: web.Request) -> Credential:
        if access.token is None:
            return Credential.NONE if "Authorization" not in request.headers else Credential.WRONG
        return credential(request.headers.get("Authorization"), access.token)

    def refuse_read(request: web.Request) -> web.Response | None:
        if access.reads is ReadAccess.OPEN:
            return None
        who = caller(request)
        if who is Credential.VALID:
            return None
        if who is Credential.WRONG:
            return _forbidden()
        return _unauthorized("this endpoint needs the service's API token (Authorization: Bearer)")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if (refused := refuse_read(request)) is not None:
            return refused
        waiting = service.not_ready()
        if waiting:
            return _json({"ready": False, "waiting": waiting}, status=503)
        return _json({"ready": True})

    async def metrics(request: web.Request) -> web.Response:
        if (refused := refuse_read(request)) is not None:
            return refused
        return web.Response(
            body=service.metrics_text().encode(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def status(request: web.Request) -> web.Response:
        if (refused := refuse_read(request)) is not None:
            return refused
        return _json({"applications": [s.to_json() for s in service.status_report()]})

    async def webhook(request: web.Request) -> web.Response:
        who = caller(request)
        if who is Credential.WRONG:
            log.warning("webhook refused", status=403, reason="wrong bearer token")
            return _forbidden()
        if who is Credential.VALID:
            secret = None  # the API token authenticates the request
        elif access.webhook_secret is not None:
            secret = access.webhook_secret
        elif access.webhooks.allow_unsigned:
            secret = None  # explicitly allowed, and the listener is loopback (checked at start)
        else:
            log.warning("webhook refused", status=401, reason="unsigned, no secret configured")
            return _unauthorized(UNSIGNED_REFUSED)
        body = await request.read()
        try:
            push = parse_webhook(dict(request.headers), body, secret)
        except WebhookIgnored as exc:
            log.info("webhook ignored", reason=exc.message)
            return _json({"message": exc.message}, status=exc.status_code)
        except WebhookRejected as exc:
            log.warning("webhook refused", status=exc.status_code, reason=exc.message)
            return _json({"message": exc.message}, status=exc.status_code)
        keys = replay_keys(push, body)
        if not deliveries.claim(keys):
            log.info(
                "webhook ignored",
                reason=DUPLICATE,
                provider=push.provider,
                delivery=push.delivery,
                ref=push.ref,
            )
            return _json({"message": DUPLICATE, "triggered": []})
        try:
            triggered = await service.on_push(push)
        except BaseException:
            deliveries.release(keys)  # not handled: a retry of it must not be ignored
            raise
        log.info(
            "webhook received",
            provider=push.provider,
            delivery=push.delivery,
            ref=push.ref,
            commit=push.after,
            triggered=triggered,
            deduplicated=bool(keys),
        )
        return _json({"triggered": triggered})

    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_post("/webhook", webhook)
    return app


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as (host, port); ValueError if malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen {listen!r} must be HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]"), int(port)


@dataclass
class HttpServer:
    """A running server; :attr:`url` is ``http://host:port`` with the port it got."""

    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(service: Endpoints, listen: str, access: Access) -> HttpServer:
    host, port = split_listen(listen)
    runner = web.AppRunner(build_app(service, access), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    return HttpServer(runner, f"http://{shown}:{bound}")
