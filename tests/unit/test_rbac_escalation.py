"""RBAC escalation prevention as an admission plugin of a real object layer: roles and
bindings may only grant what the requester holds, unless it may escalate/bind."""

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
from runtime.auth.attributes import PrivilegedGroups, Union
from runtime.auth.escalation import RBACEscalationCheck
from runtime.auth.rbac import RBACAuthorizer
from runtime.auth.user import UserInfo

G = "rbac.authorization.k8s.io"
SERVER = WriteOptions(field_manager="tests")
BOB = UserInfo("bob", groups=("devs", "system:authenticated"))
ADMIN = UserInfo("root", groups=("system:masters", "system:authenticated"))

STAR = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
POD_READER = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}

HEADER = (
    'user "bob" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC '
    "permissions not currently held:\n"
)


def as_(who: UserInfo) -> WriteOptions:
    return WriteOptions(field_manager="tests", requester=who)


def run(tmp_path: Path, body: Callable[[ObjectAPI], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        registry = Registry()
        rbac = RBACAuthorizer(store, registry)
        authorizer = Union([PrivilegedGroups(["system:masters"]), rbac])
        options = ApiOptions(admission=[RBACEscalationCheck(rbac, authorizer)])
        api = ObjectAPI(store, registry, schema.builtin(), options)
        await api.bootstrap()
        ns = api.registry.get("", "v1", "namespaces")
        assert ns is not None
        body_ = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
        await api.create(ns, "", body_, SERVER)
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


async def create(
    api: ObjectAPI, plural: str, obj: dict[str, Any], opts: WriteOptions, namespace: str = ""
) -> dict[str, Any]:
    info = api.registry.get(G, "v1", plural)
    assert info is not None
    return (await api.create(info, namespace, obj, opts)).obj


def cluster_role(name: str, *rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
        **extra,
    }


def role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def binding(kind: str, name: str, ref_kind: str, ref: str, subject: str = "bob") -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": G, "kind": ref_kind, "name": ref},
        "subjects": [{"apiGroup": G, "kind": "User", "name": subject}],
    }


async def grant_bob(api: ObjectAPI, name: str, *rules: dict[str, Any], namespace: str = "") -> None:
    """Give bob ``rules`` (as the server, which skips the checks)."""
    await create(api, "clusterroles", cluster_role(name, *rules), SERVER)
    if namespace:
        await create(
            api,
            "rolebindings",
            binding("RoleBinding", name, "ClusterRole", name),
            SERVER,
            namespace,
        )
    else:
        await create(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", name, "ClusterRole", name),
            SERVER,
        )


def test_creating_a_cluster_role_with_rules_not_held_is_forbidden_with_kubes_message(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        with pytest.raises(ApiError) as err:
            await create(api, "clusterroles", cluster_role("god", STAR), as_(BOB))
        assert err.value.code == 403
        assert err.value.message == (
            'clusterroles.rbac.authorization.k8s.io "god" is forbidden: '
            + HEADER
            + '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}'
        )
        assert err.value.details == {"name": "god", "group": G, "kind": "clusterroles"}

    run(tmp_path, body)


def test_missing_rules_are_compacted_by_resource_and_sorted(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await grant_bob(
            api, "get-pods", {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
        )
        wanted = {
            "apiGroups": ["", "apps"],
            "resources": ["pods", "deployments"],
            "verbs": ["get", "list"],
        }
        with pytest.raises(ApiError) as err:
            await create(api, "clusterroles", cluster_role("more", wanted), as_(BOB))
        assert err.value.message.split(":\n", 1)[1].split("\n") == [
            '{APIGroups:[""], Resources:["deployments"], Verbs:["get" "list"]}',
            '{APIGroups:[""], Resources:["pods"], Verbs:["list"]}',
            '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}',
            '{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "list"]}',
        ]

    run(tmp_path, body)


def test_a_role_within_what_the_requester_holds_in_its_namespace_is_allowed(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await grant_bob(api, "reader", POD_READER, namespace="team")
        await create(api, "roles", role("pods", POD_READER), as_(BOB), "team")
        # Held only in "team": not cluster-wide, so not as a ClusterRole.
        with pytest.raises(ApiError) as err:
            await create(api, "clusterroles", cluster_role("pods", POD_READER), as_(BOB))
        assert err.value.code == 403

    run(tmp_path, body)


def test_the_escalate_verb_allows_writing_any_role(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await grant_bob(
            api,
            "escalator",
            {"apiGroups": [G], "resources": ["roles"], "verbs": ["escalate"]},
            namespace="team",
        )
        await create(api, "roles", role("god", STAR), as_(BOB), "team")
        with pytest.raises(ApiError):
            await create(api, "clusterroles", cluster_role("god", STAR), as_(BOB))

    run(tmp_path, body)


def test_escalate_limited_to_names_does_not_cover_creates(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        named = {
            "apiGroups": [G],
            "resources": ["clusterroles"],
            "verbs": ["escalate"],
            "resourceNames": ["god"],
        }
        await grant_bob(api, "escalator", named)
        with pytest.raises(ApiError):
            await create(api, "clusterroles", cluster_role("god", STAR), as_(BOB))
        await create(api, "clusterroles", cluster_role("god"), SERVER)
        info = api.registry.get(G, "v1", "clusterroles")
        assert info is not None
        current = api.get(info, "", "god").obj()
        current["rules"] = [STAR]
        await api.replace(info, "", "god", current, as_(BOB))

    run(tmp_path, body)


def test_system_masters_may_write_anything(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "clusterroles", cluster_role("god", STAR), as_(ADMIN))
        await create(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "god", "ClusterRole", "god"),
            as_(ADMIN),
        )

    run(tmp_path, body)


def test_an_aggregation_rule_needs_cluster_admin(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await grant_bob(
            api, "roles", {"apiGroups": [G], "resources": ["clusterroles"], "verbs": ["create"]}
        )
        aggregated = cluster_role(
            "agg", aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
        )
        with pytest.raises(ApiError) as err:
            await create(api, "clusterroles", aggregated, as_(BOB))
        assert err.value.message == (
            'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: '
            "must have cluster-admin privileges to use the aggregationRule"
        )

    run(tmp_path, body)


def test_binding_a_role_whose_rules_are_not_held_is_forbidden(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "clusterroles", cluster_role("god", STAR), SERVER)
        with pytest.raises(ApiError) as err:
            await create(
                api,
                "rolebindings",
                binding("RoleBinding", "b", "ClusterRole", "god", "eve"),
                as_(BOB),
                "team",
            )
        assert err.value.code == 403
        assert err.value.message == (
            'rolebindings.rbac.authorization.k8s.io "b" is forbidden: '
            + HEADER
            + '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}'
        )

    run(tmp_path, body)


def test_binding_a_role_whose_rules_are_held_is_allowed(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await grant_bob(api, "reader", POD_READER, namespace="team")
        await create(
            api,
            "rolebindings",
            binding("RoleBinding", "b", "ClusterRole", "reader", "eve"),
            as_(BOB),
            "team",
        )
        with pytest.raises(ApiError):
            await create(
                api,
                "clusterrolebindings",
                binding("ClusterRoleBinding", "b", "ClusterRole", "reader", "eve"),
                as_(BOB),
            )

    run(tmp_path, body)


def test_the_bind_verb_allows_binding_the_named_role(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "clusterroles", cluster_role("god", STAR), SERVER)
        may_bind = {
            "apiGroups": [G],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["god"],
        }
        await grant_bob(api, "binder", may_bind, namespace="team")
        await create(
            api,
            "rolebindings",
            binding("RoleBinding", "b", "ClusterRole", "god", "eve"),
            as_(BOB),
            "team",
        )
        with pytest.raises(ApiError):
            await create(
                api,
                "clusterrolebindings",
                binding("ClusterRoleBinding", "b", "ClusterRole", "god", "eve"),
                as_(BOB),
            )

    run(tmp_path, body)


def test_binding_a_missing_role_is_not_found(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        with pytest.raises(ApiError) as err:
            await create(
                api, "rolebindings", binding("RoleBinding", "b", "Role", "ghost"), as_(BOB), "team"
            )
        assert err.value.code == 404
        assert err.value.message == 'roles.rbac.authorization.k8s.io "ghost" not found'

    run(tmp_path, body)


def test_an_update_touching_only_finalizers_is_not_checked(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        await create(api, "clusterroles", cluster_role("god", STAR), SERVER)
        info = api.registry.get(G, "v1", "clusterroles")
        assert info is not None
        current = api.get(info, "", "god").obj()
        current["metadata"]["finalizers"] = ["example.com/keep"]
        await api.replace(info, "", "god", current, as_(BOB))
        current = api.get(info, "", "god").obj()
        current["metadata"]["labels"] = {"a": "b"}
        with pytest.raises(ApiError):
            await api.replace(info, "", "god", current, as_(BOB))

    run(tmp_path, body)
