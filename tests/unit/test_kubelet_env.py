"""A container's environment (runtime.kubelet.env), pinned to the kubelet's
makeEnvironmentVariables, the downward API and the forked ``expansion`` package; and
the TTL cache the kubelet reads ConfigMaps and Secrets through (runtime.kubelet.sources)."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, cast

import pytest

from kubeclient.rest import Client, KubeError
from runtime.kubelet.env import (
    ContainerConfigError,
    EnvWarning,
    container_env,
    expand,
    field_value,
    format_map,
    go_quote,
    resource_value,
)
from runtime.kubelet.sources import CachedSource, SourceError


class MemorySource:
    """Objects held in memory, as test data, keyed like the API."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.reads: list[tuple[str, str, str]] = []
        self.error: Exception | None = None
        for obj in objects:
            self.put(obj)

    def put(self, obj: dict[str, Any]) -> None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[obj["kind"]]
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", "default"), meta["name"])] = obj

    async def get(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        self.reads.append((plural, namespace, name))
        if self.error is not None:
            raise self.error
        return self.objects.get((plural, namespace, name))


def cm(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def secret(name: str, namespace: str = "default", **data: str | bytes) -> dict[str, Any]:
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded}


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "1111-2222",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"\n'},
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "robot",
            "containers": list(containers) or [{"name": "app", "image": "busybox"}],
            **spec,
        },
    }


def run_env(
    container: dict[str, Any],
    source: MemorySource | None = None,
    *,
    the_pod: dict[str, Any] | None = None,
    warnings: list[EnvWarning] | None = None,
    **kwargs: Any,
) -> dict[str, str]:
    the_pod = the_pod or pod(container)
    pairs = asyncio.run(
        container_env(
            the_pod,
            container,
            source or MemorySource(),
            node_name="node-1",
            node_ip="10.0.0.5",
            pod_ip="10.88.0.7",
            pod_ips=["10.88.0.7", "fd00::7"],
            warnings=warnings,
            **kwargs,
        )
    )
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), "one entry per variable"
    return dict(pairs)


def config_error(container: dict[str, Any], source: MemorySource | None = None) -> str:
    with pytest.raises(ContainerConfigError) as err:
        run_env(container, source)
    assert err.value.reason == "CreateContainerConfigError"
    assert err.value.retryable
    return err.value.message


# --- $(VAR) expansion -------------------------------------------------------------

