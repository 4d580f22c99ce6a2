"""The scheduler against a real API server process: fake Node objects (capacity,
allocatable, labels, taints, a Ready condition; no kubelet), pods created through the
API, and :class:`runtime.scheduler.Scheduler` running in the test's event loop.

``gitops cluster up`` may run its own ``default-scheduler``; the scheduler under test is
named ``test-scheduler`` and the test pods ask for it, so the two never compete.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError, load_kubeconfig
from runtime.scheduler import Scheduler, SchedulerOptions
from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration

NAME = "test-scheduler"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    # A long node grace period: the fake nodes have no kubelet renewing a Lease.
    proc = ClusterProcess(
        tmp_path_factory.mktemp("scheduler"), extra_args=("--node-grace-period", "3600")
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node",
                    "lastHeartbeatTime": now(),
                }
            ],
        },
    }


def pod(name: str, cpu: str = "100m", scheduler: str = NAME, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
            ],
            **spec,
        },
    }


class Env:
    def __init__(self, client: Client, namespace: str, scheduler: Scheduler, prefix: str) -> None:
        self.client = client
        self.ns = namespace
        self.scheduler = scheduler
        self.prefix = prefix
        self.nodes: list[str] = []

    def n(self, name: str) -> str:
        """A node name unique to this test."""
        return f"{self.prefix}-{name}"

    async def add_node(self, body: dict[str, Any]) -> None:
        await self.client.create("v1", "nodes", body)
        self.nodes.append(body["metadata"]["name"])

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create("v1", "pods", body, self.ns)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.client.get("v1", "pods", name, self.ns)

    async def wait(
        self, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            current = await self.get(name)
            if check(current):
                return current
            if asyncio.get_running_loop().time() > deadline:
                nodes = {n.name: (n.req_cpu, n.alloc_cpu) for n in self.scheduler.state.order}
                raise AssertionError(
                    f"pod {name} never matched; last seen: {current}; "
                    f"scheduler's nodes: {nodes}; queue: {self.scheduler.queue.pending()}"
                )
            await asyncio.sleep(0.05)

    async def bound(self, name: str) -> str:
        current = await self.wait(name, lambda p: bool(p["spec"].get("nodeName")))
        return str(current["spec"]["nodeName"])

    async def unschedulable(self, name: str) -> dict[str, Any]:
        current = await self.wait(name, lambda p: _scheduled_condition(p) is not None)
        cond = _scheduled_condition(current)
        assert cond is not None
        return cond

    async def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        items = (await self.client.list("v1", "events", self.ns))["items"]
        return [
            e
            for e in items
            if e["involvedObject"].get("name") == name and e.get("reason") == reason
        ]

    async def wait_event(self, name: str, reason: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.events(name, reason)
            if found:
                return found[0]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {reason} event for {name}")
            await asyncio.sleep(0.05)


def _scheduled_condition(p: dict[str, Any]) -> dict[str, Any] | None:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return dict(c)
    return None


@contextlib.asynccontextmanager
async def scheduling(
    api: ClusterProcess, options: SchedulerOptions | None = None
) -> AsyncIterator[Env]:
    """A namespace, a running scheduler and cleanup of the test's nodes."""
    prefix = uuid.uuid4().hex[:6]
    async with Client(load_kubeconfig(api.kubeconfig), connections=48) as client:
        ns = f"sched-{prefix}"
        await client.create(
            "v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
        scheduler = Scheduler(client, options or SchedulerOptions(scheduler_name=NAME, seed=7))
        env = Env(client, ns, scheduler, prefix)
        task = asyncio.create_task(scheduler.run())
        try:
            await asyncio.wait_for(scheduler.ready.wait(), 30)
            yield env
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Pending pods left behind would be scheduled by the next test's scheduler.
            with contextlib.suppress(KubeError):
                await client.request(
                    "DELETE",
                    f"/api/v1/namespaces/{ns}/pods",
                    params={"gracePeriodSeconds": "0"},
                )
            for name in env.nodes:
                with contextlib.suppress(KubeError):
                    await client.delete("v1", "nodes", name)


async def _nodes_seen(env: Env, count: int) -> None:
    for _ in range(200):
        if sum(1 for n in env.nodes if n in env.scheduler.state.nodes) >= count:
            return
        await asyncio.sleep(0.02)


def test_requests_decide_which_node_fits(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("small"), cpu="1"))
            await env.add_node(node(env.n("large"), cpu="4"))
            await _nodes_seen(env, 2)
            await env.create(pod("big", cpu="2500m"))
            assert await env.bound("big") == env.n("large")
            # 1.5 cpu is left on the large node and 1 on the small one.
            await env.create(pod("medium", cpu="1200m"))
            assert await env.bound("medium") == env.n("large")
            await env.create(pod("tiny", cpu="900m"))
            assert await env.bound("tiny") == env.n("small")

    asyncio.run(go())


