"""Health of live Kubernetes objects, judged per kind the way Argo CD and Flux (kstatus) do.

The sync step waits on :func:`health_of` between sync waves, the service reports an
Application's health as :func:`worst` of its objects' healths, and the CLI prints both.
Everything here is a pure function of the live object (a plain JSON-like dict as the API
server returns it); nothing reads the cluster.

Rules, in the order they are applied:

* no object → ``Missing``; an object with ``metadata.deletionTimestamp`` → ``Progressing``
  ("pending deletion"), whatever its kind;
* built-in kinds with a rule of their own (matched by API group and kind):
  Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Job, CronJob,
  PersistentVolumeClaim, Service, Ingress, CustomResourceDefinition,
  HorizontalPodAutoscaler, APIService, Namespace — see each ``_<kind>`` function;
* every other object follows the kstatus conventions on ``status.conditions``:
  ``spec.suspend: true`` → ``Suspended``; ``status.observedGeneration`` behind
  ``metadata.generation`` → ``Progressing``; ``Stalled=True`` → ``Degraded``;
  ``Reconciling=True`` → ``Progressing``; ``Ready=True`` → ``Healthy``; ``Ready=False`` →
  ``Degraded``; ``Ready=Unknown`` → ``Progressing``; no such conditions (a ConfigMap, a
  Role, …) → ``Healthy``;
* a status of an unexpected shape → ``Unknown`` with the reason.

Where this differs from Argo CD, on purpose: a failing *init* container (image pull, crash
loop) also makes a Pod ``Degraded``; an HPA is ``Degraded`` on any ``ScalingActive`` metric
failure (``FailedGet*Metric``), not only resource metrics; Job conditions count only
when their status is ``True``; a Deployment or StatefulSet without ``spec.replicas``
counts as the API default, 1.

Ordering (:data:`SEVERITY`, as Argo CD's ``healthOrder``), best to worst:
``Healthy < Suspended < Progressing < Missing < Degraded < Unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeGuard


class HealthStatus(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


SEVERITY: tuple[HealthStatus, ...] = (
    HealthStatus.HEALTHY,
    HealthStatus.SUSPENDED,
    HealthStatus.PROGRESSING,
    HealthStatus.MISSING,
    HealthStatus.DEGRADED,
    HealthStatus.UNKNOWN,
)
"""Best to worst, as Argo CD orders health codes when it sums up an Application."""


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str = ""


def worst(healths: Iterable[Health]) -> Health:
    """The worst of ``healths`` by :data:`SEVERITY` (the first one among equals, so its
    message is kept); ``Healthy`` when there are none."""
    result = Health(HealthStatus.HEALTHY)
    rank = 0
    for health in healths:
        r = SEVERITY.index(health.status)
        if r > rank:
            result, rank = health, r
    return result


def health_of(obj: dict[str, Any] | None) -> Health:
    """The health of one live object (``None``: it is not in the cluster)."""
    if obj is None:
        return Health(HealthStatus.MISSING, "not found in the cluster")
    try:
        if _dict(obj.get("metadata")).get("deletionTimestamp"):
            return _progressing("pending deletion")
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        check = _CHECKS.get((group, str(obj.get("kind") or "")), _custom_resource)
        return check(obj)
    except (TypeError, ValueError, AttributeError) as e:
        return Health(HealthStatus.UNKNOWN, f"cannot assess health: {e}")


# --- helpers -------------------------------------------------------------------------------


def _healthy(message: str = "") -> Health:
    return Health(HealthStatus.HEALTHY, message)


def _progressing(message: str) -> Health:
    return Health(HealthStatus.PROGRESSING, message)


def _degraded(message: str) -> Health:
    return Health(HealthStatus.DEGRADED, message)


def _suspended(message: str) -> Health:
    return Health(HealthStatus.SUSPENDED, message)


def _dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _int(value: Any, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("spec"))


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("status"))


def _generation(obj: dict[str, Any]) -> int:
    return _int(_dict(obj.get("metadata")).get("generation"))


def _observed(obj: dict[str, Any]) -> int:
    return _int(_status(obj).get("observedGeneration"))


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``status.conditions`` by type (the last one wins if a type repeats)."""
    return {
        str(_dict(c).get("type")): _dict(c)
        for c in _list(_status(obj).get("conditions"))
        if _dict(c).get("type")
    }


def _is(condition: dict[str, Any] | None, status: str) -> TypeGuard[dict[str, Any]]:
    return condition is not None and condition.get("status") == status


def _why(condition: dict[str, Any], fallback: str = "") -> str:
    """A condition's message, else its reason, else ``fallback``."""
    return str(condition.get("message") or condition.get("reason") or fallback)


def _lb_ingress(obj: dict[str, Any]) -> list[Any]:
    return _list(_dict(_status(obj).get("loadBalancer")).get("ingress"))


# --- workloads -----------------------------------------------------------------------------


