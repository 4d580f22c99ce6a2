"""Pod status as the kubelet reports it: container statuses (state, lastState, ready,
started, restartCount, imageID), phase, conditions, IPs, start time.

Who calls it: :mod:`runtime.kubelet.podsync` after each sync, with what the runtime
reported and what the sync decided (waiting reasons). Pure functions of their inputs;
the result is compared with the pod's current status so an unchanged status is never
written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.kubelet.cri import ContainerState, ContainerStatus


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Waiting:
    """Why a container is not running, as the sync decided."""

    reason: str
    message: str = ""


@dataclass
class ContainerView:
    """Everything the status needs about one spec container."""

    name: str
    image: str
    runtime: str
    current: ContainerStatus | None = None  # newest instance
    previous: ContainerStatus | None = None  # the one before it
    restart_count: int = 0
    #: The ID of a lost container the current one replaced (its end was not seen).
    lost_previous: str = ""
    waiting: Waiting | None = None
    ready: bool = False
    started: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always


@dataclass(frozen=True)
class KubeletFailure:
    """Why the kubelet ended a pod itself (phase Failed): ``reason`` and ``message`` go to
    the pod's status; ``disruption`` adds the ``DisruptionTarget`` condition (reason
    ``TerminationByKubelet``), as Kubernetes' kubelet does for evictions."""

    reason: str
    message: str
    disruption: bool = False


DEADLINE_EXCEEDED = KubeletFailure(
    "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
)


@dataclass
class PodView:
    pod: Mapping[str, Any]
    sandbox_ready: bool
    pod_ip: str
    host_ip: str
    init: list[ContainerView] = field(default_factory=list)
    regular: list[ContainerView] = field(default_factory=list)
    initialized: bool = False
    init_failed: bool = False
    failure: KubeletFailure | None = None  # the kubelet ended the pod (deadline, eviction)
    terminating: bool = False


def _terminated(c: ContainerStatus, runtime: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exitCode": c.exit_code if c.exit_code is not None else 0,
        "reason": c.reason or ("Completed" if (c.exit_code or 0) == 0 else "Error"),
        "startedAt": rfc3339(c.started_at),
        "finishedAt": rfc3339(c.finished_at),
        "containerID": f"{runtime}://{c.id}",
    }
    if c.message:
        out["message"] = c.message
    return out


def container_status(view: ContainerView) -> dict[str, Any]:
    cur = view.current
    state: dict[str, Any]
    if view.waiting is not None:
        waiting: dict[str, Any] = {"reason": view.waiting.reason}
        if view.waiting.message:
            waiting["message"] = view.waiting.message
        state = {"waiting": waiting}
    elif cur is None or cur.state == ContainerState.CREATED:
        state = {"waiting": {"reason": "ContainerCreating"}}
    elif cur.state == ContainerState.RUNNING:
        state = {"running": {"startedAt": rfc3339(cur.started_at)}}
    else:
        state = {"terminated": _terminated(cur, view.runtime)}
    last: dict[str, Any] = {}
    previous = view.previous
    if view.waiting is not None and cur is not None and cur.state == ContainerState.EXITED:
        previous = cur  # waiting to restart: the exited instance is the last state
    if previous is not None and previous.state == ContainerState.EXITED:
        last = {"terminated": _terminated(previous, view.runtime)}
    elif view.lost_previous:
        # Kubernetes' words for a container that vanished without a recorded exit.
        last = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "containerID": f"{view.runtime}://{view.lost_previous}",
            }
        }
    out: dict[str, Any] = {
        "name": view.name,
        "state": state,
        "lastState": last,
        "ready": view.ready,
        "restartCount": view.restart_count,
        "image": view.image,
        "imageID": cur.image_id if cur is not None else "",
        "started": view.started,
    }
    if cur is not None:
        out["containerID"] = f"{view.runtime}://{cur.id}"
    return out


def _count(views: Sequence[ContainerView]) -> tuple[int, int, int, int]:
    running = waiting = stopped = succeeded = 0
    for v in views:
        cur = v.current
        if v.waiting is not None:
            if (cur is not None and cur.state == ContainerState.EXITED) or v.previous is not None:
                stopped += 1
                if cur is not None and cur.exit_code == 0:
                    succeeded += 1
            else:
                waiting += 1
        elif cur is None or cur.state == ContainerState.CREATED:
            waiting += 1
        elif cur.state == ContainerState.RUNNING:
            running += 1
        elif cur.state == ContainerState.EXITED:
            stopped += 1
            if cur.exit_code == 0:
                succeeded += 1
        else:
            waiting += 1
    return running, waiting, stopped, succeeded


