"""The ReplicaSet controller's pure logic (runtime/controllers/replicaset.py): which pods
a scale-down deletes first (Kubernetes' ActivePodsWithRanks), slow-start batches,
status calculation, and one sync against an in-memory client whose pod creations fail
part-way (slow start stops, ReplicaFailure is reported)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kubeclient.factory import InformerFactory
from kubeclient.rest import KubeError
from runtime.controllers.manager import ControllerContext
from runtime.controllers.replicaset import (
    ManageReplicasError,
    ReplicaSetController,
    ReplicationControllerController,
    calculate_status,
    deletion_order,
    pods_to_delete,
    related_pod_ranks,
    slow_start_batches,
)

NOW = 1_800_000_000.0


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pod(
    name: str,
    *,
    node: str = "n1",
    phase: str = "Running",
    ready: bool = True,
    ready_since: float = NOW - 3600,
    created: float = NOW - 7200,
    restarts: int = 0,
    cost: int | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "creationTimestamp": stamp(created),
        "labels": labels if labels is not None else {"app": "x"},
    }
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    conditions = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": stamp(ready_since),
        }
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "c", "restartCount": restarts}],
        },
    }


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_unassigned_pods_are_deleted_before_assigned_ones() -> None:
    order = deletion_order([pod("assigned"), pod("unassigned", node="")], now=NOW)
    assert names(order) == ["unassigned", "assigned"]


def test_pending_goes_before_unknown_before_running() -> None:
    pods = [pod("running"), pod("unknown", phase="Unknown"), pod("pending", phase="Pending")]
    assert names(deletion_order(pods, now=NOW)) == ["pending", "unknown", "running"]


def test_not_ready_pods_go_before_ready_ones() -> None:
    pods = [pod("ready"), pod("not-ready", ready=False)]
    assert names(deletion_order(pods, now=NOW)) == ["not-ready", "ready"]


def test_a_lower_pod_deletion_cost_goes_first() -> None:
    pods = [pod("expensive", cost=100), pod("default"), pod("cheap", cost=-5)]
    assert names(deletion_order(pods, now=NOW)) == ["cheap", "default", "expensive"]


def test_pods_doubled_up_on_a_node_go_before_lonely_ones() -> None:
    pods = [pod("alone", node="a"), pod("crowded", node="b")]
    related = [*pods, pod("sibling", node="b")]
    ranks = related_pod_ranks(pods, related)
    assert ranks == [1, 2]
    assert names(pods_to_delete(pods, related, 1, now=NOW)) == ["crowded"]


def test_pods_ready_for_less_time_go_first_by_logarithmic_buckets() -> None:
    recent = pod("recent", ready_since=NOW - 10)
    old = pod("old", ready_since=NOW - 100_000)
    assert names(deletion_order([old, recent], now=NOW)) == ["recent", "old"]
    # Different ready times in the same power-of-two bucket: the UID decides (as in
    # Kubernetes, restarts are only compared when ready times are equal).
    b = pod("b", ready_since=NOW - 1000, restarts=3)
    a = pod("a", ready_since=NOW - 1001, restarts=0)
    assert names(deletion_order([b, a], now=NOW)) == ["a", "b"]


def test_more_restarts_go_first() -> None:
    pods = [pod("stable", restarts=0), pod("crashy", restarts=5)]
    assert names(deletion_order(pods, now=NOW)) == ["crashy", "stable"]


def test_newer_pods_go_before_older_ones() -> None:
    pods = [pod("older", created=NOW - 100_000), pod("newer", created=NOW - 10)]
    assert names(deletion_order(pods, now=NOW)) == ["newer", "older"]


def test_the_full_ranking_in_one_scale_down() -> None:
    pods = [
        pod("running-ready-old", created=NOW - 100_000, ready_since=NOW - 90_000),
        pod("running-ready-new", created=NOW - 20, ready_since=NOW - 10),
        pod("running-not-ready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unassigned", node="", phase="Pending", ready=False),
    ]
    assert names(pods_to_delete(pods, pods, 3, now=NOW)) == [
        "unassigned",
        "pending",
        "running-not-ready",
    ]
    assert names(deletion_order(pods, now=NOW))[-2:] == ["running-ready-new", "running-ready-old"]
    # Deleting every pod needs no ranking: they go in the order they came.
    assert names(pods_to_delete(pods, pods, 5, now=NOW)) == names(pods)


def test_creations_go_in_slow_start_batches() -> None:
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(15) == [1, 2, 4, 8]
    assert slow_start_batches(0) == []


def rs(replicas: int = 3, min_ready: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "rs-uid",
            "generation": 2,
            "resourceVersion": "7",
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x", "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
        "status": {"replicas": 0, "observedGeneration": 1},
    }


def test_status_counts_fully_labeled_ready_and_available_pods() -> None:
    pods = [
        pod("a", labels={"app": "x", "tier": "web"}, ready_since=NOW - 100),
        pod("b", labels={"app": "x", "tier": "web"}, ready_since=NOW - 5),
        pod("c", labels={"app": "x"}, ready=False),
    ]
    status = calculate_status(rs(min_ready=30), pods, None, now=NOW)
    assert status["replicas"] == 3
    assert status["fullyLabeledReplicas"] == 2
    assert status["readyReplicas"] == 2
    assert status["availableReplicas"] == 1
    assert "conditions" not in status


def test_a_create_error_sets_and_a_clean_sync_clears_replica_failure() -> None:
    owner = rs(replicas=3)
    status = calculate_status(owner, [pod("a")], "pods is forbidden: exceeded quota", now=NOW)
    (cond,) = status["conditions"]
    assert cond["type"] == "ReplicaFailure" and cond["reason"] == "FailedCreate"
    assert cond["status"] == "True" and "exceeded quota" in cond["message"]
    owner["status"] = status
    assert "conditions" not in calculate_status(owner, [pod("a")], None, now=NOW)


class FakeClient:
    """Records writes; pod creations fail after ``allowed`` successes."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.created: list[dict[str, Any]] = []
        self.attempts = 0
        self.statuses: list[dict[str, Any]] = []

    async def create(self, api_version: str, plural: str, body: Any, namespace: Any) -> Any:
        self.attempts += 1
        if len(self.created) >= self.allowed:
            raise KubeError(403, "Forbidden", 'pods "web-" is forbidden: exceeded quota')
        made = {**body, "metadata": {**body["metadata"], "name": f"web-{self.attempts}"}}
        self.created.append(made)
        return made

    async def replace(
        self, api_version: str, plural: str, name: str, body: Any, *a: Any, **k: Any
    ) -> Any:
        self.statuses.append(body["status"])
        return body

    async def get(self, *a: Any, **k: Any) -> Any:
        raise KubeError(404, "NotFound", "")


