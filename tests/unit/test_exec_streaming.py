"""The API server's pods/exec pieces without a network: query parsing, the container
and pod checks kube-apiserver makes, the kubelet path, the memory of failed WebSocket
attempts, and how pods/exec is listed in discovery and OpenAPI."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubemodel.errors import ApiError
from runtime.api.registry import Registry
from runtime.server import streaming
from runtime.server.discovery import Discovery
from runtime.server.openapi import OpenAPI


def _pod(*containers: str, node: str = "n1", phase: str = "Running", **annotations: str) -> Any:
    return {
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {
            "nodeName": node,
            "containers": [{"name": c} for c in containers],
            "initContainers": [{"name": "setup"}],
            "ephemeralContainers": [{"name": "debugger"}],
        },
        "status": {"phase": phase},
    }


def _query(raw: bytes) -> streaming.StreamQuery:
    return streaming.parse_stream_query(raw)


def test_repeated_commands_keep_their_order_and_flags_accept_kubernetes_booleans() -> None:
    q = _query(b"command=sh&command=-c&command=echo%20a&stdin=1&stdout=true&stderr=False&tty=t")
    assert q.command == ("sh", "-c", "echo a")
    assert (q.stdin, q.stdout, q.stderr, q.tty) == (True, True, False, True)


def test_a_flag_that_is_not_a_boolean_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as err:
        _query(b"command=ls&stdin=yes")
    assert err.value.code == 400 and err.value.message == "stdin must be true or false, not 'yes'"


def test_the_container_is_the_only_one_the_annotated_one_or_must_be_named() -> None:
    assert streaming.choose_container(_pod("app"), "p", "") == "app"
    annotated = _pod("a", "b", **{"kubectl.kubernetes.io/default-container": "b"})
    assert streaming.choose_container(annotated, "p", "") == "b"
    with pytest.raises(ApiError) as err:
        streaming.choose_container(_pod("a", "b"), "p", "")
    assert err.value.message == (
        "a container name must be specified for pod p, choose one of: [a b]"
        " or one of the init containers: [setup]"
    )


def test_init_and_ephemeral_containers_are_valid_and_others_are_not() -> None:
    pod = _pod("a", "b")
    assert streaming.choose_container(pod, "p", "setup") == "setup"
    assert streaming.choose_container(pod, "p", "debugger") == "debugger"
    with pytest.raises(ApiError) as err:
        streaming.choose_container(pod, "p", "zz")
    assert err.value.message == "container zz is not valid for pod p"


@pytest.mark.parametrize(
    ("pod", "sub", "raw", "message"),
    [
        (
            _pod("app", phase="Failed"),
            "exec",
            b"command=ls&stdout=1",
            "cannot exec into a container in a completed pod; current phase is Failed",
        ),
        (
            _pod("app", phase="Succeeded"),
            "attach",
            b"stdout=1",
            "cannot attach to a container in a completed pod; current phase is Succeeded",
        ),
        (
            _pod("app", node=""),
            "exec",
            b"command=ls&stdout=1",
            "pod p does not have a host assigned",
        ),
        (
            _pod("app"),
            "exec",
            b"stdout=1",
            "you must specify at least one command for the container",
        ),
        (
            _pod("app"),
            "exec",
            b"command=ls",
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
    ],
)
def test_requests_that_cannot_run_are_bad_requests(
    pod: Any, sub: str, raw: bytes, message: str
) -> None:
    with pytest.raises(ApiError) as err:
        streaming.exec_target(pod, "default", "p", sub, _query(raw))
    assert (err.value.code, err.value.message) == (400, message)


def test_the_kubelet_path_quotes_names_and_passes_flags_as_digits() -> None:
    target = streaming.exec_target(
        _pod("app"), "default", "p", "exec", _query(b"command=echo&command=a%20b&stdout=true&tty=1")
    )
    assert target.node_name == "n1"
    assert target.kubelet_path() == (
        "/exec/default/p/app?command=echo&command=a+b&stdin=0&stdout=1&stderr=0&tty=1"
    )


def test_a_failure_is_told_once_and_only_while_fresh() -> None:
    failures = streaming.RecentFailures(ttl=60)
    key = ("default", "p", "exec", b"command=ls")
    failures.remember(key, ApiError(400, "BadRequest", "container c is not running"))
    assert failures.take(("default", "p", "exec", b"command=other")) is None
    told = failures.take(key)
    assert told is not None and told.message == "container c is not running"
    assert failures.take(key) is None
    stale = streaming.RecentFailures(ttl=0)
    stale.remember(key, ApiError(400, "BadRequest", "old"))
    assert stale.take(key) is None


def test_kubelet_refusals_map_to_the_clients_or_the_clusters_fault() -> None:
    assert streaming.kubelet_error("n", 404, "no such container\n").code == 400
    assert streaming.kubelet_error("n", 401, "Unauthorized").code == 500
    empty = streaming.kubelet_error("n", 502, "")
    assert (empty.code, empty.message) == (500, "the kubelet of node 'n' answered 502")


def test_discovery_lists_pods_exec_and_attach() -> None:
    doc = orjson.loads(Discovery(Registry(), "127.0.0.1:6443").document("/api/v1") or b"{}")
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods/exec"]["verbs"] == ["create", "get"]
    assert by_name["pods/exec"]["kind"] == "PodExecOptions"
    assert by_name["pods/attach"]["verbs"] == ["create", "get"]
    assert by_name["pods/attach"]["kind"] == "PodAttachOptions"


def test_openapi_has_the_connect_operations_of_pods_exec_and_attach() -> None:
    paths = orjson.loads(OpenAPI(Registry()).v2_json())["paths"]
    route = paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert route["get"]["operationId"] == "connectCoreV1GetNamespacedPodExec"
    assert route["post"]["operationId"] == "connectCoreV1PostNamespacedPodExec"
    assert route["get"]["x-kubernetes-action"] == "connect"
    assert route["get"]["x-kubernetes-group-version-kind"]["kind"] == "PodExecOptions"
    names = [p["name"] for p in route["get"]["parameters"]]
    assert names == ["command", "container", "stderr", "stdin", "stdout", "tty"]
    attach = paths["/api/v1/namespaces/{namespace}/pods/{name}/attach"]
    assert attach["get"]["operationId"] == "connectCoreV1GetNamespacedPodAttach"
    assert [p["name"] for p in attach["get"]["parameters"]] == [
        "container",
        "stderr",
        "stdin",
        "stdout",
        "tty",
    ]