def _deployment(obj: dict[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if spec.get("paused") is True:
        return _suspended("deployment is paused")
    if _observed(obj) < _generation(obj):
        return _progressing("waiting for the deployment's new generation to be observed")
    progressing = _conditions(obj).get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return _degraded(_why(progressing, "deployment exceeded its progress deadline"))
    want = _int(spec.get("replicas"), 1)
    replicas = _int(status.get("replicas"))
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    if updated < want:
        return _progressing(f"rollout: {updated} of {want} replicas updated")
    if replicas > updated:
        return _progressing(f"rollout: {replicas - updated} old replicas pending termination")
    if available < updated:
        return _progressing(f"rollout: {available} of {updated} updated replicas available")
    return _healthy(f"{available} of {want} replicas available")


def _statefulset(obj: dict[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    observed = _observed(obj)
    if observed == 0 or observed < _generation(obj):
        return _progressing("waiting for the statefulset's new generation to be observed")
    want = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < want:
        return _progressing(f"waiting for pods to be ready: {ready} of {want}")
    strategy = _dict(spec.get("updateStrategy"))
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "OnDelete":
        return _healthy(f"{ready} pods ready (updates on delete)")
    partition = _int(_dict(strategy.get("rollingUpdate")).get("partition"))
    if partition > 0:
        updated = _int(status.get("updatedReplicas"))
        expected = max(want - partition, 0)
        if updated < expected:
            return _progressing(
                f"partitioned rollout: {updated} of {expected} pods updated (partition {partition})"
            )
        return _healthy(f"partitioned rollout complete: {updated} pods updated")
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if update and current != update:
        updated = _int(status.get("updatedReplicas"))
        return _progressing(f"rolling update: {updated} of {want} pods at revision {update}")
    return _healthy(f"{ready} pods ready at revision {current or update or '?'}")


def _daemonset(obj: dict[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _observed(obj) < _generation(obj):
        return _progressing("waiting for the daemonset's new generation to be observed")
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    if _dict(spec.get("updateStrategy")).get("type") == "OnDelete":
        return _healthy(f"{updated} of {desired} pods updated (updates on delete)")
    if updated < desired:
        return _progressing(f"rollout: {updated} of {desired} pods updated")
    available = _int(status.get("numberAvailable"))
    if available < desired:
        return _progressing(f"rollout: {available} of {desired} updated pods available")
    return _healthy(f"{available} of {desired} pods available")


def _replicaset(obj: dict[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if _observed(obj) < _generation(obj):
        return _progressing("waiting for the replicaset's new generation to be observed")
    failure = _conditions(obj).get("ReplicaFailure")
    if _is(failure, "True"):
        return _degraded(_why(failure, "replica failure"))
    want = _int(spec.get("replicas"), 1)
    available = _int(status.get("availableReplicas"))
    if available < want:
        return _progressing(f"{available} of {want} replicas available")
    return _healthy(f"{available} of {want} replicas available")


def _waiting_failure(container_status: dict[str, Any]) -> str | None:
    """Why a container is stuck waiting (a crash loop, an image that cannot be pulled, a
    config error…), or None. Argo CD's rule: a reason starting ``Err`` (``ErrImagePull``)
    or ending ``Error`` (``CreateContainerConfigError``) or ``BackOff`` (``CrashLoopBackOff``,
    ``ImagePullBackOff``)."""
    waiting = _dict(_dict(container_status.get("state")).get("waiting"))
    reason = str(waiting.get("reason") or "")
    if reason.startswith("Err") or reason.endswith(("Error", "BackOff")):
        name = container_status.get("name") or "?"
        detail = waiting.get("message")
        return f"container {name}: {reason}" + (f": {detail}" if detail else "")
    return None


def _pod(obj: dict[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    restart = spec.get("restartPolicy") or "Always"
    statuses = [_dict(s) for s in _list(status.get("containerStatuses"))]
    init_statuses = [_dict(s) for s in _list(status.get("initContainerStatuses"))]
    message = str(status.get("message") or "")
    # Only long-running pods: a run-once pod (a hook) stuck on its image may still recover.
    if restart == "Always":
        failures = [f for s in init_statuses + statuses if (f := _waiting_failure(s))]
        if failures:
            return _degraded("; ".join(failures))
    phase = status.get("phase")
    if phase == "Pending":
        return _progressing(message or "pod is pending")
    if phase == "Succeeded":
        return _healthy(message or "pod completed")
    if phase == "Failed":
        if message:
            return _degraded(message)
        exits = []
        for s in statuses:
            terminated = _dict(_dict(s.get("state")).get("terminated"))
            code = _int(terminated.get("exitCode"))
            if code:
                reason = terminated.get("reason")
                exits.append(
                    f"container {s.get('name') or '?'} exited with code {code}"
                    + (f" ({reason})" if reason else "")
                )
        return _degraded("; ".join(exits) or "pod failed")
    if phase == "Running":
        if restart != "Always":
            return _progressing("pod is running")
        if _is(_conditions(obj).get("Ready"), "True"):
            return _healthy(message or "pod is running and ready")
        for s in statuses:
            if _dict(s.get("lastState")).get("terminated"):
                return _degraded(f"container {s.get('name') or '?'} terminated and is not ready")
        return _progressing("pod is running but not ready")
    return Health(HealthStatus.UNKNOWN, message or f"pod phase {phase or 'not reported'}")


def _job(obj: dict[str, Any]) -> Health:
    conditions = _conditions(obj)
    failed, complete = conditions.get("Failed"), conditions.get("Complete")
    suspended = conditions.get("Suspended")
    if _is(failed, "True"):
        return _degraded(_why(failed, "job failed"))
    if _is(complete, "True"):
        return _healthy(_why(complete, "job completed"))
    if _is(suspended, "True") or (_spec(obj).get("suspend") is True and not suspended):
        return _suspended("job is suspended")
    return _progressing("job is running")


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _cronjob(obj: dict[str, Any]) -> Health:
    status = _status(obj)
    if _spec(obj).get("suspend") is True:
        return _suspended("cronjob is suspended")
    scheduled = _timestamp(status.get("lastScheduleTime"))
    succeeded = _timestamp(status.get("lastSuccessfulTime"))
    if scheduled is None:
        return _healthy("not scheduled yet")
    if succeeded is None or succeeded < scheduled:
        if _list(status.get("active")):
            return _progressing("the last scheduled job is running")
        return _degraded("the last scheduled job did not complete successfully")
    return _healthy("the last scheduled job succeeded")


# --- other built-in kinds ------------------------------------------------------------------


def _pvc(obj: dict[str, Any]) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return _healthy("bound")
    if phase == "Pending":
        return _progressing("waiting for a volume to be bound")
    if phase == "Lost":
        return _degraded("the bound volume is lost")
    return Health(HealthStatus.UNKNOWN, f"claim phase {phase or 'not reported'}")


def _service(obj: dict[str, Any]) -> Health:
    if _spec(obj).get("type") == "LoadBalancer" and not _lb_ingress(obj):
        return _progressing("waiting for a load balancer address")
    return _healthy()


def _ingress(obj: dict[str, Any]) -> Health:
    if not _lb_ingress(obj):
        return _progressing("waiting for a load balancer address")
    return _healthy()


def _crd(obj: dict[str, Any]) -> Health:
    conditions = _conditions(obj)
    names = conditions.get("NamesAccepted")
    if _is(names, "False"):
        return _degraded(_why(names, "names not accepted"))
    schema = conditions.get("NonStructuralSchema")
    if _is(schema, "True"):
        return _degraded(_why(schema, "the schema is not structural"))
    if _is(conditions.get("Terminating"), "True"):
        return _progressing("definition is terminating")
    if _is(conditions.get("Established"), "True"):
        return _healthy("established")
    return _progressing("waiting for the definition to be established")


_HPA_DEGRADED_REASONS = {
    "AbleToScale": ("FailedGetScale", "FailedUpdateScale"),
    "ScalingActive": ("InvalidSelector", "InvalidMetricSourceType"),
}
_HPA_HEALTHY_REASONS = {
    "AbleToScale": ("SucceededRescale",),
    "ScalingLimited": ("DesiredWithinRange", "TooFewReplicas", "TooManyReplicas"),
}


def _hpa(obj: dict[str, Any]) -> Health:
    conditions = [_dict(c) for c in _list(_status(obj).get("conditions"))]
    for c in conditions:
        kind, reason = str(c.get("type")), str(c.get("reason") or "")
        failed_metric = kind == "ScalingActive" and reason.startswith("FailedGet")
        if failed_metric or reason in _HPA_DEGRADED_REASONS.get(kind, ()):
            return _degraded(_why(c))
    for c in conditions:
        if str(c.get("reason") or "") in _HPA_HEALTHY_REASONS.get(str(c.get("type")), ()):
            return _healthy(_why(c))
    return _progressing("waiting to autoscale")


def _apiservice(obj: dict[str, Any]) -> Health:
    available = _conditions(obj).get("Available")
    if available is None:
        return _progressing("waiting to be processed")
    if _is(available, "True"):
        return _healthy(_why(available))
    return _progressing(_why(available, "not available"))


def _namespace(obj: dict[str, Any]) -> Health:
    if _status(obj).get("phase") == "Terminating":
        return _progressing("namespace is terminating")
    return _healthy()


# --- everything else: kstatus conventions --------------------------------------------------


def _custom_resource(obj: dict[str, Any]) -> Health:
    if _spec(obj).get("suspend") is True:
        return _suspended("suspended")
    status = _status(obj)
    if "observedGeneration" in status and _observed(obj) < _generation(obj):
        return _progressing("waiting for the new generation to be observed")
    conditions = _conditions(obj)
    stalled, reconciling, ready = (
        conditions.get("Stalled"),
        conditions.get("Reconciling"),
        conditions.get("Ready"),
    )
    if _is(stalled, "True"):
        return _degraded(_why(stalled, "stalled"))
    if _is(reconciling, "True"):
        return _progressing(_why(reconciling, "reconciling"))
    if ready is None:
        return _healthy()
    if _is(ready, "True"):
        return _healthy(_why(ready))
    if _is(ready, "False"):
        return _degraded(_why(ready, "not ready"))
    return _progressing(_why(ready, "readiness unknown"))


_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], Health]] = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("extensions", "Ingress"): _ingress,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
    ("", "Namespace"): _namespace,
}
