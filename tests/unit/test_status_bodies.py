"""``Status`` objects and JSON bodies as kube-apiserver writes them (kubemodel.errors,
runtime.server.app): Go struct field order, empty fields left out, Go's HTML escaping,
the trailing newline and pretty printing."""

from __future__ import annotations

import orjson

from kubemodel import errors
from runtime.server.app import Request, _go_json, go_escaped


def request(query: dict[str, str] | None = None, user_agent: str = "kubectl/v1.35") -> Request:
    return Request(
        method="GET", path="/", query=query or {}, headers={}, accept="", user_agent=user_agent
    )


def test_a_failure_status_has_kube_apiservers_field_order() -> None:
    status = errors.already_exists("apps", "deployments", "web").status()
    assert list(status) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert list(status["details"]) == ["name", "group", "kind"]
    assert orjson.dumps(status) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"web\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"web","group":"apps","kind":"deployments"},"code":409}'
    )


def test_causes_keep_reason_message_field_order() -> None:
    status = errors.invalid_object("", "ConfigMap", "x", [errors.required("data")]).status()
    assert list(status["details"]) == ["name", "kind", "causes"]
    assert list(status["details"]["causes"][0]) == ["reason", "message", "field"]


def test_a_deleted_objects_success_status_names_the_resource_and_has_no_code() -> None:
    assert errors.deleted_status("cm", "", "configmaps", "u-1") == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "cm", "kind": "configmaps", "uid": "u-1"},
    }
    assert list(errors.deleted_status("d", "apps", "deployments", "u")["details"]) == [
        "name",
        "group",
        "kind",
        "uid",
    ]


def test_generic_responses_write_empty_details_and_internal_errors_a_cause() -> None:
    assert errors.no_such_path().status()["details"] == {}
    assert "details" not in errors.bad_request("nope").status()
    assert errors.internal("boom").status()["details"] == {"causes": [{"message": "boom"}]}


def test_html_characters_and_line_separators_are_escaped_as_go_does() -> None:
    body = orjson.dumps({"a": "<b>&\u2028\u2029"})
    assert go_escaped(body) == b'{"a":"\\u003cb\\u003e\\u0026\\u2028\\u2029"}'
    assert go_escaped(b'{"a":1}') == b'{"a":1}'


def test_json_bodies_end_with_a_newline_unless_pretty_printed() -> None:
    body = b'{"kind":"Status","metadata":{}}'
    assert _go_json(request(), body) == body + b"\n"
    pretty = _go_json(request({"pretty": "true"}), body)
    assert pretty == b'{\n  "kind": "Status",\n  "metadata": {}\n}'
    assert _go_json(request(user_agent="curl/8.5.0"), body) == pretty
    assert _go_json(request({"pretty": "false"}, user_agent="curl/8.5.0"), body) == body + b"\n"
