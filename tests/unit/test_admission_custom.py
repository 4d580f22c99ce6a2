"""Custom resources against their CRD schema, and CustomResourceDefinitions themselves."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.api import admission
from runtime.api.registry import CustomInfo, Registry, ResourceInfo

REGISTRY = Registry()
TESTDATA = Path(__file__).resolve().parents[1] / "testdata" / "admission"


def widget_crd() -> dict[str, Any]:
    return yaml.safe_load((TESTDATA / "widget-crd.yaml").read_text())


def widget_info(preserve_unknown: bool = False) -> ResourceInfo:
    schema = widget_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return ResourceInfo(
        group="example.com",
        version="v1",
        plural="widgets",
        kind="Widget",
        namespaced=True,
        custom=CustomInfo(
            schema=schema,
            crd_name="widgets.example.com",
            storage=True,
            preserve_unknown=preserve_unknown,
        ),
    )


def widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"size": "small", **spec},
    }


def admitted(obj: dict[str, Any], info: ResourceInfo | None = None) -> dict[str, Any]:
    admission.default(info or widget_info(), obj)
    return obj


def errors(
    obj: dict[str, Any], old: dict[str, Any] | None = None, info: ResourceInfo | None = None
) -> list[str]:
    info = info or widget_info()
    admission.default(info, obj)
    return [c.render() for c in admission.validate(info, obj, old)]


# --- validation against the schema -------------------------------------------------------
def test_a_wrong_type_is_reported_as_kubernetes_words_it() -> None:
    assert errors(widget(replicas="three")) == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'
    ]


def test_an_enum_lists_its_supported_values() -> None:
    assert errors(widget(size="huge")) == [
        'spec.size: Unsupported value: "huge": supported values: "small", "large"'
    ]


def test_a_missing_required_field_is_required() -> None:
    obj = widget()
    del obj["spec"]["size"]
    assert errors(obj) == ["spec.size: Required value"]
    assert errors(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "d"},
        }
    ) == ["spec: Required value"]


def test_numbers_respect_their_bounds() -> None:
    assert errors(widget(replicas=0)) == [
        "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
    ]
    assert errors(widget(replicas=11)) == [
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
    ]
    assert errors(widget(ratio=0.5)) == [
        "spec.ratio: Invalid value: 0.5: spec.ratio in body should be greater than 0.5"
    ]
    assert errors(widget(replicas=3.0)) == []


def test_strings_respect_length_and_pattern() -> None:
    assert errors(widget(name="AB")) == [
        'spec.name: Invalid value: "AB": spec.name in body should be at least 3 chars long',
        "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
    ]
    assert errors(widget(name="abcdefghij")) == [
        "spec.name: Too long: may not be more than 8 bytes"
    ]


def test_arrays_respect_their_item_counts_item_schema_and_set_semantics() -> None:
    assert errors(widget(tags=[])) == [
        "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"
    ]
    assert errors(widget(tags=["a", "b", "c", "d"])) == [
        "spec.tags: Too many: 4: must have at most 3 items"
    ]
    assert errors(widget(tags=["a", 1])) == [
        'spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"'
    ]
    assert errors(widget(tags=["a", "a"])) == ['spec.tags[1]: Duplicate value: "a"']


def test_list_map_entries_are_unique_by_their_keys() -> None:
    ports = [{"name": "http", "port": 80}, {"name": "http", "port": 81}]
    assert errors(widget(ports=ports)) == [
        'spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}'
    ]
    assert errors(widget(ports=[{"port": 80}])) == ["spec.ports[0].name: Required value"]


def test_int_or_string_fields_accept_both_and_nothing_else() -> None:
    assert errors(widget(port=8080)) == []
    assert errors(widget(port="http")) == []
    assert errors(widget(port=True)) == [
        'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"'
    ]


def test_additional_properties_validate_every_map_value() -> None:
    assert errors(widget(labels={"a": "x", "b": 2})) == [
        'spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer"'
    ]


def test_nullable_fields_accept_null_and_others_drop_it() -> None:
    obj = widget(note=None, name=None)
    assert errors(obj) == []
    assert obj["spec"]["note"] is None
    assert "name" not in obj["spec"]


def test_a_date_time_format_is_checked() -> None:
    assert errors(widget(expires="2024-01-01T00:00:00Z")) == []
    assert errors(widget(expires="tomorrow")) == [
        'spec.expires: Invalid value: "tomorrow": spec.expires in body must be of type date-time: "tomorrow"'
    ]


def test_an_embedded_resource_needs_api_version_and_kind() -> None:
    assert errors(widget(template={"metadata": {"name": "x"}})) == [
        "spec.template.apiVersion: Required value: must not be empty",
        "spec.template.kind: Required value: must not be empty",
    ]
    embedded = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"a": "b"},
    }
    assert errors(widget(template=copy.deepcopy(embedded))) == []


def test_custom_resource_metadata_is_validated_like_any_object() -> None:
    obj = widget()
    obj["metadata"] = {"name": "Bad_Name"}
    (name, namespace) = errors(obj)
    assert name.startswith(
        'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )
    assert namespace == "metadata.namespace: Required value"


# --- defaulting and pruning --------------------------------------------------------------
def test_schema_defaults_fill_missing_fields_including_inside_defaulted_objects() -> None:
    spec = admitted(widget())["spec"]
    assert spec["replicas"] == 1
    assert spec["resources"] == {"cpu": "100m", "memory": "64Mi"}


def test_defaults_apply_inside_list_items_and_map_values() -> None:
    spec = admitted(widget(ports=[{"name": "http"}], routes={"a": {}}))["spec"]
    assert spec["ports"] == [{"name": "http", "port": 80}]
    assert spec["routes"] == {"a": {"weight": 1}}


def test_given_values_are_not_overwritten_by_defaults() -> None:
    spec = admitted(widget(replicas=5, resources={"cpu": "1"}))["spec"]
    assert spec["replicas"] == 5
    assert spec["resources"] == {"cpu": "1", "memory": "64Mi"}


def test_unknown_fields_are_pruned_but_root_metadata_and_preserved_subtrees_are_kept() -> None:
    obj = widget(unknown=1, extra={"free": ["form"]})
    obj["metadata"]["labels"] = {"a": "b"}
    obj["rogue"] = True
    obj["status"] = {"anything": {"goes": 1}}
    admitted(obj)
    assert "unknown" not in obj["spec"]
    assert obj["spec"]["extra"] == {"free": ["form"]}
    assert "rogue" not in obj
    assert obj["status"] == {"anything": {"goes": 1}}
    assert obj["metadata"]["labels"] == {"a": "b"}


def test_an_embedded_resource_keeps_its_type_and_metadata_when_pruned() -> None:
    embedded = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"a": "b"},
    }
    spec = admitted(widget(template=copy.deepcopy(embedded)))["spec"]
    assert spec["template"] == embedded


def test_a_resource_whose_crd_preserves_unknown_fields_is_not_pruned() -> None:
    obj = admitted(widget(unknown=1), widget_info(preserve_unknown=True))
    assert obj["spec"]["unknown"] == 1


def test_defaulting_twice_changes_nothing() -> None:
    once = admitted(widget(ports=[{"name": "a"}], unknown=1))
    twice = admitted(copy.deepcopy(once))
    assert once == twice


# --- CustomResourceDefinition ------------------------------------------------------------
def crd_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    info = REGISTRY.by_api_version("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert info is not None
    admission.default(info, obj)
    if old is not None:
        admission.default(info, old)
    return [c.render() for c in admission.validate(info, obj, old)]


def test_the_widget_crd_is_valid_and_gets_its_defaults() -> None:
    crd = widget_crd()
    assert crd_errors(crd) == []
    assert crd["spec"]["names"]["singular"] == "widget"
    assert crd["spec"]["names"]["listKind"] == "WidgetList"
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    assert crd["status"] == {"storedVersions": ["v1"]}


def test_a_crd_name_must_be_plural_dot_group() -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = "widget.example.com"
    assert crd_errors(crd) == [
        'metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group'
    ]


def test_a_crd_group_is_a_dotted_domain_and_the_scope_is_known() -> None:
    crd = widget_crd()
    crd["metadata"]["name"] = "widgets.example"
    crd["spec"].update(group="example", scope="Global")
    assert crd_errors(crd) == [
        'spec.group: Invalid value: "example": should be a domain with at least one dot',
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
    ]


def test_a_crd_needs_exactly_one_storage_version_and_one_served() -> None:
    crd = widget_crd()
    version = crd["spec"]["versions"][0]
    version["served"] = False
    crd["spec"]["versions"].append({**copy.deepcopy(version), "name": "v2"})
    assert crd_errors(crd) == [
        "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: "
        "must have exactly one version marked as storage version",
        "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: "
        "must have at least one version marked as served",
    ]
    crd["spec"]["versions"] = []
    assert crd_errors(crd)[0] == "spec.versions: Required value: must have at least one version"


def test_every_crd_version_needs_a_structural_schema() -> None:
    crd = widget_crd()
    del crd["spec"]["versions"][0]["schema"]
    assert crd_errors(crd) == [
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
    ]
    crd = widget_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    del schema["type"]
    schema["properties"]["spec"]["properties"]["untyped"] = {"description": "no type"}
    schema["properties"]["spec"]["properties"]["list"] = {"type": "array"}
    prefix = "spec.versions[0].schema.openAPIV3Schema"
    assert crd_errors(crd) == [
        f"{prefix}.type: Required value: must not be empty at the root",
        f"{prefix}.properties[spec].properties[list].items: Required value: must be specified",
        f"{prefix}.properties[spec].properties[untyped].type: Required value: must not be empty for specified object fields",
    ]


def test_a_crd_default_must_satisfy_its_own_schema() -> None:
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "replicas"
    ]["default"] = "one"
    assert crd_errors(crd) == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: "
        'Invalid value: "string": spec.replicas in body must be of type integer: "string"'
    ]


def test_crd_names_are_dns_1035_labels_and_kind_differs_from_list_kind() -> None:
    crd = widget_crd()
    crd["spec"]["names"] = {
        "plural": "widgets",
        "kind": "Widget",
        "listKind": "Widget",
        "shortNames": ["W"],
    }
    (short, same) = crd_errors(crd)
    assert short.startswith(
        'spec.names.shortNames[0]: Invalid value: "W": a DNS-1035 label must consist'
    )
    assert (
        same
        == 'spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same'
    )


def test_a_crd_conversion_strategy_is_none_or_a_configured_webhook() -> None:
    crd = widget_crd()
    crd["spec"]["conversion"] = {"strategy": "Webhook"}
    assert crd_errors(crd) == [
        "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
        "spec.conversion.conversionReviewVersions: Required value: must include at least one of v1, v1beta1",
    ]
    crd["spec"]["conversion"] = {"strategy": "Magic"}
    assert crd_errors(crd) == [
        'spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook"'
    ]


def test_a_crd_group_and_plural_never_change_and_an_established_scope_stays() -> None:
    old = widget_crd()
    crd_errors(old)
    old["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    new = copy.deepcopy(old)
    new["spec"].update(group="example.org", scope="Cluster")
    new["spec"]["names"]["plural"] = "gadgets"
    assert crd_errors(new, old) == [
        'spec.scope: Invalid value: "Cluster": field is immutable',
        'spec.group: Invalid value: "example.org": field is immutable',
        'spec.names.plural: Invalid value: "gadgets": field is immutable',
    ]


def test_a_stored_version_cannot_disappear_from_the_crd() -> None:
    old = widget_crd()
    crd_errors(old)
    new = copy.deepcopy(old)
    new["spec"]["versions"][0]["name"] = "v2"
    assert crd_errors(new, old) == [
        'status.storedVersions[0]: Invalid value: "v1": must appear in spec.versions'
    ]


@pytest.mark.parametrize("keyword", ["$ref", "patternProperties", "definitions"])
def test_unsupported_schema_keywords_are_forbidden(keyword: str) -> None:
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][keyword] = {
        "x": {"type": "string"}
    }
    (only,) = crd_errors(crd)
    assert (
        only
        == f"spec.versions[0].schema.openAPIV3Schema.properties[spec].{keyword}: Forbidden: {keyword} is not supported"
    )
