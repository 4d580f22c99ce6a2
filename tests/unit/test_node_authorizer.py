"""The Node authorizer (runtime.auth.node): kubelets read only what the pods bound to
their node reference, the static ``system:node`` rules, the name-bound resources (own
Node, lease, CSINode), and the index following the store's committed writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runtime.api.store import Store
from runtime.auth.attributes import ALLOW, NO_OPINION, Attributes, Decision
from runtime.auth.node import (
    NodeAuthorizer,
    pod_claim_names,
    pod_configmap_names,
    pod_secret_names,
)
from runtime.auth.user import NODES, UserInfo

Obj = dict[str, Any]

NODE_0 = UserInfo("system:node:node-0", groups=(NODES, "system:authenticated"))
NODE_1 = UserInfo("system:node:node-1", groups=(NODES, "system:authenticated"))


def run(tmp_path: Path, body: Callable[[Store, NodeAuthorizer], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        try:
            await body(store, NodeAuthorizer(store))
        finally:
            await store.close()

    asyncio.run(go())


def pod(name: str, node: str, ns: str = "default", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}], **spec},
    }


async def add_pod(store: Store, obj: Obj) -> None:
    meta = obj["metadata"]
    await store.create("core/pods", meta["namespace"], meta["name"], obj)


def ask(
    authz: NodeAuthorizer,
    user: UserInfo,
    verb: str,
    resource: str,
    name: str = "",
    namespace: str = "default",
    group: str = "",
    subresource: str = "",
    field_selector: str = "",
) -> Decision:
    return authz.authorize(
        Attributes(
            user=user,
            verb=verb,
            api_group=group,
            api_version="v1",
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
            field_selector=field_selector,
        )
    )


def no_relationship(node: str) -> Decision:
    return Decision(NO_OPINION, f"no relationship found between node '{node}' and this object")


SECRET_VOLUME: Obj = {"volumes": [{"name": "s", "secret": {"secretName": "db-password"}}]}


def test_a_node_reads_the_secrets_of_its_own_pods_but_not_of_another_nodes_pods(
    tmp_path: Path,
) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        await add_pod(store, pod("web", "node-0", **SECRET_VOLUME))
        assert ask(authz, NODE_0, "get", "secrets", "db-password").verdict == ALLOW
        assert ask(authz, NODE_1, "get", "secrets", "db-password") == no_relationship("node-1")
        assert ask(authz, NODE_0, "get", "secrets", "other") == no_relationship("node-0")
        # Same name, other namespace: no relationship either.
        assert ask(authz, NODE_0, "get", "secrets", "db-password", namespace="prod") == (
            no_relationship("node-0")
        )

    run(tmp_path, body)


def test_a_configmap_referenced_through_a_projected_volume_is_readable(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        projected = {
            "name": "p",
            "projected": {
                "sources": [
                    {"configMap": {"name": "settings"}},
                    {"secret": {"name": "tls"}},
                    {"serviceAccountToken": {"path": "token"}},
                ]
            },
        }
        await add_pod(store, pod("web", "node-0", volumes=[projected]))
        assert ask(authz, NODE_0, "get", "configmaps", "settings").allowed
        assert ask(authz, NODE_0, "watch", "configmaps", "settings").allowed
        assert ask(authz, NODE_0, "get", "secrets", "tls").allowed
        assert not ask(authz, NODE_1, "get", "configmaps", "settings").allowed

    run(tmp_path, body)


def test_listing_or_watching_all_secrets_is_refused_but_a_named_watch_is_not(
    tmp_path: Path,
) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        await add_pod(store, pod("web", "node-0", **SECRET_VOLUME))
        for verb in ("list", "watch"):
            assert ask(authz, NODE_0, verb, "secrets") == Decision(
                NO_OPINION, "No Object name found"
            )
            assert ask(authz, NODE_0, verb, "configmaps", namespace="") == Decision(
                NO_OPINION, "can only read namespaced object of this type"
            )
        # A list/watch with fieldSelector metadata.name=<name> carries the name.
        assert ask(authz, NODE_0, "watch", "secrets", "db-password").allowed
        assert ask(authz, NODE_0, "delete", "secrets", "db-password") == Decision(
            NO_OPINION, "can only read resources of this type"
        )

    run(tmp_path, body)


def test_every_kind_of_pod_reference_counts() -> None:
    container = {
        "name": "c",
        "image": "x",
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
            {"name": "C", "value": "plain"},
        ],
        "envFrom": [{"secretRef": {"name": "from-secret"}}, {"configMapRef": {"name": "from-cm"}}],
    }
    spec = {
        "nodeName": "node-0",
        "imagePullSecrets": [{"name": "registry"}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        "containers": [container],
        "ephemeralContainers": [{"name": "e", "envFrom": [{"configMapRef": {"name": "eph"}}]}],
        "volumes": [
            {"name": "cm", "configMap": {"name": "vol-cm"}},
            {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        ],
    }
    obj = {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}
    assert pod_secret_names(obj) == {
        "env-secret",
        "from-secret",
        "registry",
        "init-secret",
        "csi-s",
    }
    assert pod_configmap_names(obj) == {"env-cm", "from-cm", "eph", "vol-cm"}
    assert pod_claim_names(obj) == {"data", "web-scratch"}


def test_a_persistent_volume_is_reachable_through_the_claim_of_a_pod_on_the_node(
    tmp_path: Path,
) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        claim: Obj = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}
        await add_pod(store, pod("db", "node-0", **claim))
        pv: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-1"},
            "spec": {
                "claimRef": {"namespace": "default", "name": "data"},
                "csi": {
                    "driver": "d",
                    "volumeHandle": "h",
                    "nodeStageSecretRef": {"name": "stage"},
                },
            },
        }
        assert ask(authz, NODE_0, "get", "persistentvolumes", "pv-1", namespace="") == (
            no_relationship("node-0")
        )
        await store.create("core/persistentvolumes", "", "pv-1", pv)
        assert ask(authz, NODE_0, "get", "persistentvolumeclaims", "data").allowed
        assert ask(authz, NODE_0, "get", "persistentvolumes", "pv-1", namespace="").allowed
        assert ask(authz, NODE_0, "get", "secrets", "stage").allowed
        assert not ask(authz, NODE_1, "get", "persistentvolumes", "pv-1", namespace="").allowed
        assert ask(authz, NODE_0, "list", "persistentvolumes", namespace="") == Decision(
            NO_OPINION, "can only get individual resources of this type"
        )
        status = ask(authz, NODE_0, "patch", "persistentvolumeclaims", "data", subresource="status")
        assert status.allowed
        # The PV released from the claim: the path is gone.
        released = {**pv, "spec": {**pv["spec"], "claimRef": None}}
        await store.update("core/persistentvolumes", "", "pv-1", released, None)
        assert not ask(authz, NODE_0, "get", "persistentvolumes", "pv-1", namespace="").allowed
        assert not ask(authz, NODE_0, "get", "secrets", "stage").allowed

    run(tmp_path, body)


def test_deleting_the_pod_removes_the_nodes_access(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        first = pod("web-1", "node-0", **SECRET_VOLUME)
        await add_pod(store, first)
        await add_pod(store, pod("web-2", "node-0", **SECRET_VOLUME))
        await store.delete("core/pods", "default", "web-1", first, None)
        assert ask(authz, NODE_0, "get", "secrets", "db-password").allowed  # web-2 still
        await store.delete("core/pods", "default", "web-2", pod("web-2", "node-0"), None)
        assert ask(authz, NODE_0, "get", "secrets", "db-password") == no_relationship("node-0")
        assert authz.graph.refs.get("secrets") == {}

    run(tmp_path, body)


def test_a_pod_changing_its_references_changes_the_access(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        await add_pod(store, pod("web", "node-0", **SECRET_VOLUME))
        changed = pod("web", "node-0", volumes=[{"name": "c", "configMap": {"name": "cm"}}])
        await store.update("core/pods", "default", "web", changed, None)
        assert not ask(authz, NODE_0, "get", "secrets", "db-password").allowed
        assert ask(authz, NODE_0, "get", "configmaps", "cm").allowed

    run(tmp_path, body)


def test_the_index_is_built_from_what_the_store_holds_at_start(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        await add_pod(store, pod("web", "node-0", **SECRET_VOLUME))
        await add_pod(store, pod("pending", "", **SECRET_VOLUME))
        authz = NodeAuthorizer(store)
        assert ask(authz, NODE_0, "get", "secrets", "db-password").allowed
        assert list(authz.graph.pods) == [("default", "web")]  # unbound pods grant nothing
        await store.close()

    asyncio.run(go())


def test_a_mirror_pod_grants_its_node_nothing_but_the_pod(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        mirror = pod("static", "node-0", **SECRET_VOLUME)
        mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
        await add_pod(store, mirror)
        assert not ask(authz, NODE_0, "get", "secrets", "db-password").allowed
        assert ask(authz, NODE_0, "get", "pods", "static").allowed
        assert ask(authz, NODE_1, "get", "pods", "static") == no_relationship("node-1")

    run(tmp_path, body)


def test_tokens_only_for_the_service_accounts_of_the_nodes_pods(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        await add_pod(store, pod("web", "node-0", serviceAccountName="builder"))
        token = {"subresource": "token"}
        assert ask(authz, NODE_0, "create", "serviceaccounts", "builder", **token).allowed
        assert ask(authz, NODE_1, "create", "serviceaccounts", "builder", **token) == (
            no_relationship("node-1")
        )
        assert ask(authz, NODE_0, "get", "serviceaccounts", "builder") == Decision(
            NO_OPINION, "can only create tokens for individual service accounts"
        )
        assert ask(authz, NODE_0, "create", "serviceaccounts", "builder") == Decision(
            NO_OPINION, "can only create token subresource of serviceaccount"
        )

    run(tmp_path, body)


def test_own_node_lease_and_csinode_only(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        assert ask(authz, NODE_0, "get", "nodes", "node-0", namespace="").allowed
        assert ask(authz, NODE_0, "get", "nodes", "node-1", namespace="") == Decision(
            NO_OPINION, "node 'node-0' cannot read 'node-1', only its own Node object"
        )
        assert ask(authz, NODE_0, "list", "nodes", namespace="") == Decision(
            NO_OPINION, "node 'node-0' cannot read all nodes, only its own Node object"
        )
        assert ask(authz, NODE_0, "create", "nodes", namespace="").allowed
        assert ask(authz, NODE_0, "patch", "nodes", "node-0", "", subresource="status").allowed
        assert not ask(authz, NODE_0, "delete", "nodes", "node-0", namespace="").allowed
        lease = {"group": "coordination.k8s.io", "namespace": "kube-node-lease"}
        assert ask(authz, NODE_0, "patch", "leases", "node-0", **lease).allowed
        assert ask(authz, NODE_0, "create", "leases", **lease).allowed
        assert ask(authz, NODE_0, "patch", "leases", "node-1", **lease) == Decision(
            NO_OPINION, "can only access node lease with the same name as the requesting node"
        )
        assert ask(authz, NODE_0, "get", "leases", "node-0", group="coordination.k8s.io") == (
            Decision(NO_OPINION, 'can only access leases in the "kube-node-lease" system namespace')
        )
        csi = {"group": "storage.k8s.io", "namespace": ""}
        assert ask(authz, NODE_0, "update", "csinodes", "node-0", **csi).allowed
        assert not ask(authz, NODE_0, "update", "csinodes", "node-1", **csi).allowed

    run(tmp_path, body)


def test_the_static_node_rules_apply_and_everything_else_has_no_opinion(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        assert ask(authz, NODE_0, "watch", "services").allowed
        assert ask(authz, NODE_0, "create", "events").allowed
        # Its pods only: a list must select spec.nodeName=<itself> (kube 1.35).
        assert not ask(authz, NODE_0, "list", "pods", namespace="").allowed
        mine = "spec.nodeName=node-0"
        assert ask(authz, NODE_0, "watch", "pods", namespace="", field_selector=mine).allowed
        other = "spec.nodeName=node-1"
        assert not ask(authz, NODE_0, "list", "pods", namespace="", field_selector=other).allowed
        assert ask(authz, NODE_0, "create", "pods").allowed  # mirror pods: NodeRestriction
        assert ask(authz, NODE_0, "patch", "pods", "x", subresource="status").allowed
        assert ask(authz, NODE_0, "create", "pods", "x", subresource="eviction").allowed
        assert not ask(authz, NODE_0, "update", "pods", "x").allowed
        assert ask(
            authz, NODE_0, "create", "tokenreviews", namespace="", group="authentication.k8s.io"
        ).allowed
        assert ask(authz, NODE_0, "list", "runtimeclasses", "", "", group="node.k8s.io").allowed
        assert ask(authz, NODE_0, "delete", "deployments", "x", group="apps") == Decision(
            NO_OPINION
        )

    run(tmp_path, body)


def test_users_that_are_not_nodes_get_no_opinion(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        await add_pod(store, pod("web", "node-0", **SECRET_VOLUME))
        not_in_group = UserInfo("system:node:node-0", groups=("system:authenticated",))
        admin = UserInfo("admin", groups=("system:masters",))
        for user in (not_in_group, admin):
            assert ask(authz, user, "get", "secrets", "db-password") == Decision(NO_OPINION)
        nameless = UserInfo("system:node:", groups=(NODES,))
        assert ask(authz, nameless, "get", "services") == Decision(
            NO_OPINION, 'unknown node for user "system:node:"'
        )
        assert authz.rules_for(admin, "default").resource_rules == []

    run(tmp_path, body)


def test_rules_review_lists_the_static_rules_and_says_it_is_incomplete(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        rules = authz.rules_for(NODE_0, "kube-node-lease")
        assert rules.incomplete
        shown = [r.as_dict() for r in rules.resource_rules]
        assert {
            "verbs": ["get", "list", "watch"],
            "apiGroups": [""],
            "resources": ["services"],
        } in (shown)
        assert {
            "verbs": ["get", "list", "watch"],
            "apiGroups": [""],
            "resources": ["nodes"],
            "resourceNames": ["node-0"],
        } in shown
        assert not any("secrets" in r.get("resources", []) for r in shown)
        assert any(
            r.get("resourceNames") == ["node-0"] and r["resources"] == ["leases"] for r in shown
        )
        elsewhere = [r.as_dict() for r in authz.rules_for(NODE_0, "default").resource_rules]
        assert not any(r.get("resources") == ["leases"] for r in elsewhere)

    run(tmp_path, body)


def test_volume_attachments_and_resource_claims_follow_the_node(tmp_path: Path) -> None:
    async def body(store: Store, authz: NodeAuthorizer) -> None:
        va = {"metadata": {"name": "va-1"}, "spec": {"nodeName": "node-0", "attacher": "d"}}
        await store.create("storage.k8s.io/volumeattachments", "", "va-1", va)
        storage = {"group": "storage.k8s.io", "namespace": ""}
        assert ask(authz, NODE_0, "get", "volumeattachments", "va-1", **storage).allowed
        assert not ask(authz, NODE_1, "get", "volumeattachments", "va-1", **storage).allowed
        claims: Obj = {"resourceClaims": [{"name": "gpu", "resourceClaimName": "gpu-claim"}]}
        await add_pod(store, pod("train", "node-1", **claims))
        dra = {"group": "resource.k8s.io"}
        assert ask(authz, NODE_1, "get", "resourceclaims", "gpu-claim", **dra).allowed
        assert not ask(authz, NODE_0, "get", "resourceclaims", "gpu-claim", **dra).allowed

    run(tmp_path, body)
