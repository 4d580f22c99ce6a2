"""The reconciler end to end against the built-in cluster over HTTPS (fake runtime):
real Git repositories made by the tests, commits that add, change, break and remove
objects, drift made with kubectl 1.35 and corrected by self-heal, CRDs with their
objects in one commit, and an unreachable repository."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitops.changeset import Action
from gitops.cluster import Destination
from gitops.config import Application
from gitops.source import GitSource
from gitops.sync import AppSync, Mode, RunOptions, SyncResult
from tests.conftest import ROOT, ClusterProcess
from tests.integration.harness import Repo, kubectl, started

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: localhost/busybox:TAG
          command: [sleep, "3600"]
          ports: [{containerPort: 8080}]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("gitops-sync") / "c", nodes=2) as proc:
        yield proc


def application(name: str, repo: Path | str, **spec: Any) -> Application:
    body: dict[str, Any] = {"name": name, "source": {"repoURL": str(repo), "path": "app"}}
    body.update(spec)
    return Application.model_validate(body)


def run_app(
    cluster: ClusterProcess, runner_args: tuple[Application, Path], modes: list[RunOptions]
) -> list[SyncResult]:
    """Run the modes in order with one AppSync (so it keeps its caches between them)."""
    app, cache = runner_args

    async def go() -> list[SyncResult]:
        async with Destination.from_kubeconfig(cluster.kubeconfig) as dest:
            runner = AppSync(app, GitSource(cache), dest)
            return [await runner.run(mode) for mode in modes]

    return asyncio.run(go())


def actions(result: SyncResult) -> dict[str, str]:
    return {str(e.key): e.action.value for e in result.changes.entries}


SYNC = RunOptions(Mode.SYNC, timeout=60)
PLAN = RunOptions(Mode.PLAN, wait=False)
HEAL = RunOptions(Mode.HEAL, timeout=60)


def test_commits_are_applied_rolled_out_and_pruned(cluster: ClusterProcess, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "app/deployment.yaml": DEPLOYMENT.replace("TAG", "1"),
            "app/service.yaml": SERVICE,
            "app/configmap.yaml": CONFIGMAP,
        },
        "web",
    )
    app = application("rollout", repo.path, destination={"namespace": "rollout"})
    kubectl(cluster, "create", "namespace", "rollout")
    first, again = run_app(cluster, (app, tmp_path / "cache"), [SYNC, PLAN])
    assert first.ok, first.error
    assert actions(first) == {
        "ConfigMap/rollout/web-config": "created",
        "Service/rollout/web": "created",
        "Deployment.apps/rollout/web": "created",
    }
    assert first.health.status.value == "Healthy"
    assert not again.changes.changed, "no phantom diff right after a sync"

    repo.commit({"app/deployment.yaml": DEPLOYMENT.replace("TAG", "2")}, "new image")
    (second,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    assert second.ok, second.error
    entry = second.changes.entry(
        next(e.key for e in second.changes.entries if e.key.kind == "Deployment")
    )
    assert entry is not None and entry.action is Action.CONFIGURED
    assert [(c.path, c.before, c.after) for c in entry.diff] == [
        (
            "spec.template.spec.containers[name=web].image",
            "localhost/busybox:1",
            "localhost/busybox:2",
        )
    ]
    assert second.health.status.value == "Healthy"  # waited for the rollout
    image = kubectl(
        cluster,
        "get",
        "deploy",
        "web",
        "-n",
        "rollout",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.status.updatedReplicas}",
    )
    assert image == "localhost/busybox:2 2"

    repo.commit({"app/service.yaml": None}, "no service")
    (third,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    assert actions(third)["Service/rollout/web"] == "pruned"
    gone = subprocess.run(
        [*_kubectl(cluster), "get", "service", "web", "-n", "rollout"],
        capture_output=True,
        text=True,
    )
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def _kubectl(cluster: ClusterProcess) -> list[str]:
    from tests.conftest import kubectl_binary

    return [kubectl_binary("1.35"), "--kubeconfig", str(cluster.kubeconfig)]


def test_with_prune_off_a_removed_object_stays_and_is_reported(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/service.yaml": SERVICE, "app/configmap.yaml": CONFIGMAP}, "two")
    app = application("keep", repo.path, prune=False, destination={"namespace": "keep"})
    kubectl(cluster, "create", "namespace", "keep")
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    repo.commit({"app/service.yaml": None}, "one")
    (result,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    entry = next(e for e in result.changes.entries if e.key.kind == "Service")
    assert entry.action is Action.SKIPPED
    assert "prune is off" in entry.message
    kubectl(cluster, "get", "service", "web", "-n", "keep")


def test_a_broken_yaml_file_applies_nothing_and_names_file_and_line(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/configmap.yaml": CONFIGMAP}, "good")
    app = application("broken", repo.path, destination={"namespace": "broken"})
    kubectl(cluster, "create", "namespace", "broken")
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    repo.commit(
        {
            "app/configmap.yaml": CONFIGMAP.replace("hello", "changed"),
            "app/service.yaml": SERVICE,
            "app/zz-broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n",
        },
        "broken",
    )
    (result,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    assert not result.ok
    assert result.error_file == "app/zz-broken.yaml"
    assert result.error_line == 5
    assert "app/zz-broken.yaml:5" in result.error
    data = kubectl(
        cluster, "get", "cm", "web-config", "-n", "broken", "-o", "jsonpath={.data.greeting}"
    )
    assert data == "hello", "the previous revision keeps running"
    missing = subprocess.run(
        [*_kubectl(cluster), "get", "service", "web", "-n", "broken"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0


def test_an_object_the_server_refuses_applies_nothing_of_the_revision(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    bad = SERVICE.replace("port: 80", "port: 99999").replace("name: web", "name: bad")
    repo.commit({"app/configmap.yaml": CONFIGMAP, "app/bad.yaml": bad}, "one invalid")
    app = application("invalid", repo.path, destination={"namespace": "invalid"})
    kubectl(cluster, "create", "namespace", "invalid")
    (result,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    assert not result.ok and result.error_phase == "plan"
    assert actions(result)["Service/invalid/bad"] == "failed"
    missing = subprocess.run(
        [*_kubectl(cluster), "get", "cm", "web-config", "-n", "invalid"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0, "nothing of the revision was applied"


HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
"""


