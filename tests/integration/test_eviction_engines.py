"""emptyDir ``sizeLimit`` eviction on podman AND docker: a container that writes 2 MiB
into a 1Mi emptyDir gets its pod evicted (phase Failed, reason Evicted, Kubernetes'
message, DisruptionTarget, containers stopped) by the kubelet's next check, while a pod
that stays under its limit keeps running. (The same with the fake runtime, faster:
tests/integration/test_kubelet_eviction.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from kubeclient.rest import Client
from tests.integration.harness import BUSYBOX, run, started
from tests.integration.netharness import namespace, until

pytestmark = pytest.mark.integration

NS = "evict"


def writer(name: str, kib: int) -> dict[str, Any]:
    """A pod writing ``kib`` KiB into its 1Mi emptyDir, then sleeping."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}],
            "containers": [
                {
                    "name": "writer",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": [
                        "sh",
                        "-c",
                        f"busybox dd if=/dev/zero of=/cache/data bs=1024 count={kib}"
                        " && exec sleep 3600",
                    ],
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                }
            ],
        },
    }


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_a_pod_writing_past_its_empty_dir_size_limit_is_evicted(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with started(
        tmp_path_factory.mktemp(f"evict-{engine}"),
        runtime=engine,
        start_timeout=90.0,
        stop_timeout=90.0,
    ) as proc:

        async def body(client: Client) -> None:
            await client.create("v1", "namespaces", namespace(NS))
            await client.create("v1", "pods", writer("big", 2048), namespace=NS)
            await client.create("v1", "pods", writer("small", 256), namespace=NS)

            async def failed() -> dict[str, Any] | None:
                pod = await client.get("v1", "pods", "big", namespace=NS)
                return pod if pod["status"].get("phase") == "Failed" else None

            status = (await until("the big pod to be evicted", failed))["status"]
            message = 'Usage of EmptyDir volume "cache" exceeds the limit "1Mi". '
            assert (status["reason"], status["message"]) == ("Evicted", message)
            conditions = {c["type"]: c for c in status["conditions"]}
            assert conditions["DisruptionTarget"]["reason"] == "TerminationByKubelet"

            async def stopped() -> bool:
                pod = await client.get("v1", "pods", "big", namespace=NS)
                states = [s["state"] for s in pod["status"].get("containerStatuses") or []]
                return bool(states) and all("terminated" in s for s in states)

            await until("the big pod's container to stop", stopped)
            small = await client.get("v1", "pods", "small", namespace=NS)
            assert small["status"]["phase"] == "Running"

        run(proc, body)
