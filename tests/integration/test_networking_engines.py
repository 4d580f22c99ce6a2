"""Service networking end to end on real containers, on podman AND on docker: with
`gitops cluster up --runtime podman|docker`, a pod reaches another Deployment's pods
through its Service by short name, ``name.namespace``, the full
``name.namespace.svc.cluster.local`` and the cluster IP (the cluster DNS answers the
names, the service proxy DNATs the IPs); a Service of 3 replicas spreads requests over
all 3; the host reaches them through an Ingress on ``--ingress-port``; and the
cluster's stop leaves no ``GITOPS-`` iptables chain behind.

Clients are pods whose command runs the requests and prints the results (there is no
``kubectl exec``); the test reads them from the pod log. The local busybox image is used
(imagePullPolicy Never); the cluster's stop removes every container, even on failure."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import free_port
from tests.integration import harness
from tests.integration.harness import BUSYBOX, run, started, web_deployment

pytestmark = pytest.mark.integration

NS = "net"
DEADLINE = 120.0

# Any API error only means "not yet" on a slow engine.
until = functools.partial(harness.until, timeout=DEADLINE, step=0.5, tolerate=harness.any_error)


def gitops_chains() -> list[str]:
    """Our chains and the rules jumping to them, in both tables."""
    found: list[str] = []
    for table in ("nat", "filter"):
        out = subprocess.run(
            ["iptables", "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=True
        )
        found += [line for line in out.stdout.splitlines() if "GITOPS" in line]
    return found


def web_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def client_pod(name: str, urls: list[str], repeat: int = 1) -> dict[str, Any]:
    """A pod that fetches every URL ``repeat`` times, printing ``GOT <url> <body>`` (or
    ``FAILED <url> <error>``) per request, then exits."""
    script = (
        "cat /etc/resolv.conf | sed 's/^/RESOLV /'; "
        f"i=0; while [ $i -lt {repeat} ]; do i=$((i+1)); "
        f"for u in {' '.join(urls)}; do "
        'if out=$(busybox timeout 10 wget -qO- "$u" 2>&1); then echo "GOT $u $out"; '
        'else echo "FAILED $u $out"; fi; done; done'
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "client",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                }
            ],
        },
    }


def web_ingress() -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "web.example",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ]
        },
    }


def fetch(port: int, host: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


async def ready_endpoints(client: Client, service: str) -> list[str]:
    slices = await client.list(
        "discovery.k8s.io/v1",
        "endpointslices",
        NS,
        labelSelector=f"kubernetes.io/service-name={service}",
    )
    return [
        ep["addresses"][0]
        for s in slices.get("items") or []
        for ep in s.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready") is not False
    ]


async def ready_pod_names(client: Client, app: str) -> set[str]:
    pods = await client.list("v1", "pods", NS, labelSelector=f"app={app}")
    return {
        p["metadata"]["name"]
        for p in pods.get("items") or []
        if harness.running_and_ready(p) and not p["metadata"].get("deletionTimestamp")
    }


async def run_client(client: Client, pod: dict[str, Any]) -> list[str]:
    """Run a client pod to completion; its output lines."""
    name = pod["metadata"]["name"]
    await client.create("v1", "pods", pod, namespace=NS)

    async def finished() -> bool:
        got = await client.get("v1", "pods", name, namespace=NS)
        return got.get("status", {}).get("phase") in ("Succeeded", "Failed")

    await until(f"client pod {name} to finish", finished)
    raw = await client.get_raw(f"/api/v1/namespaces/{NS}/pods/{name}/log")
    return raw.decode().splitlines()


def results(lines: list[str]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for line in lines:
        verdict, _, rest = line.partition(" ")
        if verdict in ("GOT", "FAILED"):
            url, _, body = rest.partition(" ")
            out.append((verdict, url, body.strip()))
    return out


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_pods_reach_services_by_name_and_cluster_ip_and_stop_leaves_no_rules(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ingress_port = free_port()
    with started(
        tmp_path_factory.mktemp(f"net-{engine}"),
        runtime=engine,
        start_timeout=90.0,
        stop_timeout=90.0,
        extra_args=("--ingress-port", str(ingress_port)),
    ) as proc:

        async def body(client: Client) -> None:
            await client.create(
                "v1",
                "namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            )
            for name in ("web", "api"):
                await client.create("apps/v1", "deployments", web_deployment(name, 1), namespace=NS)
                await client.create("v1", "services", web_service(name), namespace=NS)
            for name in ("web", "api"):
                await until(
                    f"a ready endpoint of {name}", lambda n=name: ready_endpoints(client, n)
                )
            assert gitops_chains(), "the service proxy wrote no rules"
            svc = await client.get("v1", "services", "web", namespace=NS)
            ip = svc["spec"]["clusterIP"]
            (web_pod,) = await until("the web pod", lambda: ready_pod_names(client, "web"))
            (api_pod,) = await until("the api pod", lambda: ready_pod_names(client, "api"))

            urls = [
                "http://web",
                f"http://web.{NS}",
                f"http://web.{NS}.svc.cluster.local",
                f"http://{ip}",
                "http://api",
            ]
            lines = await run_client(client, client_pod("by-name", urls))
            print("\n".join(lines))
            assert "RESOLV nameserver 10.43.0.10" in lines, lines
            search = f"RESOLV search {NS}.svc.cluster.local svc.cluster.local cluster.local"
            assert any(line.startswith(search) for line in lines), lines
            assert "RESOLV options ndots:5" in lines, lines
            assert results(lines) == [
                ("GOT", urls[0], web_pod),
                ("GOT", urls[1], web_pod),
                ("GOT", urls[2], web_pod),
                ("GOT", urls[3], web_pod),
                ("GOT", urls[4], api_pod),
            ], lines

            await client.patch(
                "apps/v1", "deployments", "web", {"spec": {"replicas": 3}}, namespace=NS
            )

            async def three_ready() -> set[str] | None:
                names = await ready_pod_names(client, "web")
                eps = await ready_endpoints(client, "web")
                return names if len(names) == 3 and len(eps) == 3 else None

            replicas = await until("3 ready web replicas", three_ready)
            lines = await run_client(client, client_pod("spread", ["http://web"], repeat=30))
            got = results(lines)
            print("\n".join(lines))
            assert len(got) == 30 and all(v == "GOT" for v, _, _ in got), lines
            assert {b for _, _, b in got} == replicas, lines

            # The host reaches the pods through an Ingress.
            await client.create("networking.k8s.io/v1", "ingresses", web_ingress(), namespace=NS)

            async def via_ingress() -> str | None:
                status, text = await asyncio.to_thread(fetch, ingress_port, "web.example")
                return text.strip() if status == 200 else None

            assert await until("the ingress to reach a web pod", via_ingress) in replicas

        run(proc, body)
    assert gitops_chains() == []
