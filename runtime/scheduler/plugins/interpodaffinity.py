"""InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, the
required anti-affinity of pods already placed (symmetry), and the preferred terms of
both sides as a score — over any topology key (``kubernetes.io/hostname``, zones, any
node label), with ``namespaces`` and ``namespaceSelector``.

Who calls it: :mod:`runtime.scheduler.framework`. Counting "pods matching a term per
topology domain" uses :class:`runtime.scheduler.nodeinfo.MatchIndex` (per-node counts
kept current incrementally) instead of walking every pod each cycle; pods that carry
affinity terms themselves are found through :attr:`ClusterState.with_affinity` and
:attr:`ClusterState.with_required_anti`.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.scheduler.nodeinfo import ClusterState, NodeInfo
from runtime.scheduler.podinfo import AffinityTerm, PodInfo
from runtime.scheduler.status import (
    EXISTING_ANTI_AFFINITY,
    POD_AFFINITY,
    POD_ANTI_AFFINITY,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    Status,
)

MAX_NODE_SCORE = 100
HARD_POD_AFFINITY_WEIGHT = 1
Pair = tuple[str, str]

S_AFFINITY = Status(UNRESOLVABLE, "InterPodAffinity", POD_AFFINITY)
S_ANTI = Status(UNSCHEDULABLE, "InterPodAffinity", POD_ANTI_AFFINITY)
S_EXISTING = Status(UNSCHEDULABLE, "InterPodAffinity", EXISTING_ANTI_AFFINITY)


class AffinityState:
    """PreFilter results: topology pairs counted for each kind of required term."""

    __slots__ = (
        "affinity",
        "affinity_counts",
        "anti",
        "anti_counts",
        "existing_anti",
        "self_match",
    )

    def __init__(self) -> None:
        self.existing_anti: dict[Pair, int] = {}
        self.affinity: tuple[AffinityTerm, ...] = ()
        self.anti: tuple[AffinityTerm, ...] = ()
        self.affinity_counts: dict[Pair, int] = {}
        self.anti_counts: dict[Pair, int] = {}
        self.self_match = False


def _resolved(terms: tuple[AffinityTerm, ...], state: ClusterState) -> list[frozenset[str] | None]:
    return [t.resolved_namespaces(state.namespaces) for t in terms]


def _term_matches(ns: frozenset[str] | None, term: AffinityTerm, pod: PodInfo) -> bool:
    return (ns is None or pod.namespace in ns) and term.selector.matches(pod.labels)


def _add_counts(
    out: dict[Pair, int], counts: Mapping[str, int], key: str, state: ClusterState
) -> None:
    for node, n in counts.items():
        ni = state.nodes.get(node)
        if ni is None or ni.node is None:
            continue
        value = ni.labels.get(key)
        if value is not None:
            out[(key, value)] = out.get((key, value), 0) + n


def prefilter(pod: PodInfo, state: ClusterState) -> AffinityState | None:
    """None when neither the pod nor any placed pod has required (anti-)affinity."""
    if (
        not pod.required_affinity
        and not pod.required_anti_affinity
        and not state.with_required_anti
    ):
        return None
    st = AffinityState()
    ns_labels = state.namespaces.get(pod.namespace, {})
    for other in state.with_required_anti.values():
        entry = state.pods.get(other.uid)
        if entry is None:
            continue
        ni = state.nodes.get(entry[1])
        if ni is None or ni.node is None:
            continue
        for t in other.required_anti_affinity:
            if t.matches(pod.namespace, pod.labels, ns_labels):
                value = ni.labels.get(t.topology_key)
                if value is not None:
                    pair = (t.topology_key, value)
                    st.existing_anti[pair] = st.existing_anti.get(pair, 0) + 1
    nodes = state.nodes.values()
    if pod.required_affinity:
        st.affinity = pod.required_affinity
        namespaces = _resolved(pod.required_affinity, state)
        # An existing pod counts for the affinity terms only if it matches all of them.
        conds = tuple(zip(namespaces, (t.selector for t in pod.required_affinity)))
        counts = state.match.counts_all(conds, False, nodes)
        for t in pod.required_affinity:
            _add_counts(st.affinity_counts, counts, t.topology_key, state)
        st.self_match = all(
            _term_matches(ns, t, pod) for ns, t in zip(namespaces, pod.required_affinity)
        )
    if pod.required_anti_affinity:
        st.anti = pod.required_anti_affinity
        for ns, t in zip(_resolved(pod.required_anti_affinity, state), pod.required_anti_affinity):
            counts = state.match.counts(ns, t.selector, False, nodes)
            _add_counts(st.anti_counts, counts, t.topology_key, state)
    return st


def filter_node(ni: NodeInfo, st: AffinityState) -> Status | None:
    labels = ni.labels
    if st.affinity:
        pods_exist = True
        for t in st.affinity:
            value = labels.get(t.topology_key)
            if value is None:
                return S_AFFINITY
            if st.affinity_counts.get((t.topology_key, value), 0) <= 0:
                pods_exist = False
        if not pods_exist and not (not st.affinity_counts and st.self_match):
            return S_AFFINITY
    if st.anti_counts:
        for t in st.anti:
            value = labels.get(t.topology_key)
            if value is not None and st.anti_counts.get((t.topology_key, value), 0) > 0:
                return S_ANTI
    if st.existing_anti:
        for pair in labels.items():
            if st.existing_anti.get(pair, 0) > 0:
                return S_EXISTING
    return None


# --- score ---------------------------------------------------------------------------------


def prescore(pod: PodInfo, state: ClusterState) -> dict[str, dict[str, int]] | None:
    """Per topology key and value, the summed weights of matching preferred terms (both
    the incoming pod's and the placed pods'), placed pods' required affinity counting
    with weight 1. None when there is nothing to score."""
    incoming = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
    if not incoming and not state.with_affinity:
        return None
    topo: dict[str, dict[str, int]] = {}

    def add(key: str, value: str, delta: int) -> None:
        by_value = topo.setdefault(key, {})
        by_value[value] = by_value.get(value, 0) + delta

    nodes = state.nodes.values()
    for terms, sign in ((pod.preferred_affinity, 1), (pod.preferred_anti_affinity, -1)):
        for t in terms:
            ns = t.resolved_namespaces(state.namespaces)
            for node, n in state.match.counts(ns, t.selector, False, nodes).items():
                ni = state.nodes.get(node)
                if ni is None or ni.node is None or not ni.labels:
                    continue
                value = ni.labels.get(t.topology_key)
                if value is not None:
                    add(t.topology_key, value, sign * t.weight * n)
    ns_labels = state.namespaces.get(pod.namespace, {})
    for other in state.with_affinity.values():
        entry = state.pods.get(other.uid)
        if entry is None:
            continue
        ni = state.nodes.get(entry[1])
        if ni is None or ni.node is None or not ni.labels:
            continue
        for t in other.required_affinity:
            if t.matches(pod.namespace, pod.labels, ns_labels):
                value = ni.labels.get(t.topology_key)
                if value is not None:
                    add(t.topology_key, value, HARD_POD_AFFINITY_WEIGHT)
        for terms, sign in ((other.preferred_affinity, 1), (other.preferred_anti_affinity, -1)):
            for t in terms:
                if t.matches(pod.namespace, pod.labels, ns_labels):
                    value = ni.labels.get(t.topology_key)
                    if value is not None:
                        add(t.topology_key, value, sign * t.weight)
    topo = {k: {v: s for v, s in vals.items() if s} for k, vals in topo.items()}
    topo = {k: v for k, v in topo.items() if v}
    return topo or None


def score(ni: NodeInfo, topo: Mapping[str, Mapping[str, int]]) -> int:
    total = 0
    labels = ni.labels
    for key, values in topo.items():
        value = labels.get(key)
        if value is not None:
            total += values.get(value, 0)
    return total


def normalize(scores: list[int]) -> list[int]:
    """Min-max onto 0..100."""
    if not scores:
        return scores
    lo, hi = min(scores), max(scores)
    diff = hi - lo
    if diff <= 0:
        return [0 for _ in scores]
    return [int(MAX_NODE_SCORE * ((s - lo) / diff)) for s in scores]
