"""``gitops up`` — the main job — on the bundled examples/repo with real containers, on
podman AND on docker: the built-in cluster and the sync service start in one process,
the ``hello`` app's pods become Ready (their readiness probe fetches the page
served from the Git-committed ConfigMap), Ctrl-C (SIGINT) stops everything and leaves no container behind, and a
second ``gitops up`` on the same state directory resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, kubectl_binary

pytestmark = pytest.mark.integration

DEADLINE = 180.0


class Up:
    def __init__(self, state_dir: Path, engine: str, run: int) -> None:
        self.state_dir = state_dir
        self.engine = engine
        self.port = free_port()
        self.log = (state_dir.parent / f"up-{engine}-{run}.log").open("w")
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gitops.cli",
                "up",
                "--runtime",
                self.engine,
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "10s",
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.state_dir / "cluster" / "kubeconfig")}
        return subprocess.run(
            [kubectl_binary("1.35"), *args], capture_output=True, text=True, env=env, timeout=60
        )

    def wait_ready(
        self, namespace: str, replicas: int, not_containers: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        """Ready pods, with containers other than ``not_containers`` (after a restart
        the stored pods still say Ready until their kubelet has synced them again)."""
        deadline = time.monotonic() + DEADLINE
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            out = self.kubectl("get", "pods", "-n", namespace, "-o", "json")
            if out.returncode == 0:
                pods = json.loads(out.stdout)["items"]
                ready = [p for p in pods if _ready(p) and not (_containers(p) & not_containers)]
                last = f"{len(ready)}/{len(pods)} ready"
                if len(ready) >= replicas:
                    return ready
            time.sleep(1)
        raise AssertionError(f"pods of {namespace} not ready: {last}\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]


def _containers(pod: dict[str, Any]) -> set[str]:
    return {
        str(c.get("containerID") or "")
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    } - {""}


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_gitops_up_runs_the_examples_and_ctrl_c_leaves_nothing_behind(
    tmp_path: Path, engine: str
) -> None:
    state = tmp_path / "state"
    up = Up(state, engine, 1)
    up.start()
    try:
        # Ready means the readiness probe fetched "/" from httpd, which serves the
        # page of the ConfigMap generated from apps/hello/index.html.
        first = up.wait_ready("hello", 2)
        page = up.kubectl("get", "cm", "-n", "hello", "-o", "json")
        assert "Hello from GitOps" in page.stdout
        status = up.kubectl(
            "get", "deploy", "hello", "-n", "hello", "-o", "jsonpath={.status.readyReplicas}"
        )
        assert status.stdout == "2"
        # The reconciler applied all this as its own least-privilege identity: a client
        # certificate for gitops:reconciler bound to the root project's ClusterRole.
        reconciler = state / "cluster" / "components" / "gitops-reconciler.kubeconfig"
        who = json.loads(
            up.kubectl("--kubeconfig", str(reconciler), "auth", "whoami", "-o", "json").stdout
        )
        assert who["status"]["userInfo"]["username"] == "gitops:reconciler"
        assert "system:masters" not in who["status"]["userInfo"]["groups"]
        as_reconciler = ("--as=gitops:reconciler", "--as-group=gitops:reconcilers")
        may = up.kubectl("auth", "can-i", "create", "deployments.apps", "-n", "x", *as_reconciler)
        assert may.stdout.strip() == "yes"
        exec_ = up.kubectl(
            "auth", "can-i", "create", "pods", "--subresource=exec", "-n", "hello", *as_reconciler
        )
        assert exec_.stdout.strip() == "no"
        nodes = up.kubectl(
            "auth", "can-i", "patch", "nodes", "--subresource=status", *as_reconciler
        )
        assert nodes.stdout.strip() == "no"
    finally:
        code = up.stop()
    assert code == 0, up.output()
    assert "shutting down" in up.output()
    leftovers = subprocess.run(
        [
            engine,
            "ps",
            "-a",
            "--filter",
            "label=gitops.builtin/pod-namespace=hello",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert leftovers == [], f"containers left behind: {leftovers}"

    again = Up(state, engine, 2)
    again.start()
    try:
        # The stored pods start again with the cluster, in new containers.
        old = frozenset().union(*(_containers(p) for p in first))
        again.wait_ready("hello", 2, not_containers=old)
    finally:
        assert again.stop() == 0, again.output()
