"""Loading kustomizations, resources, bases, components, ordering and build errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.build.kustomize import build_kustomization, is_kustomization
from gitops.errors import BuildError
from tests.unit.kustomize_helpers import DEPLOYMENT, build, write_tree


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_a_directory_with_any_kustomization_file_name_is_a_kustomization(
    tmp_path: Path, name: str
) -> None:
    write_tree(tmp_path, {name: "resources: []\n"})
    assert is_kustomization(tmp_path)
    assert not is_kustomization(tmp_path / "missing")


def test_objects_keep_the_file_and_line_they_came_from(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [cm.yaml]\n",
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        },
    )
    manifests = build_kustomization(tmp_path, tmp_path / "app")
    assert [(m.name, str(m.origin)) for m in manifests] == [
        ("a", "app/cm.yaml:1"),
        ("b", "app/cm.yaml:5"),
    ]


def test_bases_nested_overlays_and_the_deprecated_bases_field_are_accumulated(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [d.yaml]\nnamePrefix: base-\n",
            "base/d.yaml": DEPLOYMENT,
            "mid/kustomization.yaml": "bases: [../base]\nnamePrefix: mid-\n",
            "top/kustomization.yaml": "resources: [../mid, cm.yaml]\n",
            "top/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        },
    )
    assert [o["metadata"]["name"] for o in build(tmp_path, "top")] == ["c", "mid-base-web"]


def test_output_follows_kustomize_legacy_order(tmp_path: Path) -> None:
    kinds = [
        "ValidatingWebhookConfiguration",
        "Widget",
        "Deployment",
        "Service",
        "ConfigMap",
        "Namespace",
        "ResourceQuota",
    ]
    text = "".join(f"---\napiVersion: v1\nkind: {k}\nmetadata: {{name: x}}\n" for k in kinds)
    write_tree(tmp_path, {"kustomization.yaml": "resources: [all.yaml]\n", "all.yaml": text})
    assert [o["kind"] for o in build(tmp_path)] == [
        "Namespace",
        "ResourceQuota",
        "ConfigMap",
        "Service",
        "Deployment",
        "Widget",
        "ValidatingWebhookConfiguration",
    ]


def test_fifo_sort_options_keep_the_input_order(tmp_path: Path) -> None:
    text = "".join(
        f"---\napiVersion: v1\nkind: {k}\nmetadata: {{name: x}}\n" for k in ("Service", "Namespace")
    )
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [all.yaml]\nsortOptions: {order: fifo}\n",
            "all.yaml": text,
        },
    )
    assert [o["kind"] for o in build(tmp_path)] == ["Service", "Namespace"]


def test_components_apply_to_what_the_including_kustomization_accumulated(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "comp/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1alpha1
                kind: Component
                images: [{name: nginx, newTag: "2.0"}]
            """,
            "app/kustomization.yaml": "resources: [d.yaml]\ncomponents: [../comp]\n",
            "app/d.yaml": DEPLOYMENT,
        },
    )
    [deployment] = build(tmp_path, "app")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"


def test_a_component_listed_as_a_resource_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
            "app/kustomization.yaml": "resources: [../comp]\n",
        },
    )
    with pytest.raises(BuildError, match="is a Component") as info:
        build(tmp_path, "app")
    assert info.value.file == "app/kustomization.yaml"


@pytest.mark.parametrize(
    "field",
    ["replacements", "helmCharts", "vars", "configurations", "transformers", "openapi", "crds"],
)
def test_unsupported_kustomize_fields_are_refused_by_name(tmp_path: Path, field: str) -> None:
    write_tree(tmp_path, {"kustomization.yaml": f"resources: []\n{field}: []\n"})
    with pytest.raises(BuildError) as info:
        build(tmp_path)
    assert f"kustomize field '{field}' is not supported" in str(info.value)
    assert (info.value.file, info.value.line) == ("kustomization.yaml", 2)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"kustomization.yaml": "resource: [a.yaml]\n"})
    with pytest.raises(BuildError, match="unknown kustomize field 'resource'"):
        build(tmp_path)


def test_a_missing_resource_file_is_reported_with_file_and_line(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": "namespace: x\nresources:\n- nope.yaml\n"})
    with pytest.raises(BuildError, match=r"'nope.yaml' does not exist") as info:
        build(tmp_path, "app")
    assert (info.value.file, info.value.line) == ("app/kustomization.yaml", 2)


def test_a_directory_without_kustomization_is_reported(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"app/kustomization.yaml": "resources: [../plain]\n", "plain/x.yaml": "a: b\n"}
    )
    with pytest.raises(BuildError, match="no kustomization file") as info:
        build(tmp_path, "app")
    assert info.value.file == "app/kustomization.yaml"


def test_a_building_directory_without_kustomization_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no kustomization file"):
        build(tmp_path)


def test_cycles_between_kustomizations_are_detected(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "a/kustomization.yaml": "resources: [../b]\n",
            "b/kustomization.yaml": "resources: [../a]\n",
        },
    )
    with pytest.raises(BuildError, match="cycle detected in kustomizations: a -> b -> a"):
        build(tmp_path, "a")


def test_the_same_object_twice_is_a_duplicate_id(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"kustomization.yaml": "resources: [d.yaml, d.yaml]\n", "d.yaml": DEPLOYMENT}
    )
    with pytest.raises(
        BuildError,
        match=r"may not add resource with an already registered id: Deployment.v1.apps/web.\[noNs\]",
    ):
        build(tmp_path)


def test_a_file_outside_the_kustomization_directory_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"app/kustomization.yaml": "resources: [../d.yaml]\n", "d.yaml": DEPLOYMENT}
    )
    with pytest.raises(BuildError, match=r"security: file '../d.yaml' is not in or below"):
        build(tmp_path, "app")


def test_a_directory_outside_the_repository_root_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_tree(
        tmp_path,
        {
            "outside/kustomization.yaml": "resources: []\n",
            "repo/kustomization.yaml": "resources: [../outside]\n",
        },
    )
    with pytest.raises(BuildError, match="outside the repository root"):
        build(repo)


def test_remote_resources_are_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"kustomization.yaml": "resources: [https://github.com/x/y//base?ref=v1]\n"}
    )
    with pytest.raises(BuildError, match="remote resource"):
        build(tmp_path)


def test_a_wrong_kind_of_kustomization_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"kustomization.yaml": "kind: Deployment\n"})
    with pytest.raises(BuildError, match="kind: must be Kustomization or Component"):
        build(tmp_path)
