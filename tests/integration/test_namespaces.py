"""Namespace deletion and the ``default`` ServiceAccount against a real cluster process
(fake runtime): the namespace controller empties a terminating namespace (pods,
configmaps, secrets, a custom resource), reports what remains in its conditions, then
finalizes it; the API refuses new content meanwhile; the service-account controller
keeps ``default`` in every namespace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubeclient.rest import Client, KubeError
from tests.conftest import ClusterProcess
from tests.integration.harness import run, started, until
from tests.integration.test_garbage_collection import (
    CONTROLLERS,
    configmap,
    exists,
    install_crd,
    new_namespace,
    pod,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    with started(tmp_path_factory.mktemp("ns"), nodes=1, controllers=CONTROLLERS) as proc:
        yield proc


async def namespace_gone(c: Client, name: str) -> None:
    async def check() -> bool:
        return not await exists(c, "v1", "namespaces", name, "")

    await until(f"namespace {name} to be deleted", check)


def test_deleting_a_namespace_removes_all_its_content_then_the_namespace(
    ns_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "doomed"
        await install_crd(c)
        await new_namespace(c, ns)
        await c.create("v1", "pods", pod("p"), ns)
        await c.create("v1", "configmaps", configmap("cm"), ns)
        await c.create("v1", "secrets", {"metadata": {"name": "s"}, "stringData": {"a": "b"}}, ns)
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        await c.create("example.com/v1", "widgets", widget, ns)
        deleted = await c.delete("v1", "namespaces", ns)
        assert deleted["status"]["phase"] == "Terminating"
        await namespace_gone(c, ns)
        for api, plural in (
            ("v1", "pods"),
            ("v1", "configmaps"),
            ("v1", "secrets"),
            ("example.com/v1", "widgets"),
        ):
            assert (await c.list(api, plural, ns))["items"] == []

    run(ns_cluster, body)


def test_a_terminating_namespace_refuses_new_content_and_reports_remaining_finalizers(
    ns_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "lingering"
        await new_namespace(c, ns)
        await c.create("v1", "configmaps", configmap("held", finalizers=("example.com/hold",)), ns)
        await c.delete("v1", "namespaces", ns)

        conditions: dict[str, Any] = {}

        async def reported() -> bool:
            got = await c.get("v1", "namespaces", ns)
            conditions.clear()
            conditions.update({x["type"]: x for x in got["status"].get("conditions") or []})
            cond = conditions.get("NamespaceFinalizersRemaining")
            return cond is not None and cond["status"] == "True"

        await until("the namespace to report remaining finalizers", reported)
        assert conditions["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
        assert (
            "example.com/hold in 1 resource instances"
            in (conditions["NamespaceFinalizersRemaining"]["message"])
        )
        assert conditions["NamespaceContentRemaining"]["status"] == "True"
        assert (
            "configmaps has 1 resource instances"
            in (conditions["NamespaceContentRemaining"]["message"])
        )
        assert conditions["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
        with pytest.raises(KubeError) as refused:
            await c.create("v1", "configmaps", configmap("late"), ns)
        assert refused.value.status == 403 and refused.value.reason == "Forbidden"
        await c.patch("v1", "configmaps", "held", {"metadata": {"finalizers": None}}, ns)
        await namespace_gone(c, ns)

    run(ns_cluster, body)


def test_a_new_namespace_gets_a_default_service_account_which_comes_back_when_deleted(
    ns_cluster: ClusterProcess,
) -> None:
    async def body(c: Client) -> None:
        ns = "accounts"
        await new_namespace(c, ns)

        async def has_default() -> bool:
            return await exists(c, "v1", "serviceaccounts", "default", ns)

        await until("the default service account", has_default)
        first = await c.get("v1", "serviceaccounts", "default", ns)
        await c.delete("v1", "serviceaccounts", "default", ns)

        async def recreated() -> bool:
            try:
                again = await c.get("v1", "serviceaccounts", "default", ns)
            except KubeError:
                return False
            return bool(again["metadata"]["uid"] != first["metadata"]["uid"])

        await until("the default service account to be recreated", recreated)

    run(ns_cluster, body)


def test_the_default_namespace_has_a_default_service_account(ns_cluster: ClusterProcess) -> None:
    async def body(c: Client) -> None:
        async def has_default() -> bool:
            return await exists(c, "v1", "serviceaccounts", "default", "default")

        await until("default/default", has_default)

    run(ns_cluster, body)
