"""Defaults for the built-in kinds, as Kubernetes' v1 defaulting functions set them.

Follows ``pkg/apis/*/v1/defaults.go`` and the generated ``zz_generated.defaults.go``
(which call the per-type functions on every nested struct: containers, probes,
volumes...). A few values Kubernetes sets elsewhere on create are included because
clients see them on every object read back:

* Namespace ``spec.finalizers: [kubernetes]`` and ``status.phase: Active`` (namespace
  strategy), Pod ``status.phase: Pending`` and ``status.qosClass`` (pod strategy);
* Job selector and pod-template labels generated from the Job's uid (job strategy);
* Service ``clusterIPs`` mirrored from ``clusterIP``, ``ipFamilies``/``ipFamilyPolicy``
  for a single-stack IPv4 cluster (service REST storage; the clusterIP allocation itself
  is the store's job);
* on Pods, what the default admission plugins add: ``serviceAccountName: default``,
  ``priority: 0`` with ``preemptionPolicy: PreemptLowerPriority``, and the
  ``not-ready``/``unreachable`` NoExecute tolerations for 300 s.

Every function mutates in place, only fills what is unset, and ignores values of the
wrong JSON type (validation reports those).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.api import quantity as _quantity

Obj = dict[str, Any]


def _child(parent: Obj, key: str) -> Obj:
    """``parent[key]`` as a dict, created when missing or null."""
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    value = {}
    parent[key] = value
    return value


def _get(parent: Obj, key: str) -> Obj | None:
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _items(parent: Obj, key: str) -> list[Obj]:
    value = parent.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _unset(obj: Obj, key: str) -> bool:
    """Go's zero value: missing, null or empty string."""
    value = obj.get(key)
    return value is None or value == ""


def _nil(obj: Obj, key: str) -> bool:
    return obj.get(key) is None


