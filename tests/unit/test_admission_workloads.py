"""Validation of Pods and the workload controllers, including what may change on update."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runtime.api import admission
from runtime.api.admission.batch import ScheduleError, parse_schedule
from runtime.api.registry import Registry

REGISTRY = Registry()
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def admitted(obj: dict[str, Any]) -> dict[str, Any]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    return obj


def errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    if old is not None:
        admission.default(info, old)
    return [c.render() for c in admission.validate(info, obj, old)]


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "d"},
        "spec": spec,
    }


def containers(**container: Any) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "nginx:1", **container}]}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels or {"app": "x"}}, "spec": {**containers(), **spec}}


# --- Pod ---------------------------------------------------------------------------------
def test_a_pod_needs_containers_with_a_name_and_an_image() -> None:
    assert errors(pod({"containers": []})) == ["spec.containers: Required value"]
    assert errors(pod({"containers": [{"name": "Web_1"}]})) == [
        f'spec.containers[0].name: Invalid value: "Web_1": {LABEL_MSG}',
        "spec.containers[0].image: Required value",
    ]


def test_container_names_are_unique_across_containers_and_init_containers() -> None:
    spec = {
        "containers": [{"name": "a", "image": "x"}],
        "initContainers": [{"name": "a", "image": "x"}],
    }
    assert errors(pod(spec)) == ['spec.initContainers[0].name: Duplicate value: "a"']


def test_container_ports_need_a_valid_number_protocol_and_unique_name() -> None:
    ports = [
        {"name": "http", "containerPort": 0, "protocol": "FTP"},
        {"name": "http", "containerPort": 70000},
    ]
    assert errors(pod(containers(ports=ports))) == [
        "spec.containers[0].ports[0].containerPort: Required value",
        'spec.containers[0].ports[0].protocol: Unsupported value: "FTP": supported values: "SCTP", "TCP", "UDP"',
        'spec.containers[0].ports[1].name: Duplicate value: "http"',
        "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ]


def test_two_containers_may_not_claim_the_same_host_port() -> None:
    spec = {
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]},
        ]
    }
    assert errors(pod(spec)) == [
        'spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"'
    ]


def test_environment_variables_need_a_name_and_exactly_one_source() -> None:
    env = [
        {"name": ""},
        {"name": "A=B"},
        {"name": "X", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "Y", "valueFrom": {}},
        {"name": "Z", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
    ]
    assert errors(pod(containers(env=env))) == [
        "spec.containers[0].env[0].name: Required value",
        'spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment variable name must '
        "consist only of printable ASCII characters other than '='",
        'spec.containers[0].env[2].valueFrom: Invalid value: "": may not be specified when `value` is not empty',
        'spec.containers[0].env[3].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        'spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": '
        'supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
        '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"',
    ]


def test_volume_mounts_must_name_a_declared_volume_and_unique_paths() -> None:
    spec = {
        "containers": [
            {
                "name": "c",
                "image": "x",
                "volumeMounts": [
                    {"name": "data", "mountPath": "/d"},
                    {"name": "nope", "mountPath": "/d"},
                ],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    assert errors(pod(spec)) == [
        'spec.containers[0].volumeMounts[1].name: Not found: "nope"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique',
    ]


def test_a_volume_has_exactly_one_source_and_a_unique_label_name() -> None:
    spec = {
        **containers(),
        "volumes": [
            {"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "b", "secret": {}},
            {"name": "c", "configMap": {"name": "c"}},
            {"name": "c", "emptyDir": {}},
        ],
    }
    assert errors(pod(spec)) == [
        "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[1].secret.secretName: Required value",
        'spec.volumes[3].name: Duplicate value: "c"',
    ]


def test_a_sub_path_may_not_climb_out_of_its_volume() -> None:
    spec = {
        "containers": [
            {
                "name": "c",
                "image": "x",
                "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "../etc"}],
            }
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    }
    assert errors(pod(spec)) == [
        "spec.containers[0].volumeMounts.subPath: Invalid value: \"../etc\": must not contain '..'"
    ]


def test_requests_may_not_exceed_limits_and_resource_names_must_be_known() -> None:
    resources = {"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1", "gpu": "1"}}
    assert errors(pod(containers(resources=resources))) == [
        'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
        'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        'spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater than or equal to 0',
    ]


def test_extended_resources_are_whole_numbers_requested_exactly_at_their_limit() -> None:
    resources = {"limits": {"example.com/gpu": "1"}, "requests": {"example.com/gpu": "2"}}
    assert errors(pod(containers(resources=resources))) == [
        'spec.containers[0].resources.requests: Invalid value: "2": must be equal to example.com/gpu limit of 1'
    ]
    fraction = {"limits": {"example.com/gpu": "500m"}}
    assert errors(pod(containers(resources=fraction))) == [
        'spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "500m": must be an integer',
        'spec.containers[0].resources.requests[example.com/gpu]: Invalid value: "500m": must be an integer',
    ]


def test_probes_need_one_handler_and_liveness_must_succeed_once() -> None:
    spec = containers(
        livenessProbe={"httpGet": {"port": "metrics-port-too-long"}, "successThreshold": 2},
        readinessProbe={},
    )
    assert errors(pod(spec)) == [
        'spec.containers[0].livenessProbe.httpGet.port: Invalid value: "metrics-port-too-long": must be no more than 15 characters',
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ]


def test_a_probe_may_not_mix_handlers() -> None:
    spec = containers(readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}})
    assert errors(pod(spec)) == [
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"
    ]


def test_plain_init_containers_may_not_have_probes_but_sidecars_may() -> None:
    spec = {
        **containers(),
        "initContainers": [
            {"name": "init", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}},
            {
                "name": "sidecar",
                "image": "x",
                "restartPolicy": "Always",
                "readinessProbe": {"exec": {"command": ["true"]}},
            },
            {"name": "odd", "image": "x", "restartPolicy": "OnFailure"},
        ],
    }
    assert errors(pod(spec)) == [
        "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        'spec.initContainers[2].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"',
    ]


def test_pod_level_fields_are_checked_against_their_enumerations() -> None:
    spec = {
        **containers(),
        "restartPolicy": "Sometimes",
        "dnsPolicy": "Cluster",
        "preemptionPolicy": "Always",
    }
    assert errors(pod(spec)) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
        'spec.preemptionPolicy: Unsupported value: "Always": supported values: "PreemptLowerPriority", "Never"',
    ]


def test_dns_policy_none_needs_nameservers() -> None:
    assert errors(pod({**containers(), "dnsPolicy": "None"})) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_tolerations_follow_the_operator_rules() -> None:
    tolerations = [
        {"key": "a", "operator": "Exists", "value": "x"},
        {"operator": "Equal"},
        {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"},
        {"key": "k", "effect": "Sometimes"},
    ]
    assert errors(pod({**containers(), "tolerations": tolerations})) == [
        "spec.tolerations[0].operator: Invalid value: \"x\": value must be empty when `operator` is 'Exists'",
        'spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"',
        "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        'spec.tolerations[3].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ]


def test_node_affinity_terms_need_valid_operators_and_values() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In"},
                            {"key": "gpu", "operator": "Has"},
                        ]
                    }
                ]
            }
        }
    }
    prefix = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions"
    assert errors(pod({**containers(), "affinity": affinity})) == [
        f"{prefix}[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        f'{prefix}[1].operator: Invalid value: "Has": not a valid selector operator',
    ]


def test_an_active_deadline_must_be_positive() -> None:
    assert errors(pod({**containers(), "activeDeadlineSeconds": 0})) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"
    ]


def test_a_pods_image_may_not_be_padded_but_a_templates_may() -> None:
    assert errors(pod(containers(image=" nginx"))) == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace'
    ]
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "r", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template()},
    }
    rs["spec"]["template"]["spec"]["containers"][0]["image"] = " nginx"
    assert errors(rs) == []


def test_ephemeral_containers_cannot_be_set_when_creating_a_pod() -> None:
    spec = {**containers(), "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}
    assert errors(pod(spec)) == ["spec.ephemeralContainers: Forbidden: cannot be set on create"]


def test_a_pod_update_may_change_images_deadline_and_add_tolerations() -> None:
    old = admitted(pod(containers()))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["activeDeadlineSeconds"] = 30
    new["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    assert errors(new, old) == []


def test_a_pod_update_may_not_change_other_spec_fields() -> None:
    old = admitted(pod(containers()))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    assert errors(new, old) == [
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
        "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
        "was previously negative)"
    ]


def test_a_pod_update_may_not_add_containers() -> None:
    old = admitted(pod(containers()))
    new = copy.deepcopy(old)
    new["spec"]["containers"].append({"name": "d", "image": "x"})
    assert errors(new, old) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]


def test_a_pod_active_deadline_may_only_shrink() -> None:
    old = admitted(pod({**containers(), "activeDeadlineSeconds": 10}))
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 20
    assert errors(longer, old) == [
        "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
    ]
    removed = copy.deepcopy(old)
    del removed["spec"]["activeDeadlineSeconds"]
    assert errors(removed, old) == [
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"
    ]


def test_binding_an_unscheduled_pod_to_a_node_is_an_allowed_update() -> None:
    old = admitted(pod(containers()))
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"
    assert errors(bound, old) == []
    moved = copy.deepcopy(bound)
    moved["spec"]["nodeName"] = "node-2"
    assert errors(moved, bound)[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than"
    )


def test_an_existing_toleration_can_only_change_its_seconds() -> None:
    old = admitted(
        pod(
            {
                **containers(),
                "tolerations": [
                    {
                        "key": "a",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 5,
                    }
                ],
            }
        )
    )
    new = copy.deepcopy(old)
    new["spec"]["tolerations"][0]["tolerationSeconds"] = 10
    assert errors(new, old) == []
    new["spec"]["tolerations"][0]["key"] = "b"
    assert (
        errors(new, old)[0]
        == "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
    )


# --- Deployment, ReplicaSet ------------------------------------------------------------
def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(), **spec},
    }


def test_a_deployment_container_without_image_is_reported_with_its_full_path() -> None:
    dep = deployment()
    del dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert errors(dep) == ["spec.template.spec.containers[0].image: Required value"]


def test_a_deployment_without_selector_is_reported_twice_like_kubernetes_does() -> None:
    dep = deployment()
    del dep["spec"]["selector"]
    assert errors(dep) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`',
    ]


def test_a_deployment_selector_must_match_its_template_and_not_be_empty() -> None:
    assert errors(deployment(selector={"matchLabels": {"app": "y"}})) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`'
    ]
    assert errors(deployment(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
    ]


def test_an_unparsable_selector_skips_template_checks() -> None:
    dep = deployment(selector={"matchExpressions": [{"key": "app", "operator": "Like"}]})
    assert errors(dep) == [
        'spec.selector.matchExpressions[0].operator: Invalid value: "Like": not a valid selector operator',
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"app", '
        'Operator:"Like", Values:[]string(nil)}}}: invalid label selector',
    ]


def test_a_deployment_strategy_is_checked() -> None:
    assert errors(deployment(replicas=-1, strategy={"type": "Blue"})) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"Blue", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"',
    ]
    assert errors(deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
    ]
    assert errors(
        deployment(strategy={"rollingUpdate": {"maxSurge": "25x", "maxUnavailable": "150%"}})
    ) == [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: 25x: a valid percent string must be a numeric "
        "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%",
    ]
    assert errors(deployment(strategy={"type": "Recreate", "rollingUpdate": {}})) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]


def test_a_deployment_progress_deadline_must_exceed_min_ready_seconds() -> None:
    assert errors(deployment(minReadySeconds=600)) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]


def test_replicated_pods_must_restart_always() -> None:
    dep = deployment()
    dep["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert errors(dep) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]


def test_a_deployment_selector_is_immutable() -> None:
    old = admitted(deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "web"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    assert errors(new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x", "tier":"web"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ]


def test_a_deployment_update_may_change_replicas_and_template() -> None:
    old = admitted(deployment())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert errors(new, old) == []


def test_a_replica_set_selector_is_immutable_too() -> None:
    rs = deployment()
    rs["kind"] = "ReplicaSet"
    old = admitted(rs)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "x", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert errors(new, old)[0].endswith("field is immutable")


# --- StatefulSet, DaemonSet ------------------------------------------------------------
def stateful_set(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "d"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "x"}},
            "template": template(),
            **spec,
        },
    }


STS_FORBIDDEN = (
    "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
    "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
    "and 'minReadySeconds' are forbidden"
)


def test_a_stateful_set_may_only_change_its_mutable_fields() -> None:
    old = admitted(stateful_set())
    allowed = copy.deepcopy(old)
    allowed["spec"]["replicas"] = 5
    allowed["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:17"
    allowed["spec"]["persistentVolumeClaimRetentionPolicy"] = {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    allowed["spec"]["minReadySeconds"] = 10
    assert errors(allowed, old) == []
    renamed = copy.deepcopy(old)
    renamed["spec"]["serviceName"] = "other"
    assert errors(renamed, old) == [STS_FORBIDDEN]
    claims = copy.deepcopy(old)
    claims["spec"]["volumeClaimTemplates"] = [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    ]
    assert errors(claims, old) == [STS_FORBIDDEN]


def test_a_stateful_set_checks_its_policies() -> None:
    sts = stateful_set(
        podManagementPolicy="Random", persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep"}
    )
    assert errors(sts) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": supported values: "Retain", "Delete"',
    ]
    sts = stateful_set(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": -1, "maxUnavailable": 0},
        }
    )
    assert errors(sts) == [
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0",
    ]


def test_a_stateful_set_template_spec_is_not_validated_like_kubernetes() -> None:
    sts = stateful_set()
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}
    ]
    assert errors(sts) == []


def daemon_set(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(), **spec},
    }


def test_a_daemon_set_rolls_with_either_unavailability_or_surge() -> None:
    assert errors(
        daemon_set(updateStrategy={"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
    ) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
    ]
    assert errors(
        daemon_set(updateStrategy={"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    ) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"
    ]


def test_a_daemon_set_selector_is_immutable() -> None:
    old = admitted(daemon_set())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "y"}}
    new["spec"]["template"]["metadata"]["labels"] = {"app": "y"}
    assert errors(new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"y"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ]


# --- ReplicationController, PodTemplate ----------------------------------------------
def test_a_replication_controller_selector_must_match_its_template() -> None:
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "r", "namespace": "d"},
        "spec": {"selector": {"app": "other"}, "template": template()},
    }
    assert errors(rc) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`'
    ]


def test_template_label_problems_are_reported_at_template_labels() -> None:
    pt = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "t", "namespace": "d"},
        "template": template({"app": "bad value"}),
    }
    (only,) = errors(pt)
    assert only.startswith(
        'template.labels: Invalid value: "bad value": a valid label must be an empty string'
    )


# --- Job, CronJob ------------------------------------------------------------------------
def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "d", "uid": "u1"},
        "spec": {"template": {"spec": {**containers(), "restartPolicy": "Never"}}, **spec},
    }


def test_a_job_must_not_restart_always() -> None:
    j = job()
    del j["spec"]["template"]["spec"]["restartPolicy"]
    assert errors(j) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


def test_a_job_with_a_manual_selector_must_give_one() -> None:
    assert errors(job(manualSelector=True)) == [
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`",
    ]


def test_a_job_selector_that_was_not_generated_is_refused() -> None:
    (first, second) = errors(job(selector={"matchLabels": {"controller-uid": "other"}}))
    assert first.endswith("`selector` not auto-generated")
    assert second.endswith("`selector` does not match template `labels`")


def test_a_job_checks_its_counts_and_failure_policy() -> None:
    j = job(
        backoffLimit=-1, completionMode="Weird", podFailurePolicy={"rules": [{"action": "Explode"}]}
    )
    assert errors(j) == [
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        'spec.completionMode: Unsupported value: "Weird": supported values: "NonIndexed", "Indexed"',
        'spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: "Count", "FailIndex", "FailJob", "Ignore"',
        "spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
    ]


def test_an_indexed_job_name_must_leave_room_for_the_index() -> None:
    j = job(completionMode="Indexed", completions=100)
    j["metadata"]["name"] = "x" * 61
    assert (
        errors(j)[-1]
        == f'metadata.name: Invalid value: "{"x" * 61}": will not able to create pod with invalid DNS label: {"x" * 61}-99'
    )


def test_a_job_template_and_completions_are_immutable_once_started() -> None:
    old = admitted(job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["completions"] = 3
    assert errors(new, old) == [
        "spec.completions: Invalid value: 3: field is immutable",
        "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",
    ]


def test_a_job_may_change_parallelism_deadline_and_suspension() -> None:
    old = admitted(job())
    new = copy.deepcopy(old)
    new["spec"].update(parallelism=4, activeDeadlineSeconds=100, suspend=True)
    assert errors(new, old) == []


def test_a_suspended_job_that_never_ran_may_change_its_scheduling_directives() -> None:
    old = admitted(job(suspend=True))
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    assert errors(new, old) == []


def cron_job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "d"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {"template": {"spec": {**containers(), "restartPolicy": "OnFailure"}}}
            },
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("foo", "expected exactly 5 fields, found 1: [foo]"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("1/2/3 * * * *", "too many slashes: 1/2/3"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every 5x", 'failed to parse duration @every 5x: time: invalid duration "5x"'),
    ],
)
def test_a_bad_cron_schedule_is_refused_with_the_parsers_reason(
    schedule: str, message: str
) -> None:
    assert errors(cron_job(schedule=schedule)) == [
        f'spec.schedule: Invalid value: "{schedule}": {message}'
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@every 1h30m",
        "0 0 * jan-mar mon,FRI",
        "0 0 ? * *",
        "*/15 9-17 * * 1-5",
    ],
)
def test_standard_schedules_and_descriptors_are_accepted(schedule: str) -> None:
    assert errors(cron_job(schedule=schedule)) == []


def test_a_parsed_schedule_knows_its_minutes_and_days() -> None:
    parsed = parse_schedule("*/15 9-17 * * mon-fri")
    assert parsed.minutes == frozenset({0, 15, 30, 45})
    assert parsed.hours == frozenset(range(9, 18))
    assert parsed.days_of_week == frozenset({1, 2, 3, 4, 5})
    assert parsed.dom_star and not parsed.dow_star
    assert parse_schedule("@every 90s").every == 90.0
    with pytest.raises(ScheduleError, match="empty spec string"):
        parse_schedule("")


def test_a_time_zone_goes_in_its_own_field_and_must_exist() -> None:
    assert errors(cron_job(schedule="TZ=UTC 0 * * * *")) == [
        'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'
    ]
    assert errors(cron_job(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'
    ]
    assert errors(cron_job(timeZone="Local")) == [
        'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones'
    ]
    assert errors(cron_job(timeZone="America/New_York")) == []


def test_a_cron_job_name_leaves_room_for_the_job_suffix() -> None:
    cj = cron_job()
    cj["metadata"]["name"] = "x" * 53
    assert errors(cj) == [
        f'metadata.name: Invalid value: "{"x" * 53}": must be no more than 52 characters'
    ]


def test_a_cron_job_template_may_not_choose_its_selector() -> None:
    cj = cron_job(concurrencyPolicy="Sometimes")
    cj["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert errors(cj) == [
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"',
        'spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"b"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
    ]


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


def test_an_autoscaler_needs_a_sane_replica_range_and_target() -> None:
    assert errors(hpa(minReplicas=3, maxReplicas=2)) == [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
    ]
    h = hpa(minReplicas=0, maxReplicas=0, scaleTargetRef={"kind": "Deployment"})
    assert errors(h) == [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
        "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        "spec.scaleTargetRef.name: Required value",
        "spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero replicas",
    ]


def test_an_autoscaler_metric_must_match_its_type_and_have_a_target() -> None:
    pods = {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1"}}
    metrics = [
        {"type": "Resource", "pods": pods},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
        {
            "type": "Pods",
            "pods": pods,
            "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "5"}},
        },
    ]
    assert errors(hpa(metrics=metrics)) == [
        "spec.metrics[0].resource: Required value: must populate information for the given metric source",
        "spec.metrics[1].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
        "spec.metrics[2].external: Forbidden: must populate the given metric source only",
    ]


def test_autoscaling_behavior_policies_are_bounded() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 4000,
            "policies": [{"type": "Nodes", "value": 0, "periodSeconds": 2000}],
        }
    }
    assert errors(hpa(behavior=behavior)) == [
        "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600",
        'spec.behavior.scaleDown.policies[0].type: Unsupported value: "Nodes": supported values: "Percent", "Pods"',
        "spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 2000: must be less than or equal to 1800",
    ]
