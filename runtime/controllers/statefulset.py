"""The StatefulSet controller (apps/v1): pods with stable identities ``<set>-<ordinal>``,
stable storage from ``volumeClaimTemplates`` and ordered or parallel rollout — Kubernetes'
``pkg/controller/statefulset`` in the built-in cluster.

Semantics followed (Kubernetes 1.30):

- Pods are named ``<set>-<ordinal>`` for ordinals ``spec.ordinals.start`` ..
  ``start + replicas - 1``, with ``hostname`` = pod name, ``subdomain`` =
  ``spec.serviceName`` and labels ``statefulset.kubernetes.io/pod-name``,
  ``apps.kubernetes.io/pod-index`` and ``controller-revision-hash`` (the revision name).
- Each ``volumeClaimTemplates`` entry gives a PVC ``<template>-<set>-<ordinal>`` (the
  template's labels plus the selector's matchLabels), created before the pod and mounted by
  a ``persistentVolumeClaim`` volume named like the template. Claims outlive pods; the
  ``persistentVolumeClaimRetentionPolicy`` sets a (non-controller) ownerReference from a
  claim to the set (``whenDeleted: Delete``) or, for pods being scaled away, to the pod
  (``whenScaled: Delete``), for the garbage collector.
- ``OrderedReady``: ordinals are created one at a time, each after its predecessors are
  Running and Ready (and available for ``minReadySeconds``); nothing proceeds while a pod
  is unhealthy; scale-down removes the highest ordinal first, one at a time, waiting for
  termination. ``Parallel`` creates and deletes without waiting.
- Failed or succeeded pods are deleted and recreated with the same name (so the same
  claims).
- ``RollingUpdate`` replaces pods from the highest ordinal down to ``partition``, one at a
  time, waiting for each to be healthy; pods created below the partition use the current
  revision. ``OnDelete`` only uses the update revision for pods that are recreated.
- Status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
  currentRevision, updateRevision, collisionCount, observedGeneration.

Not implemented: adoption/orphaning of pods whose ownerReferences do not name the set,
``rollingUpdate.maxUnavailable`` (alpha/beta in Kubernetes; updates go one pod at a time).

Who runs it: the controller manager (:mod:`runtime.controllers.manager`, name
``statefulset``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from kubeclient.informer import key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers import history
from runtime.controllers.common import (
    Obj,
    delete_pod,
    is_controlled_by,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    owner_key_index,
    patch_status,
    pod_from_template,
    pod_phase,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
KIND = "StatefulSet"
API_VERSION = "apps/v1"


# --- pure helpers ---------------------------------------------------------------------------
def as_owner(sts: Mapping[str, Any]) -> Obj:
    """The set with apiVersion/kind filled in (list items may lack them)."""
    return {**sts, "apiVersion": API_VERSION, "kind": KIND}


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    """The ordinal of ``<set>-<ordinal>``, or None when the name is not the set's."""
    m = re.fullmatch(r"(.*)-([0-9]+)", pod_name)
    if m is None or m.group(1) != set_name:
        return None
    return int(m.group(2))


def ordinal_start(sts: Mapping[str, Any]) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Mapping[str, Any]) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


def claim_templates(sts: Mapping[str, Any]) -> list[Obj]:
    return list((sts.get("spec") or {}).get("volumeClaimTemplates") or [])


def retention_policy(sts: Mapping[str, Any]) -> tuple[str, str]:
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or "Retain"), str(policy.get("whenScaled") or "Retain")


def _plain_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


def claim_owner_refs(
    refs: list[Obj],
    sts: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    in_range: bool,
) -> list[Obj]:
    """A claim's ownerReferences as the retention policy wants them
    (updateClaimOwnerRefForSetAndPod): a reference to the set when ``whenDeleted`` is
    Delete and the pod is in range; to the pod when ``whenScaled`` is Delete and the pod
    is being scaled away. A reference to an earlier pod with the same name is dropped."""
    when_deleted, when_scaled = retention_policy(sts)
    set_uid = (sts.get("metadata") or {}).get("uid")
    pod_uid = ((pod or {}).get("metadata") or {}).get("uid")
    want_set = when_deleted == "Delete" and (in_range or when_scaled != "Delete")
    want_pod = when_scaled == "Delete" and not in_range and pod is not None
    pod_name = ((pod or {}).get("metadata") or {}).get("name")
    out: list[Obj] = []
    for ref in refs:
        uid = ref.get("uid")
        if ref.get("kind") == "Pod" and ref.get("name") == pod_name and uid != pod_uid:
            continue  # a stale reference to an earlier pod of this ordinal
        if uid and uid == set_uid and not want_set:
            continue
        if uid and uid == pod_uid and not want_pod:
            continue
        out.append(dict(ref))
    have = {r.get("uid") for r in out}
    if want_set and set_uid not in have:
        out.append(_plain_ref(sts, API_VERSION, KIND))
    if want_pod and pod is not None and pod_uid not in have:
        out.append(_plain_ref(pod, "v1", "Pod"))
    return out


