"""kubectl against the built-in API server, for real: Debian's kubernetes-client 1.20
and a current kubectl 1.35, each against its own server process on loopback with TLS
and a bearer token, driven through the generated kubeconfig."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ClusterProcess, kubectl_binary

pytestmark = pytest.mark.integration
MANIFESTS = Path(__file__).resolve().parent.parent / "testdata" / "manifests"


class Kubectl:
    def __init__(self, binary: str, cluster: ClusterProcess, version: str) -> None:
        self.binary = binary
        self.cluster = cluster
        self.version = version

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.cluster.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(scope="module", params=["1.20", "1.35"])
def kubectl(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubectl]:
    server = ClusterProcess(tmp_path_factory.mktemp(f"cluster-kubectl-{request.param}"))
    server.start()
    try:
        yield Kubectl(kubectl_binary(request.param), server, request.param)
    finally:
        server.stop()


def test_apply_of_a_multi_document_file_creates_every_object_and_reapply_changes_nothing(
    kubectl: Kubectl,
) -> None:
    out = kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml")).stdout
    assert "configmap/settings created" in out
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    again = kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml")).stdout
    assert "configmap/settings unchanged" in again
    assert "deployment.apps/web unchanged" in again
    deploy = kubectl.json("get", "deployment", "web")
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%",
        "maxUnavailable": "25%",
    }
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]


def test_client_side_apply_of_a_change_configures_the_object(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    docs = list(yaml.safe_load_all((MANIFESTS / "multi.yaml").read_text()))
    docs[1]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "COLOR", "value": "green"}
    ]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    out = kubectl.run("apply", "-f", str(changed)).stdout
    assert "deployment.apps/web configured" in out
    env = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert env == [{"name": "COLOR", "value": "green"}]
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))


def test_server_side_apply_creates_and_then_reports_conflicts_with_other_managers(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "ssa.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ssa-demo"},
                "data": {"a": "1"},
            }
        )
    )
    out = kubectl.run("apply", "--server-side", "-f", str(manifest)).stdout
    assert "configmap/ssa-demo serverside-applied" in out
    show = [] if kubectl.version == "1.20" else ["--show-managed-fields"]  # hidden since 1.21
    cm = kubectl.json("get", "configmap", "ssa-demo", *show)
    managers = {(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ssa-demo"},
                "data": {"a": "2"},
            }
        )
    )
    conflict = kubectl.run(
        "apply", "--server-side", "--field-manager", "other", "-f", str(manifest), check=False
    )
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower()
    forced = kubectl.run(
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        str(manifest),
    )
    assert "serverside-applied" in forced.stdout
    assert kubectl.json("get", "configmap", "ssa-demo")["data"] == {"a": "2"}


def test_get_prints_the_default_table_wide_yaml_json_and_selects_by_label(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    table = kubectl.run("get", "deployments").stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table.split("\n")[1].split()[0] == "web"
    wide = kubectl.run("get", "deployments", "-o", "wide").stdout
    assert "IMAGES" in wide.split("\n")[0] and "localhost/busybox:1.36" in wide
    as_yaml = yaml.safe_load(kubectl.run("get", "configmap", "settings", "-o", "yaml").stdout)
    assert as_yaml["data"] == {"color": "blue"}
    listed = kubectl.json("get", "configmaps,services", "-l", "app=demo")
    assert sorted(item["metadata"]["name"] for item in listed["items"]) == ["settings", "web"]
    everywhere = kubectl.run("get", "namespaces").stdout
    for ns in ("default", "kube-system", "kube-public"):
        assert ns in everywhere
    all_ns = kubectl.run("get", "configmaps", "-A").stdout
    assert all_ns.split("\n")[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "settings" in all_ns


def test_get_watch_receives_events_for_objects_created_after_it_started(kubectl: Kubectl) -> None:
    proc = subprocess.Popen(
        [kubectl.binary, "get", "configmaps", "-w", "--output-watch-events", "-l", "watched=yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.cluster.env(),
    )
    try:
        time.sleep(1.0)
        kubectl.run("create", "configmap", "watched-1", "--from-literal=a=b")
        kubectl.run("label", "configmap", "watched-1", "watched=yes")
        kubectl.run("delete", "configmap", "watched-1")
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any("DELETED" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    events = [line.split()[0] for line in lines if "watched-1" in line]
    assert events == ["ADDED", "DELETED"]


def test_diff_exits_zero_when_unchanged_and_one_when_changed(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    same = kubectl.run("diff", "-f", str(MANIFESTS / "multi.yaml"), check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    docs = list(yaml.safe_load_all((MANIFESTS / "multi.yaml").read_text()))
    docs[0]["data"]["color"] = "red"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    diff = kubectl.run("diff", "-f", str(changed), check=False)
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "-  color: blue" in diff.stdout and "+  color: red" in diff.stdout
    assert kubectl.json("get", "configmap", "settings")["data"]["color"] == "blue"


def test_patch_works_with_strategic_merge_and_json_patches(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    kubectl.run(
        "patch",
        "deployment",
        "web",
        "-p",
        json.dumps(
            {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "web", "image": "localhost/busybox:1.37"}]}
                    }
                }
            }
        ),
    )
    containers = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "localhost/busybox:1.37")]
    assert containers[0]["env"] == [{"name": "COLOR", "value": "blue"}]
    kubectl.run("patch", "configmap", "settings", "--type", "merge", "-p", '{"data":{"size":"xl"}}')
    kubectl.run(
        "patch",
        "configmap",
        "settings",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/data/color","value":"teal"}]',
    )
    assert kubectl.json("get", "configmap", "settings")["data"] == {"color": "teal", "size": "xl"}
    bad = kubectl.run(
        "patch",
        "configmap",
        "settings",
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/data/color","value":"nope"}]',
        check=False,
    )
    assert bad.returncode != 0
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))


def test_label_annotate_and_scale_change_the_object(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    kubectl.run("label", "deployment", "web", "team=blue", "--overwrite")
    kubectl.run("annotate", "deployment", "web", "owner=ops", "--overwrite")
    kubectl.run("scale", "deployment", "web", "--replicas=5")
    deploy = kubectl.json("get", "deployment", "web")
    assert deploy["metadata"]["labels"]["team"] == "blue"
    assert deploy["metadata"]["annotations"]["owner"] == "ops"
    assert deploy["spec"]["replicas"] == 5
    assert deploy["metadata"]["generation"] >= 2
    kubectl.run("label", "deployment", "web", "team-")
    assert "team" not in kubectl.json("get", "deployment", "web")["metadata"]["labels"]


def test_replace_of_an_edited_object_updates_it_and_a_stale_one_conflicts(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "multi.yaml"))
    cm = kubectl.json("get", "configmap", "settings")
    cm["data"]["edited"] = "yes"
    kubectl.run("replace", "-f", "-", stdin=json.dumps(cm))
    assert kubectl.json("get", "configmap", "settings")["data"]["edited"] == "yes"
    stale = kubectl.run("replace", "-f", "-", stdin=json.dumps(cm), check=False)
    assert stale.returncode != 0
    assert "the object has been modified" in stale.stderr


def test_create_namespace_then_objects_in_it_and_delete_with_orphan_cascade(
    kubectl: Kubectl,
) -> None:
    kubectl.run("create", "namespace", "team-a")
    kubectl.run("create", "configmap", "inside", "-n", "team-a", "--from-literal=k=v")
    assert kubectl.json("get", "configmap", "inside", "-n", "team-a")["data"] == {"k": "v"}
    out = kubectl.run("delete", "configmap", "inside", "-n", "team-a", "--cascade=orphan").stdout
    assert 'configmap "inside" deleted' in out
    missing = kubectl.run("get", "configmap", "inside", "-n", "team-a", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    nowhere = kubectl.run(
        "create", "configmap", "x", "-n", "no-such-ns", "--from-literal=a=b", check=False
    )
    assert nowhere.returncode != 0 and 'namespaces "no-such-ns" not found' in nowhere.stderr


def test_an_invalid_object_is_rejected_with_the_field_path(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "broken"},
                "spec": {
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c"}]},
                    },
                },
            }
        )
    )
    out = kubectl.run("apply", "-f", str(bad), check=False)
    assert out.returncode != 0
    assert "spec.template.spec.containers[0].image: Required value" in out.stderr


def test_a_crd_registers_a_resource_whose_objects_are_validated(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-f", str(MANIFESTS / "crd.yaml"))
    kubectl.run("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    out = kubectl.run("apply", "-f", str(MANIFESTS / "widget.yaml")).stdout
    assert "widget.example.com/gadget created" in out
    table = kubectl.run("get", "widgets").stdout.split("\n")
    assert table[0].split() == ["NAME", "SIZE", "REPLICAS"]
    assert table[1].split()[:3] == ["gadget", "small", "3"]
    assert kubectl.json("get", "wd", "gadget")["spec"]["size"] == "small"
    if kubectl.version == "1.20":  # 1.20 validates against /openapi/v2 before sending
        client_side = kubectl.run("apply", "-f", str(MANIFESTS / "bad-widget.yaml"), check=False)
        assert client_side.returncode != 0 and 'expected "integer"' in client_side.stderr
    server_side = kubectl.run(
        "apply", "--validate=false", "-f", str(MANIFESTS / "bad-widget.yaml"), check=False
    )
    assert server_side.returncode != 0
    assert "is invalid" in server_side.stderr
    assert 'spec.size: Unsupported value: "huge"' in server_side.stderr
    assert "spec.replicas: Invalid value" in server_side.stderr
    listed = kubectl.json("get", "widgets.v1beta1.example.com")
    assert [i["apiVersion"] for i in listed["items"]] == ["example.com/v1beta1"]


def test_explain_reads_the_openapi_document(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "deployment.spec.strategy").stdout
    assert "rollingUpdate" in out
