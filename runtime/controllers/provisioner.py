"""The local-path provisioner: creates a directory-backed PersistentVolume for every
claim of a StorageClass whose provisioner is ``rancher.io/local-path``, and deletes the
volume and its directory when its claim is gone and its reclaim policy is ``Delete`` —
the behaviour of Rancher's local-path-provisioner as k3s ships it, run in-process.

Who runs it: the controller manager (``--controllers persistentvolume-provisioner``),
next to :mod:`runtime.controllers.volumebinder`, which binds what this creates.

Semantics followed (sig-storage external-provisioner library + local-path-provisioner):

- At start it creates the StorageClass ``local-path`` (provisioner
  ``rancher.io/local-path`` — the name k3s uses, so manifests written for k3s work
  unchanged —, ``storageclass.kubernetes.io/is-default-class: "true"``,
  ``volumeBindingMode: WaitForFirstConsumer``, ``reclaimPolicy: Delete``) if no class
  of that name exists. An existing class is never changed.
  ``persistentvolume-provisioner.default-class=false`` skips this.
- A claim is provisioned when it is unbound, not being deleted, of a class with our
  provisioner, annotated ``volume.kubernetes.io/storage-provisioner`` with our name by
  the binder (the external-provisioner contract), and — for WaitForFirstConsumer
  classes — annotated ``volume.kubernetes.io/selected-node`` by the scheduler.
- The volume is named ``pvc-<claim uid>`` (so a repeated attempt is an AlreadyExists,
  never a duplicate), is a ``hostPath`` directory (type ``DirectoryOrCreate``) at
  ``<state dir>/volumes/<volume name>`` created world-writable as local-path does, has
  the claim's access modes, capacity = the claim's request, the class's reclaim policy
  and mount options, ``pv.kubernetes.io/provisioned-by`` and a ``claimRef`` pre-bound to
  the claim. A ReadWriteOnce/ReadWriteOncePod volume provisioned for a selected node
  gets ``nodeAffinity`` to that node (``kubernetes.io/hostname``), as local-path does,
  so the scheduler keeps its other users on that node; ReadWriteMany/ReadOnlyMany
  volumes get none (all nodes of the built-in cluster share one filesystem).
- Events on the claim: ``Provisioning``, then ``ProvisioningSucceeded`` or
  ``ProvisioningFailed``.
- A ``Released`` volume provisioned by us with policy ``Delete`` has its directory
  removed, then is deleted; failures are a ``VolumeFailedDelete`` event and a retry.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from kubeclient.informer import key_of
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.api.storageclasses import ANN_DEFAULT_CLASS
from runtime.controllers.common import meta_of, spec_of
from runtime.controllers.manager import ControllerContext
from runtime.controllers.volumebinder import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    claim_class,
)

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

PROVISIONER = "rancher.io/local-path"
DEFAULT_CLASS = "local-path"
COMPONENT = f"{PROVISIONER}_local-path-provisioner"
HOSTNAME_LABEL = "kubernetes.io/hostname"
CLAIM_PREFIX = "claim:"
VOLUME_PREFIX = "volume:"


def default_storage_class() -> Obj:
    """The ``local-path`` StorageClass created at start."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_name(claim: Mapping[str, Any]) -> str:
    return f"pvc-{meta_of(claim).get('uid')}"


def wants_provisioning(claim: Mapping[str, Any], sc: Mapping[str, Any] | None) -> bool:
    """Whether this provisioner should create a volume for the claim now (the external
    provisioner library's shouldProvision)."""
    if sc is None or sc.get("provisioner") != PROVISIONER:
        return False
    meta = meta_of(claim)
    if meta.get("deletionTimestamp") or spec_of(claim).get("volumeName"):
        return False
    ann = meta.get("annotations") or {}
    if PROVISIONER not in (ann.get(ANN_STORAGE_PROVISIONER), ann.get(ANN_BETA_STORAGE_PROVISIONER)):
        return False
    if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
        return bool(ann.get(ANN_SELECTED_NODE))
    return True


def build_volume(claim: Mapping[str, Any], sc: Mapping[str, Any], path: Path) -> Obj:
    """The PersistentVolume provisioned for ``claim`` at ``path``."""
    meta = meta_of(claim)
    spec = spec_of(claim)
    modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    pv_spec: Obj = {
        "capacity": {"storage": request} if request is not None else {},
        "accessModes": modes,
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
        "storageClassName": str(meta_of(sc).get("name")),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
        "claimRef": {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
    }
    if sc.get("mountOptions"):
        pv_spec["mountOptions"] = list(sc["mountOptions"])
    node = (meta.get("annotations") or {}).get(ANN_SELECTED_NODE)
    if node and not {"ReadWriteMany", "ReadOnlyMany"} & set(modes):
        pv_spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
                        ]
                    }
                ]
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "annotations": {ANN_PROVISIONED_BY: PROVISIONER},
        },
        "spec": pv_spec,
    }


def should_delete(pv: Mapping[str, Any]) -> bool:
    """A released volume of ours whose policy is Delete (shouldDelete)."""
    return (
        (meta_of(pv).get("annotations") or {}).get(ANN_PROVISIONED_BY) == PROVISIONER
        and (pv.get("status") or {}).get("phase") == "Released"
        and spec_of(pv).get("persistentVolumeReclaimPolicy") == "Delete"
    )