EXPANSION_ENV = {
    "VAR_A": "A",
    "VAR_B": "B",
    "VAR_C": "C",
    "VAR_REF": "$(VAR_A)",
    "VAR_EMPTY": "",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("foo$(VAR_EMPTY)bar", "foobar"),
        ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("f00__(VAR_A)__", "f00__(VAR_A)__"),
        ("$?_boo_$!", "$?_boo_$!"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("$VAR_A)", "$VAR_A)"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_B)_______$(A", "B_______$(A"),
        ("$(VAR_C)_______$(", "C_______$("),
        ("$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("--$($($($($--", "--$($($($($--"),
        ("$(foo$$var)", "$(foo$$var)"),
        ("$()", "$()"),
        ("\n", "\n"),
        ("", ""),
        ("$", "$"),
        ("$$", "$"),
    ],
)
def test_expansion_follows_the_kubernetes_expansion_package(text: str, expected: str) -> None:
    assert expand(text, EXPANSION_ENV) == expected


def test_expanded_values_are_not_expanded_again() -> None:
    assert expand("$(X)", {"X": "$(Y)", "Y": "no"}) == "$(Y)"
    assert expand("$(X)", {"X": "$$"}) == "$$"


# --- envFrom ------------------------------------------------------------------------


def test_env_from_takes_every_key_of_a_config_map_and_a_secret_with_prefixes() -> None:
    source = MemorySource(cm("app", color="blue", size="L"), secret("creds", user="me", pw="s3"))
    env = run_env(
        {
            "name": "app",
            "envFrom": [
                {"configMapRef": {"name": "app"}},
                {"prefix": "DB_", "secretRef": {"name": "creds"}},
            ],
        },
        source,
    )
    assert env == {"color": "blue", "size": "L", "DB_user": "me", "DB_pw": "s3"}


def test_a_later_env_from_source_overrides_an_earlier_one() -> None:
    source = MemorySource(cm("a", X="from-a", Y="a"), cm("b", X="from-b"))
    env = run_env(
        {
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "a"}}, {"configMapRef": {"name": "b"}}],
        },
        source,
    )
    assert env == {"X": "from-b", "Y": "a"}


def test_a_missing_config_map_in_env_from_fails_the_container_like_the_kubelet() -> None:
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "app"}}]}
    assert config_error(container) == 'configmap "app" not found'


def test_a_missing_secret_in_env_from_fails_the_container_like_the_kubelet() -> None:
    container = {"name": "app", "envFrom": [{"secretRef": {"name": "s"}}]}
    assert config_error(container) == 'secret "s" not found'


def test_an_optional_missing_env_from_source_is_skipped() -> None:
    container = {
        "name": "app",
        "envFrom": [
            {"configMapRef": {"name": "nope", "optional": True}},
            {"secretRef": {"name": "nope", "optional": True}},
        ],
        "env": [{"name": "A", "value": "1"}],
    }
    assert run_env(container) == {"A": "1"}


def test_env_from_keys_that_are_not_variable_names_are_skipped_and_reported() -> None:
    source = MemorySource(cm("cfg", good="1", **{"a=b": "2", "c=d": "3"}))
    warnings: list[EnvWarning] = []
    env = run_env(
        {"name": "app", "envFrom": [{"configMapRef": {"name": "cfg"}}]}, source, warnings=warnings
    )
    assert env == {"good": "1"}
    assert warnings == [
        EnvWarning(
            "InvalidEnvironmentVariableNames",
            "Keys [a=b, c=d] from the EnvFrom configMap default/cfg were skipped since they "
            "are considered invalid environment variable names.",
        )
    ]


def test_the_strict_name_rule_skips_keys_such_as_a_leading_digit_as_older_kubelets_did() -> None:
    source = MemorySource(secret("s", **{"1badkey": "x", "2alsobad": "y", "ok.name": "z"}))
    container = {"name": "app", "envFrom": [{"secretRef": {"name": "s"}}]}
    warnings: list[EnvWarning] = []
    relaxed = run_env(container, source, warnings=warnings)
    assert relaxed == {"1badkey": "x", "2alsobad": "y", "ok.name": "z"} and warnings == []
    strict = run_env(container, source, warnings=warnings, name_rule="strict")
    assert strict == {"ok.name": "z"}
    assert warnings[0].message == (
        "Keys [1badkey, 2alsobad] from the EnvFrom secret default/s were skipped since they "
        "are considered invalid environment variable names."
    )


def test_a_prefix_can_make_a_key_a_valid_name() -> None:
    source = MemorySource(cm("cfg", **{"1234": "abc"}))
    container = {"name": "app", "envFrom": [{"prefix": "p_", "configMapRef": {"name": "cfg"}}]}
    assert run_env(container, source, name_rule="strict") == {"p_1234": "abc"}


def test_config_maps_and_secrets_are_read_once_per_container() -> None:
    source = MemorySource(cm("app", a="1", b="2"))
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "app"}}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "a"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "b"}}},
        ],
    }
    assert run_env(container, source) == {"a": "1", "b": "2", "A": "1", "B": "2"}
    assert source.reads == [("configmaps", "default", "app")]


def test_objects_are_read_from_the_pods_namespace() -> None:
    source = MemorySource(cm("app", "other", a="theirs"), cm("app", "mine", a="ours"))
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "app"}}]}
    the_pod = pod(container)
    the_pod["metadata"]["namespace"] = "mine"
    assert run_env(container, source, the_pod=the_pod) == {"a": "ours"}


# --- env: value and expansion -------------------------------------------------------


def test_env_values_expand_references_to_variables_defined_before_them() -> None:
    source = MemorySource(cm("app", HOST="db"))
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "app"}}],
        "env": [
            {"name": "PORT", "value": "5432"},
            {"name": "URL", "value": "pg://$(HOST):$(PORT)/$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "PRICE", "value": "$$(PORT) costs $$5"},
            {"name": "EMPTY", "value": ""},
            {"name": "NOTHING"},
        ],
    }
    env = run_env(container, source)
    assert env["URL"] == "pg://db:5432/$(LATER)"
    assert env["PRICE"] == "$(PORT) costs $5"
    assert env["EMPTY"] == "" and env["NOTHING"] == ""


def test_env_overrides_env_from_and_a_repeated_name_takes_the_last_value() -> None:
    source = MemorySource(cm("app", MODE="from-map"))
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "app"}}],
        "env": [{"name": "MODE", "value": "first"}, {"name": "MODE", "value": "$(MODE)-second"}],
    }
    assert run_env(container, source) == {"MODE": "first-second"}


