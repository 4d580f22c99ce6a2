"""Service networking benchmark (issue 6's speed figures) on a real container engine.

Starts ``gitops cluster up --runtime podman|docker --ingress-port N`` (its own process)
and creates one busybox pod serving the same page with one httpd per port, behind a
ClusterIP Service and an Ingress, plus an idle client pod. Then, with ``wrk`` (8
connections, 2 threads; busybox httpd closes every connection, so each request is a new
TCP connection through the proxy's DNAT and the ingress's backend connection), side by
side in the same run, alternating over ``--rounds`` rounds of ``--seconds`` each:

* from the client pod (``wrk`` run in the pod's network namespace with ``nsenter``):
  the pod IP directly, and the Service's cluster IP (the iptables proxy);
* from the host: the pod IP directly, and the ingress port (the Python ingress router
  in the cluster process).

Every run uses destination ports of its own (its own httpd, Service port and Ingress
host): a new connection per request leaves its socket in TIME_WAIT for 60 s, and a run
of some 25,000 connections would otherwise exhaust the ephemeral ports of the next run
to the same address (measured: 5,000 req/s fell to 700). For the same reason each run
first waits (up to 150 s) until the kernel's connection tracking table has room for
:data:`CONNTRACK_HEADROOM` more entries: TIME_WAIT entries stay 120 s, and a full table
drops new connections (the SYN is retried after 1 s; a run measured 5 req/s).

Reports requests/s and p99 latency per path (medians over the rounds) and the ratios
to the direct path (targets: the Service ≥ 70% of direct, the ingress ≥ 50%). Prints the
figures and writes ``bench/results/network.json`` (``network_docker.json`` for docker,
or ``--out``). Needs root (nsenter, the proxy's iptables) and ``wrk``.
Usage: ``.venv/bin/python bench/network_bench.py [--runtime podman] [--rounds 5]
[--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wrk import Load, run_wrk  # noqa: E402
from kubeclient.rest import Client, load_kubeconfig  # noqa: E402
from tests.conftest import ClusterProcess, free_port  # noqa: E402
from tests.integration.harness import BUSYBOX, web_deployment  # noqa: E402
from tests.integration.netharness import (  # noqa: E402
    namespace,
    ready_endpoints,
    ready_pods,
    until,
    web_service,
)

NS = "bench-net"
PATHS = ("pod_direct", "pod_service", "host_direct", "host_ingress")
FIRST_PORT = 8080
CONNTRACK = Path("/proc/sys/net/netfilter")
CONNTRACK_HEADROOM = 60_000


def wait_for_conntrack_room() -> float:
    """Wait until the connection tracking table has room for a run; seconds waited."""
    waited = 0.0
    limit = int((CONNTRACK / "nf_conntrack_max").read_text())
    while waited < 150:
        if int((CONNTRACK / "nf_conntrack_count").read_text()) + CONNTRACK_HEADROOM < limit:
            break
        time.sleep(2)
        waited += 2
    return waited


def host(index: int) -> str:
    return f"r{index}.bench.local"


def backend(ports: int) -> dict[str, Any]:
    """One pod serving its name with an httpd on each of ``ports`` ports from 8080."""
    deployment = web_deployment("web", 1)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "sh",
        "-c",
        "mkdir -p /www && echo $POD_NAME > /www/index.html && i=0; "
        f"while [ $i -lt {ports} ]; do httpd -p $(({FIRST_PORT} + i)) -h /www; i=$((i+1)); done;"
        " exec sleep 2147483647",
    ]
    container["ports"] = [{"name": f"p{i}", "containerPort": FIRST_PORT + i} for i in range(ports)]
    container["readinessProbe"] = {
        "tcpSocket": {"port": FIRST_PORT + ports - 1},
        "periodSeconds": 1,
    }
    return deployment


def service(ports: int) -> dict[str, Any]:
    svc = web_service("web")
    svc["spec"]["ports"] = [
        {"name": f"p{i}", "port": 80 + i, "targetPort": f"p{i}"} for i in range(ports)
    ]
    return svc


def ingress(ports: int) -> dict[str, Any]:
    """Host ``r<i>.bench.local`` → the Service's port ``p<i>``."""

    def rule(i: int) -> dict[str, Any]:
        to = {"service": {"name": "web", "port": {"name": f"p{i}"}}}
        path = {"path": "/", "pathType": "Prefix", "backend": to}
        return {"host": host(i), "http": {"paths": [path]}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {"rules": [rule(i) for i in range(ports)]},
    }


