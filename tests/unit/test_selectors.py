"""Label and field selector parsing and matching, as Kubernetes defines them."""

from __future__ import annotations

import pytest

from kubemodel.errors import ApiError
from runtime.api.selectors import (
    allowed_fields,
    from_label_selector_object,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app in (web, db)", {"app": "db"}, True),
        ("app notin (web,db)", {"app": "db"}, False),
        ("app notin (web,db)", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("app=web,tier in (fe)", {"app": "web", "tier": "fe"}, True),
        ("app=web,tier in (fe)", {"app": "web", "tier": "be"}, False),
        ("n>3", {"n": "4"}, True),
        ("n<3", {"n": "4"}, False),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors_match_as_kubernetes_does(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


def test_a_malformed_label_selector_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("app=we b")
    assert err.value.code == 400


def test_label_selector_objects_convert_match_expressions() -> None:
    sel = from_label_selector_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
        }
    )
    assert sel is not None
    assert sel.matches({"app": "web", "tier": "fe"})
    assert not sel.matches({"app": "web", "tier": "db"})


def test_field_selectors_match_pod_fields_and_reject_unknown_fields() -> None:
    pod = {
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    fields = selectable_fields("core/pods", pod)
    allowed = allowed_fields("core/pods")
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Failed", allowed).matches(fields)
    assert not parse_field_selector("spec.nodeName==n2", allowed).matches(fields)
    assert parse_field_selector("spec.nodeName=", allowed).matches({"spec.nodeName": ""})
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.bogus=1", allowed)
    assert err.value.code == 400
    assert "field label not supported: spec.bogus" in err.value.message


def test_event_field_selectors_cover_the_involved_object() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "ns"},
        "type": "Warning",
    }
    fields = selectable_fields("core/events", event)
    sel = parse_field_selector(
        "involvedObject.name=web-1,involvedObject.kind=Pod,type=Warning",
        allowed_fields("core/events"),
    )
    assert sel.matches(fields)
