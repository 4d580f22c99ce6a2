"""The root CA certificate publisher (runtime.controllers.rootcacertpublisher) against
the in-memory API of the controller unit tests: ``kube-root-ca.crt`` in every active
namespace, with kube's annotation, recreated when deleted and put back when changed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime.controllers.manager import CONTROLLERS, enabled_controllers
from runtime.controllers.rootcacertpublisher import (
    CONFIG_MAP_NAME,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    RootCACertPublisher,
)
from tests.unit.test_job_fakeapi import FakeApi

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
Obj = dict[str, Any]


def namespace(name: str, phase: str = "Active") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "namespace": ""},
        "status": {"phase": phase},
    }


def publisher(tmp_path: Path) -> tuple[FakeApi, RootCACertPublisher]:
    api = FakeApi()
    ctx = api.context(tmp_path)
    ctx.ca_pem = CA
    return api, RootCACertPublisher(ctx)


def config_map(api: FakeApi, ns: str) -> Obj | None:
    return api.objects.get(("configmaps", ns, CONFIG_MAP_NAME))


def test_the_publisher_is_a_default_controller() -> None:
    assert "root-ca-cert-publisher" in CONTROLLERS
    assert "root-ca-cert-publisher" in enabled_controllers("*")


def test_every_active_namespace_gets_the_ca_config_map(tmp_path: Path) -> None:
    api, controller = publisher(tmp_path)
    api.put("v1", "namespaces", namespace("team"))
    api.put("v1", "namespaces", namespace("leaving", "Terminating"))
    asyncio.run(controller.sync("team"))
    asyncio.run(controller.sync("leaving"))
    asyncio.run(controller.sync("ghost"))
    cm = config_map(api, "team")
    assert cm is not None
    assert cm["data"] == {"ca.crt": CA.decode()}
    assert cm["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION}
    assert DESCRIPTION.startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver"
    )
    assert config_map(api, "leaving") is None and config_map(api, "ghost") is None


def test_a_deleted_config_map_is_recreated_and_a_changed_one_put_back(tmp_path: Path) -> None:
    api, controller = publisher(tmp_path)
    api.put("v1", "namespaces", namespace("team"))
    asyncio.run(controller.sync("team"))
    queued: list[str] = []
    controller.queue.add = queued.append  # type: ignore[method-assign, assignment]
    asyncio.run(api.delete("v1", "configmaps", CONFIG_MAP_NAME, "team"))
    assert queued == ["team"]
    asyncio.run(controller.sync("team"))
    assert config_map(api, "team") is not None

    cm = config_map(api, "team")
    assert cm is not None
    changed = {
        **cm,
        "data": {"ca.crt": "tampered", "extra": "x"},
        "metadata": {**cm["metadata"], "annotations": {"mine": "kept"}},
    }
    asyncio.run(api.replace("v1", "configmaps", CONFIG_MAP_NAME, changed, "team"))
    assert queued == ["team", "team"]
    asyncio.run(controller.sync("team"))
    fixed = config_map(api, "team")
    assert fixed is not None
    assert fixed["data"] == {"ca.crt": CA.decode()}
    assert fixed["metadata"]["annotations"] == {"mine": "kept", DESCRIPTION_ANNOTATION: DESCRIPTION}
    version = fixed["metadata"]["resourceVersion"]
    asyncio.run(controller.sync("team"))  # in step: nothing to write
    again = config_map(api, "team")
    assert again is not None and again["metadata"]["resourceVersion"] == version
