"""The official ``kubernetes`` Python client against the built-in API server: typed
CRUD, selectors, watch with resume, and the dynamic client with server-side apply."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(cluster: ClusterProcess) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def _configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_typed_crud_of_a_configmap(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", _configmap("crud", a="1"))
    assert created.metadata.uid and created.metadata.resource_version
    read = core.read_namespaced_config_map("crud", "default")
    assert read.data == {"a": "1"}
    read.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("crud", "default", read)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map("crud", "default", {"data": {"c": "3"}})
    assert patched.data == {"a": "1", "b": "2", "c": "3"}
    core.delete_namespaced_config_map("crud", "default")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("crud", "default")
    assert err.value.status == 404


def test_typed_crud_of_a_deployment_applies_defaults(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="typed"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "typed"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "typed"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )
    created = apps.create_namespaced_deployment("default", body)
    assert created.spec.replicas == 1
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    assert created.spec.template.spec.containers[0].image_pull_policy == "Always"
    scale = apps.read_namespaced_deployment_scale("typed", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=typed"
    apps.patch_namespaced_deployment_scale("typed", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("typed", "default").spec.replicas == 4
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "typed", "default", {"spec": {"selector": {"matchLabels": {"app": "other"}}}}
        )
    assert err.value.status == 422
    apps.delete_namespaced_deployment("typed", "default")


def test_list_with_label_and_field_selectors_and_paging(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="paging")))
    for i in range(7):
        core.create_namespaced_config_map(
            "paging", _configmap(f"cm-{i}", {"parity": "even" if i % 2 == 0 else "odd"})
        )
    even = core.list_namespaced_config_map("paging", label_selector="parity=even")
    assert sorted(c.metadata.name for c in even.items) == ["cm-0", "cm-2", "cm-4", "cm-6"]
    named = core.list_namespaced_config_map("paging", field_selector="metadata.name=cm-3")
    assert [c.metadata.name for c in named.items] == ["cm-3"]
    page = core.list_namespaced_config_map("paging", limit=3)
    names = [c.metadata.name for c in page.items]
    assert page.metadata._continue and page.metadata.remaining_item_count == 4
    while page.metadata._continue:
        page = core.list_namespaced_config_map("paging", limit=3, _continue=page.metadata._continue)
        names += [c.metadata.name for c in page.items]
    assert names == [f"cm-{i}" for i in range(7)]
    everywhere = core.list_config_map_for_all_namespaces(label_selector="parity in (odd)")
    assert len(everywhere.items) == 3


def test_watch_streams_events_and_resumes_from_a_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str, str]] = []

    def consume(resource_version: str, stop_after: int) -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="w=1",
            resource_version=resource_version,
            timeout_seconds=20,
        ):
            obj: Any = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.metadata.resource_version))
            if len(seen) >= stop_after:
                w.stop()

    consumer = threading.Thread(target=consume, args=(start, 2))
    consumer.start()
    core.create_namespaced_config_map("default", _configmap("w-a", {"w": "1"}))
    core.create_namespaced_config_map("default", _configmap("w-b", {"w": "1"}))
    consumer.join(timeout=30)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "w-a"), ("ADDED", "w-b")]
    last = seen[-1][2]
    core.patch_namespaced_config_map("w-a", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w-b", "default")
    consume(last, 4)
    assert [(t, n) for t, n, _ in seen[2:]] == [("MODIFIED", "w-a"), ("DELETED", "w-b")]


def test_dynamic_client_server_side_apply_creates_and_updates(api: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dyn", "namespace": "default"},
        "data": {"k": "v1"},
    }
    first = cms.server_side_apply(body=body, field_manager="tests")
    assert first.data.k == "v1"
    body["data"] = {"k": "v2", "extra": "x"}
    second = cms.server_side_apply(body=body, field_manager="tests")
    assert second.data.k == "v2" and second.data.extra == "x"
    body["data"] = {"k": "v2"}
    third = cms.server_side_apply(body=body, field_manager="tests")
    assert dict(third.data) == {"k": "v2"}
    managers = [m.manager for m in third.metadata.managedFields]
    assert managers == ["tests"]
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced


def test_dry_run_create_returns_defaults_and_persists_nothing(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="dry"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
    )
    out = core.create_namespaced_service("default", svc, dry_run="All")
    assert out.spec.type == "ClusterIP"
    assert out.spec.ports[0].protocol == "TCP" and out.spec.ports[0].target_port == 80
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("dry", "default")
    assert err.value.status == 404
