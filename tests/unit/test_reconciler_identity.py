"""``gitops up``'s reconciler gets a ClusterRole derived from its project: all verbs on
the kinds the project permits, nothing on the others, ``impersonate`` on
ServiceAccounts, and ``bind``/``escalate`` only where the project lets a commit create
ClusterRoleBindings anyway."""

from __future__ import annotations

from gitops.cluster import ResourceType
from gitops.projects import GroupKind, Project, ProjectDestination
from gitops.reconciler_identity import reconciler_rules

TYPES = [
    ResourceType("", "v1", "Pod", "pods", True),
    ResourceType("", "v1", "Secret", "secrets", True),
    ResourceType("", "v1", "Namespace", "namespaces", False),
    ResourceType("apps", "v1", "Deployment", "deployments", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("example.com", "v1", "Widget", "widgets", True),
]


def project(**fields: object) -> Project:
    return Project(
        name="root",
        source_repos=("*",),
        destinations=(ProjectDestination(),),
        **fields,  # type: ignore[arg-type]
    )


def test_a_project_that_allows_everything_still_gets_only_the_served_resources() -> None:
    rules = reconciler_rules(
        project(cluster_resource_whitelist=(GroupKind(group="*", kind="*"),)), TYPES
    )
    assert rules == [
        {"apiGroups": [""], "resources": ["namespaces", "pods", "secrets"], "verbs": ["*"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
        {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["*"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterrolebindings", "clusterroles", "rolebindings"],
            "verbs": ["*"],
        },
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles", "roles"],
            "verbs": ["bind", "escalate"],
        },
    ]


def test_denied_and_unlisted_kinds_get_no_rights_at_all() -> None:
    rules = reconciler_rules(
        project(
            cluster_resource_whitelist=(GroupKind(group="", kind="Namespace"),),
            namespace_resource_blacklist=(GroupKind(group="", kind="Secret"),),
        ),
        TYPES,
    )
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert ("", "secrets") not in granted
    assert ("rbac.authorization.k8s.io", "clusterroles") not in granted
    assert ("rbac.authorization.k8s.io", "clusterrolebindings") not in granted
    assert ("", "namespaces") in granted and ("", "pods") in granted
    # No bind/escalate: a RoleBinding from Git can grant only what the reconciler holds.
    assert not any("bind" in rule["verbs"] for rule in rules)
