"""The ClusterRole aggregation controller: fills in the rules of every ClusterRole that
has an ``aggregationRule`` — kube-controller-manager's ``pkg/controller/
clusterroleaggregation`` ClusterRoleAggregationController.

Who runs it: the controller manager (``--controllers clusterrole-aggregation``).

Kubernetes semantics followed: any ClusterRole added, changed or deleted queues every
ClusterRole with an aggregationRule; syncing one sets its rules to the rules of the
ClusterRoles matching any of its ``clusterRoleSelectors`` (selector by selector, the
matches of each in name order, itself skipped, each rule kept once in the order first
seen) and writes only when that differs from its current rules (an empty list and no
rules are the same). kube writes with server-side apply (field manager
``clusterrole-aggregation-controller``), falling back to an update; this controller
updates with the resourceVersion it read and retries on a conflict. Its writes are
allowed by the ``escalate`` verb of ``system:controller:clusterrole-aggregation-
controller`` (see :mod:`runtime.auth.bootstrap`).
"""

from __future__ import annotations

import copy
from typing import Any

import structlog

from kubeclient.informer import Informer
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import labels_of, selector_matches
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

API_VERSION = "rbac.authorization.k8s.io/v1"


def selectors_of(role: Obj) -> list[Any] | None:
    """The clusterRoleSelectors of an aggregated ClusterRole; None when not aggregated."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    selectors = rule.get("clusterRoleSelectors")
    return list(selectors) if isinstance(selectors, list) else []


def aggregated_rules(role: Obj, roles: list[Obj]) -> list[Any]:
    """The union of the rules of the ClusterRoles ``role``'s selectors pick, in kube's
    order (selector by selector, roles by name, duplicates dropped)."""
    name = (role.get("metadata") or {}).get("name")
    by_name = sorted(roles, key=lambda r: str((r.get("metadata") or {}).get("name") or ""))
    out: list[Any] = []
    for selector in selectors_of(role) or []:
        if not isinstance(selector, dict):
            continue
        for other in by_name:
            if (other.get("metadata") or {}).get("name") == name:
                continue
            if not selector_matches(selector, labels_of(other)):
                continue
            for rule in other.get("rules") or []:
                if rule not in out:
                    out.append(copy.deepcopy(rule))
    return out


class ClusterRoleAggregationController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.roles: Informer = ctx.informers.informer(API_VERSION, "clusterroles")
        self.roles.on(
            add=lambda _obj: self._enqueue_aggregated(),
            update=lambda _old, _new: self._enqueue_aggregated(),
            delete=lambda _obj: self._enqueue_aggregated(),
        )

    def _enqueue_aggregated(self) -> None:
        """Any ClusterRole change may change any aggregation: queue every aggregated one."""
        for role in self.roles.items():
            if selectors_of(role) is not None:
                self.queue.add(str((role.get("metadata") or {}).get("name")))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=1, name="clusterrole-aggregation")

    async def sync(self, name: str) -> None:
        role = self.roles.get(name)
        if role is None or selectors_of(role) is None:
            return
        rules = aggregated_rules(role, self.roles.items())
        if rules == (role.get("rules") or []):
            return
        body = copy.deepcopy(role)
        body["rules"] = rules
        try:
            await self.client.replace(API_VERSION, "clusterroles", name, body)
        except KubeError as exc:
            if exc.status == 404:
                return
            raise
        log.info("clusterrole.aggregated", name=name, rules=len(rules))
