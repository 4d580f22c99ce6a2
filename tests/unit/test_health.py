"""gitops.health: one test per rule of health_of, and the ordering of worst."""

from __future__ import annotations

from typing import Any

from gitops.health import SEVERITY, Health, HealthStatus, health_of, worst

H = HealthStatus


def obj(
    api_version: str,
    kind: str,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    **meta: Any,
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": generation, **meta},
    }
    if spec is not None:
        o["spec"] = spec
    if status is not None:
        o["status"] = status
    return o


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


# --- general ---------------------------------------------------------------------------------


def test_an_object_not_in_the_cluster_is_missing() -> None:
    assert health_of(None).status is H.MISSING


def test_an_object_being_deleted_is_progressing_whatever_its_kind() -> None:
    cm = obj("v1", "ConfigMap", deletionTimestamp="2024-01-01T00:00:00Z")
    assert health_of(cm) == Health(H.PROGRESSING, "pending deletion")


def test_an_object_without_a_health_rule_or_conditions_is_healthy() -> None:
    assert health_of(obj("v1", "ConfigMap")).status is H.HEALTHY


def test_a_status_of_an_unexpected_shape_is_unknown_with_the_reason() -> None:
    d = obj("apps/v1", "Deployment", {"replicas": 1}, {"observedGeneration": "one"})
    health = health_of(d)
    assert health.status is H.UNKNOWN
    assert "cannot assess health" in health.message


# --- worst -----------------------------------------------------------------------------------


def test_severity_follows_argo_cd_from_healthy_to_unknown() -> None:
    assert SEVERITY == (H.HEALTHY, H.SUSPENDED, H.PROGRESSING, H.MISSING, H.DEGRADED, H.UNKNOWN)


def test_worst_of_nothing_is_healthy() -> None:
    assert worst([]) == Health(H.HEALTHY)


def test_worst_picks_the_most_severe_and_keeps_the_first_message_among_equals() -> None:
    healths = [
        Health(H.PROGRESSING, "a"),
        Health(H.DEGRADED, "first"),
        Health(H.MISSING, "m"),
        Health(H.DEGRADED, "second"),
        Health(H.SUSPENDED, "s"),
    ]
    assert worst(healths) == Health(H.DEGRADED, "first")


def test_missing_is_worse_than_progressing_and_better_than_degraded() -> None:
    assert worst([Health(H.MISSING), Health(H.PROGRESSING)]).status is H.MISSING
    assert worst([Health(H.MISSING), Health(H.DEGRADED)]).status is H.DEGRADED
    assert worst([Health(H.SUSPENDED), Health(H.HEALTHY)]).status is H.SUSPENDED
    assert worst([Health(H.UNKNOWN), Health(H.DEGRADED)]).status is H.UNKNOWN


# --- Deployment ------------------------------------------------------------------------------


def deployment(
    spec: dict[str, Any] | None = None, generation: int = 1, **status: Any
) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    full.update(status)
    return obj("apps/v1", "Deployment", {"replicas": 3, **(spec or {})}, full, generation)


def test_a_rolled_out_deployment_is_healthy() -> None:
    assert health_of(deployment()).status is H.HEALTHY


def test_a_paused_deployment_is_suspended() -> None:
    assert health_of(deployment({"paused": True}, updatedReplicas=0)).status is H.SUSPENDED


def test_a_deployment_whose_generation_is_not_observed_yet_is_progressing() -> None:
    assert health_of(deployment(generation=2)).status is H.PROGRESSING


def test_a_deployment_past_its_progress_deadline_is_degraded() -> None:
    c = cond("Progressing", "False", "ProgressDeadlineExceeded", "ReplicaSet web-1 timed out")
    health = health_of(deployment(updatedReplicas=1, conditions=[c]))
    assert health == Health(H.DEGRADED, "ReplicaSet web-1 timed out")


def test_a_deployment_with_replicas_not_yet_updated_is_progressing() -> None:
    health = health_of(deployment(updatedReplicas=1))
    assert health == Health(H.PROGRESSING, "rollout: 1 of 3 replicas updated")


def test_a_deployment_with_old_replicas_left_is_progressing() -> None:
    health = health_of(deployment(replicas=4))
    assert health == Health(H.PROGRESSING, "rollout: 1 old replicas pending termination")


