"""Pod Security Admission through the real API server over HTTPS with kubectl 1.35: host
access refused in a ``baseline`` namespace with Kubernetes' messages and accepted in a
``privileged`` one, restricted warnings printed by kubectl for a Deployment, the
cluster-wide default on an unlabelled namespace, the warnings of a tightened namespace,
and ``--pod-security-default``."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import started

pytestmark = pytest.mark.integration

ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"


def kubectl(
    proc: ClusterProcess, *args: str, stdin: Any = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary("1.35"), *args],
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        env=proc.env(),
        timeout=60,
    )


def namespace(proc: ClusterProcess, name: str, **labels: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    out = kubectl(proc, "apply", "-f", "-", stdin=body)
    assert out.returncode == 0, out.stderr


def pod(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "nginx:1.27"}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container], **spec},
    }


def host_pods(ns: str) -> dict[str, dict[str, Any]]:
    """The three ways to root on the host the issue names."""
    return {
        "privileged": pod("privileged", ns, container={"securityContext": {"privileged": True}}),
        "root": pod(
            "root",
            ns,
            volumes=[{"name": "host", "hostPath": {"path": "/"}}],
            container={"volumeMounts": [{"name": "host", "mountPath": "/host"}]},
        ),
        "hostnet": pod("hostnet", ns, hostNetwork=True),
    }


def refusal(name: str, detail: str) -> str:
    return (
        f'Error from server (Forbidden): error when creating "STDIN": pods "{name}" is '
        f'forbidden: violates PodSecurity "baseline:latest": {detail}\n'
    )


BASELINE_DETAILS = {
    "privileged": 'privileged (container "c" must not set securityContext.privileged=true)',
    "root": 'hostPath volumes (volume "host")',
    "hostnet": "host namespaces (hostNetwork=true)",
}
RESTRICTED_REST = (
    'allowPrivilegeEscalation != false (container "c" must set '
    "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "
    '"c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
    'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
    'container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")'
)

_APE, _CAPS, _NONROOT, _SECCOMP = RESTRICTED_REST.split("), ")
RESTRICTED_DETAILS = {
    "privileged": f"{BASELINE_DETAILS['privileged']}, {RESTRICTED_REST}",
    "root": f'{_APE}), {_CAPS}), restricted volume types (volume "host" uses restricted volume '
    f'type "hostPath"), {_NONROOT}), {_SECCOMP}',
    "hostnet": f"{BASELINE_DETAILS['hostnet']}, {RESTRICTED_REST}",
}


def test_host_access_is_refused_in_a_baseline_namespace_with_kubernetes_messages(
    cluster: ClusterProcess,
) -> None:
    namespace(cluster, "psa-baseline", **{ENFORCE: "baseline"})
    for name, body in host_pods("psa-baseline").items():
        out = kubectl(cluster, "create", "-f", "-", stdin=body)
        assert out.returncode == 1, out.stdout
        assert out.stderr == refusal(name, BASELINE_DETAILS[name])
    listed = kubectl(cluster, "get", "pods", "-n", "psa-baseline", "-o", "name")
    assert (listed.returncode, listed.stdout) == (0, "")


def test_host_access_is_accepted_in_a_privileged_namespace(cluster: ClusterProcess) -> None:
    namespace(cluster, "psa-privileged", **{ENFORCE: "privileged"})
    for name, body in host_pods("psa-privileged").items():
        out = kubectl(cluster, "create", "-f", "-", stdin=body)
        assert (out.returncode, out.stdout) == (0, f"pod/{name} created\n"), out.stderr
        # The cluster default still warns (warn=restricted) where no warn label says otherwise.
        assert (
            out.stderr
            == f'Warning: would violate PodSecurity "restricted:latest": {RESTRICTED_DETAILS[name]}\n'
        )
    quiet = pod("quiet", "psa-privileged", hostPID=True)
    namespace(cluster, "psa-privileged", **{ENFORCE: "privileged", WARN: "privileged"})
    out = kubectl(cluster, "create", "-f", "-", stdin=quiet)
    assert (out.returncode, out.stdout, out.stderr) == (0, "pod/quiet created\n", "")


def test_a_restricted_violating_deployment_gets_the_warning_printed_by_kubectl(
    cluster: ClusterProcess,
) -> None:
    namespace(cluster, "psa-warn", **{ENFORCE: "privileged", WARN: "restricted"})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "psa-warn"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    }
    out = kubectl(cluster, "apply", "-f", "-", stdin=deployment)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "deployment.apps/web created\n"
    assert (
        out.stderr == f'Warning: would violate PodSecurity "restricted:latest": {RESTRICTED_REST}\n'
    )
    # Never enforced on a workload, even where enforce is restricted: its pods are.
    namespace(cluster, "psa-strict", **{ENFORCE: "restricted"})
    deployment["metadata"]["namespace"] = "psa-strict"
    strict = kubectl(cluster, "apply", "-f", "-", stdin=deployment)
    assert strict.returncode == 0, strict.stderr
    assert strict.stdout == "deployment.apps/web created\n"


def test_the_cluster_default_applies_to_an_unlabelled_namespace(cluster: ClusterProcess) -> None:
    namespace(cluster, "psa-plain")
    refused = kubectl(cluster, "create", "-f", "-", stdin=host_pods("psa-plain")["hostnet"])
    assert refused.stderr == refusal("hostnet", BASELINE_DETAILS["hostnet"])
    plain = kubectl(cluster, "create", "-f", "-", stdin=pod("plain", "psa-plain"))
    assert (plain.returncode, plain.stdout) == (0, "pod/plain created\n")
    assert (
        plain.stderr
        == f'Warning: would violate PodSecurity "restricted:latest": {RESTRICTED_REST}\n'
    )


def test_tightening_a_namespace_warns_about_its_existing_pods(cluster: ClusterProcess) -> None:
    namespace(cluster, "psa-tighten", **{ENFORCE: "privileged", WARN: "privileged"})
    for body in host_pods("psa-tighten").values():
        assert kubectl(cluster, "create", "-f", "-", stdin=body).returncode == 0
    out = kubectl(
        cluster, "label", "namespace", "psa-tighten", f"{ENFORCE}=baseline", "--overwrite"
    )
    assert (out.returncode, out.stdout) == (0, "namespace/psa-tighten labeled\n"), out.stderr
    assert out.stderr == (
        'Warning: existing pods in namespace "psa-tighten" violate the new PodSecurity enforce '
        'level "baseline:latest"\n'
        "Warning: hostnet: host namespaces\n"
        "Warning: privileged: privileged\n"
        "Warning: root: hostPath volumes\n"
    )
    bad = kubectl(cluster, "label", "namespace", "psa-tighten", f"{ENFORCE}=strict", "--overwrite")
    assert bad.returncode == 1
    assert bad.stderr == (
        'The Namespace "psa-tighten" is invalid: metadata.labels[pod-security.kubernetes.io/'
        'enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted\n'
    )


def test_the_default_is_a_flag(tmp_path: Path) -> None:
    with started(
        tmp_path / "cluster",
        runtime="none",
        extra_args=("--pod-security-default", "enforce=privileged"),
    ) as proc:
        out = kubectl(proc, "create", "-f", "-", stdin=host_pods("default")["hostnet"])
        assert (out.returncode, out.stdout, out.stderr) == (0, "pod/hostnet created\n", "")


def test_a_controller_whose_pods_the_namespace_refuses_reports_failed_create(
    tmp_path: Path,
) -> None:
    with started(tmp_path / "cluster", runtime="fake") as proc:
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
        out = kubectl(proc, "apply", "-f", "-", stdin=deployment)
        assert (out.returncode, out.stdout) == (0, "deployment.apps/agent created\n"), out.stderr
        deadline = time.monotonic() + 60
        failure: dict[str, Any] = {}
        while not failure and time.monotonic() < deadline:
            listed = kubectl(proc, "get", "replicasets", "-l", "app=agent", "-o", "json")
            for rs in json.loads(listed.stdout or '{"items": []}')["items"]:
                for condition in rs.get("status", {}).get("conditions") or []:
                    if condition["type"] == "ReplicaFailure":
                        failure = condition
            time.sleep(0.2)
        assert failure["reason"] == "FailedCreate"
        assert re.fullmatch(
            r'pods "agent-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity '
            r'"baseline:latest": host namespaces \(hostNetwork=true\)',
            failure["message"],
        ), failure
        pods = kubectl(proc, "get", "pods", "-o", "name")
        assert pods.stdout == ""
