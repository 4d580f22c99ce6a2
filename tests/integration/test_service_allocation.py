"""Service cluster IP and node port allocation in a real ``gitops cluster up --runtime
none`` process, driven by kubectl 1.35 and kubeclient: the ``kubernetes`` Service,
``kubectl create service``, ``kubectl get svc``, server-side apply without a diff, node
port conflicts, allocations that survive a restart, and a tiny ``--service-cidr`` that
runs out."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import kubectl, run

pytestmark = pytest.mark.integration

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080}
"""


def kubectl_result(proc: ClusterProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl 1.35 against ``proc``, whatever its exit code."""
    return subprocess.run(
        [kubectl_binary("1.35"), *args],
        capture_output=True,
        text=True,
        env=proc.env(),
        timeout=60,
    )


def cluster_ip(proc: ClusterProcess, name: str) -> str:
    return kubectl(proc, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}")


def test_services_get_ips_and_node_ports_that_survive_a_restart(tmp_path: Path) -> None:
    cidr = ipaddress.IPv4Network("10.43.0.0/16")
    proc = ClusterProcess(tmp_path / "cluster")
    proc.start()
    try:
        assert cluster_ip(proc, "kubernetes") == "10.43.0.1"
        kubectl(proc, "create", "service", "clusterip", "x", "--tcp=80:8080")
        ip = cluster_ip(proc, "x")
        assert ipaddress.IPv4Address(ip) in cidr and ip != "10.43.0.1"
        table = kubectl(proc, "get", "svc")
        assert table.split("\n")[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]
        rows = {line.split()[0]: line.split() for line in table.strip().split("\n")[1:]}
        assert rows["x"][1:3] == ["ClusterIP", ip] and rows["x"][4] == "80/TCP"
        assert rows["kubernetes"][2] == "10.43.0.1"

        manifest = tmp_path / "web.yaml"
        manifest.write_text(MANIFEST)
        kubectl(proc, "apply", "--server-side", "-f", str(manifest))
        first = kubectl(proc, "get", "svc", "web", "-o", "jsonpath={.metadata.resourceVersion}")
        diff = kubectl_result(proc, "diff", "--server-side", "-f", str(manifest))
        assert diff.returncode == 0, diff.stdout + diff.stderr
        kubectl(proc, "apply", "--server-side", "-f", str(manifest))
        again = kubectl(proc, "get", "svc", "web", "-o", "jsonpath={.metadata.resourceVersion}")
        assert again == first
        node_port = int(
            kubectl(proc, "get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}")
        )
        assert 30000 <= node_port <= 32767

        clash = kubectl_result(
            proc,
            "create",
            "service",
            "nodeport",
            "clash",
            "--tcp=80:80",
            f"--node-port={node_port}",
        )
        assert clash.returncode != 0
        assert (
            f"spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already "
            "allocated" in clash.stderr
        )
        web_ip = cluster_ip(proc, "web")
    finally:
        proc.stop()

    proc.start()
    try:

        async def after_restart(client: Client) -> None:
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "dup"},
                "spec": {"clusterIP": ip, "ports": [{"port": 80}]},
            }
            with pytest.raises(KubeError) as err:
                await client.create("v1", "services", body, "default")
            assert err.value.status == 422
            assert "provided IP is already allocated" in err.value.message
            fresh = []
            for i in range(20):
                out = await client.create(
                    "v1",
                    "services",
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": f"fresh{i}"},
                        "spec": {"ports": [{"port": 80}]},
                    },
                    "default",
                )
                fresh.append(out["spec"]["clusterIP"])
            assert len(set(fresh)) == 20 and not {ip, web_ip, "10.43.0.1"} & set(fresh)
            await client.delete("v1", "services", "x", "default")
            body["metadata"]["name"] = "reuse"
            reused = await client.create("v1", "services", body, "default")
            assert reused["spec"]["clusterIP"] == ip

        run(proc, after_restart)
    finally:
        proc.stop()


def test_a_tiny_service_cidr_runs_out_with_a_clear_error(tmp_path: Path) -> None:
    proc = ClusterProcess(tmp_path / "cluster", extra_args=("--service-cidr", "10.96.0.0/29"))
    proc.start()
    try:
        assert cluster_ip(proc, "kubernetes") == "10.96.0.1"
        for i in range(5):
            kubectl(proc, "create", "service", "clusterip", f"s{i}", "--tcp=80:80")
        ips = {cluster_ip(proc, f"s{i}") for i in range(5)}
        assert ips == {f"10.96.0.{n}" for n in range(2, 7)}
        full = kubectl_result(proc, "create", "service", "clusterip", "more", "--tcp=80:80")
        assert full.returncode != 0
        assert "Internal error occurred: failed to allocate a serviceIP: range is full" in (
            full.stderr
        )
        outside = kubectl_result(
            proc, "create", "service", "clusterip", "far", "--tcp=80:80", "--clusterip=10.43.0.5"
        )
        assert (
            "the provided IP (10.43.0.5) is not in the valid range. The range of valid IPs "
            "is 10.96.0.0/29" in outside.stderr
        )
    finally:
        proc.stop()