def test_a_deployment_with_updated_replicas_not_yet_available_is_progressing() -> None:
    health = health_of(deployment(availableReplicas=2))
    assert health == Health(H.PROGRESSING, "rollout: 2 of 3 updated replicas available")


# --- StatefulSet -----------------------------------------------------------------------------


def statefulset(strategy: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": "web-1",
        "updateRevision": "web-1",
    }
    full.update(status)
    spec: dict[str, Any] = {"replicas": 3}
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return obj("apps/v1", "StatefulSet", spec, full)


def test_a_statefulset_with_all_pods_ready_at_the_update_revision_is_healthy() -> None:
    assert health_of(statefulset()).status is H.HEALTHY


def test_a_statefulset_never_observed_is_progressing() -> None:
    assert health_of(statefulset(observedGeneration=0)).status is H.PROGRESSING


def test_a_statefulset_with_pods_not_ready_is_progressing() -> None:
    health = health_of(statefulset(readyReplicas=2))
    assert health == Health(H.PROGRESSING, "waiting for pods to be ready: 2 of 3")


def test_a_statefulset_whose_current_revision_differs_from_the_update_revision_is_progressing() -> (
    None
):
    health = health_of(statefulset(updateRevision="web-2", updatedReplicas=1))
    assert health.status is H.PROGRESSING
    assert "web-2" in health.message


def test_a_statefulset_updated_on_delete_is_healthy_once_its_pods_are_ready() -> None:
    sts = statefulset({"type": "OnDelete"}, updateRevision="web-2")
    assert health_of(sts).status is H.HEALTHY


def test_a_partitioned_statefulset_is_progressing_until_the_pods_above_the_partition_update() -> (
    None
):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
    waiting = statefulset(strategy, updateRevision="web-2", updatedReplicas=1)
    done = statefulset(strategy, updateRevision="web-2", updatedReplicas=2)
    assert health_of(waiting).status is H.PROGRESSING
    assert health_of(done).status is H.HEALTHY


# --- DaemonSet -------------------------------------------------------------------------------


def daemonset(strategy: str = "RollingUpdate", **status: Any) -> dict[str, Any]:
    full = {
        "observedGeneration": 1,
        "desiredNumberScheduled": 2,
        "updatedNumberScheduled": 2,
        "numberAvailable": 2,
    }
    full.update(status)
    return obj("apps/v1", "DaemonSet", {"updateStrategy": {"type": strategy}}, full)


def test_a_daemonset_with_all_pods_updated_and_available_is_healthy() -> None:
    assert health_of(daemonset()).status is H.HEALTHY


def test_a_daemonset_whose_generation_is_not_observed_yet_is_progressing() -> None:
    assert health_of(daemonset(observedGeneration=0)).status is H.PROGRESSING


def test_a_daemonset_with_pods_not_yet_updated_is_progressing() -> None:
    health = health_of(daemonset(updatedNumberScheduled=1))
    assert health == Health(H.PROGRESSING, "rollout: 1 of 2 pods updated")


def test_a_daemonset_with_pods_not_yet_available_is_progressing() -> None:
    health = health_of(daemonset(numberAvailable=1))
    assert health == Health(H.PROGRESSING, "rollout: 1 of 2 updated pods available")


def test_a_daemonset_updated_on_delete_is_healthy_with_old_pods() -> None:
    assert health_of(daemonset("OnDelete", updatedNumberScheduled=0)).status is H.HEALTHY


# --- ReplicaSet ------------------------------------------------------------------------------


def replicaset(**status: Any) -> dict[str, Any]:
    full = {"observedGeneration": 1, "replicas": 2, "availableReplicas": 2}
    full.update(status)
    return obj("apps/v1", "ReplicaSet", {"replicas": 2}, full)


def test_a_replicaset_with_all_replicas_available_is_healthy() -> None:
    assert health_of(replicaset()).status is H.HEALTHY


def test_a_replicaset_with_replicas_not_available_is_progressing() -> None:
    assert health_of(replicaset(availableReplicas=1)).status is H.PROGRESSING


