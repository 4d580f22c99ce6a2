"""namespace, namePrefix/nameSuffix, labels, annotations, images and replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.build.kustomize.transformers import split_image
from gitops.errors import BuildError
from tests.unit.kustomize_helpers import DEPLOYMENT, build, by_kind, write_tree

CLUSTER_AND_NAMESPACED = """
apiVersion: v1
kind: Namespace
metadata: {name: placeholder}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: viewer}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: old}
"""


def test_namespace_is_set_on_namespaced_objects_and_renames_namespace_objects(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "namespace: prod\nresources: [r.yaml]\n",
            "r.yaml": CLUSTER_AND_NAMESPACED,
        },
    )
    objects = {o["kind"]: o["metadata"] for o in build(tmp_path)}
    assert objects["Namespace"] == {"name": "prod"}
    assert objects["ClusterRole"] == {"name": "viewer"}
    assert objects["ConfigMap"] == {"name": "cfg", "namespace": "prod"}


def test_prefix_and_suffix_skip_namespaces_and_crds(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "namePrefix: p-\nnameSuffix: -s\nresources: [r.yaml]\n",
            "r.yaml": CLUSTER_AND_NAMESPACED,
        },
    )
    names = {o["kind"]: o["metadata"]["name"] for o in build(tmp_path)}
    assert names == {
        "Namespace": "placeholder",
        "ClusterRole": "p-viewer-s",
        "CustomResourceDefinition": "widgets.example.com",
        "ConfigMap": "p-cfg-s",
    }


def test_common_labels_reach_selectors_and_templates(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "commonLabels: {team: a}\ncommonAnnotations: {note: x}\nresources: [d.yaml]\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    [d] = build(tmp_path)
    assert d["metadata"]["labels"] == {"team": "a"}
    assert d["spec"]["selector"]["matchLabels"] == {"app": "web", "team": "a"}
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert d["spec"]["template"]["metadata"]["annotations"] == {"note": "x"}


@pytest.mark.parametrize(
    ("options", "selector", "template"),
    [
        ("", False, False),
        ("includeTemplates: true", False, True),
        ("includeSelectors: true", True, True),
    ],
)
def test_labels_reach_selectors_and_templates_only_when_asked(
    tmp_path: Path, options: str, selector: bool, template: bool
) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": f"labels:\n- pairs: {{team: a}}\n  {options}\nresources: [d.yaml]\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    [d] = build(tmp_path)
    assert d["metadata"]["labels"] == {"team": "a"}
    assert ("team" in d["spec"]["selector"]["matchLabels"]) is selector
    assert ("team" in d["spec"]["template"]["metadata"]["labels"]) is template


def test_label_fields_add_custom_places(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "labels:\n- pairs: {team: a}\n  fields: [{path: spec/extra, kind: Widget, create: true}]\nresources: [w.yaml]\n",
            "w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        },
    )
    [w] = build(tmp_path)
    assert w["spec"] == {"extra": {"team": "a"}}


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("nginx", ("nginx", "", "")),
        ("nginx:1.0", ("nginx", "1.0", "")),
        ("localhost:5000/team/app:v1", ("localhost:5000/team/app", "v1", "")),
        ("nginx@sha256:abc", ("nginx", "", "sha256:abc")),
        ("nginx:1.0@sha256:abc", ("nginx", "1.0", "sha256:abc")),
    ],
)
def test_image_references_split_into_name_tag_and_digest(
    image: str, parts: tuple[str, str, str]
) -> None:
    assert split_image(image) == parts


def test_images_change_containers_and_init_containers_anywhere(tmp_path: Path) -> None:
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {deep: {initContainers: [{name: i, image: nginx}]}}\n"
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml, w.yaml]\nimages:\n- {name: nginx, newName: mirror/nginx, newTag: '2', digest: 'sha256:ff'}\n",
            "d.yaml": DEPLOYMENT,
            "w.yaml": widget,
        },
    )
    objects = build(tmp_path)
    [d], [w] = by_kind(objects, "Deployment"), by_kind(objects, "Widget")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror/nginx:2@sha256:ff"
    assert w["spec"]["deep"]["initContainers"][0]["image"] == "mirror/nginx:2@sha256:ff"


def test_replicas_are_set_by_original_name(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"kustomization.yaml": "namePrefix: x-\nresources: [d.yaml]\n", "d.yaml": DEPLOYMENT},
    )
    write_tree(
        tmp_path, {"o/kustomization.yaml": "resources: [..]\nreplicas: [{name: web, count: 3}]\n"}
    )
    [d] = build(tmp_path, "o")
    assert d["spec"]["replicas"] == 3 and d["metadata"]["name"] == "x-web"


def test_replicas_for_a_missing_workload_are_an_error(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\nreplicas: [{name: nope, count: 3}]\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    with pytest.raises(
        BuildError, match="replicas: \\[0\\]: resource with name nope does not match"
    ):
        build(tmp_path)


def test_a_non_string_image_tag_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\nimages: [{name: nginx, newTag: 1.10}]\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    with pytest.raises(BuildError, match="images: \\[0\\]"):
        build(tmp_path)