def new_claim(sts: Mapping[str, Any], template: Mapping[str, Any], ordinal: int) -> Obj:
    """The PVC for ``template`` and ``ordinal`` (labels: the template's plus the set's
    selector matchLabels)."""
    meta = sts.get("metadata") or {}
    tmeta = template.get("metadata") or {}
    match = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    claim_meta: Obj = {
        "name": claim_name(str(tmeta.get("name")), str(meta.get("name")), ordinal),
        "namespace": meta.get("namespace"),
        "labels": {**(tmeta.get("labels") or {}), **match},
    }
    if tmeta.get("annotations"):
        claim_meta["annotations"] = dict(tmeta["annotations"])
    refs = claim_owner_refs([], sts, None, True)
    if refs:
        claim_meta["ownerReferences"] = refs
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": claim_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def new_pod(
    sts: Mapping[str, Any], template: Mapping[str, Any], ordinal: int, revision: str
) -> Obj:
    """The pod for ``ordinal`` from ``template`` labelled with ``revision``."""
    set_name = str((sts.get("metadata") or {}).get("name"))
    name = f"{set_name}-{ordinal}"
    pod = pod_from_template(
        template,
        as_owner(sts),
        name=name,
        extra_labels={
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: str(ordinal),
            history.POD_REVISION_LABEL: revision,
        },
    )
    spec = pod["spec"]
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = claim_templates(sts)
    if claims:
        names = [str((c.get("metadata") or {}).get("name")) for c in claims]
        volumes: list[Obj] = [
            {
                "name": n,
                "persistentVolumeClaim": {"claimName": claim_name(n, set_name, ordinal)},
            }
            for n in names
        ]
        volumes += [v for v in spec.get("volumes") or [] if v.get("name") not in names]
        spec["volumes"] = volumes
    return pod


revision_of = history.pod_revision


def running_and_ready(pod: Mapping[str, Any]) -> bool:
    return pod_phase(pod) == "Running" and is_pod_ready(pod)


def healthy(pod: Mapping[str, Any], min_ready: int) -> bool:
    return running_and_ready(pod) and not is_terminating(pod) and is_pod_available(pod, min_ready)