def test_a_replicaset_with_a_replica_failure_is_degraded() -> None:
    c = cond("ReplicaFailure", "True", "FailedCreate", "pods exceed quota")
    rs = replicaset(availableReplicas=0, conditions=[c])
    assert health_of(rs) == Health(H.DEGRADED, "pods exceed quota")


# --- Pod -------------------------------------------------------------------------------------


def pod(
    phase: str,
    restart: str = "Always",
    ready: bool = False,
    containers: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    full: dict[str, Any] = {"phase": phase, "containerStatuses": containers or []}
    full["conditions"] = [cond("Ready", "True" if ready else "False")]
    full.update(status)
    return obj("v1", "Pod", {"restartPolicy": restart, "containers": [{"name": "app"}]}, full)


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "app", "state": {"waiting": {"reason": reason, "message": message}}}


def test_a_running_and_ready_pod_is_healthy() -> None:
    assert health_of(pod("Running", ready=True)).status is H.HEALTHY


def test_a_running_pod_not_yet_ready_is_progressing() -> None:
    assert health_of(pod("Running")).status is H.PROGRESSING


def test_a_running_pod_not_ready_after_a_container_terminated_is_degraded() -> None:
    restarted = {"name": "app", "lastState": {"terminated": {"exitCode": 1}}}
    assert health_of(pod("Running", containers=[restarted])).status is H.DEGRADED


def test_a_pod_in_crash_loop_back_off_is_degraded() -> None:
    p = pod("Running", containers=[waiting("CrashLoopBackOff", "back-off 5m0s")])
    assert health_of(p) == Health(H.DEGRADED, "container app: CrashLoopBackOff: back-off 5m0s")


def test_a_pod_whose_image_cannot_be_pulled_is_degraded() -> None:
    assert health_of(pod("Pending", containers=[waiting("ImagePullBackOff")])).status is H.DEGRADED
    assert health_of(pod("Pending", containers=[waiting("ErrImagePull")])).status is H.DEGRADED


def test_a_pod_whose_init_container_crash_loops_is_degraded() -> None:
    p = pod("Pending", initContainerStatuses=[waiting("CrashLoopBackOff")])
    assert health_of(p).status is H.DEGRADED


def test_a_run_once_pod_waiting_on_its_image_is_still_progressing() -> None:
    p = pod("Pending", restart="Never", containers=[waiting("ImagePullBackOff")])
    assert health_of(p).status is H.PROGRESSING


def test_a_pending_pod_is_progressing() -> None:
    assert health_of(pod("Pending", containers=[waiting("ContainerCreating")])).status is (
        H.PROGRESSING
    )


def test_a_succeeded_pod_is_healthy() -> None:
    assert health_of(pod("Succeeded", restart="Never")).status is H.HEALTHY


def test_a_running_run_once_pod_is_progressing_even_when_ready() -> None:
    assert health_of(pod("Running", restart="OnFailure", ready=True)).status is H.PROGRESSING


def test_a_failed_pod_is_degraded_with_the_exit_code() -> None:
    exited = {"name": "app", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}
    p = pod("Failed", restart="Never", containers=[exited])
    assert health_of(p) == Health(H.DEGRADED, "container app exited with code 2 (Error)")


def test_a_pod_of_unknown_phase_is_unknown() -> None:
    assert health_of(pod("Unknown")).status is H.UNKNOWN


# --- Job and CronJob -------------------------------------------------------------------------


def job(*conditions: dict[str, Any], suspend: bool = False) -> dict[str, Any]:
    return obj("batch/v1", "Job", {"suspend": suspend}, {"conditions": list(conditions)})


def test_a_complete_job_is_healthy() -> None:
    assert health_of(job(cond("Complete", "True"))).status is H.HEALTHY


def test_a_failed_job_is_degraded_with_the_condition_message() -> None:
    failed = cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the backoff limit")
    assert health_of(job(failed)) == Health(H.DEGRADED, "Job has reached the backoff limit")


def test_a_suspended_job_is_suspended() -> None:
    assert health_of(job(cond("Suspended", "True"), suspend=True)).status is H.SUSPENDED
    assert health_of(job(suspend=True)).status is H.SUSPENDED


def test_a_running_job_is_progressing() -> None:
    assert health_of(job()).status is H.PROGRESSING
    assert health_of(job(cond("Suspended", "False"))).status is H.PROGRESSING