class LocalPathProvisioner:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.root = ctx.state_dir / "volumes"
        self.recorder = ctx.recorder(COMPONENT)
        self.queue = WorkQueue()
        self.workers = ctx.setting("persistentvolume-provisioner.workers", 2)
        self.create_default = ctx.setting("persistentvolume-provisioner.default-class", True)
        self.claims = ctx.informers.informer("v1", "persistentvolumeclaims")
        self.volumes = ctx.informers.informer("v1", "persistentvolumes")
        self.classes = ctx.informers.informer("storage.k8s.io/v1", "storageclasses")
        self.claims.on(add=self._claim, update=lambda _old, new: self._claim(new), delete=None)
        self.volumes.on(add=self._volume, update=lambda _old, new: self._volume(new))
        self.classes.on(add=self._class, update=lambda _old, new: self._class(new))

    def _claim(self, claim: Obj) -> None:
        self.queue.add(CLAIM_PREFIX + key_of(claim))

    def _volume(self, pv: Obj) -> None:
        if should_delete(pv):
            self.queue.add(VOLUME_PREFIX + key_of(pv))

    def _class(self, sc: Obj) -> None:
        if sc.get("provisioner") == PROVISIONER:
            name = meta_of(sc).get("name")
            for claim in self.claims.items():
                if claim_class(claim) == name and not spec_of(claim).get("volumeName"):
                    self._claim(claim)

    async def run(self) -> None:
        if self.create_default:
            await self._ensure_default_class()
        await self.ctx.informers.wait_synced()
        await run_workers(
            self.queue, self.sync, workers=self.workers, name="persistentvolume-provisioner"
        )

    async def _ensure_default_class(self) -> None:
        """Create the ``local-path`` class unless a class of that name exists (retrying
        while the API server is not reachable)."""
        delay = 0.2
        while True:
            try:
                await self.client.create(
                    "storage.k8s.io/v1", "storageclasses", default_storage_class()
                )
                log.info("local-path.default-class-created", storage_class=DEFAULT_CLASS)
                return
            except KubeError as exc:
                if exc.already_exists:
                    return
                if not exc.retryable:
                    log.error("local-path.default-class-failed", error=str(exc))
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def sync(self, key: str) -> None:
        if key.startswith(CLAIM_PREFIX):
            claim = self.claims.get(key.removeprefix(CLAIM_PREFIX))
            if claim is not None:
                await self.sync_claim(claim)
        elif key.startswith(VOLUME_PREFIX):
            pv = self.volumes.get(key.removeprefix(VOLUME_PREFIX))
            if pv is not None and should_delete(pv):
                await self.delete_volume(pv)

    def _path(self, name: str) -> Path:
        return self.root / name

    async def sync_claim(self, claim: Obj) -> None:
        sc = self.classes.get(claim_class(claim)) if claim_class(claim) else None
        if sc is None or not wants_provisioning(claim, sc):
            return
        name = volume_name(claim)
        if self.volumes.get(name) is not None:
            return  # provisioned already; the binder binds it
        claim_key = key_of(claim)
        self.recorder.event(
            claim,
            "Normal",
            "Provisioning",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{claim_key}"',
        )
        path = self._path(name)
        pv = build_volume(claim, sc, path)
        try:
            await asyncio.to_thread(_make_directory, path)
            await self.client.create("v1", "persistentvolumes", pv)
        except KubeError as exc:
            if exc.already_exists:
                return
            self._failed(claim, str(exc))
            raise
        except OSError as exc:
            self._failed(claim, f"creating {path}: {exc}")
            raise
        log.info("local-path.provisioned", claim=claim_key, volume=name, path=str(path))
        self.recorder.event(
            claim,
            "Normal",
            "ProvisioningSucceeded",
            "Provisioning",
            f"Successfully provisioned volume {name}",
        )

    def _failed(self, claim: Obj, why: str) -> None:
        self.recorder.event(
            claim,
            "Warning",
            "ProvisioningFailed",
            "Provisioning",
            f'failed to provision volume with StorageClass "{claim_class(claim)}": {why}',
        )

    async def delete_volume(self, pv: Obj) -> None:
        name = str(meta_of(pv).get("name"))
        path = str((spec_of(pv).get("hostPath") or {}).get("path") or "")
        expected = self._path(name)
        try:
            if path == str(expected):
                await asyncio.to_thread(_remove_directory, expected)
            else:
                log.warning("local-path.foreign-path", volume=name, path=path)
            await self.client.delete(
                "v1",
                "persistentvolumes",
                name,
                body={"preconditions": {"uid": meta_of(pv).get("uid")}},
            )
        except KubeError as exc:
            if exc.not_found:
                return
            self._delete_failed(pv, str(exc))
            raise
        except OSError as exc:
            self._delete_failed(pv, f"removing {path}: {exc}")
            raise
        log.info("local-path.deleted", volume=name, path=path)

    def _delete_failed(self, pv: Obj, why: str) -> None:
        self.recorder.event(pv, "Warning", "VolumeFailedDelete", "Deleting", why)


def _make_directory(path: Path) -> None:
    """A volume directory as rancher's local-path provisioner makes it (0777: any
    container user may write). Host users cannot reach it: the state directory above
    it is 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)


def _remove_directory(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
