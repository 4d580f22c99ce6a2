"""The official ``kubernetes`` Python client works against the built-in cluster as it does
against kube-apiserver — the newest release (pydantic models, which check every answer
against the declared type) and the oldest the project supports (``kubernetes==30.1.0``,
installed by scripts/test.sh under ``.cache/clients``).

The client side runs in a subprocess per version (tests/integration/client_compat_scenario.py):
typed CRUD of every built-in kind the server serves (tests/testdata/client_compat/kinds.yaml),
the return value of every delete (typed, and raw bytes), a custom resource and CRDs,
a graceful pod deletion, a conflicting create and ``utils.create_from_yaml`` over existing
objects. This module compares that with what kube-apiserver answers (its registries'
``ReturnDeletedObject``, ``finalizeDelete``'s Success Status, errors.go's messages, Go's
encoding/json field order and trailing newline), written out here independently of the
server's code. kubectl 1.35's ``delete`` output is checked too.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, ClusterProcess
from tests.integration.harness import kubectl

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).with_name("client_compat_scenario.py")
KINDS = ROOT / "tests" / "testdata" / "client_compat" / "kinds.yaml"
WIDGET_CRD = ROOT / "tests" / "testdata" / "manifests" / "crd.yaml"
NAMESPACE = "compat"
OLDEST = "30.1.0"

# kind -> (API group, resource) as kube-apiserver serves them.
RESOURCES = {
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Service": ("", "services"),
    "Endpoints": ("", "endpoints"),
    "LimitRange": ("", "limitranges"),
    "ResourceQuota": ("", "resourcequotas"),
    "PodTemplate": ("", "podtemplates"),
    "ReplicationController": ("", "replicationcontrollers"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "PersistentVolume": ("", "persistentvolumes"),
    "Node": ("", "nodes"),
    "Namespace": ("", "namespaces"),
    "Pod": ("", "pods"),
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ControllerRevision": ("apps", "controllerrevisions"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "IngressClass": ("networking.k8s.io", "ingressclasses"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "StorageClass": ("storage.k8s.io", "storageclasses"),
    "CSIDriver": ("storage.k8s.io", "csidrivers"),
    "CSINode": ("storage.k8s.io", "csinodes"),
    "CSIStorageCapacity": ("storage.k8s.io", "csistoragecapacities"),
    "VolumeAttachment": ("storage.k8s.io", "volumeattachments"),
    "Lease": ("coordination.k8s.io", "leases"),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices"),
    "PriorityClass": ("scheduling.k8s.io", "priorityclasses"),
    "RuntimeClass": ("node.k8s.io", "runtimeclasses"),
    "PriorityLevelConfiguration": ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    "FlowSchema": ("flowcontrol.apiserver.k8s.io", "flowschemas"),
    "ValidatingWebhookConfiguration": (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
    "MutatingWebhookConfiguration": (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
    "ValidatingAdmissionPolicy": ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": (
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
    ),
    "CertificateSigningRequest": ("certificates.k8s.io", "certificatesigningrequests"),
    "Event": ("", "events"),
}

# kube-apiserver's registries with ReturnDeletedObject (pkg/registry/*/storage/storage.go):
# an immediate DELETE answers with the object; every other kind with a Success Status.
RETURNS_OBJECT = {
    "Pod",
    "Service",
    "ServiceAccount",
    "Namespace",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ResourceQuota",
    "PodTemplate",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
}
# Kinds whose typed delete the OpenAPI spec declares as answering a Status while
# kube-apiserver answers with the object (a Namespace and a CRD are marked for deletion
# first): the clients hand over whatever arrived.
DECLARED_STATUS_ANSWERED_OBJECT = {"Namespace", "CustomResourceDefinition"}


def go_json(obj: dict[str, Any]) -> str:
    """An object as Go's encoding/json writes it with a json.Encoder: compact, in the
    given key order, HTML characters escaped, a trailing newline."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text + "\n"