def test_a_node_selector_sends_the_pod_to_a_labelled_node(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("hdd"), labels={"disk": "hdd"}))
            await env.add_node(node(env.n("ssd"), labels={"disk": "ssd"}))
            await env.add_node(node(env.n("plain")))
            await _nodes_seen(env, 3)
            for i in range(3):
                await env.create(pod(f"db-{i}", nodeSelector={"disk": "ssd"}))
            assert {await env.bound(f"db-{i}") for i in range(3)} == {env.n("ssd")}

    asyncio.run(go())


def test_taints_repel_pods_unless_they_tolerate_them(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            gpu_taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
            await env.add_node(node(env.n("gpu"), cpu="8", taints=[gpu_taint]))
            await env.add_node(node(env.n("cpu"), cpu="1"))
            await _nodes_seen(env, 2)
            # The tainted node is emptier, yet a pod without the toleration avoids it.
            await env.create(pod("web", cpu="500m"))
            assert await env.bound("web") == env.n("cpu")
            toleration = {
                "key": "dedicated",
                "operator": "Equal",
                "value": "gpu",
                "effect": "NoSchedule",
            }
            await env.create(pod("trainer", cpu="2", tolerations=[toleration]))
            assert await env.bound("trainer") == env.n("gpu")
            await env.create(pod("too-big", cpu="2"))
            cond = await env.unschedulable("too-big")
            assert cond["message"] == (
                "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s). "
                "no new claims to deallocate, preemption: 0/2 nodes are available: "
                "2 Preemption is not helpful for scheduling."
            )

    asyncio.run(go())


def test_required_anti_affinity_on_hostname_spreads_three_replicas_over_three_nodes(
    api: ClusterProcess,
) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            for i in range(3):
                await env.add_node(node(env.n(f"n{i}")))
            await _nodes_seen(env, 3)
            anti = {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"app": "cache"}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            }
            for i in range(4):
                await env.create(pod(f"cache-{i}", labels={"app": "cache"}, affinity=anti))
            placed = {await env.bound(f"cache-{i}") for i in range(3)}
            assert placed == {env.n("n0"), env.n("n1"), env.n("n2")}
            cond = await env.unschedulable("cache-3")
            assert cond["message"] == (
                "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. "
                "no new claims to deallocate, preemption: 0/3 nodes are available: "
                "3 No preemption victims found for incoming pod."
            )

    asyncio.run(go())


def test_an_unschedulable_pod_carries_the_reason_and_a_failed_scheduling_event(
    api: ClusterProcess,
) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("a"), cpu="1", labels={"zone": "a"}))
            await env.add_node(node(env.n("b"), cpu="1", labels={"zone": "b"}))
            await env.add_node(node(env.n("c"), cpu="8", labels={"zone": "c"}))
            await _nodes_seen(env, 3)
            created = await env.create(pod("picky", cpu="2", nodeSelector={"zone": "a"}))
            expected = (
                "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's "
                "node affinity/selector. no new claims to deallocate, preemption: 0/3 nodes "
                "are available: 3 Preemption is not helpful for scheduling."
            )
            cond = await env.unschedulable("picky")
            assert cond["reason"] == "Unschedulable"
            assert cond["message"] == expected
            event = await env.wait_event("picky", "FailedScheduling")
            assert event["type"] == "Warning"
            assert event["message"] == expected
            assert event["source"]["component"] == NAME
            assert event["reportingComponent"] == NAME
            assert event["involvedObject"]["kind"] == "Pod"
            assert event["involvedObject"]["uid"] == created["metadata"]["uid"]
            assert event["count"] == 1
            assert not (await env.get("picky"))["spec"].get("nodeName")

    asyncio.run(go())


