"""Who may do what on the built-in cluster (issue 15), asked the way users ask: kubectl
1.35's ``auth can-i`` / ``auth whoami`` / ``create token`` and the official Python
client, over real HTTPS against a ``gitops cluster up`` process with two fake-runtime
nodes (so the controller manager runs: default ServiceAccounts, ClusterRole
aggregation). Answers are Kubernetes': the admin may do anything, ``system:anonymous``
only health and version, a ServiceAccount bound to ``view`` reads its namespace only,
a Role granting ``get pods`` lets its token get pods and nothing else, a user with
``edit`` cannot bind ``cluster-admin``, a node reads only the Secrets of its own pods."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClusterProcess, kubectl_binary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    state = tmp_path_factory.mktemp("rbac")
    tokens = state / "tokens.csv"
    tokens.write_text('alice-token,alice,alice-uid,"team-devs"\n')
    tokens.chmod(0o600)
    proc = ClusterProcess(
        state / "cluster",
        runtime="fake",
        extra_args=("--nodes", "2", "--token-auth-file", str(tokens)),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


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


def ok(proc: ClusterProcess, *args: str, stdin: Any = None) -> str:
    out = kubectl(proc, *args, stdin=stdin)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def can_i(proc: ClusterProcess, *args: str) -> str:
    """``kubectl auth can-i`` → "yes" / "no" (exit 0 / 1)."""
    out = kubectl(proc, "auth", "can-i", *args)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.strip()


def with_token(proc: ClusterProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with only a bearer token (no admin credentials anywhere)."""
    return subprocess.run(
        [
            kubectl_binary("1.35"),
            "--server",
            proc.url,
            "--certificate-authority",
            str(proc.ca),
            "--token",
            token,
            "--kubeconfig",
            "/dev/null",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def anonymous_get(proc: ClusterProcess, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(proc.url + path)
    try:
        with urllib.request.urlopen(request, context=proc.ssl_context(), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for_service_account(proc: ClusterProcess, namespace: str, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if kubectl(proc, "get", "serviceaccount", name, "-n", namespace).returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"no ServiceAccount {namespace}/{name}")


@pytest.fixture(scope="module")
def team(cluster: ClusterProcess) -> str:
    ok(cluster, "create", "namespace", "team")
    ok(cluster, "create", "serviceaccount", "viewer", "-n", "team")
    ok(
        cluster,
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--serviceaccount=team:viewer",
        "-n",
        "team",
    )
    return "team"


def test_the_admin_may_do_anything_and_says_who_it_is(cluster: ClusterProcess) -> None:
    assert can_i(cluster, "*", "*") == "yes"
    who = json.loads(ok(cluster, "auth", "whoami", "-o", "json"))
    assert who["kind"] == "SelfSubjectReview"
    assert who["status"]["userInfo"]["username"] == "gitops-admin"
    assert who["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]


def subject_access(proc: ClusterProcess, user: str, groups: list[str], **attrs: str) -> bool:
    """A SubjectAccessReview by the admin: may ``user`` do ``attrs``?"""
    spec: dict[str, Any] = {"user": user, "groups": groups}
    if "path" in attrs:
        spec["nonResourceAttributes"] = attrs
    else:
        spec["resourceAttributes"] = attrs
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    out = json.loads(ok(proc, "create", "-f", "-", "-o", "json", stdin=review))
    allowed: bool = out["status"]["allowed"]
    return allowed


def test_anonymous_gets_health_and_version_only(cluster: ClusterProcess) -> None:
    anon = ("system:anonymous", ["system:unauthenticated"])
    assert not subject_access(cluster, *anon, verb="*", resource="*", group="*")
    assert not subject_access(cluster, *anon, verb="list", resource="pods")
    assert subject_access(cluster, *anon, verb="get", path="/healthz")
    assert subject_access(cluster, *anon, verb="get", path="/version")
    assert not subject_access(cluster, *anon, verb="get", path="/api")
    # Anonymous may not even ask what it may do (system:basic-user is for the
    # authenticated), so kubectl auth can-i as anonymous fails as on Kubernetes.
    out = kubectl(cluster, "auth", "can-i", "list", "pods", "--as=system:anonymous")
    assert out.returncode == 1
    assert (
        'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:anonymous" '
        'cannot create resource "selfsubjectaccessreviews" in API group '
        '"authorization.k8s.io" at the cluster scope'
    ) in out.stderr
    assert anonymous_get(cluster, "/version")[0] == 200
    assert anonymous_get(cluster, "/readyz") == (200, b"ok")
    code, body = anonymous_get(cluster, "/api/v1/namespaces/default/secrets")
    status = json.loads(body)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in '
        'API group "" in the namespace "default"'
    )
    code, body = anonymous_get(cluster, "/api")
    assert code == 403
    assert json.loads(body)["message"] == (
        'forbidden: User "system:anonymous" cannot get path "/api"'
    )


def test_a_service_account_bound_to_view_reads_its_namespace_only(
    cluster: ClusterProcess, team: str
) -> None:
    sa = ("--as=system:serviceaccount:team:viewer",)
    assert can_i(cluster, "list", "pods", "-n", team, *sa) == "yes"
    assert can_i(cluster, "watch", "deployments.apps", "-n", team, *sa) == "yes"
    assert can_i(cluster, "get", "secrets", "-n", team, *sa) == "no"
    assert can_i(cluster, "create", "pods", "-n", team, *sa) == "no"
    assert can_i(cluster, "list", "pods", "-n", "default", *sa) == "no"
    assert can_i(cluster, "list", "nodes", *sa) == "no"
    listed = ok(cluster, "auth", "can-i", "--list", "-n", team, *sa)
    pods_line = next(line for line in listed.splitlines() if line.startswith("pods "))
    assert "[get list watch]" in pods_line


def test_a_role_granting_get_pods_lets_a_token_get_pods_and_nothing_else(
    cluster: ClusterProcess, team: str
) -> None:
    ok(cluster, "create", "serviceaccount", "getter", "-n", team)
    ok(cluster, "create", "role", "pod-getter", "--verb=get", "--resource=pods", "-n", team)
    ok(
        cluster,
        "create",
        "rolebinding",
        "getter",
        "--role=pod-getter",
        "--serviceaccount=team:getter",
        "-n",
        team,
    )
    ok(cluster, "run", "web", "--image=busybox", "-n", team, "--restart=Never")
    token = ok(cluster, "create", "token", "getter", "-n", team).strip()
    got = with_token(cluster, token, "get", "pod", "web", "-n", team, "-o", "name")
    assert (got.returncode, got.stdout.strip()) == (0, "pod/web"), got.stderr
    listed = with_token(cluster, token, "get", "pods", "-n", team)
    assert listed.returncode == 1
    assert (
        'pods is forbidden: User "system:serviceaccount:team:getter" cannot list resource '
        '"pods" in API group "" in the namespace "team"'
    ) in listed.stderr
    secrets = with_token(cluster, token, "get", "secret", "x", "-n", team)
    assert 'cannot get resource "secrets"' in secrets.stderr
    who = json.loads(with_token(cluster, token, "auth", "whoami", "-o", "json").stdout)
    user = who["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:team:getter"
    assert user["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:team",
        "system:authenticated",
    ]
    # The official Python client with the same token: get works, list is a 403.
    from kubernetes import client

    config = client.Configuration()
    config.host = cluster.url
    config.ssl_ca_cert = str(cluster.ca)
    config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(config) as api_client:
        core = client.CoreV1Api(api_client)
        assert core.read_namespaced_pod("web", team).metadata.name == "web"
        with pytest.raises(client.ApiException) as info:
            core.list_namespaced_pod(team)
        assert info.value.status == 403


def test_a_user_with_edit_cannot_bind_cluster_admin(cluster: ClusterProcess, team: str) -> None:
    ok(
        cluster,
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        team,
    )
    assert can_i(cluster, "create", "deployments.apps", "-n", team, "--as=alice") == "yes"
    assert can_i(cluster, "create", "rolebindings", "-n", team, "--as=alice") == "no"
    # alice's own token (the static token file): edit has no RBAC rights at all.
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alice-root", "namespace": team},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    out = subprocess.run(
        [
            kubectl_binary("1.35"),
            "--server",
            cluster.url,
            "--certificate-authority",
            str(cluster.ca),
            "--token",
            "alice-token",
            "--kubeconfig",
            "/dev/null",
            "create",
            "-f",
            "-",
        ],
        input=json.dumps(binding),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert 'User "alice" cannot create resource "rolebindings"' in out.stderr
    # With admin in the namespace she may bind roles, but only what she holds herself.
    ok(
        cluster,
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
        "-n",
        team,
    )
    escalate = kubectl(cluster, "create", "-f", "-", "--as=alice", stdin=binding)
    assert escalate.returncode == 1
    assert "is attempting to grant RBAC permissions not currently held" in escalate.stderr
    binding["metadata"]["name"] = "alice-view"  # type: ignore[index]
    binding["roleRef"]["name"] = "view"  # type: ignore[index]
    ok(cluster, "create", "-f", "-", "--as=alice", stdin=binding)


def test_a_node_reads_the_secrets_of_its_own_pods_only(cluster: ClusterProcess, team: str) -> None:
    for node in ("node-0", "node-1"):
        ok(cluster, "create", "secret", "generic", f"for-{node}", "--from-literal=k=v", "-n", team)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"on-{node}", "namespace": team},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "envFrom": [{"secretRef": {"name": f"for-{node}"}}],
                    }
                ],
            },
        }
        ok(cluster, "create", "-f", "-", stdin=pod)
    node0 = ("--as=system:node:node-0", "--as-group=system:nodes")
    assert can_i(cluster, "get", "secret/for-node-0", "-n", team, *node0) == "yes"
    assert can_i(cluster, "get", "secret/for-node-1", "-n", team, *node0) == (
        "no - no relationship found between node 'node-0' and this object"
    )
    assert can_i(cluster, "list", "secrets", "-n", team, *node0).startswith("no")
    assert can_i(cluster, "get", "nodes/node-0", *node0) == "yes"


