"""The PersistentVolume binder: binds PersistentVolumeClaims to PersistentVolumes and
moves volumes through their phases — kube-controller-manager's
``persistentvolume-binder`` (pkg/controller/volume/persistentvolume) for the built-in
cluster.

Who runs it: the controller manager (``--controllers persistentvolume-binder``). It
watches claims, volumes and StorageClasses and keeps two kinds of keys on one queue
(``claim:<ns>/<name>`` and ``volume:<name>``); every key is also resynced periodically
(``persistentvolume-binder.resync-seconds``, 15 s as Kubernetes' ``--pvclaimbinder-sync-period``).

Kubernetes semantics followed:

- A claim whose ``storageClassName`` is unset gets the default StorageClass (the newest
  class annotated ``storageclass.kubernetes.io/is-default-class: "true"``), as the PV
  controller's retroactive default class assignment does (GA in 1.28).
- An unbound claim is matched against available volumes: same class ("" matches only
  class-less volumes), access modes a superset of the claim's (the smallest such set
  first), same volumeMode, the claim's label selector, capacity at least the request;
  the smallest matching volume wins. A volume pre-bound to the claim (``claimRef``) or a
  claim pre-bound to a volume (``spec.volumeName``) is honoured.
- WaitForFirstConsumer classes: unbound static volumes are left to the scheduler (which
  sets their ``claimRef``), and without the scheduler's ``volume.kubernetes.io/selected-node``
  annotation the claim waits (event ``WaitForFirstConsumer``). With it, or for Immediate
  classes, a claim nothing matches is handed to its class's provisioner (annotation
  ``volume.kubernetes.io/storage-provisioner``, event ``ExternalProvisioning``); a missing
  class is a ``ProvisioningFailed`` event, no class at all a ``FailedBinding`` event. The
  claim stays ``Pending``.
- Binding writes the volume's ``claimRef`` and phase ``Bound``, then the claim's
  ``spec.volumeName``, the ``pv.kubernetes.io/bind-completed`` and
  ``pv.kubernetes.io/bound-by-controller`` annotations and its status (``Bound``,
  capacity and access modes of the volume). Every write carries the resourceVersion read.
- A volume whose claim is gone becomes ``Released``; then ``Retain`` keeps it,
  ``Delete`` leaves a dynamically provisioned volume (``pv.kubernetes.io/provisioned-by``)
  to its provisioner and fails others (event ``VolumeFailedDelete``: no in-tree deleter),
  ``Recycle`` fails (``VolumeFailedRecycle``: the recycler is deprecated and not built).
  Before releasing, the claim's absence is confirmed with the API server, as Kubernetes
  does, so a stale cache can never release (and so delete) a volume in use.
- A bound claim whose volume disappeared becomes ``Lost`` (event ``ClaimLost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import structlog

from kubeclient.informer import key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.api import quantity
from runtime.api.storageclasses import (
    claim_needs_default,
    default_class,
)
from runtime.controllers.common import (
    annotations_of,
    meta_of,
    now_rfc3339,
    selector_matches,
    spec_of,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

COMPONENT = "persistentvolume-controller"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
NO_PROVISIONER = "kubernetes.io/no-provisioner"

CLAIM_PREFIX = "claim:"
VOLUME_PREFIX = "volume:"


# --- pure helpers (unit-tested) ---------------------------------------------------------
def claim_class(claim: Mapping[str, Any]) -> str:
    """The claim's class: ``spec.storageClassName``, else the beta annotation, else ""."""
    name = spec_of(claim).get("storageClassName")
    if name is None:
        name = annotations_of(claim).get(ANN_BETA_STORAGE_CLASS, "")
    return str(name or "")


def volume_class(pv: Mapping[str, Any]) -> str:
    name = spec_of(pv).get("storageClassName")
    if not name:
        name = annotations_of(pv).get(ANN_BETA_STORAGE_CLASS, "")
    return str(name or "")


def storage_size(value: Any) -> Decimal:
    return quantity.parse(value) or Decimal(0)


def claim_request(claim: Mapping[str, Any]) -> Decimal:
    requests = (spec_of(claim).get("resources") or {}).get("requests") or {}
    return storage_size(requests.get("storage"))


def volume_capacity(pv: Mapping[str, Any]) -> Decimal:
    return storage_size((spec_of(pv).get("capacity") or {}).get("storage"))


