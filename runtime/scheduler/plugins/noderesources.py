"""NodeResourcesFit (filter, and its LeastAllocated score) and
NodeResourcesBalancedAllocation.

Who calls it: :mod:`runtime.scheduler.framework`. The filter compares the pod's requests
with allocatable minus what bound and assumed pods already request (``Too many pods``
against the ``pods`` allocatable); a request larger than the whole allocatable is
unresolvable (preemption cannot help), as in kube-scheduler ≥ 1.33. Scores use the
default resources (cpu and memory, weight 1 each): LeastAllocated on the non-zero
requests (100m/200Mi for containers without requests), BalancedAllocation on the real
requests, skipped for best-effort pods.
"""

from __future__ import annotations

from runtime.scheduler.nodeinfo import NodeInfo
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.status import (
    TOO_MANY_PODS,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    Status,
    insufficient,
)

MAX_NODE_SCORE = 100
_PLUGIN = "NodeResourcesFit"
S_TOO_MANY = Status(UNSCHEDULABLE, _PLUGIN, TOO_MANY_PODS)


def fit(pod: PodInfo, ni: NodeInfo) -> Status | None:
    """The pod's requests fit in what the node has left."""
    too_many = len(ni.pods) + 1 > ni.alloc_pods
    cpu, mem, eph, scalars = pod.cpu, pod.mem, pod.eph, pod.scalars
    if not cpu and not mem and not eph and not scalars:
        return S_TOO_MANY if too_many else None
    bad_cpu = cpu > 0 and cpu > ni.alloc_cpu - ni.req_cpu
    bad_mem = mem > 0 and mem > ni.alloc_mem - ni.req_mem
    bad_eph = eph > 0 and eph > ni.alloc_eph - ni.req_eph
    bad_scalar = False
    if scalars:
        for name, want in scalars:
            if want > ni.alloc_scalars.get(name, 0) - ni.req_scalars.get(name, 0):
                bad_scalar = True
                break
    if not (too_many or bad_cpu or bad_mem or bad_eph or bad_scalar):
        return None
    reasons: list[str] = []
    unresolvable = False
    if too_many:
        reasons.append(TOO_MANY_PODS)
    if bad_cpu:
        reasons.append(insufficient("cpu"))
        unresolvable |= cpu > ni.alloc_cpu
    if bad_mem:
        reasons.append(insufficient("memory"))
        unresolvable |= mem > ni.alloc_mem
    if bad_eph:
        reasons.append(insufficient("ephemeral-storage"))
        unresolvable |= eph > ni.alloc_eph
    for name, want in scalars:
        have = ni.alloc_scalars.get(name, 0)
        if want > have - ni.req_scalars.get(name, 0):
            reasons.append(insufficient(name))
            unresolvable |= want > have
    return Status(UNRESOLVABLE if unresolvable else UNSCHEDULABLE, _PLUGIN, *reasons)


def least_allocated(pod: PodInfo, ni: NodeInfo) -> int:
    """LeastAllocated: the mean (cpu, memory) share left free after placing the pod."""
    total = 0
    weights = 0
    cap = ni.alloc_cpu
    if cap:
        used = ni.nz_cpu + pod.nz_cpu
        total += (cap - used) * MAX_NODE_SCORE // cap if used <= cap else 0
        weights += 1
    cap = ni.alloc_mem
    if cap:
        used = ni.nz_mem + pod.nz_mem
        total += (cap - used) * MAX_NODE_SCORE // cap if used <= cap else 0
        weights += 1
    return total // weights if weights else 0


def balanced_allocation(pod: PodInfo, ni: NodeInfo) -> int:
    """BalancedAllocation: 100 * (1 - standard deviation of the cpu and memory shares)."""
    fractions = []
    if ni.alloc_cpu:
        fractions.append(min((ni.req_cpu + pod.cpu) / ni.alloc_cpu, 1.0))
    if ni.alloc_mem:
        fractions.append(min((ni.req_mem + pod.mem) / ni.alloc_mem, 1.0))
    std = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
    return int((1 - std) * MAX_NODE_SCORE)
