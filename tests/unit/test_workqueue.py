"""The work queue: de-duplication, one worker per key, delays and backoff."""

from __future__ import annotations

import asyncio

from kubeclient.workqueue import WorkQueue, run_workers


def test_a_key_added_twice_is_processed_once() -> None:
    async def go() -> list[str]:
        q = WorkQueue()
        q.add("a")
        q.add("a")
        q.add("b")
        seen = []
        for _ in range(2):
            key = await q.get()
            assert key is not None
            seen.append(key)
            q.done(key)
        assert len(q) == 0
        return seen

    assert asyncio.run(go()) == ["a", "b"]


def test_a_key_added_while_processing_runs_again_after_done() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")
        assert len(q) == 0  # not handed to a second worker while the first holds it
        assert key is not None
        q.done(key)
        assert await q.get() == "a"

    asyncio.run(go())


def test_rate_limited_keys_back_off_exponentially_and_forget_resets() -> None:
    async def go() -> None:
        q = WorkQueue(base_delay=0.01, max_delay=1.0)
        q.add_rate_limited("a")
        q.add_rate_limited("a")
        assert q.requeues("a") == 2
        start = asyncio.get_running_loop().time()
        assert await q.get() == "a"
        assert asyncio.get_running_loop().time() - start >= 0.009
        q.forget("a")
        assert q.requeues("a") == 0

    asyncio.run(go())


def test_workers_retry_failing_syncs_and_stop_on_shutdown() -> None:
    async def go() -> list[str]:
        q = WorkQueue(base_delay=0.001)
        calls: list[str] = []

        async def sync(key: str) -> None:
            calls.append(key)
            if len(calls) < 3:
                raise RuntimeError("not yet")
            q.shutdown()

        q.add("k")
        await asyncio.wait_for(run_workers(q, sync, workers=2), timeout=5)
        return calls

    assert asyncio.run(go()) == ["k", "k", "k"]


def test_a_permanent_error_is_not_retried() -> None:
    class Permanent(Exception):
        retryable = False

    async def go() -> int:
        q = WorkQueue(base_delay=0.001)
        calls = 0

        async def sync(key: str) -> None:
            nonlocal calls
            calls += 1
            raise Permanent("no")

        q.add("k")
        task = asyncio.create_task(run_workers(q, sync))
        await asyncio.sleep(0.1)
        q.shutdown()
        await asyncio.wait_for(task, timeout=5)
        return calls

    assert asyncio.run(go()) == 1
