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
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import free_port
from tests.integration.harness import run, started, web_deployment
from tests.integration.netharness import (
    fetch_pod,
    gitops_rules,
    http_get,
    namespace,
    ready_endpoints,
    ready_pods,
    results,
    run_client,
    until,
    web_service,
)

pytestmark = pytest.mark.integration

NS = "net"


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
            await client.create("v1", "namespaces", namespace(NS))
            for name in ("web", "api"):
                await client.create("apps/v1", "deployments", web_deployment(name, 1), namespace=NS)
                await client.create("v1", "services", web_service(name), namespace=NS)
            for name in ("web", "api"):
                await until(
                    f"a ready endpoint of {name}", lambda n=name: ready_endpoints(client, NS, n)
                )
            assert gitops_rules(), "the service proxy wrote no rules"
            svc = await client.get("v1", "services", "web", namespace=NS)
            ip = svc["spec"]["clusterIP"]
            (web_pod,) = await until("the web pod", lambda: ready_pods(client, NS, "app=web"))
            (api_pod,) = await until("the api pod", lambda: ready_pods(client, NS, "app=api"))

            urls = [
                "http://web",
                f"http://web.{NS}",
                f"http://web.{NS}.svc.cluster.local",
                f"http://{ip}",
                "http://api",
            ]
            lines = await run_client(client, NS, fetch_pod("by-name", urls))
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
                names = await ready_pods(client, NS, "app=web")
                eps = await ready_endpoints(client, NS, "web")
                return set(names) if len(names) == 3 and len(eps) == 3 else None

            replicas = await until("3 ready web replicas", three_ready)
            lines = await run_client(client, NS, fetch_pod("spread", ["http://web"], repeat=30))
            got = results(lines)
            print("\n".join(lines))
            assert len(got) == 30 and all(v == "GOT" for v, _, _ in got), lines
            assert {b for _, _, b in got} == replicas, lines

            # The host reaches the pods through an Ingress.
            await client.create("networking.k8s.io/v1", "ingresses", web_ingress(), namespace=NS)

            async def via_ingress() -> str | None:
                status, text = await asyncio.to_thread(http_get, ingress_port, "web.example")
                return text.strip() if status == 200 else None

            assert await until("the ingress to reach a web pod", via_ingress) in replicas

        run(proc, body)
    assert gitops_rules() == []
