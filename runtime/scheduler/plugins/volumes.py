"""Volume plugins: VolumeRestrictions (ReadWriteOncePod claims in use, in-tree disks
mounted read-write twice on a node), VolumeBinding (a bound claim's PersistentVolume
must allow the node by its ``spec.nodeAffinity``; an unbound claim of a
WaitForFirstConsumer class needs a matching available PV on the node or a provisioner)
and VolumeZone (a bound PV's zone/region labels).

Who calls it: :mod:`runtime.scheduler.framework` (:func:`prefilter` once per cycle, then
the per-node checks) and the scheduler's bind step (:attr:`VolumeState.to_provision`
and :attr:`VolumeState.static` say which claims to provision or bind for the chosen node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.scheduler.labels import NodeSelector, label_selector
from runtime.scheduler.nodeinfo import ClusterState, NodeInfo
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.resources import amount
from runtime.scheduler.status import (
    DISK_CONFLICT,
    PV_NOT_EXIST,
    RWOP_CONFLICT,
    UNBOUND_IMMEDIATE,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    VOLUME_BIND_CONFLICT,
    VOLUME_NODE_CONFLICT,
    VOLUME_ZONE_CONFLICT,
    Status,
)

NO_PROVISIONER = "kubernetes.io/no-provisioner"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
_ZONE_KEYS = (
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region",
)
_GA = {
    "failure-domain.beta.kubernetes.io/zone": "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region",
}

S_RWOP = Status(UNSCHEDULABLE, "VolumeRestrictions", RWOP_CONFLICT)
S_DISK = Status(UNSCHEDULABLE, "VolumeRestrictions", DISK_CONFLICT)
S_NODE_CONFLICT = Status(UNRESOLVABLE, "VolumeBinding", VOLUME_NODE_CONFLICT)
S_PV_MISSING = Status(UNRESOLVABLE, "VolumeBinding", PV_NOT_EXIST)
S_BIND_CONFLICT = Status(UNRESOLVABLE, "VolumeBinding", VOLUME_BIND_CONFLICT)
S_ZONE = Status(UNRESOLVABLE, "VolumeZone", VOLUME_ZONE_CONFLICT)


class VolumeState:
    """What the volume plugins computed for one pod in PreFilter."""

    __slots__ = ("bound_pvs", "delayed", "disk_volumes", "rwop_conflict", "zones")

    def __init__(self) -> None:
        self.bound_pvs: list[
            Mapping[str, Any] | None
        ] = []  # PV of each bound claim (None: missing)
        self.delayed: list[Mapping[str, Any]] = []  # unbound WaitForFirstConsumer claims
        self.rwop_conflict = False
        self.zones: list[tuple[str, frozenset[str]]] = []
        self.disk_volumes: list[Mapping[str, Any]] = []


def _has_access_mode(pvc: Mapping[str, Any], mode: str) -> bool:
    return mode in ((pvc.get("spec") or {}).get("accessModes") or [])


def claim_class(pvc: Mapping[str, Any]) -> str:
    spec = pvc.get("spec") or {}
    name = spec.get("storageClassName")
    if name is None:
        name = (
            (pvc.get("metadata") or {})
            .get("annotations", {})
            .get("volume.beta.kubernetes.io/storage-class", "")
        )
    return str(name or "")


def _is_delayed(state: ClusterState, pvc: Mapping[str, Any]) -> bool:
    sc = state.storage_classes.get(claim_class(pvc))
    return bool(sc) and (sc or {}).get("volumeBindingMode") == "WaitForFirstConsumer"


def prefilter(pod: PodInfo, state: ClusterState) -> tuple[Status | None, VolumeState | None]:
    """VolumeRestrictions' and VolumeBinding's PreFilter: claims must exist and not be
    terminating; an unbound claim of an Immediate class blocks the pod everywhere."""
    raw_volumes = (pod.pod.get("spec") or {}).get("volumes") or []
    disk = [v for v in raw_volumes if isinstance(v, Mapping) and _needs_disk_check(v)]
    if not pod.pvcs and not disk:
        return None, None
    vs = VolumeState()
    vs.disk_volumes = disk
    claims = []
    for claim in pod.pvcs:
        pvc = state.pvcs.get(f"{pod.namespace}/{claim}")
        if pvc is None:
            return Status(
                UNRESOLVABLE, "VolumeRestrictions", f'persistentvolumeclaim "{claim}" not found'
            ), None
        claims.append(pvc)
        if (
            _has_access_mode(pvc, "ReadWriteOncePod")
            and state.pvc_users.get(f"{pod.namespace}/{claim}", 0) > 0
        ):
            vs.rwop_conflict = True
    for claim, pvc in zip(pod.pvcs, claims):
        if (pvc.get("metadata") or {}).get("deletionTimestamp"):
            return Status(
                UNRESOLVABLE, "VolumeBinding", f'persistentvolumeclaim "{claim}" is being deleted'
            ), None
    immediate = False
    for pvc in claims:
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            pv = state.pvs.get(str(volume_name))
            vs.bound_pvs.append(pv)
            if pv is not None:
                labels = (pv.get("metadata") or {}).get("labels") or {}
                for key in _ZONE_KEYS:
                    if key in labels:
                        vs.zones.append((key, frozenset(str(labels[key]).split("__"))))
        elif _is_delayed(state, pvc):
            vs.delayed.append(pvc)
        else:
            immediate = True
    if immediate:
        return Status(UNRESOLVABLE, "VolumeBinding", UNBOUND_IMMEDIATE), None
    return None, vs


def restrictions(ni: NodeInfo, vs: VolumeState) -> Status | None:
    """VolumeRestrictions' disk check: the same in-tree disk mounted read-write twice.
    (Its ReadWriteOncePod check, the same for every node, is applied by the framework.)"""
    if vs.disk_volumes:
        for other in ni.pods.values():
            existing = (other.pod.get("spec") or {}).get("volumes") or []
            for v in vs.disk_volumes:
                if any(_disk_conflict(v, e) for e in existing if isinstance(e, Mapping)):
                    return S_DISK
    return None


def pv_matches_node(pv: Mapping[str, Any], ni: NodeInfo) -> bool:
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if required is None:
        return True
    return NodeSelector(required).matches(ni.name, ni.labels)


def binding(pod: PodInfo, ni: NodeInfo, vs: VolumeState, state: ClusterState) -> Status | None:
    """VolumeBinding's Filter for one node."""
    reasons: list[str] = []
    for pv in vs.bound_pvs:
        if pv is None:
            return S_PV_MISSING
        if not pv_matches_node(pv, ni) and VOLUME_NODE_CONFLICT not in reasons:
            reasons.append(VOLUME_NODE_CONFLICT)
    if vs.delayed:
        chosen: set[str] = set()
        for pvc in vs.delayed:
            pv = find_matching_pv(pvc, ni, state, chosen)
            if pv is not None:
                chosen.add(str((pv.get("metadata") or {}).get("name")))
                continue
            if not can_provision(pvc, ni, state) and VOLUME_BIND_CONFLICT not in reasons:
                reasons.append(VOLUME_BIND_CONFLICT)
    if not reasons:
        return None
    if reasons == [VOLUME_NODE_CONFLICT]:
        return S_NODE_CONFLICT
    if reasons == [VOLUME_BIND_CONFLICT]:
        return S_BIND_CONFLICT
    return Status(UNRESOLVABLE, "VolumeBinding", *reasons)