def controller(cls: type[ReplicaSetController], fake: FakeClient) -> ReplicaSetController:
    ctx = ControllerContext(
        client=fake,  # type: ignore[arg-type]
        informers=InformerFactory(fake),  # type: ignore[arg-type]
        state_dir=Path("/nonexistent"),
    )
    return cls(ctx)


def test_a_failing_batch_stops_slow_start_and_is_reported_as_replica_failure() -> None:
    async def scenario() -> None:
        fake = FakeClient(allowed=4)
        c = controller(ReplicaSetController, fake)
        c.owners._apply("ADDED", rs(replicas=10))
        try:
            await c.sync("default/web")
        except ManageReplicasError as exc:
            assert exc.retryable and "exceeded quota" in str(exc)
        else:
            raise AssertionError("the sync should fail")
        # Batches 1, 2 and 4 were tried: 1+2 succeeded, the third batch of 4 had one
        # success and three failures, the last batch was never sent.
        assert fake.attempts == 7 and len(fake.created) == 4
        assert all(
            p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
            and p["metadata"]["generateName"] == "web-"
            and p["metadata"]["labels"] == {"app": "x", "tier": "web"}
            for p in fake.created
        )
        (status,) = fake.statuses
        assert status["observedGeneration"] == 2
        assert status["conditions"][0]["reason"] == "FailedCreate"
        # Four creations are still expected: no new creations until they are seen.
        assert not c.expectations.satisfied("default/web")

    asyncio.run(scenario())


def test_a_replication_controller_uses_its_equality_selector_and_core_owner_refs() -> None:
    async def scenario() -> None:
        fake = FakeClient(allowed=10)
        c = controller(ReplicationControllerController, fake)
        owner = rs(replicas=2)
        owner.update(apiVersion="v1", kind="ReplicationController")
        owner["spec"]["selector"] = {"app": "x"}
        c.owners._apply("ADDED", owner)
        await c.sync("default/web")
        assert len(fake.created) == 2
        ref = fake.created[0]["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"], ref["controller"]) == (
            "v1",
            "ReplicationController",
            True,
        )

    asyncio.run(scenario())
