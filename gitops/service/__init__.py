"""The reconciler's long-running service (``gitops serve``, ``gitops up``).

:class:`Service` keeps Applications synced (scheduling, watchers, webhooks, retries,
app-of-apps; :mod:`gitops.service.core`), serves ``/healthz``, ``/readyz``,
``/metrics``, ``/status`` and ``/webhook`` (:mod:`gitops.service.http`), renders
Prometheus metrics (:mod:`gitops.service.metrics`) and decides with the pure functions
of :mod:`gitops.service.policy`. The CLI calls :func:`configure_logging` first.
"""

from gitops.service.core import Service, ServiceAppStatus, ServiceOptions
from gitops.service.logs import configure_logging

__all__ = ["Service", "ServiceAppStatus", "ServiceOptions", "configure_logging"]
