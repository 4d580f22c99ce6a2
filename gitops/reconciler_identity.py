"""The reconciler's own identity on the built-in cluster: least privilege from the
project (``gitops up``).

Who calls it: :mod:`gitops.up` once the built-in cluster runs. The reconciler does not
use the admin kubeconfig: it gets a client certificate of its own (user
``gitops:reconciler``, group ``gitops:reconcilers``) and a ClusterRole derived from the
root project, bound to that user — so what a commit can make the reconciler do is what
the project allows, enforced by the cluster's RBAC as well as by the reconciler's own
project check:

* every kind the project permits (its cluster-scoped whitelist, its namespaced kinds
  less the blacklist) gets all verbs on the resource (not its subresources: the
  reconciler applies objects, it does not exec, scale or write status);
* kinds the project does not permit get nothing — not even reads (a denied ``/Secret``
  means the reconciler cannot read Secrets);
* ``impersonate`` on ServiceAccounts, for Applications with a ``serviceAccountName``;
* ``bind`` and ``escalate`` on roles only when the project permits ClusterRoleBindings:
  then a commit can grant itself anything anyway, and refusing them would only break
  honest syncs; otherwise RBAC's escalation check stops a RoleBinding from Git granting
  more than the reconciler holds.

The ClusterRole enumerates the served resources; custom resources appear with their
CRDs, so :meth:`ReconcilerIdentity.run` watches CRDs and rewrites the role when they
change (a sync that applies a CRD and its objects in one go may see one 403 on the
objects, retried by the next attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import structlog

from gitops.cluster import Destination, ResourceType
from gitops.projects import Project
from kubeclient.rest import APPLY_PATCH, Client, KubeError

log = structlog.get_logger(__name__)

USER = "gitops:reconciler"
GROUP = "gitops:reconcilers"
ROLE = "gitops:reconciler"
RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC}/v1"
MANAGER = "gitops-up"


def reconciler_rules(project: Project, types: list[ResourceType]) -> list[dict[str, Any]]:
    """The ClusterRole rules of the project's reconciler over the served ``types``."""
    by_group: dict[str, set[str]] = {}
    for rt in types:
        if project.permits_kind(rt.group, rt.kind, namespaced=rt.namespaced):
            by_group.setdefault(rt.group, set()).add(rt.plural)
    rules: list[dict[str, Any]] = [
        {"apiGroups": [group], "resources": sorted(plurals), "verbs": ["*"]}
        for group, plurals in sorted(by_group.items())
    ]
    # Applications that name a serviceAccountName apply as that ServiceAccount of their
    # destination namespace (gitops.service.destinations): the reconciler impersonates it.
    rules.append({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]})
    if project.permits_kind(RBAC, "ClusterRoleBinding", namespaced=False):
        rules.append(
            {
                "apiGroups": [RBAC],
                "resources": ["clusterroles", "roles"],
                "verbs": ["bind", "escalate"],
            }
        )
    return rules


class ReconcilerIdentity:
    """Grants the reconciler its role (:meth:`grant`) and keeps it in step with the
    served kinds (:meth:`run`), through the operator's admin client."""

    def __init__(self, admin_kubeconfig: Path, project: Project) -> None:
        self.destination = Destination.from_kubeconfig(admin_kubeconfig)
        self.project = project

    @property
    def client(self) -> Client:
        return self.destination.client

    async def open(self) -> None:
        await self.destination.__aenter__()

    async def close(self) -> None:
        await self.destination.__aexit__(None, None, None)

    async def grant(self) -> None:
        discovery = await self.destination.discovery(refresh=True)
        role = {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRole",
            "metadata": {"name": ROLE, "labels": {"app.kubernetes.io/managed-by": MANAGER}},
            "rules": reconciler_rules(self.project, discovery.types),
        }
        binding = {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE, "labels": {"app.kubernetes.io/managed-by": MANAGER}},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ROLE},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": USER}],
        }
        for plural, body in (("clusterroles", role), ("clusterrolebindings", binding)):
            await self.client.patch(
                RBAC_V1,
                plural,
                ROLE,
                body,
                content_type=APPLY_PATCH,
                fieldManager=MANAGER,
                force="true",
            )

    async def run(self) -> None:
        """Rewrite the role whenever CRDs change, until cancelled."""
        while True:
            try:
                async for event in self.client.watch(
                    "apiextensions.k8s.io/v1", "customresourcedefinitions"
                ):
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        await self.grant()
            except (KubeError, OSError) as exc:
                log.warning("reconciler_identity.watch_failed", error=str(exc))
            await asyncio.sleep(1.0)


async def start(
    admin_kubeconfig: Path, project: Project
) -> tuple[ReconcilerIdentity, asyncio.Task[None]]:
    """Grant the role and start keeping it in step; cancel the task and close the
    identity to stop."""
    identity = ReconcilerIdentity(admin_kubeconfig, project)
    await identity.open()
    try:
        await identity.grant()
    except BaseException:
        await identity.close()
        raise
    return identity, asyncio.create_task(identity.run())


async def stop(identity: ReconcilerIdentity, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await identity.close()
