"""The object layer: system metadata, generation, finalizers, deletion, dry-run,
subresources, no-op updates and CRDs, over a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api.objects import ApiOptions, ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.selectors import NO_FIELDS, parse_label_selector
from runtime.api.store import Store

MANAGER = WriteOptions(field_manager="tests")
DRY = WriteOptions(field_manager="tests", dry_run=True)


def run(
    tmp_path: Path, body: Callable[[ObjectAPI], Awaitable[None]], options: ApiOptions | None = None
) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin(), options)
        await api.bootstrap()
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


def info(api: ObjectAPI, group: str, version: str, plural: str) -> ResourceInfo:
    found = api.registry.get(group, version, plural)
    assert found is not None
    return found


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_the_system_namespaces_exist_from_the_start(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        ns = info(api, "", "v1", "namespaces")
        names = [
            e.name for e in api.list_objects(ns, None, parse_label_selector(""), NO_FIELDS).items
        ]
        assert {"default", "kube-system", "kube-public"} <= set(names)

    run(tmp_path, body)


def test_create_sets_uid_timestamp_revision_and_managed_fields(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = (
            await api.create(
                info(api, "", "v1", "configmaps"), "default", configmap("a", k="v"), MANAGER
            )
        ).obj
        meta = out["metadata"]
        assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
        assert int(meta["resourceVersion"]) > 0
        assert "generation" not in meta
        assert [m["manager"] for m in meta["managedFields"]] == ["tests"]

    run(tmp_path, body)


def test_generation_bumps_on_spec_changes_only(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        created = (await api.create(deploys, "default", deployment("web"), MANAGER)).obj
        assert created["metadata"]["generation"] == 1
        relabeled = (
            await api.patch(
                deploys, "default", "web", "merge", {"metadata": {"labels": {"x": "y"}}}, MANAGER
            )
        ).obj
        assert relabeled["metadata"]["generation"] == 1
        scaled = (
            await api.patch(deploys, "default", "web", "merge", {"spec": {"replicas": 3}}, MANAGER)
        ).obj
        assert scaled["metadata"]["generation"] == 2

    run(tmp_path, body)


def test_an_update_that_changes_nothing_keeps_the_revision(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        cms = info(api, "", "v1", "configmaps")
        first = (await api.create(cms, "default", configmap("same", k="v"), MANAGER)).obj
        again = (
            await api.patch(cms, "default", "same", "merge", {"data": {"k": "v"}}, MANAGER)
        ).obj
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    run(tmp_path, body)


def test_a_stale_resource_version_on_update_is_a_conflict(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        cms = info(api, "", "v1", "configmaps")
        first = (await api.create(cms, "default", configmap("c", k="1"), MANAGER)).obj
        await api.patch(cms, "default", "c", "merge", {"data": {"k": "2"}}, MANAGER)
        first["data"]["k"] = "3"
        with pytest.raises(ApiError) as err:
            await api.replace(cms, "default", "c", first, MANAGER)
        assert err.value.code == 409 and err.value.reason == "Conflict"
        assert "the object has been modified" in err.value.message

    run(tmp_path, body)


def test_objects_in_a_missing_namespace_are_refused(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        with pytest.raises(ApiError) as err:
            await api.create(info(api, "", "v1", "configmaps"), "nowhere", configmap("x"), MANAGER)
        assert err.value.code == 404 and err.value.message == 'namespaces "nowhere" not found'

    run(tmp_path, body)


def test_an_object_with_finalizers_is_only_marked_and_goes_when_the_last_finalizer_goes(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        cms = info(api, "", "v1", "configmaps")
        obj = configmap("held")
        obj["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
        await api.create(cms, "default", obj, MANAGER)
        marked = await api.delete(cms, "default", "held", {}, MANAGER)
        assert marked.pending and marked.obj["metadata"]["deletionTimestamp"]
        with pytest.raises(ApiError) as err:
            await api.patch(
                cms,
                "default",
                "held",
                "merge",
                {"metadata": {"finalizers": ["example.com/a", "example.com/b", "example.com/c"]}},
                MANAGER,
            )
        assert err.value.code == 422
        await api.patch(
            cms,
            "default",
            "held",
            "merge",
            {"metadata": {"finalizers": ["example.com/b"]}},
            MANAGER,
        )
        assert api.store.get("core/configmaps", "default", "held") is not None
        await api.patch(
            cms,
            "default",
            "held",
            "json",
            [{"op": "remove", "path": "/metadata/finalizers"}],
            MANAGER,
        )
        assert api.store.get("core/configmaps", "default", "held") is None

    run(tmp_path, body)


def test_propagation_policies_add_gc_finalizers_only_when_garbage_collection_runs(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        await api.create(deploys, "default", deployment("orphaned"), MANAGER)
        out = await api.delete(
            deploys, "default", "orphaned", {"propagationPolicy": "Orphan"}, MANAGER
        )
        assert out.pending and out.obj["metadata"]["finalizers"] == ["orphan"]
        with pytest.raises(ApiError) as err:
            await api.delete(
                deploys, "default", "orphaned", {"propagationPolicy": "Sideways"}, MANAGER
            )
        assert err.value.code == 422

    run(tmp_path, body, ApiOptions(garbage_collection=True))

    async def without_gc(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        await api.create(deploys, "default", deployment("gone"), MANAGER)
        out = await api.delete(deploys, "default", "gone", {"propagationPolicy": "Orphan"}, MANAGER)
        assert not out.pending
        assert api.store.get("apps/deployments", "default", "gone") is None

    run(tmp_path / "nogc", without_gc)


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        cms = info(api, "", "v1", "configmaps")
        before = api.store.revision
        out = await api.create(cms, "default", configmap("dry", k="v"), DRY)
        assert out.obj["metadata"]["uid"]
        await api.create(cms, "default", configmap("real", k="v"), MANAGER)
        await api.patch(cms, "default", "real", "merge", {"data": {"k": "changed"}}, DRY)
        await api.delete(cms, "default", "real", {}, DRY)
        assert api.store.get("core/configmaps", "default", "dry") is None
        real = api.store.get("core/configmaps", "default", "real")
        assert real is not None and real.obj()["data"] == {"k": "v"}
        assert api.store.revision == before + 1

    run(tmp_path, body)


def test_the_status_subresource_changes_only_status_and_the_main_resource_only_the_rest(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        await api.create(deploys, "default", deployment("s"), MANAGER)
        out = (
            await api.patch(
                deploys,
                "default",
                "s",
                "merge",
                {"spec": {"replicas": 9}, "status": {"replicas": 4}},
                MANAGER,
                "status",
            )
        ).obj
        assert out["status"]["replicas"] == 4 and out["spec"]["replicas"] == 1
        out = (
            await api.patch(deploys, "default", "s", "merge", {"status": {"replicas": 7}}, MANAGER)
        ).obj
        assert out["status"]["replicas"] == 4

    run(tmp_path, body)


def test_the_scale_subresource_reads_and_writes_replicas(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        created = (await api.create(deploys, "default", deployment("sc", replicas=2), MANAGER)).obj
        scale = api.to_scale(deploys, created)
        assert scale["spec"] == {"replicas": 2} and scale["status"]["selector"] == "app=sc"
        out = await api.update_scale(deploys, "default", "sc", {"spec": {"replicas": 5}}, MANAGER)
        assert out.obj["spec"]["replicas"] == 5
        stored = api.store.get("apps/deployments", "default", "sc")
        assert stored is not None and stored.obj()["spec"]["replicas"] == 5

    run(tmp_path, body)


def test_binding_assigns_a_pod_to_a_node_once(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        pods = info(api, "", "v1", "pods")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        await api.create(pods, "default", pod, MANAGER)
        unschedulable = {
            "status": {
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
                ]
            }
        }
        await api.patch(pods, "default", "p", "merge", unschedulable, MANAGER, "status")
        await api.bind(pods, "default", "p", {"target": {"name": "node-1"}}, MANAGER)
        bound = api.store.get("core/pods", "default", "p")
        assert bound is not None and bound.obj()["spec"]["nodeName"] == "node-1"
        scheduled = [c for c in bound.obj()["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert [c["status"] for c in scheduled] == ["True"]
        with pytest.raises(ApiError) as err:
            await api.bind(pods, "default", "p", {"target": {"name": "node-2"}}, MANAGER)
        assert err.value.code == 409

    run(tmp_path, body)


def test_a_pod_bound_to_a_node_is_deleted_gracefully_unless_the_grace_period_is_zero(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        pods = info(api, "", "v1", "pods")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "g"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
        }
        await api.create(pods, "default", pod, MANAGER)
        marked = await api.delete(pods, "default", "g", {}, MANAGER)
        assert marked.pending and marked.obj["metadata"]["deletionGracePeriodSeconds"] == 30
        gone = await api.delete(pods, "default", "g", {"gracePeriodSeconds": 0}, MANAGER)
        assert not gone.pending
        assert api.store.get("core/pods", "default", "g") is None

    run(tmp_path, body)


def test_deleting_a_namespace_marks_it_terminating_and_refuses_new_content(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        nss = info(api, "", "v1", "namespaces")
        await api.create(
            nss, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"}}, MANAGER
        )
        out = await api.delete(nss, "", "old", {}, MANAGER)
        assert out.pending and out.obj["status"]["phase"] == "Terminating"
        with pytest.raises(ApiError) as err:
            await api.create(info(api, "", "v1", "configmaps"), "old", configmap("late"), MANAGER)
        assert err.value.code == 403 and "being terminated" in err.value.message
        finalized = dict(out.obj)
        finalized["spec"] = {"finalizers": []}
        await api.replace(nss, "", "old", finalized, MANAGER, "finalize")
        assert api.store.get("core/namespaces", "", "old") is None

    run(tmp_path, body)


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v2",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                        },
                    }
                },
            },
            {
                "name": "v1",
                "served": True,
                "storage": False,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            },
        ],
    },
}


def test_a_crd_serves_its_versions_from_one_storage_version_and_reports_established(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        crds = info(api, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
        out = (await api.create(crds, "", CRD, MANAGER)).obj
        conditions = {c["type"]: c["status"] for c in out["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert out["status"]["storedVersions"] == ["v2"]
        v1 = info(api, "example.com", "v1", "gadgets")
        v2 = info(api, "example.com", "v2", "gadgets")
        created = (
            await api.create(
                v1,
                "default",
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Gadget",
                    "metadata": {"name": "g"},
                    "spec": {"size": 3},
                },
                MANAGER,
            )
        ).obj
        assert created["apiVersion"] == "example.com/v1"
        stored = api.store.get(v2.store_key, "default", "g")
        assert stored is not None and stored.obj()["apiVersion"] == "example.com/v2"
        assert api.get(v2, "default", "g").obj()["spec"] == {"size": 3}
        with pytest.raises(ApiError) as err:
            await api.create(
                v2,
                "default",
                {
                    "apiVersion": "example.com/v2",
                    "kind": "Gadget",
                    "metadata": {"name": "bad"},
                    "spec": {"size": "big"},
                },
                MANAGER,
            )
        assert err.value.code == 422
        await api.delete(crds, "", "gadgets.example.com", {}, MANAGER)
        assert api.registry.get("example.com", "v2", "gadgets") is None
        assert api.store.get(v2.store_key, "default", "g") is None

    run(tmp_path, body)


def test_unknown_fields_are_dropped_with_a_warning_or_refused_when_strict(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        cms = info(api, "", "v1", "configmaps")
        obj = configmap("u", k="v")
        obj["bogus"] = 1
        out = await api.create(cms, "default", obj, MANAGER)
        assert "bogus" not in out.obj and out.warnings == ['unknown field "bogus"']
        strict = configmap("s")
        strict["bogus"] = 1
        with pytest.raises(ApiError) as err:
            await api.create(
                cms, "default", strict, WriteOptions(field_manager="t", field_validation="Strict")
            )
        assert err.value.code == 400 and 'unknown field "bogus"' in err.value.message

    run(tmp_path, body)


def test_server_side_apply_creates_then_updates_and_needs_a_field_manager(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        deploys = info(api, "apps", "v1", "deployments")
        created = await api.patch(deploys, "default", "ssa", "apply", deployment("ssa"), MANAGER)
        assert created.created and created.obj["spec"]["strategy"]["type"] == "RollingUpdate"
        updated = await api.patch(
            deploys, "default", "ssa", "apply", deployment("ssa", replicas=3), MANAGER
        )
        assert not updated.created and updated.obj["spec"]["replicas"] == 3
        with pytest.raises(ApiError) as err:
            await api.patch(deploys, "default", "ssa", "apply", deployment("ssa"), WriteOptions())
        assert err.value.code == 400

    run(tmp_path, body)


def test_a_service_update_that_omits_allocated_values_keeps_them(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        svcs = info(api, "", "v1", "services")
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "np"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.43.0.10",
                "ports": [{"port": 80, "nodePort": 30080}],
            },
        }
        created = (await api.create(svcs, "default", svc, MANAGER)).obj
        replacement = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "np", "resourceVersion": created["metadata"]["resourceVersion"]},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]},
        }
        out = (await api.replace(svcs, "default", "np", replacement, MANAGER)).obj
        assert out["spec"]["clusterIP"] == "10.43.0.10"
        assert out["spec"]["ports"][0]["nodePort"] == 30080

    run(tmp_path, body)


def test_a_namespace_update_keeps_its_spec_finalizers(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        nss = info(api, "", "v1", "namespaces")
        await api.create(
            nss,
            "",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keep"}},
            MANAGER,
        )
        out = (
            await api.replace(
                nss,
                "",
                "keep",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "keep", "labels": {"a": "b"}},
                },
                MANAGER,
            )
        ).obj
        assert out["spec"]["finalizers"] == ["kubernetes"]
        assert out["metadata"]["labels"]["a"] == "b"

    run(tmp_path, body)


def test_a_status_update_of_a_pod_being_deleted_gracefully_does_not_remove_it(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        pods = info(api, "", "v1", "pods")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "graceful"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
        }
        await api.create(pods, "default", pod, MANAGER)
        await api.delete(pods, "default", "graceful", {}, MANAGER)
        await api.patch(
            pods,
            "default",
            "graceful",
            "merge",
            {"status": {"phase": "Running"}},
            MANAGER,
            "status",
        )
        assert api.store.get("core/pods", "default", "graceful") is not None

    run(tmp_path, body)
