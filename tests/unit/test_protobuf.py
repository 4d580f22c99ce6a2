"""Kubernetes protobuf request bodies -> JSON objects (runtime.api.protobuf).

The main check decodes real bodies: kubectl 1.35 is pointed at a throwaway plain-HTTP
server that answers discovery and records what each typed command (``kubectl create
...``, ``autoscale``, ``certificate approve``, ``create token``, ``drain``) sends, and the
decoded object must equal what the same kubectl prints for the same command with
``--dry-run=client -o json``. No normalisation is needed: kubectl's JSON and the decoder
both follow Go's ``encoding/json`` (``creationTimestamp`` is ``omitzero`` in 1.35, so
neither side writes ``null`` for it). Commands without a dry-run (``create token``,
``certificate approve``, ``drain``) are compared with the object they must carry.
kubectl 1.35 sends ``delete``'s DeleteOptions, ``run``, ``scale`` and ``drain``'s
Eviction as JSON; their protobuf forms are covered by hand-built bodies.

The rest are unit tests of the wire primitives and the special types, built with the
tiny encoder below, and a consistency check of the whole table against the OpenAPI
definitions.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api import proto_schema, protobuf

# --------------------------------------------------------------------------- encoder


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vi(number: int, value: int) -> bytes:
    """A varint field."""
    return key(number, 0) + varint(value)


def ln(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field."""
    data = payload.encode() if isinstance(payload, str) else payload
    return key(number, 2) + varint(len(data)) + data


def entry(k: str, value: bytes) -> bytes:
    """A map entry whose value is already encoded as field 2."""
    return ln(1, k) + value


def envelope(api_version: str, kind: str, raw: bytes, **extra: str) -> bytes:
    type_meta = ln(1, api_version) + ln(2, kind)
    body = ln(1, type_meta) + ln(2, raw)
    if "encoding" in extra:
        body += ln(3, extra["encoding"])
    if "content_type" in extra:
        body += ln(4, extra["content_type"])
    return b"k8s\x00" + body


def meta(name: str, **more: bytes) -> bytes:
    return ln(1, ln(1, name) + b"".join(more.values()))


# --------------------------------------------------------------------------- wire primitives


def test_varint_boundaries() -> None:
    for value in (0, 1, 127, 128, 300, 2**31 - 1, 2**32, 2**63 - 1):
        decoded, pos = protobuf._varint(varint(value), 0, len(varint(value)))
        assert (decoded, pos) == (value, len(varint(value)))
    with pytest.raises(protobuf._Malformed):
        protobuf._varint(b"\x80\x80", 0, 2)  # truncated
    with pytest.raises(protobuf._Malformed):
        protobuf._varint(b"\xff" * 11, 0, 11)  # longer than 10 bytes


def test_negative_int32_and_int64_are_sign_extended() -> None:
    # PriorityClass.value (i32) and DeleteOptions.gracePeriodSeconds (*i64): negative
    # numbers travel as ten-byte two's complement varints.
    pc = protobuf.decode(envelope("scheduling.k8s.io/v1", "PriorityClass", meta("p") + vi(2, -5)))
    assert pc["value"] == -5
    opts = protobuf.decode(envelope("v1", "DeleteOptions", vi(1, -1)))
    assert opts == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": -1}


def test_omitempty_versus_pointers() -> None:
    spec = (
        vi(1, 0)  # replicas *int32 = 0: set, so kept
        + vi(5, 0)  # minReadySeconds int32 = 0: omitempty, dropped
        + vi(7, 0)  # paused bool = false: dropped
        + ln(4, b"")  # strategy struct: always present
    )
    obj = protobuf.decode(envelope("apps/v1", "Deployment", meta("d") + ln(2, spec)))
    assert obj["spec"]["replicas"] == 0
    assert "minReadySeconds" not in obj["spec"]
    assert "paused" not in obj["spec"]
    assert obj["spec"]["strategy"] == {}
    # Non-omitempty nil pointer and nil slice become null, as encoding/json writes them.
    assert obj["spec"]["selector"] is None
    assert obj["spec"]["template"]["spec"]["containers"] is None
    # A deployment with no status field still gets "status": {} (a Go struct value).
    assert obj["status"] == {}


def test_required_zero_scalars_are_kept() -> None:
    # ContainerPort.containerPort is not omitempty: zero stays in the JSON.
    container = ln(1, "c") + ln(6, vi(3, 0))
    pod = protobuf.decode(envelope("v1", "Pod", meta("p") + ln(2, ln(2, container))))
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 0}]


