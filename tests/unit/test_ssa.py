"""managedFields tracking and server-side apply (runtime.api.ssa), as kube-apiserver does them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemodel import fieldpath as fp
from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api import ssa

DATA = Path(__file__).resolve().parents[1] / "testdata" / "ssa"
SCHEMAS = schema.builtin()


def builtin_root(group: str, version: str, kind: str) -> dict[str, Any]:
    node = SCHEMAS.root(group, version, kind)
    assert node is not None
    return node


DEPLOYMENT = builtin_root("apps", "v1", "Deployment")
CONFIGMAP = builtin_root("", "v1", "ConfigMap")
POD = builtin_root("", "v1", "Pod")
WIDGET = SCHEMAS.custom_root(json.loads((DATA / "widget-crd-schema.json").read_text()))


def at(minute: int) -> str:
    return f"2024-05-01T10:{minute:02d}:00Z"


def load_json(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["metadata"].get("managedFields") or [])


def entry(obj: dict[str, Any], manager: str, operation: str | None = None) -> dict[str, Any]:
    found = [
        e
        for e in entries(obj)
        if e.get("manager") == manager and operation in (None, e["operation"])
    ]
    assert len(found) == 1, f"{manager}: {entries(obj)}"
    return found[0]


def owned(obj: dict[str, Any], manager: str, operation: str | None = None) -> set[str]:
    """The paths a manager owns, printed as Kubernetes prints them."""
    fields = fp.decode(entry(obj, manager, operation)["fieldsV1"])
    return {fp.path_string(p) for p in fp.iterate(fields)}


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.get("manager", ""), e["operation"]) for e in entries(obj)]


def deployment_config(replicas: int | None = 3, image: str = "nginx:1.14.2") -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load((DATA / "deployment-apply.yaml").read_text())
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = image
    if replicas is None:
        del cfg["spec"]["replicas"]
    else:
        cfg["spec"]["replicas"] = replicas
    return cfg


def apply_deployment(
    live: dict[str, Any] | None,
    cfg: dict[str, Any],
    manager: str = "kubectl",
    *,
    force: bool = False,
    minute: int = 1,
) -> dict[str, Any]:
    out = ssa.apply(
        SCHEMAS, DEPLOYMENT, live, cfg, manager, force=force, api_version="apps/v1", now=at(minute)
    )
    meta = out["metadata"]
    meta.setdefault("uid", "0b8a7a4e-1111-4222-8333-444455556666")  # as the registry would
    meta.setdefault("resourceVersion", str(minute))
    return out


def update(
    root: dict[str, Any],
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    api_version: str = "apps/v1",
    minute: int = 2,
    **kw: Any,
) -> dict[str, Any]:
    ssa.track_update(
        SCHEMAS, root, old, new, manager, api_version=api_version, now=at(minute), **kw
    )
    return new


def apply_configmap(
    live: dict[str, Any] | None, data: dict[str, str], manager: str, **kw: Any
) -> dict[str, Any]:
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data}
    kw.setdefault("force", False)
    out = ssa.apply(SCHEMAS, CONFIGMAP, live, cfg, manager, api_version="v1", now=at(1), **kw)
    out["metadata"].setdefault("uid", "u-1")
    return out


# --- FieldsV1 and Update -----------------------------------------------------------------------
def test_create_of_a_defaulted_deployment_is_recorded_exactly_as_kubectl_create_gets_it() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)

    (e,) = entries(dep)
    assert list(e) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert e["manager"] == "kubectl-create"
    assert e["operation"] == "Update"
    assert e["apiVersion"] == "apps/v1"
    assert e["time"] == at(0)
    assert e["fieldsType"] == "FieldsV1"
    expected = load_json("deployment-create-fieldsv1.json")
    # equal, and byte for byte in the same key order
    assert json.dumps(e["fieldsV1"]) == json.dumps(expected)


def test_stripped_metadata_is_never_tracked() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create")
    paths = owned(dep, "kubectl-create")
    for path in (
        ".apiVersion",
        ".kind",
        ".metadata",
        ".metadata.name",
        ".metadata.namespace",
        ".metadata.uid",
        ".metadata.resourceVersion",
        ".metadata.generation",
        ".metadata.creationTimestamp",
    ):
        assert path not in paths
    assert ssa.STRIPPED_FIELDS[-1] == ("metadata", "resourceVersion")


def test_an_update_moves_changed_fields_to_the_updating_manager() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    scaled = copy.deepcopy(dep)
    scaled["spec"]["replicas"] = 5
    scaled["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    update(DEPLOYMENT, dep, scaled, "hpa", minute=3)

    assert owned(scaled, "hpa") == {
        ".spec.replicas",
        ".spec.template.metadata.labels.tier",
    }
    creator = owned(scaled, "kubectl-create")
    assert ".spec.replicas" not in creator
    assert ".spec.template.metadata.labels.app" in creator
    assert entry(scaled, "hpa")["time"] == at(3)
    assert entry(scaled, "kubectl-create")["time"] == at(0)
    assert managers(scaled) == [("kubectl-create", "Update"), ("hpa", "Update")]


def test_fields_removed_by_an_update_leave_every_set_and_empty_entries_go() -> None:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap"}
    cm["metadata"] = {"name": "c", "uid": "u"}
    cm["data"] = {"a": "1"}
    update(CONFIGMAP, None, cm, "alice", api_version="v1")
    later = copy.deepcopy(cm)
    later["data"]["b"] = "2"
    update(CONFIGMAP, cm, later, "bob", api_version="v1", minute=3)
    assert owned(later, "alice") == {".data", ".data.a"}
    assert owned(later, "bob") == {".data.b"}

    emptied = copy.deepcopy(later)
    del emptied["data"]["a"]
    update(CONFIGMAP, later, emptied, "carol", api_version="v1", minute=4)
    # alice only owned data and data.a; data stays (carol did not remove it) but a is gone
    assert owned(emptied, "alice") == {".data"}
    assert [m for m, _ in managers(emptied)] == ["alice", "bob"]  # carol changed nothing it keeps

    gone = copy.deepcopy(emptied)
    del gone["data"]
    update(CONFIGMAP, emptied, gone, "dave", api_version="v1", minute=5)
    assert managers(gone) == []
    assert "managedFields" not in gone["metadata"]


def test_an_update_that_changes_nothing_keeps_the_entry_and_its_time() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    same = copy.deepcopy(dep)
    update(DEPLOYMENT, dep, same, "kubectl-create", minute=9)
    assert entries(same) == entries(dep)
    same2 = copy.deepcopy(dep)
    update(DEPLOYMENT, dep, same2, "someone-else", minute=9)
    assert managers(same2) == [("kubectl-create", "Update")]


def test_an_object_created_without_tracking_stays_untracked_on_update() -> None:
    old = load_json("deployment-defaulted.json")  # has a uid, no managedFields
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 2
    update(DEPLOYMENT, old, new, "kubectl-edit")
    assert "managedFields" not in new["metadata"]


def test_an_empty_managed_fields_list_or_one_empty_entry_resets_tracking() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    resets: list[list[dict[str, Any]]] = [[], [{}]]
    for reset in resets:
        new = copy.deepcopy(dep)
        new["metadata"]["managedFields"] = reset
        new["spec"]["paused"] = True
        update(DEPLOYMENT, dep, new, "kubectl-edit")
        assert "managedFields" not in new["metadata"]


def test_managed_fields_sent_with_an_update_replace_the_live_ones() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    new = copy.deepcopy(dep)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    update(DEPLOYMENT, dep, new, "kubectl-replace")
    assert managers(new) == [("renamed", "Update")]

    # a request without them keeps the live ones; an invalid list is ignored
    kept = copy.deepcopy(dep)
    del kept["metadata"]["managedFields"]
    update(DEPLOYMENT, dep, kept, "kubectl-replace")
    assert managers(kept) == [("kubectl-create", "Update")]
    bad = copy.deepcopy(dep)
    bad["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus"}]
    update(DEPLOYMENT, dep, bad, "kubectl-replace")
    assert managers(bad) == [("kubectl-create", "Update")]


def test_update_entries_are_keyed_by_api_version_and_apply_entries_are_not() -> None:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cm["data"] = {"a": "1"}
    update(CONFIGMAP, None, cm, "tool", api_version="v1", minute=0)
    cm["metadata"]["uid"] = "u"
    other = copy.deepcopy(cm)
    other["data"]["b"] = "2"
    update(CONFIGMAP, cm, other, "tool", api_version="v1beta1", minute=1)
    assert [(e["manager"], e["apiVersion"]) for e in entries(other)] == [
        ("tool", "v1"),
        ("tool", "v1beta1"),
    ]


def test_entries_are_sorted_apply_first_then_by_time_then_by_manager() -> None:
    cm = apply_configmap(None, {"a": "1"}, "zed")
    cm2 = copy.deepcopy(cm)
    cm2["data"]["b"] = "2"
    cm2["data"]["c"] = "3"
    update(CONFIGMAP, cm, cm2, "beta", api_version="v1", minute=5)
    cm3 = copy.deepcopy(cm2)
    cm3["data"]["c"] = "4"
    update(CONFIGMAP, cm2, cm3, "alpha", api_version="v1", minute=5)
    cm4 = copy.deepcopy(cm3)
    cm4["data"]["d"] = "5"
    update(CONFIGMAP, cm3, cm4, "aardvark", api_version="v1", minute=7)
    assert managers(cm4) == [
        ("zed", "Apply"),
        ("alpha", "Update"),
        ("beta", "Update"),
        ("aardvark", "Update"),
    ]


def test_more_than_ten_update_managers_are_merged_oldest_first_into_ancient_changes() -> None:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cm["data"] = {"seed": "x"}
    update(CONFIGMAP, None, cm, "m00", api_version="v1", minute=0)
    cm["metadata"]["uid"] = "u"
    for i in range(1, 13):
        new = copy.deepcopy(cm)
        new["data"][f"k{i}"] = "v"
        update(CONFIGMAP, cm, new, f"m{i:02d}", api_version="v1", minute=i)
        cm = new
    names = [m for m, _ in managers(cm)]
    assert len(names) == 10
    assert names[0] == "ancient-changes"
    assert names[1:] == [f"m{i:02d}" for i in range(4, 13)]
    assert entry(cm, "ancient-changes")["time"] == at(3)
    assert owned(cm, "ancient-changes") >= {".data.seed", ".data.k1", ".data.k2", ".data.k3"}


def test_main_resource_updates_do_not_track_status_and_status_updates_name_the_subresource() -> (
    None
):
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    with_status = copy.deepcopy(dep)
    with_status["status"] = {"replicas": 1}
    update(DEPLOYMENT, dep, with_status, "kubectl-edit", reset_fields=["status"])
    assert managers(with_status) == [("kubectl-create", "Update")]

    status = copy.deepcopy(dep)
    status["status"] = {
        "replicas": 1,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    status["spec"]["replicas"] = 7  # ignored on the status subresource
    update(
        DEPLOYMENT,
        dep,
        status,
        "kube-controller-manager",
        subresource="status",
        reset_fields=["spec", "metadata.labels"],
        minute=4,
    )
    e = entry(status, "kube-controller-manager")
    assert e["subresource"] == "status"
    assert list(e)[-1] == "subresource"
    # no "." on f:status: a Go object always has its status struct
    assert e["fieldsV1"] == {
        "f:status": {
            "f:conditions": {
                ".": {},
                'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}},
            },
            "f:replicas": {},
        }
    }
    assert ".spec.replicas" in owned(status, "kubectl-create")


def test_a_status_request_cannot_rewrite_managed_fields() -> None:
    dep = load_json("deployment-defaulted.json")
    update(DEPLOYMENT, None, dep, "kubectl-create", minute=0)
    status = copy.deepcopy(dep)
    status["metadata"]["managedFields"] = []
    status["status"] = {"replicas": 1}
    update(DEPLOYMENT, dep, status, "kcm", subresource="status", reset_fields=["spec"])
    assert managers(status) == [("kubectl-create", "Update"), ("kcm", "Update")]


# --- Apply ----------------------------------------------------------------------------------------
def test_apply_create_owns_exactly_the_applied_fields() -> None:
    cfg = deployment_config()
    before = copy.deepcopy(cfg)
    dep = apply_deployment(None, cfg)

    assert cfg == before
    (e,) = entries(dep)
    assert (e["manager"], e["operation"], e["apiVersion"], e["time"]) == (
        "kubectl",
        "Apply",
        "apps/v1",
        at(1),
    )
    # the port's key carries protocol's default although the configuration omits it
    assert json.dumps(e["fieldsV1"]) == json.dumps(load_json("deployment-apply-fieldsv1.json"))
    assert dep["spec"] == cfg["spec"]


def test_apply_merges_containers_by_name_and_keeps_fields_it_does_not_set() -> None:
    dep = apply_deployment(None, deployment_config())
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    cfg = deployment_config(image="nginx:1.25")
    cfg["spec"]["template"]["spec"]["containers"].insert(0, {"name": "sidecar", "image": "envoy"})
    out = apply_deployment(dep, cfg, minute=2)

    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "nginx"]
    nginx = containers[1]
    assert nginx["image"] == "nginx:1.25"
    assert nginx["imagePullPolicy"] == "IfNotPresent"
    assert nginx["ports"] == [{"containerPort": 80}]
    assert '.spec.template.spec.containers[name="sidecar"].image' in owned(out, "kubectl")


def test_apply_conflicts_with_an_update_manager_as_kube_apiserver_words_it() -> None:
    dep = apply_deployment(None, deployment_config())
    scaled = copy.deepcopy(dep)
    scaled["spec"]["replicas"] = 5
    update(DEPLOYMENT, dep, scaled, "kubectl-client-side-apply", minute=2)

    with pytest.raises(ApiError) as err:
        apply_deployment(scaled, deployment_config(replicas=3), minute=3)
    e = err.value
    assert (e.code, e.reason) == (409, "Conflict")
    assert e.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using apps/v1: .spec.replicas"
    )
    assert e.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }
    assert e.status()["code"] == 409


def test_conflicts_with_several_managers_are_listed_by_manager() -> None:
    cm = apply_configmap(None, {"a": "1", "b": "1"}, "alice")
    cm = apply_configmap(cm, {"b": "1", "c": "1"}, "bob")
    with pytest.raises(ApiError) as err:
        apply_configmap(cm, {"a": "2", "b": "2", "c": "2"}, "carol")
    assert err.value.message == (
        'Apply failed with 4 conflicts: conflicts with "alice":\n- .data.a\n- .data.b\n'
        'conflicts with "bob":\n- .data.b\n- .data.c'
    )
    assert [c["field"] for c in err.value.details["causes"]] == [
        ".data.a",
        ".data.b",
        ".data.b",
        ".data.c",
    ]
    assert err.value.details["causes"][0]["message"] == 'conflict with "alice"'


def test_applying_an_equal_value_shares_ownership_without_conflict() -> None:
    cm = apply_configmap(None, {"a": "1"}, "alice")
    cm = apply_configmap(cm, {"a": "1"}, "bob")
    assert owned(cm, "alice") == owned(cm, "bob") == {".data.a"}
    # now neither can change it alone
    with pytest.raises(ApiError):
        apply_configmap(cm, {"a": "2"}, "alice")


def test_force_takes_the_conflicting_fields_over() -> None:
    dep = apply_deployment(None, deployment_config())
    scaled = copy.deepcopy(dep)
    scaled["spec"]["replicas"] = 5
    update(DEPLOYMENT, dep, scaled, "hpa", minute=2)

    out = apply_deployment(scaled, deployment_config(replicas=2), force=True, minute=3)
    assert out["spec"]["replicas"] == 2
    assert ".spec.replicas" in owned(out, "kubectl")
    assert [m for m, _ in managers(out)] == ["kubectl"]  # hpa owned nothing else


def test_a_field_dropped_from_the_configuration_is_removed_when_nobody_else_owns_it() -> None:
    dep = apply_deployment(None, deployment_config())
    out = apply_deployment(dep, deployment_config(replicas=None), minute=2)
    assert "replicas" not in out["spec"]
    assert ".spec.replicas" not in owned(out, "kubectl")

    cfg = deployment_config()
    del cfg["spec"]["template"]["spec"]["containers"][0]["ports"]
    out = apply_deployment(dep, cfg, minute=3)
    assert "ports" not in out["spec"]["template"]["spec"]["containers"][0]
    assert out["metadata"]["uid"] == dep["metadata"]["uid"]  # registry metadata stays


def test_a_field_dropped_from_the_configuration_stays_when_another_manager_owns_it() -> None:
    cm = apply_configmap(None, {"a": "1", "b": "1"}, "alice")
    cm = apply_configmap(cm, {"a": "1"}, "bob")
    cm = apply_configmap(cm, {"b": "1"}, "alice")  # alice gives up a; bob still owns it
    assert cm["data"] == {"a": "1", "b": "1"}
    assert owned(cm, "alice") == {".data.b"}
    cm = apply_configmap(cm, {"c": "1"}, "bob")  # and now nobody owns a
    assert cm["data"] == {"b": "1", "c": "1"}

    # owned by an Update manager: kept too
    dep = apply_deployment(None, deployment_config())
    touched = copy.deepcopy(dep)
    touched["spec"]["replicas"] = 4
    update(DEPLOYMENT, dep, touched, "hpa", minute=2)
    out = apply_deployment(touched, deployment_config(replicas=None), minute=3)
    assert out["spec"]["replicas"] == 4


def test_sets_are_merged_by_element_and_elements_are_owned_one_by_one() -> None:
    def cm_with(finalizers: list[str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": finalizers},
        }

    def run(live: dict[str, Any] | None, cfg: dict[str, Any], who: str) -> dict[str, Any]:
        out = ssa.apply(
            SCHEMAS, CONFIGMAP, live, cfg, who, force=False, api_version="v1", now=at(1)
        )
        out["metadata"].setdefault("uid", "u")
        return out

    cm = run(None, cm_with(["a.io/x", "a.io/y"]), "alice")
    cm = run(cm, cm_with(["b.io/z"]), "bob")
    assert cm["metadata"]["finalizers"] == ["a.io/x", "a.io/y", "b.io/z"]
    assert owned(cm, "bob") == {'.metadata.finalizers[="b.io/z"]'}
    cm = run(cm, cm_with(["a.io/x"]), "alice")
    assert cm["metadata"]["finalizers"] == ["a.io/x", "b.io/z"]


def test_atomic_lists_and_maps_are_replaced_whole_and_owned_as_one_field() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "args": ["a", "b"]}],
            "nodeSelector": {"disk": "ssd", "zone": "a"},
        },
    }
    out = ssa.apply(SCHEMAS, POD, None, pod, "alice", force=False, api_version="v1", now=at(1))
    out["metadata"]["uid"] = "u"
    assert owned(out, "alice") >= {
        '.spec.containers[name="c"].args',
        ".spec.nodeSelector",
    }
    assert not any(p.startswith(".spec.nodeSelector.") for p in owned(out, "alice"))

    change = copy.deepcopy(pod)
    change["spec"]["containers"][0]["args"] = ["c"]
    change["spec"]["nodeSelector"] = {"disk": "hdd"}
    with pytest.raises(ApiError) as err:
        ssa.apply(SCHEMAS, POD, out, change, "bob", force=False, api_version="v1", now=at(2))
    assert [c["field"] for c in err.value.details["causes"]] == [
        ".spec.nodeSelector",
        '.spec.containers[name="c"].args',
    ]
    forced = ssa.apply(SCHEMAS, POD, out, change, "bob", force=True, api_version="v1", now=at(2))
    assert forced["spec"]["containers"][0]["args"] == ["c"]
    assert forced["spec"]["nodeSelector"] == {"disk": "hdd"}


def test_custom_resources_follow_their_crd_schema() -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "endpoints": [{"host": "a", "port": 80, "weight": 1}],
            "tags": ["x"],
            "command": ["run", "--fast"],
            "selector": {"app": "w"},
            "config": {"nested": {"deep": [1, 2]}, "flag": True},
        },
    }

    def run(live: dict[str, Any] | None, cfg: dict[str, Any], who: str) -> dict[str, Any]:
        out = ssa.apply(
            SCHEMAS, WIDGET, live, cfg, who, force=False, api_version="example.com/v1", now=at(1)
        )
        out["metadata"].setdefault("uid", "u")
        return out

    out = run(None, widget, "alice")
    assert owned(out, "alice") == {
        ".spec.replicas",
        '.spec.endpoints[host="a",port=80]',
        '.spec.endpoints[host="a",port=80].host',
        '.spec.endpoints[host="a",port=80].port',
        '.spec.endpoints[host="a",port=80].weight',
        '.spec.tags[="x"]',
        ".spec.command",
        ".spec.selector",
        # no schema below config: maps are granular, lists atomic
        ".spec.config.nested",
        ".spec.config.nested.deep",
        ".spec.config.flag",
    }
    other = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {
            "endpoints": [{"host": "b", "port": 80}],
            "tags": ["y"],
            "config": {"nested": {"more": "yes"}},
        },
    }
    out = run(out, other, "bob")
    assert out["spec"]["endpoints"] == [
        {"host": "a", "port": 80, "weight": 1},
        {"host": "b", "port": 80},
    ]
    assert out["spec"]["tags"] == ["x", "y"]
    assert out["spec"]["config"] == {"nested": {"deep": [1, 2], "more": "yes"}, "flag": True}
    assert owned(out, "bob") >= {".spec.config.nested", ".spec.config.nested.more"}

    with pytest.raises(ApiError) as err:
        run(out, {**other, "spec": {"command": ["other"]}}, "bob")
    assert err.value.message.endswith('conflict with "alice": .spec.command')


def test_creating_a_custom_resource_by_update_marks_its_objects_as_owned() -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"replicas": 1, "tags": ["x"]},
    }
    update(WIDGET, None, widget, "kubectl-create", api_version="example.com/v1")
    # an unstructured object has no zero-valued structs: spec itself is added
    assert entry(widget, "kubectl-create")["fieldsV1"] == {
        "f:spec": {".": {}, "f:replicas": {}, "f:tags": {".": {}, 'v:"x"': {}}}
    }


def test_a_list_with_a_merge_key_and_no_list_type_is_a_map_like_for_built_ins() -> None:
    root = SCHEMAS.custom_root(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-patch-merge-key": "name",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "names": {
                    "type": "array",
                    "x-kubernetes-patch-strategy": "merge",
                    "items": {"type": "string"},
                },
                "plain": {
                    "type": "array",
                    "x-kubernetes-patch-merge-key": "name",
                    "items": {"type": "object"},
                },
            },
        }
    )
    obj = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "k"},
        "items": [{"name": "a"}],
        "names": ["n"],
        "plain": [{"name": "p"}],
    }
    out = ssa.apply(SCHEMAS, root, None, obj, "m", force=False, api_version="x/v1", now=at(1))
    assert owned(out, "m") == {
        '.items[name="a"]',
        '.items[name="a"].name',
        '.names[="n"]',
        ".plain",  # a merge key without the merge strategy: atomic
    }


def test_an_object_without_managed_fields_gives_its_fields_to_before_first_apply() -> None:
    live = load_json("deployment-defaulted.json")  # created before tracking began
    with pytest.raises(ApiError) as err:
        apply_deployment(live, deployment_config(replicas=3, image="nginx"))
    assert err.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
        ".spec.replicas"
    )
    out = apply_deployment(live, deployment_config(replicas=1, image="nginx"))
    assert managers(out) == [("kubectl", "Apply"), ("before-first-apply", "Update")]
    assert ".spec.replicas" in owned(out, "before-first-apply")
    assert ".spec.replicas" in owned(out, "kubectl")


def _client_side_applied(replicas: int) -> dict[str, Any]:
    cfg = deployment_config(replicas=replicas)
    live = copy.deepcopy(cfg)
    live["metadata"]["annotations"] = {ssa.LAST_APPLIED_ANNOTATION: json.dumps(cfg) + "\n"}
    update(DEPLOYMENT, None, live, "kubectl-client-side-apply", minute=0)
    live["metadata"]["uid"] = "u"
    return live


def test_kubectl_may_take_over_what_its_client_side_apply_recorded() -> None:
    live = _client_side_applied(replicas=3)
    cfg = deployment_config(replicas=4)
    out = apply_deployment(live, cfg, "kubectl", minute=2)
    assert out["spec"]["replicas"] == 4
    assert ".spec.replicas" in owned(out, "kubectl")
    assert ".spec.replicas" not in owned(out, "kubectl-client-side-apply")
    annotation = out["metadata"]["annotations"][ssa.LAST_APPLIED_ANNOTATION]
    assert annotation.endswith("\n")
    assert json.loads(annotation) == cfg

    # any other manager still conflicts
    with pytest.raises(ApiError) as err:
        apply_deployment(live, cfg, "argocd", minute=2)
    assert '"kubectl-client-side-apply" using apps/v1: .spec.replicas' in err.value.message


def test_kubectl_still_conflicts_where_the_live_value_left_its_last_applied_one() -> None:
    live = _client_side_applied(replicas=3)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 6
    update(DEPLOYMENT, live, scaled, "kubectl-client-side-apply", minute=1)
    with pytest.raises(ApiError) as err:
        apply_deployment(scaled, deployment_config(replicas=4), "kubectl", minute=2)
    assert err.value.details["causes"][0]["field"] == ".spec.replicas"


def test_a_configuration_with_managed_fields_or_of_another_type_is_a_bad_request() -> None:
    cfg = deployment_config()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(ApiError) as err:
        apply_deployment(None, cfg)
    assert (err.value.code, err.value.message) == (400, "metadata.managedFields must be nil")

    cfg = deployment_config()
    cfg["apiVersion"] = "apps/v1beta2"
    with pytest.raises(ApiError) as err:
        apply_deployment(None, cfg)
    assert err.value.message == "invalid object type: apps/v1beta2, Kind=Deployment"
    cfg = deployment_config()
    cfg["kind"] = "StatefulSet"
    with pytest.raises(ApiError) as err:
        apply_deployment(None, cfg)
    assert err.value.code == 400


def test_duplicate_keys_and_missing_key_fields_fail_as_typed_patch_errors() -> None:
    cfg = deployment_config()
    container = cfg["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    with pytest.raises(ApiError) as err:
        apply_deployment(None, cfg)
    assert err.value.code == 500
    assert err.value.message == (
        "failed to create typed patch object (default/nginx-deployment; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers[name="nginx"].env: duplicate entries for key [name="A"]'
    )

    svc_root = builtin_root("", "v1", "Service")
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "finalizers": [None]},
        "spec": {"ports": [{"port": 80}]},
    }
    with pytest.raises(ApiError) as err:
        ssa.apply(SCHEMAS, svc_root, None, svc, "m", force=False, api_version="v1", now=at(1))
    assert err.value.message.endswith(
        ".metadata.finalizers: element 0: associative list without keys has an element "
        "that's an explicit null"
    )
    # the protocol key has a default, so the port itself is fine
    svc["metadata"].pop("finalizers")
    out = ssa.apply(SCHEMAS, svc_root, None, svc, "m", force=False, api_version="v1", now=at(1))
    assert '.spec.ports[port=80,protocol="TCP"].port' in owned(out, "m")

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"image": "x"}]},
    }
    with pytest.raises(ApiError) as err:
        ssa.apply(SCHEMAS, POD, None, pod, "m", force=False, api_version="v1", now=at(1))
    assert err.value.message.endswith(
        ".spec.containers: element 0: associative list with keys has an element that omits key "
        'field "name" (and doesn\'t have default value)'
    )


def test_apply_never_mutates_its_inputs_and_shares_nothing_with_its_result() -> None:
    live = apply_deployment(None, deployment_config())
    cfg = deployment_config(replicas=2)
    frozen_live, frozen_cfg = copy.deepcopy(live), copy.deepcopy(cfg)
    out = apply_deployment(live, cfg, minute=5)
    assert live == frozen_live
    assert cfg == frozen_cfg

    def containers_of(obj: Any) -> list[int]:
        found: list[int] = []
        if isinstance(obj, dict):
            found.append(id(obj))
            for v in obj.values():
                found.extend(containers_of(v))
        elif isinstance(obj, list):
            found.append(id(obj))
            for v in obj:
                found.extend(containers_of(v))
        return found

    assert not set(containers_of(out)) & (set(containers_of(live)) | set(containers_of(cfg)))


def test_reapplying_the_same_configuration_changes_nothing_not_even_times() -> None:
    dep = apply_deployment(None, deployment_config())
    again = apply_deployment(dep, deployment_config(), minute=30)
    assert again == dep
    assert entry(again, "kubectl")["time"] == at(1)


def test_a_second_applier_of_equal_values_gets_its_own_entry_with_a_time() -> None:
    cm = apply_configmap(None, {"a": "1"}, "alice")
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    cfg["data"] = {"a": "1"}
    out = ssa.apply(SCHEMAS, CONFIGMAP, cm, cfg, "bob", force=False, api_version="v1", now=at(9))
    assert entry(out, "bob")["time"] == at(9)
    assert entry(out, "alice")["time"] == at(1)


def test_apply_on_a_subresource_records_it_and_ignores_reset_fields() -> None:
    dep = apply_deployment(None, deployment_config())
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "namespace": "default"},
        "spec": {"replicas": 9},
        "status": {"replicas": 3},
    }
    out = ssa.apply(
        SCHEMAS,
        DEPLOYMENT,
        dep,
        cfg,
        "status-writer",
        force=False,
        api_version="apps/v1",
        now=at(3),
        subresource="status",
        reset_fields=["spec"],
    )
    e = entry(out, "status-writer")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_live_items_with_repeated_or_missing_keys_survive_a_merge() -> None:
    live: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "uid": "u"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "env": [
                        {"name": "A", "value": "1"},
                        {"value": "no name"},
                        {"name": "A", "value": "2"},
                        {"name": "B", "value": "3"},
                    ],
                }
            ]
        },
    }

    def env_after(env: list[dict[str, str]]) -> list[dict[str, str]]:
        cfg = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "env": env}]},
        }
        out = ssa.apply(SCHEMAS, POD, live, cfg, "m", force=True, api_version="v1", now=at(1))
        result: list[dict[str, str]] = out["spec"]["containers"][0]["env"]
        return result

    assert env_after([{"name": "C", "value": "x"}]) == [
        {"name": "A", "value": "1"},
        {"value": "no name"},
        {"name": "A", "value": "2"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "x"},
    ]
    # applying a repeated key replaces all its copies with the applied item
    assert env_after([{"name": "A", "value": "9"}]) == [
        {"name": "A", "value": "9"},
        {"value": "no name"},
        {"name": "B", "value": "3"},
    ]


def test_a_manager_without_a_name_is_recorded_as_unknown() -> None:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cm["data"] = {"a": "1"}
    update(CONFIGMAP, None, cm, "", api_version="v1")
    assert managers(cm) == [("unknown", "Update")]


def test_the_field_set_of_an_object_is_what_applying_it_would_own() -> None:
    cfg = deployment_config()
    fields = ssa.field_set(SCHEMAS, DEPLOYMENT, cfg)
    assert fp.has(fields, ("f:metadata", "f:name"))  # not stripped yet
    assert fp.encode(fp.difference(fields, fp.from_paths(ssa_stripped()))) == load_json(
        "deployment-apply-fieldsv1.json"
    )


def ssa_stripped() -> list[tuple[str, ...]]:
    return [tuple(fp.field(name) for name in path) for path in ssa.STRIPPED_FIELDS]
