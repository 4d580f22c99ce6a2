"""The three PATCH formats, with kube-apiserver's results and errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from kubemodel.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchRejected,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

TESTDATA = Path(__file__).resolve().parent.parent / "testdata" / "patch"
REJECTED = "the server rejected our request due to an error in our request"


@pytest.fixture
def deployment() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TESTDATA / "deployment.json").read_text())
    return data


def smp(
    obj: dict[str, Any], patch: Any, group: str = "apps", version: str = "v1", kind: str = ""
) -> dict[str, Any]:
    schemas = schema.builtin()
    root = schemas.root(group, version, kind or obj["kind"])
    assert root is not None
    return strategic_merge_patch(obj, patch, schemas, root)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod_spec(obj)["containers"] if c["name"] == name)
    return found


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


def dollar_keys(value: Any) -> list[str]:
    """Every key starting with '$' anywhere in value (directives must never leak)."""
    if isinstance(value, dict):
        found = [k for k in value if k.startswith("$")]
        for v in value.values():
            found.extend(dollar_keys(v))
        return found
    if isinstance(value, list):
        return [k for v in value for k in dollar_keys(v)]
    return []


def on_pod_spec(patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": patch}}}


# ======================================================================================
# JSON patch (RFC 6902)
# ======================================================================================
def test_json_patch_adds_replaces_and_removes_nested_members(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}},
            {"op": "remove", "path": "/metadata/labels/tier"},
        ],
    )
    assert result["spec"]["replicas"] == 5
    assert result["metadata"]["annotations"] == {"a": "1"}
    assert result["metadata"]["labels"] == {"app": "web"}


def test_json_patch_never_changes_its_inputs(deployment: dict[str, Any]) -> None:
    before = copy.deepcopy(deployment)
    value = {"name": "extra", "image": "x"}
    patch = [{"op": "add", "path": "/spec/template/spec/containers/-", "value": value}]
    result = json_patch(deployment, patch)
    assert deployment == before
    result["metadata"]["labels"]["app"] = "changed"
    pod_spec(result)["containers"][-1]["image"] = "changed"
    assert deployment == before
    assert value == {"name": "extra", "image": "x"}


def test_json_patch_appends_with_dash_and_inserts_at_an_index(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [
            {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
            {"op": "add", "path": "/metadata/finalizers/0", "value": "first"},
        ],
    )
    assert result["metadata"]["finalizers"] == ["first", "example.com/a", "example.com/b", "c"]


def test_json_patch_accepts_negative_indices_as_evanphx_does(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [{"op": "replace", "path": "/spec/template/spec/containers/-1/image", "value": "b:2"}],
    )
    assert container(result, "sidecar")["image"] == "b:2"
    assert container(result, "app")["image"] == "nginx:1.25"


def test_json_patch_test_operation_passes_on_equal_values(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [
            {"op": "test", "path": "/spec/selector", "value": {"matchLabels": {"app": "web"}}},
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
        ],
    )
    assert result["spec"]["replicas"] == 3


def test_json_patch_failed_test_is_invalid_with_kubernetes_wording(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        422,
        "Invalid",
        REJECTED,
    )
    assert isinstance(caught.value.__cause__, PatchRejected)
    assert "testing value /spec/replicas failed" in str(caught.value.__cause__)


def test_json_patch_test_compares_numbers_within_their_json_type(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError):
        json_patch(deployment, [{"op": "test", "path": "/spec/replicas", "value": 2.0}])
    with pytest.raises(ApiError):
        json_patch(deployment, [{"op": "test", "path": "/spec/paused", "value": False}])


def test_json_patch_test_of_a_missing_member_against_null_passes(
    deployment: dict[str, Any],
) -> None:
    result = json_patch(deployment, [{"op": "test", "path": "/spec/paused", "value": None}])
    assert result == deployment


def test_json_patch_path_under_a_missing_parent_is_invalid(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, [{"op": "add", "path": "/status/conditions/0", "value": {}}])
    assert caught.value.code == 422
    assert "doc is missing path" in str(caught.value.__cause__)


def test_json_patch_removing_a_missing_member_is_invalid(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, [{"op": "remove", "path": "/metadata/annotations"}])
    assert (caught.value.code, caught.value.reason) == (422, "Invalid")


def test_json_patch_index_out_of_range_is_invalid(deployment: dict[str, Any]) -> None:
    for operation in (
        {"op": "remove", "path": "/metadata/finalizers/2"},
        {"op": "add", "path": "/metadata/finalizers/3", "value": "x"},
        {"op": "replace", "path": "/metadata/finalizers/x", "value": "x"},
    ):
        with pytest.raises(ApiError) as caught:
            json_patch(deployment, [operation])
        assert caught.value.code == 422


def test_json_patch_replace_of_a_missing_member_adds_it_as_kubernetes_does(
    deployment: dict[str, Any],
) -> None:
    result = json_patch(deployment, [{"op": "replace", "path": "/spec/paused", "value": True}])
    assert result["spec"]["paused"] is True


def test_json_patch_moves_and_copies_values(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [
            {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"},
        ],
    )
    assert result["metadata"]["labels"] == {"app": "web", "layer": "frontend"}
    assert result["metadata"]["annotations"] == {"app": "web", "tier": "frontend"}


def test_json_patch_decodes_escaped_pointer_tokens(deployment: dict[str, Any]) -> None:
    result = json_patch(
        deployment,
        [{"op": "add", "path": "/metadata/labels/example.com~1team~0x", "value": "t"}],
    )
    assert result["metadata"]["labels"]["example.com/team~x"] == "t"


def test_json_patch_unknown_operation_is_invalid(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, [{"op": "frobnicate", "path": "/spec"}])
    assert caught.value.code == 422
    assert "Unexpected kind: frobnicate" in str(caught.value.__cause__)


def test_json_patch_path_without_leading_slash_is_invalid(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, [{"op": "replace", "path": "spec/replicas", "value": 1}])
    assert caught.value.code == 422


def test_json_patch_body_that_is_not_an_array_is_a_bad_request(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, {"op": "add"})
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "BadRequest",
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    )
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, ["add"])
    assert caught.value.message == (
        "json: cannot unmarshal string into Go value of type jsonpatch.Operation"
    )


def test_json_patch_null_body_changes_nothing(deployment: dict[str, Any]) -> None:
    result = json_patch(deployment, None)
    assert result == deployment
    assert result is not deployment


def test_json_patch_with_too_many_operations_is_too_large(deployment: dict[str, Any]) -> None:
    operations = [{"op": "test", "path": "/kind", "value": "Deployment"}] * (
        MAX_JSON_PATCH_OPERATIONS + 1
    )
    with pytest.raises(ApiError) as caught:
        json_patch(deployment, operations)
    assert (caught.value.code, caught.value.reason) == (413, "RequestEntityTooLarge")
    assert caught.value.message.endswith("is 10000, got 10001")


# ======================================================================================
# JSON merge patch (RFC 7386)
# ======================================================================================
def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists(
    deployment: dict[str, Any],
) -> None:
    result = merge_patch(
        deployment,
        {
            "metadata": {"labels": {"tier": None, "team": "a"}, "finalizers": ["only"]},
            "spec": {"replicas": 4, "strategy": None},
        },
    )
    assert result["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert result["metadata"]["finalizers"] == ["only"]
    assert result["spec"]["replicas"] == 4
    assert "strategy" not in result["spec"]
    assert pod_spec(result) == pod_spec(deployment)


def test_merge_patch_drops_nulls_inside_new_values_but_keeps_null_list_elements(
    deployment: dict[str, Any],
) -> None:
    result = merge_patch(
        deployment,
        {
            "metadata": {"annotations": {"a": "1", "b": None}},
            "spec": {"extra": [None, {"x": None}]},
        },
    )
    assert result["metadata"]["annotations"] == {"a": "1"}
    assert result["spec"]["extra"] == [None, {}]


def test_merge_patch_never_changes_its_inputs(deployment: dict[str, Any]) -> None:
    before = copy.deepcopy(deployment)
    patch = {"metadata": {"annotations": {"a": "1"}}}
    result = merge_patch(deployment, patch)
    result["metadata"]["annotations"]["a"] = "2"
    result["spec"]["selector"]["matchLabels"]["app"] = "x"
    assert deployment == before
    assert patch == {"metadata": {"annotations": {"a": "1"}}}


@pytest.mark.parametrize("body", [None, "text", 5, True])
def test_merge_patch_that_is_not_an_object_is_a_bad_request(
    deployment: dict[str, Any], body: Any
) -> None:
    with pytest.raises(ApiError) as caught:
        merge_patch(deployment, body)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "BadRequest",
        "Invalid JSON Patch",
    )


def test_merge_patch_array_would_replace_the_object_and_is_invalid(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        merge_patch(deployment, [1, 2])
    assert (caught.value.code, caught.value.reason) == (422, "Invalid")
    assert caught.value.message.startswith(' "" is invalid: patch: Invalid value: "[1,2]": ')
    assert "cannot unmarshal array" in caught.value.message


# ======================================================================================
# Strategic merge patch
# ======================================================================================
def test_strategic_merge_merges_containers_by_name(deployment: dict[str, Any]) -> None:
    result = smp(
        deployment,
        on_pod_spec({"containers": [{"name": "app", "image": "nginx:1.27"}]}),
    )
    app = container(result, "app")
    assert app["image"] == "nginx:1.27"
    assert app["env"] == container(deployment, "app")["env"]
    assert names(pod_spec(result)["containers"]) == ["app", "sidecar"]


def test_strategic_merge_puts_new_list_items_before_later_server_items(
    deployment: dict[str, Any],
) -> None:
    result = smp(
        deployment,
        on_pod_spec({"containers": [{"name": "app", "image": "n"}, {"name": "new", "image": "x"}]}),
    )
    assert names(pod_spec(result)["containers"]) == ["app", "new", "sidecar"]
    assert container(result, "new") == {"name": "new", "image": "x"}


def test_strategic_merge_keeps_the_patch_order_for_patched_items() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]},
    }
    patch = {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}
    result = smp(obj, patch, "", "v1")
    assert result["spec"]["containers"] == [
        {"name": "2", "image": "b"},
        {"name": "3", "image": "c"},
        {"name": "1", "image": "a"},
    ]


def test_strategic_merge_merges_env_ports_and_volume_mounts_by_their_keys(
    deployment: dict[str, Any],
) -> None:
    result = smp(
        deployment,
        on_pod_spec(
            {
                "containers": [
                    {
                        "name": "app",
                        "env": [{"name": "LOG", "value": "debug"}],
                        "ports": [{"containerPort": 443, "protocol": "TCP"}],
                        "volumeMounts": [{"mountPath": "/var/cache", "readOnly": True}],
                    }
                ]
            }
        ),
    )
    app = container(result, "app")
    assert app["env"] == [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "debug"}]
    assert app["ports"] == [
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443, "name": "https", "protocol": "TCP"},
    ]
    assert app["volumeMounts"][1] == {"name": "cache", "mountPath": "/var/cache", "readOnly": True}


def test_strategic_merge_merges_volumes_by_name_new_ones_first_as_kubernetes_does(
    deployment: dict[str, Any],
) -> None:
    patch = on_pod_spec({"volumes": [{"name": "data", "emptyDir": {}}]})
    result = smp(deployment, patch)
    assert names(pod_spec(result)["volumes"]) == ["data", "config", "cache"]
    anchored = on_pod_spec({"volumes": [{"name": "config"}, {"name": "data", "emptyDir": {}}]})
    result = smp(deployment, anchored)
    assert names(pod_spec(result)["volumes"]) == ["config", "data", "cache"]


def test_strategic_merge_merges_owner_references_by_uid(deployment: dict[str, Any]) -> None:
    owner = {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "u-2"}
    result = smp(deployment, {"metadata": {"ownerReferences": [owner]}})
    assert names(result["metadata"]["ownerReferences"], "uid") == ["u-2", "u-1"]


def test_strategic_merge_merges_service_ports_by_port() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
    }
    result = smp(service, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "", "v1")
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_strategic_merge_replaces_lists_without_a_patch_strategy(
    deployment: dict[str, Any],
) -> None:
    toleration = {"key": "gpu", "operator": "Exists"}
    result = smp(
        deployment,
        on_pod_spec({"tolerations": [toleration], "containers": [{"name": "app", "args": ["-v"]}]}),
    )
    assert pod_spec(result)["tolerations"] == [toleration]
    assert container(result, "app")["args"] == ["-v"]


def test_strategic_merge_merges_primitive_lists_as_sets(deployment: dict[str, Any]) -> None:
    result = smp(deployment, {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}})
    assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]


def test_strategic_merge_null_deletes_a_map_key_and_ignores_missing_ones(
    deployment: dict[str, Any],
) -> None:
    result = smp(
        deployment,
        {"metadata": {"labels": {"tier": None, "absent": None}}, "spec": {"strategy": None}},
    )
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "strategy" not in result["spec"]


def test_strategic_merge_changes_scalars_and_types(deployment: dict[str, Any]) -> None:
    result = smp(deployment, {"spec": {"replicas": 7, "selector": "odd", "paused": True}})
    assert (result["spec"]["replicas"], result["spec"]["selector"]) == (7, "odd")
    assert result["spec"]["paused"] is True


def test_strategic_merge_never_changes_its_inputs(deployment: dict[str, Any]) -> None:
    before = copy.deepcopy(deployment)
    patch = on_pod_spec(
        {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}],
            "volumes": [{"name": "cache", "$patch": "delete"}],
        }
    )
    patch_before = copy.deepcopy(patch)
    result = smp(deployment, patch)
    assert deployment == before
    assert patch == patch_before
    assert container(result, "app")["env"][0] == {"name": "X", "value": "1"}
    container(result, "app")["env"][0]["value"] = "changed"  # came from the patch
    container(result, "app")["env"].append({"name": "Y"})
    container(result, "sidecar")["image"] = "changed"
    result["metadata"]["labels"]["app"] = "changed"
    assert deployment == before
    assert patch == patch_before


def test_strategic_merge_replace_directive_replaces_a_map(deployment: dict[str, Any]) -> None:
    result = smp(deployment, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert result["metadata"]["labels"] == {"only": "this"}


def test_strategic_merge_replace_directive_at_the_root_replaces_the_object(
    deployment: dict[str, Any],
) -> None:
    result = smp(deployment, {"$patch": "replace", "kind": "Deployment", "spec": {"replicas": 1}})
    assert result == {"kind": "Deployment", "spec": {"replicas": 1}}


def test_strategic_merge_delete_directive_empties_an_existing_map(
    deployment: dict[str, Any],
) -> None:
    result = smp(deployment, {"metadata": {"labels": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {}


def test_strategic_merge_delete_directive_on_a_new_key_adds_nothing(
    deployment: dict[str, Any],
) -> None:
    result = smp(deployment, {"metadata": {"annotations": {"$patch": "delete"}}})
    assert "annotations" not in result["metadata"]


def test_strategic_merge_delete_directive_removes_list_items_by_merge_key(
    deployment: dict[str, Any],
) -> None:
    result = smp(
        deployment,
        on_pod_spec(
            {
                "containers": [{"name": "sidecar", "$patch": "delete"}],
                "volumes": [
                    {"name": "cache", "$patch": "delete"},
                    {"name": "nope", "$patch": "delete"},
                ],
            }
        ),
    )
    assert names(pod_spec(result)["containers"]) == ["app"]
    assert names(pod_spec(result)["volumes"]) == ["config"]


def test_strategic_merge_replace_directive_in_a_list_replaces_the_list(
    deployment: dict[str, Any],
) -> None:
    result = smp(
        deployment,
        on_pod_spec({"containers": [{"$patch": "replace"}, {"name": "solo", "image": "s"}]}),
    )
    assert pod_spec(result)["containers"] == [{"name": "solo", "image": "s"}]
    emptied = smp(deployment, on_pod_spec({"volumes": [{"$patch": "replace"}]}))
    assert pod_spec(emptied)["volumes"] == []


def test_strategic_merge_rejects_the_merge_directive_in_a_map_as_kubernetes_does(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"labels": {"$patch": "merge", "a": "b"}}})
    assert (caught.value.code, caught.value.reason) == (500, "")
    assert caught.value.message == "unknown patch type: merge in map: map[$patch:merge a:b]"


def test_strategic_merge_rejects_the_merge_directive_in_a_list_as_kubernetes_does(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, on_pod_spec({"containers": [{"name": "app", "$patch": "merge"}]}))
    assert caught.value.code == 500
    assert caught.value.message == "merging lists cannot yet be specified in the patch"


def test_strategic_merge_rejects_an_unknown_directive_in_a_list_item(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, on_pod_spec({"containers": [{"name": "app", "$patch": "bogus"}]}))
    assert caught.value.message == "unknown patch type: bogus in map: map[$patch:bogus name:app]"


def test_strategic_merge_deletes_from_primitive_lists(deployment: dict[str, Any]) -> None:
    result = smp(
        deployment, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    )
    assert result["metadata"]["finalizers"] == ["example.com/b"]


def test_strategic_merge_deletion_list_without_a_field_is_a_bad_request(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"$deleteFromPrimitiveList": ["x"]}})
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "BadRequest",
        "invalid patch format of primitive list",
    )


def test_strategic_merge_orders_a_merged_list_by_set_element_order(
    deployment: dict[str, Any],
) -> None:
    # What kubectl's client-side apply sends after reordering and adding a container.
    patch = on_pod_spec(
        {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "app"}],
            "containers": [{"name": "new", "image": "n"}],
        }
    )
    result = smp(deployment, patch)
    assert names(pod_spec(result)["containers"]) == ["sidecar", "new", "app"]
    assert container(result, "app") == container(deployment, "app")


def test_strategic_merge_set_element_order_keeps_server_only_items_in_place() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["1", "2", "3", "4"]}}
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["1", "2"],
            "$deleteFromPrimitiveList/finalizers": ["3"],
        }
    }
    result = smp(obj, patch, "", "v1")
    assert result["metadata"]["finalizers"] == ["1", "2", "4"]


def test_strategic_merge_set_element_order_orders_a_new_list(deployment: dict[str, Any]) -> None:
    result = smp(
        deployment,
        {
            "metadata": {"finalizers": None},
            "spec": {"template": {"spec": {"initContainers": [{"name": "b"}, {"name": "a"}]}}},
        },
    )
    assert "finalizers" not in result["metadata"]
    patch = on_pod_spec(
        {
            "$setElementOrder/initContainers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "b"}, {"name": "a"}],
        }
    )
    with pytest.raises(ApiError):  # the patch list contradicts the order it announces
        smp(deployment, patch)
    patch = on_pod_spec(
        {
            "$setElementOrder/initContainers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "a"}, {"name": "b", "image": "x"}],
        }
    )
    result = smp(deployment, patch)
    assert pod_spec(result)["initContainers"] == [{"name": "a"}, {"name": "b", "image": "x"}]


def test_strategic_merge_set_element_order_that_contradicts_the_patch_is_an_error(
    deployment: dict[str, Any],
) -> None:
    patch = on_pod_spec(
        {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "s"}, {"name": "app", "image": "a"}],
        }
    )
    with pytest.raises(ApiError) as caught:
        smp(deployment, patch)
    assert caught.value.code == 500
    assert caught.value.message.startswith("the order in patch list:\n[map[image:s name:sidecar]")
    assert "doesn't match $setElementOrder list:" in caught.value.message


def test_strategic_merge_set_element_order_without_a_field_is_a_bad_request(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"$setElementOrder": ["x"]}})
    assert (caught.value.code, caught.value.message) == (
        400,
        "invalid patch format of setElementOrder list",
    )


def test_strategic_merge_set_element_order_must_be_a_list(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"$setElementOrder/finalizers": "x"}})
    assert (caught.value.code, caught.value.message) == (
        500,
        "expected a []interface {}, but received a string",
    )


def test_strategic_merge_retain_keys_clears_unlisted_fields_of_the_strategy(
    deployment: dict[str, Any],
) -> None:
    result = smp(deployment, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_retain_keys_switches_a_volume_source(deployment: dict[str, Any]) -> None:
    patch = on_pod_spec(
        {
            "volumes": [
                {"name": "cache", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/c"}}
            ]
        }
    )
    result = smp(deployment, patch)
    assert pod_spec(result)["volumes"][1] == {"name": "cache", "hostPath": {"path": "/c"}}


def test_strategic_merge_retain_keys_must_list_every_patched_field(
    deployment: dict[str, Any],
) -> None:
    for strategy in (
        {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}},
        {"$retainKeys": "type", "type": "Recreate"},
    ):
        with pytest.raises(ApiError) as caught:
            smp(deployment, {"spec": {"strategy": strategy}})
        assert (caught.value.code, caught.value.reason, caught.value.message) == (
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
        )


def test_strategic_merge_replaces_maps_with_the_replace_strategy() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "minAvailable": 1},
    }
    patch = {"spec": {"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}}
    result = smp(pdb, patch, "policy")
    assert result["spec"]["selector"] == {"matchExpressions": [{"key": "k", "operator": "Exists"}]}
    assert result["spec"]["minAvailable"] == 1


def test_strategic_merge_treats_fields_without_schema_like_a_merge_patch(
    deployment: dict[str, Any],
) -> None:
    deployment["spec"]["extension"] = {"list": [1, 2], "map": {"a": 1, "b": 2}}
    patch = {"spec": {"extension": {"list": [3], "map": {"a": None, "c": 3}}}}
    result = smp(deployment, patch)
    assert result["spec"]["extension"] == {"list": [3], "map": {"b": 2, "c": 3}}


def test_strategic_merge_of_a_custom_resource_merges_like_a_merge_patch() -> None:
    schemas = schema.builtin()
    root = schemas.custom_root(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            },
        }
    )
    obj = {"kind": "Widget", "metadata": {"finalizers": ["a"]}, "spec": {"sizes": [1, 2], "x": 1}}
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"sizes": [3], "x": None}}
    result = strategic_merge_patch(obj, patch, schemas, root)
    assert result["spec"] == {"sizes": [3]}
    assert result["metadata"]["finalizers"] == ["b", "a"]  # ObjectMeta keeps its markers


def test_strategic_merge_leaks_no_directive_into_new_values(deployment: dict[str, Any]) -> None:
    patch = {
        "metadata": {"annotations": {"$patch": "replace", "a": "1", "gone": None}},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        {"name": "init", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]},
                        {"name": "drop", "$patch": "delete"},
                    ],
                    "securityContext": {
                        "$retainKeys": ["runAsUser", "sysctls"],
                        "runAsUser": 1,
                        "sysctls": [{"name": "a", "$patch": "delete"}],
                    },
                    "affinity": {"nodeAffinity": {"$patch": "delete"}},
                    "$setElementOrder/tolerations": [{"key": "a"}],
                }
            }
        },
    }
    result = smp(deployment, patch)
    assert dollar_keys(result) == []
    assert result["metadata"]["annotations"] == {"a": "1"}
    assert pod_spec(result)["initContainers"] == [{"name": "init", "env": [{"name": "Y"}]}]
    assert pod_spec(result)["securityContext"] == {"runAsUser": 1, "sysctls": []}
    assert pod_spec(result)["affinity"] == {}


def test_strategic_merge_missing_merge_key_is_an_error_with_go_wording(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, on_pod_spec({"containers": [{"image": "x", "ports": [{"port": 1}]}]}))
    assert (caught.value.code, caught.value.reason) == (500, "")
    assert caught.value.message == (
        "map: map[image:x ports:[map[port:1]]] does not contain declared merge key: name"
    )


def test_strategic_merge_delete_directive_needs_the_merge_key(deployment: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, on_pod_spec({"containers": [{"$patch": "delete"}]}))
    assert (
        caught.value.message == "map: map[$patch:delete] does not contain declared merge key: name"
    )


def test_strategic_merge_rejects_lists_of_lists_in_merging_lists(
    deployment: dict[str, Any],
) -> None:
    del deployment["metadata"]["finalizers"]
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"finalizers": [["nested"]]}})
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        422,
        "Invalid",
        REJECTED,
    )
    assert str(caught.value.__cause__) == "lists of lists are not supported"


def test_strategic_merge_rejects_mixed_element_types_in_merging_lists(
    deployment: dict[str, Any],
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, {"metadata": {"finalizers": [1]}})
    assert caught.value.code == 500
    assert caught.value.message.startswith("list element types are not identical: ")


@pytest.mark.parametrize(
    ("body", "kind"), [([{"a": 1}], "array"), ("x", "string"), (3, "number"), (False, "bool")]
)
def test_strategic_merge_patch_that_is_not_an_object_is_a_bad_request(
    deployment: dict[str, Any], body: Any, kind: str
) -> None:
    with pytest.raises(ApiError) as caught:
        smp(deployment, body)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "BadRequest",
        f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}",
    )


def test_strategic_merge_null_body_changes_nothing(deployment: dict[str, Any]) -> None:
    result = smp(deployment, None)
    assert result == deployment
    assert result is not deployment


def test_strategic_merge_of_what_kubectl_apply_sends_updates_only_what_changed(
    deployment: dict[str, Any],
) -> None:
    # kubectl 1.20 client-side apply: image bump, env var removed, a label removed.
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.27",
                            "$setElementOrder/env": [{"name": "MODE"}],
                            "env": [{"name": "LOG", "$patch": "delete"}],
                        }
                    ],
                }
            }
        },
    }
    result = smp(deployment, patch)
    assert dollar_keys(result) == []
    assert result["metadata"]["labels"] == {"app": "web"}
    app = container(result, "app")
    assert (app["image"], app["env"]) == ("nginx:1.27", [{"name": "MODE", "value": "prod"}])
    assert app["ports"] == container(deployment, "app")["ports"]
    assert names(pod_spec(result)["containers"]) == ["app", "sidecar"]