def test_unknown_fields_are_skipped() -> None:
    unknown = (
        vi(900, 7)  # varint
        + key(901, 1) + b"\x00" * 8  # fixed64
        + key(902, 5) + b"\x00" * 4  # fixed32
        + ln(903, b"\x01\x02\x03")  # length-delimited
        + key(904, 3) + vi(1, 1) + key(904, 4)  # a group
    )  # fmt: skip
    obj = protobuf.decode(envelope("v1", "ConfigMap", unknown + meta("c", extra=unknown)))
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


def test_fixed_width_and_unsigned_scalars() -> None:
    # No built-in kind has one today, but the wire format allows them.
    f64 = struct.pack("<d", 2.5)
    f32 = struct.pack("<f", -0.5)
    assert protobuf._read_scalar("f64", 1, f64, 0, 8) == (2.5, 8)
    assert protobuf._read_scalar("f32", 5, f32, 0, 4) == (-0.5, 4)
    assert protobuf._read_scalar("u32", 0, varint(2**32 + 7), 0, 5)[0] == 7
    assert protobuf._read_scalar("u64", 0, varint(2**64 - 1), 0, 10)[0] == 2**64 - 1
    with pytest.raises(protobuf._Malformed):
        protobuf._read_scalar("f64", 1, f64[:5], 0, 5)


def test_packed_and_unpacked_repeated_scalars() -> None:
    # PodSecurityContext.supplementalGroups ([]int64, field 4): Go writes it unpacked
    # (proto2); a packed encoding must be read as well.
    packed = ln(4, varint(1) + varint(2) + varint(3))
    unpacked = vi(4, 1) + vi(4, 2) + vi(4, 3)
    for ctx in (packed, unpacked):
        pod = protobuf.decode(envelope("v1", "Pod", meta("p") + ln(2, ln(14, ctx))))
        assert pod["spec"]["securityContext"]["supplementalGroups"] == [1, 2, 3]


def test_maps_bytes_and_string_data() -> None:
    secret = (
        meta("s", labels=ln(11, entry("b", ln(2, "2"))) + ln(11, entry("a", ln(2, "1"))))
        + ln(2, entry("k", ln(2, b"\x00\xffv")))
        + ln(2, entry("empty", b""))  # a value-less entry: Go's []byte{} -> ""
        + ln(4, entry("plain", ln(2, "text")))
        + ln(3, "Opaque")
    )
    obj = protobuf.decode(envelope("v1", "Secret", secret))
    assert list(obj["metadata"]["labels"]) == ["a", "b"]  # sorted, as Go writes maps
    assert obj["data"] == {"empty": "", "k": base64.b64encode(b"\x00\xffv").decode()}
    assert obj["stringData"] == {"plain": "text"}
    assert obj["type"] == "Opaque"


def test_named_slice_map_values() -> None:
    # TokenReview.status.user.extra is map<string, ExtraValue{repeated string items = 1}>.
    user = ln(1, "bob") + ln(4, entry("scopes", ln(2, ln(1, "a") + ln(1, "b"))))
    user += ln(4, entry("none", b""))
    status = vi(1, 1) + ln(2, user)
    obj = protobuf.decode(
        envelope("authentication.k8s.io/v1", "TokenReview", meta("t") + ln(3, status))
    )
    assert obj["status"]["user"] == {
        "username": "bob",
        "extra": {"none": None, "scopes": ["a", "b"]},
    }
    assert obj["status"]["authenticated"] is True


def test_int_or_string() -> None:
    port_int = ln(4, vi(1, 0) + vi(2, 8080))
    port_str = ln(4, vi(1, 1) + ln(3, "http"))
    ports = ln(1, ln(1, "a") + vi(3, 80) + port_int) + ln(1, ln(1, "b") + vi(3, 81) + port_str)
    ports += ln(1, ln(1, "c") + vi(3, 82))  # targetPort absent: Go's zero IntOrString is 0
    svc = protobuf.decode(envelope("v1", "Service", meta("s") + ln(2, ports)))
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [8080, "http", 0]
    with pytest.raises(ApiError) as err:
        protobuf.decode(envelope("v1", "Service", meta("s") + ln(2, ln(1, ln(4, vi(1, 7))))))
    assert err.value.code == 400


