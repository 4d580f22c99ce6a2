"""Real kubectl against the OpenAPI documents of :mod:`runtime.server.openapi`.

A throwaway plain-HTTP server (here, not in runtime/) answers discovery from a
``Registry``, ``/openapi/v2`` (JSON or gnostic protobuf by ``Accept``) and
``/openapi/v3``, 404 for objects it does not have, and records every request. kubectl
1.20 (``KUBECTL_1_20``, else Debian's at /tmp/kc/root/usr/bin/kubectl) must explain
kinds, validate manifests on ``apply --validate`` (reporting unknown fields) and compute
client-side apply patches from the schema. Modern kubectl (``KUBECTL_MODERN``, else the
1.32 one of the Cloud SDK) must explain kinds from ``/openapi/v3``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.api.registry import CustomInfo, Registry, ResourceInfo
from runtime.server.openapi import OpenAPI
from tests.conftest import find_kubectl

pytestmark = pytest.mark.integration


KUBECTL_1_20 = find_kubectl("1.20")
KUBECTL_MODERN = find_kubectl("1.35")

# A missing binary fails these tests (scripts/test.sh installs both); it never skips them.
needs_kubectl_1_20 = pytest.mark.usefixtures("kubectl_1_20")
needs_kubectl_modern = pytest.mark.usefixtures("kubectl_modern")

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CronTab runs a command on a schedule.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What to run and when.",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "description": "The schedule, cron syntax."},
                "image": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 1},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string", "nullable": True},
            },
        },
        "status": {"type": "object", "properties": {"lastRun": {"type": "string"}}},
    },
}


def crontab_infos() -> list[ResourceInfo]:
    return [
        ResourceInfo(
            group="stable.example.com",
            version="v1",
            plural="crontabs",
            kind="CronTab",
            namespaced=True,
            short_names=("ct",),
            subresources=frozenset({"status"}),
            custom=CustomInfo(schema=CRONTAB_SCHEMA, crd_name="crontabs.stable.example.com"),
        )
    ]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    registry: Registry
    openapi: OpenAPI
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> object
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    # --- discovery documents ----------------------------------------------------------
    def discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        if path == "/apis":
            groups = []
            for group, (versions, preferred) in self.registry.groups().items():
                if not group:
                    continue
                groups.append(
                    {
                        "name": group,
                        "versions": [
                            {"groupVersion": f"{group}/{v}", "version": v} for v in versions
                        ],
                        "preferredVersion": {
                            "groupVersion": f"{group}/{preferred}",
                            "version": preferred,
                        },
                    }
                )
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/version":
            return {"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64"}
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        infos = self.registry.in_group_version(group, version)
        if not infos:
            return None
        resources = []
        for info in infos:
            resources.append(
                {
                    "name": info.plural,
                    "singularName": info.singular_name,
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": list(info.verbs),
                    "shortNames": list(info.short_names),
                    "categories": list(info.categories),
                }
            )
            for sub in sorted(info.subresources):
                resources.append(
                    {
                        "name": f"{info.plural}/{sub}",
                        "singularName": "",
                        "namespaced": info.namespaced,
                        "kind": info.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj).encode())

        def _not_found(self, path: str) -> None:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            self._json(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f'"{name}" not found',
                    "reason": "NotFound",
                    "details": {"name": name},
                    "code": 404,
                },
            )

        def _record(self) -> tuple[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append(
                Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            path, _, query = self.path.partition("?")
            return path, query

        def do_GET(self) -> None:
            path, _ = self._record()
            if path == "/openapi/v2":
                body, content_type = server.openapi.v2_for_accept(self.headers.get("Accept"))
                self._send(200, body, content_type)
                return
            if path == "/openapi/v3":
                self._send(200, server.openapi.v3_index())
                return
            if path.startswith("/openapi/v3/"):
                doc = server.openapi.v3_group_version(path)
                if doc is None:
                    self._not_found(path)
                else:
                    self._send(200, doc)
                return
            found = server.discovery(path.rstrip("/") or "/")
            if found is not None:
                self._json(200, found)
                return
            obj = server.objects.get(path)
            if obj is not None:
                self._json(200, obj)
                return
            self._not_found(path)

        def do_PATCH(self) -> None:
            path, _ = self._record()
            obj = server.objects.get(path)
            if obj is None:
                self._not_found(path)
            else:
                self._json(200, obj)

        def do_POST(self) -> None:
            self._record()
            self._json(201, json.loads(server.requests[-1].body or b"{}"))

    return Handler


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeServer, Path]]:
    registry = Registry()
    registry.set_custom("crontabs.stable.example.com", crontab_infos())
    state = FakeServer(registry, OpenAPI(registry))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:{state.port}
users:
- name: fake
  user: {{}}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
"""
    )
    try:
        yield state, kubeconfig
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def kubectl(
    binary: str, kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    home = kubeconfig.parent
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "KUBECTL_PLUGINS_PATH": "",
    }
    return subprocess.run(
        [binary, f"--cache-dir={home / 'cache'}", "--request-timeout=30s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        resources:
          limits: {cpu: 500m, memory: 128Mi}
"""

BAD_DEPLOYMENT = DEPLOYMENT.replace("  replicas: 2\n", "  replicas: 2\n  replicaz: 3\n")

CRONTAB = """apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: "0 3 * * *"
  image: busybox
  replicas: 1
  extra: {anything: [1, 2]}
  note: null
"""


# --- kubectl 1.20 ---------------------------------------------------------------------


@needs_kubectl_1_20
def test_kubectl_1_20_explains_a_nested_field_of_a_builtin_kind(
    fake: tuple[FakeServer, Path],
) -> None:
    state, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    result = kubectl(KUBECTL_1_20, kubeconfig, "explain", "deployment.spec.strategy")
    assert result.returncode == 0, result.stderr
    assert "KIND:     Deployment" in result.stdout
    assert "RESOURCE: strategy <Object>" in result.stdout
    assert "rollingUpdate\t<Object>" in result.stdout
    assert "type\t<string>" in result.stdout
    openapi = [r for r in state.requests if r.path.startswith("/openapi/v2")]
    assert openapi and "protobuf" in openapi[0].headers.get("accept", "")


@needs_kubectl_1_20
def test_kubectl_1_20_explains_a_custom_resource(fake: tuple[FakeServer, Path]) -> None:
    _, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    result = kubectl(KUBECTL_1_20, kubeconfig, "explain", "crontabs.spec")
    assert result.returncode == 0, result.stderr
    assert "cronSpec\t<string> -required-" in result.stdout
    assert "What to run and when." in result.stdout


@needs_kubectl_1_20
def test_kubectl_1_20_validates_and_dry_run_applies_a_valid_deployment(
    fake: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    _, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(DEPLOYMENT)
    result = kubectl(
        KUBECTL_1_20,
        kubeconfig,
        "apply",
        "--dry-run=client",
        "--validate=true",
        "-f",
        str(manifest),
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/web created (dry run)" in result.stdout


@needs_kubectl_1_20
def test_kubectl_1_20_reports_an_unknown_field_as_a_validation_error(
    fake: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    _, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_DEPLOYMENT)
    result = kubectl(KUBECTL_1_20, kubeconfig, "apply", "--dry-run=client", "-f", str(manifest))
    assert result.returncode != 0
    assert "ValidationError(Deployment.spec)" in result.stderr
    assert 'unknown field "replicaz" in io.k8s.api.apps.v1.DeploymentSpec' in result.stderr


@needs_kubectl_1_20
def test_kubectl_1_20_reports_a_missing_required_field(
    fake: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    _, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    manifest = tmp_path / "noselector.yaml"
    manifest.write_text(DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", ""))
    result = kubectl(KUBECTL_1_20, kubeconfig, "apply", "--dry-run=client", "-f", str(manifest))
    assert result.returncode != 0
    assert 'missing required field "selector" in io.k8s.api.apps.v1.DeploymentSpec' in result.stderr


@needs_kubectl_1_20
def test_kubectl_1_20_validates_custom_resources_against_the_crd_schema(
    fake: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    _, kubeconfig = fake
    assert KUBECTL_1_20 is not None
    good = tmp_path / "crontab.yaml"
    good.write_text(CRONTAB)
    result = kubectl(KUBECTL_1_20, kubeconfig, "apply", "--dry-run=client", "-f", str(good))
    assert result.returncode == 0, result.stderr
    assert "crontab.stable.example.com/nightly created (dry run)" in result.stdout

    bad = tmp_path / "bad-crontab.yaml"
    bad.write_text(CRONTAB.replace("  image: busybox\n", "  imagge: busybox\n"))
    result = kubectl(KUBECTL_1_20, kubeconfig, "apply", "--dry-run=client", "-f", str(bad))
    assert result.returncode != 0
    assert 'unknown field "imagge"' in result.stderr


def _live_copy(state: FakeServer, manifest: str, path: str, namespace: str = "default") -> None:
    """Store ``manifest`` as the live object at ``path``, as if applied by kubectl."""
    applied = yaml.safe_load(manifest)
    applied["metadata"]["namespace"] = namespace
    live = json.loads(json.dumps(applied))
    live["metadata"].update(
        {
            "uid": "0d7f3f7e-1111-2222-3333-444455556666",
            "resourceVersion": "7",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)
            },
        }
    )
    state.objects[path] = live


def _patches(state: FakeServer, path: str) -> list[Request]:
    return [r for r in state.requests if r.method == "PATCH" and r.path.startswith(path + "?")]


def check_client_side_apply_of_a_deployment(
    binary: str, state: FakeServer, kubeconfig: Path
) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    _live_copy(state, DEPLOYMENT.replace("nginx:1.27", "nginx:1.26"), path)
    manifest = kubeconfig.parent / "deployment.yaml"
    manifest.write_text(DEPLOYMENT)
    result = kubectl(binary, kubeconfig, "apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "error calculating patch" not in result.stderr
    patches = _patches(state, path)
    assert len(patches) == 1, [(r.method, r.path) for r in state.requests]
    assert patches[0].headers["content-type"] == "application/strategic-merge-patch+json"
    pod_spec = json.loads(patches[0].body)["spec"]["template"]["spec"]
    # containers merge by name: only the changed field is sent, keyed by the merge key.
    assert pod_spec["$setElementOrder/containers"] == [{"name": "web"}]
    assert pod_spec["containers"] == [{"image": "nginx:1.27", "name": "web"}]


def check_client_side_apply_of_a_custom_resource(
    binary: str, state: FakeServer, kubeconfig: Path
) -> None:
    path = "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly"
    _live_copy(state, CRONTAB.replace("busybox", "alpine"), path)
    manifest = kubeconfig.parent / "crontab.yaml"
    manifest.write_text(CRONTAB)
    result = kubectl(binary, kubeconfig, "apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    patches = _patches(state, path)
    assert len(patches) == 1, [(r.method, r.path) for r in state.requests]
    # Custom resources take no strategic merge patch: kubectl must fall back to merge patch.
    assert patches[0].headers["content-type"] == "application/merge-patch+json"
    assert json.loads(patches[0].body)["spec"] == {"image": "busybox"}


@needs_kubectl_1_20
def test_kubectl_1_20_client_side_apply_computes_a_strategic_patch_from_the_schema(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_1_20 is not None
    check_client_side_apply_of_a_deployment(KUBECTL_1_20, *fake)


@needs_kubectl_1_20
def test_kubectl_1_20_client_side_apply_sends_a_merge_patch_for_a_custom_resource(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_1_20 is not None
    check_client_side_apply_of_a_custom_resource(KUBECTL_1_20, *fake)


# --- modern kubectl -------------------------------------------------------------------


@needs_kubectl_modern
def test_modern_kubectl_explains_a_builtin_kind_from_openapi_v3(
    fake: tuple[FakeServer, Path],
) -> None:
    state, kubeconfig = fake
    assert KUBECTL_MODERN is not None
    result = kubectl(KUBECTL_MODERN, kubeconfig, "explain", "deployment.spec.strategy")
    assert result.returncode == 0, result.stderr
    assert "FIELD: strategy <DeploymentStrategy>" in result.stdout
    assert "rollingUpdate\t<RollingUpdateDeployment>" in result.stdout
    assert any(r.path.startswith("/openapi/v3/apis/apps/v1?hash=") for r in state.requests)


@needs_kubectl_modern
def test_modern_kubectl_explains_a_custom_resource_from_openapi_v3(
    fake: tuple[FakeServer, Path],
) -> None:
    _, kubeconfig = fake
    assert KUBECTL_MODERN is not None
    result = kubectl(KUBECTL_MODERN, kubeconfig, "explain", "crontabs.spec", "--recursive")
    assert result.returncode == 0, result.stderr
    assert "cronSpec\t<string> -required-" in result.stdout
    assert "note\t<string>" in result.stdout


@needs_kubectl_modern
def test_modern_kubectl_client_side_apply_computes_a_strategic_patch_from_the_schema(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_MODERN is not None
    check_client_side_apply_of_a_deployment(KUBECTL_MODERN, *fake)


@needs_kubectl_modern
def test_modern_kubectl_client_side_apply_sends_a_merge_patch_for_a_custom_resource(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_MODERN is not None
    check_client_side_apply_of_a_custom_resource(KUBECTL_MODERN, *fake)


def check_server_dry_run(binary: str, state: FakeServer, kubeconfig: Path, *flags: str) -> str:
    """``apply --dry-run=server``: kubectl must find ``dryRun`` on the PATCH operation."""
    manifest = kubeconfig.parent / "both.yaml"
    manifest.write_text(DEPLOYMENT + "---\n" + CRONTAB)
    result = kubectl(binary, kubeconfig, "apply", "--dry-run=server", *flags, "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "doesn't support" not in result.stderr
    posts = [r.path for r in state.requests if r.method == "POST"]
    assert len(posts) == 2, posts
    assert all("dryRun=All" in p for p in posts), posts
    return " ".join(posts)


@needs_kubectl_1_20
def test_kubectl_1_20_finds_server_dry_run_support_in_the_paths(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_1_20 is not None
    check_server_dry_run(KUBECTL_1_20, *fake)


@needs_kubectl_modern
def test_modern_kubectl_finds_dry_run_and_field_validation_support_in_openapi_v3(
    fake: tuple[FakeServer, Path],
) -> None:
    assert KUBECTL_MODERN is not None
    posts = check_server_dry_run(KUBECTL_MODERN, *fake, "--validate=strict")
    assert posts.count("fieldValidation=Strict") == 2, posts
