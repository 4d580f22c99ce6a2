"""Workload controllers benchmark (issue 4's speed figures), on the fake runtime.

Starts ``gitops cluster up --runtime fake --nodes 100`` with the Deployment and
ReplicaSet controllers (everything — API server, scheduler, 100 kubelets, controllers —
in that one process, as a user runs it) and measures, from this process through the API:

* scale-up: one Deployment scaled from 0 to 3,000 replicas → all 3,000 ready
  (``status.readyReplicas`` and ``availableReplicas``), time and API writes per pod;
* rolling update of that Deployment (new image; default 25% surge / 25% unavailable)
  → complete (all replicas updated and available, old ReplicaSet at 0), time and
  writes per pod;
* 1,000 Deployments of 3 replicas created at once (8 concurrent creates) → all
  converged (every one with 3 available replicas and observedGeneration current).

"API writes" is the growth of the store's global revision (every create, update, patch
and delete — pods, bindings, statuses, ReplicaSets, Events — adds exactly one). "Where
the time goes" is the cluster process's CPU seconds per phase (and, with ``--profile``,
a py-spy flame graph of it).

Prints the figures and writes ``bench/results/controllers.json`` (or ``--out``).
Usage: ``.venv/bin/python bench/controllers_bench.py [--nodes 100] [--replicas 3000]
[--deployments 1000] [--profile out.svg]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubeclient.rest import Client, load_kubeconfig  # noqa: E402
from tests.conftest import ClusterProcess  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": image}],
                },
            },
        },
    }


async def revision(client: Client) -> int:
    listed = await client.list("v1", "namespaces", limit="1")
    return int(listed["metadata"]["resourceVersion"])


async def wait_until(check: Any, timeout: float, what: str, every: float = 0.25) -> None:
    """Poll ``check`` every ``every`` seconds (a long period for checks that list many
    objects: the cluster shares its one core with answering them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


def rolled_out(dep: dict[str, Any], replicas: int) -> bool:
    status = dep.get("status") or {}
    return (
        status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 1)
        and status.get("updatedReplicas") == replicas
        and status.get("availableReplicas") == replicas
        and status.get("replicas") == replicas
    )


class Phase:
    """Times one phase and counts its API writes and the cluster's CPU."""

    def __init__(self, client: Client, pid: int, name: str, pods: int) -> None:
        self.client, self.pid, self.name, self.pods = client, pid, name, pods

    async def __aenter__(self) -> Phase:
        self.rev = await revision(self.client)
        self.cpu = cpu_seconds(self.pid)
        self.t0 = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.writes = await revision(self.client) - self.rev
        self.cpu_used = cpu_seconds(self.pid) - self.cpu

    def figures(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 2),
            "api_writes": self.writes,
            "api_writes_per_pod": round(self.writes / max(self.pods, 1), 2),
            "cluster_cpu_seconds": round(self.cpu_used, 1),
        }


async def big(client: Client) -> dict[str, Any]:
    return await client.get("apps/v1", "deployments", "big", "default")


async def scale_up(client: Client, pid: int, replicas: int) -> dict[str, Any]:
    """Deployment ``big`` created at 0 replicas, then scaled to ``replicas``."""
    await client.create("apps/v1", "deployments", deployment("big", 0, "bench:v1"), "default")
    async with Phase(client, pid, "scale_up", replicas) as phase:
        await client.patch(
            "apps/v1", "deployments", "big", {"spec": {"replicas": replicas}}, "default"
        )

        async def all_ready() -> bool:
            return rolled_out(await big(client), replicas)

        await wait_until(all_ready, 1800, f"{replicas} replicas ready")
    return phase.figures()


async def rolling_update(client: Client, pid: int, replicas: int) -> dict[str, Any]:
    """A new image for ``big``, until every replica is updated and the old set is empty."""
    async with Phase(client, pid, "rolling_update", replicas) as phase:
        template = {"spec": {"containers": [{"name": "c", "image": "bench:v2"}]}}
        await client.patch(
            "apps/v1", "deployments", "big", {"spec": {"template": template}}, "default"
        )

        async def rolled() -> bool:
            if not rolled_out(await big(client), replicas):
                return False
            sets = await client.list("apps/v1", "replicasets", "default", labelSelector="app=big")
            return all(
                (rs.get("status") or {}).get("replicas", 0) == 0
                for rs in sets.get("items") or []
                if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "bench:v1"
            )

        await wait_until(rolled, 1800, "the rolling update", every=1.0)
    return phase.figures()