def cronjob(suspend: bool = False, **status: Any) -> dict[str, Any]:
    return obj("batch/v1", "CronJob", {"schedule": "* * * * *", "suspend": suspend}, status)


def test_a_suspended_cronjob_is_suspended() -> None:
    assert health_of(cronjob(suspend=True)).status is H.SUSPENDED


def test_a_cronjob_never_scheduled_is_healthy() -> None:
    assert health_of(cronjob()).status is H.HEALTHY


def test_a_cronjob_whose_last_run_succeeded_is_healthy() -> None:
    c = cronjob(lastScheduleTime="2024-01-01T10:00:00Z", lastSuccessfulTime="2024-01-01T10:00:07Z")
    assert health_of(c).status is H.HEALTHY


def test_a_cronjob_whose_last_run_did_not_succeed_is_degraded() -> None:
    c = cronjob(lastScheduleTime="2024-01-01T11:00:00Z", lastSuccessfulTime="2024-01-01T10:00:07Z")
    assert health_of(c).status is H.DEGRADED
    assert health_of(cronjob(lastScheduleTime="2024-01-01T11:00:00Z")).status is H.DEGRADED


def test_a_cronjob_whose_last_scheduled_job_is_still_running_is_progressing() -> None:
    c = cronjob(lastScheduleTime="2024-01-01T11:00:00Z", active=[{"name": "job-1"}])
    assert health_of(c).status is H.PROGRESSING


# --- PVC, Service, Ingress, Namespace --------------------------------------------------------


def pvc(phase: str) -> dict[str, Any]:
    return obj("v1", "PersistentVolumeClaim", {}, {"phase": phase})


def test_a_bound_claim_is_healthy() -> None:
    assert health_of(pvc("Bound")).status is H.HEALTHY


def test_a_pending_claim_is_progressing() -> None:
    assert health_of(pvc("Pending")).status is H.PROGRESSING


def test_a_lost_claim_is_degraded() -> None:
    assert health_of(pvc("Lost")).status is H.DEGRADED


def test_a_load_balancer_service_without_an_address_is_progressing() -> None:
    svc = obj("v1", "Service", {"type": "LoadBalancer"}, {"loadBalancer": {}})
    assert health_of(svc).status is H.PROGRESSING


def test_a_load_balancer_service_with_an_address_is_healthy() -> None:
    status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    svc = obj("v1", "Service", {"type": "LoadBalancer"}, status)
    assert health_of(svc).status is H.HEALTHY


def test_a_cluster_ip_service_is_healthy() -> None:
    assert health_of(obj("v1", "Service", {"type": "ClusterIP"}, {})).status is H.HEALTHY


def test_an_ingress_is_progressing_until_it_has_an_address() -> None:
    bare = obj("networking.k8s.io/v1", "Ingress", {}, {"loadBalancer": {}})
    addressed = obj(
        "networking.k8s.io/v1",
        "Ingress",
        {},
        {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}},
    )
    assert health_of(bare).status is H.PROGRESSING
    assert health_of(addressed).status is H.HEALTHY


def test_an_active_namespace_is_healthy_and_a_terminating_one_progressing() -> None:
    assert health_of(obj("v1", "Namespace", {}, {"phase": "Active"})).status is H.HEALTHY
    assert health_of(obj("v1", "Namespace", {}, {"phase": "Terminating"})).status is (H.PROGRESSING)


# --- CRD, HPA, APIService --------------------------------------------------------------------


def crd(*conditions: dict[str, Any]) -> dict[str, Any]:
    return obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        {},
        {"conditions": list(conditions)},
    )


def test_an_established_crd_is_healthy() -> None:
    established = crd(cond("NamesAccepted", "True"), cond("Established", "True"))
    assert health_of(established).status is H.HEALTHY


def test_a_crd_not_yet_established_is_progressing() -> None:
    assert health_of(crd(cond("Established", "False"))).status is H.PROGRESSING
    assert health_of(crd()).status is H.PROGRESSING


def test_a_crd_whose_names_are_not_accepted_is_degraded() -> None:
    conflict = cond("NamesAccepted", "False", "MultipleNamesNotAllowed", "plural conflicts")
    assert health_of(crd(conflict, cond("Established", "False"))) == Health(
        H.DEGRADED, "plural conflicts"
    )