def test_adding_a_fitting_node_later_schedules_the_pending_pod(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("small"), cpu="1"))
            await _nodes_seen(env, 1)
            await env.create(pod("waiting", cpu="3"))
            await env.unschedulable("waiting")
            await env.add_node(node(env.n("big"), cpu="4"))
            assert await env.bound("waiting") == env.n("big")
            scheduled = await env.wait_event("waiting", "Scheduled")
            assert scheduled["type"] == "Normal"
            assert (
                scheduled["message"] == f"Successfully assigned {env.ns}/waiting to {env.n('big')}"
            )

    asyncio.run(go())


def test_repeated_failures_update_one_event_instead_of_creating_new_ones(
    api: ClusterProcess,
) -> None:
    async def go() -> None:
        options = SchedulerOptions(scheduler_name=NAME, seed=7, pod_initial_backoff=0.2)
        async with scheduling(api, options) as env:
            await env.add_node(node(env.n("only"), cpu="1"))
            await _nodes_seen(env, 1)
            await env.create(pod("stuck", cpu="2"))
            await env.unschedulable("stuck")
            await env.wait_event("stuck", "FailedScheduling")
            # Node changes the scheduler cares about send the pod round again.
            for i in range(2):
                patch = {"metadata": {"labels": {"round": str(i)}}}
                await env.client.patch("v1", "nodes", env.n("only"), patch)
                await asyncio.sleep(0.6)
            for _ in range(100):
                events = await env.events("stuck", "FailedScheduling")
                if events and events[0].get("count", 1) >= 3:
                    break
                await asyncio.sleep(0.05)
            assert len(events) == 1
            assert events[0]["count"] >= 3
            assert events[0]["lastTimestamp"] >= events[0]["firstTimestamp"]

    asyncio.run(go())


def test_a_pod_whose_node_name_is_set_by_the_user_is_left_alone_but_counted(
    api: ClusterProcess,
) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("one"), cpu="2"))
            await env.add_node(node(env.n("two"), cpu="2"))
            await _nodes_seen(env, 2)
            await env.create(pod("pinned", cpu="1500m", nodeName=env.n("one")))
            await env.create(pod("next", cpu="1"))
            # "pinned" takes 1.5 cpu of node one, so "next" must go to node two.
            assert await env.bound("next") == env.n("two")
            pinned = await env.get("pinned")
            assert pinned["spec"]["nodeName"] == env.n("one")
            assert _scheduled_condition(pinned) is None
            assert not await env.events("pinned", "Scheduled")
            assert not await env.events("pinned", "FailedScheduling")

    asyncio.run(go())


def test_a_pod_for_another_scheduler_is_left_alone(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("free")))
            await _nodes_seen(env, 1)
            await env.create(pod("foreign", scheduler="someone-else"))
            await env.create(pod("ours"))
            assert await env.bound("ours") == env.n("free")
            await asyncio.sleep(0.5)
            foreign = await env.get("foreign")
            assert not foreign["spec"].get("nodeName")
            assert _scheduled_condition(foreign) is None
            assert not await env.events("foreign", "FailedScheduling")
            assert "foreign" not in {qp.info.name for qp in env.scheduler.queue.pending()}

    asyncio.run(go())


def test_a_higher_priority_pod_preempts_a_lower_priority_one(api: ClusterProcess) -> None:
    async def go() -> None:
        async with scheduling(api) as env:
            await env.add_node(node(env.n("full"), cpu="2"))
            await _nodes_seen(env, 1)
            await env.create(pod("victim", cpu="1500m"))
            assert await env.bound("victim") == env.n("full")
            await env.create(pod("vip", cpu="1500m", priorityClassName="system-cluster-critical"))
            victim = await env.wait(
                "victim", lambda p: bool(p["metadata"].get("deletionTimestamp")), timeout=15
            )
            disruption = next(
                c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget"
            )
            assert disruption["reason"] == "PreemptionByScheduler"
            vip = await env.wait(
                "vip", lambda p: p["status"].get("nominatedNodeName") == env.n("full")
            )
            cond = _scheduled_condition(vip)
            assert (
                cond is not None
                and cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
            )
            preempted = await env.wait_event("victim", "Preempted")
            assert (
                preempted["message"]
                == f"Preempted by pod {vip['metadata']['uid']} on node {env.n('full')}"
            )

    asyncio.run(go())
