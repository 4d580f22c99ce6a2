"""Deployments, ReplicaSets and ReplicationControllers against a real cluster process on
the fake runtime: rolling updates sampled through a pod watch, ``kubectl rollout
status/undo/restart/pause/resume`` (kubectl 1.35), progress deadlines, Recreate,
scaling through the scale subresource, and ReplicaSet adoption/release."""

from __future__ import annotations

import asyncio
import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.conftest import ClusterProcess, kubectl_binary
from tests.integration.harness import run, started, until

pytestmark = pytest.mark.integration

NS = "default"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(
        tmp_path_factory.mktemp("deployments") / "c",
        nodes=3,
        controllers="deployment,replicaset,replicationcontroller",
        start_timeout=60,
    ) as proc:
        yield proc


def kubectl(
    cluster: ClusterProcess, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [kubectl_binary("1.35"), *args],
        capture_output=True,
        text=True,
        env=cluster.env(),
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def deployment(name: str, image: str, replicas: int = 4, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


def ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def counted(pod: dict[str, Any]) -> bool:
    """A pod that counts against maxSurge: not terminating and not finished."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class PodSampler:
    """Follows a label selector's pods through a watch and records the fewest ready
    and the most counted pods ever seen (after every single event)."""

    def __init__(self, api: Client, selector: str) -> None:
        self.api = api
        self.selector = selector
        self.pods: dict[str, dict[str, Any]] = {}
        self.min_ready: int | None = None
        self.max_total = 0
        self.events = 0
        self.started = asyncio.Event()

    def _sample(self) -> None:
        n_ready = sum(1 for p in self.pods.values() if ready(p))
        n_total = sum(1 for p in self.pods.values() if counted(p))
        self.min_ready = n_ready if self.min_ready is None else min(self.min_ready, n_ready)
        self.max_total = max(self.max_total, n_total)

    async def run(self) -> None:
        listed = await self.api.list("v1", "pods", NS, labelSelector=self.selector)
        for pod in listed["items"]:
            self.pods[pod["metadata"]["name"]] = pod
        self._sample()
        rv = listed["metadata"]["resourceVersion"]
        self.started.set()
        while True:
            async for event in self.api.watch(
                "v1", "pods", NS, labelSelector=self.selector, resourceVersion=rv
            ):
                obj = event["object"]
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if event["type"] == "DELETED":
                    self.pods.pop(obj["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.pods[obj["metadata"]["name"]] = obj
                else:
                    continue
                self.events += 1
                self._sample()


async def run_kubectl(cluster: ClusterProcess, *args: str, check: bool = True) -> str:
    proc = await asyncio.to_thread(kubectl, cluster, *args, check=check)
    return proc.stdout + proc.stderr


def test_a_rolling_update_keeps_availability_and_surge_bounds_and_rollout_undo_restores_the_old_template(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        body = deployment(
            "web",
            "registry.example/web:v1",
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
        )
        await api.create("apps/v1", "deployments", body, NS)
        await run_kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=90s")
        sampler = PodSampler(api, "app=web")
        task = asyncio.create_task(sampler.run())
        try:
            await asyncio.wait_for(sampler.started.wait(), 30)
            await run_kubectl(
                cluster, "set", "image", "deployment/web", "c=registry.example/web:v2"
            )
            out = await run_kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=90s")
            assert "successfully rolled out" in out

            async def settled() -> bool:
                pods = (await api.list("v1", "pods", NS, labelSelector="app=web"))["items"]
                return len(pods) == 4 and all(
                    p["spec"]["containers"][0]["image"].endswith(":v2") for p in pods
                )

            await until("only v2 pods left", settled)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        print(f"sampled {sampler.events} events: {sampler.min_ready=} {sampler.max_total=}")
        assert sampler.events > 10
        assert sampler.min_ready is not None and sampler.min_ready >= 4 - 1
        assert sampler.max_total <= 4 + 1

        d = await api.get("apps/v1", "deployments", "web", NS)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        rses = (await api.list("apps/v1", "replicasets", NS, labelSelector="app=web"))["items"]
        assert len(rses) == 2
        by_revision = {
            r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: r for r in rses
        }
        new_rs, old_rs = by_revision["2"], by_revision["1"]
        pod_hash = new_rs["metadata"]["labels"]["pod-template-hash"]
        assert new_rs["metadata"]["name"] == f"web-{pod_hash}"
        assert new_rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == pod_hash
        assert new_rs["spec"]["replicas"] == 4 and old_rs["spec"]["replicas"] == 0
        assert new_rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == ("5")
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"

        await run_kubectl(cluster, "rollout", "undo", "deployment/web")
        await run_kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=90s")
        d = await api.get("apps/v1", "deployments", "web", NS)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == (
            "registry.example/web:v1"
        )
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        old_rs = await api.get("apps/v1", "replicasets", old_rs["metadata"]["name"], NS)
        assert old_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        assert old_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        assert old_rs["spec"]["replicas"] == 4

        async def back_on_v1() -> bool:
            pods = (await api.list("v1", "pods", NS, labelSelector="app=web"))["items"]
            return len(pods) == 4 and all(
                p["spec"]["containers"][0]["image"].endswith(":v1") for p in pods
            )

        await until("only v1 pods after undo", back_on_v1)
        history = await run_kubectl(cluster, "rollout", "history", "deployment/web")
        assert "2" in history and "3" in history

    run(cluster, scenario)


def test_a_deployment_whose_new_pods_never_become_ready_exceeds_its_progress_deadline_and_keeps_the_old_pods(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        body = deployment("stuck", "registry.example/stuck:v1", replicas=3)
        body["spec"]["progressDeadlineSeconds"] = 5
        await api.create("apps/v1", "deployments", body, NS)
        await run_kubectl(cluster, "rollout", "status", "deployment/stuck", "--timeout=90s")
        d = await api.get("apps/v1", "deployments", "stuck", NS)
        template = copy.deepcopy(d["spec"]["template"])
        container = template["spec"]["containers"][0]
        container["image"] = "registry.example/stuck:broken"
        container["env"] = [{"name": "FAKE_EXEC_EXIT_CODE", "value": "1"}]
        container["readinessProbe"] = {
            "exec": {"command": ["check-ready"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
        await api.patch("apps/v1", "deployments", "stuck", {"spec": {"template": template}}, NS)

        async def timed_out() -> dict[str, Any] | None:
            d = await api.get("apps/v1", "deployments", "stuck", NS)
            for c in d.get("status", {}).get("conditions") or []:
                if c["type"] == "Progressing" and c["reason"] == "ProgressDeadlineExceeded":
                    return d
            return None

        d = await until("ProgressDeadlineExceeded", timed_out)
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Progressing"]["status"] == "False"
        assert conds["Available"]["status"] == "True"
        out = await run_kubectl(
            cluster, "rollout", "status", "deployment/stuck", "--timeout=30s", check=False
        )
        assert "exceeded its progress deadline" in out
        pods = (await api.list("v1", "pods", NS, labelSelector="app=stuck"))["items"]
        old_ready = [
            p for p in pods if p["spec"]["containers"][0]["image"].endswith(":v1") and ready(p)
        ]
        new = [p for p in pods if p["spec"]["containers"][0]["image"].endswith(":broken")]
        # maxUnavailable 25% of 3 rounds down to 0: every old pod keeps serving.
        assert len(old_ready) == 3
        assert new and not any(ready(p) for p in new)
        assert d["status"]["updatedReplicas"] == len(new)
        assert d["status"]["availableReplicas"] == 3

    run(cluster, scenario)


def test_scaling_through_the_scale_subresource_and_pause_resume_and_restart(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        await api.create("apps/v1", "deployments", deployment("scaled", "img:v1", 2), NS)
        await run_kubectl(cluster, "rollout", "status", "deployment/scaled", "--timeout=90s")
        await run_kubectl(cluster, "scale", "deployment/scaled", "--replicas=5")

        async def five_ready() -> bool:
            d = await api.get("apps/v1", "deployments", "scaled", NS)
            return bool(d["status"].get("availableReplicas") == 5)

        await until("5 available replicas", five_ready)
        scale = await api.get("apps/v1", "deployments", "scaled", NS, subresource="scale")
        assert scale["spec"]["replicas"] == 5 and scale["status"]["replicas"] == 5

        await run_kubectl(cluster, "rollout", "pause", "deployment/scaled")

        async def paused() -> bool:
            d = await api.get("apps/v1", "deployments", "scaled", NS)
            conds = {c["type"]: c for c in d["status"].get("conditions") or []}
            return bool(conds["Progressing"]["reason"] == "DeploymentPaused")

        await until("DeploymentPaused", paused)
        await run_kubectl(cluster, "set", "image", "deployment/scaled", "c=img:v2")
        await run_kubectl(cluster, "scale", "deployment/scaled", "--replicas=3")

        async def three() -> bool:
            rses = (await api.list("apps/v1", "replicasets", NS, labelSelector="app=scaled"))[
                "items"
            ]
            d = await api.get("apps/v1", "deployments", "scaled", NS)
            return (
                len(rses) == 1
                and rses[0]["spec"]["replicas"] == 3
                and d["status"].get("replicas") == 3
            )

        await until("paused deployment scaled to 3 without a rollout", three)
        await run_kubectl(cluster, "rollout", "resume", "deployment/scaled")
        await run_kubectl(cluster, "rollout", "status", "deployment/scaled", "--timeout=90s")
        rses = (await api.list("apps/v1", "replicasets", NS, labelSelector="app=scaled"))["items"]
        assert sorted(r["spec"]["replicas"] for r in rses) == [0, 3]

        await run_kubectl(cluster, "rollout", "restart", "deployment/scaled")
        await run_kubectl(cluster, "rollout", "status", "deployment/scaled", "--timeout=90s")
        d = await api.get("apps/v1", "deployments", "scaled", NS)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        rses = (await api.list("apps/v1", "replicasets", NS, labelSelector="app=scaled"))["items"]
        assert len(rses) == 3

    run(cluster, scenario)


def test_a_recreate_deployment_removes_every_old_pod_before_starting_new_ones(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        body = deployment("recreate", "img:v1", 3, strategy={"type": "Recreate"})
        await api.create("apps/v1", "deployments", body, NS)
        await run_kubectl(cluster, "rollout", "status", "deployment/recreate", "--timeout=90s")
        sampler_pods: dict[str, dict[str, Any]] = {}
        mixed = False
        listed = await api.list("v1", "pods", NS, labelSelector="app=recreate")
        for pod in listed["items"]:
            sampler_pods[pod["metadata"]["name"]] = pod

        async def watch() -> None:
            nonlocal mixed
            async for event in api.watch(
                "v1",
                "pods",
                NS,
                labelSelector="app=recreate",
                resourceVersion=listed["metadata"]["resourceVersion"],
            ):
                obj = event["object"]
                if event["type"] == "DELETED":
                    sampler_pods.pop(obj["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    sampler_pods[obj["metadata"]["name"]] = obj
                images = {p["spec"]["containers"][0]["image"] for p in sampler_pods.values()}
                if len(images) > 1:
                    mixed = True

        task = asyncio.create_task(watch())
        try:
            await run_kubectl(cluster, "set", "image", "deployment/recreate", "c=img:v2")
            await run_kubectl(cluster, "rollout", "status", "deployment/recreate", "--timeout=90s")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not mixed

    run(cluster, scenario)


def test_a_replicaset_adopts_a_matching_orphan_and_releases_a_pod_whose_labels_change(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        orphan = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "orphan", "labels": {"app": "adopt", "tier": "x"}},
            "spec": {"containers": [{"name": "c", "image": "img:v1"}]},
        }
        await api.create("v1", "pods", orphan, NS)
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "adopter", "namespace": NS},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "adopt"}},
                "template": {
                    "metadata": {"labels": {"app": "adopt"}},
                    "spec": {"containers": [{"name": "c", "image": "img:v1"}]},
                },
            },
        }
        created = await api.create("apps/v1", "replicasets", rs, NS)
        uid = created["metadata"]["uid"]

        def owner_uids(pod: dict[str, Any]) -> list[str]:
            return [r["uid"] for r in pod["metadata"].get("ownerReferences") or []]

        async def adopted() -> bool:
            pod = await api.get("v1", "pods", "orphan", NS)
            pods = (await api.list("v1", "pods", NS, labelSelector="app=adopt"))["items"]
            return uid in owner_uids(pod) and len(pods) == 2

        await until("the orphan adopted and one pod created", adopted)

        async def status_two() -> bool:
            got = await api.get("apps/v1", "replicasets", "adopter", NS)
            st = got.get("status") or {}
            return (
                st.get("replicas") == 2
                and st.get("readyReplicas") == 2
                and st.get("availableReplicas") == 2
                and st.get("fullyLabeledReplicas") == 2
                and st.get("observedGeneration") == got["metadata"]["generation"]
            )

        await until("status of 2 ready pods", status_two)
        await api.patch("v1", "pods", "orphan", {"metadata": {"labels": {"app": "gone"}}}, NS)

        async def released() -> bool:
            pod = await api.get("v1", "pods", "orphan", NS)
            pods = (await api.list("v1", "pods", NS, labelSelector="app=adopt"))["items"]
            return uid not in owner_uids(pod) and len(pods) == 2

        await until("the relabelled pod released and replaced", released)
        pod = await api.get("v1", "pods", "orphan", NS)
        assert not pod["metadata"].get("deletionTimestamp")

        await api.patch("apps/v1", "replicasets", "adopter", {"spec": {"replicas": 1}}, NS)

        async def one() -> bool:
            pods = (await api.list("v1", "pods", NS, labelSelector="app=adopt"))["items"]
            return len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 1

        await until("scaled down to 1", one)

    run(cluster, scenario)


def test_a_replication_controller_keeps_its_replicas_and_replaces_a_deleted_pod(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        rc = {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "legacy", "namespace": NS},
            "spec": {
                "replicas": 3,
                "selector": {"app": "legacy"},
                "template": {
                    "metadata": {"labels": {"app": "legacy"}},
                    "spec": {"containers": [{"name": "c", "image": "img:v1"}]},
                },
            },
        }
        await api.create("v1", "replicationcontrollers", rc, NS)

        async def live() -> list[dict[str, Any]]:
            pods = (await api.list("v1", "pods", NS, labelSelector="app=legacy"))["items"]
            return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

        async def three_ready() -> bool:
            got = await api.get("v1", "replicationcontrollers", "legacy", NS)
            return (got.get("status") or {}).get("readyReplicas") == 3

        await until("3 ready replicas", three_ready)
        pods = await live()
        assert len(pods) == 3
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"], ref["controller"]) == (
            "v1",
            "ReplicationController",
            True,
        )
        victim = pods[0]["metadata"]["name"]
        await api.delete("v1", "pods", victim, NS)

        async def replaced() -> bool:
            names = {p["metadata"]["name"] for p in await live()}
            return len(names) == 3 and victim not in names

        await until("a replacement pod", replaced)

    run(cluster, scenario)


def test_old_replica_sets_beyond_the_revision_history_limit_are_deleted(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        body = deployment("history", "img:v1", 2, revisionHistoryLimit=1, minReadySeconds=1)
        await api.create("apps/v1", "deployments", body, NS)
        for version in ("v2", "v3", "v4"):
            await run_kubectl(cluster, "rollout", "status", "deployment/history", "--timeout=90s")
            await run_kubectl(cluster, "set", "image", "deployment/history", f"c=img:{version}")
        await run_kubectl(cluster, "rollout", "status", "deployment/history", "--timeout=90s")

        async def two_left() -> list[dict[str, Any]] | None:
            rses = (await api.list("apps/v1", "replicasets", NS, labelSelector="app=history"))[
                "items"
            ]
            return rses if len(rses) == 2 else None

        rses = await until("one old ReplicaSet kept", two_left)
        revisions = sorted(
            int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for r in rses
        )
        assert revisions == [3, 4]
        assert all(r["spec"]["minReadySeconds"] == 1 for r in rses)

    run(cluster, scenario)


def test_a_deployment_adopts_a_matching_orphan_replica_set_and_rolls_it_away(
    cluster: ClusterProcess,
) -> None:
    async def scenario(api: Client) -> None:
        orphan = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "adoptee"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "adoptee", "era": "old"}},
                "template": {
                    "metadata": {"labels": {"app": "adoptee", "era": "old"}},
                    "spec": {"containers": [{"name": "c", "image": "img:old"}]},
                },
            },
        }
        await api.create("apps/v1", "replicasets", orphan, NS)
        d = await api.create("apps/v1", "deployments", deployment("adoptee", "img:new", 2), NS)
        await run_kubectl(cluster, "rollout", "status", "deployment/adoptee", "--timeout=90s")

        async def adopted() -> bool:
            stray = await api.get("apps/v1", "replicasets", "stray", NS)
            refs = stray["metadata"].get("ownerReferences") or []
            return (
                any(r["uid"] == d["metadata"]["uid"] and r["controller"] for r in refs)
                and stray["spec"]["replicas"] == 0
            )

        await until("the stray ReplicaSet adopted and scaled to 0", adopted)

    run(cluster, scenario)