def hpa(*conditions: dict[str, Any]) -> dict[str, Any]:
    return obj("autoscaling/v2", "HorizontalPodAutoscaler", {}, {"conditions": list(conditions)})


def test_an_hpa_within_its_range_is_healthy() -> None:
    steady = hpa(
        cond("AbleToScale", "True", "ReadyForNewScale"),
        cond("ScalingActive", "True", "ValidMetricFound"),
        cond("ScalingLimited", "False", "DesiredWithinRange"),
    )
    assert health_of(steady).status is H.HEALTHY


def test_an_hpa_that_cannot_get_its_metrics_is_degraded() -> None:
    failing = hpa(
        cond("AbleToScale", "True", "SucceededGetScale"),
        cond("ScalingActive", "False", "FailedGetResourceMetric", "missing cpu request"),
    )
    assert health_of(failing) == Health(H.DEGRADED, "missing cpu request")


def test_an_hpa_that_cannot_scale_its_target_is_degraded() -> None:
    failing = hpa(cond("AbleToScale", "False", "FailedGetScale", "no such deployment"))
    assert health_of(failing).status is H.DEGRADED


def test_an_hpa_without_conditions_is_progressing() -> None:
    assert health_of(hpa()) == Health(H.PROGRESSING, "waiting to autoscale")


def apiservice(*conditions: dict[str, Any]) -> dict[str, Any]:
    return obj("apiregistration.k8s.io/v1", "APIService", {}, {"conditions": list(conditions)})


def test_an_available_apiservice_is_healthy() -> None:
    assert health_of(apiservice(cond("Available", "True", "Passed"))).status is H.HEALTHY


def test_an_unavailable_apiservice_is_progressing() -> None:
    down = apiservice(cond("Available", "False", "MissingEndpoints", "no endpoints"))
    assert health_of(down) == Health(H.PROGRESSING, "no endpoints")
    assert health_of(apiservice()).status is H.PROGRESSING


# --- custom resources (kstatus) --------------------------------------------------------------


def custom(
    *conditions: dict[str, Any], observed: int | None = 1, generation: int = 1, **spec: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return obj("example.com/v1", "Widget", spec, status, generation)


def test_a_custom_resource_that_is_ready_is_healthy() -> None:
    assert health_of(custom(cond("Ready", "True", "Succeeded", "applied rev 1"))) == Health(
        H.HEALTHY, "applied rev 1"
    )


def test_a_custom_resource_that_is_not_ready_is_degraded() -> None:
    failed = custom(cond("Ready", "False", "ReconciliationFailed", "bad spec"))
    assert health_of(failed) == Health(H.DEGRADED, "bad spec")


def test_a_custom_resource_not_ready_while_reconciling_is_progressing() -> None:
    busy = custom(cond("Ready", "False", "Progressing"), cond("Reconciling", "True", "Progressing"))
    assert health_of(busy).status is H.PROGRESSING


def test_a_stalled_custom_resource_is_degraded() -> None:
    stalled = custom(cond("Stalled", "True", "InvalidSpec", "cannot parse"), cond("Ready", "True"))
    assert health_of(stalled) == Health(H.DEGRADED, "cannot parse")


def test_a_custom_resource_of_unknown_readiness_is_progressing() -> None:
    assert health_of(custom(cond("Ready", "Unknown"))).status is H.PROGRESSING


def test_a_custom_resource_whose_generation_is_not_observed_yet_is_progressing() -> None:
    stale = custom(cond("Ready", "True"), observed=1, generation=2)
    assert health_of(stale).status is H.PROGRESSING


def test_a_custom_resource_without_observed_generation_is_judged_by_its_conditions() -> None:
    assert health_of(custom(cond("Ready", "True"), observed=None, generation=5)).status is (
        H.HEALTHY
    )


def test_a_suspended_custom_resource_is_suspended() -> None:
    assert health_of(custom(cond("Ready", "False"), suspend=True)).status is H.SUSPENDED


def test_a_custom_resource_without_status_is_healthy() -> None:
    assert health_of(obj("example.com/v1", "Widget", {})).status is H.HEALTHY
