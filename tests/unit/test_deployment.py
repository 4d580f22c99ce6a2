"""The Deployment controller's pure logic (runtime/controllers/deployment.py): the
pod-template-hash, maxSurge/maxUnavailable fenceposts, how far a new ReplicaSet may
grow, proportional scaling mid-rollout, template equality ignoring the hash, revision
annotations and the status conditions."""

from __future__ import annotations

import time
from typing import Any

from runtime.controllers.deployment import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    compute_hash,
    deployment_complete,
    deployment_timed_out,
    equal_ignore_hash,
    find_new_replica_set,
    fnv32a,
    max_revision,
    max_surge,
    max_unavailable,
    new_condition,
    new_rs_new_replicas,
    proportional_sizes,
    resolve_fenceposts,
    safe_encode,
    set_condition,
)
from runtime.controllers.deployment import calculate_status as deployment_status


def template(image: str = "img:v1", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web", **labels}},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def deployment(replicas: int = 10, surge: Any = "25%", unavailable: Any = "25%") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 3},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


def rs(
    name: str,
    replicas: int,
    *,
    created: str = "2026-01-01T00:00:00Z",
    available: int = 0,
    annotations: dict[str, str] | None = None,
    image: str = "img:v1",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": {"replicas": replicas, "template": template(image, **{"pod-template-hash": name})},
        "status": {"replicas": replicas, "availableReplicas": available},
    }


def test_fnv32a_matches_the_reference_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_the_hash_uses_kubernetes_safe_alphabet_and_changes_with_the_collision_count() -> None:
    # Decimal digits map by their byte value: hashes look like "7c5ddbdf54".
    assert safe_encode("0123456789") == "456789bcdf"
    h = compute_hash(template(), None)
    assert h and set(h) <= set("456789bcdf") and len(h) <= 10
    assert compute_hash(template(), None) == h
    assert compute_hash(template(), 1) != h
    assert compute_hash(template("img:v2"), None) != h
    # An empty struct and an absent one are the same template.
    with_empty = template()
    with_empty["spec"]["containers"][0]["resources"] = {}
    assert compute_hash(with_empty, None) == h


def test_surge_rounds_up_unavailable_rounds_down_and_both_zero_means_one_unavailable() -> None:
    assert resolve_fenceposts("25%", "25%", 4) == (1, 1)
    assert resolve_fenceposts("25%", "25%", 3) == (1, 0)
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts(0, 0, 5) == (0, 1)
    assert resolve_fenceposts("0%", "0%", 5) == (0, 1)
    assert resolve_fenceposts(2, "50%", 5) == (2, 2)
    assert max_surge(deployment(10)) == 3 and max_unavailable(deployment(10)) == 2
    assert max_unavailable(deployment(2, 0, 5)) == 2
    recreate = deployment(4)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert max_surge(recreate) == 0 and max_unavailable(recreate) == 0


def test_the_new_replica_set_grows_only_within_max_surge() -> None:
    d = deployment(10)  # surge 3 -> at most 13 pods
    old = rs("old", 10)
    new = rs("new", 0)
    assert new_rs_new_replicas(d, [old, new], new) == 3
    old["spec"]["replicas"] = 8
    new["spec"]["replicas"] = 3
    assert new_rs_new_replicas(d, [old, new], new) == 5
    old["spec"]["replicas"] = 0
    assert new_rs_new_replicas(d, [old, new], new) == 10
    recreate = deployment(4)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert new_rs_new_replicas(recreate, [new], new) == 4


def test_replicas_changed_mid_rollout_are_spread_proportionally() -> None:
    # 10 replicas with surge 3: 8 old + 5 new = 13 pods; scaling to 15 allows 18.
    annotations = {DESIRED_REPLICAS: "10", MAX_REPLICAS: "13"}
    old = rs("old", 8, created="2026-01-01T00:00:00Z", annotations=annotations)
    new = rs("new", 5, created="2026-01-02T00:00:00Z", annotations=annotations)
    d = deployment(15)  # surge 4 -> 19 allowed
    sizes = {r["metadata"]["name"]: size for r, size in proportional_sizes(d, [old, new])}
    # 8*19/13 = 11.7 -> 12, 5*19/13 = 7.3 -> 7: six more, as allowed.
    assert sizes == {"old": 12, "new": 7}
    # Scaling down to 5 (surge 2, 7 allowed): 8*7/13 = 4.3 -> 4, 5*7/13 = 2.7 -> 3.
    sizes = {
        r["metadata"]["name"]: size for r, size in proportional_sizes(deployment(5), [old, new])
    }
    assert sizes == {"old": 4, "new": 3}
    assert sum(sizes.values()) == 7


def test_templates_compare_equal_ignoring_the_hash_label_and_empty_values() -> None:
    a = template(**{"pod-template-hash": "abc"})
    b = template()
    b["spec"]["containers"][0]["resources"] = {}
    assert equal_ignore_hash(a, b)
    assert not equal_ignore_hash(a, template("img:v2"))
    d = deployment()
    older = rs("older", 0, created="2026-01-01T00:00:00Z")
    newer = rs("newer", 0, created="2026-01-03T00:00:00Z")
    other = rs("other", 0, image="img:v2")
    found = find_new_replica_set(d, [newer, other, older])
    assert found is not None and found["metadata"]["name"] == "older"


def test_the_revision_is_the_highest_of_the_replica_sets() -> None:
    rses = [
        rs("a", 0, annotations={"deployment.kubernetes.io/revision": "3"}),
        rs("b", 0, annotations={"deployment.kubernetes.io/revision": "12"}),
        rs("c", 0, annotations={"deployment.kubernetes.io/revision": "bogus"}),
    ]
    assert max_revision(rses) == 12 and max_revision([]) == 0


def test_a_condition_with_the_same_status_keeps_its_transition_time() -> None:
    status: dict[str, Any] = {}
    first = new_condition("Progressing", "True", "NewReplicaSetCreated", "created")
    first["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    set_condition(status, first)
    set_condition(status, new_condition("Progressing", "True", "ReplicaSetUpdated", "more"))
    (cond,) = status["conditions"]
    assert cond["reason"] == "ReplicaSetUpdated"
    assert cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    set_condition(status, new_condition("Progressing", "False", "ProgressDeadlineExceeded", "x"))
    assert status["conditions"][0]["lastTransitionTime"] != "2026-01-01T00:00:00Z"


def test_status_counts_and_availability_come_from_the_replica_sets() -> None:
    d = deployment(4, 1, 1)
    old = rs("old", 1, available=1)
    new = rs("new", 4, available=2)
    status = deployment_status([old, new], new, d)
    assert status["replicas"] == 5 and status["updatedReplicas"] == 4
    assert status["availableReplicas"] == 3 and status["unavailableReplicas"] == 2
    assert status["observedGeneration"] == 3
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert not deployment_complete(d, status)
    old["status"]["availableReplicas"] = 0
    status = deployment_status([old, new], new, d)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasUnavailable"
    done = deployment_status([rs("new", 4, available=4)], rs("new", 4, available=4), d)
    assert deployment_complete(d, done)


def test_a_rollout_times_out_after_its_progress_deadline() -> None:
    d = deployment(4)
    d["spec"]["progressDeadlineSeconds"] = 10
    cond = new_condition("Progressing", "True", "ReplicaSetUpdated", "x")
    cond["lastUpdateTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_000_000))
    status = {"conditions": [cond]}
    assert not deployment_timed_out(d, status, 1_000_005)
    assert deployment_timed_out(d, status, 1_000_011)
    cond["reason"] = "NewReplicaSetAvailable"
    assert not deployment_timed_out(d, status, 1_000_011)
    d["spec"]["progressDeadlineSeconds"] = 2**31 - 1
    cond["reason"] = "ReplicaSetUpdated"
    assert not deployment_timed_out(d, status, 2_000_000_000)
