"""The node lifecycle controller: notices nodes whose kubelet stopped renewing its
Lease, marks them (Ready=Unknown, ``node.kubernetes.io/unreachable`` taints, pods not
ready), and evicts their pods when the NoExecute taint outlives each pod's toleration
— so controllers recreate them elsewhere, as Kubernetes does.

Who runs it: the built-in cluster (``gitops cluster up``), against the API over HTTPS.
Level-triggered: every ``monitor_period`` it recomputes from the informers' caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog

from kubeclient.informer import Informer, running, wait_synced
from kubeclient.rest import Client, KubeError

log = structlog.get_logger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class NodeLifecycleOptions:
    # A node whose lease is older than this is unreachable (kube-controller-manager's
    # --node-monitor-grace-period, 40 s).
    grace_period: float = 40.0
    monitor_period: float = 5.0


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> dict[str, Any] | None:
    """The first toleration of ``taint`` (Kubernetes' ToleratesTaint), or None."""
    for t in tolerations:
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key")
        op = t.get("operator") or "Equal"
        if not key and op == "Exists":
            return t
        if key != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return t
    return None


def eviction_time(pod: dict[str, Any], taints: list[dict[str, Any]], now: float) -> float | None:
    """When a pod must leave a node with these NoExecute taints (None: never)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    deadline: float | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        match = tolerates(tolerations, taint)
        added = _parse(taint.get("timeAdded")) or now
        if match is None:
            return added
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue
        when = added + max(int(seconds), 0)
        deadline = when if deadline is None else min(deadline, when)
    return deadline


class NodeLifecycleController:
    def __init__(
        self, client: Client, options: NodeLifecycleOptions | None = None, clock: Any = None
    ) -> None:
        import time

        self.client = client
        self.options = options or NodeLifecycleOptions()
        self.clock = clock or time.time
        self.nodes = Informer(client, "v1", "nodes")
        self.leases = Informer(
            client, "coordination.k8s.io/v1", "leases", namespace="kube-node-lease"
        )
        self.pods = Informer(client, "v1", "pods")
        self.pods.add_index("node", lambda p: [str((p.get("spec") or {}).get("nodeName") or "")])
        self._first_seen: dict[str, float] = {}

    async def run(self) -> None:
        async with running(self.nodes, self.leases, self.pods):
            await wait_synced(self.nodes, self.leases, self.pods)
            while True:
                try:
                    await self.monitor()
                except KubeError as exc:
                    log.debug("nodelifecycle.retry", error=str(exc))
                await asyncio.sleep(self.options.monitor_period)

    def _last_heartbeat(self, node: dict[str, Any]) -> float | None:
        name = str((node.get("metadata") or {}).get("name"))
        lease = self.leases.get(f"kube-node-lease/{name}")
        renew = _parse(((lease or {}).get("spec") or {}).get("renewTime"))
        ready: dict[str, Any] = next(
            (
                c
                for c in (node.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            {},
        )
        beat = _parse(ready.get("lastHeartbeatTime"))
        stamps = [t for t in (renew, beat) if t is not None]
        return max(stamps) if stamps else None

    async def monitor(self) -> None:
        now = self.clock()
        for node in self.nodes.items():
            name = str((node.get("metadata") or {}).get("name"))
            beat = self._last_heartbeat(node)
            if beat is None:
                beat = self._first_seen.setdefault(name, now)
            stale = now - beat > self.options.grace_period
            if stale:
                await self._mark_unreachable(node, now)
            else:
                await self._clear_unreachable(node)
            await self._evict(node, now)

    async def _mark_unreachable(self, node: dict[str, Any], now: float) -> None:
        name = str((node.get("metadata") or {}).get("name"))
        status = node.get("status") or {}
        conditions = status.get("conditions") or []
        changed = False
        new_conditions = []
        for c in conditions:
            c = dict(c)
            if c.get("status") != "Unknown":
                c.update(
                    {
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                        "lastTransitionTime": _stamp(now),
                    }
                )
                changed = True
            new_conditions.append(c)
        if changed:
            log.info("nodelifecycle.unreachable", node=name)
            await self.client.patch(
                "v1",
                "nodes",
                name,
                {"status": {"conditions": new_conditions}},
                subresource="status",
            )
            for pod in self.pods.by_index("node", name):
                await self._pod_not_ready(pod, now)
        taints = list((node.get("spec") or {}).get("taints") or [])
        wanted = [
            {"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": _stamp(now)},
        ]
        missing = [
            t
            for t in wanted
            if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in taints)
        ]
        if missing:
            await self.client.patch("v1", "nodes", name, {"spec": {"taints": taints + missing}})

    async def _clear_unreachable(self, node: dict[str, Any]) -> None:
        taints = list((node.get("spec") or {}).get("taints") or [])
        kept = [t for t in taints if t.get("key") != UNREACHABLE]
        if len(kept) != len(taints):
            name = str((node.get("metadata") or {}).get("name"))
            log.info("nodelifecycle.reachable", node=name)
            await self.client.patch("v1", "nodes", name, {"spec": {"taints": kept}})

    async def _pod_not_ready(self, pod: dict[str, Any], now: float) -> None:
        meta = pod.get("metadata") or {}
        conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
        changed = False
        for c in conditions:
            if c.get("type") == "Ready" and c.get("status") != "False":
                c.update({"status": "False", "lastTransitionTime": _stamp(now)})
                changed = True
        if changed:
            with contextlib.suppress(KubeError):
                await self.client.patch(
                    "v1",
                    "pods",
                    str(meta.get("name")),
                    {"status": {"conditions": conditions}},
                    str(meta.get("namespace")),
                    subresource="status",
                )

    async def _evict(self, node: dict[str, Any], now: float) -> None:
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"
        ]
        if not taints:
            return
        name = str((node.get("metadata") or {}).get("name"))
        for pod in self.pods.by_index("node", name):
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            when = eviction_time(pod, taints, now)
            if when is None or when > now:
                continue
            log.info(
                "nodelifecycle.evict", node=name, pod=f"{meta.get('namespace')}/{meta.get('name')}"
            )
            try:
                await self.client.delete(
                    "v1", "pods", str(meta.get("name")), str(meta.get("namespace"))
                )
            except KubeError as exc:
                if not exc.not_found:
                    raise
