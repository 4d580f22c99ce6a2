"""Metadata validation every kind gets: names per kind, labels, annotations, scope."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubemodel.errors import invalid_object
from runtime.api import admission
from runtime.api.registry import Registry

REGISTRY = Registry()

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
KEY_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    return [c.render() for c in admission.validate(info, obj, old)]


def config_map(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default", **meta}}


def test_a_name_is_required_unless_a_generate_name_is_given() -> None:
    assert errors(config_map()) == [
        "metadata.name: Required value: name or generateName is required"
    ]
    assert errors(config_map(generateName="web-")) == []


def test_a_generate_name_may_end_in_a_dash_but_must_otherwise_be_a_subdomain() -> None:
    assert errors(config_map(generateName="Web-")) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}'
    ]


def test_most_names_are_lowercase_rfc_1123_subdomains() -> None:
    assert errors(config_map(name="Bad_Name")) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'
    ]
    assert errors(config_map(name="my.config-1")) == []


def test_a_name_longer_than_253_characters_is_rejected_for_its_length() -> None:
    name = "a" * 254
    assert errors(config_map(name=name)) == [
        f'metadata.name: Invalid value: "{name}": must be no more than 253 characters'
    ]


def test_namespace_names_are_labels_so_dots_are_refused() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    assert errors(ns) == ['metadata.name: Invalid value: "team.a": must not contain dots']
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Team"}}
    assert errors(ns) == [f'metadata.name: Invalid value: "Team": {LABEL_MSG}']


def test_service_names_are_dns_1035_labels_and_must_start_with_a_letter() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "1web", "namespace": "d"},
        "spec": {"ports": [{"port": 80}]},
    }
    assert errors(svc) == [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']


def test_stateful_set_names_are_labels_because_they_name_pods_hostnames() -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db.primary", "namespace": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    assert errors(sts) == ['metadata.name: Invalid value: "db.primary": must not contain dots']


def test_rbac_names_are_path_segments_so_colons_pass_and_slashes_do_not() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:reader"},
    }
    assert errors(role) == []
    role["metadata"]["name"] = "a/b"
    assert errors(role) == ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_label_problems_are_reported_at_metadata_labels_with_the_bad_key_or_value() -> None:
    cm = config_map(
        name="c", labels={"bad key!": "ok", "example.com/ok": "bad value", "long": "x" * 64}
    )
    assert errors(cm) == [
        f'metadata.labels: Invalid value: "bad key!": {KEY_NAME_MSG}',
        f'metadata.labels: Invalid value: "bad value": {LABEL_VALUE_MSG}',
        f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 characters',
    ]


def test_a_label_key_prefix_must_be_a_subdomain() -> None:
    cm = config_map(name="c", labels={"Example.com/app": "x"})
    assert errors(cm) == [
        f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MSG}'
    ]


def test_annotation_keys_are_qualified_names_in_any_case_and_their_total_size_is_capped() -> None:
    assert errors(config_map(name="c", annotations={"Example.COM/Key": "v"})) == []
    too_big = config_map(name="c", annotations={"a": "x" * 262144})
    assert errors(too_big) == ["metadata.annotations: Too long: may not be more than 262144 bytes"]


def test_a_namespaced_object_needs_a_namespace() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert errors(cm) == ["metadata.namespace: Required value"]


def test_a_cluster_scoped_object_may_not_have_a_namespace() -> None:
    pv_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast", "namespace": "default"},
        "provisioner": "example.com/disk",
    }
    assert errors(pv_class) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_only_one_owner_may_be_the_controller() -> None:
    refs = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "a",
            "uid": "1",
            "controller": True,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "b",
            "uid": "2",
            "controller": True,
        },
    ]
    (only,) = errors(config_map(name="c", ownerReferences=refs))
    assert only.startswith("metadata.ownerReferences: Invalid value: ")
    assert only.endswith(
        'Only one reference can have Controller set to true. Found "true" in references for ReplicaSet/a and ReplicaSet/b'
    )


def test_an_owner_reference_needs_version_kind_name_and_uid() -> None:
    assert errors(config_map(name="c", ownerReferences=[{"apiVersion": "apps/"}])) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": must not be empty',
    ]


def test_unqualified_finalizers_must_be_standard_ones() -> None:
    cm = config_map(name="c", finalizers=["kubernetes", "cleanup", "example.com/cleanup"])
    assert errors(cm) == [
        'metadata.finalizers[1]: Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified'
    ]


def test_orphan_and_foreground_deletion_cannot_both_be_requested() -> None:
    cm = config_map(name="c", finalizers=["orphan", "foregroundDeletion"])
    assert errors(cm) == [
        'metadata.finalizers: Invalid value: []string{"orphan", "foregroundDeletion"}: '
        "finalizer orphan and foregroundDeletion cannot be both set"
    ]


def test_name_namespace_and_uid_cannot_change_and_generation_cannot_go_back() -> None:
    old = config_map(name="c", uid="1", generation=3)
    new = config_map(name="d", uid="2", generation=2)
    assert errors(new, old) == [
        "metadata.generation: Invalid value: 2: must not be decremented",
        'metadata.name: Invalid value: "d": field is immutable',
        'metadata.uid: Invalid value: "2": field is immutable',
    ]


def test_an_update_may_leave_the_store_owned_fields_out() -> None:
    old = config_map(name="c", uid="1", creationTimestamp="2024-01-01T00:00:00Z")
    new = config_map(name="c", labels={"a": "b"})
    assert errors(new, old) == []


def test_an_object_being_deleted_cannot_gain_finalizers() -> None:
    old = config_map(
        name="c", deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["example.com/a"]
    )
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    assert errors(new, old) == [
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"example.com/b"}'
    ]


@pytest.mark.parametrize(
    "obj",
    [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "Bad", "namespace": "d"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "Bad", "namespace": "d"},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "Bad", "namespace": "d"},
        },
    ],
)
def test_other_kinds_get_metadata_validation_only(obj: dict[str, Any]) -> None:
    assert errors(obj) == [f'metadata.name: Invalid value: "Bad": {SUBDOMAIN_MSG}']
    obj["metadata"]["name"] = "good"
    obj["spec"] = {"anything": ["goes"]}
    assert errors(obj) == []


def test_access_reviews_are_not_validated_as_stored_objects() -> None:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {},
    }
    assert errors(review) == []


def test_causes_render_into_the_kubernetes_invalid_status_message() -> None:
    obj = config_map(name="Bad_Name")
    info = REGISTRY.by_api_version("v1", "ConfigMap")
    assert info is not None
    causes = admission.validate(info, obj, None)
    error = invalid_object("", "ConfigMap", "Bad_Name", causes)
    assert error.code == 422
    assert (
        error.message
        == f'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'
    )
    assert error.details["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}',
            "field": "metadata.name",
        }
    ]
