"""The official ``kubernetes`` Python client's side of tests/integration/test_client_compat.py.

Run as a script under one client version (the test runs it with the newest release and
with the oldest the project supports, each from its own ``sys.path``): typed create,
read, patch, list and delete of one object of every kind in
``tests/testdata/client_compat/kinds.yaml``, a second object of each kind deleted raw
(``_preload_content=False``: status code and body bytes), a custom resource through
``CustomObjectsApi``, a graceful pod deletion, errors of a create that conflicts and
``utils.create_from_yaml`` over an existing object. It asserts nothing: it prints one
JSON document of what the client returned, and the test compares that with what
kube-apiserver answers.

Usage: client_compat_scenario.py KUBECONFIG MANIFESTS NAMESPACE CSR_BASE64
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, utils
from kubernetes.client.rest import ApiException

API_CLASSES = {
    "v1": "CoreV1Api",
    "apps/v1": "AppsV1Api",
    "batch/v1": "BatchV1Api",
    "autoscaling/v2": "AutoscalingV2Api",
    "networking.k8s.io/v1": "NetworkingV1Api",
    "policy/v1": "PolicyV1Api",
    "rbac.authorization.k8s.io/v1": "RbacAuthorizationV1Api",
    "storage.k8s.io/v1": "StorageV1Api",
    "coordination.k8s.io/v1": "CoordinationV1Api",
    "discovery.k8s.io/v1": "DiscoveryV1Api",
    "events.k8s.io/v1": "EventsV1Api",
    "scheduling.k8s.io/v1": "SchedulingV1Api",
    "node.k8s.io/v1": "NodeV1Api",
    "flowcontrol.apiserver.k8s.io/v1": "FlowcontrolApiserverV1Api",
    "admissionregistration.k8s.io/v1": "AdmissionregistrationV1Api",
    "certificates.k8s.io/v1": "CertificatesV1Api",
    "apiextensions.k8s.io/v1": "ApiextensionsV1Api",
}

# The client's method name part of each kind (create_namespaced_<part>, create_<part>).
METHOD_PARTS = {
    "ConfigMap": "config_map",
    "Secret": "secret",
    "ServiceAccount": "service_account",
    "Service": "service",
    "Endpoints": "endpoints",
    "Event": "event",
    "LimitRange": "limit_range",
    "ResourceQuota": "resource_quota",
    "PodTemplate": "pod_template",
    "ReplicationController": "replication_controller",
    "PersistentVolumeClaim": "persistent_volume_claim",
    "PersistentVolume": "persistent_volume",
    "Node": "node",
    "Namespace": "namespace",
    "Pod": "pod",
    "Deployment": "deployment",
    "ReplicaSet": "replica_set",
    "StatefulSet": "stateful_set",
    "DaemonSet": "daemon_set",
    "ControllerRevision": "controller_revision",
    "Job": "job",
    "CronJob": "cron_job",
    "HorizontalPodAutoscaler": "horizontal_pod_autoscaler",
    "IngressClass": "ingress_class",
    "Ingress": "ingress",
    "NetworkPolicy": "network_policy",
    "PodDisruptionBudget": "pod_disruption_budget",
    "Role": "role",
    "RoleBinding": "role_binding",
    "ClusterRole": "cluster_role",
    "ClusterRoleBinding": "cluster_role_binding",
    "StorageClass": "storage_class",
    "CSIDriver": "csi_driver",
    "CSINode": "csi_node",
    "CSIStorageCapacity": "csi_storage_capacity",
    "VolumeAttachment": "volume_attachment",
    "Lease": "lease",
    "EndpointSlice": "endpoint_slice",
    "PriorityClass": "priority_class",
    "RuntimeClass": "runtime_class",
    "PriorityLevelConfiguration": "priority_level_configuration",
    "FlowSchema": "flow_schema",
    "ValidatingWebhookConfiguration": "validating_webhook_configuration",
    "MutatingWebhookConfiguration": "mutating_webhook_configuration",
    "ValidatingAdmissionPolicy": "validating_admission_policy",
    "ValidatingAdmissionPolicyBinding": "validating_admission_policy_binding",
    "CertificateSigningRequest": "certificate_signing_request",
    "CustomResourceDefinition": "custom_resource_definition",
}

CLUSTER_SCOPED = {
    "PersistentVolume",
    "Node",
    "Namespace",
    "IngressClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "PriorityClass",
    "RuntimeClass",
    "PriorityLevelConfiguration",
    "FlowSchema",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CertificateSigningRequest",
    "CustomResourceDefinition",
}


def text(body: Any) -> Any:
    """A response body as text (the client generations keep it as str or bytes)."""
    return body.decode() if isinstance(body, bytes) else body


def summary(value: Any) -> dict[str, Any]:
    """The fields the test compares, read the same way from both client generations
    (attributes of typed models; custom objects are plain dicts)."""
    if isinstance(value, dict):
        meta = value.get("metadata") or {}
        return {
            "kind": value.get("kind"),
            "status": value.get("status"),
            "details": value.get("details"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        }
    out: dict[str, Any] = {"kind": getattr(value, "kind", None)}
    meta = getattr(value, "metadata", None)
    if getattr(value, "items", None) is not None:
        out["names"] = [item.metadata.name for item in value.items]
        return out
    if type(value).__name__ == "V1Status":
        details = value.details
        out["status"] = value.status
        out["code"] = value.code
        out["details"] = (
            None
            if details is None
            else {
                "name": details.name,
                "group": details.group,
                "kind": details.kind,
                "uid": details.uid,
            }
        )
        return out
    if meta is not None:
        out["name"] = meta.name
        out["uid"] = meta.uid
        out["labels"] = meta.labels
        out["deletion_timestamp"] = (
            str(meta.deletion_timestamp) if meta.deletion_timestamp else None
        )
    return out


def outcome(call: Any) -> dict[str, Any]:
    """What a typed call gave: the returned object's class and fields, or the error."""
    try:
        value = call()
    except ApiException as exc:
        return {
            "error": "ApiException",
            "status": exc.status,
            "reason": exc.reason,
            "body": exc.body,
        }
    except Exception as exc:  # the client's own deserialisation errors
        return {"error": type(exc).__name__, "message": str(exc)[:500]}
    return {"type": type(value).__name__, **summary(value)}


