"""The pod garbage collector: removes pods no kubelet will ever finish — Kubernetes'
``podgc`` controller (pkg/controller/podgc).

Every ``podgc.period`` seconds (default 20, as kube-controller-manager's gc period) it:

* force-deletes (grace period 0) pods bound to a node that no longer exists. A node
  missing from the cache must still be missing ``podgc.quarantine`` seconds later (40)
  and on a live GET before its pods go, so a node that is only being re-registered does
  not lose its pods. Before deleting, the pod gets the ``DisruptionTarget`` condition
  with reason ``DeletionByPodGC``, as Kubernetes sets it;
* force-deletes terminating pods that were never scheduled (nothing would finish them);
* deletes the oldest finished (Succeeded/Failed) pods beyond ``podgc.terminated-threshold``
  (12,500, kube-controller-manager's ``--terminated-pod-gc-threshold``).

Who runs it: the controller manager (:mod:`runtime.controllers.manager`), as ``podgc``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from kubeclient.rest import KubeError
from runtime.controllers.common import (
    is_terminating,
    now_rfc3339,
    parse_time,
    pod_condition,
    pod_phase,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)


class PodGarbageCollector:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.pods = ctx.informers.informer("v1", "pods")
        self.nodes = ctx.informers.informer("v1", "nodes")
        self.period = ctx.setting("podgc.period", 20.0)
        self.quarantine = ctx.setting("podgc.quarantine", 40.0)
        self.threshold = ctx.setting("podgc.terminated-threshold", 12_500)
        # node name -> when its absence was first noticed
        self._missing_since: dict[str, float] = {}

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        while True:
            try:
                await self.collect()
            except KubeError as exc:
                log.warning("podgc.failed", error=str(exc))
            await asyncio.sleep(self.period)

    async def collect(self) -> None:
        """One pass over the cached pods."""
        pods = self.pods.items()
        await self._orphaned(pods)
        for pod in pods:
            spec = pod.get("spec") or {}
            if is_terminating(pod) and not spec.get("nodeName"):
                await self._force_delete(pod, reason="")
        await self._terminated(pods)

    async def _orphaned(self, pods: list[dict[str, Any]]) -> None:
        known = set(self.nodes.keys())
        now = time.monotonic()
        bound = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods} - {""}
        gone: set[str] = set()
        for node in bound - known:
            first = self._missing_since.setdefault(node, now)
            if now - first < self.quarantine:
                continue
            try:
                await self.ctx.client.get("v1", "nodes", node)
                continue  # it exists after all (the cache lags)
            except KubeError as exc:
                if not exc.not_found:
                    raise
            gone.add(node)
        for node in list(self._missing_since):
            if node in known or node not in bound:
                del self._missing_since[node]
        for pod in pods:
            if str((pod.get("spec") or {}).get("nodeName") or "") in gone:
                await self._force_delete(pod, reason="DeletionByPodGC")

    async def _terminated(self, pods: list[dict[str, Any]]) -> None:
        finished = [
            p for p in pods if pod_phase(p) in ("Succeeded", "Failed") and not is_terminating(p)
        ]
        excess = len(finished) - self.threshold
        if excess <= 0:
            return
        finished.sort(
            key=lambda p: parse_time((p.get("metadata") or {}).get("creationTimestamp")) or 0.0
        )
        for pod in finished[:excess]:
            await self._delete(pod, grace=None)

    async def _force_delete(self, pod: dict[str, Any], *, reason: str) -> None:
        meta = pod.get("metadata") or {}
        if reason and pod_condition(pod, "DisruptionTarget") is None:
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": reason,
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": now_rfc3339(),
            }
            conditions = [*((pod.get("status") or {}).get("conditions") or []), condition]
            try:
                await self.ctx.client.patch(
                    "v1",
                    "pods",
                    str(meta.get("name")),
                    {"status": {"conditions": conditions}},
                    str(meta.get("namespace")),
                    subresource="status",
                )
            except KubeError as exc:
                if not exc.not_found:
                    raise
        log.info("podgc.force_delete", pod=f"{meta.get('namespace')}/{meta.get('name')}")
        await self._delete(pod, grace=0)

    async def _delete(self, pod: dict[str, Any], *, grace: int | None) -> None:
        meta = pod.get("metadata") or {}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": meta.get("uid")},
        }
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            await self.ctx.client.delete(
                "v1", "pods", str(meta.get("name")), str(meta.get("namespace")), body=body
            )
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):
                raise
