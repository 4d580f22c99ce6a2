"""The ClusterRole aggregation controller's sync against an in-memory API whose writes
feed the controller's informer, as watch events would."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any, cast

from kubeclient.factory import InformerFactory
from kubeclient.rest import Client
from runtime.controllers.clusterroleaggregation import (
    API_VERSION,
    ClusterRoleAggregationController,
)
from runtime.controllers.manager import CONTROLLERS, ControllerContext

Obj = dict[str, Any]
LABEL = "rbac.authorization.k8s.io/aggregate-to-view"


class FakeApi:
    """Cluster-scoped ClusterRoles only: replace() keeps the write and feeds the informer."""

    def __init__(self) -> None:
        self.factory: InformerFactory | None = None
        self.objects: dict[str, Obj] = {}
        self.writes: list[str] = []
        self.rv = 0

    def context(self, tmp: Path) -> ControllerContext:
        self.factory = InformerFactory(cast(Client, self))
        return ControllerContext(client=cast(Client, self), informers=self.factory, state_dir=tmp)

    def put(self, obj: Obj) -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        kind = "MODIFIED" if obj["metadata"]["name"] in self.objects else "ADDED"
        self.objects[obj["metadata"]["name"]] = obj
        assert self.factory is not None
        self.factory.informer(API_VERSION, "clusterroles")._apply(kind, copy.deepcopy(obj))

    async def replace(self, api_version: str, plural: str, name: str, body: Obj, **_: Any) -> Obj:
        assert (api_version, plural) == (API_VERSION, "clusterroles")
        assert (
            body["metadata"]["resourceVersion"] == self.objects[name]["metadata"]["resourceVersion"]
        )
        self.writes.append(name)
        self.put(body)
        return copy.deepcopy(self.objects[name])


def role(
    name: str, rules: list[Obj] | None = None, labels: dict[str, str] | None = None, **extra: Any
) -> Obj:
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = labels
    out: Obj = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": meta, **extra}
    if rules is not None:
        out["rules"] = rules
    return out


def aggregated(name: str, *selectors: Obj, labels: dict[str, str] | None = None) -> Obj:
    return role(name, labels=labels, aggregationRule={"clusterRoleSelectors": list(selectors)})


def rule(resource: str, *verbs: str) -> Obj:
    return {"apiGroups": [""], "resources": [resource], "verbs": list(verbs)}


def setup(tmp_path: Path) -> tuple[FakeApi, ClusterRoleAggregationController]:
    fake = FakeApi()
    controller = ClusterRoleAggregationController(fake.context(tmp_path))
    return fake, controller


def test_the_controller_is_registered_under_kubes_name() -> None:
    assert CONTROLLERS["clusterrole-aggregation"].endswith(":ClusterRoleAggregationController")


def test_an_aggregated_role_gets_the_union_of_the_selected_roles_rules_in_kubes_order(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        fake, controller = setup(tmp_path)
        fake.put(role("b-view", [rule("pods", "get"), rule("services", "get")], {LABEL: "true"}))
        fake.put(role("a-view", [rule("configmaps", "get"), rule("pods", "get")], {LABEL: "true"}))
        fake.put(role("other", [rule("secrets", "get")], {"x": "y"}))
        fake.put(role("unlabelled", [rule("nodes", "get")]))
        fake.put(aggregated("view", {"matchLabels": {LABEL: "true"}}, {"matchLabels": {"x": "y"}}))
        await controller.sync("view")
        assert fake.objects["view"]["rules"] == [
            rule("configmaps", "get"),
            rule("pods", "get"),
            rule("services", "get"),
            rule("secrets", "get"),
        ]
        assert fake.writes == ["view"]
        # Unchanged: no second write.
        await controller.sync("view")
        assert fake.writes == ["view"]

    asyncio.run(scenario())


def test_an_aggregated_role_never_aggregates_itself_and_empty_means_no_rules(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        fake, controller = setup(tmp_path)
        fake.put(aggregated("self", {"matchLabels": {LABEL: "true"}}, labels={LABEL: "true"}))
        await controller.sync("self")
        assert fake.writes == []

    asyncio.run(scenario())


def test_match_expressions_select_roles_too(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake, controller = setup(tmp_path)
        fake.put(role("edit-extra", [rule("leases", "create")], {"tier": "edit"}))
        fake.put(role("view-extra", [rule("leases", "get")], {"tier": "view"}))
        selector = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edit"]}]}
        fake.put(aggregated("agg", selector))
        await controller.sync("agg")
        assert fake.objects["agg"]["rules"] == [rule("leases", "create")]

    asyncio.run(scenario())


def test_roles_without_aggregation_rules_are_left_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake, controller = setup(tmp_path)
        fake.put(role("plain", [rule("pods", "get")], {LABEL: "true"}))
        await controller.sync("plain")
        await controller.sync("missing")
        assert fake.writes == []

    asyncio.run(scenario())


def test_any_cluster_role_change_queues_every_aggregated_role(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake, controller = setup(tmp_path)
        fake.put(aggregated("view", {"matchLabels": {LABEL: "true"}}))
        fake.put(aggregated("edit", {"matchLabels": {"x": "y"}}))
        while len(controller.queue):
            key = await controller.queue.get()
            assert key is not None
            controller.queue.done(key)
        fake.put(role("new", [rule("pods", "get")], {LABEL: "true"}))
        queued = set()
        while len(controller.queue):
            key = await controller.queue.get()
            assert key is not None
            queued.add(key)
            controller.queue.done(key)
        assert queued == {"view", "edit"}
        await controller.sync("view")
        assert fake.objects["view"]["rules"] == [rule("pods", "get")]

    asyncio.run(scenario())
