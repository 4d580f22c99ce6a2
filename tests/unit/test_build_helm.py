"""Helm charts: ``helm template`` output as objects, and honest errors without helm.

The tests marked ``integration`` run the real helm binary that scripts/test.sh installs
under .cache/tools (or ``$HELM_BIN``); they fail, never skip, when it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gitops.build import BuildOptions, HelmOptions, build
from gitops.build.helm import parse_output
from gitops.errors import BuildError, BuildErrors

ROOT = Path(__file__).resolve().parent.parent.parent
TESTDATA = ROOT / "tests" / "testdata" / "build"
CACHED_HELM = ROOT / ".cache" / "tools" / "kubectl-1.35" / "helm"


def _helm_binary() -> str:
    for candidate in (os.environ.get("HELM_BIN", ""), str(CACHED_HELM)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "helm is missing: run scripts/test.sh (installs it under .cache/tools) or set HELM_BIN"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(TESTDATA / "chart", root / "charts" / "webapp")
    return root


@pytest.fixture
def helm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    binary = _helm_binary()
    monkeypatch.setenv("HELM_BIN", binary)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm-home" / name.lower()))
    return binary


def _helm(**options: object) -> BuildOptions:
    return BuildOptions(kind="helm", helm=HelmOptions(**options))  # type: ignore[arg-type]


def test_a_missing_helm_binary_is_an_error_naming_the_chart_and_the_install_page(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("HELM_BIN", raising=False)
    with pytest.raises(BuildError) as caught:
        build(repo, "charts/webapp", _helm())
    assert caught.value.file == "charts/webapp/Chart.yaml"
    assert caught.value.detail == (
        "helm chart at charts/webapp needs the `helm` binary "
        "(https://helm.sh/docs/intro/install/); it is not installed"
    )


def test_a_helm_bin_that_is_not_executable_is_named_in_the_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "helm"
    fake.write_text("not a program")
    monkeypatch.setenv("HELM_BIN", str(fake))
    with pytest.raises(
        BuildError, match=r"it is not installed \(\$HELM_BIN=.*is not an executable"
    ):
        build(repo, "charts/webapp", _helm())


def test_kind_helm_on_a_directory_without_chart_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"is not a Helm chart: it has no Chart\.yaml"):
        build(tmp_path, ".", _helm())


def test_output_documents_take_their_origin_from_helms_source_comments(tmp_path: Path) -> None:
    chart = tmp_path / "deploy"
    output = (
        "---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: a}\n---\n# Source: app/charts/db/templates/b.yaml\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n"
    )
    manifests = parse_output(output, chart, tmp_path)
    assert [(m.name, str(m.origin)) for m in manifests] == [
        ("a", "deploy/templates/a.yaml"),
        ("b", "deploy/charts/db/templates/b.yaml"),
        ("c", "deploy/charts/db/templates/b.yaml"),  # a template emitting two documents
    ]


def test_invalid_rendered_yaml_names_the_template_and_the_rendered_line(tmp_path: Path) -> None:
    output = "---\n# Source: app/templates/bad.yaml\napiVersion: v1\nkind: [\n"
    with pytest.raises(BuildError) as caught:
        parse_output(output, tmp_path, tmp_path)
    assert caught.value.file == "templates/bad.yaml"
    assert caught.value.line is None
    assert "of its rendered output" in caught.value.detail


@pytest.mark.integration
def test_a_real_chart_renders_with_crds_values_and_template_origins(repo: Path, helm: str) -> None:
    manifests = build(
        repo,
        "charts/webapp",
        _helm(release_name="shop", namespace="prod", values_files=("values-prod.yaml",)),
    )
    by_kind = {m.kind: m for m in manifests}
    assert sorted(by_kind) == ["ConfigMap", "CustomResourceDefinition", "Deployment", "Widget"]
    deployment = by_kind["Deployment"].obj
    assert deployment["metadata"] == {"name": "shop-web", "namespace": "prod"}
    assert deployment["spec"]["replicas"] == 3
    assert str(by_kind["Deployment"].origin) == "charts/webapp/templates/deployment.yaml"
    assert str(by_kind["Widget"].origin) == "charts/webapp/templates/configmap.yaml"
    assert str(by_kind["CustomResourceDefinition"].origin) == "charts/webapp/crds/widget.yaml"
    assert "Pod" not in by_kind  # the test hook is skipped


@pytest.mark.integration
def test_inline_values_win_over_values_files_and_crds_can_be_left_out(
    repo: Path, helm: str
) -> None:
    options = _helm(
        values_files=("values-prod.yaml",),
        values={"replicas": 7, "greeting": "hi there"},
        include_crds=False,
    )
    manifests = build(repo, "charts/webapp", options)
    by_kind = {m.kind: m.obj for m in manifests}
    assert "CustomResourceDefinition" not in by_kind
    assert by_kind["Deployment"]["spec"]["replicas"] == 7
    assert by_kind["ConfigMap"]["data"] == {"greeting": "hi there"}
    assert by_kind["Deployment"]["metadata"]["namespace"] == "default"
    assert by_kind["Deployment"]["metadata"]["name"] == "webapp-web"  # release = chart name


@pytest.mark.integration
def test_a_failing_template_reports_helms_error(repo: Path, helm: str) -> None:
    (repo / "charts" / "webapp" / "templates" / "bad.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        '  name: {{ required "set .Values.owner" .Values.owner }}\n'
    )
    with pytest.raises(BuildError) as caught:
        build(repo, "charts/webapp", _helm())
    assert caught.value.file == "charts/webapp/Chart.yaml"
    assert caught.value.detail.startswith("helm template failed:")
    assert "set .Values.owner" in caught.value.detail


@pytest.mark.integration
def test_a_missing_dependency_is_reported_not_downloaded(repo: Path, helm: str) -> None:
    chart_yaml = repo / "charts" / "webapp" / "Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text()
        + "dependencies:\n  - name: redis\n    version: 1.0.0\n    repository: https://charts.invalid\n"
    )
    with pytest.raises(BuildError, match=r"helm template failed:.*redis"):
        build(repo, "charts/webapp", _helm())


@pytest.mark.integration
def test_values_files_outside_the_repository_or_missing_are_refused(
    repo: Path, helm: str, tmp_path: Path
) -> None:
    (tmp_path / "outside.yaml").write_text("replicas: 9\n")
    with pytest.raises(BuildError, match=r"values file '\.\./\.\./\.\./outside\.yaml' is outside"):
        build(repo, "charts/webapp", _helm(values_files=("../../../outside.yaml",)))
    with pytest.raises(BuildError, match=r"values file 'nope\.yaml' does not exist"):
        build(repo, "charts/webapp", _helm(values_files=("nope.yaml",)))


@pytest.mark.integration
def test_rendered_objects_are_validated_and_named_by_their_template(repo: Path, helm: str) -> None:
    (repo / "charts" / "webapp" / "templates" / "extra.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.extraName }}\n"
    )
    with pytest.raises(BuildErrors) as caught:
        build(repo, "charts/webapp", _helm(values={"extraName": "Not_Valid"}))
    (error,) = caught.value.errors
    assert error.file == "charts/webapp/templates/extra.yaml"
    assert error.detail.startswith("metadata.name 'Not_Valid' is invalid")


def test_a_release_name_or_namespace_that_could_read_as_a_flag_never_reaches_helm(
    repo: Path, helm: str
) -> None:
    for options, problem in (
        (_helm(release_name="--set-file=x=/etc/passwd"), "helm release name"),
        (_helm(release_name="ok", namespace="--kubeconfig=/root/.kube/config"), "namespace"),
        (_helm(release_name="a" * 54), "at most 53 characters"),
    ):
        with pytest.raises((BuildError, BuildErrors)) as caught:
            build(repo, "charts/webapp", options)
        assert problem in str(caught.value)


def test_helm_gets_its_positionals_after_a_double_dash_and_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops.build.helm import HelmOptions as Options
    from gitops.build.helm import _command, helm_env

    command = _command("/bin/helm", tmp_path / "chart", "rel", Options(namespace="ns"), [])
    assert command[-3:] == ["--", "rel", str(tmp_path / "chart")]
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "s3cret")
    env = helm_env(tmp_path)
    assert "GITOPS_WEBHOOK_SECRET" not in env and env["HOME"] == str(tmp_path)
    assert env["HELM_CONFIG_HOME"] == str(tmp_path / "config")
