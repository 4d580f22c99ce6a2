"""Writing Kubernetes' default RBAC policy into the store at every start
(kube-apiserver's ``rbac/bootstrap-roles`` post-start hook).

Who calls it: :class:`runtime.server.serve.ApiServer` after the store opens.
:func:`ensure_bootstrap_policy` creates the roles and bindings of
:mod:`runtime.auth.policy` that are missing and, for those annotated
``rbac.authorization.kubernetes.io/autoupdate: "true"``, adds missing rules, aggregation
selectors, subjects, labels and annotations (kube's reconciliation: add, never remove;
a binding whose ``roleRef`` changed is deleted and created again). A second run writes
nothing. Writes are the server's own (no requester, no admission plugins).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from kubemodel.errors import ApiError
from runtime.api.objects import ObjectAPI, WriteOptions
from runtime.api.registry import ResourceInfo
from runtime.auth.policy import (
    AUTOUPDATE,
    FIELD_MANAGER,
    cluster_bindings,
    cluster_roles,
    namespaced_bindings,
    namespaced_roles,
)
from runtime.auth.rbac import RBAC_GROUP, covers

log = structlog.get_logger(__name__)

Obj = dict[str, Any]


def _merged(
    expected: Mapping[str, str] | None, existing: Mapping[str, str] | None
) -> dict[str, str]:
    return {**(expected or {}), **(existing or {})}


def _reconciled_role(expected: Obj, existing: Obj) -> Obj | None:
    """``existing`` with what ``expected`` adds (kube's ``computeReconciledRole`` in its
    union mode); None when nothing is missing."""
    out = copy.deepcopy(existing)
    meta = out.setdefault("metadata", {})
    meta["labels"] = _merged(expected["metadata"].get("labels"), meta.get("labels"))
    meta["annotations"] = _merged(expected["metadata"].get("annotations"), meta.get("annotations"))
    missing = covers(existing.get("rules") or [], expected.get("rules") or [])
    if missing:
        out["rules"] = [*(existing.get("rules") or []), *(r.as_dict() for r in missing)]
    wanted = (expected.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
    if wanted:
        current = (out.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        added = [s for s in wanted if s not in current]
        if added:
            out["aggregationRule"] = {"clusterRoleSelectors": [*current, *added]}
    return out if out != existing else None


def _reconciled_binding(expected: Obj, existing: Obj) -> Obj | None:
    """``existing`` with the missing subjects, labels and annotations; None when complete."""
    out = copy.deepcopy(existing)
    meta = out.setdefault("metadata", {})
    meta["labels"] = _merged(expected["metadata"].get("labels"), meta.get("labels"))
    meta["annotations"] = _merged(expected["metadata"].get("annotations"), meta.get("annotations"))
    current = out.get("subjects") or []
    added = [s for s in expected.get("subjects") or [] if not _has_subject(current, s)]
    if added:
        out["subjects"] = [*current, *added]
    return out if out != existing else None


def _has_subject(subjects: Sequence[Obj], wanted: Obj) -> bool:
    def key(s: Mapping[str, Any]) -> tuple[str, str, str]:
        return (str(s.get("kind") or ""), str(s.get("name") or ""), str(s.get("namespace") or ""))

    return any(key(s) == key(wanted) for s in subjects)


async def _ensure(api: ObjectAPI, info: ResourceInfo, expected: Obj) -> None:
    meta = expected["metadata"]
    namespace = str(meta.get("namespace") or "")
    name = str(meta["name"])
    opts = WriteOptions(field_manager=FIELD_MANAGER)
    entry = api.store.latest(info.store_key, namespace, name)
    if entry is None:
        try:
            await api.create(info, namespace, copy.deepcopy(expected), opts)
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
        return
    existing = entry.obj()
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE) != "true":
        return
    if "roleRef" in expected and existing.get("roleRef") != expected["roleRef"]:
        # A roleRef cannot change: kube deletes the binding and creates it again.
        await api.delete(info, namespace, name, None, opts)
        fresh = copy.deepcopy(expected)
        current = existing.get("subjects") or []
        fresh["subjects"] = [
            *current,
            *(s for s in fresh.get("subjects") or [] if not _has_subject(current, s)),
        ]
        if not fresh["subjects"]:
            del fresh["subjects"]
        await api.create(info, namespace, fresh, opts)
        return
    if "roleRef" in expected:
        updated = _reconciled_binding(expected, existing)
    else:
        updated = _reconciled_role(expected, existing)
    if updated is not None:
        await api.replace(info, namespace, name, updated, opts)


def _info(api: ObjectAPI, plural: str) -> ResourceInfo:
    info = api.registry.get(RBAC_GROUP, "v1", plural)
    assert info is not None, plural
    return info


async def ensure_bootstrap_policy(api: ObjectAPI) -> None:
    """Create the bootstrap roles and bindings that are missing and add what is missing
    to the auto-updated ones (never removing anything)."""
    plan: list[tuple[str, list[Obj]]] = [
        ("clusterroles", cluster_roles()),
        ("clusterrolebindings", cluster_bindings()),
        ("roles", namespaced_roles()),
        ("rolebindings", namespaced_bindings()),
    ]
    for plural, objects in plan:
        info = _info(api, plural)
        for obj in objects:
            try:
                await _ensure(api, info, obj)
            except ApiError as exc:
                log.warning(
                    "rbac.bootstrap_failed",
                    resource=plural,
                    name=obj["metadata"]["name"],
                    error=exc.message,
                )
