"""Field paths and field sets (kubemodel.fieldpath), pinned to Kubernetes' FieldsV1 format."""

from __future__ import annotations

import pytest

from kubemodel import fieldpath as fp


def test_path_elements_are_spelled_as_in_fields_v1() -> None:
    assert fp.field("replicas") == "f:replicas"
    assert fp.index(3) == "i:3"
    assert fp.value("example.com/finalizer") == 'v:"example.com/finalizer"'
    assert fp.value(8080) == "v:8080"
    # keys sorted by name, compact JSON, ints as ints
    assert fp.key([("protocol", "TCP"), ("containerPort", 80)]) == (
        'k:{"containerPort":80,"protocol":"TCP"}'
    )


def test_json_inside_path_elements_escapes_like_go() -> None:
    assert fp.value("a<b>&c") == 'v:"a\\u003cb\\u003e\\u0026c"'
    assert fp.to_json(1.0) == "1"
    assert fp.to_json(0.5) == "0.5"
    assert fp.to_json(1e21) == "1e+21"
    assert fp.to_json(1.5e-7) == "1.5e-7"
    assert fp.to_json({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'


def test_fields_sort_before_keys_values_and_indexes() -> None:
    pes = ["i:2", 'v:"x"', 'k:{"name":"a"}', "f:zeta", "f:alpha", "."]
    assert sorted(pes, key=fp.sort_key) == [
        ".",
        "f:alpha",
        "f:zeta",
        'k:{"name":"a"}',
        'v:"x"',
        "i:2",
    ]


def test_numeric_keys_and_values_sort_numerically_before_strings() -> None:
    keys = ['k:{"port":10}', 'k:{"port":9}', 'k:{"port":"a"}']
    assert sorted(keys, key=fp.sort_key) == ['k:{"port":9}', 'k:{"port":10}', 'k:{"port":"a"}']
    assert sorted(["i:10", "i:9"], key=fp.sort_key) == ["i:9", "i:10"]


def test_encode_writes_the_dot_first_and_leaf_members_as_empty_objects() -> None:
    s = fp.from_paths(
        [
            ("f:metadata", "f:labels"),
            ("f:metadata", "f:labels", "f:app"),
            ("f:spec", "f:replicas"),
            ("f:spec", "f:containers", 'k:{"name":"b"}'),
            ("f:spec", "f:containers", 'k:{"name":"a"}'),
            ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image"),
        ]
    )
    encoded = fp.encode(s)
    assert encoded == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"a"}': {".": {}, "f:image": {}},
                'k:{"name":"b"}': {},
            },
            "f:replicas": {},
        },
    }
    assert list(encoded["f:spec"]) == ["f:containers", "f:replicas"]
    assert list(encoded["f:spec"]["f:containers"]) == ['k:{"name":"a"}', 'k:{"name":"b"}']
    assert list(encoded["f:metadata"]["f:labels"]) == [".", "f:app"]


def test_decode_reads_what_encode_writes() -> None:
    fields = {
        "f:metadata": {"f:finalizers": {".": {}, 'v:"a"': {}}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}},
    }
    s = fp.decode(fields)
    assert fp.has(s, ("f:metadata", "f:finalizers"))
    assert fp.has(s, ("f:metadata", "f:finalizers", 'v:"a"'))
    assert not fp.has(s, ("f:metadata",))
    assert fp.encode(s) == fields


def test_decode_canonicalises_keys_written_by_other_clients() -> None:
    s = fp.decode({"f:spec": {"f:ports": {'k:{"protocol": "TCP", "port": 80}': {}}}})
    assert fp.has(s, ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}'))


def test_decode_ignores_unknown_path_element_kinds_and_rejects_malformed_ones() -> None:
    assert fp.decode({"x:future": {}, "f:a": {}}) == {"f:a": {".": {}}}
    with pytest.raises(ValueError):
        fp.decode({"k:{not json": {}})
    with pytest.raises(ValueError):
        fp.decode({"f:a": "not an object"})
    with pytest.raises(ValueError):
        fp.decode(["not", "an", "object"])


def test_difference_removes_members_but_keeps_a_parent_whose_child_is_removed() -> None:
    a = fp.from_paths([("f:spec",), ("f:spec", "f:replicas"), ("f:spec", "f:paused")])
    b = fp.from_paths([("f:spec", "f:replicas")])
    assert fp.difference(a, b) == fp.from_paths([("f:spec",), ("f:spec", "f:paused")])
    # child - parent = child
    assert fp.difference(b, fp.from_paths([("f:spec",)])) == b


def test_recursive_difference_removes_the_whole_subtree_of_a_member() -> None:
    a = fp.from_paths([("f:spec", "f:replicas"), ("f:status", "f:ready"), ("f:status",)])
    assert fp.recursive_difference(a, fp.from_paths([("f:status",)])) == fp.from_paths(
        [("f:spec", "f:replicas")]
    )


def test_union_and_intersection_combine_membership_and_children() -> None:
    a = fp.from_paths([("f:a",), ("f:b", "f:c")])
    b = fp.from_paths([("f:b",), ("f:b", "f:c"), ("f:d",)])
    assert fp.union(a, b) == fp.from_paths([("f:a",), ("f:b",), ("f:b", "f:c"), ("f:d",)])
    assert fp.intersection(a, b) == fp.from_paths([("f:b", "f:c")])
    assert fp.intersection(a, fp.from_paths([("f:x",)])) == {}


def test_iterate_yields_a_nodes_members_before_what_is_below_its_children() -> None:
    s = fp.from_paths(
        [("f:spec", "f:template", "f:x"), ("f:spec", "f:replicas"), ("f:apiVersion",), ("f:spec",)]
    )
    assert list(fp.iterate(s)) == [
        ("f:apiVersion",),
        ("f:spec",),
        ("f:spec", "f:replicas"),
        ("f:spec", "f:template", "f:x"),
    ]


def test_paths_print_as_in_kubernetes_conflict_messages() -> None:
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")
    assert fp.path_string(path) == '.spec.template.spec.containers[name="nginx"].image'
    ports = ("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')
    assert fp.path_string(ports) == '.ports[containerPort=80,protocol="TCP"]'
    assert fp.path_string(("f:finalizers", 'v:"a"')) == '.finalizers[="a"]'
    assert fp.path_string(("f:args", "i:0")) == ".args[0]"


def test_timestamps_compare_by_seconds() -> None:
    assert fp.unix_seconds("1970-01-01T00:01:00Z") == 60
    assert fp.unix_seconds(None) == 0
    assert fp.unix_seconds("garbage") == 0
