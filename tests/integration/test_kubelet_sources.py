"""The kubelet's TTL cache of ConfigMaps, Secrets and volumes (runtime.kubelet.sources)
against a real API server process, and the env/volume code reading through it."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from kubeclient.rest import Client, ClusterConfig, load_kubeconfig
from runtime.kubelet.env import container_env
from runtime.kubelet.sources import CachedSource, SourceError
from runtime.kubelet.volumes import VolumeManager
from tests.conftest import ClusterProcess, free_port

pytestmark = pytest.mark.integration


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_objects_are_cached_for_the_ttl_and_reread_after_it(cluster: ClusterProcess) -> None:
    async def go() -> None:
        now = [0.0]
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            await client.create("v1", "namespaces", _ns("src-ttl"))
            await client.create("v1", "configmaps", _cm("app", color="blue"), "src-ttl")
            source = CachedSource(client, ttl=30, clock=lambda: now[0])
            first = await source.get("v1", "configmaps", "src-ttl", "app")
            assert first is not None and first["data"] == {"color": "blue"}
            await client.patch("v1", "configmaps", "app", {"data": {"color": "red"}}, "src-ttl")
            now[0] = 29.0
            cached = await source.get("v1", "configmaps", "src-ttl", "app")
            assert cached is not None and cached["data"] == {"color": "blue"}
            assert source.fetches == 1
            now[0] = 30.0
            fresh = await source.get("v1", "configmaps", "src-ttl", "app")
            assert fresh is not None and fresh["data"] == {"color": "red"}
            assert source.fetches == 2

    asyncio.run(go())


def test_not_found_is_cached_until_invalidated(cluster: ClusterProcess) -> None:
    async def go() -> None:
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            await client.create("v1", "namespaces", _ns("src-nf"))
            source = CachedSource(client, ttl=600)
            assert await source.get("v1", "secrets", "src-nf", "later") is None
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "later"},
                "stringData": {"token": "t0k3n"},
            }
            await client.create("v1", "secrets", secret, "src-nf")
            assert await source.get("v1", "secrets", "src-nf", "later") is None
            assert source.fetches == 1
            source.invalidate("src-nf", "later")
            found = await source.get("v1", "secrets", "src-nf", "later")
            assert found is not None
            assert base64.b64decode(found["data"]["token"]) == b"t0k3n"

    asyncio.run(go())


def test_cluster_scoped_objects_are_read_with_an_empty_namespace(
    cluster: ClusterProcess,
) -> None:
    async def go() -> None:
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            source = CachedSource(client)
            ns = await source.get("v1", "namespaces", "", "default")
            assert ns is not None and ns["metadata"]["name"] == "default"

    asyncio.run(go())


def test_an_unreachable_api_server_is_a_retryable_source_error() -> None:
    async def go() -> None:
        config = ClusterConfig(server=f"http://127.0.0.1:{free_port()}")
        async with Client(config, timeout=5) as client:
            source = CachedSource(client)
            with pytest.raises(SourceError) as err:
                await source.get("v1", "configmaps", "default", "app")
            assert err.value.retryable and "configmaps default/app" in err.value.message

    asyncio.run(go())


def test_env_and_volumes_read_through_the_cache_from_the_server(
    cluster: ClusterProcess, tmp_path: Path
) -> None:
    async def go() -> None:
        async with Client(load_kubeconfig(cluster.kubeconfig)) as client:
            await client.create("v1", "namespaces", _ns("src-pod"))
            await client.create("v1", "configmaps", _cm("app", color="blue"), "src-pod")
            source = CachedSource(client, ttl=0)
            container = {
                "name": "app",
                "image": "busybox",
                "envFrom": [{"configMapRef": {"name": "app"}}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
            }
            pod = {
                "metadata": {"name": "p", "namespace": "src-pod", "uid": "uid-p"},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "cfg", "configMap": {"name": "app"}}],
                },
            }
            env = await container_env(
                pod, container, source, node_name="n", node_ip="", pod_ip="", pod_ips=[]
            )
            assert env == [("color", "blue")]
            manager = VolumeManager(tmp_path / "pods", source, memory_root=tmp_path / "mem")
            await manager.setup(pod)
            (mount,) = manager.mounts(pod, container)
            assert (Path(mount.host_path) / "color").read_text() == "blue"
            await client.patch("v1", "configmaps", "app", {"data": {"color": "red"}}, "src-pod")
            assert await manager.refresh(pod) is True
            assert (Path(mount.host_path) / "color").read_text() == "red"
            await manager.teardown("uid-p")

    asyncio.run(go())