def uses_current_revision(sts: Mapping[str, Any], ordinal_index: int) -> bool:
    """Whether a pod created now at this index (ordinal - start) gets the current
    revision (below a RollingUpdate partition) rather than the update revision."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return False
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    return ordinal_index < partition


@dataclass
class Status:
    replicas: int = 0
    ready: int = 0
    available: int = 0
    current: int = 0
    updated: int = 0
    names: set[str] = field(default_factory=set)


def compute_status(pods: list[Obj], current: str, update: str, min_ready: int) -> Status:
    st = Status()
    for pod in pods:
        st.replicas += 1
        if is_pod_ready(pod):
            st.ready += 1
            if is_pod_available(pod, min_ready):
                st.available += 1
        rev = revision_of(pod)
        if rev:
            st.names.add(rev)
        if rev == current:
            st.current += 1
        if rev == update:
            st.updated += 1
    return st


# --- the controller -------------------------------------------------------------------------
_owner_key = owner_key_index(KIND)


class StatefulSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.recorder = ctx.recorder("statefulset-controller")
        self.workers = ctx.setting("statefulset.workers", 2)
        self.sets = ctx.informers.informer("apps/v1", "statefulsets")
        self.pods = ctx.informers.informer("v1", "pods")
        self.revisions = ctx.informers.informer("apps/v1", "controllerrevisions")
        self.claims = ctx.informers.informer("v1", "persistentvolumeclaims")
        self.pods.add_index("statefulset", _owner_key)
        self.revisions.add_index("statefulset", _owner_key)
        self.sets.on(
            add=lambda o: self.queue.add(key_of(o)),
            update=lambda _o, n: self.queue.add(key_of(n)),
            delete=lambda o: self.queue.add(key_of(o)),
        )
        self.pods.on(
            add=self._pod_event,
            update=self._pod_update,
            delete=self._pod_event,
        )
        self.revisions.on(delete=self._pod_event)

    def _pod_update(self, old: Obj, new: Obj) -> None:
        self._pod_event(old)
        self._pod_event(new)

    def _pod_event(self, obj: Obj) -> None:
        for key in _owner_key(obj):
            self.queue.add(key)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name="statefulset")

    # --- sync ------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.sets.get(key)
        if cached is None:
            return
        sts = as_owner(cached)
        ns, name = split_key(key)
        pods = [p for p in self.pods.by_index("statefulset", key) if is_controlled_by(p, sts)]
        revisions = [
            r for r in self.revisions.by_index("statefulset", key) if is_controlled_by(r, sts)
        ]
        status = sts.get("status") or {}
        collision = int(status.get("collisionCount") or 0)
        update_rev, collision = await history.ensure_revision(
            self.client, sts, revisions, collision, hash_label=history.REVISION_HASH_LABEL
        )
        update_name = str(update_rev["metadata"]["name"])
        by_name = {str(r["metadata"]["name"]): r for r in revisions}
        by_name[update_name] = update_rev
        current_name = str(status.get("currentRevision") or "")
        current_rev = by_name.get(current_name) or update_rev
        current_name = str(current_rev["metadata"]["name"])
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)

        if not is_terminating(sts):
            await self._update_pods(sts, pods, current_rev, update_rev, min_ready)

        pods = [p for p in self.pods.by_index("statefulset", key) if is_controlled_by(p, sts)]
        st = compute_status(pods, current_name, update_name, min_ready)
        strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type")
        if (
            (strategy or "RollingUpdate") == "RollingUpdate"
            and st.updated == replicas_of(sts)
            and st.ready == replicas_of(sts)
            and st.replicas == replicas_of(sts)
        ):
            current_name, st.current = update_name, st.updated
        await self._write_status(sts, st, current_name, update_name, collision)
        live = st.names | {current_name, update_name}
        limit = (sts.get("spec") or {}).get("revisionHistoryLimit")
        await history.delete_revisions(
            self.client, history.prunable(list(by_name.values()), live, limit), ns
        )
        if min_ready > 0 and st.available < st.ready:
            self.queue.add_after(key, float(min_ready))
        log.debug("statefulset.synced", set=name, replicas=st.replicas)

    async def _update_pods(
        self, sts: Obj, pods: list[Obj], current_rev: Obj, update_rev: Obj, min_ready: int
    ) -> None:
        set_name = str(sts["metadata"]["name"])
        start = ordinal_start(sts)
        count = replicas_of(sts)
        monotonic = (sts.get("spec") or {}).get("podManagementPolicy") != "Parallel"
        slots: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for owned in pods:
            found = ordinal_of(set_name, str(owned["metadata"]["name"]))
            if found is None:
                continue
            if start <= found < start + count:
                slots[found - start] = owned
            else:
                condemned.append(owned)
        condemned.sort(key=lambda p: ordinal_of(set_name, str(p["metadata"]["name"])) or 0)
        current_name = str(current_rev["metadata"]["name"])
        update_name = str(update_rev["metadata"]["name"])

        for index in range(count):
            ordinal = start + index
            slot = slots[index]
            if slot is not None and pod_phase(slot) in ("Failed", "Succeeded"):
                if not is_terminating(slot):
                    await self._delete_pod(sts, slot, "recreating failed pod")
                if monotonic:
                    return
                continue
            if slot is None:
                if uses_current_revision(sts, index):
                    template, revision = history.template_of(current_rev), current_name
                else:
                    template, revision = history.template_of(update_rev), update_name
                await self._create_pod(sts, new_pod(sts, template, ordinal, revision), ordinal)
                if monotonic:
                    return
                continue
            pod = slot
            if is_terminating(pod):
                if monotonic:
                    return
                continue
            if not healthy(pod, min_ready) and monotonic:
                return
            await self._ensure_claims(sts, pod, ordinal, in_range=True)
            await self._ensure_identity(pod, ordinal)

        for pod in condemned:
            ordinal = ordinal_of(set_name, str(pod["metadata"]["name"])) or 0
            await self._ensure_claims(sts, pod, ordinal, in_range=False, create=False)
        for pod in reversed(condemned):
            if is_terminating(pod):
                if monotonic:
                    return
                continue
            await self._delete_pod(sts, pod, "scale down")
            if monotonic:
                return

        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for index in range(count - 1, partition - 1, -1):
            target = slots[index]
            if target is None:
                return
            if revision_of(target) != update_name and not is_terminating(target):
                await self._delete_pod(sts, target, "rolling update")
                return
            if not healthy(target, min_ready):
                return

    # --- writes ----------------------------------------------------------------------------
    async def _create_pod(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        ns = sts["metadata"].get("namespace")
        await self._ensure_claims(sts, pod, ordinal, in_range=True)
        try:
            await self.client.create("v1", "pods", pod, namespace=ns)
        except KubeError as exc:
            if exc.already_exists:
                return
            self.recorder.event(
                sts, "Warning", "FailedCreate", "Create",
                f"create Pod {pod['metadata']['name']} in StatefulSet "
                f"{sts['metadata']['name']} failed error: {exc.message}",
            )  # fmt: skip
            raise
        self.recorder.event(
            sts, "Normal", "SuccessfulCreate", "Create",
            f"create Pod {pod['metadata']['name']} in StatefulSet "
            f"{sts['metadata']['name']} successful",
        )  # fmt: skip

    async def _delete_pod(self, sts: Obj, pod: Obj, why: str) -> None:
        ns = sts["metadata"].get("namespace")
        name = pod["metadata"]["name"]
        if not await delete_pod(self.client, pod, ns):
            return
        log.info("statefulset.pod_deleted", set=sts["metadata"]["name"], pod=name, why=why)
        self.recorder.event(
            sts, "Normal", "SuccessfulDelete", "Delete",
            f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful",
        )  # fmt: skip

    async def _ensure_claims(
        self, sts: Obj, pod: Obj, ordinal: int, *, in_range: bool, create: bool = True
    ) -> None:
        """Create missing claims for the pod and keep their ownerReferences as the
        retention policy wants them."""
        ns = sts["metadata"].get("namespace")
        set_name = str(sts["metadata"]["name"])
        pod_ref = pod if (pod.get("metadata") or {}).get("uid") else None
        for template in claim_templates(sts):
            tname = str((template.get("metadata") or {}).get("name"))
            cname = claim_name(tname, set_name, ordinal)
            existing = self.claims.get(f"{ns}/{cname}")
            if existing is None:
                if not create:
                    continue
                claim = new_claim(sts, template, ordinal)
                try:
                    await self.client.create("v1", "persistentvolumeclaims", claim, namespace=ns)
                except KubeError as exc:
                    if not exc.already_exists:
                        self.recorder.event(
                            sts, "Warning", "FailedCreate", "Create",
                            f"create Claim {cname} for Pod {pod['metadata']['name']} in "
                            f"StatefulSet {set_name} failed error: {exc.message}",
                        )  # fmt: skip
                        raise
                    continue
                self.recorder.event(
                    sts, "Normal", "SuccessfulCreate", "Create",
                    f"create Claim {cname} Pod {pod['metadata']['name']} in StatefulSet "
                    f"{set_name} success",
                )  # fmt: skip
                continue
            if is_terminating(existing):
                continue
            refs = list((existing.get("metadata") or {}).get("ownerReferences") or [])
            want = claim_owner_refs(refs, sts, pod_ref, in_range)
            if want != refs:
                body = {
                    "metadata": {
                        "ownerReferences": want,
                        "resourceVersion": existing["metadata"].get("resourceVersion"),
                    }
                }
                await self.client.patch("v1", "persistentvolumeclaims", cname, body, namespace=ns)

    async def _ensure_identity(self, pod: Obj, ordinal: int) -> None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        name = str(pod["metadata"]["name"])
        want = {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
        if all(labels.get(k) == v for k, v in want.items()):
            return
        await self.client.patch(
            "v1",
            "pods",
            name,
            {"metadata": {"labels": want}},
            namespace=pod["metadata"].get("namespace"),
        )

    async def _write_status(
        self, sts: Obj, st: Status, current: str, update: str, collision: int
    ) -> None:
        old = sts.get("status") or {}
        new: Obj = {
            "observedGeneration": (sts.get("metadata") or {}).get("generation"),
            "replicas": st.replicas,
            "readyReplicas": st.ready,
            "availableReplicas": st.available,
            "currentReplicas": st.current,
            "updatedReplicas": st.updated,
            "currentRevision": current,
            "updateRevision": update,
            "collisionCount": collision,
        }
        if all(old.get(k, 0 if isinstance(v, int) else None) == v for k, v in new.items()):
            return
        await patch_status(self.client, API_VERSION, "statefulsets", sts, new)
