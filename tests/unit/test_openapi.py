"""Unit tests of runtime.server.openapi: the /openapi/v2 and /openapi/v3 documents."""

from __future__ import annotations

import hashlib
import struct
import time
from typing import Any

import orjson
import pytest
import yaml

from runtime.api.registry import CustomInfo, Registry, ResourceInfo
from runtime.server.openapi import (
    V2_PROTOBUF_CONTENT_TYPE,
    V2_PROTOBUF_MEDIA_TYPE,
    OpenAPI,
    encode_v2_protobuf,
    wants_v2_protobuf,
)

Json = Any

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CronTab runs a command on a schedule.",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec", "note"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": "^\\S+( \\S+){4}$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["Fast", "Slow"]},
                "note": {"type": "string", "nullable": True},
                "port": {"x-kubernetes-int-or-string": True},
                "extra": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {"type": "string"}},
                },
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "choice": {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            },
        }
    },
}


def crontab(
    version: str = "v1", schema: dict[str, Any] | None = CRONTAB_SCHEMA, **custom: Any
) -> ResourceInfo:
    return ResourceInfo(
        group="stable.example.com",
        version=version,
        plural="crontabs",
        kind="CronTab",
        namespaced=True,
        subresources=frozenset({"status", "scale"}),
        custom=CustomInfo(schema=schema, crd_name="crontabs.stable.example.com", **custom),
    )


@pytest.fixture(scope="module")
def builtin_api() -> OpenAPI:
    return OpenAPI(Registry())


@pytest.fixture(scope="module")
def v2(builtin_api: OpenAPI) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(builtin_api.v2_json())
    return doc


@pytest.fixture
def crd_api() -> tuple[Registry, OpenAPI]:
    registry = Registry()
    registry.set_custom("crontabs.stable.example.com", [crontab()])
    return registry, OpenAPI(registry)