def test_the_environment_lists_env_from_variables_first_then_env_in_order() -> None:
    source = MemorySource(cm("app", Z="1", A="2"))
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "app"}}],
        "env": [{"name": "M", "value": "3"}, {"name": "B", "value": "4"}],
    }
    pairs = asyncio.run(
        container_env(
            pod(container),
            container,
            source,
            node_name="n",
            node_ip="",
            pod_ip="",
            pod_ips=[],
        )
    )
    assert pairs == [("Z", "1"), ("A", "2"), ("M", "3"), ("B", "4")]


# --- env: configMapKeyRef and secretKeyRef ----------------------------------------


def test_config_map_and_secret_key_refs_give_the_values() -> None:
    source = MemorySource(cm("app", color="blue"), secret("s", token="t0k3n\n"))
    container = {
        "name": "app",
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "color"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "BOTH", "value": "$(COLOR)/$(TOKEN)"},
        ],
    }
    assert run_env(container, source) == {
        "COLOR": "blue",
        "TOKEN": "t0k3n\n",
        "BOTH": "blue/t0k3n\n",
    }


def test_a_missing_key_fails_the_container_with_the_kubelets_message() -> None:
    source = MemorySource(cm("app", size="L"), secret("s", a="1"))
    cm_ref = {"configMapKeyRef": {"name": "app", "key": "color"}}
    message = config_error({"name": "app", "env": [{"name": "C", "valueFrom": cm_ref}]}, source)
    assert message == "couldn't find key color in ConfigMap default/app"
    s_ref = {"secretKeyRef": {"name": "s", "key": "pw"}}
    message = config_error({"name": "app", "env": [{"name": "P", "valueFrom": s_ref}]}, source)
    assert message == "couldn't find key pw in Secret default/s"


def test_a_missing_object_behind_a_key_ref_fails_the_container() -> None:
    cm_ref = {"configMapKeyRef": {"name": "app", "key": "color"}}
    assert config_error({"name": "a", "env": [{"name": "C", "valueFrom": cm_ref}]}) == (
        'configmap "app" not found'
    )
    s_ref = {"secretKeyRef": {"name": "s", "key": "pw"}}
    assert config_error({"name": "a", "env": [{"name": "P", "valueFrom": s_ref}]}) == (
        'secret "s" not found'
    )


def test_an_optional_key_ref_leaves_the_variable_out_when_the_object_or_key_is_missing() -> None:
    source = MemorySource(cm("app", size="L"))
    container = {
        "name": "app",
        "env": [
            {
                "name": "NO_KEY",
                "valueFrom": {"configMapKeyRef": {"name": "app", "key": "x", "optional": True}},
            },
            {
                "name": "NO_MAP",
                "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x", "optional": True}},
            },
            {
                "name": "NO_SECRET",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "x", "optional": True}},
            },
            {"name": "REF", "value": "[$(NO_KEY)]"},
        ],
    }
    assert run_env(container, source) == {"REF": "[$(NO_KEY)]"}


def test_secret_values_are_base64_decoded_and_keep_non_utf8_bytes() -> None:
    source = MemorySource(secret("s", raw=b"\xff\xfeok"))
    container = {
        "name": "app",
        "env": [{"name": "RAW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "raw"}}}],
    }
    value = run_env(container, source)["RAW"]
    assert os.fsencode(value) == b"\xff\xfeok"


def test_an_unreadable_source_is_a_retryable_config_error() -> None:
    source = MemorySource()
    source.error = SourceError("couldn't get configmaps default/app: connection refused")
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "app"}}]}
    assert "connection refused" in config_error(container, source)


# --- env: fieldRef ------------------------------------------------------------------


def field_env(**paths: str) -> dict[str, str]:
    container = {
        "name": "app",
        "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()],
    }
    return run_env(container)


def test_field_refs_give_pod_metadata_node_and_addresses() -> None:
    assert field_env(
        NAME="metadata.name",
        NS="metadata.namespace",
        UID="metadata.uid",
        APP="metadata.labels['app']",
        MISSING="metadata.labels['nope']",
        NOTE="metadata.annotations['note']",
        NODE="spec.nodeName",
        SA="spec.serviceAccountName",
        HOST_IP="status.hostIP",
        HOST_IPS="status.hostIPs",
        POD_IP="status.podIP",
        POD_IPS="status.podIPs",
    ) == {
        "NAME": "web-0",
        "NS": "default",
        "UID": "1111-2222",
        "APP": "web",
        "MISSING": "",
        "NOTE": 'say "hi"\n',
        "NODE": "node-1",
        "SA": "robot",
        "HOST_IP": "10.0.0.5",
        "HOST_IPS": "10.0.0.5",
        "POD_IP": "10.88.0.7",
        "POD_IPS": "10.88.0.7,fd00::7",
    }