def raw(call: Any) -> dict[str, Any]:
    """A call made with ``_preload_content=False``: status code and body text."""
    try:
        response = call()
    except ApiException as exc:
        return {"status": exc.status, "body": text(exc.body)}
    return {"status": response.status, "body": text(response.data)}


class Kind:
    def __init__(self, api_client: client.ApiClient, doc: dict[str, Any], namespace: str) -> None:
        self.kind = doc["kind"]
        self.api = getattr(client, API_CLASSES[doc["apiVersion"]])(api_client)
        part = METHOD_PARTS[self.kind]
        self.namespaced = self.kind not in CLUSTER_SCOPED
        self.infix = "namespaced_" if self.namespaced else ""
        self.part = part
        self.ns_args = (namespace,) if self.namespaced else ()
        self.list_args = (namespace,) if self.namespaced else ()

    def method(self, verb: str) -> Any:
        return getattr(self.api, f"{verb}_{self.infix}{self.part}")

    def run(self, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["metadata"]["name"]
        result: dict[str, Any] = {"kind": self.kind, "name": name}
        result["create"] = outcome(lambda: self.method("create")(*self.ns_args, doc))
        result["conflict"] = outcome(lambda: self.method("create")(*self.ns_args, doc))
        result["read"] = outcome(lambda: self.method("read")(name, *self.ns_args))
        patch = {"metadata": {"labels": {"compat": "patched"}}}
        result["patch"] = outcome(lambda: self.method("patch")(name, *self.ns_args, patch))
        result["list"] = outcome(lambda: self.method("list")(*self.list_args))
        result["delete"] = outcome(lambda: self.method("delete")(name, *self.ns_args))
        twin = copy.deepcopy(doc)
        twin["metadata"]["name"] = f"{name}-raw"
        created = outcome(lambda: self.method("create")(*self.ns_args, twin))
        result["raw_uid"] = created.get("uid")
        result["delete_raw"] = raw(
            lambda: self.method("delete")(f"{name}-raw", *self.ns_args, _preload_content=False)
        )
        return result


def custom_resource(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "compat-widget"},
        "spec": {"size": "small"},
    }
    out: dict[str, Any] = {}
    group, version, plural = "example.com", "v1", "widgets"
    out["create"] = outcome(
        lambda: custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    )
    out["delete"] = outcome(
        lambda: custom.delete_namespaced_custom_object(
            group, version, namespace, plural, "compat-widget"
        )
    )
    return out


