"""NodeRestriction admission (runtime.auth.noderestriction): a kubelet writes only its
own Node, lease and CSINode, the status of pods bound to it, mirror pods bound to it,
and tokens bound to its pods; kube's 403 messages; other users pass untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api.objects import ApiOptions, ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.store import Store
from runtime.auth.admission import AdmissionRequest, Operation
from runtime.auth.noderestriction import NodeRestriction, forbidden_node_labels
from runtime.auth.user import NODES, UserInfo

Obj = dict[str, Any]

NODE_0 = UserInfo("system:node:node-0", groups=(NODES, "system:authenticated"))
REGISTRY = Registry()


def info(group: str, plural: str) -> ResourceInfo:
    found = REGISTRY.get(group, "v1", plural)
    assert found is not None
    return found


PODS, NODES_INFO = info("", "pods"), info("", "nodes")


def run(tmp_path: Path, body: Callable[[Store, NodeRestriction], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        try:
            await body(store, NodeRestriction(store))
        finally:
            await store.close()

    asyncio.run(go())


def pod(name: str, node: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}], **spec},
    }


def node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels or {}},
        "spec": spec,
    }


def request(
    operation: Operation,
    resource: ResourceInfo,
    obj: Obj,
    old: Obj | None = None,
    subresource: str = "",
    user: UserInfo = NODE_0,
    name: str = "",
) -> AdmissionRequest:
    meta = obj.get("metadata") or {}
    return AdmissionRequest(
        operation=operation,
        info=resource,
        namespace=str(meta.get("namespace") or ""),
        name=name or str(meta.get("name") or ""),
        obj=obj,
        old=old,
        user=user,
        subresource=subresource,
    )


def refusal(plugin: NodeRestriction, req: AdmissionRequest) -> str:
    with pytest.raises(ApiError) as refused:
        plugin.admit(req)
    assert refused.value.code == 403
    return refused.value.message


def test_users_that_are_not_nodes_pass_untouched(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        admin = UserInfo("admin", groups=("system:masters",))
        assert plugin.admit(request("UPDATE", NODES_INFO, node("node-1"), user=admin)) == []
        nameless = UserInfo("system:node:", groups=(NODES,))
        assert refusal(plugin, request("CREATE", NODES_INFO, node("x"), user=nameless)) == (
            'nodes "x" is forbidden: could not determine node from user "system:node:"'
        )

    run(tmp_path, body)


def test_a_node_writes_only_its_own_node_object(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        plugin.admit(request("CREATE", NODES_INFO, node("node-0", {"kubernetes.io/os": "linux"})))
        for op in ("CREATE", "UPDATE", "DELETE"):
            assert refusal(plugin, request(op, NODES_INFO, node("node-1"), node("node-1"))) == (
                'nodes "node-1" is forbidden: node "node-0" is not allowed to modify node "node-1"'
            )

    run(tmp_path, body)


def test_a_node_may_not_set_restricted_labels_or_change_its_taints(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        labels = {
            "node-role.kubernetes.io/control-plane": "true",
            "node-restriction.kubernetes.io/pool": "secure",
            "kubernetes.io/hostname": "node-0",
            "node.kubernetes.io/exclude-from-external-load-balancers": "",
            "example.com/team": "a",
        }
        assert refusal(plugin, request("CREATE", NODES_INFO, node("node-0", labels))) == (
            'nodes "node-0" is forbidden: node "node-0" is not allowed to set the following '
            "labels: node-restriction.kubernetes.io/pool, node-role.kubernetes.io/control-plane"
        )
        old = node("node-0", {"node-role.kubernetes.io/control-plane": "true"})
        same_role = node("node-0", {**old["metadata"]["labels"], "example.com/x": "y"})
        plugin.admit(request("UPDATE", NODES_INFO, same_role, old))  # unchanged: fine
        removed = node("node-0", {})
        assert refusal(plugin, request("UPDATE", NODES_INFO, removed, old)) == (
            'nodes "node-0" is forbidden: is not allowed to modify labels: '
            "node-role.kubernetes.io/control-plane"
        )
        tainted = node("node-0", taints=[{"key": "k", "effect": "NoSchedule"}])
        assert refusal(plugin, request("UPDATE", NODES_INFO, node("node-0"), tainted)) == (
            'nodes "node-0" is forbidden: node "node-0" is not allowed to modify taints'
        )
        # Status updates of the same node keep labels and taints: allowed.
        plugin.admit(request("UPDATE", NODES_INFO, tainted, tainted, subresource="status"))

    run(tmp_path, body)


def test_the_kubelets_own_labels_are_allowed() -> None:
    assert not forbidden_node_labels(
        {"kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "x"}, {}
    )
    assert forbidden_node_labels({}, {"kubernetes.io/role": "x"}) == ["kubernetes.io/role"]
    assert not forbidden_node_labels(
        {"kubelet.kubernetes.io/x": "1", "a.node.kubernetes.io/b": ""}, {}
    )
    assert forbidden_node_labels({"k8s.io/x": "1"}, {}) == ["k8s.io/x"]


def test_pod_status_only_for_pods_bound_to_the_node(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        mine, theirs = pod("mine", "node-0"), pod("theirs", "node-1")
        with_status = {**mine, "status": {"phase": "Running"}}
        plugin.admit(request("UPDATE", PODS, with_status, mine, subresource="status"))
        assert refusal(plugin, request("UPDATE", PODS, theirs, theirs, subresource="status")) == (
            'pods "theirs" is forbidden: node "node-0" can only update pod status for pods with '
            "spec.nodeName set to itself"
        )
        relabelled = {**mine, "metadata": {**mine["metadata"], "labels": {"a": "b"}}}
        assert refusal(plugin, request("UPDATE", PODS, relabelled, mine, subresource="status")) == (
            'pods "mine" is forbidden: node "node-0" cannot update labels through pod status'
        )
        assert refusal(plugin, request("UPDATE", PODS, mine, mine)) == (
            'pods "mine" is forbidden: unexpected operation "UPDATE", node "node-0" can only '
            "create and delete mirror pods"
        )
        assert refusal(
            plugin, request("UPDATE", PODS, mine, mine, subresource="ephemeralcontainers")
        ) == (
            'pods "mine" is forbidden: unexpected pod subresource "ephemeralcontainers", only '
            "'status' and 'eviction' are allowed"
        )

    run(tmp_path, body)


def test_a_node_deletes_and_evicts_only_pods_bound_to_it(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        for obj in (pod("mine", "node-0"), pod("theirs", "node-1")):
            await store.create("core/pods", "default", obj["metadata"]["name"], obj)
        plugin.admit(request("DELETE", PODS, pod("mine", "node-0")))
        assert refusal(plugin, request("DELETE", PODS, pod("theirs", "node-1"))) == (
            'pods "theirs" is forbidden: node "node-0" can only delete pods with spec.nodeName '
            "set to itself"
        )
        eviction = {"metadata": {"name": "theirs", "namespace": "default"}}
        assert refusal(plugin, request("CREATE", PODS, eviction, subresource="eviction")) == (
            'pods "theirs" is forbidden: node node-0 can only evict pods with spec.nodeName set '
            "to itself"
        )
        plugin.admit(
            request(
                "CREATE",
                PODS,
                {"metadata": {"namespace": "default"}},
                None,
                "eviction",
                name="mine",
            )
        )
        with pytest.raises(ApiError) as missing:
            plugin.admit(request("DELETE", PODS, pod("gone", "node-0")))
        assert missing.value.code == 404

    run(tmp_path, body)


def mirror(name: str = "static", **spec: Any) -> Obj:
    obj = pod(name, "node-0", **spec)
    obj["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": "node-0",
            "uid": "uid-node-0",
            "controller": True,
        }
    ]
    return obj


def test_a_node_creates_only_mirror_pods_bound_to_itself(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        await store.create("core/nodes", "", "node-0", node("node-0"))
        plugin.admit(request("CREATE", PODS, mirror()))

        def message(obj: Obj) -> str:
            return refusal(plugin, request("CREATE", PODS, obj)).removeprefix(
                'pods "static" is forbidden: '
            )

        assert message(pod("static", "node-0")) == (
            'pod does not have "kubernetes.io/config.mirror" annotation, node "node-0" can only '
            "create mirror pods"
        )
        elsewhere = mirror()
        elsewhere["spec"]["nodeName"] = "node-1"
        assert (
            message(elsewhere)
            == 'node "node-0" can only create pods with spec.nodeName set to itself'
        )
        orphan = mirror()
        orphan["metadata"]["ownerReferences"] = []
        assert (
            message(orphan)
            == 'node "node-0" can only create pods with an owner reference set to itself'
        )
        stale = mirror()
        stale["metadata"]["ownerReferences"][0]["uid"] = "old"
        assert message(stale) == "node node-0 UID mismatch: expected old got uid-node-0"
        assert message(mirror(serviceAccountName="default")) == (
            'node "node-0" can not create pods that reference a service account'
        )
        secret = mirror(volumes=[{"name": "s", "secret": {"secretName": "x"}}])
        assert message(secret) == 'node "node-0" can not create pods that reference secrets'
        env = mirror()
        env["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "cm"}}]
        assert message(env) == 'node "node-0" can not create pods that reference configmaps'
        claim = mirror(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
        assert message(claim) == (
            'node "node-0" can not create pods that reference persistentvolumeclaims'
        )

    run(tmp_path, body)


def test_token_requests_must_be_bound_to_a_pod_on_the_node(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        for obj in (pod("mine", "node-0"), pod("theirs", "node-1")):
            await store.create("core/pods", "default", obj["metadata"]["name"], obj)
        accounts = info("", "serviceaccounts")

        def token_request(ref: Obj | None) -> AdmissionRequest:
            body: Obj = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "metadata": {"namespace": "default"},
                "spec": {"audiences": ["api"], "boundObjectRef": ref},
            }
            return request("CREATE", accounts, body, subresource="token", name="default")

        def ref(name: str, uid: str = "") -> Obj:
            return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid or f"uid-{name}"}

        plugin.admit(token_request(ref("mine")))
        prefix = 'serviceaccounts "default" is forbidden: '
        assert (
            refusal(plugin, token_request(None))
            == prefix + "node requested token not bound to a pod"
        )
        assert refusal(plugin, token_request({**ref("mine"), "uid": ""})) == (
            prefix + "node requested token with a pod binding without a uid"
        )
        assert refusal(plugin, token_request(ref("mine", "old"))) == (
            prefix + "the UID in the bound object reference (old) does not match the UID in "
            "record. The object might have been deleted and then recreated"
        )
        assert refusal(plugin, token_request(ref("theirs"))) == (
            prefix + "node requested token bound to a pod scheduled on a different node"
        )

    run(tmp_path, body)


def test_leases_only_its_own_in_kube_node_lease(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        leases = info("coordination.k8s.io", "leases")

        def lease(name: str, ns: str = "kube-node-lease") -> Obj:
            return {"metadata": {"name": name, "namespace": ns}, "spec": {}}

        plugin.admit(request("CREATE", leases, lease("node-0")))
        assert refusal(plugin, request("UPDATE", leases, lease("node-1"), lease("node-1"))) == (
            'leases.coordination.k8s.io "node-1" is forbidden: can only access node lease with '
            "the same name as the requesting node"
        )
        assert refusal(plugin, request("CREATE", leases, lease("node-0", "default"))) == (
            'leases.coordination.k8s.io "node-0" is forbidden: can only access leases in the '
            '"kube-node-lease" system namespace'
        )

    run(tmp_path, body)


def test_pvc_status_may_change_only_capacity_and_conditions(tmp_path: Path) -> None:
    async def body(store: Store, plugin: NodeRestriction) -> None:
        claims = info("", "persistentvolumeclaims")
        old: Obj = {
            "metadata": {"name": "data", "namespace": "default", "resourceVersion": "1"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"},
        }
        grown = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"}}
        grown["status"] = {"phase": "Bound", "capacity": {"storage": "2Gi"}}
        plugin.admit(request("UPDATE", claims, grown, old, subresource="status"))
        relabelled = {**grown, "metadata": {**grown["metadata"], "labels": {"a": "b"}}}
        assert refusal(
            plugin, request("UPDATE", claims, relabelled, old, subresource="status")
        ) == (
            'persistentvolumeclaims "data" is forbidden: node "node-0" is not allowed to update '
            "fields other than status.capacity and status.conditions"
        )
        assert refusal(plugin, request("UPDATE", claims, old, old)) == (
            'persistentvolumeclaims "data" is forbidden: may only update PVC status'
        )

    run(tmp_path, body)


def test_the_object_layer_answers_403_for_another_nodes_pod_status(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(
            store, Registry(), schema.builtin(), ApiOptions(admission=(NodeRestriction(store),))
        )
        await api.bootstrap()
        try:
            admin = WriteOptions(field_manager="tests")
            created = await api.create(PODS, "default", pod("theirs", "node-1"), admin)
            current = created.obj
            current["status"] = {"phase": "Running"}
            as_node = WriteOptions(field_manager="kubelet", requester=NODE_0)
            with pytest.raises(ApiError) as refused:
                await api.replace(PODS, "default", "theirs", current, as_node, subresource="status")
            assert refused.value.code == 403
            assert refused.value.message == (
                'pods "theirs" is forbidden: node "node-0" can only update pod status for pods '
                "with spec.nodeName set to itself"
            )
        finally:
            await store.close()

    asyncio.run(go())