def test_quantities() -> None:
    hard = ln(1, entry("memory", ln(2, ln(1, "1Gi")))) + ln(1, entry("cpu", ln(2, ln(1, "500m"))))
    hard += ln(1, entry("pods", b""))  # an entry without value: the zero Quantity, "0"
    quota = protobuf.decode(envelope("v1", "ResourceQuota", meta("q") + ln(2, hard)))
    assert quota["spec"]["hard"] == {"cpu": "500m", "memory": "1Gi", "pods": "0"}
    # emptyDir.sizeLimit is a *Quantity: left out when unset, its string when set.
    for source, expected in (
        (ln(1, "Memory"), {"medium": "Memory"}),
        (ln(2, ln(1, "64Mi")), {"sizeLimit": "64Mi"}),
    ):
        volume = ln(1, "v") + ln(2, ln(2, source))
        pod = protobuf.decode(envelope("v1", "Pod", meta("p") + ln(2, ln(1, volume))))
        assert pod["spec"]["volumes"] == [{"name": "v", "emptyDir": expected}]


def test_times_and_microtimes() -> None:
    ts = ln(9, vi(1, 1_700_000_000) + vi(2, 123_456_789))  # deletionTimestamp
    obj = protobuf.decode(envelope("v1", "ConfigMap", meta("c", deletion=ts)))
    assert obj["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    # creationTimestamp is omitempty,omitzero: the zero time (an empty message) is left out.
    obj = protobuf.decode(envelope("v1", "ConfigMap", meta("c", created=ln(8, b""))))
    assert "creationTimestamp" not in obj["metadata"]
    # ...but a set pointer to the zero time is written as null, as Go does.
    obj = protobuf.decode(envelope("v1", "ConfigMap", meta("c", deletion=ln(9, b""))))
    assert obj["metadata"]["deletionTimestamp"] is None
    # Before 1970, and a non-pointer Time in a condition.
    cond = ln(4, vi(1, -86400))
    ns = protobuf.decode(envelope("v1", "Namespace", meta("n") + ln(3, ln(2, ln(1, "T") + cond))))
    assert ns["status"]["conditions"][0]["lastTransitionTime"] == "1969-12-31T00:00:00Z"
    # MicroTime (Lease.spec.renewTime) keeps six fraction digits.
    lease = ln(2, ln(4, vi(1, 1_700_000_000) + vi(2, 5_000)))
    obj = protobuf.decode(envelope("coordination.k8s.io/v1", "Lease", meta("l") + lease))
    assert obj["spec"]["renewTime"] == "2023-11-14T22:13:20.000005Z"


def test_durations() -> None:
    cases = {
        0: "0s",
        1: "1ns",
        1_500: "1.5µs",
        2_000_000: "2ms",
        1_000_000_000: "1s",
        90 * 10**9: "1m30s",
        3600 * 10**9: "1h0m0s",
        -(10**9 + 500_000_000): "-1.5s",
        (26 * 3600 + 3 * 60 + 4) * 10**9 + 5: "26h3m4.000000005s",
    }
    for nanos, text in cases.items():
        assert protobuf.go_duration(nanos) == text


def test_raw_extension_and_managed_fields() -> None:
    fields = ln(7, ln(1, b'{"f:data":{".":{}}}'))
    managed = ln(17, ln(1, "kubectl") + ln(2, "Update") + ln(6, "FieldsV1") + fields)
    obj = protobuf.decode(envelope("v1", "ConfigMap", meta("c", managed=managed)))
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}}},
        }
    ]
    revision = meta("r") + ln(2, ln(1, b'{"spec":{"replicas":3}}')) + vi(3, 2)
    obj = protobuf.decode(envelope("apps/v1", "ControllerRevision", revision))
    assert obj["data"] == {"spec": {"replicas": 3}}
    assert obj["revision"] == 2
    with pytest.raises(ApiError) as err:
        protobuf.decode(envelope("apps/v1", "ControllerRevision", meta("r") + ln(2, ln(1, b"{"))))
    assert err.value.code == 400


def test_inline_embedded_structs() -> None:
    # Volume inlines VolumeSource (field 2); Probe inlines ProbeHandler (field 1).
    volume = ln(1, "cfg") + ln(2, ln(19, ln(1, ln(1, "my-config"))))  # configMap
    probe = ln(1, ln(2, ln(1, "/healthz") + ln(2, vi(1, 0) + vi(2, 8080)))) + vi(4, 10)
    container = ln(1, "c") + ln(2, "nginx") + ln(10, probe)
    pod = protobuf.decode(
        envelope("v1", "Pod", meta("p") + ln(2, ln(1, volume) + ln(2, container)))
    )
    assert pod["spec"]["volumes"] == [{"name": "cfg", "configMap": {"name": "my-config"}}]
    assert pod["spec"]["containers"][0]["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8080},
        "periodSeconds": 10,
    }


def test_repeated_message_occurrences_merge() -> None:
    # Protobuf merges two occurrences of a singular message field.
    body = envelope("v1", "ConfigMap", ln(1, ln(1, "c")) + ln(1, ln(3, "ns")))
    assert protobuf.decode(body)["metadata"] == {"name": "c", "namespace": "ns"}


