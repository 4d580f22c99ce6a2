"""Pure logic of the garbage collector (dependency graph, attemptToDelete decisions,
discovery filtering) and of its neighbours from the same task: the namespace
controller's deletion conditions and the Endpoints/EndpointSlice pod and port rules."""

from __future__ import annotations

from typing import Any

from runtime.controllers.endpoints import desired_subsets, find_port, should_pod_be_in_endpoints
from runtime.controllers.endpointslice import desired_endpoints
from runtime.controllers.garbagecollector import (
    DANGLING,
    FOREGROUND,
    ORPHAN,
    SOLID,
    WAITING,
    ApiResource,
    Graph,
    RestMapper,
    collectable,
    decide,
)
from runtime.controllers.namespace import Progress, conditions


def obj(
    uid: str,
    *owners: str,
    ns: str = "default",
    block: bool = True,
    deleting: bool = False,
    finalizers: tuple[str, ...] = (),
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"n-{uid}",
        "namespace": ns,
        "uid": uid,
        "ownerReferences": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": f"n-{o}",
                "uid": o,
                "blockOwnerDeletion": block,
            }
            for o in owners
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


# --- graph --------------------------------------------------------------------------------
def test_an_owner_seen_only_through_a_reference_is_virtual_and_checked() -> None:
    g = Graph()
    to_delete, to_orphan = g.observe(obj("child", "parent"), "v1", "ConfigMap")
    assert to_delete == {"parent"} and not to_orphan
    assert g.nodes["parent"].virtual and g.nodes["parent"].dependents == {"child"}
    # Observing the owner itself makes it real; nothing to check any more.
    to_delete, _ = g.observe(obj("parent"), "v1", "ConfigMap")
    assert not g.nodes["parent"].virtual and to_delete == set()


def test_deleting_an_owner_enqueues_its_dependents() -> None:
    g = Graph()
    g.observe(obj("parent"), "v1", "ConfigMap")
    g.observe(obj("a", "parent"), "v1", "ConfigMap")
    g.observe(obj("b", "parent"), "v1", "ConfigMap")
    assert g.forget("parent") == {"a", "b"}
    assert "parent" not in g.nodes


def test_an_owner_deleted_in_foreground_enqueues_itself_and_its_dependents() -> None:
    g = Graph()
    g.observe(obj("parent"), "v1", "ConfigMap")
    g.observe(obj("a", "parent"), "v1", "ConfigMap")
    to_delete, _ = g.observe(
        obj("parent", deleting=True, finalizers=(FOREGROUND,)), "v1", "ConfigMap"
    )
    assert to_delete == {"parent", "a"}
    assert [n.uid for n in g.blocking_dependents("parent")] == ["a"]
    # The dependent going away wakes the waiting owner up.
    assert g.forget("a") == {"parent"}
    assert g.blocking_dependents("parent") == []


def test_non_blocking_references_do_not_hold_a_foreground_owner() -> None:
    g = Graph()
    g.observe(obj("parent", deleting=True, finalizers=(FOREGROUND,)), "v1", "ConfigMap")
    g.observe(obj("a", "parent", block=False), "v1", "ConfigMap")
    assert g.blocking_dependents("parent") == []


def test_an_owner_with_the_orphan_finalizer_is_enqueued_for_orphaning() -> None:
    g = Graph()
    g.observe(obj("parent"), "v1", "ConfigMap")
    _, to_orphan = g.observe(obj("parent", deleting=True, finalizers=(ORPHAN,)), "v1", "ConfigMap")
    assert to_orphan == {"parent"}


def test_dropping_a_reference_updates_the_owner_and_wakes_it_when_waiting() -> None:
    g = Graph()
    g.observe(obj("parent", deleting=True, finalizers=(FOREGROUND,)), "v1", "ConfigMap")
    g.observe(obj("a", "parent"), "v1", "ConfigMap")
    to_delete, _ = g.observe(obj("a"), "v1", "ConfigMap")
    assert to_delete == {"parent"} and g.nodes["parent"].dependents == set()


def test_a_namespaced_owner_in_another_namespace_sends_the_dependent_to_be_checked() -> None:
    g = Graph()
    g.observe(obj("parent", ns="a"), "v1", "ConfigMap")
    to_delete, _ = g.observe(obj("child", "parent", ns="b"), "v1", "ConfigMap")
    assert to_delete == {"child"}


def test_an_owner_observed_after_a_dependent_in_another_namespace_sends_it_to_be_checked() -> None:
    g = Graph()
    g.observe(obj("child", "parent", ns="b"), "v1", "ConfigMap")
    to_delete, _ = g.observe(obj("parent", ns="a"), "v1", "ConfigMap")
    assert to_delete == {"child"}


# --- decisions ------------------------------------------------------------------------------
def test_a_solid_owner_keeps_the_item_and_drops_references_to_absent_owners() -> None:
    assert (
        decide(
            {"a": SOLID}, has_dependents=False, dependent_deleting_dependents=False, finalizers=[]
        ).delete_policy
        is None
    )
    d = decide(
        {"a": SOLID, "b": DANGLING, "c": WAITING},
        has_dependents=False,
        dependent_deleting_dependents=False,
        finalizers=[],
    )
    assert d.remove_refs == ["b", "c"] and d.delete_policy is None