async def many_deployments(client: Client, pid: int, count: int) -> dict[str, Any]:
    """``count`` Deployments of 3 replicas created at once (8 concurrent creates) in
    namespace ``many``, until every one is rolled out."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}}
    await client.create("v1", "namespaces", namespace)
    figures: dict[str, Any] = {}
    async with Phase(client, pid, "many", count * 3) as phase:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def creator() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await client.create(
                    "apps/v1", "deployments", deployment(f"d{i:04d}", 3, "bench:v1"), "many"
                )

        await asyncio.gather(*(creator() for _ in range(8)))

        async def converged() -> bool:
            deps = (await client.list("apps/v1", "deployments", "many")).get("items") or []
            return len(deps) == count and all(rolled_out(d, 3) for d in deps)

        try:
            await wait_until(converged, 1800, f"{count} deployments converging", every=3.0)
        except TimeoutError:
            deps = (await client.list("apps/v1", "deployments", "many")).get("items") or []
            figures["timed_out"] = {"converged": sum(1 for d in deps if rolled_out(d, 3))}
    return {**phase.figures(), **figures}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="controllers-bench-"))
    server = ClusterProcess(
        state,
        runtime="fake",
        extra_args=(
            "--nodes",
            str(args.nodes),
            "--controllers",
            "deployment,replicaset,serviceaccount,root-ca-cert-publisher",
            "--node-grace-period",
            "86400",
            "--event-retention",
            "500000",
        ),
    )
    server.start(timeout=120)
    assert server.proc is not None
    pid = server.proc.pid
    results: dict[str, Any] = {
        "nodes": args.nodes,
        "replicas": args.replicas,
        "deployments": args.deployments,
    }
    profiler: subprocess.Popen[bytes] | None = None
    try:
        # A long timeout: a saturated cluster answers slowly, and a figure is still a figure.
        async with Client(
            load_kubeconfig(server.kubeconfig), connections=64, timeout=600.0
        ) as client:

            async def nodes_ready() -> bool:
                nodes = (await client.list("v1", "nodes")).get("items") or []
                return len(nodes) == args.nodes

            await wait_until(nodes_ready, 300, f"{args.nodes} nodes registering")
            if args.profile:
                profiler = subprocess.Popen(
                    [
                        *("py-spy", "record", "-o", str(args.profile), "-p", str(pid), "-r", "50"),
                        # collapsed stacks (one line per stack) for a .txt file
                        *(("--format", "raw") if args.profile.suffix == ".txt" else ()),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            phases = set(args.phases.split(","))
            if "scale" in phases:
                results["scale_up"] = await scale_up(client, pid, args.replicas)
                print(f"scale 0 -> {args.replicas}: {results['scale_up']}", flush=True)
            if "roll" in phases and "scale" in phases:
                results["rolling_update"] = await rolling_update(client, pid, args.replicas)
                print(f"rolling update: {results['rolling_update']}", flush=True)
            if "scale" in phases:
                # Each phase on an otherwise idle cluster: the big Deployment and its
                # pods go (scaled to 0) before the many Deployments come.
                await client.patch(
                    "apps/v1", "deployments", "big", {"spec": {"replicas": 0}}, "default"
                )

                async def gone() -> bool:
                    pods = await client.list("v1", "pods", "default", limit="1")
                    return not pods.get("items")

                await wait_until(gone, 1800, "the big Deployment's pods to go", every=2.0)
            if "many" in phases:
                results["many_deployments"] = await many_deployments(client, pid, args.deployments)
                print(
                    f"{args.deployments} deployments x 3: {results['many_deployments']}", flush=True
                )
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        server.stop(timeout=60)
        shutil.rmtree(state, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=3000)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--phases",
        default="scale,roll,many",
        help="comma-separated phases to run: scale, roll (needs scale), many",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "controllers.json")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
