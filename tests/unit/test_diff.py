"""gitops.diff: normalising, ignore rules, field diffs, manual additions and their removal.

The objects are shaped as a cluster returns them: a Deployment applied by ``gitops``
(server-side apply), scaled by ``kube-controller-manager``, then touched by people with
``kubectl label``, ``kubectl annotate``, ``kubectl edit`` and ``kubectl patch``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitops.changeset import SECRET_MASK, FieldChange, masked
from gitops.config import IgnoreDifference, parse_field_path
from gitops.diff import (
    DiffOptions,
    ManualField,
    field_diff,
    ignored_paths,
    manual_additions,
    normalise,
    removal_patch,
    respect_ignored,
)
from kubemodel.errors import ApiError
from kubemodel.patch import json_patch

IMAGE_GIT = "registry.example.com/shop/web:1.1"
IMAGE_EDITED = "registry.example.com/shop/web:1.2"
WEB = 'k:{"name":"web"}'
CONTAINERS = ("f:spec", "f:template", "f:spec", "f:containers")


def _managed(manager: str, operation: str, fields: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": "2024-05-01T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


def _nest(elements: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    out = leaf
    for pe in reversed(elements):
        out = {pe: out}
    return out


GITOPS_FIELDS: dict[str, Any] = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {
                    WEB: {
                        ".": {},
                        "f:name": {},
                        "f:ports": {
                            'k:{"containerPort":8080,"protocol":"TCP"}': {
                                ".": {},
                                "f:containerPort": {},
                            }
                        },
                        "f:env": {'k:{"name":"LOG_LEVEL"}': {".": {}, "f:name": {}, "f:value": {}}},
                    }
                }
            },
        },
    },
}


def _live() -> dict[str, Any]:
    """The Deployment in the cluster after people touched it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "0b7c2f4e-8a51-4c2e-9d55-1f0e6c9a7b21",
            "resourceVersion": "4711",
            "generation": 4,
            "creationTimestamp": "2024-05-01T09:00:00Z",
            "labels": {"app": "web", "team": "payments"},
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
                "note.example.com/owner": "alice",
            },
            "managedFields": [
                _managed("gitops", "Apply", copy.deepcopy(GITOPS_FIELDS)),
                _managed(
                    "kube-controller-manager",
                    "Update",
                    {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}},
                ),
                _managed(
                    "kube-controller-manager",
                    "Update",
                    {"f:status": {"f:replicas": {}, "f:readyReplicas": {}}},
                    subresource="status",
                ),
                _managed("kubectl-label", "Update", {"f:metadata": {"f:labels": {"f:team": {}}}}),
                _managed(
                    "kubectl-annotate",
                    "Update",
                    {"f:metadata": {"f:annotations": {"f:note.example.com/owner": {}}}},
                ),
                _managed(
                    "kubectl-client-side-apply",
                    "Update",
                    {
                        "f:metadata": {
                            "f:annotations": {
                                "f:kubectl.kubernetes.io/last-applied-configuration": {}
                            }
                        }
                    },
                ),
                _managed("kubectl-edit", "Update", _nest((*CONTAINERS, WEB), {"f:image": {}})),
                _managed(
                    "kubectl-patch",
                    "Update",
                    _nest(
                        (*CONTAINERS, WEB, "f:env"),
                        {'k:{"name":"DEBUG"}': {".": {}, "f:name": {}, "f:value": {}}},
                    ),
                ),
            ],
        },
        "spec": {
            "replicas": 5,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE_EDITED,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "DEBUG", "value": "1"},
                            ],
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
        "status": {"replicas": 5, "readyReplicas": 4, "observedGeneration": 4},
    }


