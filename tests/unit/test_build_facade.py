"""The build facade: which builder runs, and paths that must stay inside the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops.build import BuildOptions, build, detect_kind, resolve_directory
from gitops.errors import BuildError

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "build"

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(TESTDATA / "plain", root)
    shutil.copytree(TESTDATA / "chart", root / "chart")
    return root


def test_an_empty_path_or_dot_means_the_repository_root(repo: Path) -> None:
    checkout = repo.resolve()
    assert resolve_directory(repo, "") == (checkout, checkout)
    assert resolve_directory(repo, ".") == (checkout, checkout)
    assert resolve_directory(repo, "apps/./web/") == (checkout, checkout / "apps" / "web")


@pytest.mark.parametrize("path", ["..", "../repo/../..", "apps/../../elsewhere"])
def test_a_path_leading_out_of_the_repository_is_refused(repo: Path, path: str) -> None:
    with pytest.raises(BuildError, match="leads outside the repository"):
        build(repo, path)


def test_an_absolute_path_is_refused(repo: Path) -> None:
    with pytest.raises(BuildError, match="must be relative to the repository root"):
        build(repo, str(repo / "apps"))


def test_a_symlinked_directory_pointing_out_of_the_repository_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ns.yaml").write_text(NAMESPACE.format(name="outside"))
    (repo / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BuildError, match="'escape' leads outside the repository"):
        build(repo, "escape")


def test_a_symlinked_directory_inside_the_repository_may_be_the_path(repo: Path) -> None:
    (repo / "web-link").symlink_to(repo / "apps" / "web", target_is_directory=True)
    manifests = build(repo, "web-link", BuildOptions(kind="plain"))
    assert {m.origin.file for m in manifests} == {"apps/web/deployment.yaml"}


def test_a_missing_path_and_a_file_path_are_refused(repo: Path) -> None:
    with pytest.raises(BuildError, match="'nope' does not exist in the repository"):
        build(repo, "nope")
    with pytest.raises(BuildError, match="is not a directory"):
        build(repo, "namespace.yaml")


def test_exclude_with_a_non_plain_kind_is_refused(repo: Path) -> None:
    with pytest.raises(BuildError, match="exclude patterns apply to plain directories only"):
        build(repo, "chart", BuildOptions(kind="helm", exclude=("templates",)))


def test_auto_picks_plain_for_a_directory_of_manifests(repo: Path) -> None:
    assert detect_kind(repo / "apps") == "plain"
    manifests = build(repo, "apps", BuildOptions(exclude=()))
    assert len(manifests) == 5


def test_auto_picks_helm_for_a_chart(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert detect_kind(repo / "chart") == "helm"
    empty = tmp_path / "no-helm"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("HELM_BIN", raising=False)
    with pytest.raises(BuildError, match="helm chart at chart needs the `helm` binary"):
        build(repo, "chart")


def test_auto_picks_kustomize_for_a_kustomization_and_builds_it(repo: Path) -> None:
    base = repo / "base"
    (base / "ns.yaml").write_text(NAMESPACE.format(name="kustomized"))
    (base / "kustomization.yaml").write_text("resources:\n  - ns.yaml\n")
    assert detect_kind(base) == "kustomize"
    manifests = build(repo, "base")
    assert [str(m.key) for m in manifests] == ["Namespace/kustomized"]
    assert manifests[0].origin.file == "base/ns.yaml"


def test_a_plain_build_of_the_root_does_not_descend_as_kustomize(repo: Path) -> None:
    (repo / "base" / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    manifests = build(repo, ".", BuildOptions(kind="plain", exclude=("chart",)))
    assert "base/kustomization.yaml" not in {m.origin.file for m in manifests}
