"""The ServiceAccount admission plugin (runtime.auth.serviceaccount_admission) wired
into a real ObjectAPI: the exact kube-api-access volume and mounts kube adds, the
automount switches, the missing-account refusal (and this cluster's ``default``
deviation), imagePullSecrets and mountable-secret enforcement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api.objects import ApiOptions, ObjectAPI, WriteOptions
from runtime.api.registry import Registry
from runtime.api.store import Store
from runtime.auth.serviceaccount_admission import ServiceAccountAdmission, generate_volume_name
from runtime.auth.user import UserInfo

Obj = dict[str, Any]
USER = WriteOptions(field_manager="tests", requester=UserInfo("alice", groups=("dev",)))
INTERNAL = WriteOptions(field_manager="tests")
NAME = "kube-api-access-abcde"
MOUNT = {
    "name": NAME,
    "readOnly": True,
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
}
VOLUME = {
    "name": "kube-api-access-abcde",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
        "defaultMode": 420,
    },
}


def run(tmp_path: Path, body: Callable[[ObjectAPI], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        registry = Registry()
        plugin = ServiceAccountAdmission(store, registry, generate_name=lambda: NAME)
        api = ObjectAPI(store, registry, schema.builtin(), ApiOptions(admission=(plugin,)))
        await api.bootstrap()
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


async def create(api: ObjectAPI, plural: str, obj: Obj, opts: WriteOptions = USER) -> Obj:
    info = api.registry.get("", "v1", plural)
    assert info is not None
    return (await api.create(info, "default", obj, opts)).obj


def account(name: str = "default", **fields: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields}


def pod(name: str = "web", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "busybox"},
                {
                    "name": "own",
                    "image": "busybox",
                    "volumeMounts": [
                        {
                            "name": "mine",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                },
            ],
            "volumes": [{"name": "mine", "emptyDir": {}}],
            **spec,
        },
    }


def test_the_generated_volume_name_is_kube_api_access_and_five_letters() -> None:
    name = generate_volume_name()
    assert name.startswith("kube-api-access-") and len(name) == len("kube-api-access-") + 5


def test_a_pod_gets_exactly_the_volume_and_mounts_kube_adds(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "serviceaccounts", account(), INTERNAL)
        spec = (await create(api, "pods", pod()))["spec"]
        assert spec["serviceAccountName"] == "default"
        assert spec["volumes"] == [{"name": "mine", "emptyDir": {}}, VOLUME]
        assert spec["initContainers"][0]["volumeMounts"] == [MOUNT]
        assert spec["containers"][0]["volumeMounts"] == [MOUNT]
        # A container with its own mount at the path keeps it.
        assert [m["name"] for m in spec["containers"][1]["volumeMounts"]] == ["mine"]

    run(tmp_path, body)


def test_automount_false_on_the_pod_or_the_account_adds_nothing(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "serviceaccounts", account(), INTERNAL)
        await create(
            api, "serviceaccounts", account("quiet", automountServiceAccountToken=False), INTERNAL
        )
        spec = (await create(api, "pods", pod("a", automountServiceAccountToken=False)))["spec"]
        assert spec["volumes"] == [{"name": "mine", "emptyDir": {}}]
        assert "volumeMounts" not in spec["containers"][0]
        spec = (await create(api, "pods", pod("b", serviceAccountName="quiet")))["spec"]
        assert spec["volumes"] == [{"name": "mine", "emptyDir": {}}]
        # The pod's own choice wins over the account's.
        spec = (
            await create(
                api,
                "pods",
                pod("c", serviceAccountName="quiet", automountServiceAccountToken=True),
            )
        )["spec"]
        assert spec["volumes"][-1] == VOLUME

    run(tmp_path, body)


def test_a_named_account_that_does_not_exist_is_refused_with_kubes_message(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        with pytest.raises(ApiError) as err:
            await create(api, "pods", pod(serviceAccountName="robot"))
        assert err.value.code == 403
        assert err.value.message == (
            'pods "web" is forbidden: error looking up service account default/robot: '
            'serviceaccount "robot" not found'
        )
        assert api.store.latest("core/pods", "default", "web") is None

    run(tmp_path, body)


def test_a_missing_default_account_still_admits_the_pod_with_its_volume(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        spec = (await create(api, "pods", pod()))["spec"]
        assert spec["volumes"][-1] == VOLUME

    run(tmp_path, body)


def test_internal_writes_and_mirror_pods_are_left_alone(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        spec = (await create(api, "pods", pod("a"), INTERNAL))["spec"]
        assert spec["volumes"] == [{"name": "mine", "emptyDir": {}}]
        mirror = pod("b")
        mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
        mirror["spec"]["nodeName"] = "node-0"
        spec = (await create(api, "pods", mirror))["spec"]
        assert spec["volumes"] == [{"name": "mine", "emptyDir": {}}]

    run(tmp_path, body)


def test_image_pull_secrets_come_from_the_account_and_mountable_secrets_are_enforced(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        strict = account(
            "strict",
            secrets=[{"name": "allowed"}],
            imagePullSecrets=[{"name": "registry"}],
        )
        strict["metadata"]["annotations"] = {"kubernetes.io/enforce-mountable-secrets": "true"}
        await create(api, "serviceaccounts", strict, INTERNAL)
        spec = (await create(api, "pods", pod("a", serviceAccountName="strict")))["spec"]
        assert spec["imagePullSecrets"] == [{"name": "registry"}]
        bad = pod("b", serviceAccountName="strict")
        bad["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "db"}}]
        with pytest.raises(ApiError) as err:
            await create(api, "pods", bad)
        assert err.value.message == (
            'pods "b" is forbidden: container app with envFrom referencing '
            'secret.secretName="db" is not allowed because service account strict does not '
            "reference that secret"
        )
        bad = pod("c", serviceAccountName="strict", imagePullSecrets=[{"name": "other"}])
        with pytest.raises(ApiError) as err:
            await create(api, "pods", bad)
        assert err.value.message == (
            'pods "c" is forbidden: imagePullSecrets[0].name="other" is not allowed because '
            "service account strict does not reference that imagePullSecret"
        )

    run(tmp_path, body)
