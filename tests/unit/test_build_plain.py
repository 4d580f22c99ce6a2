"""Plain directories: which files are read, in which order, with which origins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops.build import BuildOptions, build
from gitops.build.plain import excluded
from gitops.errors import BuildError, BuildErrors
from gitops.manifest import Manifest

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "build"
PLAIN = BuildOptions(kind="plain")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(TESTDATA / "plain", root, symlinks=True)
    return root


def _keys(manifests: list[Manifest]) -> list[str]:
    return [str(m.key) for m in manifests]


def test_every_manifest_file_is_read_in_bytewise_path_order(repo: Path) -> None:
    manifests = build(repo, ".", PLAIN)
    assert _keys(manifests) == [
        "ConfigMap/shop/settings",
        "ServiceAccount/shop/builder",
        "ClusterRole.rbac.authorization.k8s.io/system:shop:reader",
        "Deployment.apps/shop/web",
        "Service/shop/web",
        "Namespace/shop",
    ]


def test_origins_name_the_file_relative_to_the_root_and_the_document_line(repo: Path) -> None:
    origins = [str(m.origin) for m in build(repo, "", PLAIN)]
    assert origins == [
        "apps/config.json:1",
        "apps/list.yml:1",
        "apps/list.yml:1",
        "apps/web/deployment.yaml:2",
        "apps/web/deployment.yaml:25",
        "namespace.yaml:1",
    ]


def test_a_sub_directory_path_builds_only_that_directory_with_root_relative_origins(
    repo: Path,
) -> None:
    manifests = build(repo, "apps/web", PLAIN)
    assert _keys(manifests) == ["Deployment.apps/shop/web", "Service/shop/web"]
    assert {m.origin.file for m in manifests} == {"apps/web/deployment.yaml"}


def test_hidden_files_kustomization_files_and_other_suffixes_are_skipped(repo: Path) -> None:
    files = {m.origin.file for m in build(repo, ".", PLAIN)}
    assert not any(f.startswith(".") or "/." in f for f in files)
    assert "base/kustomization.yaml" not in files
    assert "README.md" not in files


def test_order_is_bytewise_so_capitals_and_dots_sort_before_lowercase(tmp_path: Path) -> None:
    for name in ("b.yaml", "a/z.yaml", "B.yaml", "a.b.yaml"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cm = "cm-" + name.encode().hex()
        path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {cm}\n")
    files = [m.origin.file for m in build(tmp_path, ".", PLAIN)]
    assert files == ["B.yaml", "a.b.yaml", "a/z.yaml", "b.yaml"]


def test_exclude_patterns_skip_files_and_whole_directories(repo: Path) -> None:
    options = BuildOptions(kind="plain", exclude=("apps/web", "*.json"))
    assert _keys(build(repo, ".", options)) == [
        "ServiceAccount/shop/builder",
        "ClusterRole.rbac.authorization.k8s.io/system:shop:reader",
        "Namespace/shop",
    ]


def test_exclude_matches_paths_relative_to_the_built_directory() -> None:
    assert excluded("web/deployment.yaml", ["web"])
    assert excluded("web/deployment.yaml", ["*.yaml"])
    assert excluded("a/b/c.json", ["a/*"])
    assert excluded("web/x.yaml", ["./web/"])
    assert not excluded("web/deployment.yaml", ["apps/web"])
    assert not excluded("x.yaml", [])


def test_an_empty_directory_builds_no_objects(tmp_path: Path) -> None:
    assert build(tmp_path, ".", PLAIN) == []


def test_invalid_yaml_names_the_file_and_line(repo: Path) -> None:
    (repo / "apps" / "broken.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n"
    )
    with pytest.raises(BuildError) as caught:
        build(repo, ".", PLAIN)
    assert caught.value.file == "apps/broken.yaml"
    assert caught.value.line is not None
    assert str(caught.value).startswith("apps/broken.yaml:")


def test_a_file_that_is_not_an_object_fails_validation_naming_it(repo: Path) -> None:
    (repo / "apps" / "values.yaml").write_text("replicas: 3\n")
    with pytest.raises(BuildErrors) as caught:
        build(repo, ".", PLAIN)
    assert [(e.file, e.line) for e in caught.value.errors] == [
        ("apps/values.yaml", 1),
        ("apps/values.yaml", 1),
        ("apps/values.yaml", 1),
    ]
    assert "apiVersion is missing" in str(caught.value)


def test_a_symlinked_file_inside_the_repository_is_read_under_its_link_name(
    repo: Path,
) -> None:
    (repo / "apps" / "ns.yaml").symlink_to(Path("..") / "namespace.yaml")
    manifests = build(repo, "apps", PLAIN)
    namespaces = [m for m in manifests if m.kind == "Namespace"]
    assert [str(m.origin) for m in namespaces] == ["apps/ns.yaml:1"]


def test_a_symlinked_file_pointing_outside_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\n")
    (repo / "leak.yaml").symlink_to(outside)
    with pytest.raises(BuildError, match="outside the repository") as caught:
        build(repo, ".", PLAIN)
    assert caught.value.file == "leak.yaml"


def test_symlinked_directories_are_not_followed(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n")
    (repo / "more").symlink_to(outside, target_is_directory=True)
    assert "Namespace/x" not in _keys(build(repo, ".", PLAIN))
