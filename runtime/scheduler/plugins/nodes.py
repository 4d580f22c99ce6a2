"""Plugins that look at one node object: NodeUnschedulable, NodeName, TaintToleration,
NodeAffinity, NodePorts and ImageLocality.

Who calls it: :mod:`runtime.scheduler.framework` (filters in kube-scheduler's order, raw
scores normalized there). Node Ready/NotReady/Unknown and pressure conditions reach
TaintToleration as the ``node.kubernetes.io/*`` NoSchedule taints the node lifecycle
controller adds (see :func:`runtime.scheduler.nodeinfo.effective_taints`).
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.scheduler.labels import DO_NOT_SCHEDULE, first_untolerated, tolerates
from runtime.scheduler.nodeinfo import NodeInfo
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.status import (
    NODE_AFFINITY,
    NODE_NAME,
    NODE_PORTS,
    NODE_UNSCHEDULABLE,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    UNTOLERATED_TAINT,
    Status,
)

MAX_NODE_SCORE = 100

S_UNSCHEDULABLE = Status(UNRESOLVABLE, "NodeUnschedulable", NODE_UNSCHEDULABLE)
S_NODE_NAME = Status(UNRESOLVABLE, "NodeName", NODE_NAME)
S_TAINT = Status(UNRESOLVABLE, "TaintToleration", UNTOLERATED_TAINT)
S_NODE_AFFINITY = Status(UNRESOLVABLE, "NodeAffinity", NODE_AFFINITY)
S_NODE_PORTS = Status(UNSCHEDULABLE, "NodePorts", NODE_PORTS)


def node_unschedulable(pod: PodInfo, ni: NodeInfo) -> Status | None:
    """A cordoned node takes only pods tolerating ``node.kubernetes.io/unschedulable``."""
    if ni.unschedulable and not pod.tolerates_unschedulable:
        return S_UNSCHEDULABLE
    return None


def node_name(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if pod.node_name and pod.node_name != ni.name:
        return S_NODE_NAME
    return None


def taint_toleration(pod: PodInfo, ni: NodeInfo) -> Status | None:
    """Every NoSchedule and NoExecute taint must be tolerated."""
    if ni.taints and first_untolerated(ni.taints, pod.tolerations, DO_NOT_SCHEDULE) is not None:
        return S_TAINT
    return None


def matches_required_node_affinity(pod: PodInfo, ni: NodeInfo) -> bool:
    """nodeSelector and required node affinity (``RequiredNodeAffinity.Match``)."""
    labels = ni.labels
    if pod.node_selector:
        for k, v in pod.node_selector.items():
            if labels.get(k) != v:
                return False
    if pod.node_affinity is not None:
        return pod.node_affinity.matches(ni.name, labels)
    return True


def node_affinity(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if not matches_required_node_affinity(pod, ni):
        return S_NODE_AFFINITY
    return None


def node_ports(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if not pod.host_ports or not ni.ports:
        return None
    for ip, proto, port in pod.host_ports:
        if ni.port_conflict(ip, proto, port):
            return S_NODE_PORTS
    return None


# --- scores -------------------------------------------------------------------------------


def taint_score(pod: PodInfo, ni: NodeInfo) -> int:
    """TaintToleration's raw score: PreferNoSchedule taints the pod does not tolerate
    (only tolerations with an empty or PreferNoSchedule effect count)."""
    if not ni.taints:
        return 0
    tolerations = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
    return sum(1 for t in ni.taints if t[2] == "PreferNoSchedule" and not tolerates(tolerations, t))


def node_affinity_score(pod: PodInfo, ni: NodeInfo) -> int:
    """NodeAffinity's raw score: the weights of the matching preferred terms."""
    total = 0
    for pref in pod.preferred_node_terms:
        if pref.term.matches(ni.name, ni.labels):
            total += pref.weight
    return total


_MB = 1024 * 1024
_MIN_THRESHOLD = 23 * _MB
_MAX_CONTAINER_THRESHOLD = 1000 * _MB


def image_locality_score(
    pod: PodInfo, ni: NodeInfo, image_nodes: Mapping[str, int], total_nodes: int
) -> int:
    """ImageLocality: the sizes of the pod's images already on the node, each scaled by
    the share of nodes that have it, mapped onto 0..100 between 23 MB and 1000 MB per
    container."""
    if not ni.images or total_nodes <= 0:
        total = 0
    else:
        total = 0
        for image in pod.images:
            size = ni.images.get(image)
            if size is not None:
                total += int(size * (image_nodes.get(image, 0) / total_nodes))
    max_threshold = _MAX_CONTAINER_THRESHOLD * pod.n_containers
    if total < _MIN_THRESHOLD:
        total = _MIN_THRESHOLD
    elif total > max_threshold:
        total = max_threshold
    if max_threshold <= _MIN_THRESHOLD:
        return 0
    return MAX_NODE_SCORE * (total - _MIN_THRESHOLD) // (max_threshold - _MIN_THRESHOLD)


def default_normalize(scores: list[int], reverse: bool) -> list[int]:
    """``helper.DefaultNormalizeScore``: scale to 0..100 by the maximum (reversed for
    TaintToleration, so fewer intolerable taints score higher)."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    out = []
    for s in scores:
        v = MAX_NODE_SCORE * s // top
        out.append(MAX_NODE_SCORE - v if reverse else v)
    return out
