"""DefaultPreemption (the PostFilter run when no node fits): find nodes where evicting
lower-priority pods would let the pod fit, pick one as kube-scheduler does, and either
return the plan (node and victims) or the ``preemption: …`` part of the unschedulable
message (``N Preemption is not helpful for scheduling``, ``N No preemption victims found
for incoming pod``, or the filter reasons that remain even without the victims).

Who calls it: :class:`runtime.scheduler.scheduler.Scheduler` after a
:class:`~runtime.scheduler.framework.FitError`; it carries the plan out (DisruptionTarget
condition and deletion of each victim, ``nominatedNodeName`` on the preemptor).

Simplifications: PodDisruptionBudgets are not consulted, and the dry run re-checks the
node-local filters without the victims but keeps the cycle's pod-affinity and spreading
state (victims that only matter through inter-pod terms are not credited).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.scheduler.framework import (
    CycleState,
    FitError,
    Framework,
    copy_node,
    fit_error_message,
)
from runtime.scheduler.nodeinfo import ClusterState, NodeInfo
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.status import NO_VICTIMS, PREEMPTION_NOT_HELPFUL, UNRESOLVABLE, Status

MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100

S_NOT_HELPFUL = Status(UNRESOLVABLE, "DefaultPreemption", PREEMPTION_NOT_HELPFUL)
S_NO_VICTIMS = Status(UNRESOLVABLE, "DefaultPreemption", NO_VICTIMS)


@dataclass
class Plan:
    node: str
    victims: list[PodInfo] = field(default_factory=list)


def _start_time(p: PodInfo) -> str:
    return str((p.pod.get("status") or {}).get("startTime") or p.creation or "")


def _more_important_first(p: PodInfo) -> tuple[int, str]:
    return (-p.priority, _start_time(p))


def eligible(pod: PodInfo, state: ClusterState, err: FitError) -> str:
    """ "" when the pod may preempt, else kube-scheduler's reason."""
    if pod.preemption_policy == "Never":
        return "not eligible due to preemptionPolicy=Never."
    nominated = str((pod.pod.get("status") or {}).get("nominatedNodeName") or "")
    if nominated:
        status = err.status_of(nominated)
        ni = state.nodes.get(nominated)
        if (
            (status is None or status.resolvable)
            and ni is not None
            and any(p.deleting and p.priority < pod.priority for p in ni.pods.values())
        ):
            return "not eligible due to a terminating pod on the nominated node."
    return ""


def select_victims(
    fw: Framework, pod: PodInfo, ni: NodeInfo, state: ClusterState, cs: CycleState
) -> tuple[list[PodInfo], Status | None]:
    """The fewest lower-priority pods to evict from ``ni`` (most important reprieved
    first), or why evicting all of them would not be enough."""
    potential = [p for p in ni.pods.values() if p.priority < pod.priority]
    if not potential:
        return [], S_NO_VICTIMS
    reduced = copy_node(ni, without={p.uid for p in potential})
    status = fw.filter_node(pod, reduced, state, cs)
    if status is not None:
        return [], status
    victims: list[PodInfo] = []
    for p in sorted(potential, key=_more_important_first):
        reduced.add_pod(p)
        if fw.filter_node(pod, reduced, state, cs) is not None:
            reduced.remove_pod(p.uid)
            victims.append(p)
    if not victims:
        return [], Status(
            UNRESOLVABLE,
            "DefaultPreemption",
            f'expected at least one victim pod on node "{ni.name}"',
        )
    return victims, None


def pick(candidates: list[Plan]) -> Plan:
    """``pickOneNodeForPreemption`` without PDBs: lowest highest-priority victim, lowest
    priority sum, fewest victims, latest start among the most important victims."""

    def highest(c: Plan) -> int:
        return -max(v.priority for v in c.victims)

    def total(c: Plan) -> int:
        return -sum(v.priority + 2**31 for v in c.victims)

    def count(c: Plan) -> int:
        return -len(c.victims)

    for func in (highest, total, count):
        best = max(func(c) for c in candidates)
        candidates = [c for c in candidates if func(c) == best]
        if len(candidates) == 1:
            return candidates[0]

    def latest_start(c: Plan) -> str:
        top = max(v.priority for v in c.victims)
        return min(_start_time(v) for v in c.victims if v.priority == top)

    return max(candidates, key=latest_start)


def preempt(
    fw: Framework, pod: PodInfo, state: ClusterState, err: FitError
) -> tuple[str, Plan | None]:
    """(PostFilter message, plan). The message is empty when a plan was found."""
    reason = eligible(pod, state, err)
    if reason:
        return f"preemption: {reason}", None
    all_nodes = state.order
    potential = [
        ni for ni in all_nodes if (s := err.status_of(ni.name)) is not None and s.resolvable
    ]
    if not potential:
        return "preemption: " + fit_error_message(len(all_nodes), {}, S_NOT_HELPFUL), None
    try:
        cs = fw.prefilter(pod, state)
    except FitError:
        return "preemption: " + fit_error_message(len(all_nodes), {}, S_NOT_HELPFUL), None
    n = len(potential)
    wanted = min(n, max(n * MIN_CANDIDATE_NODES_PERCENTAGE // 100, MIN_CANDIDATE_NODES_ABSOLUTE))
    offset = fw.rng.randrange(n)
    statuses: dict[str, Status] = {}
    candidates: list[Plan] = []
    for i in range(n):
        ni = potential[(offset + i) % n]
        victims, status = select_victims(fw, pod, ni, state, cs)
        if status is None:
            candidates.append(Plan(ni.name, victims))
            if len(candidates) >= wanted:
                break
        else:
            statuses[ni.name] = status
    if not candidates:
        return "preemption: " + fit_error_message(len(all_nodes), statuses, S_NOT_HELPFUL), None
    return "", pick(candidates)


__all__ = ["Plan", "eligible", "pick", "preempt", "select_victims"]