def success_status(name: str, group: str, resource: str, uid: str) -> str:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details.update({"kind": resource, "uid": uid})
    return go_json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    )


def already_exists(name: str, group: str, resource: str) -> str:
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return go_json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'{qualified} "{name}" already exists',
            "reason": "AlreadyExists",
            "details": details,
            "code": 409,
        }
    )


def fresh_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "compat")]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode()


def oldest_client() -> Path:
    """Where scripts/test.sh installed the oldest supported client; fails (never skips)
    when it is missing."""
    path = Path(
        os.environ.get("GITOPS_OLDEST_KUBERNETES_CLIENT")
        or ROOT / ".cache" / "clients" / f"kubernetes-{OLDEST}"
    )
    if not (path / "kubernetes" / "__init__.py").is_file():
        pytest.fail(
            f"kubernetes=={OLDEST} is missing at {path}: scripts/test.sh installs it "
            f"(pip install --target {path} kubernetes=={OLDEST})",
            pytrace=False,
        )
    return path


def prepared(proc: ClusterProcess) -> ClusterProcess:
    proc.start()
    kubectl(proc, "create", "namespace", NAMESPACE)
    kubectl(proc, "apply", "-f", str(WIDGET_CRD))
    return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    proc = prepared(ClusterProcess(tmp_path_factory.mktemp("compat")))
    try:
        yield proc
    finally:
        proc.stop()


