"""API server benchmark (issue 2's speed targets).

Starts ``gitops cluster up`` as a separate process on a loopback port with a fresh state
directory, then measures over HTTPS with keep-alive connections:

* creates/s and gets/s with ``wrk`` (4 connections, 2 threads; a compiled load
  generator so the client does not compete with the server for the GIL), and creates/s
  from an asyncio Python client with 4 connections;
* LIST of 10,000 pods in one namespace: p50/p99 over repeated requests, plain and gzip;
* 100 concurrent watchers receiving every event of a 1,000-write burst;
* the server's RSS while it holds 10,000 pods.

Prints the figures and writes them as JSON to ``bench/results/api.json`` (or --out).
Usage: ``.venv/bin/python bench/api_bench.py [--pods 10000] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wrk import WRK_STATUS, Load, run_wrk  # noqa: E402
from tests.conftest import ClusterProcess  # noqa: E402

WRK_CREATE = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  failures = 0
  created = 0
end
request = function()
  counter = counter + 1
  local name = string.format("wrk-%d-%d", id, counter)
  local body = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"' .. name ..
    '","labels":{"app":"bench","tier":"web"}},"spec":{"containers":[{"name":"web",' ..
    '"image":"localhost/busybox:latest","command":["httpd","-f","-p","8080"],' ..
    '"ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"10m","memory":"16Mi"}}}]}}'
  return wrk.format("POST", "/api/v1/namespaces/bench-create/pods", nil, body)
end
response = function(status, headers, body)
  if status == 201 then created = created + 1 else failures = failures + 1 end
end
done = function(summary, latency, requests)
  local c, f = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    f = f + t:get("failures")
  end
  io.write(string.format("RESULT created=%d failures=%d p50=%d p99=%d\\n",
    c, f, latency:percentile(50), latency:percentile(99)))
end
"""


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "localhost/busybox:latest",
                    "command": ["httpd", "-f", "-p", "8080"],
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    def __init__(self, server: ClusterProcess) -> None:
        self.server = server
        self.ssl = server.ssl_context()
        self.headers = {
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/json",
        }

    def session(self, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limit, ssl=self.ssl)
        return aiohttp.ClientSession(
            base_url=self.server.url,
            connector=connector,
            headers=self.headers,
            auto_decompress=True,
            timeout=aiohttp.ClientTimeout(total=120),
        )

    async def create_namespace(self, name: str) -> None:
        async with (
            self.session(1) as s,
            s.post(
                "/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            ) as r,
        ):
            assert r.status in (201, 409), await r.text()

    async def create_pods(self, namespace: str, count: int, connections: int = 4) -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)
        failures = 0

        async def worker(s: aiohttp.ClientSession) -> None:
            nonlocal failures
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                async with s.post(
                    f"/api/v1/namespaces/{namespace}/pods", json=pod(f"pod-{i:05d}")
                ) as r:
                    await r.read()
                    if r.status != 201:
                        failures += 1

        async with self.session(connections) as s:
            started = time.perf_counter()
            await asyncio.gather(*(worker(s) for _ in range(connections)))
            elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{failures} creates failed")
        return count / elapsed

    async def list_latencies(
        self, namespace: str, runs: int, gzip: bool, expected: int
    ) -> dict[str, float]:
        times = []
        size = 0
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        async with self.session(1) as s:
            for _ in range(runs):
                started = time.perf_counter()
                async with s.get(f"/api/v1/namespaces/{namespace}/pods", headers=headers) as r:
                    body = await r.read()
                    assert r.status == 200
                # Latency is until the whole response has arrived (the SLO's definition);
                # decoding it is the client's business.
                times.append(time.perf_counter() - started)
                size = len(body)
                assert len(json.loads(body)["items"]) == expected
        times.sort()
        return {
            "p50_s": statistics.median(times),
            "p99_s": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
            "max_s": times[-1],
            "runs": runs,
            "bytes": size,
        }

    async def watch_burst(self, watchers: int, writes: int) -> dict[str, float]:
        await self.create_namespace("bench-watch")
        async with self.session(1) as s, s.get("/api/v1/namespaces/bench-watch/configmaps") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        received = [0] * watchers
        done = asyncio.Event()
        finished = [0]
        last_delivery = [0.0]

        async def watcher(i: int, s: aiohttp.ClientSession) -> None:
            async with s.get(
                "/api/v1/namespaces/bench-watch/configmaps",
                params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "120"},
            ) as r:
                async for _line in r.content:
                    received[i] += 1
                    if received[i] == writes:
                        last_delivery[0] = time.perf_counter()
                        finished[0] += 1
                        if finished[0] == watchers:
                            done.set()
                        return

        async with self.session(watchers + 4) as s:
            tasks = [asyncio.ensure_future(watcher(i, s)) for i in range(watchers)]
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            sem = asyncio.Semaphore(4)

            async def write(i: int) -> None:
                async with (
                    sem,
                    s.post(
                        "/api/v1/namespaces/bench-watch/configmaps",
                        json={
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": f"cm-{i}"},
                            "data": {"i": str(i)},
                        },
                    ) as r,
                ):
                    await r.read()
                    assert r.status == 201

            await asyncio.gather(*(write(i) for i in range(writes)))
            writes_done = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=60)
            for t in tasks:
                t.cancel()
        complete = sum(1 for n in received if n >= writes)
        return {
            "watchers": watchers,
            "writes": writes,
            "watchers_with_every_event": complete,
            "min_events_received": min(received),
            "write_burst_s": writes_done - started,
            "last_delivery_after_start_s": (last_delivery[0] - started)
            if last_delivery[0]
            else float("nan"),
        }


