"""The bootstrap RBAC policy written into a real store: kube's default roles and
bindings, what they grant, and the reconciliation of auto-updated objects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubemodel import schema
from runtime.api.objects import ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.store import Store
from runtime.auth.attributes import ALLOW, Attributes
from runtime.auth.bootstrap import ensure_bootstrap_policy
from runtime.auth.policy import AUTOUPDATE
from runtime.auth.rbac import RBACAuthorizer
from runtime.auth.user import ANONYMOUS, UserInfo
from runtime.controllers.clusterroleaggregation import aggregated_rules

G = "rbac.authorization.k8s.io"
OPTS = WriteOptions(field_manager="tests")


def run(tmp_path: Path, body: Callable[[ObjectAPI, RBACAuthorizer], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin())
        await api.bootstrap()
        authz = RBACAuthorizer(store, api.registry)
        await ensure_bootstrap_policy(api)
        try:
            await body(api, authz)
        finally:
            await store.close()

    asyncio.run(go())


def info(api: ObjectAPI, plural: str) -> ResourceInfo:
    found = api.registry.get(G, "v1", plural)
    assert found is not None
    return found


def stored(api: ObjectAPI, plural: str, name: str, namespace: str = "") -> dict[str, Any]:
    return api.get(info(api, plural), namespace, name).obj()


async def aggregate(api: ObjectAPI) -> None:
    """What the clusterrole-aggregation controller does, once (admin aggregates edit,
    which aggregates view: two passes settle it)."""
    for _ in range(2):
        roles = [e.obj() for e in api.store.iter(info(api, "clusterroles").store_key)]
        for role in roles:
            if role.get("aggregationRule"):
                rules = aggregated_rules(role, roles)
                if rules != (role.get("rules") or []):
                    role["rules"] = rules
                    await api.replace(
                        info(api, "clusterroles"), "", role["metadata"]["name"], role, OPTS
                    )


async def bind(api: ObjectAPI, who: str, cluster_role: str, namespace: str) -> None:
    body = {
        "apiVersion": f"{G}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{who}-{cluster_role}"},
        "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": G, "kind": "User", "name": who}],
    }
    ns = api.registry.get("", "v1", "namespaces")
    assert ns is not None
    if api.store.latest(ns.store_key, "", namespace) is None:
        await api.create(
            ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, OPTS
        )
    await api.create(info(api, "rolebindings"), namespace, body, OPTS)


def may(
    authz: RBACAuthorizer,
    who: str | UserInfo,
    verb: str,
    resource: str,
    group: str = "",
    *,
    namespace: str = "",
    name: str = "",
) -> bool:
    user = who if isinstance(who, UserInfo) else UserInfo(who, groups=("system:authenticated",))
    sub = ""
    if "/" in resource:
        resource, sub = resource.split("/", 1)
    attrs = Attributes(
        user,
        verb,
        api_group=group,
        resource=resource,
        subresource=sub,
        namespace=namespace,
        name=name,
    )
    return authz.authorize(attrs).verdict == ALLOW


def may_get_path(authz: RBACAuthorizer, user: UserInfo, path: str) -> bool:
    return (
        authz.authorize(Attributes(user, "get", resource_request=False, path=path)).verdict == ALLOW
    )


def test_the_default_roles_and_bindings_exist_labelled_and_auto_updated(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        for name in (
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:monitoring",
            "system:node",
            "system:node-proxier",
            "system:kube-dns",
            "system:kube-scheduler",
            "system:volume-scheduler",
            "system:kube-controller-manager",
            "system:aggregate-to-edit",
            "system:controller:replicaset-controller",
            "system:controller:clusterrole-aggregation-controller",
            "system:gitops:ingress-controller",
        ):
            meta = stored(api, "clusterroles", name)["metadata"]
            assert meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults", name
            assert meta["annotations"][AUTOUPDATE] == "true", name
        crb = stored(api, "clusterrolebindings", "cluster-admin")
        assert crb["subjects"] == [{"apiGroup": G, "kind": "Group", "name": "system:masters"}]
        assert "subjects" not in stored(api, "clusterrolebindings", "system:node")
        dns = stored(api, "clusterrolebindings", "system:kube-dns")
        assert dns["subjects"] == [
            {"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"}
        ]
        assert stored(api, "roles", "extension-apiserver-authentication-reader", "kube-system")
        view = stored(api, "clusterroles", "view")
        assert view["aggregationRule"] == {
            "clusterRoleSelectors": [{"matchLabels": {f"{G}/aggregate-to-view": "true"}}]
        }
        assert view["metadata"]["labels"][f"{G}/aggregate-to-edit"] == "true"

    run(tmp_path, body)


def test_cluster_admin_is_everything_for_system_masters(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        root = UserInfo("root", groups=("system:masters",))
        assert may(authz, root, "delete", "secrets", namespace="x", name="y")
        assert may_get_path(authz, root, "/metrics")

    run(tmp_path, body)


def test_public_info_is_open_to_everyone_and_discovery_to_the_authenticated(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        someone = UserInfo("someone", groups=("system:authenticated",))
        for path in ("/healthz", "/livez", "/readyz", "/version", "/version/"):
            assert may_get_path(authz, ANONYMOUS, path), path
        assert not may_get_path(authz, ANONYMOUS, "/api")
        assert may_get_path(authz, someone, "/apis/apps/v1")
        assert not may_get_path(authz, someone, "/metrics")
        assert may_get_path(authz, UserInfo("prom", groups=("system:monitoring",)), "/metrics")
        assert may(authz, someone, "create", "selfsubjectaccessreviews", "authorization.k8s.io")
        assert may(authz, someone, "create", "selfsubjectrulesreviews", "authorization.k8s.io")
        assert may(authz, someone, "create", "selfsubjectreviews", "authentication.k8s.io")
        assert not may(
            authz, ANONYMOUS, "create", "selfsubjectaccessreviews", "authorization.k8s.io"
        )

    run(tmp_path, body)


def test_view_edit_and_admin_grant_what_kube_grants_once_aggregated(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await aggregate(api)
        await bind(api, "viewer", "view", "team")
        await bind(api, "editor", "edit", "team")
        await bind(api, "boss", "admin", "team")
        for verb in ("get", "list", "watch"):
            assert may(authz, "viewer", verb, "pods", namespace="team")
            assert may(authz, "viewer", verb, "deployments", "apps", namespace="team")
        assert may(authz, "viewer", "get", "pods/log", namespace="team", name="p")
        assert not may(authz, "viewer", "get", "secrets", namespace="team", name="s")
        assert not may(authz, "viewer", "create", "pods", namespace="team")
        assert not may(authz, "viewer", "get", "pods", namespace="other", name="p")

        assert may(authz, "editor", "get", "secrets", namespace="team", name="s")
        assert may(authz, "editor", "create", "deployments", "apps", namespace="team")
        assert may(authz, "editor", "create", "pods/exec", namespace="team", name="p")
        assert not may(authz, "editor", "get", "roles", G, namespace="team", name="r")
        assert not may(authz, "editor", "create", "rolebindings", G, namespace="team")
        assert not may(authz, "editor", "update", "resourcequotas", namespace="team", name="q")

        assert may(authz, "boss", "create", "rolebindings", G, namespace="team")
        assert may(authz, "boss", "get", "roles", G, namespace="team", name="r")
        assert may(
            authz,
            "boss",
            "create",
            "localsubjectaccessreviews",
            "authorization.k8s.io",
            namespace="team",
        )
        assert may(authz, "boss", "delete", "configmaps", namespace="team", name="c")

    run(tmp_path, body)


def test_components_hold_their_roles(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        kcm = "system:kube-controller-manager"
        assert may(authz, kcm, "create", "pods", namespace="x")
        assert may(authz, kcm, "update", "deployments/status", "apps", namespace="x", name="d")
        assert may(authz, kcm, "escalate", "clusterroles", G, name="admin")
        assert may(authz, kcm, "update", "jobs/finalizers", "batch", namespace="x", name="j")
        assert may(
            authz, "system:kube-scheduler", "create", "pods/binding", namespace="x", name="p"
        )
        assert may(authz, "system:kube-scheduler", "update", "persistentvolumes", name="pv")
        assert may(authz, "system:kube-proxy", "watch", "endpointslices", "discovery.k8s.io")
        dns = UserInfo("system:serviceaccount:kube-system:kube-dns")
        assert may(authz, dns, "list", "services")
        ingress = "system:gitops:ingress-controller"
        assert may(authz, ingress, "list", "ingresses", "networking.k8s.io")
        assert may(
            authz,
            ingress,
            "patch",
            "ingresses/status",
            "networking.k8s.io",
            namespace="x",
            name="i",
        )
        assert may(authz, ingress, "watch", "secrets")
        assert not may(
            authz, ingress, "update", "ingresses", "networking.k8s.io", namespace="x", name="i"
        )

    run(tmp_path, body)


def test_a_second_run_writes_nothing(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        before = api.store.revision
        await ensure_bootstrap_policy(api)
        assert api.store.revision == before

    run(tmp_path, body)


def test_auto_updated_objects_get_back_what_they_lack_and_keep_additions(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        role = stored(api, "clusterroles", "system:basic-user")
        extra = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
        role["rules"] = [role["rules"][0], extra]
        await api.replace(info(api, "clusterroles"), "", "system:basic-user", role, OPTS)
        crb = stored(api, "clusterrolebindings", "system:public-info-viewer")
        crb["subjects"] = [{"apiGroup": G, "kind": "User", "name": "extra"}]
        await api.replace(
            info(api, "clusterrolebindings"), "", "system:public-info-viewer", crb, OPTS
        )

        await ensure_bootstrap_policy(api)

        rules = stored(api, "clusterroles", "system:basic-user")["rules"]
        assert extra in rules
        assert {
            "verbs": ["create"],
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
        } in rules
        names = [
            s["name"]
            for s in stored(api, "clusterrolebindings", "system:public-info-viewer")["subjects"]
        ]
        assert names == ["extra", "system:authenticated", "system:unauthenticated"]

    run(tmp_path, body)


def test_objects_whose_autoupdate_is_off_are_left_alone(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        role = stored(api, "clusterroles", "system:discovery")
        role["metadata"]["annotations"][AUTOUPDATE] = "false"
        role["rules"] = []
        await api.replace(info(api, "clusterroles"), "", "system:discovery", role, OPTS)
        await ensure_bootstrap_policy(api)
        assert stored(api, "clusterroles", "system:discovery").get("rules") in (None, [])

    run(tmp_path, body)


def test_a_deleted_default_is_created_again(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await api.delete(info(api, "clusterrolebindings"), "", "cluster-admin", None, OPTS)
        await ensure_bootstrap_policy(api)
        assert (
            stored(api, "clusterrolebindings", "cluster-admin")["roleRef"]["name"]
            == "cluster-admin"
        )

    run(tmp_path, body)
