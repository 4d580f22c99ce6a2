"""Pod startup latency (issue 3): 20 busybox pods on the built-in cluster's podman node,
side by side in the same run with ``podman kube play`` of the same 20 pods.

For the cluster, latency is creation (the create call) to "all containers started" as
observed by a watch on the pods (``containerStatuses[].started``), per pod; p50 and p99
over the pods, and the time until the last pod started. For ``podman kube play`` the
figure is the wall time of one ``kube play`` of a file with the 20 pods until
``podman pod ps`` shows every pod running. Repeats ``--rounds`` times and reports
medians. Writes ``bench/results/pod_startup.json``.

Usage: ``.venv/bin/python bench/pod_startup_bench.py [--pods 20] [--rounds 3]
[--runtime podman|docker]``; with docker the cluster's node runs on docker (results in
``pod_startup_docker.json``) and the peer is still ``podman kube play``.
Everything it creates is removed at the end (cluster pods and kube-play pods).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubeclient.rest import Client, load_kubeconfig  # noqa: E402
from tests.conftest import ClusterProcess  # noqa: E402

IMAGE = "localhost/busybox:latest"


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def _started(obj: dict[str, Any]) -> bool:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("started") for s in statuses)


async def cluster_round(server: ClusterProcess, count: int, round_no: int) -> dict[str, float]:
    async with Client(load_kubeconfig(server.kubeconfig), connections=32) as client:
        listed = await client.list("v1", "pods", "default")
        rv = listed["metadata"]["resourceVersion"]
        created: dict[str, float] = {}
        started: dict[str, float] = {}
        names = [f"startup-{round_no}-{i}" for i in range(count)]

        async def follow() -> None:
            async for event in client.watch(
                "v1",
                "pods",
                "default",
                resourceVersion=rv,
                labelSelector="bench=startup",
                timeoutSeconds="120",
            ):
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if name in created and name not in started and _started(obj):
                    started[name] = time.perf_counter()
                    if len(started) == count:
                        return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()

        async def make(name: str) -> None:
            created[name] = time.perf_counter()
            await client.create("v1", "pods", pod(name), "default")

        await asyncio.gather(*(make(n) for n in names))
        await asyncio.wait_for(watcher, 180)
        latencies = sorted(started[n] - created[n] for n in names)
        all_started = max(started.values()) - t0
        for n in names:
            await client.delete("v1", "pods", n, "default")
        # wait until the kubelet removed them, so rounds do not overlap
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = await client.list("v1", "pods", "default", labelSelector="bench=startup")
            if not left.get("items"):
                break
            await asyncio.sleep(0.5)
    return {
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "all_started_s": all_started,
    }


def kube_play_round(count: int, round_no: int, conf: str) -> float:
    docs = [pod(f"play-{round_no}-{i}") for i in range(count)]
    env = {**os.environ}
    if conf:
        env["CONTAINERS_CONF"] = conf
    flags = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
        path = f.name
    try:
        t0 = time.perf_counter()
        subprocess.run(
            ["podman", *flags, "kube", "play", path], check=True, capture_output=True, env=env
        )
        while True:
            out = subprocess.run(
                [
                    "podman",
                    *flags,
                    "pod",
                    "ps",
                    "--filter",
                    f"name=play-{round_no}-",
                    "--format",
                    "{{.Status}}",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout.split()
            if len(out) >= count and all(s == "Running" for s in out):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    finally:
        subprocess.run(["podman", *flags, "kube", "down", path], capture_output=True, env=env)
        Path(path).unlink()
    return elapsed


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    server = ClusterProcess(state, runtime=args.runtime)
    server.start()
    conf = os.environ.get("CONTAINERS_CONF", str(ROOT / ".cache" / "podman" / "containers.conf"))
    cluster_rounds = []
    play_rounds = []
    try:
        async with Client(load_kubeconfig(server.kubeconfig)) as client:
            deadline = time.monotonic() + 60
            while not (await client.list("v1", "nodes")).get("items"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {args.runtime} node did not register")
                await asyncio.sleep(0.2)
        for r in range(args.rounds):
            cluster_rounds.append(await cluster_round(server, args.pods, r))
            play_rounds.append(kube_play_round(args.pods, r, conf if Path(conf).exists() else ""))
            print(
                f"round {r}: cluster p50 {cluster_rounds[-1]['p50_s']:.2f}s p99 "
                f"{cluster_rounds[-1]['p99_s']:.2f}s all {cluster_rounds[-1]['all_started_s']:.2f}s; "
                f"kube play all {play_rounds[-1]:.2f}s",
                flush=True,
            )
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(state, ignore_errors=True)
    return {
        "runtime": args.runtime,
        "pods": args.pods,
        "rounds": args.rounds,
        "cluster_p50_s": statistics.median(r["p50_s"] for r in cluster_rounds),
        "cluster_p99_s": statistics.median(r["p99_s"] for r in cluster_rounds),
        "cluster_all_started_s": statistics.median(r["all_started_s"] for r in cluster_rounds),
        "kube_play_all_running_s": statistics.median(play_rounds),
        "raw": {"cluster": cluster_rounds, "kube_play": play_rounds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", choices=("podman", "docker"), default="podman")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.runtime == "podman" else f"_{args.runtime}"
        args.out = ROOT / "bench" / "results" / f"pod_startup{suffix}.json"
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "raw"}, indent=2))
    ratio = results["cluster_all_started_s"] / results["kube_play_all_running_s"]
    print(
        f"\n{args.pods} pods on {args.runtime}: cluster p50 {results['cluster_p50_s']:.2f}s p99 {results['cluster_p99_s']:.2f}s, "
        f"all started {results['cluster_all_started_s']:.2f}s vs podman kube play "
        f"{results['kube_play_all_running_s']:.2f}s (ratio {ratio:.2f})"
    )


if __name__ == "__main__":
    main()