def walk(node: Json) -> Any:
    """Every dict under ``node``, treating ``properties`` maps as maps of schemas."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# --- definitions ----------------------------------------------------------------------


def test_the_v2_document_is_swagger_2_with_info_and_bearer_security(v2: dict[str, Any]) -> None:
    assert v2["swagger"] == "2.0"
    assert v2["info"] == {"title": "Kubernetes", "version": "v1.35.0"}
    assert v2["securityDefinitions"]["BearerToken"]["type"] == "apiKey"
    assert v2["security"] == [{"BearerToken": []}]


def test_every_served_builtin_kind_has_a_definition_with_its_group_version_kind(
    v2: dict[str, Any],
) -> None:
    defs = v2["definitions"]
    for info in Registry().all():
        gvks = [
            (g["group"], g["version"], g["kind"])
            for d in defs.values()
            for g in d.get("x-kubernetes-group-version-kind", ())
        ]
        assert (info.group, info.version, info.kind) in gvks, info.group_resource
    assert "io.k8s.api.apps.v1.Deployment" in defs
    assert "io.k8s.api.apps.v1.DeploymentList" in defs


def test_only_definitions_reachable_from_served_resources_are_published(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]
    assert "io.k8s.api.batch.v1.CronJob" in defs
    assert not any(".v1beta1." in name or ".v1alpha1." in name for name in defs)


def test_references_are_rewritten_to_swagger_definitions_and_all_resolve(
    v2: dict[str, Any],
) -> None:
    text = orjson.dumps(v2).decode()
    assert "#/$defs/" not in text
    defs = v2["definitions"]
    refs = [n["$ref"] for n in walk(v2) if isinstance(n.get("$ref"), str)]
    assert len(refs) > 1000
    for ref in refs:
        assert ref.startswith("#/definitions/"), ref
        assert ref.removeprefix("#/definitions/") in defs, ref


def test_types_are_single_strings_without_null(v2: dict[str, Any]) -> None:
    spec = v2["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["type"] == "object"
    assert spec["properties"]["replicas"] == {
        "description": spec["properties"]["replicas"]["description"],
        "format": "int32",
        "type": "integer",
    }
    for name, definition in v2["definitions"].items():
        for node in walk(definition):
            t = node.get("type")
            if t is not None and not isinstance(t, dict):  # a property may be *named* type
                assert isinstance(t, str) and t != "null", name


def test_int_or_string_and_quantity_are_strings_as_kube_apiserver_serves_them(
    v2: dict[str, Any],
) -> None:
    ios = v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["type"] == "string"
    assert ios["format"] == "int-or-string"
    assert "oneOf" not in ios
    assert v2["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"


def test_patch_strategy_and_list_markers_are_kept(v2: dict[str, Any]) -> None:
    containers = v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}
    strategy = v2["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert "description" in strategy


def test_api_version_and_kind_carry_no_enum(v2: dict[str, Any]) -> None:
    deployment = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]
    assert deployment["apiVersion"]["type"] == "string"
    assert "enum" not in deployment["apiVersion"]
    assert "enum" not in deployment["kind"]


def test_shared_meta_definitions_list_only_served_group_versions(v2: dict[str, Any]) -> None:
    gvks = v2["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"][
        "x-kubernetes-group-version-kind"
    ]
    served = {(r.group, r.version) for r in Registry().all()}
    assert {(g["group"], g["version"]) for g in gvks} == served


def check_kubectl_model(schema: dict[str, Any], defs: dict[str, Any], where: str) -> None:
    """The rules kubectl's OpenAPI model parser (k8s.io/kube-openapi proto) enforces."""
    ref = schema.get("$ref")
    if ref is not None:
        assert not schema.get("properties"), f"{where}: $ref with properties"
        assert "type" not in schema, f"{where}: $ref with a type"
        assert ref.startswith("#/definitions/") and ref[14:] in defs, f"{where}: {ref}"
        return
    t = schema.get("type")
    types = [t] if isinstance(t, str) else list(t or [])
    assert len(types) <= 1, f"{where}: multiple types"
    kind = types[0] if types else ("object" if "properties" in schema else None)
    if kind == "object":
        for name, child in (schema.get("properties") or {}).items():
            check_kubectl_model(child, defs, f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if not schema.get("properties") and isinstance(extra, dict):
            check_kubectl_model(extra, defs, f"{where}[*]")
    elif kind == "array":
        items = schema.get("items")
        assert isinstance(items, dict), f"{where}: array without exactly one item schema"
        check_kubectl_model(items, defs, f"{where}[]")
    elif kind is not None:
        assert kind in ("string", "number", "integer", "boolean"), f"{where}: type {kind}"


def test_every_definition_satisfies_the_kubectl_model_parser(
    crd_api: tuple[Registry, OpenAPI],
) -> None:
    _, api = crd_api
    defs = orjson.loads(api.v2_json())["definitions"]
    for name, schema in defs.items():
        check_kubectl_model(schema, defs, name)


# --- paths ----------------------------------------------------------------------------


def test_every_served_resource_has_paths_for_each_of_its_verbs(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    for info in Registry().all():
        prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        scope = f"{prefix}/namespaces/{{namespace}}" if info.namespaced else prefix
        collection = paths.get(f"{scope}/{info.plural}", {})
        item = paths.get(f"{scope}/{info.plural}/{{name}}", {})
        expected = {
            "create": (collection, "post", "post"),
            "list": (collection, "get", "list"),
            "deletecollection": (collection, "delete", "deletecollection"),
            "get": (item, "get", "get"),
            "update": (item, "put", "put"),
            "patch": (item, "patch", "patch"),
            "delete": (item, "delete", "delete"),
        }
        for verb in info.verbs:
            if verb == "watch":
                watch_scope = scope.replace(prefix, f"{prefix}/watch", 1)
                watch = paths[f"{watch_scope}/{info.plural}/{{name}}"]["get"]
                assert watch["x-kubernetes-action"] == "watch"
                continue
            if verb == "list" and info.list_kind not in {
                g["kind"]
                for d in v2["definitions"].values()
                for g in d.get("x-kubernetes-group-version-kind", ())
            }:
                continue
            path_item, method, action = expected[verb]
            op = path_item.get(method)
            assert op is not None, (info.group_resource, verb)
            assert op["x-kubernetes-action"] == action
            gvk = op["x-kubernetes-group-version-kind"]
            assert gvk == {"group": info.group, "kind": info.kind, "version": info.version}


def test_a_namespaced_resource_has_all_namespaces_and_watch_paths(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    all_ns = paths["/apis/apps/v1/deployments"]["get"]
    assert all_ns["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    assert all_ns["responses"]["200"]["schema"] == {
        "$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentList"
    }
    watch = paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"]
    assert watch["x-kubernetes-action"] == "watch"
    assert watch["responses"]["200"]["schema"]["$ref"].endswith("meta.v1.WatchEvent")
    assert paths["/apis/apps/v1/watch/deployments"]["get"]["x-kubernetes-action"] == "watchlist"
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert item["get"]["operationId"] == "readAppsV1NamespacedDeployment"


def test_a_cluster_scoped_resource_has_no_namespace_in_its_paths(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    assert paths["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"
    assert "/api/v1/namespaces/{namespace}/namespaces" not in paths
    assert paths["/api/v1/nodes"]["post"]["operationId"] == "createCoreV1Node"


def test_patch_operations_accept_dry_run_field_validation_and_patch_types(
    v2: dict[str, Any],
) -> None:
    patch = v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    names = {p["name"]: p for p in patch["parameters"]}
    assert {"body", "dryRun", "fieldManager", "fieldValidation", "force"} <= set(names)
    assert names["body"]["in"] == "body" and names["dryRun"]["in"] == "query"
    assert names["body"]["schema"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    }
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "application/apply-patch+yaml" in patch["consumes"]


def test_subresources_have_paths_with_their_own_kinds(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    base = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    status = paths[f"{base}/status"]
    assert set(status) >= {"get", "put", "patch", "parameters"}
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    scale = paths[f"{base}/scale"]["get"]
    assert scale["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    assert (
        scale["responses"]["200"]["schema"]["$ref"]
        == "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    )
    log = paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert log["responses"]["200"]["schema"] == {"type": "string"}
    assert log["operationId"] == "readCoreV1NamespacedPodLog"
    eviction = paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"]["kind"] == "Eviction"
    assert "put" in paths["/api/v1/namespaces/{name}/finalize"]


def test_create_only_resources_have_only_a_post(v2: dict[str, Any]) -> None:
    review = v2["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    assert set(review) == {"parameters", "post"}
    assert "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}" not in v2["paths"]


def test_discovery_paths_are_described(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    for path in ("/api/", "/api/v1/", "/apis/", "/apis/apps/", "/apis/apps/v1/", "/version/"):
        assert "get" in paths[path], path


# --- custom resources -----------------------------------------------------------------


def test_a_custom_resource_definition_is_added_after_the_registry_changes() -> None:
    registry = Registry()
    api = OpenAPI(registry)
    before = orjson.loads(api.v2_json())
    etag = api.etag()
    assert "com.example.stable.v1.CronTab" not in before["definitions"]

    registry.set_custom("crontabs.stable.example.com", [crontab()])
    after = orjson.loads(api.v2_json())
    assert api.etag() != etag
    definition = after["definitions"]["com.example.stable.v1.CronTab"]
    assert definition["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert definition["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert definition["properties"]["apiVersion"]["type"] == "string"
    listing = after["definitions"]["com.example.stable.v1.CronTabList"]
    assert listing["properties"]["items"]["items"] == {
        "$ref": "#/definitions/com.example.stable.v1.CronTab"
    }
    item = after["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    assert item["get"]["operationId"] == "readStableExampleComV1NamespacedCronTab"
    assert (
        "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale" in after["paths"]
    )

    registry.remove_custom("crontabs.stable.example.com")
    assert "com.example.stable.v1.CronTab" not in orjson.loads(api.v2_json())["definitions"]
    assert api.etag() == etag


def test_a_custom_resource_schema_follows_kube_apiserver_v2_rules(
    crd_api: tuple[Registry, OpenAPI],
) -> None:
    _, api = crd_api
    spec = orjson.loads(api.v2_json())["definitions"]["com.example.stable.v1.CronTab"][
        "properties"
    ]["spec"]
    props = spec["properties"]
    assert props["note"] == {}  # nullable: type dropped so kubectl accepts null
    assert spec["required"] == ["cronSpec"]  # nullable fields are not required in v2
    assert props["extra"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["port"] == {"x-kubernetes-int-or-string": True}
    assert props["choice"] == {"type": "object"}  # oneOf is not v2
    assert props["replicas"] == {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}
    assert props["mode"]["enum"] == ["Fast", "Slow"]
    assert props["labels"]["additionalProperties"] == {"type": "string"}


def test_a_custom_resource_without_a_structural_schema_is_an_open_object_in_v2() -> None:
    registry = Registry()
    registry.set_custom("a", [crontab(schema=None)])
    registry.set_custom(
        "b",
        [
            ResourceInfo(
                group="other.example.com",
                version="v1",
                plural="things",
                kind="Thing",
                namespaced=False,
                custom=CustomInfo(
                    schema={"type": "object", "properties": {"a": {}}}, preserve_unknown=True
                ),
            )
        ],
    )
    defs = orjson.loads(OpenAPI(registry).v2_json())["definitions"]
    for name in ("com.example.stable.v1.CronTab", "com.example.other.v1.Thing"):
        assert set(defs[name]) == {"type", "x-kubernetes-group-version-kind"}, name


def test_custom_resources_do_not_advertise_strategic_merge_patch(
    crd_api: tuple[Registry, OpenAPI],
) -> None:
    _, api = crd_api
    paths = orjson.loads(api.v2_json())["paths"]
    patch = paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["consumes"]
    assert "application/merge-patch+json" in patch["consumes"]


# --- caching --------------------------------------------------------------------------


def test_documents_are_cached_until_the_registry_changes() -> None:
    registry = Registry()
    api = OpenAPI(registry)
    first = api.v2_json()
    assert api.v2_json() is first
    assert api.v2_protobuf() is api.v2_protobuf()
    assert api.v3_index() is api.v3_index()
    registry.set_custom("crontabs.stable.example.com", [crontab()])
    assert api.v2_json() is not first


def test_invalidate_forces_a_rebuild() -> None:
    api = OpenAPI(Registry())
    first = api.v2_json()
    api.invalidate()
    second = api.v2_json()
    assert second is not first
    assert second == first


def test_etag_is_the_unquoted_hash_of_the_v2_document(builtin_api: OpenAPI) -> None:
    expected = hashlib.sha512(builtin_api.v2_json()).hexdigest().upper()
    assert builtin_api.etag() == expected


# --- v3 -------------------------------------------------------------------------------


def test_the_v3_index_lists_every_group_version_with_the_hash_of_its_document(
    builtin_api: OpenAPI,
) -> None:
    index = orjson.loads(builtin_api.v3_index())["paths"]
    for group, version in {(r.group, r.version) for r in Registry().all()}:
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        url = index[key]["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash=")
        body = builtin_api.v3_group_version(url)
        assert body is not None
        assert url.endswith(hashlib.sha512(body).hexdigest().upper())
    assert {"api", "apis", "apis/apps", "version"} <= set(index)


def test_a_v3_group_version_document_holds_only_that_group_version(builtin_api: OpenAPI) -> None:
    body = builtin_api.v3_group_version("/openapi/v3/apis/apps/v1")
    assert body is not None
    doc = orjson.loads(body)
    assert doc["openapi"] == "3.0.0"
    assert all(p.startswith("/apis/apps/v1/") for p in doc["paths"])
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.apps.v1.Deployment" in schemas
    assert "io.k8s.api.batch.v1.Job" not in schemas
    assert "io.k8s.api.core.v1.PodSpec" in schemas  # reachable through the pod template
    refs = [n["$ref"] for n in walk(doc) if isinstance(n.get("$ref"), str)]
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"dryRun", "fieldValidation"} <= {
        p["name"] for p in patch["parameters"] if p["in"] == "query"
    }
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]


def test_v3_wraps_references_with_siblings_in_all_of(builtin_api: OpenAPI) -> None:
    body = builtin_api.v3_group_version("apis/apps/v1")
    assert body is not None
    spec = orjson.loads(body)["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    strategy = spec["properties"]["strategy"]
    assert strategy["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}
    ]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert spec["properties"]["replicas"]["type"] == "integer"


def test_v3_keeps_the_full_custom_resource_schema(crd_api: tuple[Registry, OpenAPI]) -> None:
    _, api = crd_api
    body = api.v3_group_version("/openapi/v3/apis/stable.example.com/v1?hash=whatever")
    assert body is not None
    schema = orjson.loads(body)["components"]["schemas"]["com.example.stable.v1.CronTab"]
    spec = schema["properties"]["spec"]
    assert spec["properties"]["note"] == {"type": "string", "nullable": True}
    assert "oneOf" in spec["properties"]["choice"]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]


def test_an_unknown_v3_path_is_none(builtin_api: OpenAPI) -> None:
    assert builtin_api.v3_group_version("/openapi/v3/apis/nope.example.com/v1") is None
    assert builtin_api.v3_group_version("apis/apps/v9") is None


# --- protobuf -------------------------------------------------------------------------


def test_wants_protobuf_follows_the_accept_header() -> None:
    assert wants_v2_protobuf(V2_PROTOBUF_MEDIA_TYPE)
    assert wants_v2_protobuf(f"{V2_PROTOBUF_MEDIA_TYPE}, application/json")
    assert not wants_v2_protobuf("application/json")
    assert not wants_v2_protobuf(None)
    assert not wants_v2_protobuf(f"application/json, {V2_PROTOBUF_MEDIA_TYPE}")
    api = OpenAPI(Registry())
    assert api.v2_for_accept(V2_PROTOBUF_MEDIA_TYPE)[1] == V2_PROTOBUF_CONTENT_TYPE
    assert api.v2_for_accept("*/*")[1] == "application/json"


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Protobuf wire format -> [(field number, wire type, raw value)]."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 1:
            value = struct.unpack("<d", data[pos : pos + 8])[0]
            pos += 8
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, wire, value))
    assert pos == len(data)
    return out


# An independent decoder for the gnostic messages the document uses: field number ->
# (JSON key, kind). "ext" marks vendor extensions; maps and one-ofs are handled in code.
SCHEMA = {
    1: ("$ref", "str"), 2: ("format", "str"), 3: ("title", "str"), 4: ("description", "str"),
    5: ("default", "any"), 6: ("multipleOf", "dbl"), 7: ("maximum", "dbl"),
    8: ("exclusiveMaximum", "bool"), 9: ("minimum", "dbl"), 10: ("exclusiveMinimum", "bool"),
    11: ("maxLength", "int"), 12: ("minLength", "int"), 13: ("pattern", "str"),
    14: ("maxItems", "int"), 15: ("minItems", "int"), 16: ("uniqueItems", "bool"),
    17: ("maxProperties", "int"), 18: ("minProperties", "int"), 19: ("required", "str*"),
    20: ("enum", "any*"), 21: ("additionalProperties", "addl"), 22: ("type", "type"),
    23: ("items", "items"), 24: ("allOf", "Schema*"), 25: ("properties", "props"),
    26: ("discriminator", "str"), 27: ("readOnly", "bool"), 30: ("example", "any"), 31: ("", "ext"),
}  # fmt: skip
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Document": {
        1: ("swagger", "str"), 2: ("info", "Info"), 5: ("schemes", "str*"), 8: ("paths", "paths"),
        9: ("definitions", "props"), 12: ("security", "SecurityRequirement*"),
        13: ("securityDefinitions", "secdefs"), 16: ("", "ext"),
    },
    "Info": {1: ("title", "str"), 2: ("version", "str"), 3: ("description", "str"), 7: ("", "ext")},
    "PathItem": {
        2: ("get", "Operation"), 3: ("put", "Operation"), 4: ("post", "Operation"),
        5: ("delete", "Operation"), 8: ("patch", "Operation"), 9: ("parameters", "Param*"),
        10: ("", "ext"),
    },
    "Operation": {
        1: ("tags", "str*"), 3: ("description", "str"), 5: ("operationId", "str"),
        6: ("produces", "str*"), 7: ("consumes", "str*"), 8: ("parameters", "Param*"),
        9: ("responses", "responses"), 10: ("schemes", "str*"), 13: ("", "ext"),
    },
    "Body": {1: ("description", "str"), 2: ("name", "str"), 3: ("in", "str"),
             4: ("required", "bool"), 5: ("schema", "Schema")},
    "Query": {1: ("required", "bool"), 2: ("in", "str"), 3: ("description", "str"),
              4: ("name", "str"), 6: ("type", "str"), 20: ("uniqueItems", "bool")},
    "Path": {1: ("required", "bool"), 2: ("in", "str"), 3: ("description", "str"),
             4: ("name", "str"), 5: ("type", "str"), 19: ("uniqueItems", "bool")},
    "Response": {1: ("description", "str"), 2: ("schema", "schemaitem")},
    "ApiKey": {1: ("type", "str"), 2: ("name", "str"), 3: ("in", "str"), 4: ("description", "str")},
    "Schema": SCHEMA,
}  # fmt: skip


def decode_any(data: bytes) -> Any:
    (number, _, raw), *rest = fields(data)
    assert number == 2 and not rest  # yaml; no google.protobuf.Any
    return yaml.safe_load(raw.decode())


def decode_named(data: bytes) -> tuple[str, bytes]:
    parsed = {n: v for n, _, v in fields(data)}
    return parsed[1].decode(), parsed.get(2, b"")


def decode(message: str, data: bytes) -> dict[str, Any]:
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, _, raw in fields(data):
        key, kind = table[number]
        if kind == "ext":
            name, value = decode_named(raw)
            out[name] = decode_any(value)
            continue
        if kind == "str":
            value = raw.decode()
        elif kind == "bool":
            value = bool(raw)
        elif kind in ("int", "dbl"):
            value = raw
        elif kind == "any":
            value = decode_any(raw)
        elif kind.endswith("*"):
            element = kind[:-1]
            item: Any
            if element == "str":
                item = raw.decode()
            elif element == "any":
                item = decode_any(raw)
            elif element == "Param":
                item = decode_parameters_item(raw)
            elif element == "SecurityRequirement":
                item = {}
                for _, _, entry in fields(raw):
                    name, array = decode_named(entry)
                    item[name] = [v.decode() for _, _, v in fields(array)]
            else:
                item = decode(element, raw)
            out.setdefault(key, []).append(item)
            continue
        elif kind == "type":
            values = [v.decode() for _, _, v in fields(raw)]
            assert len(values) == 1
            value = values[0]
        elif kind == "items":
            schemas = [decode("Schema", v) for _, _, v in fields(raw)]
            assert len(schemas) == 1
            value = schemas[0]
        elif kind == "addl":
            ((which, _, inner),) = fields(raw)
            value = decode("Schema", inner) if which == 1 else bool(inner)
        elif kind == "props":
            value = {}
            for _, _, entry in fields(raw):
                name, schema = decode_named(entry)
                value[name] = decode("Schema", schema)
        elif kind == "paths":
            value = {}
            for which, _, entry in fields(raw):
                assert which == 2
                name, item_bytes = decode_named(entry)
                value[name] = decode("PathItem", item_bytes)
        elif kind == "responses":
            value = {}
            for which, _, entry in fields(raw):
                assert which == 1
                code, response_value = decode_named(entry)
                ((oneof, _, response),) = fields(response_value)
                assert oneof == 1
                value[code] = decode("Response", response)
        elif kind == "schemaitem":
            ((oneof, _, schema),) = fields(raw)
            assert oneof == 1
            value = decode("Schema", schema)
        elif kind == "secdefs":
            value = {}
            for _, _, entry in fields(raw):
                name, item_bytes = decode_named(entry)
                ((oneof, _, security),) = fields(item_bytes)
                assert oneof == 2
                value[name] = decode("ApiKey", security)
        else:
            value = decode(kind, raw)
        assert key not in out, (message, key)
        out[key] = value
    return out


def decode_parameters_item(data: bytes) -> dict[str, Any]:
    ((oneof, _, parameter),) = fields(data)
    assert oneof == 1  # a Parameter, not a JsonReference
    ((which, _, inner),) = fields(parameter)
    if which == 1:
        return decode("Body", inner)
    ((sub, _, schema),) = fields(inner)
    return decode({3: "Query", 4: "Path"}[sub], schema)


def proto3(value: Json, inside_any: bool = False) -> Json:
    """A JSON value as it survives proto3: empty strings, false and 0 are absent."""
    if isinstance(value, dict):
        return {
            k: proto3(v, inside_any or k.startswith("x-") or k in ("default", "enum", "example"))
            for k, v in value.items()
            if inside_any or k.startswith("x-") or v not in ("", False, 0) or v is True
        }
    if isinstance(value, list):
        return [proto3(v, inside_any) for v in value]
    return value


def test_varints_and_lengths_follow_the_protobuf_wire_format() -> None:
    doc = {"swagger": "2.0", "info": {"title": "T" * 200, "version": "v1"}}
    data = encode_v2_protobuf(doc)
    assert data[:5] == b"\x0a\x032.0"  # field 1, length-delimited, "2.0"
    assert data[5] == 0x12  # field 2 (info)
    assert data[6:8] == bytes([0xCF, 0x01])  # 207 = 3 + 200 for the title, 4 for the version
    assert decode("Document", data) == doc


def test_the_protobuf_round_trips_to_the_json_document(crd_api: tuple[Registry, OpenAPI]) -> None:
    _, api = crd_api
    expected = proto3(orjson.loads(api.v2_json()))
    decoded = decode("Document", api.v2_protobuf())
    assert decoded.keys() == expected.keys()
    assert decoded["definitions"] == expected["definitions"]
    assert decoded["paths"] == expected["paths"]
    assert decoded == expected


def test_vendor_extensions_travel_as_yaml(crd_api: tuple[Registry, OpenAPI]) -> None:
    _, api = crd_api
    data = api.v2_protobuf()
    assert b"x-kubernetes-patch-strategy" in data
    assert b"- group: apps\n  kind: Deployment\n  version: v1\n" in data
    assert b"merge\n" in data


def test_builds_are_fast_enough_and_report_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    api = OpenAPI(Registry())
    timings = {}
    for name, build in (
        ("v2 json", api.v2_json),
        ("v2 protobuf", api.v2_protobuf),
        ("v3 index (all documents)", api.v3_index),
    ):
        start = time.perf_counter()
        body = build()
        timings[name] = (time.perf_counter() - start, len(body))
    for name, (seconds, size) in timings.items():
        print(f"{name}: {size / 1024:.0f} KiB in {seconds * 1000:.0f} ms")
        assert seconds < 10
