"""PodTopologySpread: ``topologySpreadConstraints`` (DoNotSchedule filters, ScheduleAnyway
scores) and, for pods without constraints, the system default spreading of a
controller's pods — ``kubernetes.io/hostname`` (maxSkew 3) and
``topology.kubernetes.io/zone`` (maxSkew 5), both ScheduleAnyway — with the selector of
the services selecting the pod and of its ReplicaSet/StatefulSet/ReplicationController
owner (``helper.DefaultSelector``).

Who calls it: :mod:`runtime.scheduler.framework`. ``minDomains``, ``matchLabelKeys`` and
the node inclusion policies (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore by
default) are honoured; terminating pods do not count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.scheduler.labels import (
    DO_NOT_SCHEDULE,
    EVERYTHING,
    Selector,
    first_untolerated,
    label_selector,
    merge_selectors,
    selector_from_set,
)
from runtime.scheduler.nodeinfo import HOSTNAME_LABEL, ZONE_LABEL, ClusterState, NodeInfo
from runtime.scheduler.plugins.nodes import MAX_NODE_SCORE, matches_required_node_affinity
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.status import (
    SPREAD_CONSTRAINTS,
    SPREAD_MISSING_LABEL,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    Status,
)

S_MISSING_LABEL = Status(UNRESOLVABLE, "PodTopologySpread", SPREAD_MISSING_LABEL)
S_SKEW = Status(UNSCHEDULABLE, "PodTopologySpread", SPREAD_CONSTRAINTS)


class Constraint:
    __slots__ = ("honor_affinity", "honor_taints", "key", "max_skew", "min_domains", "selector")

    def __init__(
        self,
        key: str,
        max_skew: int,
        selector: Selector,
        min_domains: int = 1,
        honor_affinity: bool = True,
        honor_taints: bool = False,
    ) -> None:
        self.key = key
        self.max_skew = max_skew
        self.selector = selector
        self.min_domains = min_domains
        self.honor_affinity = honor_affinity
        self.honor_taints = honor_taints

    def includes(self, pod: PodInfo, ni: NodeInfo) -> bool:
        """``matchNodeInclusionPolicies``."""
        if self.honor_affinity and not matches_required_node_affinity(pod, ni):
            return False
        return not (
            self.honor_taints and first_untolerated(ni.taints, pod.tolerations, DO_NOT_SCHEDULE)
        )


def explicit_constraints(pod: PodInfo, action: str) -> list[Constraint]:
    out = []
    for c in pod.spread_constraints:
        if c.get("whenUnsatisfiable") != action:
            continue
        selector = label_selector(c.get("labelSelector"))
        keys = [k for k in c.get("matchLabelKeys") or [] if k in pod.labels]
        if keys and not selector.nothing:
            selector = merge_selectors(
                selector_from_set({k: pod.labels[k] for k in keys}), selector
            )
        out.append(
            Constraint(
                str(c.get("topologyKey") or ""),
                int(c.get("maxSkew") or 1),
                selector,
                int(c.get("minDomains") or 1),
                (c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                (c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
            )
        )
    return out


def default_selector(pod: PodInfo, state: ClusterState) -> Selector:
    """The selectors of the services selecting the pod and of its controller, ANDed."""
    merged: dict[str, str] = {}
    for svc_selector in state.services.get(pod.namespace, {}).values():
        if all(pod.labels.get(k) == v for k, v in svc_selector.items()):
            merged.update(svc_selector)
    selector = selector_from_set(merged)
    if pod.owner is not None:
        kind, name, _uid = pod.owner
        owner = state.controllers.get((kind, pod.namespace, name))
        if owner is not None:
            selector = merge_selectors(selector, owner)
    return selector


def default_constraints(pod: PodInfo, state: ClusterState) -> list[Constraint]:
    selector = default_selector(pod, state)
    if selector is EVERYTHING or selector.everything:
        return []
    return [Constraint(HOSTNAME_LABEL, 3, selector), Constraint(ZONE_LABEL, 5, selector)]


def _counts(pod: PodInfo, c: Constraint, state: ClusterState) -> Mapping[str, int]:
    ns = frozenset({pod.namespace})
    return state.match.counts(ns, c.selector, True, state.nodes.values())


# --- filter ---------------------------------------------------------------------------------


class SpreadFilterState:
    __slots__ = ("constraints", "matches", "minimum")

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.matches: list[dict[str, int]] = [{} for _ in constraints]
        self.minimum: list[int] = [0 for _ in constraints]


def prefilter(pod: PodInfo, state: ClusterState) -> SpreadFilterState | None:
    constraints = explicit_constraints(pod, "DoNotSchedule")
    if not constraints:
        return None
    st = SpreadFilterState(constraints)
    keys = [c.key for c in constraints]
    counts = [_counts(pod, c, state) for c in constraints]
    for ni in state.order:
        labels = ni.labels
        if any(k not in labels for k in keys):
            continue
        for i, c in enumerate(constraints):
            if not c.includes(pod, ni):
                continue
            value = labels[c.key]
            by_value = st.matches[i]
            by_value[value] = by_value.get(value, 0) + counts[i].get(ni.name, 0)
    for i, c in enumerate(constraints):
        values = st.matches[i]
        lowest = min(values.values()) if values else 0
        st.minimum[i] = 0 if len(values) < c.min_domains else lowest
    return st


def filter_node(pod: PodInfo, ni: NodeInfo, st: SpreadFilterState) -> Status | None:
    labels = ni.labels
    for i, c in enumerate(st.constraints):
        value = labels.get(c.key)
        if value is None:
            return S_MISSING_LABEL
        self_match = 1 if c.selector.matches(pod.labels) else 0
        skew = st.matches[i].get(value, 0) + self_match - st.minimum[i]
        if skew > c.max_skew:
            return S_SKEW
    return None


# --- score ----------------------------------------------------------------------------------


class SpreadScoreState:
    __slots__ = ("constraints", "host_counts", "ignored", "value_counts", "weights")

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.ignored: set[str] = set()
        self.value_counts: list[dict[str, int]] = [{} for _ in constraints]
        self.host_counts: list[Mapping[str, int]] = [{} for _ in constraints]
        self.weights: list[float] = [0.0 for _ in constraints]


def prescore(
    pod: PodInfo, state: ClusterState, feasible: Sequence[NodeInfo]
) -> SpreadScoreState | None:
    explicit = bool(pod.spread_constraints)
    constraints = (
        explicit_constraints(pod, "ScheduleAnyway") if explicit else default_constraints(pod, state)
    )
    if not constraints:
        return None
    st = SpreadScoreState(constraints)
    require_all = explicit
    keys = [c.key for c in constraints]
    sizes = [0 for _ in constraints]
    for ni in feasible:
        if require_all and any(k not in ni.labels for k in keys):
            st.ignored.add(ni.name)
            continue
        for i, c in enumerate(constraints):
            if c.key == HOSTNAME_LABEL:
                continue
            value = ni.labels.get(c.key)
            if value is not None and value not in st.value_counts[i]:
                st.value_counts[i][value] = 0
                sizes[i] += 1
    for i, c in enumerate(constraints):
        size = sizes[i]
        if c.key == HOSTNAME_LABEL:
            size = len(feasible) - len(st.ignored)
        st.weights[i] = math.log(size + 2)
        counts = _counts(pod, c, state)
        if c.key == HOSTNAME_LABEL:
            st.host_counts[i] = counts
            continue
        wanted = st.value_counts[i]
        for node, n in counts.items():
            other = state.nodes.get(node)
            if other is None or other.node is None:
                continue
            if require_all and any(k not in other.labels for k in keys):
                continue
            if not c.includes(pod, other):
                continue
            value = other.labels.get(c.key)
            if value is not None and value in wanted:
                wanted[value] += n
    return st


def score(pod: PodInfo, ni: NodeInfo, st: SpreadScoreState) -> int:
    if ni.name in st.ignored:
        return 0
    total = 0.0
    for i, c in enumerate(st.constraints):
        value = ni.labels.get(c.key)
        if value is None:
            continue
        if c.key == HOSTNAME_LABEL:
            count = st.host_counts[i].get(ni.name, 0)
        else:
            count = st.value_counts[i].get(value, 0)
        total += count * st.weights[i] + (c.max_skew - 1)
    return round_half_away(total)


def round_half_away(x: float) -> int:
    """Go's ``math.Round``."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def normalize(names: Sequence[str], scores: list[int], st: SpreadScoreState) -> list[int]:
    lo: int | None = None
    hi = 0
    for name, s in zip(names, scores):
        if name in st.ignored:
            continue
        lo = s if lo is None or s < lo else lo
        hi = max(hi, s)
    out = []
    for name, s in zip(names, scores):
        if name in st.ignored:
            out.append(0)
        elif hi == 0:
            out.append(MAX_NODE_SCORE)
        else:
            out.append(MAX_NODE_SCORE * (hi + (lo or 0) - s) // hi)
    return out


def controller_selector(obj: Mapping[str, Any], kind: str) -> Selector:
    """The pod selector of a ReplicaSet/StatefulSet (a LabelSelector) or a
    ReplicationController (a map)."""
    spec = obj.get("spec") or {}
    if kind == "ReplicationController":
        return selector_from_set(spec.get("selector") or {})
    return label_selector(spec.get("selector"))
