"""Name reference fix-up after prefixes, suffixes, namespaces and hashes."""

from __future__ import annotations

from pathlib import Path

from tests.unit.kustomize_helpers import build, by_kind, write_tree

RESOURCES = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: runner}
- {kind: ServiceAccount, name: runner, namespace: elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
---
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /x, pathType: Prefix, backend: {service: {name: external, port: {number: 80}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: web
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      serviceAccountName: runner
      containers: [{name: c, image: c}]
"""


def test_references_follow_prefix_namespace_and_keep_unknown_names(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "namePrefix: p-\nnamespace: prod\nresources: [r.yaml]\n",
            "r.yaml": RESOURCES,
        },
    )
    objects = build(tmp_path)
    [rb], [ingress], [sts] = (
        by_kind(objects, "RoleBinding"),
        by_kind(objects, "Ingress"),
        by_kind(objects, "StatefulSet"),
    )
    assert rb["roleRef"]["name"] == "p-reader"
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "p-runner", "namespace": "prod"},
        {"kind": "ServiceAccount", "name": "runner", "namespace": "elsewhere"},
    ]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["p-web", "external"]
    assert sts["spec"]["serviceName"] == "p-web"
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "p-runner"


def test_references_from_an_overlay_to_base_names_are_fixed(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "base/kustomization.yaml": "namePrefix: base-\nresources: [r.yaml]\n",
            "base/r.yaml": RESOURCES,
            "overlay/kustomization.yaml": "nameSuffix: -o\nresources: [../base, pod.yaml]\n",
            "overlay/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {serviceAccountName: base-runner, containers: [{name: c, image: c}]}\n",
        },
    )
    [pod] = by_kind(build(tmp_path, "overlay"), "Pod")
    assert pod["spec"]["serviceAccountName"] == "base-runner-o"
