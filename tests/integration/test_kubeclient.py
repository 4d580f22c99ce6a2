"""The asyncio client and informers against a real API server process over HTTPS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubeclient.informer import Informer, running, wait_synced
from kubeclient.rest import Client, KubeError, load_kubeconfig
from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_the_client_reads_the_kubeconfig_and_does_crud(cluster: ClusterProcess) -> None:
    async def go() -> None:
        config = load_kubeconfig(cluster.kubeconfig)
        assert config.server == cluster.url and config.token
        async with Client(config) as client:
            created = await client.create("v1", "configmaps", _cm("kc", a="1"), "default")
            assert created["metadata"]["uid"]
            patched = await client.patch("v1", "configmaps", "kc", {"data": {"b": "2"}}, "default")
            assert patched["data"] == {"a": "1", "b": "2"}
            with pytest.raises(KubeError) as err:
                await client.create("v1", "configmaps", _cm("kc"), "default")
            assert err.value.already_exists and not err.value.retryable
            await client.delete("v1", "configmaps", "kc", "default")
            with pytest.raises(KubeError) as err:
                await client.get("v1", "configmaps", "kc", "default")
            assert err.value.not_found

    asyncio.run(go())


def test_an_informer_fills_its_cache_and_calls_handlers(cluster: ClusterProcess) -> None:
    async def go() -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            await client.create(
                "v1",
                "namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "inf"}},
            )
            await client.create("v1", "configmaps", _cm("before"), "inf")
            informer = Informer(client, "v1", "configmaps", namespace="inf")
            informer.add_index("color", lambda o: [str((o.get("data") or {}).get("color", ""))])
            informer.on(
                add=lambda o: events.append(("add", o["metadata"]["name"])),
                update=lambda old, new: events.append(("update", new["metadata"]["name"])),
                delete=lambda o: events.append(("delete", o["metadata"]["name"])),
            )
            async with running(informer):
                await wait_synced(informer)
                assert informer.get("inf/before") is not None
                await client.create("v1", "configmaps", _cm("after", color="red"), "inf")
                await client.patch("v1", "configmaps", "before", {"data": {"color": "red"}}, "inf")
                await client.delete("v1", "configmaps", "after", "inf")
                for _ in range(100):
                    if ("delete", "after") in events:
                        break
                    await asyncio.sleep(0.05)
                assert [o["metadata"]["name"] for o in informer.by_index("color", "red")] == [
                    "before"
                ]
        return events

    assert asyncio.run(go()) == [
        ("add", "before"),
        ("add", "after"),
        ("update", "before"),
        ("delete", "after"),
    ]