def test_the_components_run_with_their_own_identities(cluster: ClusterProcess) -> None:
    """The kubelets, scheduler and controllers hold no admin credential: each has a client
    certificate of its own, and the admin token is in the user's kubeconfig only."""
    state: Path = cluster.state_dir
    token = cluster.token
    for kubeconfig in sorted((state / "components").glob("*.kubeconfig")):
        assert token not in kubeconfig.read_text(), kubeconfig
    # The fake nodes registered and are Ready under their node identities.
    nodes = json.loads(ok(cluster, "get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node-0", "node-1"]
    kubeconfigs = {k.stem: k for k in (state / "components").glob("*.kubeconfig")}
    scheduler = kubeconfigs["kube-scheduler"]
    who = json.loads(ok(cluster, "--kubeconfig", str(scheduler), "auth", "whoami", "-o", "json"))
    assert who["status"]["userInfo"]["username"] == "system:kube-scheduler"
    assert can_i(cluster, "--kubeconfig", str(scheduler), "get", "secrets", "-A") == "no"
    assert (
        can_i(cluster, "--kubeconfig", str(scheduler), "create", "pods", "--subresource=binding")
        == "yes"
    )
    kubelet = kubeconfigs["kubelet-node-0"]
    who = json.loads(ok(cluster, "--kubeconfig", str(kubelet), "auth", "whoami", "-o", "json"))
    assert who["status"]["userInfo"]["username"] == "system:node:node-0"
    assert who["status"]["userInfo"]["groups"] == ["system:nodes", "system:authenticated"]
