"""The kubelet's shared relist (runtime/kubelet/pleg.py) over the fake runtime: pod
workers share listings, a worker never reads a listing older than its own change, and
the periodic relist reports exactly the pods whose containers changed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runtime.kubelet import cri
from runtime.kubelet.cri import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    SandboxConfig,
    SandboxStatus,
)
from runtime.kubelet.pleg import Relister
from runtime.kubelet.runtimes.fake import FakeOptions, FakeRuntime

NODE = {cri.LABEL_NODE: "n1"}


class CountingRuntime(FakeRuntime):
    """The fake runtime, counting listings and making each take a little while."""

    def __init__(self) -> None:
        super().__init__(FakeOptions())
        self.listings = 0

    async def list_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[SandboxStatus]:
        self.listings += 1
        await asyncio.sleep(0.01)
        return await super().list_sandboxes(labels)

    async def list_containers(
        self, labels: Mapping[str, str] | None = None
    ) -> list[ContainerStatus]:
        await asyncio.sleep(0.01)
        return await super().list_containers(labels)


async def _pod(runtime: FakeRuntime, uid: str, *, node: str = "n1") -> tuple[str, str]:
    labels = {cri.LABEL_POD_UID: uid, cri.LABEL_NODE: node}
    sandbox = await runtime.run_sandbox(
        SandboxConfig(pod_uid=uid, name=uid, namespace="default", hostname=uid, labels=labels)
    )
    cid = await runtime.create_container(
        sandbox.id, ContainerConfig(name="c", image="busybox", labels=labels)
    )
    await runtime.start_container(cid)
    return sandbox.id, cid


def test_concurrent_callers_share_one_listing() -> None:
    async def go() -> None:
        runtime = CountingRuntime()
        relister = Relister(runtime, NODE)
        moment = relister.clock()
        snaps = await asyncio.gather(*(relister.newer_than(moment) for _ in range(20)))
        assert runtime.listings == 1
        assert all(s is snaps[0] for s in snaps)
        # "now" from twenty callers: the first listing started before the later calls,
        # so they share one more listing
        await asyncio.gather(*(relister.now() for _ in range(20)))
        assert runtime.listings == 3

    asyncio.run(go())


def test_a_listing_older_than_the_moment_asked_for_is_not_returned() -> None:
    async def go() -> None:
        runtime = CountingRuntime()
        relister = Relister(runtime, NODE)
        first = await relister.now()
        assert first.pod("a") == ([], [])
        await _pod(runtime, "a")
        changed_at = relister.clock()
        second = await relister.newer_than(changed_at)
        assert second.taken_at >= changed_at
        sandboxes, containers = second.pod("a")
        assert len(sandboxes) == 1 and [c.state for c in containers] == [ContainerState.RUNNING]
        # an old enough listing is reused without asking the engine again
        again = await relister.newer_than(first.taken_at)
        assert again is second and runtime.listings == 2

    asyncio.run(go())


def test_a_listing_already_running_when_a_change_ends_is_not_enough() -> None:
    async def go() -> None:
        runtime = CountingRuntime()
        relister = Relister(runtime, NODE)
        early = asyncio.create_task(relister.now())
        await asyncio.sleep(0)  # the listing has started
        await _pod(runtime, "b")
        changed_at = relister.clock()
        snap = await relister.newer_than(changed_at)
        await early
        assert snap.taken_at >= changed_at
        assert len(snap.pod("b")[1]) == 1
        assert runtime.listings == 2

    asyncio.run(go())


def test_only_this_nodes_objects_are_listed() -> None:
    async def go() -> None:
        runtime = CountingRuntime()
        await _pod(runtime, "mine")
        await _pod(runtime, "theirs", node="n2")
        snap = await Relister(runtime, NODE).now()
        assert snap.uids() == {"mine"}

    asyncio.run(go())


def test_the_periodic_relist_reports_pods_whose_containers_changed() -> None:
    async def go() -> None:
        runtime = CountingRuntime()
        _, exits = await _pod(runtime, "exits")
        await _pod(runtime, "steady")
        relister = Relister(runtime, NODE)
        reports: list[set[str]] = []
        task = asyncio.create_task(relister.run(0.05, reports.append))
        try:
            await asyncio.sleep(0.15)
            assert reports == []  # nothing changed yet
            await runtime.stop_container(exits, 0)
            await _pod(runtime, "new")
            for _ in range(100):
                if reports:
                    break
                await asyncio.sleep(0.02)
            assert set().union(*reports) == {"exits", "new"}
        finally:
            task.cancel()

    asyncio.run(go())


def test_a_failing_listing_reaches_every_waiting_caller_and_the_next_call_retries() -> None:
    class Flaky(CountingRuntime):
        fail = True

        async def list_sandboxes(
            self, labels: Mapping[str, str] | None = None
        ) -> list[SandboxStatus]:
            if self.fail:
                await asyncio.sleep(0.01)
                raise cri.RuntimeError_("engine busy")
            return await super().list_sandboxes(labels)

    async def go() -> None:
        runtime = Flaky()
        relister = Relister(runtime, NODE)
        results: list[Any] = await asyncio.gather(
            relister.now(), relister.now(), return_exceptions=True
        )
        assert all(isinstance(r, cri.RuntimeError_) for r in results)
        runtime.fail = False
        assert (await relister.now()).uids() == set()

    asyncio.run(go())