# --- core/v1: pod spec pieces ----------------------------------------------------------
def image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged, undigested image; else ``IfNotPresent``."""
    name = image.strip()
    digest = ""
    if "@" in name:
        name, _, digest = name.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _http_get(action: Obj | None) -> None:
    if action is None:
        return
    if _unset(action, "path"):
        action["path"] = "/"
    if _unset(action, "scheme"):
        action["scheme"] = "HTTP"


def _probe(probe: Obj | None) -> None:
    if probe is None:
        return
    if not probe.get("timeoutSeconds"):
        probe["timeoutSeconds"] = 1
    if not probe.get("periodSeconds"):
        probe["periodSeconds"] = 10
    if not probe.get("successThreshold"):
        probe["successThreshold"] = 1
    if not probe.get("failureThreshold"):
        probe["failureThreshold"] = 3
    _http_get(_get(probe, "httpGet"))
    grpc = _get(probe, "grpc")
    if grpc is not None and _nil(grpc, "service"):
        grpc["service"] = ""


def _field_ref(ref: Obj | None) -> None:
    if ref is not None and _unset(ref, "apiVersion"):
        ref["apiVersion"] = "v1"


def _container(c: Obj) -> None:
    if _unset(c, "imagePullPolicy"):
        image = c.get("image")
        c["imagePullPolicy"] = image_pull_policy(image if isinstance(image, str) else "")
    if _unset(c, "terminationMessagePath"):
        c["terminationMessagePath"] = "/dev/termination-log"
    if _unset(c, "terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for port in _items(c, "ports"):
        if _unset(port, "protocol"):
            port["protocol"] = "TCP"
    for env in _items(c, "env"):
        value_from = _get(env, "valueFrom")
        if value_from is not None:
            _field_ref(_get(value_from, "fieldRef"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(_get(c, key))
    lifecycle = _get(c, "lifecycle")
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            handler = _get(lifecycle, hook)
            if handler is not None:
                _http_get(_get(handler, "httpGet"))


_SOURCE_DEFAULTS: dict[str, Callable[[Obj], None]] = {}


def _mode(source: Obj) -> None:
    if _nil(source, "defaultMode"):
        source["defaultMode"] = 420


def _host_path(source: Obj) -> None:
    if _nil(source, "type"):
        source["type"] = ""


def _downward(source: Obj) -> None:
    _mode(source)
    for item in _items(source, "items"):
        _field_ref(_get(item, "fieldRef"))


def _projected(source: Obj) -> None:
    _mode(source)
    for src in _items(source, "sources"):
        downward = _get(src, "downwardAPI")
        if downward is not None:
            for item in _items(downward, "items"):
                _field_ref(_get(item, "fieldRef"))
        token = _get(src, "serviceAccountToken")
        if token is not None and _nil(token, "expirationSeconds"):
            token["expirationSeconds"] = 3600


def _iscsi(source: Obj) -> None:
    if _unset(source, "iscsiInterface"):
        source["iscsiInterface"] = "default"


def _rbd(source: Obj) -> None:
    if _unset(source, "pool"):
        source["pool"] = "rbd"
    if _unset(source, "user"):
        source["user"] = "admin"
    if _unset(source, "keyring"):
        source["keyring"] = "/etc/ceph/keyring"


def _azure_disk(source: Obj) -> None:
    if _nil(source, "cachingMode"):
        source["cachingMode"] = "ReadWrite"
    if _nil(source, "kind"):
        source["kind"] = "Shared"
    if _nil(source, "fsType"):
        source["fsType"] = "ext4"
    if _nil(source, "readOnly"):
        source["readOnly"] = False


def _scale_io(source: Obj) -> None:
    if _unset(source, "storageMode"):
        source["storageMode"] = "ThinProvisioned"
    if _unset(source, "fsType"):
        source["fsType"] = "xfs"


def _ephemeral(source: Obj) -> None:
    template = _get(source, "volumeClaimTemplate")
    if template is not None:
        _pvc_spec(_child(template, "spec"))


_SOURCE_DEFAULTS.update(
    {
        "hostPath": _host_path,
        "secret": _mode,
        "configMap": _mode,
        "downwardAPI": _downward,
        "projected": _projected,
        "iscsi": _iscsi,
        "rbd": _rbd,
        "azureDisk": _azure_disk,
        "scaleIO": _scale_io,
        "ephemeral": _ephemeral,
    }
)
_VOLUME_SOURCES = frozenset(
    [
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ]
)


def _volume(volume: Obj) -> None:
    has_source = False
    for key, value in volume.items():
        if key in _VOLUME_SOURCES and value is not None:
            has_source = True
            fn = _SOURCE_DEFAULTS.get(key)
            if fn is not None and isinstance(value, dict):
                fn(value)
    if not has_source:
        volume["emptyDir"] = {}
    image = _get(volume, "image")
    if image is not None and _unset(image, "pullPolicy"):
        ref = image.get("reference")
        image["pullPolicy"] = image_pull_policy(ref if isinstance(ref, str) else "")


def pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` plus the generated defaults of everything inside a PodSpec."""
    if _unset(spec, "dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if _unset(spec, "restartPolicy"):
        spec["restartPolicy"] = "Always"
    if _nil(spec, "securityContext"):
        spec["securityContext"] = {}
    if _nil(spec, "terminationGracePeriodSeconds"):
        spec["terminationGracePeriodSeconds"] = 30
    if _unset(spec, "schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for volume in _items(spec, "volumes"):
        _volume(volume)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _items(spec, key):
            _container(c)


def _requests_from_limits(c: Obj) -> None:
    resources = _get(c, "resources")
    if resources is None:
        return
    limits = _get(resources, "limits")
    if limits is None:
        return
    requests = _child(resources, "requests")
    for k, v in limits.items():
        if k not in requests:
            requests[k] = v


_DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_QOS_RESOURCES = ("cpu", "memory")


def _qos_class(spec: Obj) -> str:
    """``qos.GetPodQOS``: sums of positive cpu/memory requests and limits over containers."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for key in ("initContainers", "containers"):
        for c in _items(spec, key):
            resources = _get(c, "resources") or {}
            found = set()
            for bucket, totals in (("requests", requests), ("limits", limits)):
                values = _get(resources, bucket) or {}
                for name in _QOS_RESOURCES:
                    q = _quantity.parse(values.get(name))
                    if q is not None and q > 0:
                        totals[name] = totals.get(name, 0) + q
                        if bucket == "limits":
                            found.add(name)
            if len(found) != len(_QOS_RESOURCES):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if (
        guaranteed
        and all(limits.get(k) == v for k, v in requests.items())
        and len(requests) == len(limits)
    ):
        return "Guaranteed"
    return "Burstable"


_SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


def pod(obj: Obj) -> None:
    spec = _child(obj, "spec")
    for key in ("containers", "initContainers"):
        for c in _items(spec, key):
            _requests_from_limits(c)
    if _nil(spec, "enableServiceLinks"):
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _items(spec, key):
                for port in _items(c, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    pod_spec(spec)
    # What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add.
    if _unset(spec, "serviceAccountName"):
        account = spec.get("serviceAccount")
        spec["serviceAccountName"] = account if isinstance(account, str) and account else "default"
    if _unset(spec, "serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    class_name = spec.get("priorityClassName")
    if not class_name:
        if _nil(spec, "priority"):
            spec["priority"] = 0
        if _nil(spec, "preemptionPolicy"):
            spec["preemptionPolicy"] = "PreemptLowerPriority"
    elif class_name in _SYSTEM_PRIORITIES:
        if _nil(spec, "priority"):
            spec["priority"] = _SYSTEM_PRIORITIES[class_name]
        if _nil(spec, "preemptionPolicy"):
            spec["preemptionPolicy"] = "PreemptLowerPriority"
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = spec["tolerations"] = []
    if isinstance(tolerations, list):
        for key in _DEFAULT_TOLERATION_KEYS:
            if not any(
                isinstance(t, dict)
                and t.get("key") in (key, None, "")
                and t.get("effect") in (None, "", "NoExecute")
                for t in tolerations
            ):
                tolerations.append(
                    {
                        "key": key,
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }
                )
    # PrepareForCreate: a pod starts Pending with its QoS class. The store drops the
    # body's status on create and carries the stored one over on update, so filling
    # only what is unset gives the same result on both paths.
    status = _child(obj, "status")
    if _unset(status, "phase"):
        status["phase"] = "Pending"
    if _unset(status, "qosClass"):
        status["qosClass"] = _qos_class(spec)


def _template(parent: Obj) -> None:
    pod_spec(_child(_child(parent, "template"), "spec"))


def pod_template(obj: Obj) -> None:
    _template(obj)


def replication_controller(obj: Obj) -> None:
    spec = _child(obj, "spec")
    template = _get(spec, "template")
    labels = _get(template, "metadata") if template is not None else None
    template_labels = labels.get("labels") if labels is not None else None
    if isinstance(template_labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        meta = _child(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(template_labels)
    if _nil(spec, "replicas"):
        spec["replicas"] = 1
    if template is not None:
        pod_spec(_child(template, "spec"))


def service(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _unset(spec, "sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _get(_get(spec, "sessionAffinityConfig") or {}, "clientIP")
        if client_ip is None or _nil(client_ip, "timeoutSeconds"):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if _unset(spec, "type"):
        spec["type"] = "ClusterIP"
    kind = spec["type"]
    for port in _items(spec, "ports"):
        if _unset(port, "protocol"):
            port["protocol"] = "TCP"
        target = port.get("targetPort")
        if target is None or target == 0 or target == "":
            port["targetPort"] = port.get("port")
    externally_accessible = kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if externally_accessible and _unset(spec, "externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if _nil(spec, "internalTrafficPolicy") and kind in ("NodePort", "LoadBalancer", "ClusterIP"):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer" and _nil(spec, "allocateLoadBalancerNodePorts"):
        spec["allocateLoadBalancerNodePorts"] = True
    if kind != "ExternalName":
        cluster_ip = spec.get("clusterIP")
        if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [cluster_ip]
        if _nil(spec, "ipFamilyPolicy"):
            spec["ipFamilyPolicy"] = "SingleStack"
        if not spec.get("ipFamilies"):
            ips = spec.get("clusterIPs")
            families = []
            if isinstance(ips, list):
                families = [
                    "IPv6" if ":" in ip else "IPv4"
                    for ip in ips
                    if isinstance(ip, str) and ip != "None"
                ]
            spec["ipFamilies"] = families or ["IPv4"]


def endpoints(obj: Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            if _unset(port, "protocol"):
                port["protocol"] = "TCP"


def secret(obj: Obj) -> None:
    if _unset(obj, "type"):
        obj["type"] = "Opaque"


def namespace(obj: Obj) -> None:
    meta = _child(obj, "metadata")
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = _child(meta, "labels")
        labels["kubernetes.io/metadata.name"] = name
    status = _child(obj, "status")
    if _unset(status, "phase"):
        status["phase"] = "Active"
    spec = _child(obj, "spec")
    if meta.get("deletionTimestamp"):
        return
    finalizers = spec.get("finalizers")
    if finalizers is None:
        spec["finalizers"] = ["kubernetes"]
    elif isinstance(finalizers, list) and "kubernetes" not in finalizers:
        # Kubernetes appends it on create and ignores spec.finalizers on update (only
        # namespaces/<name>/finalize may drop it, and only once the namespace is deleting).
        finalizers.append("kubernetes")


def node(obj: Obj) -> None:
    status = _get(obj, "status")
    if (
        status is not None
        and _nil(status, "allocatable")
        and isinstance(status.get("capacity"), dict)
    ):
        status["allocatable"] = dict(status["capacity"])


def persistent_volume(obj: Obj) -> None:
    status = _child(obj, "status")
    if _unset(status, "phase"):
        status["phase"] = "Pending"
    spec = _child(obj, "spec")
    if _unset(spec, "persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if _nil(spec, "volumeMode"):
        spec["volumeMode"] = "Filesystem"
    for key, fn in (
        ("hostPath", _host_path),
        ("iscsi", _iscsi),
        ("rbd", _rbd),
        ("azureDisk", _azure_disk),
        ("scaleIO", _scale_io),
    ):
        source = _get(spec, key)
        if source is not None:
            fn(source)


def _pvc_spec(spec: Obj) -> None:
    if _nil(spec, "volumeMode"):
        spec["volumeMode"] = "Filesystem"


def persistent_volume_claim(obj: Obj) -> None:
    status = _child(obj, "status")
    if _unset(status, "phase"):
        status["phase"] = "Pending"
    _pvc_spec(_child(obj, "spec"))


# --- apps/v1 ---------------------------------------------------------------------------
def deployment(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _nil(spec, "replicas"):
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    if _unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        if _nil(rolling, "maxUnavailable"):
            rolling["maxUnavailable"] = "25%"
        if _nil(rolling, "maxSurge"):
            rolling["maxSurge"] = "25%"
    if _nil(spec, "revisionHistoryLimit"):
        spec["revisionHistoryLimit"] = 10
    if _nil(spec, "progressDeadlineSeconds"):
        spec["progressDeadlineSeconds"] = 600
    _template(spec)


def replica_set(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _nil(spec, "replicas"):
        spec["replicas"] = 1
    _template(spec)


def daemon_set(obj: Obj) -> None:
    spec = _child(obj, "spec")
    strategy = _child(spec, "updateStrategy")
    if _unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        if _nil(rolling, "maxUnavailable"):
            rolling["maxUnavailable"] = 1
        if _nil(rolling, "maxSurge"):
            rolling["maxSurge"] = 0
    if _nil(spec, "revisionHistoryLimit"):
        spec["revisionHistoryLimit"] = 10
    _template(spec)


def stateful_set(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _unset(spec, "podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = _child(spec, "updateStrategy")
    if _unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
        if _nil(strategy, "rollingUpdate"):
            strategy["rollingUpdate"] = {}
    rolling = _get(strategy, "rollingUpdate")
    if strategy["type"] == "RollingUpdate" and rolling is not None and _nil(rolling, "partition"):
        rolling["partition"] = 0
    policy = _child(spec, "persistentVolumeClaimRetentionPolicy")
    if _unset(policy, "whenDeleted"):
        policy["whenDeleted"] = "Retain"
    if _unset(policy, "whenScaled"):
        policy["whenScaled"] = "Retain"
    if _nil(spec, "replicas"):
        spec["replicas"] = 1
    if _nil(spec, "revisionHistoryLimit"):
        spec["revisionHistoryLimit"] = 10
    _template(spec)
    for claim in _items(spec, "volumeClaimTemplates"):
        claim_status = _child(claim, "status")
        if _unset(claim_status, "phase"):
            claim_status["phase"] = "Pending"
        _pvc_spec(_child(claim, "spec"))


# --- batch/v1 --------------------------------------------------------------------------
def _generate_job_selector(obj: Obj) -> None:
    meta = _child(obj, "metadata")
    uid = meta.get("uid")
    name = meta.get("name")
    if not isinstance(uid, str) or not uid:
        return
    spec = _child(obj, "spec")
    template = _child(spec, "template")
    labels = _child(_child(template, "metadata"), "labels")
    for key in ("job-name", "batch.kubernetes.io/job-name"):
        if key not in labels and isinstance(name, str):
            labels[key] = name
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        if key not in labels:
            labels[key] = uid
    match_labels = _child(_child(spec, "selector"), "matchLabels")
    if "batch.kubernetes.io/controller-uid" not in match_labels:
        match_labels["batch.kubernetes.io/controller-uid"] = uid


def _job_spec(spec: Obj) -> None:
    if _nil(spec, "completions") and _nil(spec, "parallelism"):
        spec["completions"] = 1
        spec["parallelism"] = 1
    if _nil(spec, "parallelism"):
        spec["parallelism"] = 1
    if _nil(spec, "backoffLimit"):
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    if _nil(spec, "completionMode"):
        spec["completionMode"] = "NonIndexed"
    if _nil(spec, "suspend"):
        spec["suspend"] = False
    failure_policy = _get(spec, "podFailurePolicy")
    if failure_policy is not None:
        for rule in _items(failure_policy, "rules"):
            for pattern in _items(rule, "onPodConditions"):
                if _unset(pattern, "status"):
                    pattern["status"] = "True"
    if _nil(spec, "podReplacementPolicy"):
        spec["podReplacementPolicy"] = (
            "Failed" if failure_policy is not None else "TerminatingOrFailed"
        )
    if _nil(spec, "manualSelector"):
        spec["manualSelector"] = False


def job(obj: Obj) -> None:
    spec = _child(obj, "spec")
    _job_spec(spec)
    if spec.get("manualSelector") is not True:
        _generate_job_selector(obj)
    template = _child(spec, "template")
    template_labels = _get(_child(template, "metadata"), "labels")
    meta = _child(obj, "metadata")
    if template_labels is not None and not meta.get("labels"):
        meta["labels"] = dict(template_labels)
    pod_spec(_child(template, "spec"))


def cron_job(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _unset(spec, "concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if _nil(spec, "suspend"):
        spec["suspend"] = False
    if _nil(spec, "successfulJobsHistoryLimit"):
        spec["successfulJobsHistoryLimit"] = 3
    if _nil(spec, "failedJobsHistoryLimit"):
        spec["failedJobsHistoryLimit"] = 1
    job_template = _get(spec, "jobTemplate")
    if job_template is not None:
        job_spec = _child(job_template, "spec")
        failure_policy = _get(job_spec, "podFailurePolicy")
        if failure_policy is not None:
            for rule in _items(failure_policy, "rules"):
                for pattern in _items(rule, "onPodConditions"):
                    if _unset(pattern, "status"):
                        pattern["status"] = "True"
        _template(job_spec)


# --- autoscaling/v2 --------------------------------------------------------------------
def _scale_up_rules() -> Obj:
    return {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }


def _scale_down_rules() -> Obj:
    # No stabilizationWindowSeconds: the controller's --horizontal-pod-autoscaler-
    # downscale-stabilization (5m) applies, so Kubernetes leaves it unset.
    return {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }


def _merge_rules(given: Any, defaults: Obj) -> Obj:
    if not isinstance(given, dict):
        return defaults
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
        if given.get(key) is not None:
            defaults[key] = given[key]
    return defaults


def horizontal_pod_autoscaler(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if _nil(spec, "minReplicas"):
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    behavior = _get(spec, "behavior")
    if behavior is not None:
        behavior["scaleUp"] = _merge_rules(behavior.get("scaleUp"), _scale_up_rules())
        behavior["scaleDown"] = _merge_rules(behavior.get("scaleDown"), _scale_down_rules())


# --- other groups ----------------------------------------------------------------------
def endpoint_slice(obj: Obj) -> None:
    for port in _items(obj, "ports"):
        if _nil(port, "name"):
            port["name"] = ""
        if _nil(port, "protocol"):
            port["protocol"] = "TCP"


def storage_class(obj: Obj) -> None:
    if _nil(obj, "reclaimPolicy"):
        obj["reclaimPolicy"] = "Delete"
    if _nil(obj, "volumeBindingMode"):
        obj["volumeBindingMode"] = "Immediate"


BY_KIND: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): pod,
    ("", "PodTemplate"): pod_template,
    ("", "ReplicationController"): replication_controller,
    ("", "Service"): service,
    ("", "Endpoints"): endpoints,
    ("", "Secret"): secret,
    ("", "Namespace"): namespace,
    ("", "Node"): node,
    ("", "PersistentVolume"): persistent_volume,
    ("", "PersistentVolumeClaim"): persistent_volume_claim,
    ("apps", "Deployment"): deployment,
    ("apps", "ReplicaSet"): replica_set,
    ("apps", "DaemonSet"): daemon_set,
    ("apps", "StatefulSet"): stateful_set,
    ("batch", "Job"): job,
    ("batch", "CronJob"): cron_job,
    ("autoscaling", "HorizontalPodAutoscaler"): horizontal_pod_autoscaler,
    ("discovery.k8s.io", "EndpointSlice"): endpoint_slice,
    ("storage.k8s.io", "StorageClass"): storage_class,
}