def is_bound_to_claim(pv: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The volume's claimRef names the claim (and its uid, when the ref has one)."""
    ref = spec_of(pv).get("claimRef")
    if not ref:
        return False
    meta = meta_of(claim)
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def _volume_mode(spec: Mapping[str, Any]) -> str:
    return str(spec.get("volumeMode") or "Filesystem")


def _modes(obj: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(m) for m in spec_of(obj).get("accessModes") or [])


def find_best_match(
    claim: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]], *, delay_binding: bool
) -> Mapping[str, Any] | None:
    """The volume the claim should bind to (Kubernetes' findBestMatchForClaim): a volume
    pre-bound to the claim first; else, among volumes whose access modes include the
    claim's — trying the sets with the fewest modes first — the smallest available one of
    the claim's class, volume mode and selector with enough capacity. With
    ``delay_binding`` (WaitForFirstConsumer) only pre-bound volumes are returned: the
    scheduler chooses the others."""
    wanted = _modes(claim)
    mode = _volume_mode(spec_of(claim))
    groups: dict[frozenset[str], list[Mapping[str, Any]]] = {}
    for pv in volumes:
        modes = _modes(pv)
        if not wanted <= modes:
            continue
        if (
            is_bound_to_claim(pv, claim)
            and _volume_mode(spec_of(pv)) == mode
            and not meta_of(pv).get("deletionTimestamp")
        ):
            return pv
        groups.setdefault(modes, []).append(pv)
    if delay_binding:
        return None
    cls = claim_class(claim)
    request = claim_request(claim)
    selector = spec_of(claim).get("selector")
    for modes in sorted(groups, key=lambda m: (len(m), sorted(m))):
        best: Mapping[str, Any] | None = None
        for pv in sorted(
            groups[modes], key=lambda p: (volume_capacity(p), str(meta_of(p).get("name")))
        ):
            if _volume_mode(spec_of(pv)) != mode:
                continue
            if meta_of(pv).get("deletionTimestamp"):
                continue
            if (pv.get("status") or {}).get("phase") != "Available" or spec_of(pv).get("claimRef"):
                continue
            if selector is not None and not selector_matches(
                selector, meta_of(pv).get("labels") or {}
            ):
                continue
            if volume_class(pv) != cls:
                continue
            if best is None and volume_capacity(pv) >= request:
                best = pv
        if best is not None:
            return best
    return None


def satisfy_problem(claim: Mapping[str, Any], pv: Mapping[str, Any]) -> str | None:
    """Why a volume a claim names in ``spec.volumeName`` cannot serve it (Kubernetes'
    checkVolumeSatisfyClaim), or None."""
    if volume_capacity(pv) < claim_request(claim):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if _volume_mode(spec_of(pv)) != _volume_mode(spec_of(claim)):
        return "incompatible volumeMode"
    if not _modes(claim) <= _modes(pv):
        return "incompatible accessMode"
    return None