def phase(view: PodView) -> str:
    """The pod phase by kubelet's rules (getPhase)."""
    spec = view.pod.get("spec") or {}
    policy = spec.get("restartPolicy", "Always")
    if view.failure is not None or view.init_failed:
        return "Failed"
    if not view.initialized:
        return "Pending"
    running, waiting, stopped, succeeded = _count(view.regular)
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if stopped == succeeded and (policy != "Always" or view.terminating):
            return "Succeeded"
        if policy == "Always" and not view.terminating:
            return "Running"
        if policy == "Never" or view.terminating:
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def _condition(
    kind: str,
    ok: bool,
    old: Mapping[str, Mapping[str, Any]],
    now: str,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    status = "True" if ok else "False"
    previous = old.get(kind) or {}
    when = previous.get("lastTransitionTime") if previous.get("status") == status else now
    out: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": when or now,
    }
    if not ok and reason:
        out["reason"] = reason
        if message:
            out["message"] = message
    return out


def pod_status(view: PodView, *, now: float) -> dict[str, Any]:
    """The pod's new ``status``, keeping what others own (PodScheduled, nominatedNodeName)."""
    old_status = view.pod.get("status") or {}
    old_conditions = {str(c.get("type")): c for c in old_status.get("conditions") or []}
    stamp = rfc3339(now) or ""
    regular = [container_status(v) for v in view.regular]
    init = [container_status(v) for v in view.init]
    not_ready = [v.name for v in view.regular if not v.ready]
    pending_init = [v.name for v in view.init if not _init_done(v)]
    containers_ready = not not_ready and bool(view.regular)
    gates = [
        g.get("conditionType") for g in (view.pod.get("spec") or {}).get("readinessGates") or []
    ]
    gates_ok = all((old_conditions.get(str(g)) or {}).get("status") == "True" for g in gates)
    the_phase = phase(view)
    terminal = the_phase in ("Succeeded", "Failed")
    conditions = [
        _condition("PodReadyToStartContainers", view.sandbox_ready, old_conditions, stamp),
        _condition(
            "Initialized",
            view.initialized,
            old_conditions,
            stamp,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        ),
        _condition(
            "Ready",
            containers_ready and gates_ok and not terminal,
            old_conditions,
            stamp,
            "PodCompleted" if terminal else "ContainersNotReady",
            "" if terminal else f"containers with unready status: [{' '.join(not_ready)}]",
        ),
        _condition(
            "ContainersReady",
            containers_ready and not terminal,
            old_conditions,
            stamp,
            "PodCompleted" if terminal else "ContainersNotReady",
            "" if terminal else f"containers with unready status: [{' '.join(not_ready)}]",
        ),
    ]
    if "PodScheduled" in old_conditions:
        conditions.append(dict(old_conditions["PodScheduled"]))
    if view.failure is not None and view.failure.disruption:
        disruption = _condition("DisruptionTarget", True, old_conditions, stamp)
        disruption["reason"] = "TerminationByKubelet"
        disruption["message"] = view.failure.message
        conditions.append(disruption)
    for kind, cond in old_conditions.items():  # readiness gates and others' conditions
        if kind not in {c["type"] for c in conditions}:
            conditions.append(dict(cond))
    status: dict[str, Any] = {
        "phase": the_phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": old_status.get("startTime") or stamp,
        "containerStatuses": regular,
    }
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if init:
        status["initContainerStatuses"] = init
    if view.failure is not None:
        status["reason"] = view.failure.reason
        status["message"] = view.failure.message
    for key in ("qosClass", "nominatedNodeName"):
        if key in old_status:
            status[key] = old_status[key]
    return status


def _init_done(view: ContainerView) -> bool:
    cur = view.current
    if view.sidecar:
        return cur is not None and cur.state == ContainerState.RUNNING and view.started
    return cur is not None and cur.state == ContainerState.EXITED and cur.exit_code == 0


def same_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when writing ``new`` would change nothing a client cares about."""
    return dict(old) == dict(new)