def test_whole_label_and_annotation_maps_render_as_sorted_go_quoted_lines() -> None:
    assert field_env(L="metadata.labels", A="metadata.annotations") == {
        "L": 'app="web"\ntier="front"',
        "A": 'note="say \\"hi\\"\\n"',
    }


def test_go_quoting_escapes_like_strconv_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\t\x07\x7f\x01é☃") == '"\\t\\a\\x7f\\x01é☃"'
    assert go_quote("\u00a0\U0001f600") == '"\\u00a0😀"'
    assert format_map({}) == ""


def test_an_unsupported_field_ref_is_a_config_error() -> None:
    container: dict[str, Any] = {
        "name": "app",
        "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}],
    }
    assert config_error(container) == "field label not supported: spec.containers"
    container["env"][0]["valueFrom"]["fieldRef"] = {
        "apiVersion": "v2",
        "fieldPath": "metadata.name",
    }
    assert config_error(container) == "unsupported pod version: v2"
    with pytest.raises(ValueError, match="does not support subscript"):
        field_value(pod(), "metadata.name['x']")
    with pytest.raises(ValueError, match=r"unsupported fieldPath: status\.phase"):
        field_value(pod(), "status.phase")


def test_the_pod_ip_falls_back_to_pod_ip_when_no_list_is_given() -> None:
    assert field_value(pod(), "status.podIP", pod_ip="10.1.1.1") == "10.1.1.1"
    assert field_value(pod(), "status.podIPs", pod_ip="10.1.1.1") == "10.1.1.1"
    assert field_value(pod(), "spec.host") == "node-1"


# --- env: resourceFieldRef ------------------------------------------------------------


def resources_container(**resources: dict[str, str]) -> dict[str, Any]:
    return {"name": "app", "image": "busybox", "resources": resources}


@pytest.mark.parametrize(
    ("resource", "divisor", "expected"),
    [
        ("limits.cpu", None, "1"),  # 250m rounds up to one whole CPU
        ("limits.cpu", "1m", "250"),
        ("limits.cpu", "100m", "3"),  # 2.5 rounds up
        ("requests.cpu", "1m", "100"),
        ("requests.cpu", "1", "1"),
        ("limits.memory", None, "134217728"),
        ("limits.memory", "1Mi", "128"),
        ("limits.memory", "1M", "135"),  # 134.2 rounds up
        ("limits.memory", "1Gi", "1"),
        ("requests.memory", "1Ki", "65536"),
        ("limits.ephemeral-storage", "1G", "2"),
        ("requests.ephemeral-storage", None, "0"),  # no request
        ("limits.hugepages-2Mi", "1Mi", "4"),
    ],
)
def test_resource_field_refs_divide_and_round_up_as_kubernetes_does(
    resource: str, divisor: str | None, expected: str
) -> None:
    container = resources_container(
        limits={
            "cpu": "250m",
            "memory": "128Mi",
            "ephemeral-storage": "1500M",
            "hugepages-2Mi": "4Mi",
        },
        requests={"cpu": "100m", "memory": "64Mi"},
    )
    selector: dict[str, Any] = {"resource": resource}
    if divisor is not None:
        selector["divisor"] = divisor
    env = run_env(
        {**container, "env": [{"name": "V", "valueFrom": {"resourceFieldRef": selector}}]}
    )
    assert env == {"V": expected}


def test_unset_limits_default_to_the_nodes_allocatable() -> None:
    container = {
        **resources_container(requests={"cpu": "500m"}),
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {
                "name": "DISK",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}},
            },
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
        ],
    }
    allocatable = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "pods": "110"}
    assert run_env(container, node_allocatable=allocatable) == {
        "CPU": "2",
        "MEM": "4096",
        "DISK": str(10 * 2**30),
        "REQ": "0",
    }
    # Without allocatable, an unset limit reads as zero.
    assert run_env(container)["CPU"] == "0"


