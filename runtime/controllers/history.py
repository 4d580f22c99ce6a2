"""ControllerRevision history shared by the StatefulSet and DaemonSet controllers — the
pieces of Kubernetes' ``pkg/controller/history`` and the two controllers' revision code.

A revision snapshots an owner's pod template as the patch Kubernetes stores in
``ControllerRevision.data``: ``{"spec": {"template": {..., "$patch": "replace"}}}``. Its
name is ``<owner>-<hash>`` where the hash is FNV-32a over the serialised data (and the
owner's ``status.collisionCount`` when set), rendered with apimachinery's
``SafeEncodeString`` alphabet. Revisions carry a monotonically increasing ``revision``
number; an update to a template equal to an older revision re-uses that revision and
moves it to the next number. History beyond ``spec.revisionHistoryLimit`` (default 10)
is pruned, oldest first, never removing a revision that live pods still use.

The hash value differs from kube-controller-manager's (Go's struct serialisation and
object hashing are not reproducible here) but has the same properties: stable for a
template, different when it changes, and ``collisionCount`` resolves name clashes.

Who calls it: :mod:`runtime.controllers.statefulset` and :mod:`runtime.controllers.daemonset`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kubeclient.rest import Client, KubeError
from runtime.controllers.common import Obj, is_controlled_by, owner_reference

#: Label on a StatefulSet's revisions (history.ControllerRevisionHashLabel).
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
#: Label on pods (and DaemonSet revisions) naming their revision.
POD_REVISION_LABEL = "controller-revision-hash"
DEFAULT_HISTORY_LIMIT = 10
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_PREFIX = 223


def template_patch(owner: Mapping[str, Any]) -> Obj:
    """The data Kubernetes stores for an owner's current pod template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Mapping[str, Any]) -> Obj:
    """The pod template a revision recorded (the inverse of :func:`template_patch`)."""
    data = revision.get("data") or {}
    template = copy.deepcopy(((data.get("spec") or {}).get("template")) or {})
    template.pop("$patch", None)
    return dict(template)


def safe_encode(text: str) -> str:
    """apimachinery's rand.SafeEncodeString: no vowels, no look-alike characters."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def hash_data(data: Mapping[str, Any], collision_count: int | None) -> str:
    """The revision hash of ``data`` probed with ``collision_count``."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def revision_name(owner_name: str, hash_: str) -> str:
    """``<owner>-<hash>``, the owner name cut so the result stays a valid name."""
    return f"{owner_name[:_MAX_PREFIX]}-{hash_}"


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(
        revisions,
        key=lambda r: (
            revision_number(r),
            str((r.get("metadata") or {}).get("creationTimestamp") or ""),
            str((r.get("metadata") or {}).get("name") or ""),
        ),
    )


def next_revision(revisions: Iterable[Mapping[str, Any]]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def equal_revisions(revisions: Iterable[Obj], data: Mapping[str, Any]) -> list[Obj]:
    """The revisions whose data equals ``data`` (history.FindEqualRevisions)."""
    return [r for r in revisions if (r.get("data") or {}) == data]


def new_revision(
    owner: Mapping[str, Any],
    data: Mapping[str, Any],
    number: int,
    collision_count: int | None,
    *,
    hash_label: str,
) -> Obj:
    """A ControllerRevision of ``owner`` (a controller ownerReference to it) whose labels
    are the template's labels plus ``hash_label: <hash>``."""
    meta = owner.get("metadata") or {}
    hash_ = hash_data(data, collision_count)
    template_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels"
    ) or {}
    rev_meta: Obj = {
        "name": revision_name(str(meta.get("name")), hash_),
        "namespace": meta.get("namespace"),
        "labels": {**template_labels, hash_label: hash_},
        "ownerReferences": [owner_reference(owner)],
    }
    if meta.get("annotations"):
        rev_meta["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": rev_meta,
        "data": copy.deepcopy(dict(data)),
        "revision": number,
    }


def pod_revision(pod: Mapping[str, Any]) -> str:
    """The revision a pod (or DaemonSet revision) is labelled with, or ""."""
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(POD_REVISION_LABEL, ""))


async def delete_revisions(client: Client, revisions: Iterable[Obj], namespace: str) -> None:
    """Delete ``revisions`` (e.g. what :func:`prunable` chose); ones already gone are
    no error."""
    for rev in revisions:
        try:
            await client.delete(
                "apps/v1", "controllerrevisions", rev["metadata"]["name"], namespace=namespace
            )
        except KubeError as exc:
            if not exc.not_found:
                raise


def prunable(revisions: Iterable[Obj], live: set[str], limit: int | None) -> list[Obj]:
    """The revisions to delete so at most ``limit`` (default 10) revisions that no pod,
    current or update revision uses (``live`` names) remain, oldest first."""
    keep = DEFAULT_HISTORY_LIMIT if limit is None else max(limit, 0)
    history = [
        r for r in sort_revisions(revisions) if (r.get("metadata") or {}).get("name") not in live
    ]
    excess = len(history) - keep
    return history[:excess] if excess > 0 else []


async def ensure_revision(
    client: Client,
    owner: Mapping[str, Any],
    revisions: list[Obj],
    collision_count: int,
    *,
    hash_label: str,
) -> tuple[Obj, int]:
    """The revision for ``owner``'s current template, created (or an equal older one
    renumbered to the newest) as needed; returns it and the possibly raised collision
    count. ``revisions`` are the owner's existing revisions."""
    data = template_patch(owner)
    ordered = sort_revisions(revisions)
    equal = equal_revisions(ordered, data)
    number = next_revision(ordered)
    ns = (owner.get("metadata") or {}).get("namespace")
    if equal:
        found = equal[-1]
        if ordered and found is ordered[-1]:
            return found, collision_count
        name = str(found["metadata"]["name"])
        updated = await client.patch(
            "apps/v1", "controllerrevisions", name, {"revision": number}, namespace=ns
        )
        return updated, collision_count
    while True:
        body = new_revision(owner, data, number, collision_count, hash_label=hash_label)
        try:
            created = await client.create("apps/v1", "controllerrevisions", body, namespace=ns)
            return created, collision_count
        except KubeError as exc:
            if not exc.already_exists:
                raise
        existing = await client.get(
            "apps/v1", "controllerrevisions", body["metadata"]["name"], namespace=ns
        )
        if is_controlled_by(existing, owner) and (existing.get("data") or {}) == data:
            return existing, collision_count
        collision_count += 1