def run_scenario(proc: ClusterProcess, client_path: Path | None) -> dict[str, Any]:
    env = proc.env()
    if client_path is not None:
        env["PYTHONPATH"] = str(client_path)
    out = subprocess.run(
        [sys.executable, str(SCENARIO), str(proc.kubeconfig), str(KINDS), NAMESPACE, fresh_csr()],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    report: dict[str, Any] = json.loads(out.stdout)
    return report


@pytest.fixture(scope="module", params=["latest", "oldest"])
def report(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """The scenario's report for one client version, on a cluster of its own (the
    scenario's cluster-scoped objects, a Terminating namespace among them, stay)."""
    proc = prepared(ClusterProcess(tmp_path_factory.mktemp(f"compat-{request.param}")))
    try:
        if request.param == "latest":
            result = run_scenario(proc, None)
            assert result["pydantic"], f"the newest client is {result['version']}"
        else:
            result = run_scenario(proc, oldest_client())
            assert result["version"] == OLDEST
            assert not result["pydantic"]
        yield result
    finally:
        proc.stop()


def resource_of(report: dict[str, Any], index: int) -> tuple[str, str]:
    return RESOURCES[report["kinds"][index]["kind"]]


def test_every_kind_is_served_to_typed_create_read_patch_and_list(report: dict[str, Any]) -> None:
    kinds = report["kinds"]
    assert sorted(e["kind"] for e in kinds) == sorted(RESOURCES)
    for entry in kinds:
        for verb in ("create", "read", "patch"):
            out = entry[verb]
            assert "error" not in out, (entry["kind"], verb, out)
            assert out["name"] == entry["name"], (entry["kind"], verb, out)
        assert entry["patch"]["labels"]["compat"] == "patched", entry["kind"]
        assert entry["name"] in entry["list"]["names"], entry["kind"]


def test_a_conflicting_create_raises_with_kube_apiservers_status_body(
    report: dict[str, Any],
) -> None:
    for index, entry in enumerate(report["kinds"]):
        group, resource = resource_of(report, index)
        conflict = entry["conflict"]
        assert (conflict["status"], conflict["reason"]) == (409, "Conflict"), entry
        assert conflict["body"] == already_exists(entry["name"], group, resource)


def test_each_raw_delete_answers_with_the_object_or_a_success_status_as_kube_apiserver(
    report: dict[str, Any],
) -> None:
    for index, entry in enumerate(report["kinds"]):
        kind, name = entry["kind"], f"{entry['name']}-raw"
        group, resource = resource_of(report, index)
        answer = entry["delete_raw"]
        assert answer["status"] == 200, (kind, answer)
        assert answer["body"].endswith("}\n"), (kind, answer["body"][-20:])
        if kind in RETURNS_OBJECT:
            body = json.loads(answer["body"])
            assert (body["kind"], body["metadata"]["name"]) == (kind, name)
            assert body["metadata"]["uid"] == entry["raw_uid"]
            if kind == "Pod":  # deleted at once (no node), as a graceful delete of grace 0
                assert body["metadata"]["deletionGracePeriodSeconds"] == 0
                assert body["metadata"]["deletionTimestamp"]
            if kind == "Namespace":  # marked, finalized later by the namespace controller
                assert body["status"]["phase"] == "Terminating"
        else:
            assert answer["body"] == success_status(name, group, resource, entry["raw_uid"]), kind


def success_details(out: dict[str, Any]) -> dict[str, Any]:
    """The details of a typed delete's Success Status: a ``V1Status`` from the older
    clients, a plain dict from the newer ones (they declare these deletes as ``object``)."""
    assert out["type"] in ("V1Status", "dict"), out
    assert out["kind"] == "Status" and out["status"] == "Success", out
    return {k: v for k, v in (out["details"] or {}).items() if v is not None}


def test_typed_deletes_return_what_they_return_against_kube_apiserver(
    report: dict[str, Any],
) -> None:
    by_kind = {e["kind"]: e for e in report["kinds"]}
    pod = by_kind["Pod"]["delete"]
    assert (pod["type"], pod["name"], pod["uid"]) == (
        "V1Pod",
        "compat-pod",
        by_kind["Pod"]["create"]["uid"],
    )
    assert pod["deletion_timestamp"]
    service = by_kind["Service"]["delete"]
    assert (service["type"], service["name"]) == ("V1Service", "compat-svc")
    assert success_details(by_kind["Deployment"]["delete"]) == {
        "name": "compat-deploy",
        "group": "apps",
        "kind": "deployments",
        "uid": by_kind["Deployment"]["create"]["uid"],
    }
    assert success_details(by_kind["ConfigMap"]["delete"]) == {
        "name": "compat-cm",
        "kind": "configmaps",
        "uid": by_kind["ConfigMap"]["create"]["uid"],
    }
    for kind, entry in by_kind.items():
        out = entry["delete"]
        assert "error" not in out, (kind, out)
        if kind in RETURNS_OBJECT and kind not in DECLARED_STATUS_ANSWERED_OBJECT:
            assert (out["type"], out["name"]) == (f"V1{kind}", entry["name"]), (kind, out)
        elif kind in DECLARED_STATUS_ANSWERED_OBJECT:
            # Declared as a Status, answered with the object marked for deletion: the
            # clients hand over what arrived (a dict, or a V1Status holding its kind).
            assert out["kind"] == kind, (kind, out)
        else:
            group, resource = RESOURCES[kind]
            expected = {"name": entry["name"], "kind": resource, "uid": entry["create"]["uid"]}
            if group:
                expected["group"] = group
            assert success_details(out) == expected, kind


def test_a_custom_resource_delete_returns_a_success_status_naming_the_resource(
    report: dict[str, Any],
) -> None:
    custom = report["custom"]
    assert custom["create"]["type"] == "dict"
    assert success_details(custom["delete"]) == {
        "name": "compat-widget",
        "group": "example.com",
        "kind": "widgets",
        "uid": custom["create"]["uid"],
    }


def test_a_crd_delete_answers_with_the_crd_marked_for_cleanup(report: dict[str, Any]) -> None:
    crds = report["crds"]
    answer = crds["delete_raw"]
    assert answer["status"] == 200
    body = json.loads(answer["body"])
    assert body["kind"] == "CustomResourceDefinition"
    assert body["metadata"]["uid"] == crds["raw_uid"]
    assert body["metadata"]["deletionTimestamp"]
    assert "customresourcecleanup.apiextensions.k8s.io" in body["metadata"]["finalizers"]
    terminating = [c for c in body["status"]["conditions"] if c["type"] == "Terminating"]
    assert terminating and terminating[0]["reason"] == "InstanceDeletionPending"
    assert crds["delete"]["kind"] == "CustomResourceDefinition", crds["delete"]


def test_a_graceful_pod_delete_answers_200_with_the_pod_still_there(report: dict[str, Any]) -> None:
    pod = report["pod"]
    graceful = pod["graceful"]
    assert graceful["status"] == 200
    body = json.loads(graceful["body"])
    assert body["kind"] == "Pod" and body["metadata"]["deletionGracePeriodSeconds"] == 30
    force = pod["force"]
    assert (force["type"], force["name"]) == ("V1Pod", "compat-graceful")


def test_create_from_yaml_over_existing_objects_reports_kube_apiservers_text(
    report: dict[str, Any],
) -> None:
    out = report["from_yaml"]
    assert out["count"] == 2
    assert out["error"] == (
        "Error from server (Conflict): "
        + already_exists("compat-yaml", "", "configmaps")
        + "Error from server (Conflict): "
        + already_exists("compat-yaml", "apps", "deployments")
    )


# --- raw HTTP: codes and bodies the clients above do not show -------------------------------
JSON_PATCH = "application/json-patch+json"


def http(
    proc: ClusterProcess,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        proc.url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {proc.token}",
            "Content-Type": content_type,
            "User-Agent": "compat-test",
        },
    )
    context = ssl.create_default_context(cafile=str(proc.ca))
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}}


