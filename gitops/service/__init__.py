"""The reconciler's long-running service (``gitops serve``, ``gitops up``).

:class:`Service` keeps Applications synced (scheduling, watchers, webhooks, retries,
app-of-apps; :mod:`gitops.service.core`), serves ``/healthz``, ``/readyz``,
``/metrics``, ``/status`` and ``/webhook`` (:mod:`gitops.service.http`) to the callers
:mod:`gitops.service.auth` lets in (API token, webhook signatures; replays ignored by
:mod:`gitops.service.replay`), renders Prometheus metrics
(:mod:`gitops.service.metrics`) and decides with the pure functions of
:mod:`gitops.service.policy`. The CLI calls :func:`configure_logging` first.
"""

from gitops.service.auth import (
    TOKEN_FILE,
    ReadAccess,
    WebhookPolicy,
    load_or_create_token,
    token_path,
)
from gitops.service.core import Service, ServiceAppStatus, ServiceOptions
from gitops.service.logs import configure_logging

__all__ = [
    "TOKEN_FILE",
    "ReadAccess",
    "Service",
    "ServiceAppStatus",
    "ServiceOptions",
    "WebhookPolicy",
    "configure_logging",
    "load_or_create_token",
    "token_path",
]
