"""The service's HTTP endpoints (aiohttp.web), served by :class:`gitops.service.Service`.

* ``GET /healthz``: 200 while the process is alive;
* ``GET /readyz``: 200 once every non-suspended Application has completed one run,
  else 503 with the names still waiting;
* ``GET /metrics``: Prometheus text exposition (:mod:`gitops.service.metrics`);
* ``GET /status``: JSON, every Application's status with its history;
* ``POST /webhook``: a push webhook (GitHub, GitLab, Gitea), verified with the shared
  secret (:func:`gitops.source.parse_webhook`): 400/401/403 when refused, 202 when
  ignored (pings, other events), 200 with the Applications it triggered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web

from gitops.service.metrics import CONTENT_TYPE
from gitops.source import WebhookIgnored, WebhookPush, WebhookRejected, parse_webhook
from gitops.status import AppStatus

log = structlog.get_logger(__name__)

MAX_WEBHOOK_BYTES = 5 * 1024 * 1024
"""GitHub caps payloads at 25 MB but pushes are far smaller; bigger bodies get 413."""


class Endpoints(Protocol):
    """What the HTTP server asks of the service."""

    def not_ready(self) -> list[str]: ...

    def metrics_text(self) -> str: ...

    def status_report(self) -> list[AppStatus]: ...

    async def on_push(self, push: WebhookPush) -> list[str]: ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
    )


def build_app(service: Endpoints, webhook_secret: str | None) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        waiting = service.not_ready()
        if waiting:
            return _json({"ready": False, "waiting": waiting}, status=503)
        return _json({"ready": True})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=service.metrics_text().encode(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def status(_: web.Request) -> web.Response:
        return _json({"applications": [s.to_json() for s in service.status_report()]})

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            push = parse_webhook(dict(request.headers), body, webhook_secret)
        except WebhookIgnored as exc:
            log.info("webhook ignored", reason=exc.message)
            return _json({"message": exc.message}, status=exc.status_code)
        except WebhookRejected as exc:
            log.warning("webhook refused", status=exc.status_code, reason=exc.message)
            return _json({"message": exc.message}, status=exc.status_code)
        triggered = await service.on_push(push)
        log.info(
            "webhook received",
            provider=push.provider,
            ref=push.ref,
            commit=push.after,
            triggered=triggered,
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


async def serve(service: Endpoints, listen: str, webhook_secret: str | None) -> HttpServer:
    host, port = split_listen(listen)
    runner = web.AppRunner(build_app(service, webhook_secret), access_log=None)
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
