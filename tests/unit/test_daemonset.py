"""Pure logic of the DaemonSet controller: node eligibility, daemon tolerations, the
node pin and the rolling-update plan."""

from __future__ import annotations

from typing import Any

from runtime.controllers.daemonset import daemon_tolerations, new_pod, plan, should_run


def _ds(max_unavailable: Any = 1, **pod_spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": 0},
            },
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "i"}], **pod_spec},
            },
        },
    }


def _node(name: str, labels: dict[str, str] | None = None, taints: Any = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def _pod(node: str, hash_: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{uid}", "uid": uid, "labels": {"controller-revision-hash": hash_}},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_node_selector_and_untolerated_taints_exclude_nodes() -> None:
    ds = _ds(nodeSelector={"pool": "a"})
    assert should_run(ds, _node("n", {"pool": "a"})) == (True, True)
    assert should_run(ds, _node("n", {"pool": "b"})) == (False, False)
    noschedule = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    assert should_run(_ds(), _node("n", taints=noschedule)) == (False, True)
    noexecute = [{"key": "k", "effect": "NoExecute"}]
    assert should_run(_ds(), _node("n", taints=noexecute)) == (False, False)
    tolerant = _ds(tolerations=[{"key": "k", "operator": "Exists"}])
    assert should_run(tolerant, _node("n", taints=noexecute)) == (True, True)
    cordoned = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    assert should_run(_ds(), _node("n", taints=cordoned)) == (True, True)


def test_the_standard_daemon_tolerations_are_added_once() -> None:
    tols = daemon_tolerations({"hostNetwork": True, "tolerations": [{"key": "x"}]})
    keys = [(t.get("key"), t.get("effect")) for t in tols]
    assert keys == [
        ("x", None),
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/network-unavailable", "NoSchedule"),
    ]
    assert daemon_tolerations({"tolerations": tols[1:7]}) == tols[1:7]


def test_a_daemon_pod_is_pinned_to_its_node_by_match_fields() -> None:
    pod = new_pod(_ds(), "node-1", "h1")
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}
        ]
    }
    assert pod["metadata"]["labels"] == {
        "app": "a",
        "controller-revision-hash": "h1",
        "pod-template-generation": "2",
    }
    assert "nodeName" not in pod["spec"]


def test_missing_nodes_get_pods_and_pods_of_departed_nodes_are_deleted() -> None:
    nodes = [_node("n0"), _node("n1")]
    result = plan(_ds(), nodes, [_pod("n0", "h", "a"), _pod("gone", "h", "b")], "h")
    assert result.create == ["n1"]
    assert [p["metadata"]["uid"] for p in result.delete] == ["b"]
    assert (result.desired, result.current, result.ready) == (2, 1, 1)


def test_a_rolling_update_deletes_at_most_max_unavailable_old_pods() -> None:
    nodes = [_node(f"n{i}") for i in range(4)]
    pods = [_pod(f"n{i}", "old", str(i)) for i in range(4)]
    assert len(plan(_ds(1), nodes, pods, "new").delete) == 1
    assert len(plan(_ds("50%"), nodes, pods, "new").delete) == 2
    # One node already without a pod uses up the budget.
    assert plan(_ds(1), nodes, pods[1:], "new").delete == []


def test_with_max_surge_a_new_pod_starts_beside_the_old_one_until_it_is_available() -> None:
    ds = _ds(0)
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = 1
    nodes = [_node("n0"), _node("n1")]
    old = [_pod("n0", "old", "a"), _pod("n1", "old", "b")]
    first = plan(ds, nodes, old, "new")
    assert (first.create, first.delete) == (["n0"], [])
    second = plan(ds, nodes, [*old, _pod("n0", "new", "c")], "new")
    assert [p["metadata"]["uid"] for p in second.delete] == ["a"]
    assert second.create == ["n1"]  # n0's new pod is available: the surge moves on
    starting = _pod("n0", "new", "c")
    starting["status"]["conditions"] = []
    third = plan(ds, nodes, [*old, starting], "new")
    assert (third.create, third.delete) == ([], [])
