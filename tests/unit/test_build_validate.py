"""Validation of built objects: names, namespaces, duplicates, and kinds the cluster lacks."""

from __future__ import annotations

from typing import Any

import pytest

from gitops.build.documents import load_text
from gitops.build.validate import check_kinds, is_dns_label, is_dns_subdomain, validate
from gitops.errors import BuildErrors
from gitops.manifest import Manifest

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
    - {name: v1, served: true, storage: true}
    - {name: v0, served: false, storage: false}
"""


def _errors(text: str, file: str = "app.yaml") -> list[tuple[str | None, int | None, str]]:
    with pytest.raises(BuildErrors) as caught:
        validate(load_text(text, file))
    return [(e.file, e.line, e.detail) for e in caught.value.errors]


def _obj(kind: str = "ConfigMap", name: Any = "x", api: str = "v1", **meta: Any) -> str:
    meta_lines = "".join(f"  {k}: {v}\n" for k, v in meta.items())
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n{meta_lines}"


def test_valid_objects_pass() -> None:
    text = "\n---\n".join(
        [
            _obj(),
            _obj("Namespace", "shop"),
            _obj("Service", "web", namespace="shop"),
            _obj("ClusterRole", '"system:Reader"', api="rbac.authorization.k8s.io/v1"),
            _obj("Deployment", "web.v2", api="apps/v1", namespace="shop"),
        ]
    )
    validate(load_text(text, "ok.yaml"))


def test_a_missing_name_is_reported_with_file_and_line() -> None:
    text = _obj() + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n"
    assert _errors(text) == [("app.yaml", 6, "metadata.name is missing")]


def test_missing_api_version_kind_and_metadata_are_all_reported_together() -> None:
    errors = _errors("spec: {}\n---\nkind: ConfigMap\nmetadata: {name: a}\n")
    assert [(line, detail) for _, line, detail in errors] == [
        (1, "apiVersion is missing"),
        (1, "kind is missing"),
        (1, "metadata.name is missing"),
        (3, "apiVersion is missing"),
    ]


def test_generate_name_is_refused_because_it_cannot_be_applied_declaratively() -> None:
    errors = _errors("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: run-\n")
    assert "generateName" in errors[0][2]


@pytest.mark.parametrize(
    ("kind", "api", "name"),
    [
        ("ConfigMap", "v1", "Web"),
        ("ConfigMap", "v1", "web_app"),
        ("ConfigMap", "v1", "-web"),
        ("ConfigMap", "v1", "a" * 254),
        ("Namespace", "v1", "a.b"),
        ("Service", "v1", "1web"),
        ("Role", "rbac.authorization.k8s.io/v1", "a/b"),
    ],
)
def test_invalid_names_are_refused_by_the_rule_of_their_kind(
    kind: str, api: str, name: str
) -> None:
    errors = _errors(_obj(kind, name, api=api))
    assert len(errors) == 1
    assert errors[0][2].startswith(f"metadata.name {name!r} is invalid")


def test_a_name_that_is_not_a_string_is_refused() -> None:
    assert _errors(_obj(name="1234"))[0][2] == "metadata.name must be a string, not int"


def test_an_invalid_namespace_is_refused() -> None:
    errors = _errors(_obj(namespace="Shop"))
    assert errors[0][2].startswith("metadata.namespace 'Shop' is invalid")


def test_unquoted_numbers_and_booleans_in_labels_are_refused_with_a_hint() -> None:
    errors = _errors(_obj(labels="{version: 1.0, ok: yes}"))
    assert errors == [
        ("app.yaml", 1, "metadata.labels['version'] must be a string, not 1.0: quote it in YAML (e.g. version: \"1.0\")"),
    ]  # fmt: skip


def test_an_invalid_api_version_is_refused() -> None:
    assert "apiVersion 'apps/v1/x'" in _errors(_obj(api="apps/v1/x"))[0][2]


def test_duplicates_are_reported_with_both_origins() -> None:
    first = load_text(_obj("Deployment", "web", api="apps/v1", namespace="shop"), "a.yaml")
    second = load_text(
        "# again\n" + _obj("Deployment", "web", api="apps/v1beta2", namespace="shop"), "b/c.yaml"
    )
    with pytest.raises(BuildErrors) as caught:
        validate(first + second)
    (error,) = caught.value.errors
    assert (error.file, error.line) == ("b/c.yaml", 2)
    assert error.detail == "Deployment.apps/shop/web is defined twice: first at a.yaml:1"


def test_same_name_in_different_namespaces_or_kinds_is_not_a_duplicate() -> None:
    text = "\n---\n".join(
        [_obj(namespace="a"), _obj(namespace="b"), _obj("Secret"), _obj("Secret", namespace="a")]
    )
    validate(load_text(text, "ok.yaml"))


def test_every_problem_is_collected_before_raising() -> None:
    text = "\n---\n".join([_obj(name="Bad"), _obj(), _obj(), _obj(namespace="A")])
    assert [line for _, line, _ in _errors(text)] == [1, 13, 19]


def test_dns_helpers_follow_rfc_1123() -> None:
    assert is_dns_label("a-1")
    assert not is_dns_label("a" * 64)
    assert not is_dns_label("a.b")
    assert is_dns_subdomain("a.b-c.d")
    assert not is_dns_subdomain("a..b")
    assert not is_dns_subdomain("")


# --- check_kinds ------------------------------------------------------------------------
SERVED = {("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition")}  # fmt: skip


def _known(api_version: str, kind: str) -> bool:
    return (api_version, kind) in SERVED


def _manifests(text: str) -> list[Manifest]:
    return load_text(text, "all.yaml")


def test_kinds_the_cluster_serves_pass() -> None:
    check_kinds(_manifests(_obj() + "---\n" + _obj("Deployment", api="apps/v1")), _known)


def test_an_unknown_kind_is_reported_with_file_and_line() -> None:
    manifests = _manifests(_obj() + "---\n" + _obj("Widget", api="example.com/v1"))
    with pytest.raises(BuildErrors) as caught:
        check_kinds(manifests, _known)
    (error,) = caught.value.errors
    assert (error.file, error.line) == ("all.yaml", 6)
    assert "does not serve kind Widget of apiVersion example.com/v1" in error.detail


def test_a_kind_defined_by_a_crd_in_the_same_manifests_passes() -> None:
    check_kinds(_manifests(_obj("Widget", api="example.com/v1") + "---\n" + CRD), _known)


def test_a_version_the_crd_does_not_serve_is_reported_naming_the_crd() -> None:
    manifests = _manifests(CRD + "---\n" + _obj("Widget", api="example.com/v0"))
    with pytest.raises(BuildErrors) as caught:
        check_kinds(manifests, _known)
    (error,) = caught.value.errors
    assert "CustomResourceDefinition at all.yaml:1 does not serve version 'v0'" in error.detail
    assert "it serves: v1" in error.detail


def test_a_crd_of_another_group_does_not_make_a_kind_known() -> None:
    manifests = _manifests(CRD + "---\n" + _obj("Widget", api="other.io/v1"))
    with pytest.raises(BuildErrors):
        check_kinds(manifests, _known)