def zone(ni: NodeInfo, vs: VolumeState) -> Status | None:
    """VolumeZone: nodes without any zone/region label pass (single-zone clusters)."""
    if not vs.zones:
        return None
    labels = ni.labels
    if not any(k in labels for k in _ZONE_KEYS):
        return None
    for key, values in vs.zones:
        v = labels.get(key)
        if v is None:
            v = labels.get(_GA.get(key, key))
        if v is None or v not in values:
            return S_ZONE
    return None


def _request(pvc: Mapping[str, Any]) -> int:
    return amount(
        "storage",
        (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", 0),
    )


def find_matching_pv(
    pvc: Mapping[str, Any], ni: NodeInfo, state: ClusterState, exclude: set[str]
) -> Mapping[str, Any] | None:
    """The smallest available PV of the claim's class that satisfies its size, access
    modes, volume mode and selector and whose node affinity allows this node."""
    spec = pvc.get("spec") or {}
    cls = claim_class(pvc)
    want = _request(pvc)
    modes = set(spec.get("accessModes") or [])
    volume_mode = spec.get("volumeMode") or "Filesystem"
    selector = label_selector(spec["selector"]) if spec.get("selector") else None
    meta = pvc.get("metadata") or {}
    best: Mapping[str, Any] | None = None
    best_size = 0
    for name, pv in state.pvs.items():
        if name in exclude:
            continue
        pv_spec = pv.get("spec") or {}
        ref = pv_spec.get("claimRef")
        if ref and (
            ref.get("namespace") != meta.get("namespace") or ref.get("name") != meta.get("name")
        ):
            continue
        if not ref and (pv.get("status") or {}).get("phase", "Available") != "Available":
            continue
        if str(pv_spec.get("storageClassName") or "") != cls:
            continue
        if (pv_spec.get("volumeMode") or "Filesystem") != volume_mode:
            continue
        if not modes.issubset(set(pv_spec.get("accessModes") or [])):
            continue
        size = amount("storage", (pv_spec.get("capacity") or {}).get("storage", 0))
        if size < want:
            continue
        if selector is not None and not selector.matches(
            (pv.get("metadata") or {}).get("labels") or {}
        ):
            continue
        if not pv_matches_node(pv, ni):
            continue
        if best is None or size < best_size:
            best, best_size = pv, size
    return best


def can_provision(pvc: Mapping[str, Any], ni: NodeInfo, state: ClusterState) -> bool:
    """A dynamic provisioner exists for the class and its allowedTopologies admit the node."""
    sc = state.storage_classes.get(claim_class(pvc))
    if not sc or str(sc.get("provisioner") or "") in ("", NO_PROVISIONER):
        return False
    topologies = sc.get("allowedTopologies") or []
    if not topologies:
        return True
    for term in topologies:
        ok = True
        for expr in term.get("matchLabelExpressions") or []:
            if ni.labels.get(str(expr.get("key"))) not in set(expr.get("values") or []):
                ok = False
                break
        if ok:
            return True
    return False


def _needs_disk_check(v: Mapping[str, Any]) -> bool:
    return any(k in v for k in ("gcePersistentDisk", "awsElasticBlockStore", "rbd", "iscsi"))


def _disk_conflict(v: Mapping[str, Any], e: Mapping[str, Any]) -> bool:
    if "gcePersistentDisk" in v and "gcePersistentDisk" in e:
        a, b = v["gcePersistentDisk"], e["gcePersistentDisk"]
        if a.get("pdName") == b.get("pdName") and not (a.get("readOnly") and b.get("readOnly")):
            return True
    if (
        "awsElasticBlockStore" in v
        and "awsElasticBlockStore" in e
        and v["awsElasticBlockStore"].get("volumeID") == e["awsElasticBlockStore"].get("volumeID")
    ):
        return True
    if "iscsi" in v and "iscsi" in e:
        a, b = v["iscsi"], e["iscsi"]
        if a.get("iqn") == b.get("iqn") and not (a.get("readOnly") and b.get("readOnly")):
            return True
    if "rbd" in v and "rbd" in e:
        a, b = v["rbd"], e["rbd"]
        if (
            set(a.get("monitors") or []) & set(b.get("monitors") or [])
            and a.get("pool", "rbd") == b.get("pool", "rbd")
            and a.get("image") == b.get("image")
            and not (a.get("readOnly") and b.get("readOnly"))
        ):
            return True
    return False
