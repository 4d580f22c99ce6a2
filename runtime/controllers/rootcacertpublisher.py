"""The root CA certificate publisher: the ConfigMap ``kube-root-ca.crt`` in every active
namespace, holding the cluster CA (``ca.crt``) pods use to verify the API server —
kube-controller-manager's ``pkg/controller/certificates/rootcacertpublisher``.

Who runs it: the controller manager (``--controllers root-ca-cert-publisher``, on by
default); the CA comes from ``ControllerContext.ca_pem`` (the API server's CA
certificate, set by :mod:`runtime.cluster`). Pods read the ConfigMap through the
projected ``kube-api-access-*`` volume the ServiceAccount admission plugin adds.

Kubernetes semantics followed: namespaces are synced when added and when updated while
``Active``, and when their ``kube-root-ca.crt`` is updated or deleted; a missing
ConfigMap is created with ``data: {ca.crt: <PEM>}`` and the ``kubernetes.io/description``
annotation; one whose ``data`` differs or lacks the annotation is put back (other
annotations and labels are kept); a create refused because the namespace is gone or
terminating is not retried.
"""

from __future__ import annotations

import copy
from typing import Any

import structlog

from kubeclient.informer import Informer
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

CONFIG_MAP_NAME = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class RootCACertPublisher:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.ca = ctx.ca_pem.decode() if isinstance(ctx.ca_pem, bytes) else str(ctx.ca_pem)
        self.queue = WorkQueue()
        self.namespaces: Informer = ctx.informers.informer("v1", "namespaces")
        self.config_maps: Informer = ctx.informers.informer("v1", "configmaps")
        self.namespaces.on(add=self._on_namespace, update=self._on_namespace_update)
        self.config_maps.on(
            update=lambda _old, new: self._on_config_map(new), delete=self._on_config_map
        )

    def _on_namespace(self, ns: Obj) -> None:
        self.queue.add(str((ns.get("metadata") or {}).get("name")))

    def _on_namespace_update(self, _old: Obj, ns: Obj) -> None:
        if (ns.get("status") or {}).get("phase", "Active") == "Active":
            self._on_namespace(ns)

    def _on_config_map(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == CONFIG_MAP_NAME and meta.get("namespace"):
            self.queue.add(str(meta["namespace"]))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        if not self.ca:
            log.warning("rootcacertpublisher.no_ca", hint="the controller context has no CA")
            return
        await run_workers(self.queue, self.sync, workers=2, name="root-ca-cert-publisher")

    def desired_data(self) -> dict[str, str]:
        return {"ca.crt": self.ca}

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        if (ns.get("status") or {}).get("phase", "Active") != "Active":
            return
        data = self.desired_data()
        current = self.config_maps.get(f"{namespace}/{CONFIG_MAP_NAME}")
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": CONFIG_MAP_NAME,
                    "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
                },
                "data": data,
            }
            try:
                await self.client.create("v1", "configmaps", body, namespace)
                log.info("rootcacertpublisher.created", namespace=namespace)
            except KubeError as exc:
                # Exists already (the cache lags: its event will bring us back), or the
                # namespace is gone or terminating: nothing to retry.
                if exc.already_exists or exc.status in (403, 404):
                    return
                raise
            return
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        fixed = copy.deepcopy(current)
        fixed["data"] = data
        meta = fixed.setdefault("metadata", {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            DESCRIPTION_ANNOTATION: DESCRIPTION,
        }
        try:
            await self.client.replace("v1", "configmaps", CONFIG_MAP_NAME, fixed, namespace)
            log.info("rootcacertpublisher.updated", namespace=namespace)
        except KubeError as exc:
            if exc.not_found:  # deleted meanwhile: its delete event brings us back
                return
            raise
