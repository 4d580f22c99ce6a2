"""Server-side Table output: columns and cells as kube-apiserver prints them for kubectl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubemodel.errors import ApiError
from runtime.api.registry import CustomInfo, Registry, ResourceInfo
from runtime.server.tables import (
    JsonPathError,
    compile_jsonpath,
    evaluate_jsonpath,
    human_duration,
    quantity_string,
    table_row_for_watch,
    to_table,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
REGISTRY = Registry()


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def info(plural: str, group: str = "") -> ResourceInfo:
    for resource in REGISTRY.all():
        if resource.plural == plural and resource.group == group:
            return resource
    raise AssertionError(f"no resource {plural}.{group}")


def obj(name: str, created: str | None = None, **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    meta["resourceVersion"] = "7"
    meta["creationTimestamp"] = created or ago(minutes=3, seconds=20)
    meta.update(fields.pop("metadata", {}))
    return {"metadata": meta, **fields}


def table(plural: str, *objects: dict[str, Any], group: str = "", **kw: Any) -> dict[str, Any]:
    return to_table(info(plural, group), list(objects), now=NOW, **kw)


def cells(plural: str, item: dict[str, Any], group: str = "") -> list[Any]:
    result: list[Any] = table(plural, item, group=group)["rows"][0]["cells"]
    return result


def headers(plural: str, group: str = "") -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in table(plural, group=group)["columnDefinitions"]]


def pod(
    name: str = "web",
    *,
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    containers: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    spec = {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]}
    spec.update(extra.pop("spec", {}))
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses or []}
    status.update(extra.pop("status", {}))
    return obj(name, spec=spec, status=status, **extra)


def running(name: str = "c0", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=3)}},
    }


def waiting(reason: str, name: str = "c0", restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
    }


def terminated(reason: str = "", code: int = 0, name: str = "c0", **more: Any) -> dict[str, Any]:
    state = {"exitCode": code, **more}
    if reason:
        state["reason"] = reason
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


READY = {"conditions": [{"type": "Ready", "status": "True"}]}


# --- ages ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=3, seconds=20), "3m20s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=47, minutes=59), "47h"),
        (timedelta(days=2, hours=5), "2d5h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=45, hours=7), "45d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=760), "2y30d"),
        (timedelta(days=365 * 9), "9y"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(seconds=-2), "<invalid>"),
    ],
)
def test_ages_use_kubernetes_human_duration(delta: timedelta, expected: str) -> None:
    assert human_duration(delta) == expected


def test_a_missing_or_zero_creation_timestamp_is_an_unknown_age() -> None:
    assert cells("configmaps", obj("a", created="0001-01-01T00:00:00Z"))[2] == "<unknown>"
    item = obj("b")
    del item["metadata"]["creationTimestamp"]
    assert cells("configmaps", item)[2] == "<unknown>"


# --- pods ---------------------------------------------------------------------------
def test_pod_columns_are_kube_apiservers_with_wide_ones_at_priority_one() -> None:
    assert headers("pods") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    name = table("pods")["columnDefinitions"][0]
    assert name["format"] == "name" and name["type"] == "string"
    assert name["description"].startswith("Name must be unique within a namespace.")


def test_a_running_pod_shows_ready_count_status_restarts_age_and_wide_cells() -> None:
    item = pod(
        containers=2,
        statuses=[running("c0"), running("c1")],
        spec={"nodeName": "node-1"},
        status={"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}], **READY},
    )
    assert cells("pods", item) == [
        "web", "2/2", "Running", "0", "3m20s", "10.1.0.5", "node-1", "<none>", "<none>",
    ]  # fmt: skip


def test_restarts_say_when_the_last_container_restarted() -> None:
    status = running(restarts=5)
    status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}}
    assert cells("pods", pod(statuses=[status], status=READY))[3] == "5 (5m ago)"


def test_waiting_reasons_become_the_status() -> None:
    creating = pod(phase="Pending", statuses=[waiting("ContainerCreating")])
    assert cells("pods", creating)[1:4] == ["0/1", "ContainerCreating", "0"]
    crashing = pod(statuses=[waiting("CrashLoopBackOff", restarts=4)])
    assert cells("pods", crashing)[2] == "CrashLoopBackOff"


def test_a_succeeded_pod_is_completed_and_carries_a_completed_row_condition() -> None:
    done = pod(phase="Succeeded", statuses=[terminated("Completed")])
    row = table("pods", done)["rows"][0]
    assert row["cells"][1:3] == ["0/1", "Completed"]
    assert row["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert "conditions" not in table("pods", pod(statuses=[running()]))["rows"][0]


def test_a_completed_container_beside_a_failed_one_shows_the_error() -> None:
    item = pod(
        containers=2, statuses=[terminated("Error", 2, "c0"), terminated("Completed", 0, "c1")]
    )
    assert cells("pods", item)[2] == "Error"


def test_a_completed_container_beside_a_running_one_is_running_or_not_ready() -> None:
    statuses = [running("c0"), terminated("Completed", 0, "c1")]
    assert cells("pods", pod(containers=2, statuses=statuses, status=READY))[2] == "Running"
    assert cells("pods", pod(containers=2, statuses=statuses))[2] == "NotReady"


def test_terminated_containers_without_reason_show_signal_or_exit_code() -> None:
    assert cells("pods", pod(statuses=[terminated(code=137, signal=9)]))[2] == "Signal:9"
    assert cells("pods", pod(statuses=[terminated(code=3)]))[2] == "ExitCode:3"


def test_a_deleted_pod_is_terminating_unless_its_node_was_lost() -> None:
    deleting = pod(statuses=[running()], metadata={"deletionTimestamp": ago(seconds=5)})
    assert cells("pods", deleting)[2] == "Terminating"
    lost = pod(
        statuses=[running()],
        metadata={"deletionTimestamp": ago(seconds=5)},
        status={"reason": "NodeLost"},
    )
    assert cells("pods", lost)[2] == "Unknown"
    finished = pod(
        phase="Succeeded",
        statuses=[terminated("Completed")],
        metadata={"deletionTimestamp": ago(seconds=5)},
    )
    assert cells("pods", finished)[2] == "Completed"


def test_init_containers_show_progress_and_their_failures() -> None:
    spec = {"initContainers": [{"name": "i0", "image": "x"}, {"name": "i1", "image": "x"}]}

    def init(*states: dict[str, Any]) -> dict[str, Any]:
        return pod(phase="Pending", spec=spec, status={"initContainerStatuses": list(states)})

    first_done = dict(terminated("Completed", 0, "i0"))
    assert cells("pods", init(first_done, waiting("PodInitializing", "i1")))[2] == "Init:1/2"
    assert cells("pods", init(waiting("PodInitializing", "i0")))[2] == "Init:0/2"
    assert cells("pods", init(waiting("CrashLoopBackOff", "i0", 3)))[2:4] == [
        "Init:CrashLoopBackOff",
        "3",
    ]
    assert cells("pods", init(terminated("Error", 1, "i0")))[2] == "Init:Error"
    assert cells("pods", init(terminated("", 2, "i0")))[2] == "Init:ExitCode:2"


def test_a_started_sidecar_counts_towards_ready_containers() -> None:
    spec = {"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]}
    sidecar = {**running("proxy"), "started": True}
    item = pod(
        spec=spec,
        statuses=[running("c0")],
        status={"initContainerStatuses": [sidecar], **READY},
    )
    item["status"]["conditions"].append({"type": "Initialized", "status": "True"})
    assert cells("pods", item)[1:3] == ["2/2", "Running"]


def test_a_pod_waiting_for_scheduling_gates_says_so() -> None:
    gated = pod(
        phase="Pending",
        status={
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
        },
    )
    assert cells("pods", gated)[2] == "SchedulingGated"


def test_wide_pod_cells_show_nominated_node_and_readiness_gates() -> None:
    item = pod(
        statuses=[running()],
        spec={"readinessGates": [{"conditionType": "a/ready"}, {"conditionType": "b/ready"}]},
        status={
            "nominatedNodeName": "node-2",
            "conditions": [
                {"type": "a/ready", "status": "True"},
                {"type": "b/ready", "status": "False"},
            ],
        },
    )
    assert cells("pods", item)[5:] == ["<none>", "<none>", "node-2", "1/2"]


# --- nodes, namespaces --------------------------------------------------------------
def test_nodes_show_readiness_roles_version_and_wide_system_info() -> None:
    node = obj(
        "node-1",
        created=ago(days=2, hours=5),
        metadata={
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}
        },
        spec={"unschedulable": True},
        status={
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "Hostname", "address": "node-1"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian GNU/Linux 12"},
        },
    )
    assert cells("nodes", node) == [
        "node-1", "Ready,SchedulingDisabled", "control-plane,edge", "2d5h", "v1.35.0",
        "192.168.1.10", "<none>", "Debian GNU/Linux 12", "<unknown>", "<unknown>",
    ]  # fmt: skip
    not_ready = obj("n2", status={"conditions": [{"type": "Ready", "status": "False"}]})
    assert cells("nodes", not_ready)[1:3] == ["NotReady", "<none>"]
    assert cells("nodes", obj("n3"))[1] == "Unknown"


def test_namespaces_show_their_phase() -> None:
    ns = obj("team-a", created=ago(days=45), status={"phase": "Active"})
    assert headers("namespaces") == [("Name", 0), ("Status", 0), ("Age", 0)]
    assert cells("namespaces", ns) == ["team-a", "Active", "45d"]


# --- services and networking ----------------------------------------------------------
def service(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return obj("svc", spec=spec, status=status)


def test_a_cluster_ip_service_shows_ports_and_no_external_ip() -> None:
    svc = service(
        type="ClusterIP",
        clusterIP="10.96.0.10",
        clusterIPs=["10.96.0.10"],
        ports=[{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        selector={"k8s-app": "kube-dns", "app": "dns"},
    )
    assert cells("services", svc) == [
        "svc", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "3m20s",
        "app=dns,k8s-app=kube-dns",
    ]  # fmt: skip


def test_node_ports_and_pending_load_balancers_print_like_kubectl() -> None:
    node_port = service(
        type="NodePort", clusterIP="10.96.1.1", ports=[{"port": 80, "nodePort": 30080}]
    )
    assert cells("services", node_port)[1:5] == ["NodePort", "10.96.1.1", "<none>", "80:30080/TCP"]
    pending = service(
        type="LoadBalancer", clusterIPs=["10.96.1.2"], ports=[{"port": 443, "nodePort": 31443}]
    )
    assert cells("services", pending)[3:5] == ["<pending>", "443:31443/TCP"]
    assigned = service(
        type="LoadBalancer",
        clusterIPs=["10.96.1.3"],
        externalIPs=["1.2.3.4"],
        status={
            "loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}
        },
    )
    assert cells("services", assigned)[3] == "203.0.113.9,lb.example.com,1.2.3.4"


def test_headless_and_external_name_services() -> None:
    headless = service(clusterIP="None", clusterIPs=["None"])
    assert cells("services", headless)[1:5] == ["ClusterIP", "None", "<none>", "<none>"]
    external = service(type="ExternalName", externalName="db.example.com")
    assert cells("services", external)[1:4] == ["ExternalName", "<none>", "db.example.com"]


def test_endpoints_list_three_addresses_and_count_the_rest() -> None:
    addresses = [{"ip": f"10.0.0.{i}"} for i in range(1, 6)]
    ep = obj("web", subsets=[{"addresses": addresses, "ports": [{"port": 8080}]}])
    assert cells("endpoints", ep)[1] == "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."
    assert cells("endpoints", obj("empty"))[1] == "<none>"
    headless = obj("h", subsets=[{"addresses": [{"ip": "fd00::1"}]}])
    assert cells("endpoints", headless)[1] == "fd00::1"
    v6 = obj("v6", subsets=[{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}])
    assert cells("endpoints", v6)[1] == "[fd00::1]:80"


def test_endpoint_slices_show_address_type_ports_and_endpoints() -> None:
    eps = obj(
        "web-abc",
        addressType="IPv4",
        ports=[{"port": 80}, {"name": "metrics"}, {}],
        endpoints=[{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    )
    assert cells("endpointslices", eps, "discovery.k8s.io")[1:4] == [
        "IPv4",
        "80,metrics,*",
        "10.0.0.1,10.0.0.2",
    ]
    assert cells("endpointslices", obj("none", addressType="IPv6"), "discovery.k8s.io")[2:4] == [
        "<unset>",
        "<unset>",
    ]


def test_ingresses_show_class_hosts_address_and_ports() -> None:
    ing = obj(
        "web",
        spec={
            "ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}],
            "tls": [{"hosts": ["a.example.com"]}],
        },
        status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
    )
    assert headers("ingresses", "networking.k8s.io") == [
        ("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0), ("Age", 0),
    ]  # fmt: skip
    assert cells("ingresses", ing, "networking.k8s.io") == [
        "web", "nginx", "a.example.com,b.example.com", "192.0.2.1", "80, 443", "3m20s",
    ]  # fmt: skip
    bare = obj("any", spec={"defaultBackend": {}})
    assert cells("ingresses", bare, "networking.k8s.io")[1:5] == ["<none>", "*", "", "80"]


def test_ingress_classes_name_their_parameters() -> None:
    cls = obj(
        "nginx",
        spec={
            "controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"},
        },
    )
    assert cells("ingressclasses", cls, "networking.k8s.io")[1:3] == [
        "k8s.io/ingress-nginx",
        "IngressParameters.k8s.example.com/p",
    ]


def test_network_policies_show_their_pod_selector() -> None:
    policy = obj("db", spec={"podSelector": {"matchLabels": {"app": "db"}}})
    assert cells("networkpolicies", policy, "networking.k8s.io")[1] == "app=db"
    everything = obj("all", spec={"podSelector": {}})
    assert cells("networkpolicies", everything, "networking.k8s.io")[1] == "<none>"


# --- workloads -------------------------------------------------------------------------
TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent"}]
    },
}


def test_deployments_show_ready_up_to_date_available_and_wide_cells() -> None:
    deploy = obj(
        "web",
        spec={
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "template": TEMPLATE,
        },
        status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    )
    assert headers("deployments", "apps") == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1),
    ]  # fmt: skip
    assert cells("deployments", deploy, "apps") == [
        "web", "2/3", 3, 2, "3m20s", "web,log", "nginx:1.27,fluent", "app=web,tier in (a,b)",
    ]  # fmt: skip


def test_replica_sets_and_replication_controllers_show_desired_current_ready() -> None:
    rs = obj(
        "web-7d4b9",
        spec={"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        status={"replicas": 3, "readyReplicas": 1},
    )
    assert cells("replicasets", rs, "apps") == [
        "web-7d4b9", 3, 3, 1, "3m20s", "web,log", "nginx:1.27,fluent", "app=web",
    ]  # fmt: skip
    rc = obj("old", spec={"replicas": 2, "selector": {"app": "old"}, "template": TEMPLATE})
    assert cells("replicationcontrollers", rc) == [
        "old", 2, 0, 0, "3m20s", "web,log", "nginx:1.27,fluent", "app=old",
    ]  # fmt: skip


def test_stateful_sets_show_ready_over_desired() -> None:
    sts = obj("db", spec={"replicas": 3, "template": TEMPLATE}, status={"readyReplicas": 1})
    assert headers("statefulsets", "apps") == [
        ("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1),
    ]  # fmt: skip
    assert cells("statefulsets", sts, "apps")[:3] == ["db", "1/3", "3m20s"]


def test_daemon_sets_show_counts_and_node_selector() -> None:
    template = {
        **TEMPLATE,
        "spec": {**TEMPLATE["spec"], "nodeSelector": {"kubernetes.io/os": "linux"}},
    }
    ds = obj(
        "agent",
        spec={"selector": {"matchLabels": {"app": "agent"}}, "template": template},
        status={
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    )
    assert cells("daemonsets", ds, "apps") == [
        "agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "3m20s", "web,log", "nginx:1.27,fluent",
        "app=agent",
    ]  # fmt: skip


def job(**fields: Any) -> dict[str, Any]:
    spec = {"template": TEMPLATE, **fields.pop("spec", {})}
    return obj("batch", spec=spec, status=fields.pop("status", {}), **fields)


def test_jobs_show_status_completions_and_duration() -> None:
    assert headers("jobs", "batch")[:5] == [
        ("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0),
    ]  # fmt: skip
    complete = job(
        spec={"completions": 3},
        status={
            "succeeded": 3,
            "startTime": ago(minutes=3),
            "completionTime": ago(minutes=2, seconds=15),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    )
    assert cells("jobs", complete, "batch")[1:5] == ["Complete", "3/3", "45s", "3m20s"]
    running_job = job(spec={"parallelism": 3}, status={"startTime": ago(seconds=90)})
    assert cells("jobs", running_job, "batch")[1:4] == ["Running", "0/1 of 3", "90s"]
    assert cells("jobs", job(), "batch")[1:4] == ["Running", "0/1", ""]


def test_job_status_follows_its_conditions_in_kubernetes_order() -> None:
    def status_of(*conditions: str, **extra: Any) -> str:
        conds = [{"type": c, "status": "True"} for c in conditions]
        cell: str = cells("jobs", job(status={"conditions": conds}, **extra), "batch")[1]
        return cell

    assert status_of("Failed") == "Failed"
    assert status_of("Suspended") == "Suspended"
    assert status_of("FailureTarget") == "FailureTarget"
    assert status_of("Suspended", metadata={"deletionTimestamp": ago(seconds=1)}) == "Terminating"
    assert status_of("FailureTarget", "Failed") == "Failed"


def test_cron_jobs_show_schedule_suspend_active_and_last_schedule() -> None:
    cj = obj(
        "nightly",
        spec={
            "schedule": "0 3 * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": TEMPLATE}},
        },
        status={"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(minutes=5)},
    )
    assert cells("cronjobs", cj, "batch")[:7] == [
        "nightly", "0 3 * * *", "<none>", "False", 1, "5m", "3m20s",
    ]  # fmt: skip
    never = obj("tz", spec={"schedule": "@hourly", "timeZone": "Etc/UTC"})
    assert cells("cronjobs", never, "batch")[2:6] == ["Etc/UTC", "<unset>", 0, "<none>"]


def hpa(
    metrics: list[dict[str, Any]], current: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return obj(
        "web",
        spec={
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": metrics,
        },
        status={"currentReplicas": 3, "currentMetrics": current or []},
    )


CPU_80 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
}


def test_hpa_targets_show_current_over_target_utilisation() -> None:
    current = [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}
    ]
    assert cells("horizontalpodautoscalers", hpa([CPU_80], current), "autoscaling") == [
        "web", "Deployment/web", "cpu: 40%/80%", "2", 10, 3, "3m20s",
    ]  # fmt: skip
    unknown = hpa([CPU_80])
    assert cells("horizontalpodautoscalers", unknown, "autoscaling")[2] == "cpu: <unknown>/80%"


def test_hpa_targets_show_values_pods_metrics_and_more() -> None:
    memory = {
        "type": "Resource",
        "resource": {
            "name": "memory",
            "target": {"type": "AverageValue", "averageValue": "1024Mi"},
        },
    }
    pods_metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "1k"},
        },
    }
    current = [
        {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "512Mi"}}},
        {"type": "Pods", "pods": {"current": {"averageValue": "250"}}},
    ]
    item = hpa([memory, pods_metric, CPU_80], current)
    assert cells("horizontalpodautoscalers", item, "autoscaling")[2] == (
        "memory: 512Mi/1Gi, 250/1k + 1 more..."
    )
    assert cells("horizontalpodautoscalers", hpa([]), "autoscaling")[2] == "<none>"


def test_an_autoscaling_v1_hpa_prints_its_cpu_target() -> None:
    v1 = obj(
        "old",
        spec={"scaleTargetRef": {"kind": "Deployment", "name": "old"}, "maxReplicas": 4,
              "targetCPUUtilizationPercentage": 50},
        status={"currentCPUUtilizationPercentage": 12},
    )  # fmt: skip
    assert cells("horizontalpodautoscalers", v1, "autoscaling")[2:4] == ["cpu: 12%/50%", "<unset>"]


def test_pod_disruption_budgets_show_min_available_and_max_unavailable() -> None:
    pdb = obj("web", spec={"minAvailable": "50%"}, status={"disruptionsAllowed": 1})
    assert cells("poddisruptionbudgets", pdb, "policy") == ["web", "50%", "N/A", 1, "3m20s"]
    pdb = obj("db", spec={"maxUnavailable": 1})
    assert cells("poddisruptionbudgets", pdb, "policy")[1:4] == ["N/A", "1", 0]


def test_controller_revisions_name_their_controller() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": True}
    rev = obj("agent-5b8f", metadata={"ownerReferences": [owner]}, revision=3)
    assert cells("controllerrevisions", rev, "apps") == [
        "agent-5b8f",
        "daemonset.apps/agent",
        3,
        "3m20s",
    ]
    assert cells("controllerrevisions", obj("orphan", revision=1), "apps")[1] == "<none>"


# --- configuration, storage, rbac, misc -----------------------------------------------
def test_config_maps_secrets_and_service_accounts_count_their_entries() -> None:
    cm = obj("cfg", data={"a": "1", "b": "2"}, binaryData={"c": "AA=="})
    assert cells("configmaps", cm) == ["cfg", 3, "3m20s"]
    secret = obj("tls", type="kubernetes.io/tls", data={"tls.crt": "", "tls.key": ""})
    assert cells("secrets", secret) == ["tls", "kubernetes.io/tls", 2, "3m20s"]
    assert cells("serviceaccounts", obj("default")) == ["default", 0, "3m20s"]


def test_persistent_volumes_show_capacity_modes_policy_status_and_claim() -> None:
    pv = obj(
        "pv-1",
        spec={
            "capacity": {"storage": "10240Mi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "local",
            "volumeMode": "Filesystem",
        },
        status={"phase": "Bound"},
    )
    assert cells("persistentvolumes", pv) == [
        "pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local", "<unset>", "",
        "3m20s", "Filesystem",
    ]  # fmt: skip


def test_persistent_volume_claims_show_capacity_only_once_bound() -> None:
    bound = obj(
        "data",
        spec={
            "volumeName": "pv-1",
            "storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}},
        },
        status={
            "phase": "Bound",
            "capacity": {"storage": "1.5Gi"},
            "accessModes": ["ReadWriteOnce"],
        },
    )
    assert cells("persistentvolumeclaims", bound) == [
        "data", "Bound", "pv-1", "1536Mi", "RWO", "local", "<unset>", "3m20s", "<unset>",
    ]  # fmt: skip
    pending = obj(
        "wait", spec={"resources": {"requests": {"storage": "1Gi"}}}, status={"phase": "Pending"}
    )
    assert cells("persistentvolumeclaims", pending)[1:6] == ["Pending", "", "", "", ""]


def test_storage_classes_mark_the_default_and_fill_in_defaults() -> None:
    sc = obj(
        "standard",
        metadata={"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        provisioner="rancher.io/local-path",
    )
    assert cells("storageclasses", sc, "storage.k8s.io") == [
        "standard (default)", "rancher.io/local-path", "Delete", "Immediate", False, "3m20s",
    ]  # fmt: skip


def test_events_show_last_seen_type_reason_object_and_message() -> None:
    event = obj(
        "web.17a",
        type="Warning",
        reason="BackOff",
        message="  Back-off restarting failed container\n",
        involvedObject={"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
        source={"component": "kubelet", "host": "node-1"},
        firstTimestamp=ago(minutes=10),
        lastTimestamp=ago(seconds=30),
        count=12,
    )
    assert [name for name, _ in headers("events")] == [
        "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen",
        "Count", "Name",
    ]  # fmt: skip
    assert cells("events", event) == [
        "30s", "Warning", "BackOff", "pod/web", "spec.containers{web}", "kubelet, node-1",
        "Back-off restarting failed container", "10m", 12, "web.17a",
    ]  # fmt: skip


def test_events_of_the_new_api_use_event_time_series_and_reporting_controller() -> None:
    event = obj(
        "e",
        type="Normal",
        reason="Scheduled",
        involvedObject={"kind": "Node"},
        eventTime="2024-06-01T11:59:00.000000Z",
        series={"count": 4, "lastObservedTime": "2024-06-01T11:59:50.000000Z"},
        reportingComponent="default-scheduler",
    )
    row = cells("events", event)
    assert row[:4] == ["10s", "Normal", "Scheduled", "node"]
    assert row[5] == "default-scheduler" and row[7:9] == ["60s", 4]


def test_roles_and_cluster_roles_use_the_default_name_and_created_at_columns() -> None:
    role = obj("reader", created="2024-05-01T10:00:00+02:00")
    result = table("roles", role, group="rbac.authorization.k8s.io")
    assert [(c["name"], c["type"]) for c in result["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert result["rows"][0]["cells"] == ["reader", "2024-05-01T08:00:00Z"]
    crd = table(
        "customresourcedefinitions",
        obj("crontabs.stable.example.com"),
        group="apiextensions.k8s.io",
    )
    assert [c["name"] for c in crd["columnDefinitions"]] == ["Name", "Created At"]


def test_role_bindings_show_the_role_and_their_subjects_when_wide() -> None:
    binding = obj(
        "read",
        roleRef={"kind": "ClusterRole", "name": "view"},
        subjects=[
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"},
        ],
    )
    assert cells("rolebindings", binding, "rbac.authorization.k8s.io") == [
        "read", "ClusterRole/view", "3m20s", "alice, bob", "devs", "ci/runner",
    ]  # fmt: skip
    assert headers("clusterrolebindings", "rbac.authorization.k8s.io")[3:] == [
        ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1),
    ]  # fmt: skip


def test_leases_priority_classes_and_api_services() -> None:
    lease = obj("kube-scheduler", spec={"holderIdentity": "node-1_abc"})
    assert cells("leases", lease, "coordination.k8s.io") == [
        "kube-scheduler",
        "node-1_abc",
        "3m20s",
    ]
    pc = obj("high", value=1000, globalDefault=True, preemptionPolicy="Never")
    assert cells("priorityclasses", pc, "scheduling.k8s.io") == [
        "high",
        1000,
        True,
        "3m20s",
        "Never",
    ]
    api = obj("v1.", spec={})
    assert cells("apiservices", api, "apiregistration.k8s.io") == [
        "v1.",
        "Local",
        "Unknown",
        "3m20s",
    ]
    down = obj(
        "v1beta1.metrics.k8s.io",
        spec={"service": {"namespace": "kube-system", "name": "metrics-server"}},
        status={
            "conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]
        },
    )
    assert cells("apiservices", down, "apiregistration.k8s.io")[1:3] == [
        "kube-system/metrics-server",
        "False (MissingEndpoints)",
    ]


def test_quantities_print_in_canonical_form() -> None:
    given = ("1024Mi", "1.5Gi", "0.5", "1000m", "1000", "1500", "512")
    assert [quantity_string(q) for q in given] == [
        "1Gi", "1536Mi", "500m", "1", "1k", "1500", "512",
    ]  # fmt: skip
    assert [quantity_string(q) for q in ("0.5Ki", "1e3", "100M", 2, None)] == [
        "512",
        "1e3",
        "100M",
        "2",
        "<nil>",
    ]


# --- custom resources -------------------------------------------------------------------
def crd_info(*columns: dict[str, Any]) -> ResourceInfo:
    return ResourceInfo(
        group="stable.example.com",
        version="v1",
        plural="crontabs",
        kind="CronTab",
        namespaced=True,
        custom=CustomInfo(schema=None, printer_columns=tuple(columns)),
    )


CRONTAB = obj(
    "nightly",
    metadata={"labels": {"app.kubernetes.io/name": "tab"}},
    spec={"cronSpec": "* * * * */5", "replicas": 3, "ratio": 0.75, "paused": False,
          "image": "my-cron", "ports": [{"port": 80}, {"port": 443}],
          "extra": {"b": 1, "a": [1.0]}},
    status={"conditions": [{"type": "Synced", "status": "True"},
                           {"type": "Ready", "status": "False"}],
            "lastRun": ago(hours=3, minutes=5)},
)  # fmt: skip


def crd_table(*columns: dict[str, Any], item: dict[str, Any] = CRONTAB) -> dict[str, Any]:
    return to_table(crd_info(*columns), [item], now=NOW)


def test_a_crd_without_printer_columns_shows_name_and_age() -> None:
    result = crd_table()
    assert [(c["name"], c["type"]) for c in result["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert result["rows"][0]["cells"] == ["nightly", "3m20s"]


def test_crd_printer_columns_are_typed_and_keep_priority_and_description() -> None:
    result = crd_table(
        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "description": "How much."},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )
    columns = result["columnDefinitions"]
    assert [(c["name"], c["type"], c["priority"]) for c in columns] == [
        ("Name", "string", 0), ("Spec", "string", 0), ("Replicas", "integer", 1),
        ("Ratio", "number", 0), ("Paused", "boolean", 0), ("Last Run", "date", 0),
        ("Age", "date", 0),
    ]  # fmt: skip
    assert columns[1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.cronSpec"
    )
    assert columns[3]["description"] == "How much."
    assert result["rows"][0]["cells"] == ["nightly", "* * * * */5", 3, 0.75, False, "3h5m", "3m20s"]


def test_crd_columns_evaluate_jsonpath_filters_and_take_the_first_result() -> None:
    result = crd_table(
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Port", "type": "integer", "jsonPath": ".spec.ports[*].port"},
        {"name": "Last", "type": "integer", "jsonPath": ".spec.ports[-1].port"},
        {
            "name": "App",
            "type": "string",
            "jsonPath": ".metadata.labels.app\\.kubernetes\\.io/name",
        },
        {"name": "Extra", "type": "string", "jsonPath": ".spec.extra"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
        {"name": "Wrong", "type": "integer", "jsonPath": ".spec.cronSpec"},
    )
    assert result["rows"][0]["cells"] == [
        "nightly",
        "False",
        80,
        443,
        "tab",
        '{"a":[1],"b":1}',
        None,
        None,
    ]


def test_string_crd_columns_print_numbers_as_go_does() -> None:
    item = obj("n", spec={"big": 1234567.0, "int": 42, "flag": True})
    result = crd_table(
        {"name": "Big", "type": "string", "jsonPath": ".spec.big"},
        {"name": "Int", "type": "string", "jsonPath": ".spec.int"},
        {"name": "Flag", "type": "string", "jsonPath": ".spec.flag"},
        item=item,
    )
    assert result["rows"][0]["cells"] == ["n", "1.234567e+06", "42", "true"]


def test_a_crd_date_column_that_is_not_rfc3339_is_invalid() -> None:
    item = obj("n", spec={"when": "yesterday", "never": ""})
    result = crd_table(
        {"name": "When", "type": "date", "jsonPath": ".spec.when"},
        {"name": "Never", "type": "date", "jsonPath": ".spec.never"},
        item=item,
    )
    assert result["rows"][0]["cells"] == ["n", "<invalid>", "<unknown>"]


def test_an_unparseable_crd_column_ends_the_column_list() -> None:
    result = crd_table(
        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
        {"name": "Bad", "type": "string", "jsonPath": ".spec[?(@.a==)"},
        {"name": "After", "type": "string", "jsonPath": ".spec.image"},
    )
    assert [c["name"] for c in result["columnDefinitions"]] == ["Name", "Spec"]
    assert result["rows"][0]["cells"] == ["nightly", "* * * * */5"]


def test_jsonpath_supports_the_client_go_subset() -> None:
    data = {
        "items": [
            {"name": "a", "n": 1, "tags": {"x": "1"}},
            {"name": "b", "n": 5},
            {"name": "c", "n": 9, "tags": {"x": "2"}},
        ]
    }

    def run(path: str) -> list[Any]:
        return evaluate_jsonpath(compile_jsonpath(path), data)

    assert run(".items[?(@.n > 3)].name") == ["b", "c"]
    assert run(".items[?(@.n<=5)].name") == ["a", "b"]
    assert run(".items[?(@.name != 'b')].name") == ["a", "c"]
    assert run(".items[?(@.tags)].name") == ["a", "c"]
    assert run(".items[0:2].name") == ["a", "b"]
    assert run(".items[0,2].name") == ["a", "c"]
    assert run("$.items[1]['name']") == ["b"]
    assert run("{.items[-1].n}") == [9]
    assert run("..x") == ["1", "2"]
    assert run(".items[*].missing") == []
    with pytest.raises(JsonPathError):
        run(".items[7].name")
    with pytest.raises(JsonPathError):
        run(".items[?(@.name == 1)].n")  # Go refuses to compare a string with a number
    with pytest.raises(JsonPathError):
        compile_jsonpath(".items[0")


# --- the Table, its rows' objects, watch events -------------------------------------------
def test_rows_carry_partial_object_metadata_by_default() -> None:
    item = pod(statuses=[running()])
    row = table("pods", item)["rows"][0]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item["metadata"],
    }
    beta = to_table(info("pods"), [item], now=NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_include_object_selects_the_whole_object_or_none() -> None:
    item = pod(statuses=[running()])
    assert table("pods", item, include_object="Object")["rows"][0]["object"] is item
    assert table("pods", item, include_object="None")["rows"][0]["object"] is None
    with pytest.raises(ApiError) as bad:
        table("pods", item, include_object="Everything")
    assert bad.value.code == 400
    with pytest.raises(ApiError) as wrong:
        to_table(info("pods"), [item], now=NOW, api_version="meta.k8s.io/v1alpha1")
    assert wrong.value.code == 406


def test_the_table_carries_list_metadata() -> None:
    result = table("pods", resource_version="42", continue_token="abc", remaining=7)
    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {
        "resourceVersion": "42",
        "continue": "abc",
        "remainingItemCount": 7,
    }
    assert result["rows"] == []
    assert table("pods")["metadata"] == {}


def test_watch_events_carry_one_row_and_no_column_definitions_after_the_first() -> None:
    item = pod(statuses=[running()], metadata={"resourceVersion": "99"})
    event = table_row_for_watch(info("pods"), item, now=NOW)
    assert event["kind"] == "Table"
    assert event["columnDefinitions"] is None
    assert event["metadata"] == {"resourceVersion": "99"}
    assert [r["cells"][:3] for r in event["rows"]] == [["web", "1/1", "Running"]]
    first = table_row_for_watch(info("pods"), item, now=NOW, headers=True, include_object="None")
    assert [c["name"] for c in first["columnDefinitions"]][:3] == ["Name", "Ready", "Status"]
    assert first["rows"][0]["object"] is None


def test_api_service_watch_events_always_carry_their_columns() -> None:
    event = table_row_for_watch(info("apiservices", "apiregistration.k8s.io"), obj("v1."), now=NOW)
    assert [c["name"] for c in event["columnDefinitions"]] == [
        "Name",
        "Service",
        "Available",
        "Age",
    ]


def test_ten_thousand_pods_convert_to_ten_thousand_rows() -> None:
    items = [
        pod(
            f"web-{i}",
            containers=2,
            statuses=[running("c0", restarts=i % 3), waiting("CrashLoopBackOff", "c1")],
            spec={"nodeName": f"node-{i % 50}"},
            status={"podIPs": [{"ip": f"10.0.{i // 250}.{i % 250}"}]},
            metadata={"namespace": f"ns-{i % 40}"},
        )
        for i in range(10_000)
    ]
    result = table("pods", *items)
    assert len(result["rows"]) == 10_000
    assert result["rows"][1]["cells"][:4] == ["web-1", "1/2", "CrashLoopBackOff", "1"]