def test_hand_edits_are_drift_and_self_heal_undoes_them(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "app/deployment.yaml": DEPLOYMENT.replace("TAG", "1"),
            "app/configmap.yaml": CONFIGMAP,
        },
        "web",
    )
    app = application("heal", repo.path, selfHeal=True, destination={"namespace": "heal"})
    kubectl(cluster, "create", "namespace", "heal")
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    kubectl(cluster, "-n", "heal", "set", "image", "deploy/web", "web=localhost/busybox:9")
    kubectl(cluster, "-n", "heal", "label", "deploy", "web", "hand=made")
    kubectl(cluster, "-n", "heal", "delete", "configmap", "web-config")
    drift, heal, after = run_app(cluster, (app, tmp_path / "cache"), [PLAN, HEAL, PLAN])
    assert actions(drift) == {
        "ConfigMap/heal/web-config": "created",
        "Deployment.apps/heal/web": "configured",
    }
    deployment = next(e for e in drift.changes.entries if e.key.kind == "Deployment")
    assert {(c.path, c.before, c.after) for c in deployment.diff} == {
        (
            "spec.template.spec.containers[name=web].image",
            "localhost/busybox:9",
            "localhost/busybox:1",
        ),
        ("metadata.labels.hand", "made", None),
    }
    assert heal.ok, heal.error
    assert not after.changes.changed, [str(e.key) for e in after.changes.changed]
    out = kubectl(
        cluster,
        "-n",
        "heal",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.labels.hand}",
    )
    assert out.strip() == "localhost/busybox:1"
    kubectl(cluster, "-n", "heal", "get", "configmap", "web-config")