def test_errors() -> None:
    def code(body: bytes) -> tuple[int, str]:
        with pytest.raises(ApiError) as err:
            protobuf.decode(body)
        return err.value.code, err.value.message

    status, message = code(envelope("example.com/v1", "Widget", b""))
    assert status == 415 and "example.com/v1" in message and "Widget" in message
    assert code(envelope("v1", "ConfigMap", b"", encoding="gzip"))[0] == 415
    assert code(envelope("v1", "ConfigMap", b"", content_type="application/json"))[0] == 415
    assert code(b'{"kind": "ConfigMap"}')[0] == 400  # no magic prefix
    assert code(b"k8s\x00" + ln(2, b""))[0] == 400  # no apiVersion/kind
    assert code(b"k8s\x00\x0a\xff")[0] == 400  # truncated
    assert code(envelope("v1", "ConfigMap", meta("c")[:-1]))[0] == 400  # truncated inside
    assert code(envelope("v1", "ConfigMap", key(1, 0) + varint(5)))[0] == 400  # wrong wire type
    assert code(envelope("v1", "ConfigMap", key(5, 7)))[0] == 400  # invalid wire type
    assert code(envelope("v1", "ConfigMap", key(0, 0) + varint(1)))[0] == 400  # field 0
    # The explicit content type from the envelope is fine.
    body = envelope("v1", "ConfigMap", meta("c"), content_type=protobuf.CONTENT_TYPE)
    assert protobuf.decode(body)["metadata"] == {"name": "c"}


def test_delete_options_for_any_group_version() -> None:
    raw = vi(1, 0) + ln(4, "Foreground") + ln(5, "All")
    for api_version in ("v1", "apps/v1", "meta.k8s.io/v1", "example.com/v9"):
        obj = protobuf.decode(envelope(api_version, "DeleteOptions", raw))
        assert obj == {
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        }


def test_a_hand_built_deployment_decodes_to_its_json() -> None:
    container = ln(1, "nginx") + ln(2, "nginx:1.27") + ln(6, vi(3, 80)) + ln(8, b"")
    template = ln(1, ln(11, entry("app", ln(2, "web")))) + ln(2, ln(2, container))
    spec = vi(1, 3) + ln(2, ln(1, entry("app", ln(2, "web")))) + ln(3, template) + ln(4, b"")
    body = envelope("apps/v1", "Deployment", meta("web") + ln(2, spec) + ln(3, b""))
    out = protobuf.decode(body)
    assert out["apiVersion"] == "apps/v1" and out["kind"] == "Deployment"
    assert out["metadata"]["name"] == "web"
    assert out["spec"]["replicas"] == 3
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"


# --------------------------------------------------------------------------- the table


