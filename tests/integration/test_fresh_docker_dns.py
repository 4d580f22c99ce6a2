"""The regression test of a bug every new docker user hit: on a dockerd started for the
first time, ``docker network inspect bridge`` states no IPAM gateway, the cluster took
that as "no bridge" and started without cluster DNS, so pods could not resolve Service
names — while CI, on a reused dockerd, passed.

Here a dockerd starts on an **empty data root**, in a network namespace of its own (its
own docker0, iptables tables and loopback, so it cannot disturb the suite's engines; only
the network namespace is switched, with ``nsenter --net``, so cgroups and mounts are the
host's). The test checks the bug's precondition (no stated gateway), imports the busybox
image into that empty engine, runs ``gitops cluster up --runtime docker`` in the same
namespace (the docker runtime has to make its own sandbox image there) and has a pod
resolve and fetch a Service by name. Everything is removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, kubectl_binary
from tests.integration.harness import BUSYBOX, web_deployment

pytestmark = pytest.mark.integration

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


class Netns:
    """A network namespace of the test's own, with loopback up."""

    def __init__(self) -> None:
        self.name = f"gitops-fresh-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(
            ["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True
        )

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.name}", "--"]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _unmount_under(directory: Path) -> None:
    prefix = f"{directory}/"
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(prefix)
    ]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


class FreshDocker:
    """A dockerd on an empty data root inside ``netns``."""

    def __init__(self, netns: Netns, directory: Path) -> None:
        self.netns = netns
        self.dir = directory
        self.socket = directory / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER": DOCKER}
        self.log = directory / "dockerd.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *netns.prefix(),
                    DOCKERD,
                    "--data-root", str(directory / "data"),
                    "--exec-root", str(directory / "exec"),
                    "--pidfile", str(directory / "dockerd.pid"),
                    "-H", f"unix://{self.socket}",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while self.docker("info", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the fresh dockerd did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKER, *args], capture_output=True, text=True, env=self.env, check=check, timeout=120
        )

    def stop(self) -> None:
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "--force", *ids, check=False)
        _stop(self.proc, 30)
        _unmount_under(self.dir)


class NetnsCluster:
    """``gitops cluster up --runtime docker`` inside ``netns``, talking to ``docker``."""

    def __init__(self, netns: Netns, docker: FreshDocker, state_dir: Path) -> None:
        self.netns = netns
        self.state_dir = state_dir
        self.port = free_port()
        self.log = state_dir.parent / "cluster.log"
        state_dir.mkdir()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *netns.prefix(),
                    sys.executable, "-m", "gitops.cli", "cluster", "up",
                    "--runtime", "docker",
                    "--state-dir", str(state_dir),
                    "--port", str(self.port),
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=docker.env, cwd=ROOT,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the cluster exited with {self.proc.returncode}: {self.output()}")
            if "API server listening on" in self.output():  # printed once all started
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster did not become ready: {self.output()}")
            time.sleep(0.5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.state_dir / "kubeconfig")}
        result = subprocess.run(
            [*self.netns.prefix(), kubectl_binary("1.35"), *args],
            input=stdin, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))

    def stop(self) -> int:
        return _stop(self.proc, 90)


@pytest.fixture
def fresh_docker() -> Iterator[FreshDocker]:
    if not Path(DOCKERD).exists():
        pytest.fail("dockerd is missing: scripts/test.sh installs docker.io")
    netns = Netns()
    # A short path: docker's and containerd's unix sockets live under it.
    directory = Path(tempfile.mkdtemp(prefix="gitops-fd-", dir="/tmp"))
    docker: FreshDocker | None = None
    try:
        docker = FreshDocker(netns, directory)
        yield docker
    finally:
        if docker is not None:
            docker.stop()
        netns.delete()
        shutil.rmtree(directory, ignore_errors=True)


def client_pod(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
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


def test_a_cluster_on_a_first_start_dockerd_gives_pods_dns_for_service_names(
    fresh_docker: FreshDocker, tmp_path: Path
) -> None:
    # The bug's precondition: this dockerd has never run before, so its default bridge
    # network states a subnet and no gateway.
    ipam = json.loads(
        fresh_docker.docker(
            "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"
        ).stdout
    )
    assert ipam and all(not c.get("Gateway") for c in ipam), ipam
    assert fresh_docker.docker("images", "-q").stdout.split() == []
    setup = subprocess.run(
        ["bash", "-c", "set -e; source scripts/engines.sh; ensure_busybox_images"],
        cwd=ROOT, env=fresh_docker.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr

    cluster = NetnsCluster(fresh_docker.netns, fresh_docker, tmp_path / "state")
    try:
        out = cluster.output()
        assert "warning:" not in out, out
        assert "cluster DNS: 172.17.0.1:53" in out, out
        web = web_deployment("web", 1)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        # busybox's nslookup exits 1 when any search domain gives NXDOMAIN, even after
        # it printed the answer: the fetch by name is what must succeed.
        probe = (
            "for i in $(seq 1 90); do "
            "if wget -qO- http://web/; then nslookup web; exit 0; fi; sleep 1; done; "
            "nslookup web; exit 1"
        )
        cluster.apply(web, service, client_pod("client", probe))
        deadline = time.monotonic() + 150
        phase = ""
        while time.monotonic() < deadline:
            phase = cluster.kubectl("get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(1)
        logs = cluster.kubectl("logs", "client", check=False).stdout
        assert phase == "Succeeded", f"{phase}: {logs}\n{cluster.output()}"
        assert logs.startswith("web-"), logs  # the page names the serving pod
        assert "web.default.svc.cluster.local" in logs, logs
        # The docker runtime made its own sandbox image in the empty engine.
        assert (
            fresh_docker.docker(
                "image", "inspect", "localhost/gitops-pause:1", check=False
            ).returncode
            == 0
        )
    finally:
        code = cluster.stop()
    assert code == 0, cluster.output()
