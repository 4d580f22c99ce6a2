"""One scheduling cycle — PreFilter, Filter, Score, select — over the cache, with
kube-scheduler's default profile: the filter order, score weights, the adaptive
``percentageOfNodesToScore`` sample starting where the previous cycle stopped, random
choice between equal best scores, and the unschedulable message
(``0/3 nodes are available: …``) built exactly as ``FitError.Error`` does.

Who calls it: :class:`runtime.scheduler.scheduler.Scheduler` (one :meth:`Framework.schedule`
per popped pod, then :mod:`runtime.scheduler.preemption` on a :class:`FitError`) and
the unit tests, with a :class:`~runtime.scheduler.nodeinfo.ClusterState` built from dicts.

Speed: the node-local plugins (everything but PodTopologySpread, InterPodAffinity and the
ReadWriteOncePod check) depend only on the pod's :attr:`PodInfo.local_key`, the node's
``version`` and the cache's ``global_version``; their verdict and raw scores are kept
per (pod signature, node) and reused until one of those changes — pods from one
template are filtered and scored against an unchanged node once, not once per pod.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.scheduler.nodeinfo import ClusterState, NodeInfo
from runtime.scheduler.plugins import (
    interpodaffinity,
    noderesources,
    nodes,
    podtopologyspread,
    volumes,
)
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.status import NO_NODES, NODE_AFFINITY_CONFLICT, UNRESOLVABLE, Status

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5

# Default profile weights.
W_TAINT = 3
W_NODE_AFFINITY = 2
W_FIT = 1
W_SPREAD = 2
W_INTER_POD = 2
W_BALANCED = 1
W_IMAGE = 1

# Memo entry: (node version, global version, status, base score, taint raw, affinity raw)
_Entry = tuple[int, int, Status | None, int, int, int]


@dataclass
class FrameworkOptions:
    """``percentage_of_nodes_to_score`` 0 means adaptive (50% at 100 nodes down to 5%,
    never fewer than 100 nodes); ``dynamic_resources`` adds the DynamicResources
    PostFilter note (``no new claims to deallocate``) kube-scheduler ≥ 1.34 puts in
    front of the preemption message."""

    percentage_of_nodes_to_score: int = 0
    dynamic_resources: bool = True
    memo_signatures: int = 128
    seed: int | None = None


class NoNodesAvailable(Exception):
    def __init__(self) -> None:
        super().__init__(NO_NODES)


class FitError(Exception):
    """No node fits: per-node statuses (and a status for the nodes never evaluated)."""

    def __init__(
        self,
        pod: PodInfo,
        num_all_nodes: int,
        statuses: dict[str, Status],
        absent: Status | None = None,
        prefilter: Status | None = None,
    ) -> None:
        super().__init__("no node fits")
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.statuses = statuses
        self.absent = absent
        self.prefilter = prefilter
        self.postfilter_msg = ""

    def status_of(self, name: str) -> Status | None:
        return self.statuses.get(name, self.absent)

    @property
    def plugins(self) -> set[str]:
        """The plugins that rejected the pod somewhere (the queue uses them to decide
        which cluster events may help)."""
        out = {s.plugin for s in self.statuses.values()}
        if self.absent is not None:
            out.add(self.absent.plugin)
        return out

    @property
    def message(self) -> str:
        return fit_error_message(
            self.num_all_nodes,
            self.statuses,
            self.absent,
            self.prefilter.message if self.prefilter else "",
            self.postfilter_msg,
        )

    def __str__(self) -> str:
        return self.message


def _section(text: str) -> str:
    return f" {text}" if text.endswith(".") else f" {text}."


def reason_histogram(
    num_all_nodes: int, statuses: Mapping[str, Status], absent: Status | None
) -> list[str]:
    """``"<count> <reason>"`` strings, sorted as strings (kube's sortReasonsHistogram)."""
    counts: Counter[str] = Counter()
    for status in statuses.values():
        for reason in status.reasons:
            counts[reason] += 1
    missing = num_all_nodes - len(statuses)
    if absent is not None and missing > 0:
        for reason in absent.reasons:
            counts[reason] += missing
    return sorted(f"{n} {reason}" for reason, n in counts.items())


def fit_error_message(
    num_all_nodes: int,
    statuses: Mapping[str, Status],
    absent: Status | None = None,
    prefilter_msg: str = "",
    postfilter_msg: str = "",
) -> str:
    """``0/N nodes are available: <PreFilter message | reason histogram>. <PostFilter>.``"""
    msg = f"0/{num_all_nodes} nodes are available:"
    if prefilter_msg:
        msg += _section(prefilter_msg)
    else:
        parts = reason_histogram(num_all_nodes, statuses, absent)
        if parts:
            msg += _section(", ".join(parts))
    if postfilter_msg:
        msg += _section(postfilter_msg)
    return msg


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int
    volumes: volumes.VolumeState | None = None


class CycleState:
    """What PreFilter computed for one pod, shared by Filter, Score and preemption."""

    __slots__ = ("absent", "affinity", "candidates", "spread", "volumes")

    def __init__(self) -> None:
        self.candidates: list[NodeInfo] = []
        self.absent: Status | None = None
        self.volumes: volumes.VolumeState | None = None
        self.spread: podtopologyspread.SpreadFilterState | None = None
        self.affinity: interpodaffinity.AffinityState | None = None


class Framework:
    def __init__(self, options: FrameworkOptions | None = None) -> None:
        self.options = options or FrameworkOptions()
        self.rng = random.Random(self.options.seed)
        self.next_start = 0
        self._memo: OrderedDict[bytes, dict[str, _Entry]] = OrderedDict()
        self.nominated: dict[str, list[PodInfo]] = {}

    # --- helpers ---------------------------------------------------------------------------
    def num_feasible_nodes_to_find(self, num_nodes: int) -> int:
        if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
            return num_nodes
        pct = self.options.percentage_of_nodes_to_score
        if pct <= 0:
            pct = max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        if pct >= 100:
            return num_nodes
        return max(num_nodes * pct // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def _memo_for(self, key: bytes) -> dict[str, _Entry]:
        memo = self._memo.get(key)
        if memo is None:
            memo = {}
            self._memo[key] = memo
            if len(self._memo) > self.options.memo_signatures:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
        return memo

    def clear_memo(self) -> None:
        self._memo.clear()

    # --- the node-local plugins ------------------------------------------------------------
    @staticmethod
    def evaluate_local(
        pod: PodInfo, ni: NodeInfo, state: ClusterState, vs: volumes.VolumeState | None
    ) -> tuple[Status | None, int, int, int]:
        """Filters NodeUnschedulable … VolumeZone (but the ReadWriteOncePod check) in
        order, then, for a fitting node, (base score, taint raw, node-affinity raw): the
        base is LeastAllocated + BalancedAllocation + ImageLocality, weighted."""
        status = (
            nodes.node_unschedulable(pod, ni)
            or nodes.node_name(pod, ni)
            or nodes.taint_toleration(pod, ni)
            or nodes.node_affinity(pod, ni)
            or nodes.node_ports(pod, ni)
            or noderesources.fit(pod, ni)
        )
        if status is None and vs is not None:
            status = (
                volumes.restrictions(ni, vs)
                or volumes.binding(pod, ni, vs, state)
                or volumes.zone(ni, vs)
            )
        if status is not None:
            return status, 0, 0, 0
        base = W_FIT * noderesources.least_allocated(pod, ni)
        if not pod.best_effort:
            base += W_BALANCED * noderesources.balanced_allocation(pod, ni)
        base += W_IMAGE * nodes.image_locality_score(pod, ni, state.image_nodes, len(state.order))
        taint = nodes.taint_score(pod, ni) if ni.taints else 0
        aff = nodes.node_affinity_score(pod, ni) if pod.preferred_node_terms else 0
        return None, base, taint, aff

    # --- PreFilter -------------------------------------------------------------------------
    def prefilter(self, pod: PodInfo, state: ClusterState) -> CycleState:
        """Raises :class:`FitError` when a PreFilter plugin rejects the pod everywhere."""
        all_nodes = state.order
        cs = CycleState()
        cs.candidates = all_nodes
        if pod.node_names is not None:
            if not pod.node_names:
                fail = Status(UNRESOLVABLE, "NodeAffinity", NODE_AFFINITY_CONFLICT)
                raise FitError(pod, len(all_nodes), {}, fail, fail)
            cs.candidates = [
                state.nodes[n]
                for n in sorted(pod.node_names)
                if n in state.nodes and state.nodes[n].node is not None
            ]
            cs.absent = Status(
                UNRESOLVABLE, "NodeAffinity", "node(s) didn't satisfy plugin(s) [NodeAffinity]"
            )
        volume_fail, cs.volumes = volumes.prefilter(pod, state)
        if volume_fail is not None:
            raise FitError(pod, len(all_nodes), {}, volume_fail, volume_fail)
        cs.spread = podtopologyspread.prefilter(pod, state)
        cs.affinity = interpodaffinity.prefilter(pod, state)
        return cs

    def filter_nonlocal(self, pod: PodInfo, ni: NodeInfo, cs: CycleState) -> Status | None:
        if cs.spread is not None:
            status = podtopologyspread.filter_node(pod, ni, cs.spread)
            if status is not None:
                return status
        if cs.affinity is not None:
            return interpodaffinity.filter_node(ni, cs.affinity)
        return None

    def filter_node(
        self, pod: PodInfo, ni: NodeInfo, state: ClusterState, cs: CycleState
    ) -> Status | None:
        """Every filter for one node (no memo) — used by preemption's dry runs."""
        status = self.evaluate_local(pod, ni, state, cs.volumes)[0]
        if (
            cs.volumes is not None
            and cs.volumes.rwop_conflict
            and (status is None or status.plugin in ("VolumeBinding", "VolumeZone"))
        ):
            status = volumes.S_RWOP
        return status or self.filter_nonlocal(pod, ni, cs)

    # --- the cycle -------------------------------------------------------------------------
    def schedule(self, pod: PodInfo, state: ClusterState) -> ScheduleResult:
        """Pick a node for ``pod``; raises :class:`FitError` or :class:`NoNodesAvailable`."""
        all_nodes = state.order
        n_all = len(all_nodes)
        if n_all == 0:
            raise NoNodesAvailable()
        cs = self.prefilter(pod, state)

        nominated = str((pod.pod.get("status") or {}).get("nominatedNodeName") or "")
        if nominated:
            ni = state.nodes.get(nominated)
            if (
                ni is not None
                and ni.node is not None
                and self._nominated_status(pod, ni, state, cs) is None
            ):
                return ScheduleResult(ni.name, 1, 1, cs.volumes)

        candidates = cs.candidates
        n = len(candidates)
        to_find = self.num_feasible_nodes_to_find(n)
        start = self.next_start % n if n else 0
        memo = self._memo_for(pod.local_key)
        gv = state.global_version
        rwop = cs.volumes is not None and cs.volumes.rwop_conflict
        nonlocal_filters = cs.spread is not None or cs.affinity is not None
        nominated_nodes = self.nominated
        vs = cs.volumes
        evaluate = self.evaluate_local

        feasible: list[tuple[NodeInfo, _Entry]] = []
        statuses: dict[str, Status] = {}
        best: NodeInfo | None = None
        best_score = -1
        ties = 0
        extra_scores = False  # some node has a PreferNoSchedule taint or preferred affinity
        found = 0
        random = self.rng.random
        memo_get = memo.get
        add_feasible = feasible.append
        ordered = candidates[start:] + candidates[:start] if start else candidates
        slow = bool(nominated_nodes) or rwop or nonlocal_filters
        for ni in ordered:
            if slow:
                entry: _Entry | None = None
                if (
                    nominated_nodes
                    and ni.name in nominated_nodes
                    and self._has_nominated(pod, ni.name)
                ):
                    status = self._nominated_status(pod, ni, state, cs)
                    if status is None:
                        entry = (0, 0, *evaluate(pod, ni, state, vs))
                else:
                    entry = memo_get(ni.name)
                    if entry is None or entry[0] != ni.version or entry[1] != gv:
                        entry = (ni.version, gv, *evaluate(pod, ni, state, vs))
                        memo[ni.name] = entry
                    status = entry[2]
                    if rwop and (
                        status is None or status.plugin in ("VolumeBinding", "VolumeZone")
                    ):
                        status = volumes.S_RWOP
                    if status is None and nonlocal_filters:
                        status = self.filter_nonlocal(pod, ni, cs)
                if status is not None:
                    statuses[ni.name] = status
                    continue
                assert entry is not None
            else:
                # The common case: every verdict comes from the per-node memo.
                entry = memo_get(ni.name)
                if entry is None or entry[0] != ni.version or entry[1] != gv:
                    entry = (ni.version, gv, *evaluate(pod, ni, state, vs))
                    memo[ni.name] = entry
                if entry[2] is not None:
                    statuses[ni.name] = entry[2]
                    continue
            add_feasible((ni, entry))
            score = entry[3]
            if score > best_score:
                best, best_score, ties = ni, score, 1
            elif score == best_score:
                ties += 1
                if random() * ties < 1.0:  # keep each tied node with probability 1/ties
                    best = ni
            if entry[4] or entry[5]:
                extra_scores = True
            found += 1
            if found >= to_find:
                break
        processed = len(feasible) + len(statuses)
        self.next_start = (self.next_start + processed) % n_all

        if not feasible:
            raise FitError(pod, n_all, statuses, cs.absent)
        evaluated = processed + (n_all - n)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0][0].name, evaluated, 1, vs)
        needs_full = extra_scores
        spread_st = None
        topo = None
        if not needs_full:
            if pod.spread_constraints or pod.owner is not None or state.services.get(pod.namespace):
                spread_st = podtopologyspread.prescore(pod, state, [ni for ni, _ in feasible])
            topo = interpodaffinity.prescore(pod, state)
            needs_full = spread_st is not None or topo is not None
        if not needs_full:
            assert best is not None
            return ScheduleResult(best.name, evaluated, len(feasible), vs)
        totals = self.score(pod, state, feasible, spread_st, topo, prescored=not extra_scores)
        return ScheduleResult(self.select(feasible, totals).name, evaluated, len(feasible), vs)

    def score(
        self,
        pod: PodInfo,
        state: ClusterState,
        feasible: Sequence[tuple[NodeInfo, _Entry]],
        spread_st: podtopologyspread.SpreadScoreState | None = None,
        topo: Mapping[str, Mapping[str, int]] | None = None,
        *,
        prescored: bool = False,
    ) -> list[int]:
        """Weighted, normalized total score of each feasible node."""
        nodes_only = [ni for ni, _ in feasible]
        if not prescored:
            spread_st = podtopologyspread.prescore(pod, state, nodes_only)
            topo = interpodaffinity.prescore(pod, state)
        totals = [e[3] for _, e in feasible]
        taint = nodes.default_normalize([e[4] for _, e in feasible], reverse=True)
        aff = nodes.default_normalize([e[5] for _, e in feasible], reverse=False)
        for i in range(len(totals)):
            totals[i] += W_TAINT * taint[i] + W_NODE_AFFINITY * aff[i]
        if spread_st is not None:
            raw = [podtopologyspread.score(pod, ni, spread_st) for ni in nodes_only]
            norm = podtopologyspread.normalize([ni.name for ni in nodes_only], raw, spread_st)
            for i, v in enumerate(norm):
                totals[i] += W_SPREAD * v
        if topo is not None:
            norm = interpodaffinity.normalize(
                [interpodaffinity.score(ni, topo) for ni in nodes_only]
            )
            for i, v in enumerate(norm):
                totals[i] += W_INTER_POD * v
        return totals

    def select(
        self, feasible: Sequence[tuple[NodeInfo, _Entry]], totals: Sequence[int]
    ) -> NodeInfo:
        """The best score; ties broken uniformly at random (reservoir sampling)."""
        best = feasible[0][0]
        best_score = totals[0]
        ties = 1
        for (ni, _), score in zip(feasible[1:], totals[1:]):
            if score > best_score:
                best, best_score, ties = ni, score, 1
            elif score == best_score:
                ties += 1
                if self.rng.random() * ties < 1.0:
                    best = ni
        return best

    # --- nominated pods (preemption) ----------------------------------------------------------
    def _has_nominated(self, pod: PodInfo, node: str) -> bool:
        return any(
            p.uid != pod.uid and p.priority >= pod.priority for p in self.nominated.get(node, ())
        )

    def _with_nominated(self, pod: PodInfo, ni: NodeInfo) -> NodeInfo:
        copy = copy_node(ni)
        for p in self.nominated.get(ni.name, ()):
            if p.uid != pod.uid and p.priority >= pod.priority and p.uid not in ni.pods:
                copy.add_pod(p)
        return copy

    def _nominated_status(
        self, pod: PodInfo, ni: NodeInfo, state: ClusterState, cs: CycleState
    ) -> Status | None:
        """Filters with the higher-or-equal priority pods nominated to the node counted
        on it, then (when they pass) without them, as kube-scheduler's two passes do."""
        if self._has_nominated(pod, ni.name):
            status = self.filter_node(pod, self._with_nominated(pod, ni), state, cs)
            if status is not None:
                return status
        return self.filter_node(pod, ni, state, cs)


def copy_node(ni: NodeInfo, without: set[str] | None = None) -> NodeInfo:
    """A NodeInfo for the same node holding the same pods (but ``without``), for dry runs."""
    copy = NodeInfo(ni.name)
    if ni.node is not None:
        copy.set_node(ni.node, condition_taints=False)
        copy.taints = ni.taints
    for uid, p in ni.pods.items():
        if without is None or uid not in without:
            copy.add_pod(p)
    return copy