def test_an_item_without_solid_owners_is_deleted_with_the_policy_its_finalizers_ask() -> None:
    def policy(finalizers: list[str]) -> str | None:
        return decide(
            {"a": DANGLING},
            has_dependents=False,
            dependent_deleting_dependents=False,
            finalizers=finalizers,
        ).delete_policy

    assert policy([]) == "Background"
    assert policy([ORPHAN]) == "Orphan"
    assert policy([FOREGROUND]) == "Foreground"


def test_an_item_with_dependents_and_a_waiting_owner_is_deleted_in_foreground() -> None:
    d = decide(
        {"a": WAITING}, has_dependents=True, dependent_deleting_dependents=False, finalizers=[]
    )
    assert d.delete_policy == "Foreground" and not d.unblock
    d = decide(
        {"a": WAITING}, has_dependents=True, dependent_deleting_dependents=True, finalizers=[]
    )
    assert d.unblock
    d = decide(
        {"a": WAITING}, has_dependents=False, dependent_deleting_dependents=False, finalizers=[]
    )
    assert d.delete_policy == "Background"


# --- discovery ------------------------------------------------------------------------------
def res(
    group: str, version: str, plural: str, kind: str, verbs: str, preferred: bool = True
) -> ApiResource:
    return ApiResource(group, version, plural, kind, True, frozenset(verbs.split()), preferred)


def test_only_preferred_deletable_watchable_resources_are_collected_and_events_ignored() -> None:
    resources = [
        res("", "v1", "pods", "Pod", "list watch delete get"),
        res("", "v1", "events", "Event", "list watch delete"),
        res("events.k8s.io", "v1", "events", "Event", "list watch delete"),
        res("example.com", "v1", "widgets", "Widget", "list watch delete", preferred=False),
        res("example.com", "v2", "widgets", "Widget", "list watch delete"),
        res("", "v1", "bindings", "Binding", "create"),
    ]
    assert [(r.api_version, r.plural) for r in collectable(resources)] == [
        ("v1", "pods"),
        ("example.com/v2", "widgets"),
    ]
    mapper = RestMapper(resources)
    found = mapper.lookup("example.com/v1", "Widget")
    assert found is not None and found.version == "v1"
    fallback = mapper.lookup("example.com/v9", "Widget")
    assert fallback is not None and fallback.version == "v2"
    assert mapper.lookup("nowhere.io/v1", "Thing") is None


# --- namespace conditions -----------------------------------------------------------------------
def test_namespace_conditions_report_remaining_content_and_finalizers() -> None:
    progress = Progress(remaining={"configmaps": 2}, finalizers={"example.com/hold": 1})  # type: ignore[arg-type]
    conds = {c["type"]: c for c in conditions(progress, [], "T1")}
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: configmaps has 2 resource instances"
    )
    assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    assert conds["NamespaceDeletionDiscoveryFailure"] == {
        "type": "NamespaceDeletionDiscoveryFailure",
        "status": "False",
        "reason": "ResourcesDiscovered",
        "message": "All resources successfully discovered",
        "lastTransitionTime": "T1",
    }
    again = {c["type"]: c for c in conditions(Progress(), list(conds.values()), "T2")}
    assert again["NamespaceContentRemaining"]["status"] == "False"
    assert again["NamespaceContentRemaining"]["lastTransitionTime"] == "T2"
    assert again["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "T1"


# --- endpoints -------------------------------------------------------------------------------
def pod(name: str, ip: str, *, ready: bool, http: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"u-{name}",
            "labels": {"app": "x"},
        },
        "spec": {
            "nodeName": "node-0",
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": http}]}],
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


SERVICE = {
    "metadata": {"name": "x", "namespace": "default"},
    "spec": {
        "selector": {"app": "x"},
        "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
    },
}


def test_named_target_ports_resolve_per_pod_and_group_subsets_by_port_set() -> None:
    pods = [
        pod("a", "10.0.0.2", ready=True, http=8080),
        pod("b", "10.0.0.1", ready=True, http=8080),
        pod("c", "10.0.0.3", ready=False, http=9000),
    ]
    assert find_port(pods[2], SERVICE["spec"]["ports"][0]) == 9000  # type: ignore[index]
    subsets = desired_subsets(SERVICE, pods)
    by_port = {s["ports"][0]["port"]: s for s in subsets}
    assert [a["ip"] for a in by_port[8080]["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert "notReadyAddresses" not in by_port[8080]
    assert [a["targetRef"]["name"] for a in by_port[9000]["notReadyAddresses"]] == ["c"]


def test_finished_pods_and_pods_without_ip_stay_out_of_endpoints() -> None:
    done = pod("d", "10.0.0.4", ready=False, http=1, phase="Succeeded")
    assert not should_pod_be_in_endpoints(done, False)
    no_ip = pod("e", "", ready=True, http=1)
    assert not should_pod_be_in_endpoints(no_ip, False)
    terminating = pod("f", "10.0.0.5", ready=True, http=1)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not should_pod_be_in_endpoints(terminating, False)
    assert should_pod_be_in_endpoints(terminating, True)


def test_slice_endpoints_are_not_ready_while_terminating_but_may_still_be_serving() -> None:
    terminating = pod("f", "10.0.0.5", ready=True, http=8080)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    groups = desired_endpoints(SERVICE, [terminating], "IPv4", {"node-0": "zone-a"})
    [(ports, endpoints)] = groups.values()
    assert ports == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert endpoints["u-f"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert endpoints["u-f"]["zone"] == "zone-a"
    assert desired_endpoints(SERVICE, [terminating], "IPv6") == {}