def claim_reference(claim: Mapping[str, Any]) -> Obj:
    meta = meta_of(claim)
    ref: Obj = {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta.get("resourceVersion")
    return ref


# --- the controller ---------------------------------------------------------------------
class PersistentVolumeBinder:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder(COMPONENT)
        self.queue = WorkQueue()
        self.workers = ctx.setting("persistentvolume-binder.workers", 2)
        self.resync = ctx.setting("persistentvolume-binder.resync-seconds", 15.0)
        self.claims = ctx.informers.informer("v1", "persistentvolumeclaims")
        self.volumes = ctx.informers.informer("v1", "persistentvolumes")
        self.classes = ctx.informers.informer("storage.k8s.io/v1", "storageclasses")
        self.volumes.add_index("pv-claim", _claim_key_of_volume)
        self.claims.on(
            add=self._claim_added, update=self._claim_updated, delete=self._claim_deleted
        )
        self.volumes.on(
            add=self._volume_changed,
            update=lambda _old, new: self._volume_changed(new),
            delete=self._volume_deleted,
        )
        self.classes.on(add=self._class_changed, update=lambda _old, new: self._class_changed(new))

    # --- handlers: enqueue only -------------------------------------------------------
    def _enqueue_claim(self, key: str) -> None:
        self.queue.add(CLAIM_PREFIX + key)

    def _enqueue_volume(self, name: str) -> None:
        self.queue.add(VOLUME_PREFIX + name)

    def _claim_added(self, claim: Obj) -> None:
        self._enqueue_claim(key_of(claim))

    def _claim_updated(self, _old: Obj, new: Obj) -> None:
        self._enqueue_claim(key_of(new))
        name = spec_of(new).get("volumeName")
        if name:
            self._enqueue_volume(str(name))

    def _claim_deleted(self, claim: Obj) -> None:
        for pv in self.volumes.by_index("pv-claim", key_of(claim)):
            self._enqueue_volume(str(meta_of(pv).get("name")))

    def _volume_changed(self, pv: Obj) -> None:
        self._enqueue_volume(str(meta_of(pv).get("name")))
        ref = spec_of(pv).get("claimRef")
        if ref:
            self._enqueue_claim(f"{ref.get('namespace')}/{ref.get('name')}")
        elif (pv.get("status") or {}).get("phase") == "Available":
            self._enqueue_unbound_claims()

    def _volume_deleted(self, pv: Obj) -> None:
        ref = spec_of(pv).get("claimRef")
        if ref:
            self._enqueue_claim(f"{ref.get('namespace')}/{ref.get('name')}")

    def _class_changed(self, _sc: Obj) -> None:
        self._enqueue_unbound_claims()

    def _enqueue_unbound_claims(self) -> None:
        for claim in self.claims.items():
            if not spec_of(claim).get("volumeName"):
                self._enqueue_claim(key_of(claim))

    # --- running --------------------------------------------------------------------
    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        resync = asyncio.create_task(self._resync_loop())
        try:
            await run_workers(
                self.queue, self.sync, workers=self.workers, name="persistentvolume-binder"
            )
        finally:
            resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resync

    async def _resync_loop(self) -> None:
        while True:
            for claim in self.claims.items():
                self._enqueue_claim(key_of(claim))
            for pv in self.volumes.items():
                self._enqueue_volume(key_of(pv))
            await asyncio.sleep(max(self.resync, 0.1))

    async def sync(self, key: str) -> None:
        if key.startswith(CLAIM_PREFIX):
            claim = self.claims.get(key.removeprefix(CLAIM_PREFIX))
            if claim is not None:
                await self.sync_claim(claim)
        elif key.startswith(VOLUME_PREFIX):
            pv = self.volumes.get(key.removeprefix(VOLUME_PREFIX))
            if pv is not None:
                await self.sync_volume(pv)

    # --- claims -----------------------------------------------------------------------
    async def sync_claim(self, claim: Obj) -> None:
        if annotations_of(claim).get(ANN_BIND_COMPLETED) is None:
            await self._sync_unbound_claim(claim)
        else:
            await self._sync_bound_claim(claim)

    def _class(self, name: str) -> Obj | None:
        return self.classes.get(name) if name else None

    def _delay_binding(self, claim: Mapping[str, Any]) -> bool:
        sc = self._class(claim_class(claim))
        return sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer"

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        if claim_needs_default(claim):
            default = default_class(self.classes.items())
            if default is not None:
                await self._assign_class(claim, default)
                return
        volume_name = str(spec_of(claim).get("volumeName") or "")
        if not volume_name:
            delay = self._delay_binding(claim)
            match = find_best_match(claim, self.volumes.items(), delay_binding=delay)
            if match is not None:
                await self._bind(dict(match), claim)
                return
            if delay and ANN_SELECTED_NODE not in annotations_of(claim):
                self.recorder.event(
                    claim,
                    "Normal",
                    "WaitForFirstConsumer",
                    "Binding",
                    "waiting for first consumer to be created before binding",
                )
            elif claim_class(claim):
                await self._provision(claim)
            else:
                self.recorder.event(
                    claim,
                    "Normal",
                    "FailedBinding",
                    "Binding",
                    "no persistent volumes available for this claim and no storage class is set",
                )
            await self._claim_phase(claim, "Pending")
            return
        # The user asked for a particular volume.
        pv = self.volumes.get(volume_name)
        if pv is None:
            await self._claim_phase(claim, "Pending")
            return
        ref = spec_of(pv).get("claimRef")
        if not ref:
            problem = satisfy_problem(claim, pv)
            if problem is not None:
                self.recorder.event(
                    claim,
                    "Warning",
                    "FailedBinding",
                    "Binding",
                    f'Cannot bind to requested volume "{volume_name}": {problem}',
                )
                await self._claim_phase(claim, "Pending")
                return
            await self._bind(pv, claim)
        elif is_bound_to_claim(pv, claim):
            await self._bind(pv, claim)
        else:
            self.recorder.event(
                claim,
                "Warning",
                "FailedBinding",
                "Binding",
                f'volume "{volume_name}" already bound to a different claim.',
            )
            await self._claim_phase(claim, "Pending")

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = str(spec_of(claim).get("volumeName") or "")
        pv = self.volumes.get(volume_name) if volume_name else None
        if pv is None:
            if volume_name:
                pv = await self._live("persistentvolumes", volume_name)
            if pv is None:
                await self._lose(
                    claim,
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                )
                return
        if not spec_of(pv).get("claimRef") or is_bound_to_claim(pv, claim):
            await self._bind(pv, claim)
            return
        await self._lose(
            claim,
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )

    async def _lose(self, claim: Obj, reason: str, message: str) -> None:
        if (claim.get("status") or {}).get("phase") != "Lost":
            self.recorder.event(claim, "Warning", reason, "Binding", message)
        await self._claim_phase(claim, "Lost")

    async def _assign_class(self, claim: Obj, name: str) -> None:
        updated = copy.deepcopy(claim)
        updated.setdefault("spec", {})["storageClassName"] = name
        await self._replace_claim(updated)
        log.info("pv-binder.default-class", claim=key_of(claim), storage_class=name)

    async def _provision(self, claim: Obj) -> None:
        """Hand the claim to its class's provisioner (Kubernetes' provisionClaim for
        external provisioners): annotate it and say so in an event."""
        name = claim_class(claim)
        sc = self._class(name)
        if sc is None:
            self.recorder.event(
                claim,
                "Warning",
                "ProvisioningFailed",
                "Provisioning",
                f'storageclass.storage.k8s.io "{name}" not found',
            )
            return
        provisioner = str(sc.get("provisioner") or "")
        if provisioner == NO_PROVISIONER:
            self.recorder.event(
                claim,
                "Normal",
                "FailedBinding",
                "Binding",
                "no persistent volumes available for this claim and storage class "
                f'"{name}" uses {NO_PROVISIONER}',
            )
            return
        ann = annotations_of(claim)
        if (
            ann.get(ANN_STORAGE_PROVISIONER) != provisioner
            or ann.get(ANN_BETA_STORAGE_PROVISIONER) != provisioner
        ):
            updated = copy.deepcopy(claim)
            annotations = updated.setdefault("metadata", {}).setdefault("annotations", {})
            annotations[ANN_STORAGE_PROVISIONER] = provisioner
            annotations[ANN_BETA_STORAGE_PROVISIONER] = provisioner
            claim = await self._replace_claim(updated)
        self.recorder.event(
            claim,
            "Normal",
            "ExternalProvisioning",
            "Provisioning",
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation "
            "is delayed, please verify that your external provisioner is running and "
            "correctly registered.",
        )

    # --- binding ------------------------------------------------------------------------
    async def _bind(self, pv: Obj, claim: Obj) -> None:
        """Bind both ways, writing only what differs (Kubernetes' bind())."""
        meta = meta_of(claim)
        ref = spec_of(pv).get("claimRef") or {}
        if (
            ref.get("name") != meta.get("name")
            or ref.get("namespace") != meta.get("namespace")
            or ref.get("uid") != meta.get("uid")
        ):
            updated = copy.deepcopy(pv)
            if not is_bound_to_claim(pv, claim):
                updated.setdefault("metadata", {}).setdefault("annotations", {})[
                    ANN_BOUND_BY_CONTROLLER
                ] = "yes"
            updated.setdefault("spec", {})["claimRef"] = claim_reference(claim)
            pv = await self.client.replace(
                "v1", "persistentvolumes", str(meta_of(pv).get("name")), updated
            )
        pv = await self._volume_phase(pv, "Bound")
        pv_name = str(meta_of(pv).get("name"))
        ann = annotations_of(claim)
        if spec_of(claim).get("volumeName") != pv_name or ann.get(ANN_BIND_COMPLETED) is None:
            updated = copy.deepcopy(claim)
            annotations = updated.setdefault("metadata", {}).setdefault("annotations", {})
            if spec_of(claim).get("volumeName") != pv_name:
                annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            annotations[ANN_BIND_COMPLETED] = "yes"
            updated.setdefault("spec", {})["volumeName"] = pv_name
            claim = await self._replace_claim(updated)
        status = claim.get("status") or {}
        capacity = dict(spec_of(pv).get("capacity") or {})
        modes = list(spec_of(pv).get("accessModes") or [])
        if (
            status.get("phase") != "Bound"
            or status.get("capacity") != capacity
            or status.get("accessModes") != modes
        ):
            updated = copy.deepcopy(claim)
            new_status = updated.setdefault("status", {})
            new_status.update({"phase": "Bound", "capacity": capacity, "accessModes": modes})
            await self._replace_claim(updated, subresource="status")
            log.info("pv-binder.bound", claim=key_of(claim), volume=pv_name)

    async def _replace_claim(self, claim: Obj, subresource: str | None = None) -> Obj:
        meta = meta_of(claim)
        out: Obj = await self.client.replace(
            "v1",
            "persistentvolumeclaims",
            str(meta.get("name")),
            claim,
            str(meta.get("namespace")),
            subresource=subresource,
        )
        return out

    async def _claim_phase(self, claim: Obj, phase: str) -> None:
        if (claim.get("status") or {}).get("phase") == phase:
            return
        updated = copy.deepcopy(claim)
        updated.setdefault("status", {})["phase"] = phase
        await self._replace_claim(updated, subresource="status")

    async def _volume_phase(
        self, pv: Obj, phase: str, *, reason: str = "", message: str = ""
    ) -> Obj:
        status = pv.get("status") or {}
        if (
            status.get("phase") == phase
            and status.get("message", "") == message
            and status.get("reason", "") == reason
        ):
            return pv
        updated = copy.deepcopy(pv)
        new_status = updated.setdefault("status", {})
        if new_status.get("phase") != phase:
            new_status["lastPhaseTransitionTime"] = now_rfc3339()
        new_status["phase"] = phase
        for key, value in (("reason", reason), ("message", message)):
            if value:
                new_status[key] = value
            else:
                new_status.pop(key, None)
        out: Obj = await self.client.replace(
            "v1", "persistentvolumes", str(meta_of(pv).get("name")), updated, subresource="status"
        )
        return out

    async def _live(self, plural: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object as the API server has it now (None: it does not exist)."""
        try:
            out: Obj = await self.client.get("v1", plural, name, namespace)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return out

    # --- volumes ------------------------------------------------------------------------
    async def sync_volume(self, pv: Obj) -> None:
        ref = spec_of(pv).get("claimRef")
        if not ref:
            await self._volume_phase(pv, "Available")
            return
        claim_key = f"{ref.get('namespace')}/{ref.get('name')}"
        claim = self.claims.get(claim_key)
        if claim is not None and ref.get("uid") and meta_of(claim).get("uid") != ref.get("uid"):
            claim = None
        if not ref.get("uid"):
            # Pre-bound by the user to a claim that may not exist yet.
            if claim is None or not spec_of(claim).get("volumeName"):
                await self._volume_phase(pv, "Available")
                if claim is not None:
                    self._enqueue_claim(claim_key)
            return
        if claim is None:
            ns, name = split_key(claim_key)
            live = await self._live("persistentvolumeclaims", name, ns)
            if live is not None and meta_of(live).get("uid") == ref.get("uid"):
                return  # the cache is behind; the claim's events will come
            await self._reclaim(pv)
            return
        volume_name = spec_of(claim).get("volumeName")
        if not volume_name:
            # Binding is in progress (or the claim lost its link): the claim's sync binds.
            self._enqueue_claim(claim_key)
            return
        if volume_name == meta_of(pv).get("name"):
            await self._volume_phase(pv, "Bound")
            return
        # The claim is bound to another volume: free this one. A volume provisioned for
        # the claim with policy Delete is not needed any more: reclaim (delete) it.
        if (
            annotations_of(pv).get(ANN_PROVISIONED_BY)
            and spec_of(pv).get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            await self._reclaim(pv)
            return
        updated = copy.deepcopy(pv)
        annotations = updated.setdefault("metadata", {}).get("annotations") or {}
        if ANN_BOUND_BY_CONTROLLER in annotations:
            annotations.pop(ANN_BOUND_BY_CONTROLLER, None)
            updated["spec"].pop("claimRef", None)
        else:
            updated["spec"]["claimRef"].pop("uid", None)
        pv = await self.client.replace(
            "v1", "persistentvolumes", str(meta_of(pv).get("name")), updated
        )
        await self._volume_phase(pv, "Available")

    async def _reclaim(self, pv: Obj) -> None:
        """The claim is gone: Released, then the reclaim policy."""
        phase = (pv.get("status") or {}).get("phase")
        if phase == "Failed":
            return
        if phase != "Released":
            pv = await self._volume_phase(pv, "Released")
        policy = spec_of(pv).get("persistentVolumeReclaimPolicy") or "Retain"
        name = str(meta_of(pv).get("name"))
        if policy == "Retain":
            return
        if policy == "Recycle":
            message = "Recycle is deprecated and not supported by the built-in cluster"
            self.recorder.event(pv, "Warning", "VolumeFailedRecycle", "Recycling", message)
            await self._volume_phase(pv, "Failed", message=message)
            return
        if annotations_of(pv).get(ANN_PROVISIONED_BY):
            return  # its (external) provisioner deletes it
        message = f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'
        self.recorder.event(pv, "Warning", "VolumeFailedDelete", "Deleting", message)
        await self._volume_phase(pv, "Failed", message=message)


def _claim_key_of_volume(pv: Obj) -> list[str]:
    ref = spec_of(pv).get("claimRef")
    if not ref:
        return []
    return [f"{ref.get('namespace')}/{ref.get('name')}"]
