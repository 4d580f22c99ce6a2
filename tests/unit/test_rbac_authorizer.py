"""The RBAC authorizer over a real store: bindings, subjects, kube's rule matching,
reasons, SelfSubjectRulesReview rules, cache invalidation and speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubemodel import schema
from runtime.api.objects import ObjectAPI, WriteOptions
from runtime.api.registry import Registry
from runtime.api.store import Store
from runtime.auth.attributes import ALLOW, NO_OPINION, Attributes
from runtime.auth.rbac import PolicyRule, RBACAuthorizer, covers, rule_allows
from runtime.auth.user import UserInfo

G = "rbac.authorization.k8s.io"
OPTS = WriteOptions(field_manager="tests")
ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


def run(tmp_path: Path, body: Callable[[ObjectAPI, RBACAuthorizer], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin())
        await api.bootstrap()
        authz = RBACAuthorizer(store, api.registry)
        try:
            await body(api, authz)
        finally:
            await store.close()

    asyncio.run(go())


async def put(api: ObjectAPI, plural: str, obj: dict[str, Any], namespace: str = "") -> None:
    info = api.registry.get(G, "v1", plural)
    assert info is not None
    if namespace:
        ns_info = api.registry.get("", "v1", "namespaces")
        assert ns_info is not None
        if api.store.latest(ns_info.store_key, "", namespace) is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            await api.create(ns_info, "", body, OPTS)
    await api.create(info, namespace, obj, OPTS)


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def binding(
    kind: str, name: str, ref_kind: str, ref: str, *subjects: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": G, "kind": ref_kind, "name": ref},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, Any]:
    return {"apiGroup": G, "kind": "User", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"apiGroup": G, "kind": "Group", "name": name}


def sa(name: str, namespace: str = "") -> dict[str, Any]:
    out = {"kind": "ServiceAccount", "name": name}
    if namespace:
        out["namespace"] = namespace
    return out


def req(
    verb: str,
    resource: str,
    *,
    who: UserInfo = ALICE,
    group: str = "",
    namespace: str = "",
    name: str = "",
    sub: str = "",
) -> Attributes:
    return Attributes(
        who,
        verb,
        api_group=group,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=sub,
    )


POD_READER = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


# --- rule matching (kube's RuleAllows) -------------------------------------------------------
def test_a_rule_matches_verb_group_and_resource_exactly() -> None:
    assert rule_allows(req("get", "pods"), POD_READER)
    assert not rule_allows(req("delete", "pods"), POD_READER)
    assert not rule_allows(req("get", "pods", group="apps"), POD_READER)
    assert not rule_allows(req("get", "secrets"), POD_READER)


def test_stars_match_any_verb_group_and_resource() -> None:
    star = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    assert rule_allows(req("escalate", "clusterroles", group=G, name="x"), star)
    assert rule_allows(req("get", "pods", sub="log"), star)


def test_subresources_need_their_own_resource_entry() -> None:
    assert not rule_allows(req("get", "pods", sub="log"), POD_READER)
    logs = {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}
    assert rule_allows(req("get", "pods", sub="log"), logs)
    assert not rule_allows(req("get", "pods"), logs)
    any_scale = {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]}
    assert rule_allows(req("get", "deployments", group="apps", sub="scale"), any_scale)
    assert not rule_allows(req("get", "deployments", group="apps", sub="status"), any_scale)
    assert not rule_allows(req("get", "deployments", group="apps"), any_scale)


def test_a_resource_slash_star_entry_is_not_a_wildcard_as_in_kube() -> None:
    # kube's ResourceMatches has no "<resource>/*" form: it only matches literally.
    pods_star = {"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}
    assert not rule_allows(req("get", "pods", sub="log"), pods_star)


def test_resource_names_only_allow_requests_naming_one_of_them() -> None:
    named = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["a"]}
    assert rule_allows(req("get", "configmaps", name="a"), named)
    assert not rule_allows(req("get", "configmaps", name="b"), named)
    for verb in ("list", "watch", "create", "deletecollection"):
        assert not rule_allows(req(verb, "configmaps"), named)


def test_non_resource_urls_match_exactly_or_by_trailing_star() -> None:
    rule = {"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}

    def path(p: str, verb: str = "get") -> Attributes:
        return Attributes(ALICE, verb, resource_request=False, path=p)

    assert rule_allows(path("/healthz"), rule)
    assert not rule_allows(path("/healthz/etcd"), rule)
    assert rule_allows(path("/apis/apps/v1"), rule)
    assert not rule_allows(path("/apis"), rule)
    assert not rule_allows(path("/healthz", "post"), rule)
    assert not rule_allows(req("get", "pods"), rule)


# --- covers (kube's validation.Covers) ---------------------------------------------------------
def test_covers_returns_the_pieces_the_owner_lacks() -> None:
    owner = [POD_READER]
    wanted = [{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "delete"]}]
    missing = covers(owner, wanted)
    assert missing == [
        PolicyRule(("delete",), ("",), ("pods",)),
        PolicyRule(("get",), ("",), ("secrets",)),
        PolicyRule(("delete",), ("",), ("secrets",)),
    ]
    assert covers([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], wanted) == []


def test_covers_handles_subresource_stars_names_and_urls() -> None:
    owner = [
        {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]},
        {"nonResourceURLs": ["/metrics*"], "verbs": ["get"]},
    ]
    assert (
        covers(
            owner, [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get"]}]
        )
        == []
    )
    named = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get"],
        "resourceNames": ["a"],
    }
    assert covers(owner, [named]) == []
    unnamed = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    assert covers(owner, [unnamed]) == [PolicyRule(("get",), ("",), ("configmaps",))]
    assert covers(owner, [{"nonResourceURLs": ["/metrics/slis"], "verbs": ["get"]}]) == []


# --- bindings ------------------------------------------------------------------------------
def test_a_cluster_role_binding_allows_everywhere_with_kubes_reason(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await put(api, "clusterroles", cluster_role("reader", POD_READER))
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "r", "ClusterRole", "reader", user("alice")),
        )
        decision = authz.authorize(req("list", "pods", namespace="team"))
        assert decision.verdict == ALLOW
        assert (
            decision.reason
            == 'RBAC: allowed by ClusterRoleBinding "r" of ClusterRole "reader" to User "alice"'
        )
        assert authz.authorize(req("list", "pods")).verdict == ALLOW
        assert authz.authorize(req("delete", "pods", namespace="team")).verdict == NO_OPINION

    run(tmp_path, body)


def test_a_role_binding_allows_only_in_its_namespace(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await put(api, "roles", role("pods", POD_READER), "team")
        await put(
            api, "rolebindings", binding("RoleBinding", "rb", "Role", "pods", group("devs")), "team"
        )
        decision = authz.authorize(req("get", "pods", namespace="team", name="p"))
        assert decision.verdict == ALLOW
        assert (
            decision.reason
            == 'RBAC: allowed by RoleBinding "rb/team" of Role "pods" to Group "devs"'
        )
        assert (
            authz.authorize(req("get", "pods", namespace="other", name="p")).verdict == NO_OPINION
        )
        assert authz.authorize(req("list", "pods")).verdict == NO_OPINION

    run(tmp_path, body)


def test_a_role_binding_may_grant_a_cluster_role_in_its_namespace(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await put(api, "clusterroles", cluster_role("reader", POD_READER))
        await put(
            api,
            "rolebindings",
            binding("RoleBinding", "rb", "ClusterRole", "reader", user("alice")),
            "team",
        )
        assert authz.authorize(req("list", "pods", namespace="team")).verdict == ALLOW
        assert authz.authorize(req("list", "pods", namespace="other")).verdict == NO_OPINION

    run(tmp_path, body)


def test_service_account_subjects_default_to_the_binding_namespace(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        bot = UserInfo("system:serviceaccount:team:bot", groups=("system:serviceaccounts",))
        other = UserInfo("system:serviceaccount:other:bot")
        await put(api, "clusterroles", cluster_role("reader", POD_READER))
        await put(
            api,
            "rolebindings",
            binding("RoleBinding", "rb", "ClusterRole", "reader", sa("bot")),
            "team",
        )
        decision = authz.authorize(req("list", "pods", who=bot, namespace="team"))
        assert decision.verdict == ALLOW
        assert decision.reason.endswith('to ServiceAccount "bot/team"')
        assert (
            authz.authorize(req("list", "pods", who=other, namespace="team")).verdict == NO_OPINION
        )
        # In a ClusterRoleBinding a ServiceAccount subject needs its namespace.
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "c", "ClusterRole", "reader", sa("bot")),
        )
        assert authz.authorize(req("list", "pods", who=bot, namespace="x")).verdict == NO_OPINION
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "d", "ClusterRole", "reader", sa("bot", "other")),
        )
        assert authz.authorize(req("list", "pods", who=other, namespace="x")).verdict == ALLOW

    run(tmp_path, body)


def test_a_missing_role_gives_no_opinion_with_the_error_as_reason(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "b", "ClusterRole", "ghost", user("alice")),
        )
        decision = authz.authorize(req("get", "pods"))
        assert decision.verdict == NO_OPINION
        assert decision.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found'

    run(tmp_path, body)


def test_changes_to_roles_and_bindings_take_effect_at_once(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        assert authz.authorize(req("list", "pods")).verdict == NO_OPINION
        await put(api, "clusterroles", cluster_role("reader", POD_READER))
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "b", "ClusterRole", "reader", user("alice")),
        )
        assert authz.authorize(req("list", "pods")).verdict == ALLOW
        info = api.registry.get(G, "v1", "clusterroles")
        assert info is not None
        await api.delete(info, "", "reader", None, OPTS)
        assert authz.authorize(req("list", "pods")).verdict == NO_OPINION

    run(tmp_path, body)


def test_rules_for_lists_cluster_and_namespace_rules(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        await put(
            api,
            "clusterroles",
            cluster_role("health", {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}),
        )
        await put(
            api,
            "clusterrolebindings",
            binding("ClusterRoleBinding", "h", "ClusterRole", "health", group("devs")),
        )
        await put(api, "roles", role("pods", POD_READER), "team")
        await put(
            api, "rolebindings", binding("RoleBinding", "rb", "Role", "pods", user("alice")), "team"
        )
        rules = authz.rules_for(ALICE, "team")
        assert [r.as_dict() for r in rules.resource_rules] == [
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}
        ]
        assert [r.as_dict() for r in rules.non_resource_rules] == [
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}
        ]
        assert authz.rules_for(ALICE, "other").resource_rules == []

    run(tmp_path, body)


def test_ten_thousand_decisions_take_well_under_a_second(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, authz: RBACAuthorizer) -> None:
        for i in range(50):
            await put(
                api,
                "clusterroles",
                cluster_role(
                    f"r{i}", {"apiGroups": [""], "resources": [f"thing{i}"], "verbs": ["get"]}
                ),
            )
            await put(
                api,
                "clusterrolebindings",
                binding(
                    "ClusterRoleBinding",
                    f"b{i}",
                    "ClusterRole",
                    f"r{i}",
                    user(f"u{i}"),
                    group("devs"),
                ),
            )
        requests = [req("get", f"thing{i % 60}", namespace=f"ns{i % 7}") for i in range(10_000)]
        start = time.perf_counter()
        verdicts = [authz.authorize(a).verdict for a in requests]
        elapsed = time.perf_counter() - start
        assert verdicts.count(ALLOW) == sum(1 for i in range(10_000) if i % 60 < 50)
        assert elapsed < 0.5, elapsed

    run(tmp_path, body)