def _type_matches(expr: str, node: dict[str, Any]) -> bool:
    """Whether a table type expression agrees with an OpenAPI property node."""
    expr = expr.lstrip("*")
    types = node.get("type")
    kinds = set(types if isinstance(types, list) else [types] if types else [])
    ref = node.get("$ref") or next((n["$ref"] for n in node.get("allOf", ()) if "$ref" in n), None)
    if expr.startswith("{"):
        value = expr.split("}", 1)[1]
        extra = node.get("additionalProperties")
        return "object" in kinds and isinstance(extra, dict) and _type_matches(value, extra)
    if expr.startswith(("[]", "@[]")):
        return "array" in kinds and _type_matches(expr.split("]", 1)[1], node.get("items", {}))
    simple = {"bool": {"boolean"}, "i32": {"integer"}, "i64": {"integer"}, "str": {"string"}}
    if expr in simple:
        return bool(kinds & simple[expr]) and not ref
    if expr == "bytes":
        return "string" in kinds and node.get("format") == "byte"
    if expr == "Duration":
        return "string" in kinds
    if ref:
        target: str = ref.rsplit("/", 1)[1]
        special = {
            "Time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
            "MicroTime": "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
            "Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
            "IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            "RawExtension": "io.k8s.apimachinery.pkg.runtime.RawExtension",
            "FieldsV1": "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        }
        return target == special.get(expr) or target.endswith("." + expr)
    # RawExtension-like free-form objects are written inline in some definitions.
    return expr == "RawExtension" and "object" in kinds


def _definition(message: str) -> str:
    prefix = "io.k8s.apimachinery.pkg.apis." if message.startswith("meta.") else "io.k8s.api."
    return prefix + message


def _json_fields(message: str) -> dict[str, tuple[str, bool]]:
    """JSON name -> (type expression, omitempty) of a message, inlined structs flattened."""
    out: dict[str, tuple[str, bool]] = {}
    for spec in proto_schema.MESSAGES[message].split():
        _, rest = spec.split("=", 1)
        name, typ = rest.split(":", 1)
        bare = name.rstrip("?~")
        if not bare:
            out.update(_json_fields(typ.lstrip("*")))
        else:
            out[bare] = (typ, "?" in name)
    return out


def test_table_agrees_with_openapi_definitions() -> None:
    defs = schema.builtin().definitions
    inlined = {
        spec.split(":", 1)[1].lstrip("*")
        for fields in proto_schema.MESSAGES.values()
        for spec in fields.split()
        if spec.split("=", 1)[1].startswith((":", "?:"))
    }
    checked = required = required_kept = 0
    for message in proto_schema.MESSAGES:
        definition = defs.get(_definition(message))
        if definition is None:
            assert message in inlined, f"{message} has no OpenAPI definition"
            continue
        props = definition.get("properties", {})
        fields = _json_fields(message)
        extra = set(props) - set(fields) - {"apiVersion", "kind"}
        assert not extra, f"{message}: OpenAPI has {sorted(extra)} that the table lacks"
        for name, (typ, omitempty) in fields.items():
            assert name in props, f"{message}.{name} is not in OpenAPI"
            assert _type_matches(typ, props[name]), f"{message}.{name}: {typ} vs {props[name]}"
            checked += 1
            if name in definition.get("required", ()):
                required += 1
                required_kept += not omitempty
    assert checked > 2000
    # openapi-gen marks a field required when its JSON tag lacks omitempty; only a few
    # newer fields are "+required" and omitempty at once. A wrong omit flag would show.
    assert required > 500 and required_kept / required > 0.95


def test_every_kind_decodes_its_zero_value() -> None:
    # Walks every table entry reachable from a kind: each type name must resolve.
    known = {"bool", "i32", "i64", "u32", "u64", "f32", "f64", "str", "bytes"}
    known |= {
        "Time",
        "MicroTime",
        "Duration",
        "Quantity",
        "IntOrString",
        "RawExtension",
        "FieldsV1",
    }
    for message in proto_schema.MESSAGES:
        for field_ in protobuf._message(message).fields:
            assert field_.elem in known or field_.elem in proto_schema.MESSAGES, (message, field_)
    for key_ in proto_schema.KINDS:
        api_version, kind = key_.rsplit("/", 1)
        obj = protobuf.decode(envelope(api_version, kind, b""))
        assert (obj["apiVersion"], obj["kind"]) == (api_version, kind)
    assert len(proto_schema.KINDS) > 250


def test_kinds_cover_the_typed_clients_of_kubectl() -> None:
    for key_ in (
        "v1/Namespace", "v1/ConfigMap", "v1/Secret", "v1/Service", "v1/ServiceAccount",
        "v1/ResourceQuota", "v1/Pod", "v1/Node", "apps/v1/Deployment", "batch/v1/Job",
        "batch/v1/CronJob", "rbac.authorization.k8s.io/v1/Role",
        "rbac.authorization.k8s.io/v1/RoleBinding", "rbac.authorization.k8s.io/v1/ClusterRole",
        "rbac.authorization.k8s.io/v1/ClusterRoleBinding", "scheduling.k8s.io/v1/PriorityClass",
        "policy/v1/PodDisruptionBudget", "policy/v1/Eviction", "networking.k8s.io/v1/Ingress",
        "authentication.k8s.io/v1/TokenRequest", "autoscaling/v1/Scale",
        "autoscaling/v2/HorizontalPodAutoscaler", "coordination.k8s.io/v1/Lease",
        "discovery.k8s.io/v1/EndpointSlice", "storage.k8s.io/v1/StorageClass",
        "certificates.k8s.io/v1/CertificateSigningRequest", "v1/DeleteOptions",
    ):  # fmt: skip
        name = protobuf.message_for(*key_.rsplit("/", 1))
        assert name is not None and name in proto_schema.MESSAGES, key_


# --------------------------------------------------------------------------- real kubectl

_RESOURCES: dict[str, list[tuple[str, str, bool, str]]] = {
    # group/version -> (resource, kind, namespaced, subresource group/version)
    "v1": [
        ("namespaces", "Namespace", False, ""),
        ("configmaps", "ConfigMap", True, ""),
        ("secrets", "Secret", True, ""),
        ("services", "Service", True, ""),
        ("serviceaccounts", "ServiceAccount", True, ""),
        ("serviceaccounts/token", "TokenRequest", True, "authentication.k8s.io/v1"),
        ("resourcequotas", "ResourceQuota", True, ""),
        ("pods", "Pod", True, ""),
        ("pods/eviction", "Eviction", True, "policy/v1"),
        ("nodes", "Node", False, ""),
    ],
    "apps/v1": [
        ("deployments", "Deployment", True, ""),
        ("deployments/scale", "Scale", True, "autoscaling/v1"),
    ],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True, "")],
    "certificates.k8s.io/v1": [
        ("certificatesigningrequests", "CertificateSigningRequest", False, ""),
        ("certificatesigningrequests/approval", "CertificateSigningRequest", False, ""),
    ],
    "batch/v1": [("jobs", "Job", True, ""), ("cronjobs", "CronJob", True, "")],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True, ""),
        ("rolebindings", "RoleBinding", True, ""),
        ("clusterroles", "ClusterRole", False, ""),
        ("clusterrolebindings", "ClusterRoleBinding", False, ""),
    ],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False, "")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True, "")],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True, "")],
}


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: bytes


