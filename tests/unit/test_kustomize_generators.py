"""configMapGenerator, secretGenerator, behaviors and the content-hash suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.build.kustomize.generators import content_hash
from gitops.errors import BuildError
from tests.unit.kustomize_helpers import DEPLOYMENT, build, by_kind, write_tree


def test_the_hash_suffix_matches_kustomize_for_configmaps_and_secrets() -> None:
    # Values taken from kubectl kustomize (kustomize v5.7.1).
    assert content_hash({"kind": "ConfigMap", "data": {"x": "1"}}) == "hmg6f82fh6"
    assert content_hash({"kind": "ConfigMap", "data": {"f.txt": "hello <&>\n"}}) == "2gmt5256g6"
    assert content_hash({"kind": "ConfigMap", "binaryData": {"bin.dat": "//4="}}) == "8bfh529d7k"
    assert content_hash({"kind": "Secret", "type": "Opaque", "data": {"x": "MQ=="}}) == "bf2648c599"


def test_generated_objects_get_data_options_and_hashed_names(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": """
                configMapGenerator:
                - name: cfg
                  literals: ["x=1", "q='quoted'"]
                  files: [app.conf, renamed=app.conf]
                  envs: [vars.env]
                  options: {labels: {l: v}, immutable: true}
                secretGenerator:
                - name: creds
                  type: kubernetes.io/basic-auth
                  literals: [username=admin]
                  options: {disableNameSuffixHash: true}
                generatorOptions:
                  annotations: {a: b}
            """,
            "app.conf": "key = value\n",
            "vars.env": "# comment\n\n  A=1\nB=two words\n",
        },
    )
    [cm] = by_kind(objects := build(tmp_path), "ConfigMap")
    [secret] = by_kind(objects, "Secret")
    assert cm["data"] == {
        "x": "1",
        "q": "quoted",
        "app.conf": "key = value\n",
        "renamed": "key = value\n",
        "A": "1",
        "B": "two words",
    }
    assert cm["metadata"]["name"] == f"cfg-{content_hash(cm)}"
    assert cm["metadata"]["labels"] == {"l": "v"} and cm["metadata"]["annotations"] == {"a": "b"}
    assert cm["immutable"] is True
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "annotations": {"a": "b"}},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": "YWRtaW4="},
    }
    assert str(build_origin(tmp_path)) == "kustomization.yaml:1"


def build_origin(root: Path) -> object:
    from gitops.build.kustomize import build_kustomization

    return build_kustomization(root, root)[0].origin


def test_non_utf8_files_go_to_binary_data(tmp_path: Path) -> None:
    write_tree(
        tmp_path, {"kustomization.yaml": "configMapGenerator:\n- name: b\n  files: [blob]\n"}
    )
    (tmp_path / "blob").write_bytes(b"\xff\xfe")
    [cm] = build(tmp_path)
    assert cm["binaryData"] == {"blob": "//4="} and "data" not in cm


def test_references_to_generated_names_are_rewritten(tmp_path: Path) -> None:
    deployment = DEPLOYMENT.replace(
        '- {name: A, value: "1"}',
        "- name: A\n          valueFrom: {configMapKeyRef: {name: cfg, key: x}}",
    )
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\nconfigMapGenerator:\n- name: cfg\n  literals: [x=1]\n",
            "d.yaml": deployment,
        },
    )
    objects = build(tmp_path)
    [cm], [dep] = by_kind(objects, "ConfigMap"), by_kind(objects, "Deployment")
    ref = dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"][
        "configMapKeyRef"
    ]["name"]
    assert ref == cm["metadata"]["name"] != "cfg"


def test_an_overlay_merges_into_and_replaces_base_generators(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "base/kustomization.yaml": "configMapGenerator:\n- name: a\n  literals: [x=1, y=2]\n- name: b\n  literals: [x=1]\n",
            "overlay/kustomization.yaml": """
                resources: [../base]
                configMapGenerator:
                - name: a
                  behavior: merge
                  literals: [y=20, z=3]
                - name: b
                  behavior: replace
                  literals: [only=1]
            """,
        },
    )
    a, b = build(tmp_path, "overlay")
    assert a["data"] == {"x": "1", "y": "20", "z": "3"} and a["metadata"]["name"].startswith("a-")
    assert b["data"] == {"only": "1"}


def test_creating_a_generator_that_exists_already_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "base/kustomization.yaml": "configMapGenerator:\n- name: a\n  literals: [x=1]\n",
            "overlay/kustomization.yaml": "resources: [../base]\nconfigMapGenerator:\n- name: a\n  literals: [x=2]\n",
        },
    )
    with pytest.raises(BuildError, match="behavior must be merge or replace") as info:
        build(tmp_path, "overlay")
    assert (info.value.file, info.value.line) == ("overlay/kustomization.yaml", 2)


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ("- name: a\n  literals: [novalue]\n", "must be key=value"),
        ("- name: a\n  literals: [x=1, x=2]\n", "key 'x' already exists"),
        ("- name: a\n  files: [missing.txt]\n", "'missing.txt' does not exist"),
        ("- literals: [x=1]\n", "name is required"),
        ("- name: a\n  behavior: upsert\n", "behavior must be create, merge or replace"),
        ("- name: a\n  literals: ['bad key=1']\n", "not a valid key name"),
    ],
)
def test_invalid_generators_are_reported_naming_the_field(
    tmp_path: Path, generator: str, message: str
) -> None:
    write_tree(tmp_path, {"kustomization.yaml": "configMapGenerator:\n" + generator})
    with pytest.raises(BuildError, match=message) as info:
        build(tmp_path)
    assert "configMapGenerator: [0]" in str(info.value)


def test_an_env_line_without_a_value_is_empty_never_the_reconcilers_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kubectl kustomize v5.5+ gives an empty value; copying the variable from the
    # environment handed the reconciler's secrets to whoever can push.
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "s3cret-webhook")
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "configMapGenerator:\n- name: leak\n  envs: [app.env]\n",
            "app.env": "GITOPS_WEBHOOK_SECRET\nMODE=prod\n",
        },
    )
    [cm] = by_kind(build(tmp_path), "ConfigMap")
    assert cm["data"] == {"GITOPS_WEBHOOK_SECRET": "", "MODE": "prod"}