def test_a_resource_ref_can_name_another_container_of_the_pod() -> None:
    sidecar = resources_container(limits={"memory": "1Gi"})
    sidecar["name"] = "sidecar"
    app: dict[str, Any] = {
        "name": "app",
        "env": [
            {
                "name": "SIDE_MEM",
                "valueFrom": {
                    "resourceFieldRef": {
                        "containerName": "sidecar",
                        "resource": "limits.memory",
                        "divisor": "1Mi",
                    }
                },
            }
        ],
    }
    assert run_env(app, the_pod=pod(app, sidecar)) == {"SIDE_MEM": "1024"}
    app["env"][0]["valueFrom"]["resourceFieldRef"]["containerName"] = "ghost"
    with pytest.raises(ContainerConfigError, match="container ghost not found"):
        run_env(app, the_pod=pod(app, sidecar))


def test_an_unsupported_resource_is_a_config_error() -> None:
    container = {
        "name": "app",
        "env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}],
    }
    assert config_error(container) == "unsupported container resource : limits.gpu"


def test_resource_values_accept_json_numbers() -> None:
    container = resources_container(limits={"cpu": 2, "memory": 1024})  # type: ignore[dict-item]
    assert resource_value(
        pod(container), container, {"resource": "limits.cpu", "divisor": "1m"}
    ) == ("2000")
    assert resource_value(
        pod(container), container, {"resource": "limits.memory", "divisor": 1}
    ) == ("1024")


# --- the TTL cache over the API client ----------------------------------------------


class FakeClient:
    """Stands in for kubeclient's Client: answers from a dict, or fails."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None

    async def get(
        self, api_version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise KubeError(0, "ConnectionFailed", "connection refused")
        obj = self.objects.get((plural, namespace or "", name))
        if obj is None:
            raise KubeError(404, "NotFound", f'{plural} "{name}" not found')
        return obj


def test_the_cache_serves_a_stale_copy_while_the_api_server_is_down() -> None:
    async def go() -> None:
        now = [0.0]
        client = FakeClient()
        client.objects[("configmaps", "default", "app")] = cm("app", a="1")
        source = CachedSource(cast(Client, client), ttl=10, clock=lambda: now[0])
        assert (await source.get("v1", "configmaps", "default", "app") or {})["data"] == {"a": "1"}
        client.down = True
        now[0] = 100.0
        assert (await source.get("v1", "configmaps", "default", "app") or {})["data"] == {"a": "1"}
        assert client.calls == 2
        with pytest.raises(SourceError, match="connection refused") as err:
            await source.get("v1", "configmaps", "default", "other")
        assert err.value.retryable

    asyncio.run(go())


def test_concurrent_reads_of_one_object_share_one_request() -> None:
    async def go() -> None:
        client = FakeClient()
        client.objects[("secrets", "default", "s")] = secret("s", a="1")
        client.gate = asyncio.Event()
        source = CachedSource(cast(Client, client))
        reads = [asyncio.create_task(source.get("v1", "secrets", "default", "s")) for _ in range(5)]
        await asyncio.sleep(0)
        client.gate.set()
        results = await asyncio.gather(*reads)
        assert client.calls == 1 and all(r is results[0] for r in results)

    asyncio.run(go())


def test_a_cancelled_read_does_not_fail_the_others_waiting_for_it() -> None:
    async def go() -> None:
        client = FakeClient()
        client.objects[("secrets", "default", "s")] = secret("s", a="1")
        client.gate = asyncio.Event()
        source = CachedSource(cast(Client, client))
        first = asyncio.create_task(source.get("v1", "secrets", "default", "s"))
        await asyncio.sleep(0)
        second = asyncio.create_task(source.get("v1", "secrets", "default", "s"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        client.gate.set()
        assert (await second) is not None
        assert first.cancelled()

    asyncio.run(go())


def test_failures_are_shared_with_waiting_readers_and_not_cached() -> None:
    async def go() -> None:
        client = FakeClient()
        client.down = True
        client.gate = asyncio.Event()
        source = CachedSource(cast(Client, client))
        reads = [asyncio.create_task(source.get("v1", "secrets", "ns", "s")) for _ in range(3)]
        await asyncio.sleep(0)
        client.gate.set()
        results = await asyncio.gather(*reads, return_exceptions=True)
        assert all(isinstance(r, SourceError) for r in results) and client.calls == 1
        client.down = False
        client.objects[("secrets", "ns", "s")] = secret("s", "ns", a="1")
        assert await source.get("v1", "secrets", "ns", "s") is not None

    asyncio.run(go())
