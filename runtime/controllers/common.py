"""What the workload controllers share: owner references, pods from templates, pod
readiness and availability, controller expectations and label-selector matching on
cached objects — the pieces of kube-controller-manager's ``controller_utils`` that
several controllers need.

Who calls it: the ReplicaSet, Deployment, StatefulSet, DaemonSet and Job controllers
(and any controller that creates or adopts pods).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubeclient.rest import Client, KubeError
from runtime.api.selectors import from_label_selector_object

Obj = dict[str, Any]


# --- time -------------------------------------------------------------------------------
def now_rfc3339() -> str:
    """The current time as Kubernetes writes it (seconds, UTC, ``Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Unix seconds of an RFC 3339 timestamp, or None."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- ownership --------------------------------------------------------------------------
def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> Obj:
    """An ownerReference to ``owner`` as controllers set it (controller and
    blockOwnerDeletion true)."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def owner_key_index(kind: str) -> Callable[[Obj], list[str]]:
    """An informer index function: the ``<namespace>/<name>`` key of an object's
    controller when that controller is a ``kind``, else nothing."""

    def index(obj: Obj) -> list[str]:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != kind:
            return []
        ns = (obj.get("metadata") or {}).get("namespace")
        return [f"{ns}/{ref.get('name')}"]

    return index


#: Informer index names (and functions) for claiming: what a controller owns, by its uid,
#: and the objects nobody controls, by namespace. Claiming from these two sets costs
#: O(owned + orphans) instead of a scan of the whole namespace.
BY_CONTROLLER_UID = "common:controller-uid"
ORPHANS_BY_NAMESPACE = "common:orphans-by-namespace"


def controller_uid_index(obj: Obj) -> list[str]:
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


def orphan_namespace_index(obj: Obj) -> list[str]:
    if controller_ref(obj) is not None:
        return []
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def add_claim_indexes(informer: Any) -> None:
    """Index an informer's objects by controller uid and orphans by namespace."""
    informer.add_index(BY_CONTROLLER_UID, controller_uid_index)
    informer.add_index(ORPHANS_BY_NAMESPACE, orphan_namespace_index)


def claim_candidates(informer: Any, owner: Mapping[str, Any]) -> list[Obj]:
    """What an owner may claim: the objects it controls and its namespace's orphans
    (indexes from :func:`add_claim_indexes`)."""
    meta = owner.get("metadata") or {}
    owned = informer.by_index(BY_CONTROLLER_UID, str(meta.get("uid") or ""))
    orphans = informer.by_index(ORPHANS_BY_NAMESPACE, str(meta.get("namespace") or ""))
    return [*owned, *orphans]


# --- selectors ----------------------------------------------------------------------------
def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a metav1.LabelSelector matches ``labels``. An empty selector matches
    everything and a missing (None) one nothing, as in Kubernetes' controllers."""
    parsed = from_label_selector_object(selector)
    return parsed is not None and parsed.matches(labels)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's metadata ({} when missing)."""
    return obj.get("metadata") or {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's spec ({} when missing)."""
    return obj.get("spec") or {}


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """An object's annotations ({} when missing), not copied."""
    return meta_of(obj).get("annotations") or {}


# --- pods ---------------------------------------------------------------------------------
def pod_from_template(
    template: Mapping[str, Any],
    owner: Mapping[str, Any],
    *,
    name: str | None = None,
    generate_name: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Obj:
    """A Pod built from a pod template owned (as controller) by ``owner``."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "namespace": (owner.get("metadata") or {}).get("namespace"),
        "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{(owner.get('metadata') or {}).get('name')}-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Not finished and not being deleted (Kubernetes' IsPodActive)."""
    return pod_phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def pod_condition(pod: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_pod_available(
    pod: Mapping[str, Any], min_ready_seconds: int, now: float | None = None
) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' IsPodAvailable)."""
    cond = pod_condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(cond.get("lastTransitionTime"))
    if since is None:
        return False
    return (now if now is not None else time.time()) - since >= min_ready_seconds


async def delete_pod(client: Client, pod: Mapping[str, Any], namespace: str | None) -> bool:
    """Delete ``pod`` with a uid precondition; False (and nothing raised) when it is
    already gone or its name now belongs to another pod."""
    try:
        await client.delete(
            "v1",
            "pods",
            pod["metadata"]["name"],
            namespace=namespace,
            body={"preconditions": {"uid": pod["metadata"].get("uid")}},
        )
    except KubeError as exc:
        if exc.not_found or exc.conflict:
            return False
        raise
    return True


async def patch_status(
    client: Client, api_version: str, plural: str, obj: Mapping[str, Any], status: Obj
) -> None:
    """Merge ``status`` into ``obj``'s status subresource; an object deleted meanwhile
    is no error."""
    meta = obj["metadata"]
    try:
        await client.patch(
            api_version,
            plural,
            meta["name"],
            {"status": status},
            namespace=meta.get("namespace"),
            subresource="status",
        )
    except KubeError as exc:
        if not exc.not_found:
            raise


def restart_count(pod: Mapping[str, Any]) -> int:
    return sum(
        int(s.get("restartCount") or 0)
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


# --- expectations -------------------------------------------------------------------------
class Expectations:
    """How many creations and deletions a controller still expects to see through its
    informer for each owner key (kube-controller-manager's ControllerExpectations): a
    sync that finds expectations unmet does not act again on stale cache contents.
    Expectations expire after ``ttl`` seconds, so a lost watch event cannot wedge an
    owner forever."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._pending: dict[str, tuple[int, int, float]] = {}

    def expect(self, key: str, creations: int = 0, deletions: int = 0) -> None:
        adds, dels, _ = self._pending.get(key, (0, 0, 0.0))
        self._pending[key] = (adds + creations, dels + deletions, time.monotonic())

    def created(self, key: str) -> None:
        """One expected creation was observed (or will never happen: a create failed)."""
        self._lower(key, 1, 0)

    def deleted(self, key: str) -> None:
        """One expected deletion was observed (or will never happen)."""
        self._lower(key, 0, 1)

    def _lower(self, key: str, adds: int, dels: int) -> None:
        found = self._pending.get(key)
        if found is None:
            return
        a, d, at = found
        self._pending[key] = (max(a - adds, 0), max(d - dels, 0), at)

    def satisfied(self, key: str) -> bool:
        found = self._pending.get(key)
        if found is None:
            return True
        adds, dels, at = found
        if adds <= 0 and dels <= 0:
            return True
        return time.monotonic() - at > self.ttl

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