@dataclass
class FakeApi:
    """A plain-HTTP stand-in for an API server: discovery plus recorded writes."""

    kubectl: str
    home: Path
    port: int = 0
    writes: list[Recorded] = field(default_factory=list)
    evicted: set[str] = field(default_factory=set)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.home / "kubeconfig"),
        }
        return subprocess.run(
            [self.kubectl, *args], env=env, capture_output=True, text=True, timeout=60
        )


def _resource_list(group_version: str) -> dict[str, Any]:
    resources = []
    for name, kind, namespaced, sub_gv in _RESOURCES[group_version]:
        item: dict[str, Any] = {
            "name": name,
            "singularName": "" if "/" in name else kind.lower(),
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["create"]
            if "/" in name
            else ["create", "get", "list", "delete", "patch", "update"],
        }
        if sub_gv:
            item["group"], item["version"] = sub_gv.split("/")
        resources.append(item)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


# Objects some commands read before they write (autoscale, create job --from, certificate approve).
_EXISTING: dict[str, dict[str, Any]] = {
    "/apis/apps/v1/namespaces/default/deployments/d": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "uid": "u-d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    },
    "/apis/batch/v1/namespaces/default/cronjobs/cj": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj", "namespace": "default", "uid": "u-cj"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "n"}},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 600,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": 0,
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "busybox",
                                    "command": ["sh", "-c", "date"],
                                    "env": [
                                        {"name": "A", "value": ""},
                                        {
                                            "name": "B",
                                            "valueFrom": {
                                                "fieldRef": {"fieldPath": "metadata.name"}
                                            },
                                        },
                                    ],
                                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                                    "securityContext": {
                                        "runAsNonRoot": False,
                                        "runAsUser": 0,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                    "readinessProbe": {
                                        "httpGet": {"path": "/", "port": "http"},
                                        "periodSeconds": 3,
                                    },
                                    "volumeMounts": [
                                        {"name": "v", "mountPath": "/v", "readOnly": True}
                                    ],
                                }
                            ],
                            "volumes": [
                                {"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                                {
                                    "name": "s",
                                    "secret": {
                                        "secretName": "x",
                                        "defaultMode": 0,
                                        "optional": False,
                                    },
                                },
                            ],
                            "affinity": {
                                "nodeAffinity": {
                                    "requiredDuringSchedulingIgnoredDuringExecution": {
                                        "nodeSelectorTerms": [
                                            {
                                                "matchExpressions": [
                                                    {
                                                        "key": "k",
                                                        "operator": "In",
                                                        "values": ["a", "b"],
                                                    }
                                                ]
                                            }
                                        ]
                                    }
                                }
                            },
                            "tolerations": [
                                {"key": "t", "operator": "Exists", "tolerationSeconds": 5}
                            ],
                        }
                    },
                },
            },
        },
    },
    "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr": {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "csr", "uid": "u-csr", "resourceVersion": "7"},
        "spec": {
            "request": base64.b64encode(b"\x00\x01\x02 not really a CSR").decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 3600,
            "usages": ["client auth", "digital signature"],
            "username": "bob",
            "groups": ["system:authenticated"],
            "extra": {"scopes": ["a", "b"], "empty": []},
        },
        "status": {},
    },
}


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def reply(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def not_found(self) -> None:
            self.reply(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                },
            )

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/api":
                self.reply(
                    200,
                    {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
                )
            elif path == "/apis":
                groups = [
                    {
                        "name": gv.split("/")[0],
                        "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                        "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                    }
                    for gv in _RESOURCES
                    if "/" in gv
                ]
                self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            elif path.removeprefix("/api/").removeprefix("/apis/") in _RESOURCES:
                self.reply(200, _resource_list(path.removeprefix("/api/").removeprefix("/apis/")))
            elif path in _EXISTING:
                self.reply(200, _EXISTING[path])
            elif path == "/api/v1/nodes/n1":
                self.reply(200, node)
            elif path == "/api/v1/pods":
                self.reply(
                    200,
                    {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {},
                        "items": [] if api.evicted else [pod],
                    },
                )
            elif path == "/api/v1/namespaces/default/pods/p1" and not api.evicted:
                self.reply(200, pod)
            else:
                self.not_found()

        def do_PATCH(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.reply(200, node if "/nodes/" in self.path else pod)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type", "")
            api.writes.append(Recorded(self.command, self.path, content_type, body))
            if content_type.startswith("application/json"):
                obj = json.loads(body)
            else:
                try:
                    obj = protobuf.decode(body)
                except ApiError as exc:
                    self.reply(exc.code, exc.status())
                    return
            echo: dict[str, Any] = {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "metadata": {"name": obj.get("metadata", {}).get("name", "")},
            }
            if obj["kind"] == "TokenRequest":
                echo["status"] = {"token": "tok", "expirationTimestamp": "2030-01-01T00:00:00Z"}
            if obj["kind"] == "Eviction":
                api.evicted.add(obj["metadata"]["name"])
            self.reply(201, echo)

        do_PUT = do_POST

    return Handler


@pytest.fixture(scope="module")
def fake_api(kubectl_modern: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeApi]:
    home = tmp_path_factory.mktemp("kubectl-home")
    api = FakeApi(kubectl_modern, home)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.port = server.server_address[1]
    (home / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\n"
        f'clusters: [{{name: fake, cluster: {{server: "http://127.0.0.1:{api.port}"}}}}]\n'
        "users: [{name: fake, user: {}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]\n"
        "current-context: fake\n"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


CREATE_COMMANDS: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "x"],
    "configmap": ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="],
    "secret": ["create", "secret", "generic", "s", "--from-literal=k=v", "--type=Opaque"],
    "secret-tls-docker": [
        "create", "secret", "docker-registry", "reg", "--docker-server=r.example",
        "--docker-username=u", "--docker-password=p",
    ],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "deployment": ["create", "deployment", "d", "--image=nginx", "--replicas=2", "--port=80"],
    "deployment-zero": ["create", "deployment", "z", "--image=nginx", "--replicas=0"],
    "job": ["create", "job", "j", "--image=busybox", "--", "sleep", "1"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *", "--restart=OnFailure", "--", "date"],
    "service-nodeport": ["create", "service", "nodeport", "n", "--tcp=80:8080", "--node-port=30080"],
    "service-clusterip": ["create", "service", "clusterip", "ci", "--tcp=443:https", "--tcp=53:53"],
    "service-headless": ["create", "service", "clusterip", "h", "--clusterip=None"],
    "service-external": ["create", "service", "externalname", "e", "--external-name=example.com"],
    "role": ["create", "role", "r", "--verb=get", "--verb=list", "--resource=pods", "--resource=deployments.apps", "--resource-name=x"],
    "rolebinding": ["create", "rolebinding", "rb", "--role=r", "--user=alice", "--serviceaccount=default:sa", "--group=devs"],
    "clusterrole": ["create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/logs/*"],
    "clusterrole-aggregate": ["create", "clusterrole", "agg", "--aggregation-rule=rbac.example.com/aggregate=true"],
    "clusterrolebinding": ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--user=bob"],
    "quota": ["create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=10", "--scopes=BestEffort"],
    "priorityclass": ["create", "priorityclass", "pc", "--value=1000", "--description=high", "--preemption-policy=Never"],
    "priorityclass-default": ["create", "priorityclass", "pcd", "--value=0", "--global-default"],
    "pdb": ["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"],
    "pdb-int": ["create", "poddisruptionbudget", "pdb2", "--selector=app=web", "--max-unavailable=1"],
    "job-from-cronjob": ["create", "job", "jf", "--from=cronjob/cj"],
    "autoscale": ["autoscale", "deployment", "d", "--min=2", "--max=5", "--cpu=80%", "--memory=512Mi"],
    "configmap-binary": ["create", "configmap", "bin", "--from-file=FILES/blob.bin", "--from-file=FILES/text.txt"],
    "secret-file": ["create", "secret", "generic", "sf", "--from-file=FILES/blob.bin"],
    "secret-env-file": ["create", "secret", "generic", "se", "--from-env-file=FILES/vars.env"],
    "ingress": [
        "create", "ingress", "ing", "--class=nginx", "--rule=foo.com/bar*=svc:8080,tls=cert",
        "--rule=/path=other:http", "--default-backend=def:80", "--annotation=a=b",
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", list(CREATE_COMMANDS), ids=list(CREATE_COMMANDS))
def test_kubectl_create_bodies_decode_like_its_json(fake_api: FakeApi, command: str) -> None:
    files = fake_api.home / "files"
    files.mkdir(exist_ok=True)
    (files / "blob.bin").write_bytes(bytes(range(256)))
    (files / "text.txt").write_text("héllo\n")
    (files / "vars.env").write_text("A=1\nB=two words\n")
    args = [a.replace("FILES", str(files)) for a in CREATE_COMMANDS[command]]
    split = args.index("--") if "--" in args else len(args)
    dry = fake_api.run(*args[:split], "--dry-run=client", "-o", "json", *args[split:])
    assert dry.returncode == 0, dry.stderr
    expected = json.loads(dry.stdout)

    fake_api.writes.clear()
    result = fake_api.run(*args)
    assert result.returncode == 0, result.stderr
    posts = [w for w in fake_api.writes if w.method == "POST"]
    assert len(posts) == 1, posts
    assert posts[0].content_type == protobuf.CONTENT_TYPE
    assert posts[0].body.startswith(protobuf.MAGIC)
    assert protobuf.decode(posts[0].body) == expected


def test_kubectl_create_token(fake_api: FakeApi) -> None:
    fake_api.writes.clear()
    result = fake_api.run(
        "create", "token", "sa", "--audience=api", "--audience=vault", "--duration=10m"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tok"
    (post,) = fake_api.writes
    assert post.path.startswith("/api/v1/namespaces/default/serviceaccounts/sa/token")
    assert post.content_type == protobuf.CONTENT_TYPE
    assert protobuf.decode(post.body) == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {},
        "spec": {"audiences": ["api", "vault"], "expirationSeconds": 600, "boundObjectRef": None},
        "status": {"token": "", "expirationTimestamp": None},
    }


def _decoded(write: Recorded) -> dict[str, Any]:
    if write.content_type == protobuf.CONTENT_TYPE:
        return protobuf.decode(write.body)
    decoded: dict[str, Any] = json.loads(write.body)
    return decoded


def test_kubectl_drain_eviction(fake_api: FakeApi) -> None:
    # kubectl 1.35's drain posts its Eviction as JSON (its own client, not the protobuf
    # clientset); should a later kubectl switch, the protobuf body must decode the same.
    fake_api.writes.clear()
    fake_api.evicted.clear()
    result = fake_api.run("drain", "n1", "--force", "--grace-period=5", "--timeout=30s")
    assert result.returncode == 0, result.stderr
    (post,) = [w for w in fake_api.writes if w.method == "POST"]
    assert post.path == "/api/v1/namespaces/default/pods/p1/eviction"
    assert _decoded(post) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 5},
    }


def test_eviction_body() -> None:
    # The Eviction a protobuf clientset (client-go's EvictV1) sends.
    options = vi(1, 0) + ln(2, ln(1, "uid-1") + ln(2, "42")) + ln(4, "Background")
    raw = meta("p1", ns=ln(3, "default")) + ln(2, options)
    assert protobuf.decode(envelope("policy/v1", "Eviction", raw)) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p1", "namespace": "default"},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "uid-1", "resourceVersion": "42"},
            "propagationPolicy": "Background",
        },
    }


def test_kubectl_certificate_approve(fake_api: FakeApi) -> None:
    # A PUT of the whole CSR: bytes, ExtraValue map values, a fresh Time in a condition.
    fake_api.writes.clear()
    before = time.time()
    result = fake_api.run("certificate", "approve", "csr")
    assert result.returncode == 0, result.stderr
    (put,) = fake_api.writes
    assert put.method == "PUT" and put.path.endswith("/certificatesigningrequests/csr/approval")
    assert put.content_type == protobuf.CONTENT_TYPE
    decoded = protobuf.decode(put.body)
    (condition,) = decoded["status"].pop("conditions")
    expected = json.loads(
        json.dumps(_EXISTING["/apis/certificates.k8s.io/v1/certificatesigningrequests/csr"])
    )
    expected["spec"]["extra"]["empty"] = None  # an empty list travels as nothing: Go's nil
    assert decoded == expected
    stamp = condition.pop("lastUpdateTime")
    moment = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= moment <= time.time() + 2, stamp
    assert condition == {
        "type": "Approved",
        "status": "True",
        "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve.",
        "lastTransitionTime": None,  # a zero Time value, written as null (not omitzero)
    }
