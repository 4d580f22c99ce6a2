"""The service's connections to destination clusters, one per cluster, shared by the
Applications that deploy there (opened on first use, closed by :meth:`Destinations.close`).

A connection is opened per cluster (``builtin``, a name of the config's ``clusters``, or
a kubeconfig and context of the config's own Applications) and per impersonated
ServiceAccount (an Application's or its project's ``serviceAccountName``: every request
carries Kubernetes impersonation headers, so the cluster's RBAC bounds what it may do).
``builtin`` is the built-in cluster, reached through the kubeconfig the CLI passes in
(:attr:`gitops.service.ServiceOptions.builtin_kubeconfig`); without it, runs of
Applications deploying there fail with a clear, non-retryable error. Used by
:mod:`gitops.service.core`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from gitops.cluster import Destination
from gitops.config import Application, Config
from gitops.errors import ClusterError, ConfigError
from gitops.projects import BUILTIN_CLUSTER


def destination_key(app: Application, config: Config) -> tuple[str, str, str]:
    """(kubeconfig or ``builtin``, context, impersonated user): one connection each."""
    user = service_account_user(app, config) or ""
    access = config.cluster_access(app.destination.cluster)
    if access is None:
        return (BUILTIN_CLUSTER, "", user)
    return (str(Path(access.kubeconfig).expanduser()), access.context or "", user)


def service_account_user(app: Application, config: Config) -> str | None:
    """The user an Application's requests impersonate:
    ``system:serviceaccount:<destination namespace>:<name>`` of its own
    ``serviceAccountName`` or its project's; None to apply as the reconciler itself."""
    name = app.service_account_name or config.project_of(app).service_account_name
    if name is None:
        return None
    return f"system:serviceaccount:{app.destination.namespace}:{name}"


class Destinations:
    def __init__(self, builtin_kubeconfig: Path | None, config: Config | None = None) -> None:
        self.builtin_kubeconfig = builtin_kubeconfig
        self.config = config if config is not None else Config()
        self._open: dict[tuple[str, str, str], Destination] = {}
        self._lock = asyncio.Lock()

    async def get(self, app: Application) -> Destination:
        """The open connection to ``app``'s cluster; :class:`ClusterError` if there is none."""
        async with self._lock:
            return await self._get(app)

    async def _get(self, app: Application) -> Destination:
        try:
            key = destination_key(app, self.config)
        except ConfigError as exc:
            raise ClusterError(f"destination: {exc}", retryable=False) from None
        dest = self._open.get(key)
        if dest is not None:
            return dest
        if key[0] == BUILTIN_CLUSTER:
            path = self.builtin_kubeconfig
            if path is None:
                raise ClusterError(
                    "destination builtin: the built-in cluster is not running here (no "
                    "kubeconfig for it was given: run `gitops up`, or set "
                    "destination.cluster.kubeconfig)",
                    retryable=False,
                )
            dest = Destination.from_kubeconfig(path)
            dest.name = BUILTIN_CLUSTER
        else:
            dest = Destination.from_kubeconfig(Path(key[0]), key[1] or None)
        dest.impersonate = key[2] or None
        try:
            await dest.__aenter__()
        except (OSError, ValueError) as exc:
            raise ClusterError(f"destination {dest.name}: {exc}", retryable=True) from None
        self._open[key] = dest
        return dest

    async def close(self) -> None:
        for dest in self._open.values():
            with contextlib.suppress(Exception):
                await dest.__aexit__(None, None, None)
        self._open.clear()
