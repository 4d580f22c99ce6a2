"""Kubernetes' defaults, kind by kind, as ``runtime.api.admission.default`` applies them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runtime.api import admission
from runtime.api.registry import Registry

REGISTRY = Registry()


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    return obj


def pod(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", **meta},
        "spec": spec or {"containers": [{"name": "c", "image": "nginx"}]},
    }


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels or {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


# --- Deployment, ReplicaSet, DaemonSet, StatefulSet -------------------------------------
def test_a_deployment_without_strategy_rolls_out_25_percent_at_a_time_and_keeps_10_revisions() -> (
    None
):
    dep = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template()},
        }
    )
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_a_recreate_deployment_gets_no_rolling_update_parameters() -> None:
    dep = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"strategy": {"type": "Recreate"}, "template": template()},
        }
    )
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_a_deployment_keeps_the_rolling_update_values_it_was_given() -> None:
    dep = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 0,
                "strategy": {"rollingUpdate": {"maxSurge": 0}},
                "template": template(),
            },
        }
    )
    assert dep["spec"]["replicas"] == 0
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": "25%"}


def test_a_replica_set_defaults_to_one_replica() -> None:
    rs = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r", "namespace": "d"},
            "spec": {"template": template()},
        }
    )
    assert rs["spec"]["replicas"] == 1


def test_a_daemon_set_updates_one_node_at_a_time_without_surge() -> None:
    ds = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "d"},
            "spec": {"template": template()},
        }
    )
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert ds["spec"]["revisionHistoryLimit"] == 10


def test_a_stateful_set_defaults_ordered_rollout_partition_zero_and_retained_claims() -> None:
    sts = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "d"},
            "spec": {
                "template": template(),
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
                ],
            },
        }
    )
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}


def test_an_on_delete_stateful_set_gets_no_rolling_update_block() -> None:
    sts = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "d"},
            "spec": {"updateStrategy": {"type": "OnDelete"}, "template": template()},
        }
    )
    assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}


# --- Pod ---------------------------------------------------------------------------------
def test_a_pod_gets_the_pod_spec_defaults() -> None:
    spec = defaulted(pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True


def test_a_container_gets_termination_message_defaults_and_tcp_ports() -> None:
    p = pod(
        {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
    )
    c = defaulted(p)["spec"]["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("docker.io/library/nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "b" * 64, "Always"),
        ("localhost:5000/team/app", "Always"),
        ("localhost:5000/team/app:v1", "IfNotPresent"),
    ],
)
def test_the_image_pull_policy_is_always_only_for_latest_or_untagged_images(
    image: str, policy: str
) -> None:
    c = defaulted(pod({"containers": [{"name": "c", "image": image}]}))["spec"]["containers"][0]
    assert c["imagePullPolicy"] == policy


def test_an_explicit_image_pull_policy_is_kept() -> None:
    c = defaulted(
        pod({"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]})
    )["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "Never"


def test_probes_get_timing_defaults_and_http_get_gets_path_and_scheme() -> None:
    c = defaulted(
        pod(
            {
                "containers": [
                    {
                        "name": "c",
                        "image": "nginx",
                        "livenessProbe": {"httpGet": {"port": 80}},
                        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 3},
                        "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
                    }
                ]
            }
        )
    )["spec"]["containers"][0]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 3
    assert c["readinessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}


def test_a_pod_copies_limits_into_missing_requests_but_a_template_does_not() -> None:
    resources = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    p = defaulted(
        pod(
            {"containers": [{"name": "c", "image": "nginx", "resources": copy.deepcopy(resources)}]}
        )
    )
    assert p["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    rs = defaulted(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r", "namespace": "d"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "c", "image": "x", "resources": copy.deepcopy(resources)}
                        ]
                    }
                }
            },
        }
    )
    assert rs["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m"
    }


def test_volume_sources_get_their_defaults_and_a_volume_without_source_is_an_empty_dir() -> None:
    p = defaulted(
        pod(
            {
                "containers": [{"name": "c", "image": "nginx"}],
                "volumes": [
                    {"name": "scratch"},
                    {"name": "s", "secret": {"secretName": "x"}},
                    {"name": "cm", "configMap": {"name": "x", "defaultMode": 256}},
                    {"name": "h", "hostPath": {"path": "/data"}},
                    {
                        "name": "d",
                        "downwardAPI": {
                            "items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]
                        },
                    },
                    {
                        "name": "t",
                        "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                    },
                ],
            }
        )
    )
    volumes = {v["name"]: v for v in p["spec"]["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["s"]["secret"]["defaultMode"] == 420
    assert volumes["cm"]["configMap"]["defaultMode"] == 256
    assert volumes["h"]["hostPath"]["type"] == ""
    assert volumes["d"]["downwardAPI"]["defaultMode"] == 420
    assert volumes["d"]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"
    assert volumes["t"]["projected"] == {
        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
        "defaultMode": 420,
    }


def test_a_host_network_pod_exposes_container_ports_on_the_host() -> None:
    p = defaulted(
        pod(
            {
                "hostNetwork": True,
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}],
            }
        )
    )
    assert p["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


def test_a_pod_gets_what_the_default_admission_plugins_add() -> None:
    spec = defaulted(pod())["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]


def test_a_pod_that_tolerates_everything_gets_no_default_tolerations() -> None:
    p = pod({"containers": [{"name": "c", "image": "x"}], "tolerations": [{"operator": "Exists"}]})
    assert defaulted(p)["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_a_system_critical_pod_gets_its_class_priority() -> None:
    p = pod(
        {"containers": [{"name": "c", "image": "x"}], "priorityClassName": "system-node-critical"}
    )
    assert defaulted(p)["spec"]["priority"] == 2000001000


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
    ],
)
def test_a_new_pod_is_pending_with_its_qos_class(resources: dict[str, Any], qos: str) -> None:
    p = defaulted(pod({"containers": [{"name": "c", "image": "x", "resources": resources}]}))
    assert p["status"] == {"phase": "Pending", "qosClass": qos}


def test_a_stored_pod_keeps_its_status() -> None:
    p = pod(resourceVersion="7")
    p["status"] = {"phase": "Running", "qosClass": "Burstable", "podIP": "10.0.0.7"}
    assert defaulted(p)["status"] == {
        "phase": "Running",
        "qosClass": "Burstable",
        "podIP": "10.0.0.7",
    }


# --- Job, CronJob -------------------------------------------------------------------------
def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "1234-uid"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}
            },
            **spec,
        },
    }


def test_a_job_defaults_to_one_completion_six_retries_non_indexed_and_not_suspended() -> None:
    spec = defaulted(job())["spec"]
    assert spec["completions"] == 1
    assert spec["parallelism"] == 1
    assert spec["backoffLimit"] == 6
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"


def test_a_job_with_only_parallelism_has_no_completions() -> None:
    spec = defaulted(job(parallelism=3))["spec"]
    assert spec["parallelism"] == 3
    assert "completions" not in spec


def test_a_job_selector_and_pod_labels_are_generated_from_its_uid() -> None:
    j = defaulted(job())
    expected = {
        "batch.kubernetes.io/controller-uid": "1234-uid",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "1234-uid",
        "job-name": "pi",
    }
    assert j["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": "1234-uid"}
    }
    assert j["spec"]["template"]["metadata"]["labels"] == expected
    assert j["metadata"]["labels"] == expected


def test_a_job_keeps_its_own_labels_and_a_manual_selector_is_not_generated() -> None:
    j = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    j["metadata"]["labels"] = {"team": "a"}
    j["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    spec = defaulted(j)["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "pi"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "pi"}
    assert j["metadata"]["labels"] == {"team": "a"}


def test_a_job_with_a_pod_failure_policy_replaces_only_failed_pods_and_matches_true_conditions() -> (
    None
):
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    spec = defaulted(job(podFailurePolicy=policy))["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_a_job_with_a_per_index_backoff_limit_has_no_global_limit() -> None:
    spec = defaulted(job(completionMode="Indexed", completions=3, backoffLimitPerIndex=1))["spec"]
    assert spec["backoffLimit"] == 2147483647


def test_a_cron_job_allows_concurrency_and_keeps_three_successful_and_one_failed_job() -> None:
    cj = defaulted(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c", "namespace": "d"},
            "spec": {
                "schedule": "@hourly",
                "jobTemplate": {
                    "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}
                },
            },
        }
    )
    spec = cj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    job_spec = spec["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_spec
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


# --- Service, Endpoints, EndpointSlice -------------------------------------------------
def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "d"},
        "spec": spec,
    }


def test_a_service_defaults_to_cluster_ip_with_tcp_ports_targeting_the_same_port() -> None:
    spec = defaulted(service(ports=[{"port": 80}, {"port": 443, "targetPort": "https"}]))["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 443, "targetPort": "https", "protocol": "TCP"},
    ]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert "clusterIP" not in spec
    assert "externalTrafficPolicy" not in spec


def test_externally_reachable_services_route_external_traffic_cluster_wide() -> None:
    node_port = defaulted(service(type="NodePort", ports=[{"port": 80}]))["spec"]
    balancer = defaulted(service(type="LoadBalancer", ports=[{"port": 80}]))["spec"]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert balancer["externalTrafficPolicy"] == "Cluster"
    assert balancer["allocateLoadBalancerNodePorts"] is True
    assert "allocateLoadBalancerNodePorts" not in node_port


def test_client_ip_affinity_sticks_for_three_hours() -> None:
    spec = defaulted(service(sessionAffinity="ClientIP", ports=[{"port": 80}]))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_a_given_cluster_ip_is_mirrored_into_cluster_ips_and_sets_the_family() -> None:
    spec = defaulted(service(clusterIP="fd00::10", ports=[{"port": 80}]))["spec"]
    assert spec["clusterIPs"] == ["fd00::10"]
    assert spec["ipFamilies"] == ["IPv6"]


def test_an_external_name_service_has_no_ip_families() -> None:
    spec = defaulted(service(type="ExternalName", externalName="example.com"))["spec"]
    assert (
        "ipFamilies" not in spec
        and "ipFamilyPolicy" not in spec
        and "internalTrafficPolicy" not in spec
    )


def test_endpoints_and_endpoint_slice_ports_default_to_tcp() -> None:
    ep = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e", "namespace": "d"},
            "subsets": [{"ports": [{"port": 80}]}],
        }
    )
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    slice_ = defaulted(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "e", "namespace": "d"},
            "addressType": "IPv4",
            "endpoints": [],
            "ports": [{"port": 80}],
        }
    )
    assert slice_["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


# --- storage, config, namespace, node --------------------------------------------------
def test_a_persistent_volume_is_retained_and_a_claim_uses_a_filesystem() -> None:
    pv = defaulted(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv"},
            "spec": {"hostPath": {"path": "/x"}},
        }
    )
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["hostPath"]["type"] == ""
    assert pv["status"] == {"phase": "Pending"}
    pvc = defaulted(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "d"},
            "spec": {},
        }
    )
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    assert pvc["status"] == {"phase": "Pending"}


def test_a_storage_class_deletes_volumes_and_binds_immediately() -> None:
    sc = defaulted(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "s"},
            "provisioner": "x.io/y",
        }
    )
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")


def test_a_secret_is_opaque_and_its_string_data_is_merged_into_data() -> None:
    secret = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "d"},
            "data": {"user": "YWRtaW4=", "password": "b2xk"},
            "stringData": {"password": "s3cr3t"},
        }
    )
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"user": "YWRtaW4=", "password": "czNjcjN0"}
    assert "stringData" not in secret


def test_a_new_namespace_is_active_finalized_by_kubernetes_and_labelled_with_its_name() -> None:
    ns = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "shop"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_a_new_namespace_keeps_its_finalizers_and_adds_kubernetes() -> None:
    ns = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "a"},
            "spec": {"finalizers": ["example.com/x"]},
        }
    )
    assert ns["spec"]["finalizers"] == ["example.com/x", "kubernetes"]


def test_a_terminating_namespace_does_not_get_its_finalizer_back() -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "a",
            "resourceVersion": "9",
            "deletionTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {"finalizers": []},
        "status": {"phase": "Terminating"},
    }
    assert defaulted(ns)["spec"] == {"finalizers": []}


def test_a_node_without_allocatable_can_allocate_its_whole_capacity() -> None:
    node = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4"}},
        }
    )
    assert node["status"]["allocatable"] == {"cpu": "4"}


def test_a_replication_controller_selects_and_labels_from_its_template() -> None:
    rc = defaulted(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "r", "namespace": "d"},
            "spec": {"template": template({"app": "r"})},
        }
    )
    assert rc["spec"]["selector"] == {"app": "r"}
    assert rc["metadata"]["labels"] == {"app": "r"}
    assert rc["spec"]["replicas"] == 1


# --- HorizontalPodAutoscaler -----------------------------------------------------------
def hpa(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "d"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            **spec,
        },
    }


def test_an_autoscaler_without_metrics_targets_80_percent_cpu_from_one_replica() -> None:
    spec = defaulted(hpa())["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "behavior" not in spec


def test_a_given_autoscaling_behavior_is_completed_with_the_default_scaling_rules() -> None:
    spec = defaulted(hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))["spec"]
    assert spec["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }
    assert spec["behavior"]["scaleDown"] == {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        "stabilizationWindowSeconds": 60,
    }


def test_the_scale_down_window_is_left_to_the_controllers_five_minute_default() -> None:
    spec = defaulted(hpa(behavior={"scaleUp": {"selectPolicy": "Min"}}))["spec"]
    assert "stabilizationWindowSeconds" not in spec["behavior"]["scaleDown"]
    assert spec["behavior"]["scaleUp"]["selectPolicy"] == "Min"


# --- kinds without defaults --------------------------------------------------------------
@pytest.mark.parametrize(
    "obj",
    [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "r", "namespace": "d"},
            "rules": [],
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "n", "namespace": "d"},
            "spec": {},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}},
    ],
)
def test_kinds_the_runtime_does_not_act_on_are_left_untouched(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    assert defaulted(obj) == before