def idle_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loadgen", "labels": {"app": "loadgen"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "idle",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def container_pid(engine: str, pod: str) -> int:
    """The host PID of a running container of ``pod`` (any of them shares the pod's
    network namespace)."""
    ids = subprocess.run(
        [engine, "ps", "-q", "--filter", f"label=gitops.builtin/pod-name={pod}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for cid in ids:
        out = subprocess.run(
            [engine, "inspect", "--format", "{{.State.Pid}}", cid],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if out.isdigit() and int(out) > 0:
            return int(out)
    raise SystemExit(f"no running container of pod {pod} in {engine}")


async def prepare(client: Client, ports: int) -> dict[str, str]:
    """Create the objects; the pod IP and cluster IP once the endpoint is ready."""
    await client.create("v1", "namespaces", namespace(NS))
    await client.create("apps/v1", "deployments", backend(ports), namespace=NS)
    await client.create("v1", "services", service(ports), namespace=NS)
    await client.create("networking.k8s.io/v1", "ingresses", ingress(ports), namespace=NS)
    await client.create("v1", "pods", idle_pod(), namespace=NS)
    (pod_ip, *_) = await until("a ready endpoint", lambda: ready_endpoints(client, NS, "web"))
    await until("the client pod", lambda: ready_pods(client, NS, "app=loadgen"))
    svc = await client.get("v1", "services", "web", namespace=NS)
    return {"pod_ip": str(pod_ip), "cluster_ip": svc["spec"]["clusterIP"]}


def loads(
    inside: tuple[str, ...],
    addresses: dict[str, str],
    ingress_port: int,
    round_: int,
    args: argparse.Namespace,
) -> dict[str, Load]:
    """The round's run per path, each to ports of its own (index: round * paths + path);
    ``inside`` is the command prefix that runs ``wrk`` in the client pod."""
    pod, cluster_ip = addresses["pod_ip"], addresses["cluster_ip"]
    first = round_ * len(PATHS)
    common: dict[str, Any] = {"seconds": args.seconds, "connections": args.connections}
    return {
        "pod_direct": Load(f"http://{pod}:{FIRST_PORT + first}/", prefix=inside, **common),
        "pod_service": Load(f"http://{cluster_ip}:{80 + first + 1}/", prefix=inside, **common),
        "host_direct": Load(f"http://{pod}:{FIRST_PORT + first + 2}/", **common),
        "host_ingress": Load(
            f"http://127.0.0.1:{ingress_port}/", headers=(f"Host: {host(first + 3)}",), **common
        ),
    }


def summarize(rounds: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in PATHS:
        runs = [r[path] for r in rounds]
        out[path] = {
            "per_second_median": statistics.median(r["per_second"] for r in runs),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in runs),
            "failures": sum(r["failures"] + r["socket_errors"] for r in runs),
            "runs": runs,
        }
    out["service_vs_direct"] = (
        out["pod_service"]["per_second_median"] / out["pod_direct"]["per_second_median"]
    )
    out["ingress_vs_direct"] = (
        out["host_ingress"]["per_second_median"] / out["host_direct"]["per_second_median"]
    )
    return out


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="network-bench-"))
    ports = (args.rounds + 1) * len(PATHS)
    ingress_port = free_port()
    server = ClusterProcess(
        state, runtime=args.runtime, extra_args=("--ingress-port", str(ingress_port))
    )
    server.start(timeout=120.0)
    try:

        async def setup() -> dict[str, str]:
            async with Client(load_kubeconfig(server.kubeconfig)) as client:
                return await prepare(client, ports)

        addresses = asyncio.run(setup())
        # Round 0 warms up (first connections, caches) and is not counted.
        rounds: list[dict[str, dict[str, float]]] = []
        inside = ("nsenter", "-t", str(container_pid(args.runtime, "loadgen")), "-n")
        for i in range(args.rounds + 1):
            plan = loads(inside, addresses, ingress_port, i, args)
            rounds.append({})
            for path in PATHS:
                waited = wait_for_conntrack_room()
                rounds[-1][path] = run_wrk(plan[path]) | {"waited_for_conntrack_s": waited}
            print(
                f"round {i}: "
                + "  ".join(f"{p} {rounds[-1][p]['per_second']:.0f}/s" for p in PATHS),
                flush=True,
            )
    finally:
        server.stop(timeout=90.0)
        shutil.rmtree(state, ignore_errors=True)
    return {
        "runtime": args.runtime,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "connections": args.connections,
        **summarize(rounds[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=("podman", "docker"), default="podman")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.runtime == "podman" else f"_{args.runtime}"
        args.out = ROOT / "bench" / "results" / f"network{suffix}.json"
    results = run_bench(args)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for path in PATHS:
        r = results[path]
        print(
            f"{path:13} {r['per_second_median']:8.0f} req/s   p99 {r['p99_ms_median']:7.2f} ms"
            f"   p50 {r['p50_ms_median']:6.2f} ms   failures {r['failures']}"
        )
    print(
        f"Service / direct (from a pod): {results['service_vs_direct']:.0%}  (target ≥ 70%)\n"
        f"ingress / direct (from the host): {results['ingress_vs_direct']:.0%}  (target ≥ 50%)"
    )


if __name__ == "__main__":
    main()
