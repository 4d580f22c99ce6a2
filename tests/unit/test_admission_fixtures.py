"""Whole manifests through admission as the store drives it: create, then re-apply.

The store stamps uid and creationTimestamp before ``default`` on create, and on update
carries uid, creationTimestamp and status over from the stored object and drops the
body's resourceVersion; these tests do the same.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.build import build
from runtime.api import admission
from runtime.api.registry import Registry, ResourceInfo

REGISTRY = Registry()
ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "testdata" / "admission"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _cases() -> list[Any]:
    """The fixtures, and every object the example repository's apps build to (as the
    reconciler builds them: kustomize apps through kustomize)."""
    docs = [(f"valid[{i}]", doc) for i, doc in enumerate(_docs(TESTDATA / "valid.yaml"))]
    examples = ROOT / "examples" / "repo"
    for app in sorted(p for p in (examples / "apps").iterdir() if p.is_dir()):
        for i, m in enumerate(build(examples, f"apps/{app.name}")):
            docs.append((f"{app.name}[{i}]", m.obj))
    out = []
    for label, doc in docs:
        name = doc.get("metadata", {}).get("name") or doc.get("metadata", {}).get("generateName")
        out.append(pytest.param(doc, id=f"{label}-{doc['kind']}-{name}"))
    return out


def _info(obj: dict[str, Any]) -> ResourceInfo:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None, obj["kind"]
    return info


def _create(info: ResourceInfo, body: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "x7k2q"
    if info.namespaced:
        meta.setdefault("namespace", "default")
    meta["uid"] = "0b9c8f43-5d1e-4c61-9a55-0d6f4a1e2b3c"
    meta["creationTimestamp"] = "2024-05-01T10:00:00Z"
    admission.default(info, obj)
    return obj


def _reapply(info: ResourceInfo, body: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    old_meta = stored["metadata"]
    meta["name"] = old_meta["name"]
    if info.namespaced:
        meta["namespace"] = old_meta["namespace"]
    for key in ("uid", "creationTimestamp", "generation"):
        if key in old_meta:
            meta[key] = old_meta[key]
    if info.has_status and "status" in stored:
        obj["status"] = copy.deepcopy(stored["status"])
    if info.kind == "Service" and "clusterIP" in stored.get("spec", {}):
        # The allocator's choice is carried over by the store, as kube-apiserver does.
        obj["spec"].setdefault("clusterIP", stored["spec"]["clusterIP"])
        obj["spec"].setdefault("clusterIPs", stored["spec"].get("clusterIPs"))
    admission.default(info, obj)
    return obj


@pytest.mark.parametrize("body", _cases())
def test_every_valid_manifest_is_admitted_on_create(body: dict[str, Any]) -> None:
    info = _info(body)
    obj = _create(info, body)
    assert admission.validate(info, obj, None) == []


@pytest.mark.parametrize("body", _cases())
def test_defaulting_a_defaulted_manifest_changes_nothing(body: dict[str, Any]) -> None:
    info = _info(body)
    obj = _create(info, body)
    again = copy.deepcopy(obj)
    admission.default(info, again)
    assert again == obj


@pytest.mark.parametrize("body", _cases())
def test_re_applying_the_same_manifest_is_a_valid_update(body: dict[str, Any]) -> None:
    info = _info(body)
    stored = _create(info, body)
    stored["metadata"]["resourceVersion"] = "41"
    update = _reapply(info, body, stored)
    assert admission.validate(info, update, stored) == []


def test_the_fixture_covers_every_kind_the_runtime_acts_on() -> None:
    kinds = {d["kind"] for d in _docs(TESTDATA / "valid.yaml")}
    assert kinds >= {
        "Namespace", "Node", "Pod", "ReplicaSet", "ReplicationController", "Deployment",
        "StatefulSet", "DaemonSet", "Job", "CronJob", "HorizontalPodAutoscaler", "Service",
        "Endpoints", "EndpointSlice", "Ingress", "IngressClass", "ConfigMap", "Secret",
        "PersistentVolume", "PersistentVolumeClaim", "StorageClass", "Event", "Lease",
        "PodTemplate", "CustomResourceDefinition",
    }  # fmt: skip


def test_a_pod_stamped_by_the_store_is_still_created_pending() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
    }
    pod = _create(_info(body), body)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_a_namespace_stamped_by_the_store_still_gets_the_kubernetes_finalizer() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop"},
        "spec": {"finalizers": ["example.com/audit"]},
    }
    ns = _create(_info(body), body)
    assert ns["spec"]["finalizers"] == ["example.com/audit", "kubernetes"]


def test_a_body_of_the_wrong_shape_yields_causes_instead_of_an_exception() -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [7]}},
        },
    }
    info = _info(body)
    obj = _create(info, body)
    causes = admission.validate(info, obj, None)
    assert causes
    assert all(c.field.startswith("spec.template.spec.containers") for c in causes)


def test_a_typical_replica_set_pod_is_admitted_and_defaulted() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c-x2x9z",
            "namespace": "default",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d4b9c",
                    "uid": "6f1a3b2c-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    info = _info(body)

    obj = copy.deepcopy(body)
    obj["metadata"]["uid"] = "u"
    admission.default(info, obj)
    assert not admission.validate(info, obj, None)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert obj["spec"]["restartPolicy"] == "Always"
