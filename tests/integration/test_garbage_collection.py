"""The garbage collector against a real cluster process (fake runtime): Background,
Foreground and Orphan propagation over hand-built ownership chains (ConfigMaps and
Pods with ownerReferences), absent owners, and kubectl's ``--cascade``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import kubectl, run, started, until

pytestmark = pytest.mark.integration

CONTROLLERS = "garbagecollector,namespace,serviceaccount,endpoints,endpointslice"


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


async def install_crd(c: Client) -> None:
    await c.create("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)

    async def served() -> bool:
        try:
            await c.list("example.com/v1", "widgets", "default")
            return True
        except KubeError:
            return False

    await until("the custom resource to be served", served)


@pytest.fixture(scope="module")
def gc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("gc"), nodes=1, controllers=CONTROLLERS) as proc:
        yield proc


def ref(owner: dict[str, Any], block: bool = True, controller: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
        "controller": controller,
    }


def configmap(
    name: str, *owners: dict[str, Any], finalizers: tuple[str, ...] = ()
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def pod(name: str, *owners: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "ownerReferences": list(owners)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "localhost/busybox:latest"}],
        },
    }


async def exists(client: Client, api: str, plural: str, name: str, ns: str) -> bool:
    try:
        await client.get(api, plural, name, ns)
        return True
    except KubeError as exc:
        if exc.not_found:
            return False
        raise


async def gone(client: Client, plural: str, name: str, ns: str) -> None:
    async def check() -> bool:
        return not await exists(client, "v1", plural, name, ns)

    await until(f"{plural}/{name} to be deleted", check)


async def new_namespace(client: Client, name: str) -> None:
    await client.create("v1", "namespaces", {"metadata": {"name": name}})


def test_deleting_an_owner_in_background_deletes_its_configmap_and_pod_dependents(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "gc-background"
        await new_namespace(c, ns)
        owner = await c.create("v1", "configmaps", configmap("owner"), ns)
        await c.create("v1", "configmaps", configmap("dep-cm", ref(owner)), ns)
        await c.create("v1", "pods", pod("dep-pod", ref(owner)), ns)
        await c.delete("v1", "configmaps", "owner", ns)
        await gone(c, "configmaps", "owner", ns)
        await gone(c, "configmaps", "dep-cm", ns)
        await gone(c, "pods", "dep-pod", ns)

    run(gc_cluster, body)


def test_a_three_level_chain_is_collected_level_by_level(gc_cluster: ClusterProcess) -> None:
    async def body(c: Client) -> None:
        ns = "gc-chain"
        await new_namespace(c, ns)
        top = await c.create("v1", "configmaps", configmap("top"), ns)
        mid = await c.create("v1", "configmaps", configmap("mid", ref(top, controller=True)), ns)
        await c.create("v1", "pods", pod("leaf", ref(mid, controller=True)), ns)
        await c.delete("v1", "configmaps", "top", ns, body={"propagationPolicy": "Background"})
        await gone(c, "configmaps", "mid", ns)
        await gone(c, "pods", "leaf", ns)

    run(gc_cluster, body)


def test_foreground_deletion_keeps_the_owner_until_its_blocking_dependents_are_gone(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "gc-foreground"
        await new_namespace(c, ns)
        top = await c.create("v1", "configmaps", configmap("top"), ns)
        mid = await c.create("v1", "configmaps", configmap("mid", ref(top)), ns)
        # The leaf holds its own finalizer, so the chain cannot finish until it is removed.
        await c.create(
            "v1", "configmaps", configmap("leaf", ref(mid), finalizers=("example.com/hold",)), ns
        )
        kubectl(
            gc_cluster,
            "-n",
            ns,
            "delete",
            "configmap",
            "top",
            "--cascade=foreground",
            "--wait=false",
        )

        async def leaf_deleting() -> bool:
            leaf = await c.get("v1", "configmaps", "leaf", ns)
            return bool(leaf["metadata"].get("deletionTimestamp"))

        await until("the leaf to be deleted", leaf_deleting)
        shown = json.loads(kubectl(gc_cluster, "-n", ns, "get", "configmap", "top", "-o", "json"))
        assert shown["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in shown["metadata"]["finalizers"]
        mid_now = await c.get("v1", "configmaps", "mid", ns)
        assert mid_now["metadata"].get("deletionTimestamp")
        assert "foregroundDeletion" in mid_now["metadata"]["finalizers"]
        await c.patch("v1", "configmaps", "leaf", {"metadata": {"finalizers": None}}, ns)
        await gone(c, "configmaps", "leaf", ns)
        await gone(c, "configmaps", "mid", ns)
        await gone(c, "configmaps", "top", ns)

    run(gc_cluster, body)


def test_orphan_deletion_with_kubectl_keeps_dependents_without_the_owner_reference(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "gc-orphan"
        await new_namespace(c, ns)
        owner = await c.create("v1", "configmaps", configmap("owner"), ns)
        other = await c.create("v1", "configmaps", configmap("other"), ns)
        await c.create("v1", "configmaps", configmap("dep-cm", ref(owner), ref(other)), ns)
        await c.create("v1", "pods", pod("dep-pod", ref(owner)), ns)
        kubectl(gc_cluster, "-n", ns, "delete", "configmap", "owner", "--cascade=orphan")
        await gone(c, "configmaps", "owner", ns)
        dep_cm = await c.get("v1", "configmaps", "dep-cm", ns)
        assert [r["name"] for r in dep_cm["metadata"]["ownerReferences"]] == ["other"]
        dep_pod = await c.get("v1", "pods", "dep-pod", ns)
        assert not dep_pod["metadata"].get("ownerReferences")
        assert not dep_pod["metadata"].get("deletionTimestamp")

    run(gc_cluster, body)


def test_a_dependent_whose_owner_never_existed_is_deleted(gc_cluster: ClusterProcess) -> None:
    async def body(c: Client) -> None:
        ns = "gc-absent"
        await new_namespace(c, ns)
        ghost = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "ghost",
            "uid": "00000000-0000-0000-0000-000000000001",
        }
        await c.create("v1", "configmaps", configmap("orphaned", ghost), ns)
        # Same name as an existing object, other uid: still absent.
        await c.create("v1", "configmaps", configmap("real"), ns)
        impostor = {**ghost, "name": "real", "uid": "00000000-0000-0000-0000-000000000002"}
        await c.create("v1", "configmaps", configmap("fooled", impostor), ns)
        await gone(c, "configmaps", "orphaned", ns)
        await gone(c, "configmaps", "fooled", ns)
        assert await exists(c, "v1", "configmaps", "real", ns)

    run(gc_cluster, body)


def test_a_dependent_with_another_live_owner_only_loses_the_deleted_owners_reference(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "gc-shared"
        await new_namespace(c, ns)
        one = await c.create("v1", "configmaps", configmap("one"), ns)
        two = await c.create("v1", "configmaps", configmap("two"), ns)
        await c.create("v1", "configmaps", configmap("shared", ref(one), ref(two)), ns)
        await c.delete("v1", "configmaps", "one", ns)

        async def one_ref_left() -> bool:
            shared = await c.get("v1", "configmaps", "shared", ns)
            return [r["name"] for r in shared["metadata"].get("ownerReferences") or []] == ["two"]

        await until("the reference to the deleted owner to be removed", one_ref_left)
        await c.delete("v1", "configmaps", "two", ns)
        await gone(c, "configmaps", "shared", ns)

    run(gc_cluster, body)


def test_an_owner_reference_to_an_object_in_another_namespace_counts_as_absent(
    gc_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        await new_namespace(c, "gc-ns-a")
        await new_namespace(c, "gc-ns-b")
        owner = await c.create("v1", "configmaps", configmap("owner"), "gc-ns-a")
        await c.create("v1", "configmaps", configmap("cross", ref(owner)), "gc-ns-b")
        await gone(c, "configmaps", "cross", "gc-ns-b")
        assert await exists(c, "v1", "configmaps", "owner", "gc-ns-a")

    run(gc_cluster, body)


def test_custom_resources_are_collected_and_can_own_objects(gc_cluster: ClusterProcess) -> None:
    async def body(c: Client) -> None:
        ns = "gc-custom"
        await new_namespace(c, ns)
        await install_crd(c)
        owner = await c.create("v1", "configmaps", configmap("owner"), ns)
        widget = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "ownerReferences": [ref(owner)]},
        }
        made = await c.create("example.com/v1", "widgets", widget, ns)
        await c.create("v1", "configmaps", configmap("owned-by-widget", ref(made)), ns)
        await c.delete("v1", "configmaps", "owner", ns)

        async def widget_gone() -> bool:
            return not await exists(c, "example.com/v1", "widgets", "w", ns)

        await until("the widget to be collected", widget_gone)
        await gone(c, "configmaps", "owned-by-widget", ns)

    run(gc_cluster, body)
