"""patches, patchesStrategicMerge and patchesJson6902, targets and kustomize's merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.build.kustomize.patches import match_labels
from gitops.errors import BuildError
from tests.unit.kustomize_helpers import DEPLOYMENT, build, write_tree

SMP = """
patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      template:
        spec:
          containers:
          - name: web
            env: [{name: B, value: "2"}]
          - name: sidecar
            image: proxy
"""


def test_strategic_merge_puts_patch_elements_first_as_kustomize_does(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"kustomization.yaml": "resources: [d.yaml]\n" + SMP, "d.yaml": DEPLOYMENT}
    )
    [d] = build(tmp_path)
    containers = d["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
    assert containers[0]["image"] == "nginx:1.0"


def test_custom_resources_merge_maps_and_replace_lists(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [w.yaml]\npatchesStrategicMerge:\n- p.yaml\n",
            "w.yaml": "apiVersion: x.io/v1\nkind: W\nmetadata: {name: w}\nspec: {items: [{name: a}], m: {a: 1, b: 2}}\n",
            "p.yaml": "apiVersion: x.io/v1\nkind: W\nmetadata: {name: w}\nspec: {items: [{name: b}], m: {a: null, c: 3}}\n",
        },
    )
    [w] = build(tmp_path)
    assert w["spec"] == {"items": [{"name": "b"}], "m": {"b": 2, "c": 3}}


def test_a_delete_patch_removes_the_whole_object(tmp_path: Path) -> None:
    patch = "patches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n    $patch: delete\n"
    write_tree(
        tmp_path, {"kustomization.yaml": "resources: [d.yaml]\n" + patch, "d.yaml": DEPLOYMENT}
    )
    assert build(tmp_path) == []


def test_json6902_patches_in_yaml_or_json_apply_to_selected_targets(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": """
                resources: [d.yaml]
                patches:
                - target: {kind: Deployment, name: "w.*"}
                  patch: |-
                    - {op: add, path: /spec/replicas, value: 2}
                - target: {labelSelector: "missing=label"}
                  path: p.json
                patchesJson6902:
                - target: {group: apps, version: v1, kind: Deployment, name: web}
                  path: p.json
            """,
            "d.yaml": DEPLOYMENT,
            "p.json": '[{"op": "add", "path": "/metadata/annotations", "value": {"json": "yes"}}]',
        },
    )
    [d] = build(tmp_path)
    assert d["spec"]["replicas"] == 2 and d["metadata"]["annotations"] == {"json": "yes"}


def test_a_strategic_patch_without_a_matching_object_is_an_error(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\n"
            + SMP.replace("name: web}", "name: nope}"),
            "d.yaml": DEPLOYMENT,
        },
    )
    with pytest.raises(
        BuildError, match=r"no resource matches strategic merge patch Deployment.v1.apps/nope"
    ) as info:
        build(tmp_path)
    assert (info.value.file, info.value.line) == ("kustomization.yaml", 3)


def test_a_failing_json_patch_is_reported(tmp_path: Path) -> None:
    patch = (
        'patches:\n- target: {kind: Deployment}\n  patch: \'[{"op": "remove", "path": "/nope"}]\'\n'
    )
    write_tree(
        tmp_path, {"kustomization.yaml": "resources: [d.yaml]\n" + patch, "d.yaml": DEPLOYMENT}
    )
    with pytest.raises(BuildError, match=r"JSON patch of Deployment.v1.apps/web"):
        build(tmp_path)


def test_a_patch_with_both_path_and_patch_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"kustomization.yaml": "patches:\n- {path: a.yaml, patch: 'x: 1'}\n"})
    with pytest.raises(BuildError, match="exactly one of path and patch"):
        build(tmp_path)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web,tier", True),
        ("app!=web", False),
        ("app in (web, api)", True),
        ("app notin (web)", False),
        ("!tier", False),
        ("!missing", True),
    ],
)
def test_label_selectors_follow_kubernetes_syntax(selector: str, expected: bool) -> None:
    assert match_labels(selector, {"app": "web", "tier": "front"}) is expected