CMS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


def test_an_object_held_by_a_finalizer_answers_200_with_the_object_202_only_for_orphan_false(
    cluster: ClusterProcess,
) -> None:
    for name in ("held", "held-orphan"):
        code, _, _ = http(cluster, "POST", CMS, configmap(name, finalizers=["example.com/hold"]))
        assert code == 201
    code, body, _ = http(cluster, "DELETE", f"{CMS}/held")
    assert code == 200
    held = json.loads(body)
    assert held["kind"] == "ConfigMap" and held["metadata"]["deletionTimestamp"]
    code, body, _ = http(
        cluster,
        "DELETE",
        f"{CMS}/held-orphan",
        {"kind": "DeleteOptions", "orphanDependents": False},
    )
    assert code == 202 and json.loads(body)["metadata"]["name"] == "held-orphan"
    # Removing the finalizer lets the deletion finish.
    for name in ("held", "held-orphan"):
        unhold = [{"op": "remove", "path": "/metadata/finalizers"}]
        assert http(cluster, "PATCH", f"{CMS}/{name}", unhold, JSON_PATCH)[0] == 200
        assert http(cluster, "GET", f"{CMS}/{name}")[0] == 404


def test_deletecollection_answers_the_list_as_it_was_before_the_deletion(
    cluster: ClusterProcess,
) -> None:
    for name in ("coll-a", "coll-b"):
        assert http(cluster, "POST", CMS, configmap(name, labels={"coll": "yes"}))[0] == 201
    code, body, _ = http(cluster, "DELETE", f"{CMS}?labelSelector=coll%3Dyes")
    assert code == 200
    listed = json.loads(body)
    assert listed["kind"] == "ConfigMapList"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["coll-a", "coll-b"]
    assert all("deletionTimestamp" not in i["metadata"] for i in listed["items"])


