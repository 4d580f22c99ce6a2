"""Pod Security Admission (runtime.api.admission.podsecurity): every baseline and
restricted check with Kubernetes' reasons and details (the cases of
k8s.io/pod-security-admission's policy tests), policy versions, the admission decisions
for pods, pod-template workloads and namespaces, the configuration, and the wiring into
the object layer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api.admission import podsecurity as psa
from runtime.api.objects import ApiOptions, ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.store import Store

Obj = dict[str, Any]


def detail(level: str, spec: Obj, meta: Obj | None = None, version: str = "latest") -> str:
    """What a pod at ``level:version`` is refused for ("" when it is allowed)."""
    parsed, error = psa.parse_version(version)
    assert not error
    results = psa.evaluate_pod(psa.LevelVersion(level, parsed), meta or {}, spec)
    return psa.forbidden_detail(results)


def baseline(spec: Obj, meta: Obj | None = None, version: str = "latest") -> str:
    return detail(psa.BASELINE, spec, meta, version)


def restricted(spec: Obj, meta: Obj | None = None, version: str = "latest") -> str:
    return detail(psa.RESTRICTED, spec, meta, version)


def sc(name: str, **context: Any) -> Obj:
    return {"name": name, "image": "x", "securityContext": context}


#: A container that passes every restricted check.
GOOD = {
    "name": "good",
    "image": "x",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


# --- baseline checks ---------------------------------------------------------------------
def test_a_plain_pod_passes_baseline() -> None:
    assert baseline({"containers": [{"name": "c", "image": "nginx"}]}) == ""


def test_host_namespaces_are_named_in_kubernetes_order() -> None:
    spec = {"hostIPC": True, "hostPID": True, "hostNetwork": True, "containers": []}
    assert baseline(spec) == "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"
    assert baseline({"hostNetwork": False, "containers": []}) == ""


def test_privileged_containers_are_named() -> None:
    spec = {
        "containers": [
            {"name": "a"},
            sc("b"),
            sc("c", privileged=False),
            sc("d", privileged=True),
            sc("e", privileged=True),
        ]
    }
    assert baseline(spec) == (
        'privileged (containers "d", "e" must not set securityContext.privileged=true)'
    )


def test_capabilities_beyond_the_default_set_are_refused_sorted() -> None:
    spec = {
        "containers": [
            sc("a", capabilities={"add": ["FOO", "BAR"]}),
            sc("b", capabilities={"add": ["BAR", "BAZ"]}),
            sc("c", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN", "SYS_CHROOT"]}),
        ]
    }
    assert baseline(spec) == (
        'non-default capabilities (containers "a", "b" must not include "BAR", "BAZ", "FOO" '
        "in securityContext.capabilities.add)"
    )


def test_host_path_volumes_are_refused_by_name() -> None:
    volumes = [
        {"name": "a", "hostPath": {"path": "/"}},
        {"name": "b", "hostPath": {"path": "/etc"}},
        {"name": "c", "emptyDir": {}},
    ]
    assert baseline({"volumes": volumes, "containers": []}) == 'hostPath volumes (volumes "a", "b")'
    assert baseline({"volumes": volumes[:1], "containers": []}) == 'hostPath volumes (volume "a")'


def test_host_ports_are_listed_as_sorted_strings() -> None:
    def ports(*host: int) -> list[Obj]:
        return [{"containerPort": 80 + i, "hostPort": p} for i, p in enumerate(host)]

    one = {"containers": [{"name": "a", "ports": ports(0)}, {"name": "b", "ports": ports(0, 20)}]}
    assert baseline(one) == 'hostPort (container "b" uses hostPort 20)'
    many = {
        "containers": [
            {"name": "a", "ports": ports(0)},
            {"name": "b", "ports": ports(0, 10, 20)},
            {"name": "c", "ports": ports(0, 10, 30)},
            {"name": "d", "ports": ports(8080, 90)},
        ]
    }
    assert baseline(many) == (
        'hostPort (containers "b", "c", "d" use hostPorts 10, 20, 30, 8080, 90)'
    )


def test_probe_and_lifecycle_hosts_are_refused_from_v1_34() -> None:
    spec = {
        "containers": [
            {"name": "valid"},
            {"name": "invalid1", "livenessProbe": {"httpGet": {"host": "a.com", "port": 80}}},
            {
                "name": "invalid2",
                "lifecycle": {"preStop": {"tcpSocket": {"host": "b.com", "port": 1}}},
                "startupProbe": {"httpGet": {"host": "a.com", "port": 80}},
            },
        ]
    }
    expected = (
        'probe or lifecycle host (containers "invalid1", "invalid2" use probe or lifecycle '
        'hosts "a.com", "b.com")'
    )
    assert baseline(spec) == expected
    assert baseline(spec, version="v1.34") == expected
    assert baseline(spec, version="v1.33") == ""
    local = {"containers": [{"name": "a", "readinessProbe": {"tcpSocket": {"host": "::1"}}}]}
    assert (
        baseline(local)
        == 'probe or lifecycle host (container "a" uses probe or lifecycle host "::1")'
    )


def test_unconfined_app_armor_profiles_are_refused_in_fields_and_annotations() -> None:
    pod = {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []}
    assert baseline(pod) == (
        'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")'
    )
    init = {
        "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "foo"}],
        "initContainers": [sc("bar", appArmorProfile={"type": "Unconfined"})],
    }
    assert baseline(init) == (
        'forbidden AppArmor profile (container "bar" must not set AppArmor profile type to '
        '"Unconfined")'
    )
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    meta = {
        "annotations": {
            prefix: "bogus",
            prefix + "a": "",
            prefix + "b": "runtime/default",
            prefix + "c": "localhost/",
            prefix + "d": "localhost/foo",
            prefix + "e": "unconfined",
            prefix + "f": "unknown",
        }
    }
    assert baseline({"containers": []}, meta) == (
        "forbidden AppArmor profiles (annotations must not set AppArmor profile type to "
        f'"{prefix}="bogus"", "{prefix}e="unconfined"", "{prefix}f="unknown"")'
    )


def test_se_linux_options_name_types_users_and_roles() -> None:
    def options(**o: str) -> Obj:
        return {"seLinuxOptions": o}

    containers = [
        {"name": "a", "securityContext": options(type="container_t")},
        {"name": "b", "securityContext": options(type="container_init_t")},
        {"name": "c", "securityContext": options(type="container_kvm_t")},
        {"name": "d", "securityContext": options(type="container_engine_t")},
        {"name": "e", "securityContext": options(type="bar")},
        {"name": "f", "securityContext": options(user="bar")},
        {"name": "g", "securityContext": options(role="baz")},
    ]
    spec = {
        "securityContext": options(type="foo", user="bar", role="baz"),
        "containers": containers,
    }
    assert baseline(spec) == (
        'seLinuxOptions (pod and containers "e", "f", "g" set forbidden '
        'securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may '
        "not be set)"
    )
    user_only = {"securityContext": options(user="bad"), "containers": []}
    assert baseline(user_only) == (
        "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"
    )
    engine = {"containers": containers[3:4]}
    assert baseline(engine) == ""
    assert baseline(engine, version="v1.30") == (
        'seLinuxOptions (container "d" set forbidden securityContext.seLinuxOptions: type '
        '"container_engine_t")'
    )


def test_an_unmasked_proc_mount_is_refused_unless_the_pod_has_its_own_user_namespace() -> None:
    spec: Obj = {"containers": [sc("a", procMount="Unmasked"), sc("b", procMount="Default")]}
    expected = 'procMount (container "a" must not set securityContext.procMount to "Unmasked")'
    assert baseline(spec) == expected
    userns = {**spec, "hostUsers": False}
    assert baseline(userns) == ""  # v1.35 relaxed baseline for user namespaces
    assert baseline(userns, version="v1.34") == expected
    assert restricted({**userns, "containers": [{**GOOD, **sc("a", procMount="Unmasked")}]})


def test_seccomp_fields_from_v1_19_and_annotations_before() -> None:
    spec = {
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [
            sc("a", seccompProfile={"type": "Unconfined"}),
            sc("b", seccompProfile={"type": "Localhost", "localhostProfile": "p"}),
        ],
    }
    assert baseline(spec) == (
        'seccompProfile (pod and container "a" must not set securityContext.seccompProfile.type '
        'to "Unconfined")'
    )
    meta = {
        "annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a": "docker/default",
            "container.seccomp.security.alpha.kubernetes.io/b": "foo",
        }
    }
    plain = {"containers": [{"name": "a"}, {"name": "b"}]}
    assert baseline(plain, meta, version="v1.18") == (
        "seccompProfile (forbidden annotations "
        'container.seccomp.security.alpha.kubernetes.io/b="foo", '
        'seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )
    assert baseline(plain, meta) == ""  # annotations are not read from v1.19


def test_sysctls_outside_the_safe_set_of_the_version_are_refused() -> None:
    def pod(*names: str) -> Obj:
        return {"securityContext": {"sysctls": [{"name": n, "value": "1"} for n in names]}}

    assert baseline(pod("a", "kernel.shm_rmid_forced", "b")) == "forbidden sysctls (a, b)"
    reserved = pod("net.ipv4.ip_local_reserved_ports")
    assert baseline(reserved, version="v1.26") == (
        "forbidden sysctls (net.ipv4.ip_local_reserved_ports)"
    )
    assert baseline(reserved, version="v1.27") == ""
    keepalive = pod("net.ipv4.tcp_keepalive_time")
    assert (baseline(keepalive, version="v1.28") != "", baseline(keepalive, version="v1.29")) == (
        True,
        "",
    )
    rmem = pod("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
    assert (
        baseline(rmem, version="v1.31")
        == "forbidden sysctls (net.ipv4.tcp_rmem, net.ipv4.tcp_wmem)"
    )
    assert baseline(rmem) == ""


def test_windows_host_process_is_refused_for_pod_and_containers() -> None:
    host = {"windowsOptions": {"hostProcess": True}}
    spec = {"securityContext": host, "containers": [{"name": "a", "securityContext": host}]}
    assert baseline(spec) == (
        'hostProcess (pod and container "a" must not set '
        "securityContext.windowsOptions.hostProcess=true)"
    )


def test_baseline_reasons_come_in_kubernetes_check_order() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [sc("c", privileged=True, capabilities={"add": ["SYS_ADMIN"]})],
    }
    assert baseline(spec) == (
        'non-default capabilities (container "c" must not include "SYS_ADMIN" in '
        "securityContext.capabilities.add), host namespaces (hostNetwork=true), hostPath "
        'volumes (volume "root"), privileged (container "c" must not set '
        "securityContext.privileged=true)"
    )


# --- restricted checks -------------------------------------------------------------------
def test_a_plain_pod_gets_the_well_known_restricted_message() -> None:
    spec = {"containers": [{"name": "c", "image": "nginx"}]}
    assert restricted(spec) == (
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
        'true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile '
        '(pod or container "c" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    )


def test_a_pod_with_the_restricted_settings_passes() -> None:
    assert (
        restricted({"containers": [GOOD], "volumes": [{"name": "v", "configMap": {"name": "x"}}]})
        == ""
    )
    pod_level = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            sc(
                "a",
                allowPrivilegeEscalation=False,
                capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            )
        ],
    }
    assert restricted(pod_level) == ""


def test_restricted_capabilities_name_both_problems() -> None:
    spec = {
        "containers": [
            {
                **GOOD,
                "name": "a",
                "securityContext": {
                    **GOOD["securityContext"],
                    "capabilities": {"drop": ["NET_RAW"], "add": ["CHOWN"]},
                },
            },
            {
                **GOOD,
                "name": "b",
                "securityContext": {**GOOD["securityContext"], "capabilities": None},
            },
        ]
    }
    assert restricted(spec) == (
        'unrestricted capabilities (containers "a", "b" must set '
        'securityContext.capabilities.drop=["ALL"]; container "a" must not include "CHOWN" in '
        "securityContext.capabilities.add)"
    )


def test_restricted_volume_types_replace_the_host_path_check() -> None:
    spec = {
        "containers": [GOOD],
        "volumes": [
            {"name": "proc", "hostPath": {"path": "/proc"}},
            {"name": "share", "nfs": {"server": "s", "path": "/"}},
            {"name": "ok", "image": {"reference": "x"}},
            {"name": "odd"},
        ],
    }
    assert restricted(spec) == (
        'restricted volume types (volumes "proc", "share", "odd" use restricted volume types '
        '"hostPath", "nfs", "unknown")'
    )


def test_run_as_non_root_explicit_false_wins_over_missing() -> None:
    spec = {
        "securityContext": {"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {**GOOD, "name": "a"},
            {
                **GOOD,
                "name": "b",
                "securityContext": {**GOOD["securityContext"], "runAsNonRoot": False},
            },
        ],
    }
    assert restricted(spec) == (
        'runAsNonRoot != true (pod and container "b" must not set '
        "securityContext.runAsNonRoot=false)"
    )


def test_run_as_user_zero_is_refused_from_v1_23() -> None:
    spec = {
        "securityContext": {"runAsUser": 0},
        "containers": [{**GOOD, "securityContext": {**GOOD["securityContext"], "runAsUser": 0}}],
    }
    expected = 'runAsUser=0 (pod and container "good" must not set runAsUser=0)'
    assert restricted(spec) == expected
    assert restricted(spec, version="v1.22") == ""


def test_user_namespace_pods_may_run_as_root_from_v1_35() -> None:
    spec = {
        "hostUsers": False,
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
        "containers": [GOOD],
    }
    assert restricted(spec) == ""
    assert restricted(spec, version="v1.34") == (
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), "
        "runAsUser=0 (pod must not set runAsUser=0)"
    )


def test_windows_pods_are_exempt_from_linux_only_checks_from_v1_25() -> None:
    spec = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "w", "image": "x"}],
    }
    assert restricted(spec) == ""
    assert restricted(spec, version="v1.24") == (
        'allowPrivilegeEscalation != false (container "w" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "w" must set securityContext.capabilities.drop=["ALL"]), seccompProfile '
        '(pod or container "w" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    )


def test_restricted_includes_the_baseline_checks_it_does_not_replace() -> None:
    spec = {
        "hostPID": True,
        "containers": [{**GOOD, "ports": [{"containerPort": 1, "hostPort": 1}]}],
    }
    assert restricted(spec) == (
        'host namespaces (hostPID=true), hostPort (container "good" uses hostPort 1)'
    )


def test_ephemeral_and_init_containers_are_checked_in_order() -> None:
    spec = {
        "initContainers": [sc("init", privileged=True)],
        "containers": [sc("main", privileged=True)],
        "ephemeralContainers": [sc("debug", privileged=True)],
    }
    assert baseline(spec) == (
        'privileged (containers "init", "main", "debug" must not set '
        "securityContext.privileged=true)"
    )


def test_versions_parse_as_kubernetes_parses_them() -> None:
    assert psa.parse_version("latest") == (psa.LATEST, "")
    assert psa.parse_version("v1.30") == (psa.Version(30), "")
    for bad in ("v1.030", "1.30", "v2.0", "v1.30\n", "v1.", "latest "):
        assert psa.parse_version(bad) == (psa.LATEST, 'must be "latest" or "v1.x"')
    assert str(psa.LevelVersion(psa.BASELINE, psa.Version(29))) == "baseline:v1.29"
    future = psa.LevelVersion(psa.BASELINE, psa.Version(99))
    assert psa.evaluate_pod(future, {}, {"hostPID": True}) == [
        psa.CheckResult("host namespaces", "hostPID=true")
    ]


# --- admission decisions -----------------------------------------------------------------
class World:
    """Namespaces (name -> labels) and pods for :class:`psa.Lookups`."""

    def __init__(self, namespaces: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.namespaces = dict(namespaces or {"default": {}})
        self.pod_list: list[Obj] = []

    def lookups(self) -> psa.Lookups:
        def pods(namespace: str) -> Iterable[Obj]:
            return [p for p in self.pod_list if p["metadata"]["namespace"] == namespace]

        return psa.Lookups(self.namespaces.get, pods)


def pod(name: str, spec: Obj, namespace: str = "default", **meta: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": spec,
    }


PLAIN = {"containers": [{"name": "c", "image": "nginx"}]}
HOST_NETWORK = {"hostNetwork": True, "containers": [{"name": "c", "image": "nginx"}]}


def admit_pod(
    obj: Obj,
    world: World,
    config: psa.PodSecurityConfig = psa.DEFAULT_CONFIG,
    old: Obj | None = None,
    **request: Any,
) -> psa.Decision:
    meta = obj["metadata"]
    req = psa.Request("", "pods", meta["name"], meta["namespace"], obj, old, **request)
    return psa.admit(config, req, world.lookups())


RESTRICTED_WARNING = (
    'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
    '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted '
    'capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def test_the_default_refuses_a_host_network_pod_with_kubernetes_status() -> None:
    decision = admit_pod(pod("web", HOST_NETWORK), World())
    assert decision.error is not None
    assert decision.error.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web" is forbidden: violates PodSecurity "baseline:latest": host '
        "namespaces (hostNetwork=true)",
        "reason": "Forbidden",
        "details": {"name": "web", "kind": "pods"},
        "code": 403,
    }
    assert decision.warnings == []  # no warnings on a refused request
    assert decision.audit[psa.ENFORCE_POLICY] == "baseline:latest"


def test_the_default_warns_about_restricted_on_an_admitted_pod() -> None:
    decision = admit_pod(pod("web", PLAIN), World())
    assert (decision.error, decision.warnings) == (None, [RESTRICTED_WARNING])


def test_namespace_labels_choose_levels_and_versions() -> None:
    world = World(
        {
            "open": {psa.ENFORCE_LABEL: "privileged"},
            "pinned": {
                psa.ENFORCE_LABEL: "restricted",
                psa.ENFORCE_VERSION_LABEL: "v1.24",
            },
            "quiet": {psa.WARN_LABEL: "privileged"},
        }
    )
    # Each mode without a label keeps the default: warn is still restricted.
    opened = admit_pod(pod("a", HOST_NETWORK, "open"), world)
    assert opened.allowed
    assert opened.warnings[0].startswith(
        'would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
    )
    world.namespaces["open"] = {psa.ENFORCE_LABEL: "privileged", psa.WARN_LABEL: "privileged"}
    assert admit_pod(pod("a", HOST_NETWORK, "open"), world) == psa.Decision(
        audit={psa.ENFORCE_POLICY: "privileged:latest"}
    )
    refused = admit_pod(pod("b", PLAIN, "pinned"), world).error
    assert refused is not None and refused.message.startswith(
        'pods "b" is forbidden: violates PodSecurity "restricted:v1.24": allowPrivilegeEscalation'
    )
    assert admit_pod(pod("c", PLAIN, "quiet"), world).warnings == []


def test_unparseable_labels_fail_closed_for_enforce_and_open_for_warn() -> None:
    world = World({"odd": {psa.ENFORCE_LABEL: "strict", psa.WARN_LABEL: "loud"}})
    decision = admit_pod(pod("a", PLAIN, "odd"), world)
    assert decision.error is not None
    assert 'violates PodSecurity "restricted:latest"' in decision.error.message
    assert decision.audit[psa.LABEL_PREFIX + "error"] == (
        "Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid "
        'value: "strict": must be one of privileged, baseline, restricted, '
        'metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "loud": must be one '
        "of privileged, baseline, restricted]"
    )


def test_exempt_users_runtime_classes_and_namespaces_are_not_checked() -> None:
    config = psa.PodSecurityConfig(
        defaults=psa.DEFAULT_CONFIG.defaults,
        exemptions=psa.Exemptions(
            usernames=("ops",), runtime_classes=("kata",), namespaces=("infra",)
        ),
    )
    world = World({"default": {}, "infra": {}})
    assert admit_pod(pod("a", HOST_NETWORK), world, config, username="ops").allowed
    assert not admit_pod(pod("a", HOST_NETWORK), world, config, username="dev").allowed
    kata = {**HOST_NETWORK, "runtimeClassName": "kata"}
    assert admit_pod(pod("b", kata), world, config).audit == {psa.EXEMPT: "runtimeClass"}
    assert admit_pod(pod("c", HOST_NETWORK, "infra"), world, config).audit == {
        psa.EXEMPT: "namespace"
    }


def test_pod_updates_are_checked_only_when_kubernetes_would_check_them() -> None:
    world = World()
    old = pod("a", HOST_NETWORK)
    labelled = pod("a", HOST_NETWORK, labels={"x": "y"})
    assert admit_pod(labelled, world, old=old).allowed  # metadata only
    new_image = pod("a", {**HOST_NETWORK, "containers": [{"name": "c", "image": "nginx:2"}]})
    assert not admit_pod(new_image, world, old=old).allowed
    debug = pod("a", {**HOST_NETWORK, "ephemeralContainers": [{"name": "d", "image": "busybox"}]})
    assert not admit_pod(debug, world, old=old).allowed
    assert admit_pod(new_image, world, old=old, subresource="status").allowed


def test_workloads_are_warned_about_but_never_refused() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": HOST_NETWORK}
    world = World()
    for group, resource, obj in (
        ("apps", "deployments", {"spec": {"template": template}}),
        ("apps", "daemonsets", {"spec": {"template": template}}),
        ("batch", "cronjobs", {"spec": {"jobTemplate": {"spec": {"template": template}}}}),
        ("", "podtemplates", {"template": template}),
    ):
        obj = {"metadata": {"name": "w", "namespace": "default"}, **obj}
        decision = psa.admit(
            psa.DEFAULT_CONFIG, psa.Request(group, resource, "w", "default", obj), world.lookups()
        )
        assert decision.error is None
        assert decision.warnings == [
            'would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
            + RESTRICTED_WARNING.split(": ", 1)[1]
        ], resource
    no_template = {"metadata": {"name": "rc", "namespace": "default"}, "spec": {}}
    rc = psa.Request("", "replicationcontrollers", "rc", "default", no_template)
    assert psa.admit(psa.DEFAULT_CONFIG, rc, world.lookups()) == psa.Decision()
    scale = psa.Request("apps", "deployments", "w", "default", {}, {}, subresource="scale")
    assert psa.admit(psa.DEFAULT_CONFIG, scale, world.lookups()) == psa.Decision()


def namespace(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def admit_namespace(
    new: Obj, old: Obj | None, world: World, config: psa.PodSecurityConfig = psa.DEFAULT_CONFIG
) -> psa.Decision:
    name = new["metadata"]["name"]
    return psa.admit(config, psa.Request("", "namespaces", name, name, new, old), world.lookups())


def test_namespace_labels_that_do_not_parse_are_invalid() -> None:
    bad = namespace("team", **{psa.ENFORCE_LABEL: "super", psa.AUDIT_VERSION_LABEL: "1.30"})
    decision = admit_namespace(bad, None, World())
    assert decision.error is not None
    assert (decision.error.code, decision.error.reason) == (422, "Invalid")
    assert decision.error.message == (
        'Namespace "team" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "super": must be one of privileged, baseline, restricted, '
        'metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.30": '
        'must be "latest" or "v1.x"]'
    )
    # An update that leaves the same bad labels alone is allowed.
    assert admit_namespace(bad, bad, World()).allowed


def test_a_stricter_enforce_label_warns_about_existing_pods() -> None:
    world = World({"team": {}})
    owner = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "rs",
            "uid": "u1",
            "controller": True,
        }
    ]
    world.pod_list = [
        pod("solo", HOST_NETWORK, "team"),
        pod("web-b", HOST_NETWORK, "team", ownerReferences=owner),
        pod("web-a", HOST_NETWORK, "team", ownerReferences=owner),
        pod("web-c", HOST_NETWORK, "team", ownerReferences=owner),
        pod("fine", PLAIN, "team"),
        pod(
            "root",
            {"volumes": [{"name": "r", "hostPath": {"path": "/"}}], "containers": []},
            "team",
        ),
    ]
    new = namespace("team", **{psa.ENFORCE_LABEL: "baseline"})
    old = namespace("team", **{psa.ENFORCE_LABEL: "privileged"})
    assert admit_namespace(new, old, world).warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level '
        '"baseline:latest"',
        "root: hostPath volumes",
        "solo (and 3 other pods): host namespaces",
    ]
    # Relaxing, or keeping, the level checks nothing.
    assert admit_namespace(old, new, world).warnings == []
    assert admit_namespace(new, new, world).warnings == []


def test_labelling_an_exempt_namespace_warns_that_the_labels_are_ignored() -> None:
    config = psa.PodSecurityConfig(
        psa.DEFAULT_CONFIG.defaults, psa.Exemptions(namespaces=("infra",))
    )
    labelled = namespace("infra", **{psa.ENFORCE_LABEL: "restricted"})
    assert admit_namespace(labelled, namespace("infra"), World({"infra": {}}), config).warnings == [
        'namespace "infra" is exempt from Pod Security, and the policy '
        "(enforce=restricted:latest) will be ignored"
    ]


# --- configuration -----------------------------------------------------------------------
def test_the_default_flag_value_is_kubernetes_keys() -> None:
    policy = psa.parse_defaults("enforce=baseline, warn=restricted,warn-version=v1.30")
    assert policy == psa.Policy(
        enforce=psa.LevelVersion(psa.BASELINE),
        warn=psa.LevelVersion(psa.RESTRICTED, psa.Version(30)),
    )
    assert psa.parse_defaults("") == psa.Policy()
    assert psa.from_flags(None, None) == psa.DEFAULT_CONFIG
    assert psa.DEFAULT_CONFIG.defaults == psa.parse_defaults("enforce=baseline,warn=restricted")
    for bad, message in (
        ("enforce=strict", "enforce: 'strict' must be one of privileged, baseline, restricted"),
        ("enforce-version=1.2", 'enforce-version: \'1.2\' must be "latest" or "v1.x"'),
        ("block=baseline", "'block=baseline' is not MODE=LEVEL"),
        ("warn=baseline,warn=restricted", "warn is given twice"),
    ):
        with pytest.raises(psa.ConfigError, match=message.replace("(", r"\(")):
            psa.parse_defaults(bad)


def test_a_pod_security_configuration_file_sets_defaults_and_exemptions(tmp_path: Path) -> None:
    config = tmp_path / "psa.yaml"
    config.write_text(
        "apiVersion: pod-security.admission.config.k8s.io/v1\n"
        "kind: PodSecurityConfiguration\n"
        "defaults:\n  enforce: restricted\n  enforce-version: v1.33\n  warn: restricted\n"
        "exemptions:\n  usernames: [ops]\n  runtimeClasses: [kata]\n  namespaces: [kube-system]\n"
    )
    expected = psa.PodSecurityConfig(
        defaults=psa.Policy(
            enforce=psa.LevelVersion(psa.RESTRICTED, psa.Version(33)),
            warn=psa.LevelVersion(psa.RESTRICTED),
        ),
        exemptions=psa.Exemptions(("ops",), ("kata",), ("kube-system",)),
    )
    assert psa.from_flags(None, config) == expected
    wrapper = tmp_path / "admission.yaml"
    wrapper.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
        "- name: PodSecurity\n  path: psa.yaml\n"
    )
    assert psa.load_config(wrapper) == expected
    with pytest.raises(psa.ConfigError, match="not both"):
        psa.from_flags("enforce=baseline", config)
    config.write_text(
        "kind: PodSecurityConfiguration\napiVersion: pod-security.admission.config.k8s.io/v1\ndefaults: {audit: everything}\n"
    )
    with pytest.raises(psa.ConfigError, match=r"defaults\.audit: 'everything' must be one of"):
        psa.load_config(config)


# --- wiring into the object layer --------------------------------------------------------
def run(
    tmp_path: Path, body: Callable[[ObjectAPI], Awaitable[None]], options: ApiOptions | None = None
) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin(), options)
        await api.bootstrap()
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


def info(api: ObjectAPI, group: str, plural: str) -> ResourceInfo:
    found = api.registry.get(group, "v1", plural)
    assert found is not None
    return found


MANAGER = WriteOptions(field_manager="tests")


def test_the_object_layer_refuses_and_stores_nothing_or_warns(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        pods, namespaces = info(api, "", "pods"), info(api, "", "namespaces")
        for opts in (MANAGER, WriteOptions(field_manager="tests", dry_run=True)):
            with pytest.raises(ApiError) as refused:
                await api.create(pods, "default", pod("web", HOST_NETWORK), opts)
            assert refused.value.code == 403
            assert refused.value.message == (
                'pods "web" is forbidden: violates PodSecurity "baseline:latest": host namespaces '
                "(hostNetwork=true)"
            )
        assert api.store.latest(pods.store_key, "default", "web") is None
        ok = await api.create(pods, "default", pod("plain", PLAIN), MANAGER)
        assert ok.warnings == [RESTRICTED_WARNING]
        await api.create(
            namespaces, "", namespace("host", **{psa.ENFORCE_LABEL: "privileged"}), MANAGER
        )
        allowed = await api.create(pods, "host", pod("web", HOST_NETWORK, "host"), MANAGER)
        assert allowed.warnings == [
            'would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
            + RESTRICTED_WARNING.split(": ", 1)[1]
        ]
        # Tightening the namespace warns about the pod already there.
        out = await api.patch(
            namespaces,
            "",
            "host",
            "merge",
            {"metadata": {"labels": {psa.ENFORCE_LABEL: "baseline"}}},
            MANAGER,
        )
        assert out.warnings == [
            'existing pods in namespace "host" violate the new PodSecurity enforce level '
            '"baseline:latest"',
            "web: host namespaces",
        ]
        with pytest.raises(ApiError) as invalid:
            await api.create(namespaces, "", namespace("bad", **{psa.WARN_LABEL: "x"}), MANAGER)
        assert invalid.value.code == 422

    run(tmp_path, body)


def test_kubernetes_own_default_checks_nothing(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        out = await api.create(info(api, "", "pods"), "default", pod("web", HOST_NETWORK), MANAGER)
        assert out.warnings == []

    run(tmp_path, body, ApiOptions(pod_security=psa.KUBERNETES_DEFAULT_CONFIG))