def graceful_pod(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    """A pod bound to a node (no kubelet runs here) is deleted gracefully: the object
    stays, with its deletion timestamp, until it is force-deleted."""
    core = client.CoreV1Api(api_client)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "compat-graceful"},
        "spec": {
            "nodeName": "compat-absent-node",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }
    out: dict[str, Any] = {"create": outcome(lambda: core.create_namespaced_pod(namespace, body))}
    out["graceful"] = raw(
        lambda: core.delete_namespaced_pod("compat-graceful", namespace, _preload_content=False)
    )
    out["force"] = outcome(
        lambda: core.delete_namespaced_pod("compat-graceful", namespace, grace_period_seconds=0)
    )
    return out


def crds(api_client: client.ApiClient) -> dict[str, Any]:
    """Two CRDs deleted, one through the typed call, one raw."""
    ext = client.ApiextensionsV1Api(api_client)

    def crd(plural: str) -> dict[str, Any]:
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.compat.example.com"},
            "spec": {
                "group": "compat.example.com",
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": plural[:-1], "kind": plural[:-1].title()},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        }

    out = {
        "create": outcome(lambda: ext.create_custom_resource_definition(crd("gizmos"))),
        "delete": outcome(
            lambda: ext.delete_custom_resource_definition("gizmos.compat.example.com")
        ),
    }
    created = outcome(lambda: ext.create_custom_resource_definition(crd("doohickeys")))
    out["raw_uid"] = created.get("uid")
    out["delete_raw"] = raw(
        lambda: ext.delete_custom_resource_definition(
            "doohickeys.compat.example.com", _preload_content=False
        )
    )
    return out


def from_yaml(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    """``utils.create_from_yaml`` over one existing and one new object."""
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compat-yaml"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "compat-yaml"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "compat-yaml"}},
                "template": {
                    "metadata": {"labels": {"app": "compat-yaml"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "objects.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        utils.create_from_yaml(api_client, str(path), namespace=namespace)
        try:
            utils.create_from_yaml(api_client, str(path), namespace=namespace)
        except utils.FailToCreateError as exc:
            return {"error": str(exc), "count": len(exc.api_exceptions)}
    return {"error": None}


def main() -> None:
    kubeconfig, manifests, namespace, csr = sys.argv[1:5]
    api_client = config.new_client_from_config(config_file=kubeconfig)
    docs = [d for d in yaml.safe_load_all(Path(manifests).read_text()) if d]
    results = []
    for doc in docs:
        if doc["kind"] == "CertificateSigningRequest":
            doc["spec"]["request"] = csr
        if doc["kind"] == "Event" and "involvedObject" in doc:
            doc["involvedObject"]["namespace"] = namespace
        results.append(Kind(api_client, doc, namespace).run(doc))
    report = {
        "version": __import__("kubernetes").__version__,
        # From release 35 on the generated models are pydantic models, which check the
        # answer against the declared type (older ones copy whatever arrives).
        "pydantic": any(c.__module__.startswith("pydantic") for c in client.V1Pod.__mro__),
        "kinds": results,
        "custom": custom_resource(api_client, namespace),
        "crds": crds(api_client),
        "pod": graceful_pod(api_client, namespace),
        "from_yaml": from_yaml(api_client, namespace),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