def test_without_self_heal_drift_is_reported_and_left_alone(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/configmap.yaml": CONFIGMAP}, "cm")
    app = application("noheal", repo.path, destination={"namespace": "noheal"})
    kubectl(cluster, "create", "namespace", "noheal")
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    kubectl(cluster, "-n", "noheal", "annotate", "configmap", "web-config", "note=by-hand")
    (heal,) = run_app(cluster, (app, tmp_path / "cache"), [HEAL])
    assert actions(heal) == {"ConfigMap/noheal/web-config": "configured"}
    out = kubectl(
        cluster,
        "-n",
        "noheal",
        "get",
        "cm",
        "web-config",
        "-o",
        "jsonpath={.metadata.annotations.note}",
    )
    assert out == "by-hand"


def test_scaling_a_deployment_an_hpa_owns_is_not_drift(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    manifest = DEPLOYMENT.replace("TAG", "1").replace("  replicas: 2\n", "")
    repo.commit({"app/deployment.yaml": manifest, "app/hpa.yaml": HPA}, "hpa")
    app = application("hpa", repo.path, selfHeal=True, destination={"namespace": "hpa"})
    kubectl(cluster, "create", "namespace", "hpa")
    run_app(cluster, (app, tmp_path / "cache"), [RunOptions(Mode.SYNC, wait=False)])
    kubectl(cluster, "-n", "hpa", "scale", "deploy/web", "--replicas=3")
    (plan,) = run_app(cluster, (app, tmp_path / "cache"), [PLAN])
    assert not plan.changes.changed, [(str(e.key), e.diff) for e in plan.changes.changed]


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
"""
WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata: {name: small}
spec: {size: 1}
"""


def test_a_crd_and_its_objects_sync_in_one_pass(cluster: ClusterProcess, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "app/widget.yaml": WIDGET,
            "app/crd.yaml": CRD,
            "app/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: crd}\n",
        },
        "crd",
    )
    app = application("crd", repo.path, destination={"namespace": "crd"})
    first, again = run_app(cluster, (app, tmp_path / "cache"), [SYNC, PLAN])
    assert first.ok, first.error
    assert actions(first) == {
        "Namespace/crd": "created",
        "CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com": "created",
        "Widget.example.com/crd/small": "created",
    }
    assert (
        kubectl(cluster, "-n", "crd", "get", "widget", "small", "-o", "jsonpath={.spec.size}")
        == "1"
    )
    assert not again.changes.changed


def test_an_unreachable_repository_keeps_the_last_revision_and_prunes_nothing(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/configmap.yaml": CONFIGMAP, "app/service.yaml": SERVICE}, "two")
    app = application("gone", repo.path, destination={"namespace": "gone"})
    kubectl(cluster, "create", "namespace", "gone")

    async def go() -> tuple[SyncResult, SyncResult]:
        async with Destination.from_kubeconfig(cluster.kubeconfig) as dest:
            runner = AppSync(app, GitSource(tmp_path / "cache"), dest)
            first = await runner.run(SYNC)
            shutil.rmtree(repo.path)  # the remote disappears
            second = await runner.run(SYNC)
            return first, second

    first, second = asyncio.run(go())
    assert first.ok
    assert second.error and second.error_phase == "fetch"
    assert second.revision == first.revision, "the last good revision stays"
    assert not any(e.action is Action.PRUNED for e in second.changes.entries)
    kubectl(cluster, "-n", "gone", "get", "service", "web")
    kubectl(cluster, "-n", "gone", "get", "configmap", "web-config")


def gitops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("path", ["apps/hello", "apps/guestbook", "apps/jobs"])
def test_after_a_sync_diff_exits_0_for_every_example_app(
    cluster: ClusterProcess, tmp_path: Path, path: str
) -> None:
    repo = Repo(tmp_path / "repo")
    shutil.copytree(ROOT / "examples" / "repo", repo.path, dirs_exist_ok=True)
    repo.commit({}, "examples")
    common = (
        "--repo",
        str(repo.path),
        "--path",
        path,
        "--name",
        path.rsplit("/", 1)[-1],
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    sync = gitops("sync", *common, "--timeout", "5")
    assert sync.returncode in (0, 1), sync.stderr  # health needs real containers for some
    assert "FAILED" not in sync.stdout, sync.stdout
    diff = gitops("diff", *common)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    drift = gitops("drift", *common, "--format", "json", "--exit-code")
    assert drift.returncode == 0, drift.stdout + drift.stderr


def test_moving_a_file_or_renaming_the_application_keeps_the_objects(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/configmap.yaml": CONFIGMAP}, "cm")
    app = application("before", repo.path, destination={"namespace": "moves"})
    kubectl(cluster, "create", "namespace", "moves")
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    uid = kubectl(
        cluster, "-n", "moves", "get", "cm", "web-config", "-o", "jsonpath={.metadata.uid}"
    )

    repo.commit({"app/configmap.yaml": None, "app/config/settings.yaml": CONFIGMAP}, "moved")
    (moved,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    assert actions(moved) == {"ConfigMap/moves/web-config": "unchanged"}

    renamed = application("after", repo.path, destination={"namespace": "moves"})
    (result,) = run_app(cluster, (renamed, tmp_path / "cache"), [SYNC])
    assert result.ok, result.error
    assert actions(result) == {"ConfigMap/moves/web-config": "configured"}  # relabelled
    out = kubectl(
        cluster,
        "-n",
        "moves",
        "get",
        "cm",
        "web-config",
        "-o",
        "jsonpath={.metadata.uid} {.metadata.labels.gitops\\.dev/app}",
    )
    assert out == f"{uid} after", "the object was updated in place, not recreated"


def test_prune_spares_annotated_objects_and_namespaces_holding_foreign_objects(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")
    kept = CONFIGMAP.replace(
        "name: web-config}", "name: kept, annotations: {gitops.dev/prune: disabled}}"
    )
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}\n"
    repo.commit(
        {"app/ns.yaml": namespace, "app/kept.yaml": kept, "app/configmap.yaml": CONFIGMAP},
        "three",
    )
    app = application("spare", repo.path, destination={"namespace": "shared"})
    run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    kubectl(cluster, "-n", "shared", "create", "configmap", "someone-elses")
    repo.commit({"app/ns.yaml": None, "app/kept.yaml": None, "app/configmap.yaml": None}, "none")
    (result,) = run_app(cluster, (app, tmp_path / "cache"), [SYNC])
    by_key = {str(e.key): e for e in result.changes.entries}
    assert by_key["ConfigMap/shared/web-config"].action is Action.PRUNED
    assert by_key["ConfigMap/shared/kept"].action is Action.SKIPPED
    assert "gitops.dev/prune=disabled" in by_key["ConfigMap/shared/kept"].message
    assert by_key["Namespace/shared"].action is Action.SKIPPED
    assert "ConfigMap/someone-elses" in by_key["Namespace/shared"].message
    kubectl(cluster, "-n", "shared", "get", "configmap", "kept", "someone-elses")


def test_the_cli_builds_reports_and_records_status(cluster: ClusterProcess, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/configmap.yaml": CONFIGMAP}, "cm")
    common = (
        "--repo",
        str(repo.path),
        "--path",
        "app",
        "--name",
        "cli",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    built = gitops("build", *common)
    assert built.returncode == 0, built.stderr
    assert "# Source: app/configmap.yaml:1" in built.stdout and "greeting: hello" in built.stdout

    repo.commit({"app/broken.yaml": "kind: ConfigMap\nmetadata: {name: x}\n"}, "no apiVersion")
    broken = gitops("build", *common)
    assert broken.returncode == 2
    assert "app/broken.yaml:1" in broken.stderr and "apiVersion" in broken.stderr
    repo.commit({"app/broken.yaml": None}, "fixed")

    # The built-in cluster of a state directory (as `gitops up` lays it out).
    state = tmp_path / "state"
    (state / "cluster").mkdir(parents=True)
    shutil.copy(cluster.kubeconfig, state / "cluster" / "kubeconfig")
    dest = ("--state-dir", str(state), "--namespace", "cli")
    kubectl(cluster, "create", "namespace", "cli")
    assert gitops("diff", *common, *dest).returncode == 1  # a ConfigMap to create
    synced = gitops("sync", *common, *dest)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "created  ConfigMap/cli/web-config" in synced.stdout
    assert gitops("diff", *common, *dest).returncode == 0

    kubectl(cluster, "-n", "cli", "label", "configmap", "web-config", "hand=made")
    report = tmp_path / "drift.xml"
    drift = gitops(
        "drift", *common, *dest, "--format", "junit", "--output", str(report), "--exit-code"
    )
    assert drift.returncode == 1
    assert "<failure" in report.read_text() and "metadata.labels.hand" in report.read_text()

    status = gitops("status", "--state-dir", str(state))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("cli: Synced, Healthy, revision ")
    assert " sync " in status.stdout and "1 created" in status.stdout