def _desired() -> dict[str, Any]:
    """The Deployment as Git builds it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE_GIT,
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "LOG_LEVEL", "value": "info"}],
                        }
                    ]
                },
            },
        },
    }


def _dry(live: dict[str, Any]) -> dict[str, Any]:
    """What a server-side apply dry-run of :func:`_desired` (forced) returns: live with our
    values put back, other managers' fields kept, bookkeeping moved on."""
    dry = copy.deepcopy(live)
    dry["spec"]["replicas"] = 3
    dry["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE_GIT
    dry["metadata"]["generation"] = 5
    dry["metadata"]["managedFields"][0]["time"] = "2024-05-02T08:00:00Z"
    dry["status"] = {"replicas": 3, "observedGeneration": 4}
    return dry


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _rule(**fields: Any) -> IgnoreDifference:
    return IgnoreDifference.model_validate({"kind": "Deployment", **fields})


# --- normalise -----------------------------------------------------------------------------


def test_normalise_drops_status_server_bookkeeping_and_noise_annotations() -> None:
    live = _live()
    live["metadata"]["selfLink"] = "/apis/apps/v1/namespaces/shop/deployments/web"
    live["metadata"]["deletionTimestamp"] = "2024-05-03T00:00:00Z"
    live["metadata"]["deletionGracePeriodSeconds"] = 0
    out = normalise(live)
    assert "status" not in out
    assert out["metadata"] == {
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web", "team": "payments"},
        "annotations": {"note.example.com/owner": "alice"},
    }
    assert out["spec"] == live["spec"]


def test_normalise_drops_annotations_left_empty_and_never_mutates_its_input() -> None:
    live = _live()
    del live["metadata"]["annotations"]["note.example.com/owner"]
    before = copy.deepcopy(live)
    out = normalise(live)
    assert "annotations" not in out["metadata"]
    assert live == before
    out["spec"]["replicas"] = 99
    assert live["spec"]["replicas"] == 5


# --- field_diff ----------------------------------------------------------------------------


def test_field_diff_reports_hand_edits_of_our_fields_with_display_paths() -> None:
    live = _live()
    changes = field_diff(live, _dry(live), DiffOptions())
    assert changes == [
        FieldChange("spec.replicas", 5, 3),
        FieldChange("spec.template.spec.containers[name=web].image", IMAGE_EDITED, IMAGE_GIT),
    ]
    # the display path is one gitops.config.parse_field_path reads back
    assert parse_field_path(changes[1].path)[-2:] == ('k:{"name":"web"}', "f:image")


def test_field_diff_of_identical_objects_is_empty_whatever_the_bookkeeping() -> None:
    live = _live()
    dry = copy.deepcopy(live)
    dry["metadata"]["resourceVersion"] = "4712"
    dry["metadata"]["managedFields"] = []
    dry["status"] = {}
    assert field_diff(live, dry, DiffOptions()) == []


def test_keyed_list_items_match_by_key_regardless_of_order() -> None:
    live = _live()
    dry = copy.deepcopy(live)
    env = _container(dry)["env"]
    env.reverse()
    assert field_diff(live, dry, DiffOptions()) == []
    env.append({"name": "REGION", "value": "eu"})
    env[0]["value"] = "2"  # DEBUG
    assert field_diff(live, dry, DiffOptions()) == [
        FieldChange("spec.template.spec.containers[name=web].env[name=DEBUG].value", "1", "2"),
        FieldChange(
            "spec.template.spec.containers[name=web].env[name=REGION]",
            None,
            {"name": "REGION", "value": "eu"},
        ),
    ]


def test_a_removed_item_and_multi_key_items_are_shown_by_all_their_keys() -> None:
    live = _live()
    _container(live)["ports"].append({"containerPort": 9090, "protocol": "UDP", "name": "m"})
    dry = copy.deepcopy(live)
    del _container(dry)["ports"][1]
    _container(dry)["ports"][0]["hostPort"] = 80
    prefix = "spec.template.spec.containers[name=web].ports"
    assert field_diff(live, dry, DiffOptions()) == [
        FieldChange(f"{prefix}[containerPort=8080,protocol=TCP].hostPort", None, 80),
        FieldChange(
            f"{prefix}[containerPort=9090,protocol=UDP]",
            {"containerPort": 9090, "protocol": "UDP", "name": "m"},
            None,
        ),
    ]


def test_scalar_and_atomic_lists_are_compared_whole_and_order_matters() -> None:
    live = _live()
    _container(live)["args"] = ["--port=8080", "--verbose"]
    pod = live["spec"]["template"]["spec"]
    pod["tolerations"] = [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]
    dry = copy.deepcopy(live)
    _container(dry)["args"] = ["--verbose", "--port=8080"]
    dry["spec"]["template"]["spec"]["tolerations"].reverse()
    changes = field_diff(live, dry, DiffOptions())
    assert [c.path for c in changes] == [
        "spec.template.spec.containers[name=web].args",
        "spec.template.spec.tolerations",
    ]
    assert changes[0] == FieldChange(
        changes[0].path, ["--port=8080", "--verbose"], ["--verbose", "--port=8080"]
    )


def test_map_keys_with_dots_or_slashes_are_quoted_in_paths() -> None:
    live = _live()
    dry = copy.deepcopy(live)
    dry["metadata"]["labels"]["app.kubernetes.io/version"] = "1.1"
    (change,) = field_diff(live, dry, DiffOptions())
    assert change == FieldChange('metadata.labels["app.kubernetes.io/version"]', None, "1.1")
    assert parse_field_path(change.path) == (
        "f:metadata",
        "f:labels",
        "f:app.kubernetes.io/version",
    )


def _widget(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop"},
        "spec": {"items": items},
    }


def test_lists_of_custom_resources_are_keyed_by_unique_names_else_by_index() -> None:
    named = _widget([{"name": "a", "size": 1}, {"name": "b", "size": 2}])
    changed = _widget([{"name": "b", "size": 3}, {"name": "a", "size": 1}])
    assert field_diff(named, changed, DiffOptions()) == [
        FieldChange("spec.items[name=b].size", 2, 3)
    ]
    unnamed = _widget([{"size": 1}, {"size": 2}])
    grown = _widget([{"size": 1}, {"size": 5}, {"size": 6}])
    assert field_diff(unnamed, grown, DiffOptions()) == [
        FieldChange("spec.items[1].size", 2, 5),
        FieldChange("spec.items[2]", None, {"size": 6}),
    ]


def test_key_values_in_paths_read_back_as_the_same_values() -> None:
    live = _widget([{"name": "-1", "size": 1}, {"name": "a b", "size": 1}])
    dry = _widget([{"name": "-1", "size": 2}, {"name": "a b", "size": 2}])
    changes = field_diff(live, dry, DiffOptions())
    assert [c.path for c in changes] == [
        'spec.items[name="-1"].size',
        'spec.items[name="a b"].size',
    ]
    assert [parse_field_path(c.path)[2] for c in changes] == [
        'k:{"name":"-1"}',
        'k:{"name":"a b"}',
    ]


def _secret(data: dict[str, str], manager_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "db", "namespace": "shop", "resourceVersion": "77"}
    if manager_fields is not None:
        meta["managedFields"] = [
            _managed("gitops", "Apply", {"f:data": {"f:user": {}}}),
            _managed("kubectl-edit", "Update", manager_fields),
        ]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def test_secret_values_are_masked_in_the_diff_but_changes_still_show() -> None:
    live = _secret({"user": "YWRtaW4=", "password": "aHVudGVyMg=="})
    dry = _secret({"user": "YWRtaW4=", "password": "czNjcjN0", "token": "dG9rZW4="})
    changes = field_diff(live, dry, DiffOptions())
    assert changes == [
        FieldChange("data.password", masked("aHVudGVyMg=="), masked("czNjcjN0")),
        FieldChange("data.token", None, masked("dG9rZW4=")),
    ]
    text = repr(changes)
    assert "aHVudGVyMg==" not in text and "czNjcjN0" not in text and "dG9rZW4=" not in text
    assert all(str(c.after).startswith(SECRET_MASK) for c in changes)


def test_the_secret_flag_masks_data_of_any_kind() -> None:
    live = _widget([])
    live["data"] = {"key": "plain"}
    dry = copy.deepcopy(live)
    dry["data"]["key"] = "other"
    assert field_diff(live, dry, DiffOptions()) == [FieldChange("data.key", "plain", "other")]
    assert field_diff(live, dry, DiffOptions(), secret=True) == [
        FieldChange("data.key", masked("plain"), masked("other"))
    ]


# --- ignore rules ----------------------------------------------------------------------------


def test_json_pointers_hide_their_fields_from_the_diff() -> None:
    live = _live()
    options = DiffOptions(ignore=[_rule(group="apps", jsonPointers=["/spec/replicas"])])
    assert [c.path for c in field_diff(live, _dry(live), options)] == [
        "spec.template.spec.containers[name=web].image"
    ]


def test_json_pointers_name_list_items_by_index_and_unescape_tildes() -> None:
    live = _live()
    dry = _dry(live)
    dry["metadata"]["annotations"]["note.example.com/owner"] = "bob"
    pointers = [
        "/spec/template/spec/containers/0/image",
        "/metadata/annotations/note.example.com~1owner",
    ]
    options = DiffOptions(ignore=[_rule(jsonPointers=pointers)])
    assert ignored_paths(dry, options, live) == [
        ("spec", "template", "spec", "containers", 0, "image"),
        ("metadata", "annotations", "note.example.com/owner"),
    ]
    assert [c.path for c in field_diff(live, dry, options)] == ["spec.replicas"]


def test_pointers_and_paths_that_do_not_exist_are_ignored_silently() -> None:
    live = _live()
    options = DiffOptions(
        ignore=[
            _rule(
                jsonPointers=["/spec/paused", "/spec/template/spec/containers/7/image"],
                fieldPaths=["spec.template.spec.containers[name=nope].image", "spec.replicas.x"],
            )
        ],
        extra_ignore_pointers=["/spec/minReadySeconds"],
    )
    assert ignored_paths(live, options, live) == []
    assert len(field_diff(live, _dry(live), options)) == 2


def test_field_paths_locate_list_items_by_key_wherever_they_are() -> None:
    live = _live()
    sidecar = {"name": "proxy", "image": "envoy:1.0"}
    live["spec"]["template"]["spec"]["containers"].insert(0, sidecar)
    dry = _dry(live)
    containers = dry["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = "envoy:2.0"
    containers[1]["image"] = IMAGE_GIT
    options = DiffOptions(
        ignore=[_rule(fieldPaths=["spec.template.spec.containers[name=web].image"])]
    )
    assert ignored_paths(live, options, live) == [
        ("spec", "template", "spec", "containers", 1, "image")
    ]
    assert field_diff(live, dry, options) == [
        FieldChange("spec.replicas", 5, 3),
        FieldChange("spec.template.spec.containers[name=proxy].image", "envoy:1.0", "envoy:2.0"),
    ]


def test_managed_fields_managers_hide_what_those_managers_own() -> None:
    live = _live()
    live["metadata"]["managedFields"].append(
        _managed(
            "kube-controller-manager", "Update", {"f:spec": {"f:replicas": {}}}, subresource="scale"
        )
    )
    options = DiffOptions(ignore=[_rule(managedFieldsManagers=["kube-controller-manager"])])
    assert ("spec", "replicas") in ignored_paths(live, options, live)
    assert [c.path for c in field_diff(live, _dry(live), options)] == [
        "spec.template.spec.containers[name=web].image"
    ]


def test_extra_pointers_apply_to_every_object() -> None:
    live = _live()
    options = DiffOptions(extra_ignore_pointers=["/spec/replicas"])
    assert ignored_paths(live, options, None) == [("spec", "replicas")]
    assert [c.path for c in field_diff(live, _dry(live), options)] == [
        "spec.template.spec.containers[name=web].image"
    ]


@pytest.mark.parametrize(
    ("rule", "applies"),
    [
        ({"group": "apps", "name": "web", "namespace": "shop"}, True),
        ({}, True),  # group, name and namespace omitted: any
        ({"group": "apps", "name": "w*"}, True),  # glob patterns
        ({"group": ""}, False),  # the core group only
        ({"group": "apps", "name": "api"}, False),
        ({"namespace": "other"}, False),
        ({"kind": "StatefulSet"}, False),
    ],
)
def test_rules_apply_to_objects_matching_group_kind_name_and_namespace(
    rule: dict[str, Any], applies: bool
) -> None:
    live = _live()
    options = DiffOptions(ignore=[_rule(jsonPointers=["/spec/replicas"], **rule)])
    assert (ignored_paths(live, options, live) == [("spec", "replicas")]) is applies


# --- manual additions ------------------------------------------------------------------------


def test_fields_people_added_are_reported_top_most_with_manager_and_value() -> None:
    live = _live()
    found = manual_additions(live, _desired(), DiffOptions())
    assert found == [
        ManualField("metadata.labels.team", "/metadata/labels/team", "kubectl-label", "payments"),
        ManualField(
            'metadata.annotations["note.example.com/owner"]',
            "/metadata/annotations/note.example.com~1owner",
            "kubectl-annotate",
            "alice",
        ),
        ManualField(
            "spec.template.spec.containers[name=web].env[name=DEBUG]",
            "/spec/template/spec/containers/0/env/1",
            "kubectl-patch",
            {"name": "DEBUG", "value": "1"},
        ),
    ]
    # not reported: the edited image (Git sets it: a field diff), the controller's
    # revision annotation and status, kubectl's last-applied bookkeeping


def test_a_field_we_also_own_is_not_a_manual_addition() -> None:
    live = _live()
    entries = live["metadata"]["managedFields"]
    entries[0]["fieldsV1"]["f:metadata"]["f:labels"]["f:team"] = {}
    desired = _desired()
    assert "team" not in desired["metadata"]["labels"]
    paths = [f.path for f in manual_additions(live, desired, DiffOptions())]
    assert "metadata.labels.team" not in paths
    assert len(paths) == 2


def test_fields_of_controllers_and_unknown_managers_are_never_manual() -> None:
    live = _live()
    live["metadata"]["managedFields"].extend(
        [
            _managed("kube-controller-manager", "Update", {"f:spec": {"f:replicas": {}}}),
            _managed("k9s", "Update", {"f:metadata": {"f:labels": {"f:team": {}}}}),
            _managed("k9s", "Update", {"f:spec": {"f:paused": {}}}),
        ]
    )
    live["spec"]["paused"] = True
    desired = _desired()
    del desired["spec"]["replicas"]  # an HPA scales it
    default = manual_additions(live, desired, DiffOptions())
    assert [f.manager for f in default] == ["kubectl-label", "kubectl-annotate", "kubectl-patch"]
    extra = manual_additions(live, desired, DiffOptions(manual_managers=("kubectl", "k9s")))
    assert [(f.path, f.manager) for f in extra][-1] == ("spec.paused", "k9s")
    assert "spec.replicas" not in [f.path for f in extra]


def test_ignored_fields_are_not_manual_additions() -> None:
    live = _live()
    options = DiffOptions(
        ignore=[_rule(jsonPointers=["/metadata/labels/team"])],
        extra_ignore_pointers=["/spec/template/spec/containers/0/env"],
    )
    assert [f.manager for f in manual_additions(live, _desired(), options)] == ["kubectl-annotate"]


def test_a_manual_item_desired_sets_is_not_reported_but_its_manual_sub_fields_are() -> None:
    live = _live()
    # kubectl edit created a whole init container, and Git has an init container
    # "migrate" too, without the "args" someone added to it
    live["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "migrate", "image": "migrate:1", "args": ["--dry-run"]}
    ]
    init = ("f:spec", "f:template", "f:spec", "f:initContainers", 'k:{"name":"migrate"}')
    live["metadata"]["managedFields"].append(
        _managed(
            "kubectl-edit",
            "Update",
            _nest(init, {".": {}, "f:name": {}, "f:image": {}, "f:args": {}}),
        )
    )
    desired = _desired()
    desired["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "migrate", "image": "migrate:1"}
    ]
    found = manual_additions(live, desired, DiffOptions())
    assert found[-1] == ManualField(
        "spec.template.spec.initContainers[name=migrate].args",
        "/spec/template/spec/initContainers/0/args",
        "kubectl-edit",
        ["--dry-run"],
    )
    del desired["spec"]["template"]["spec"]["initContainers"]
    assert manual_additions(live, desired, DiffOptions())[-1].path == (
        "spec.template.spec.initContainers[name=migrate]"
    )


def test_manual_secret_values_are_masked() -> None:
    live = _secret({"user": "YWRtaW4=", "extra": "c2VjcmV0"}, {"f:data": {"f:extra": {}}})
    desired = _secret({"user": "YWRtaW4="})
    (found,) = manual_additions(live, desired, DiffOptions())
    assert (found.path, found.pointer, found.value) == (
        "data.extra",
        "/data/extra",
        masked("c2VjcmV0"),
    )


# --- removal_patch ---------------------------------------------------------------------------


def test_the_removal_patch_is_guarded_and_removes_higher_indexes_first() -> None:
    live = _live()
    env = _container(live)["env"]
    env.append({"name": "TRACE", "value": "yes"})
    live["metadata"]["managedFields"].append(
        _managed(
            "kubectl-set",
            "Update",
            _nest((*CONTAINERS, WEB, "f:env"), {'k:{"name":"TRACE"}': {".": {}, "f:name": {}}}),
        )
    )
    fields = manual_additions(live, _desired(), DiffOptions())
    patch = removal_patch(live, fields)
    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},
        {"op": "remove", "path": "/spec/template/spec/containers/0/env/2"},
        {"op": "remove", "path": "/spec/template/spec/containers/0/env/1"},
        {"op": "remove", "path": "/metadata/labels/team"},
        {"op": "remove", "path": "/metadata/annotations/note.example.com~1owner"},
    ]
    healed = json_patch(live, patch)
    assert _container(healed)["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert healed["metadata"]["labels"] == {"app": "web"}
    assert "note.example.com/owner" not in healed["metadata"]["annotations"]
    assert manual_additions(healed, _desired(), DiffOptions()) == []


def test_the_removal_patch_fails_when_the_object_changed_meanwhile() -> None:
    live = _live()
    patch = removal_patch(live, manual_additions(live, _desired(), DiffOptions()))
    newer = copy.deepcopy(live)
    newer["metadata"]["resourceVersion"] = "4800"
    with pytest.raises(ApiError):
        json_patch(newer, patch)


def test_the_removal_patch_skips_fields_below_removed_ones_and_refuses_bad_input() -> None:
    live = _live()
    item = ManualField("env[name=DEBUG]", "/spec/template/spec/containers/0/env/1", "k", None)
    inner = ManualField("env[name=DEBUG].value", item.pointer + "/value", "k", "1")
    assert removal_patch(live, [inner, item])[1:] == [{"op": "remove", "path": item.pointer}]
    with pytest.raises(ValueError, match="does not exist"):
        removal_patch(live, [ManualField("x", "/spec/nothing", "k", None)])
    del live["metadata"]["resourceVersion"]
    with pytest.raises(ValueError, match="resourceVersion"):
        removal_patch(live, [item])


# --- respect_ignored -------------------------------------------------------------------------


def test_respect_ignored_takes_live_values_for_ignored_fields_git_sets() -> None:
    live = _live()
    desired = _desired()
    options = DiffOptions(
        ignore=[_rule(fieldPaths=["spec.template.spec.containers[name=web].image"])],
        extra_ignore_pointers=["/spec/replicas"],
    )
    out = respect_ignored(desired, live, options)
    assert out["spec"]["replicas"] == 5
    assert _container(out)["image"] == IMAGE_EDITED
    assert desired == _desired()  # not mutated
    untouched = copy.deepcopy(out)
    untouched["spec"]["replicas"] = 3
    _container(untouched)["image"] = IMAGE_GIT
    assert untouched == desired  # nothing else changed


def test_respect_ignored_drops_ignored_fields_the_live_object_lacks() -> None:
    desired = _desired()
    desired["metadata"]["annotations"] = {"a.example.com/x": "1", "keep": "2"}
    options = DiffOptions(
        ignore=[_rule(jsonPointers=["/metadata/annotations/a.example.com~1x", "/spec/paused"])],
        extra_ignore_pointers=["/spec/replicas"],
    )
    for live in (_live(), None):
        out = respect_ignored(desired, live, options)
        assert out["metadata"]["annotations"] == {"keep": "2"}
        assert "paused" not in out["spec"]
    assert respect_ignored(desired, None, options)["spec"].get("replicas") is None
    assert respect_ignored(desired, _live(), options)["spec"]["replicas"] == 5


def test_respect_ignored_follows_fields_of_ignored_managers() -> None:
    live = _live()
    live["metadata"]["managedFields"].append(
        _managed("hpa-operator", "Update", {"f:spec": {"f:replicas": {}}})
    )
    options = DiffOptions(ignore=[_rule(managedFieldsManagers=["hpa-operator"])])
    out = respect_ignored(_desired(), live, options)
    assert out["spec"]["replicas"] == 5
    assert _container(out)["image"] == IMAGE_GIT
