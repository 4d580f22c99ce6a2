"""The networking ``gitops cluster up`` wires in, on the fake runtime (no containers, no
iptables): the ingress controller serves Ingresses on ``--ingress-port`` and reports its
address on them, the default IngressClass and the ``kube-dns`` Service are created, and a
taken ingress port stops the cluster with a clear error. The backend the Ingress routes
to is served on the host's container-bridge address (EndpointSlices refuse loopback)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client
from runtime.network.wiring import kube_dns_slice
from tests.conftest import free_port
from tests.integration.harness import BRIDGES, bridge_address, not_found, run, started, until
from tests.integration.netharness import http_get

pytestmark = pytest.mark.integration


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"backend saw {self.path} for {self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[tuple[str, int]]:
    address = bridge_address()
    if address is None:
        pytest.fail(
            f"no container bridge ({', '.join(BRIDGES)}) to put the backend on: run scripts/test.sh, which "
            "starts dockerd (docker0)"
        )
    server = http.server.ThreadingHTTPServer((address, 0), _Named)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def endpoint_slice(name: str, address: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def ingress(name: str, service_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {
            "rules": [
                {
                    "host": "shop.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": service_name, "port": {"number": 80}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }


def test_an_ingress_routes_host_requests_to_its_service_and_reports_its_address(
    tmp_path: Path, backend: tuple[str, int]
) -> None:
    ingress_port = free_port()
    with started(
        tmp_path / "cluster",
        controllers="none",
        extra_args=("--ingress-port", str(ingress_port)),
    ) as proc:

        async def body(client: Client) -> None:
            await client.create("v1", "services", service("web"), namespace="default")
            await client.create(
                "discovery.k8s.io/v1",
                "endpointslices",
                endpoint_slice("web", *backend),
                namespace="default",
            )
            await client.create(
                "networking.k8s.io/v1", "ingresses", ingress("shop", "web"), namespace="default"
            )

            async def routed() -> str | None:
                status, text = await asyncio.to_thread(
                    http_get, ingress_port, "shop.example", "/cart"
                )
                return text if status == 200 else None

            text = await until("the ingress to route to the backend", routed, timeout=30)
            assert text == "backend saw /cart for shop.example\n"
            status, _ = await asyncio.to_thread(http_get, ingress_port, "other.example", "/")
            assert status == 404

            cls = await client.get("networking.k8s.io/v1", "ingressclasses", "builtin")
            assert cls["spec"]["controller"] == "gitops.dev/ingress-builtin"
            annotations = cls["metadata"]["annotations"]
            assert annotations["ingressclass.kubernetes.io/is-default-class"] == "true"

            async def reported() -> Any:
                ing = await client.get(
                    "networking.k8s.io/v1", "ingresses", "shop", namespace="default"
                )
                return ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress")

            assert await until("the Ingress status", reported, timeout=30) == [{"ip": "127.0.0.1"}]

            dns = await until(
                "the kube-dns Service",
                lambda: client.get("v1", "services", "kube-dns", namespace="kube-system"),
                tolerate=not_found,
            )
            assert dns["spec"]["clusterIP"] == "10.43.0.10"
            assert dns["spec"]["type"] == "ClusterIP"
            assert "selector" not in dns["spec"]
            assert sorted((p["name"], p["protocol"], p["port"]) for p in dns["spec"]["ports"]) == [
                ("dns", "UDP", 53),
                ("dns-tcp", "TCP", 53),
            ]

        run(proc, body)
        log_path = proc.log_path
        assert log_path is not None

        async def banner() -> bool:
            return f"ingress http: 127.0.0.1:{ingress_port}" in log_path.read_text()

        asyncio.run(until("the ingress line of the banner", banner, timeout=30))
    # The listener is gone with the cluster.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", ingress_port)) != 0


def test_the_cluster_dns_ip_follows_the_service_cidr_and_its_slice_is_valid(tmp_path: Path) -> None:
    with started(
        tmp_path / "cluster", controllers="none", extra_args=("--service-cidr", "10.96.0.0/16")
    ) as proc:

        async def body(client: Client) -> None:
            dns = await until(
                "the kube-dns Service",
                lambda: client.get("v1", "services", "kube-dns", namespace="kube-system"),
                tolerate=not_found,
            )
            assert dns["spec"]["clusterIP"] == "10.96.0.10"
            # The slice an engine cluster writes for it passes validation.
            created = await client.create(
                "discovery.k8s.io/v1",
                "endpointslices",
                kube_dns_slice("10.88.0.1", 53),
                namespace="kube-system",
            )
            assert created["endpoints"][0]["addresses"] == ["10.88.0.1"]

        run(proc, body)


def test_a_taken_ingress_port_stops_the_cluster_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gitops.cli",
                "cluster",
                "up",
                "--state-dir",
                str(tmp_path / "cluster"),
                "--port",
                str(free_port()),
                "--runtime",
                "fake",
                "--controllers",
                "none",
                "--ingress-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"error: cannot listen for ingress on 127.0.0.1 port(s) [{port}]" in out.stderr