def wrk_headers(token: str) -> tuple[str, ...]:
    return (f"Authorization: Bearer {token}", "Content-Type: application/json")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="api-bench-"))
    server = ClusterProcess(state)
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    results: dict[str, Any] = {"pods": args.pods}
    try:
        bench = Bench(server)
        await bench.create_namespace("bench-list")
        await bench.create_namespace("bench-create")
        rss_before = rss_mb(pid)
        rate = await bench.create_pods("bench-list", args.pods)
        results["python_client_creates_per_s"] = rate
        results["rss_mb_empty"] = rss_before
        results["rss_mb_holding_pods"] = rss_mb(pid)
        results["list_plain"] = await bench.list_latencies(
            "bench-list", args.list_runs, gzip=False, expected=args.pods
        )
        results["list_gzip"] = await bench.list_latencies(
            "bench-list", args.list_runs, gzip=True, expected=args.pods
        )
        results["rss_mb_after_lists"] = rss_mb(pid)
        get_url = f"{server.url}/api/v1/namespaces/bench-list/pods/pod-00042"
        results["wrk_gets"] = run_wrk(
            Load(get_url, args.seconds, WRK_STATUS, wrk_headers(server.token))
        )
        create_url = f"{server.url}/api/v1/namespaces/bench-create/pods"
        results["wrk_creates"] = run_wrk(
            Load(create_url, args.seconds, WRK_CREATE, wrk_headers(server.token))
        )
        results["watch"] = await bench.watch_burst(args.watchers, args.writes)
        results["rss_mb_end"] = rss_mb(pid)
    finally:
        server.stop(signal.SIGTERM)
        shutil.rmtree(state, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--list-runs", type=int, default=30)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api.json")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(
        f"\ncreates/s (wrk, 4 conns): {results['wrk_creates']['per_second']:.0f}   "
        f"gets/s (wrk, 4 conns): {results['wrk_gets']['per_second']:.0f}\n"
        f"LIST {args.pods} pods p99: {results['list_plain']['p99_s']:.3f}s plain, "
        f"{results['list_gzip']['p99_s']:.3f}s gzip\n"
        f"watchers with every event: {results['watch']['watchers_with_every_event']}/{args.watchers}\n"
        f"RSS holding {args.pods} pods: {results['rss_mb_holding_pods']:.0f} MB "
        f"(after lists {results['rss_mb_after_lists']:.0f} MB, end {results['rss_mb_end']:.0f} MB)"
    )


if __name__ == "__main__":
    main()
