"""The service's connections to destination clusters, one per cluster, shared by the
Applications that deploy there (opened on first use, closed by :meth:`Destinations.close`).

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
from gitops.config import Application
from gitops.errors import ClusterError


def destination_key(app: Application) -> tuple[str, str]:
    cluster = app.destination.cluster
    if cluster.builtin:
        return ("builtin", "")
    return (str(Path(cluster.kubeconfig or "").expanduser()), cluster.context or "")


class Destinations:
    def __init__(self, builtin_kubeconfig: Path | None) -> None:
        self.builtin_kubeconfig = builtin_kubeconfig
        self._open: dict[tuple[str, str], Destination] = {}
        self._lock = asyncio.Lock()

    async def get(self, app: Application) -> Destination:
        """The open connection to ``app``'s cluster; :class:`ClusterError` if there is none."""
        async with self._lock:
            return await self._get(app)

    async def _get(self, app: Application) -> Destination:
        key = destination_key(app)
        dest = self._open.get(key)
        if dest is not None:
            return dest
        if key[0] == "builtin":
            path = self.builtin_kubeconfig
            if path is None:
                raise ClusterError(
                    "destination builtin: the built-in cluster is not running here (no "
                    "kubeconfig for it was given: run `gitops up`, or set "
                    "destination.cluster.kubeconfig)",
                    retryable=False,
                )
            dest = Destination.from_kubeconfig(path)
            dest.name = "builtin"
        else:
            dest = Destination.from_kubeconfig(Path(key[0]), key[1] or None)
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
