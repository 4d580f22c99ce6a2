"""The service-account controller: makes sure every active namespace has the ServiceAccount
``default`` (recreated when deleted) — kube-controller-manager's
``pkg/controller/serviceaccount`` ServiceAccountsController.

Who runs it: the controller manager (``--controllers serviceaccount``).

Kubernetes semantics followed: namespaces are synced when added or updated and when
their ``default`` ServiceAccount is deleted; namespaces that are not ``Active`` (being
terminated) are skipped; an existing account is never modified.
"""

from __future__ import annotations

from typing import Any

import structlog

from kubeclient.informer import Informer
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]


class ServiceAccountController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.names: list[str] = [
            n.strip()
            for n in ctx.setting("serviceaccount.names", "default").split(",")
            if n.strip()
        ]
        self.queue = WorkQueue()
        self.namespaces: Informer = ctx.informers.informer("v1", "namespaces")
        self.accounts: Informer = ctx.informers.informer("v1", "serviceaccounts")
        self.namespaces.on(
            add=self._enqueue_namespace, update=lambda _old, new: self._enqueue_namespace(new)
        )
        self.accounts.on(delete=self._on_account_deleted)

    def _enqueue_namespace(self, ns: Obj) -> None:
        self.queue.add(str((ns.get("metadata") or {}).get("name")))

    def _on_account_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.names and meta.get("namespace"):
            self.queue.add(str(meta["namespace"]))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=2, name="serviceaccount")

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None:
            return
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        if (ns.get("status") or {}).get("phase", "Active") != "Active":
            return
        for name in self.names:
            if self.accounts.get(f"{namespace}/{name}") is not None:
                continue
            body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            try:
                await self.client.create("v1", "serviceaccounts", body, namespace)
                log.info("serviceaccount.created", namespace=namespace, name=name)
            except KubeError as exc:
                # Exists already (the cache lags), or the namespace is going away.
                if exc.already_exists or exc.status in (403, 404):
                    continue
                raise