def test_a_job_deleted_without_a_policy_warns_that_its_pods_are_kept(
    cluster: ClusterProcess,
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "warned"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    assert http(cluster, "POST", jobs, job)[0] == 201
    code, _, headers = http(cluster, "DELETE", f"{jobs}/warned")
    assert code == 200
    warning = {k.lower(): v for k, v in headers.items()}.get("warning", "")
    assert "child pods are preserved by default when jobs are deleted" in warning


def test_error_bodies_have_kube_apiservers_field_order_and_a_trailing_newline(
    cluster: ClusterProcess,
) -> None:
    code, body, _ = http(cluster, "GET", f"{CMS}/missing")
    assert code == 404
    assert body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"missing\\" not found","reason":"NotFound",'
        b'"details":{"name":"missing","kind":"configmaps"},"code":404}\n'
    )
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
    code, body, _ = http(cluster, "POST", CMS, bad)
    assert code == 422
    status = json.loads(body)
    assert list(status) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert list(status["details"]) == ["name", "kind", "causes"]
    assert list(status["details"]["causes"][0]) == ["reason", "message", "field"]
    assert body.endswith(b"}\n")


def test_html_characters_are_escaped_and_pretty_output_is_indented_as_kube_apiserver_does(
    cluster: ClusterProcess,
) -> None:
    code, body, _ = http(cluster, "POST", CMS, {**configmap("html"), "data": {"page": "<b>&</b>"}})
    assert code == 201
    assert b'"page":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"' in body
    code, body, _ = http(cluster, "GET", f"{CMS}/html?pretty=true")
    assert code == 200
    assert body.startswith(b'{\n  "') and b'\n  "kind": "ConfigMap",\n' in body
    assert b'\n    "page": "\\u003cb\\u003e\\u0026\\u003c/b\\u003e"\n' in body
    assert not body.endswith(b"\n")


def test_kubectl_delete_prints_what_it_prints_against_kube_apiserver(
    cluster: ClusterProcess,
) -> None:
    kubectl(cluster, "-n", NAMESPACE, "create", "configmap", "kc")
    kubectl(cluster, "-n", NAMESPACE, "run", "kp", "--image=busybox", "--restart=Never")
    kubectl(
        cluster,
        "-n",
        NAMESPACE,
        "apply",
        "-f",
        str(ROOT / "tests" / "testdata" / "manifests" / "widget.yaml"),
    )
    assert (
        kubectl(cluster, "-n", NAMESPACE, "delete", "configmap", "kc")
        == 'configmap "kc" deleted from compat namespace\n'
    )
    assert (
        kubectl(cluster, "-n", NAMESPACE, "delete", "pod", "kp")
        == 'pod "kp" deleted from compat namespace\n'
    )
    assert (
        kubectl(cluster, "-n", NAMESPACE, "delete", "widget", "gadget")
        == 'widget.example.com "gadget" deleted from compat namespace\n'
    )


def test_a_put_creates_only_where_kube_apiserver_allows_create_on_update(
    cluster: ClusterProcess,
) -> None:
    roles = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "put-made"},
        "rules": [],
    }
    code, body, _ = http(cluster, "PUT", f"{roles}/put-made", role)
    assert code == 201 and json.loads(body)["metadata"]["uid"]
    assert http(cluster, "PUT", f"{roles}/put-made", json.loads(body))[0] == 200
    code, body, _ = http(cluster, "PUT", f"{CMS}/put-missing", configmap("put-missing"))
    assert code == 404
    assert json.loads(body)["message"] == 'configmaps "put-missing" not found'


def test_a_put_without_resource_version_is_refused_where_kube_apiserver_requires_one(
    cluster: ClusterProcess,
) -> None:
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}}
    assert http(cluster, "PUT", f"{leases}/l", lease)[0] == 201  # created: no version needed
    code, body, _ = http(cluster, "PUT", f"{leases}/l", {**lease, "spec": {"holderIdentity": "x"}})
    assert code == 422
    assert json.loads(body)["message"] == (
        'leases.coordination.k8s.io "l" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    # ConfigMaps take an unconditional update.
    assert http(cluster, "POST", CMS, configmap("uncond"))[0] == 201
    assert (
        http(cluster, "PUT", f"{CMS}/uncond", {**configmap("uncond"), "data": {"a": "b"}})[0] == 200
    )
