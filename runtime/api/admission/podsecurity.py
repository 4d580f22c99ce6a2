"""Pod Security Admission: kube-apiserver's built-in ``PodSecurity`` admission plugin.

A port of ``k8s.io/pod-security-admission`` as of Kubernetes 1.35 (``policy/check_*.go``,
``policy/registry.go``, ``api/helpers.go``, ``admission/admission.go``): the Pod Security
Standards' *baseline* and *restricted* checks with Kubernetes' reasons and details, the
namespace labels that choose a level per mode, policy versions, the cluster-wide defaults
and exemptions of a ``PodSecurityConfiguration``, and the admission decisions. Pure:
objects in, decisions out; :class:`runtime.api.objects.ObjectAPI` calls :func:`admit` on
every create and update after validation (as kube-apiserver runs its validating
admission plugins after the registry's validation) and turns a decision into a 403/422
Status or ``Warning`` headers.

Labels (on a Namespace)
    ``pod-security.kubernetes.io/{enforce,audit,warn}`` = ``privileged`` | ``baseline``
    | ``restricted`` and ``pod-security.kubernetes.io/{enforce,audit,warn}-version`` =
    ``latest`` | ``v1.X``. A mode without a label takes the cluster default. A label
    that does not parse is refused on namespace create/update (422, Kubernetes'
    message); on pods it falls back as Kubernetes does (enforce: ``restricted``; audit
    and warn: ``privileged``; version: ``latest``). ``latest`` is the newest policy
    version known here (v1.35); a version names the checks as they were then (the
    policy changes since 1.25: ``probe or lifecycle host`` from v1.34, SELinux
    ``container_engine_t`` from v1.31, the safe sysctls of v1.27/v1.29/v1.32, the
    ``hostUsers: false`` relaxations of v1.35, the Windows exemptions of v1.25, the
    seccomp annotations before v1.19).

What is checked, and when
    * Pods: on create, and on updates that change what the checks read as Kubernetes
      decides it (``isSignificantPodUpdate``: container count or image, ephemeral
      containers, seccomp container annotations); never the ``status``, ``binding``,
      ``eviction``, ``exec``, ``attach``, ``log``, ``portforward``, ``proxy``
      subresources. ``enforce`` refuses with 403 Forbidden, ``pods "x" is forbidden:
      violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ...``,
      and nothing is stored; ``warn`` adds ``would violate PodSecurity
      "restricted:latest": ...`` to an admitted request's warnings.
    * Workloads with a pod template (Deployments, ReplicaSets, StatefulSets,
      DaemonSets, Jobs, CronJobs, ReplicationControllers, PodTemplates): ``warn`` (and
      audit) only, never ``enforce`` -- their pods are checked when their controllers
      create them, which then report ``FailedCreate``.
    * Namespaces: labels are validated; changing a namespace's enforce level or version
      to a stricter one warns about the existing pods that would violate it
      (``existing pods in namespace "x" violate the new PodSecurity enforce level
      "restricted:latest"``, then ``pod (and N other pods): reasons``; at most 3,000
      pods, one per controller first), as Kubernetes does.
    * ``audit`` is parsed, validated and evaluated (the decision carries Kubernetes'
      audit annotations) but **not built**: the built-in cluster has no audit log to
      write them to.

The default for this cluster: ``enforce=baseline``, ``warn=restricted``, no exemptions
    Kubernetes itself defaults every mode to ``privileged`` (no checks). The built-in
    cluster is different: its containers run on the user's own machine, under the
    user's podman or docker, and what it runs comes from Git, which the project treats
    as untrusted input. A privileged container, a ``hostPath: /`` volume, ``hostPID`` or
    ``hostNetwork``, an added ``SYS_ADMIN`` are each root on that machine (or the
    user's account, rootless), so the default must refuse them: *baseline* refuses
    exactly the known ways out of a container (privileged, host namespaces, hostPath,
    host ports, capabilities beyond the container engines' defaults, unmasked /proc,
    unconfined seccomp/AppArmor, SELinux type changes, unsafe sysctls, probes aimed at
    other hosts) while ordinary images -- root inside the container, a writable root
    filesystem, the default capabilities -- still run. *restricted* (non-root, all
    capabilities dropped, ``allowPrivilegeEscalation: false``, a seccomp profile) would
    refuse most public images as they are, so it is a warning: every ``kubectl apply``
    says what to change. This is the profile of k3s's and RKE2's hardened
    ``PodSecurityConfiguration`` (enforce baseline, warn/audit restricted).

    No namespace is exempt by default, ``kube-system`` included. k3s exempts
    ``kube-system`` because its own components run there as pods that need host
    access (svclb's host ports, local-path's helper pods, ...); ours do not run as pods
    at all -- DNS, the service proxy, the ingress router, Service host ports and the
    local-path provisioner run inside the cluster process -- and an exempt namespace
    is one where any commit may run a privileged pod. A namespace that needs host
    access says so with ``pod-security.kubernetes.io/enforce: privileged``: that is a
    write to the Namespace, which RBAC and the reconciler's projects govern.

    Change it with ``gitops cluster up``/``gitops up`` ``--pod-security-default
    enforce=...,warn=...`` (kube's keys: ``enforce``, ``enforce-version``, ``audit``,
    ``audit-version``, ``warn``, ``warn-version``; a mode left out is ``privileged``)
    or ``--pod-security-config FILE``: kube-apiserver's ``PodSecurityConfiguration``
    (``pod-security.admission.config.k8s.io/v1``), or an ``AdmissionConfiguration``
    holding one for the ``PodSecurity`` plugin, with ``defaults`` and ``exemptions``
    (``usernames``, ``runtimeClasses``, ``namespaces``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from kubemodel import errors
from kubemodel.errors import ApiError, Cause

from ._causes import invalid
from .meta import d, lst, s

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigError",
    "Decision",
    "Exemptions",
    "LevelVersion",
    "Lookups",
    "PodSecurityConfig",
    "Policy",
    "Request",
    "Version",
    "admit",
    "evaluate_pod",
    "from_flags",
    "load_config",
    "parse_defaults",
    "policy_to_evaluate",
]

Obj = dict[str, Any]

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
ENFORCE_LABEL = LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL = LABEL_PREFIX + "enforce-version"
AUDIT_LABEL = LABEL_PREFIX + "audit"
AUDIT_VERSION_LABEL = LABEL_PREFIX + "audit-version"
WARN_LABEL = LABEL_PREFIX + "warn"
WARN_VERSION_LABEL = LABEL_PREFIX + "warn-version"
# Audit annotations kube-apiserver would add to the request's audit event.
AUDIT_VIOLATIONS = LABEL_PREFIX + "audit-violations"
ENFORCE_POLICY = LABEL_PREFIX + "enforce-policy"
EXEMPT = LABEL_PREFIX + "exempt"

#: Resources with a pod template: warned about (never enforced), as Kubernetes does.
POD_TEMPLATE_RESOURCES = frozenset(
    {
        ("", "podtemplates"),
        ("", "replicationcontrollers"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }
)
#: Every resource PodSecurity admission looks at.
RESOURCES = POD_TEMPLATE_RESOURCES | {("", "pods"), ("", "namespaces")}
#: Pod subresources whose writes never change what the checks read.
IGNORED_POD_SUBRESOURCES = frozenset(
    {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
)
#: How many existing pods a namespace's new enforce level is checked against.
NAMESPACE_MAX_PODS_TO_CHECK = 3000


class ConfigError(ValueError):
    """A Pod Security default or configuration file that does not parse."""


# --- levels, versions, policies (api/helpers.go) -----------------------------------------
@dataclass(frozen=True)
class Version:
    """A policy version: ``latest`` or ``v1.<minor>``."""

    minor: int = 0
    latest: bool = False

    def __str__(self) -> str:
        return "latest" if self.latest else f"v1.{self.minor}"

    def older(self, other: Version) -> bool:
        if self.latest:  # latest is newer than everything, future versions included
            return False
        if other.latest:
            return True
        return self.minor < other.minor


LATEST = Version(latest=True)
_VERSION_RE = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")
_INT_MAX = 2**63 - 1
_LEVEL_ERROR = "must be one of " + ", ".join(LEVELS)
_VERSION_ERROR = 'must be "latest" or "v1.x"'


def parse_level(text: str) -> tuple[str, str]:
    """The level and an error ("" when valid); an invalid level reads as restricted."""
    if text in LEVELS:
        return text, ""
    return RESTRICTED, _LEVEL_ERROR


def parse_version(text: str) -> tuple[Version, str]:
    """The version and an error ("" when valid); an invalid version reads as latest."""
    if text == "latest":
        return LATEST, ""
    match = _VERSION_RE.fullmatch(text)
    if match is None or int(match.group(1)) > _INT_MAX:  # Go's strconv.Atoi overflows
        return LATEST, _VERSION_ERROR
    return Version(int(match.group(1))), ""


@dataclass(frozen=True)
class LevelVersion:
    level: str = PRIVILEGED
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        return self.level == other.level and (
            self.level == PRIVILEGED or self.version == other.version
        )


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()

    def fully_privileged(self) -> bool:
        return self.enforce.level == self.audit.level == self.warn.level == PRIVILEGED

    def equivalent(self, other: Policy) -> bool:
        return (
            self.enforce.equivalent(other.enforce)
            and self.audit.equivalent(other.audit)
            and self.warn.equivalent(other.warn)
        )


@dataclass(frozen=True)
class Exemptions:
    """Requests PodSecurity never checks (kube's ``PodSecurityConfiguration.exemptions``)."""

    usernames: tuple[str, ...] = ()
    runtime_classes: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodSecurityConfig:
    """The cluster-wide defaults (namespaces without labels) and the exemptions."""

    defaults: Policy = Policy()
    exemptions: Exemptions = Exemptions()


#: This cluster's default (see the module docstring for why).
DEFAULT_CONFIG = PodSecurityConfig(
    defaults=Policy(enforce=LevelVersion(BASELINE), warn=LevelVersion(RESTRICTED))
)
#: Kubernetes' own default: no checks anywhere.
KUBERNETES_DEFAULT_CONFIG = PodSecurityConfig()


def _labels_path(label: str) -> str:
    return f"metadata.labels[{label}]"


def policy_to_evaluate(
    labels: Mapping[str, str] | None, defaults: Policy
) -> tuple[Policy, list[Cause]]:
    """A namespace's policy: its labels over the defaults, and the label errors (a valid
    policy is returned even with errors, failing closed for enforce and open for audit
    and warn, as Kubernetes' ``PolicyToEvaluate``)."""
    if not labels:
        return defaults, []
    causes: list[Cause] = []
    modes = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    for mode in MODES:
        level, version = modes[mode].level, modes[mode].version
        label = LABEL_PREFIX + mode
        if label in labels:
            text = labels[label]
            level, error = parse_level(text)
            if error:
                causes.append(invalid(_labels_path(label), text, error))
                if mode != "enforce":
                    level = PRIVILEGED  # fail open for audit and warn
        label = LABEL_PREFIX + mode + "-version"
        if label in labels:
            text = labels[label]
            version, error = parse_version(text)
            if error:
                causes.append(invalid(_labels_path(label), text, error))
        modes[mode] = LevelVersion(level, version)
    return Policy(modes["enforce"], modes["audit"], modes["warn"]), causes


def _compare_levels(a: str, b: str) -> int:
    """-1 when ``a`` is less strict than ``b``, 0 when equal, 1 when stricter."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


# --- configuration ------------------------------------------------------------------------
def _policy_from_fields(fields: Mapping[str, Any], where: str) -> Policy:
    modes: dict[str, LevelVersion] = {}
    for mode in MODES:
        level_text = fields.get(mode, PRIVILEGED)
        version_text = fields.get(f"{mode}-version", "latest")
        if not isinstance(level_text, str) or parse_level(level_text)[1]:
            raise ConfigError(f"{where}{mode}: {level_text!r} {_LEVEL_ERROR}")
        if not isinstance(version_text, str) or parse_version(version_text)[1]:
            raise ConfigError(f"{where}{mode}-version: {version_text!r} {_VERSION_ERROR}")
        modes[mode] = LevelVersion(level_text, parse_version(version_text)[0])
    return Policy(modes["enforce"], modes["audit"], modes["warn"])


_FLAG_KEYS = frozenset(m + suffix for m in MODES for suffix in ("", "-version"))


def parse_defaults(text: str) -> Policy:
    """``enforce=baseline,warn=restricted,warn-version=v1.30`` as a policy; a mode left
    out is ``privileged:latest`` (as in a ``PodSecurityConfiguration``)."""
    fields: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _FLAG_KEYS:
            raise ConfigError(
                f"--pod-security-default: {item!r} is not MODE=LEVEL or MODE-version=VERSION "
                "(modes: enforce, audit, warn; levels: privileged, baseline, restricted; "
                'versions: "latest" or "v1.x")'
            )
        if key in fields:
            raise ConfigError(f"--pod-security-default: {key} is given twice")
        fields[key] = value.strip()
    return _policy_from_fields(fields, "--pod-security-default: ")


_CONFIG_KIND = "PodSecurityConfiguration"
_CONFIG_GROUP = "pod-security.admission.config.k8s.io/"
_ADMISSION_KIND = "AdmissionConfiguration"
_ADMISSION_GROUPS = ("apiserver.config.k8s.io/", "apiserver.k8s.io/")


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} must not repeat an entry")
    return tuple(value)


def config_from_object(obj: Any, base: Path | None = None) -> PodSecurityConfig:
    """A ``PodSecurityConfiguration`` (or an ``AdmissionConfiguration`` configuring the
    ``PodSecurity`` plugin inline or by ``path``, relative to ``base``)."""
    if not isinstance(obj, dict):
        raise ConfigError("the Pod Security configuration must be a YAML or JSON object")
    kind, api_version = obj.get("kind"), str(obj.get("apiVersion") or "")
    if kind == _ADMISSION_KIND and api_version.startswith(_ADMISSION_GROUPS):
        for plugin in lst(obj.get("plugins")):
            if d(plugin).get("name") != "PodSecurity":
                continue
            if "configuration" in plugin:
                return config_from_object(plugin["configuration"], base)
            if isinstance(plugin.get("path"), str):
                path = Path(plugin["path"])
                return load_config(path if path.is_absolute() or base is None else base / path)
        raise ConfigError("the AdmissionConfiguration has no PodSecurity plugin")
    if kind != _CONFIG_KIND or not api_version.startswith(_CONFIG_GROUP):
        raise ConfigError(
            f"expected kind {_CONFIG_KIND} ({_CONFIG_GROUP}v1) or {_ADMISSION_KIND}, "
            f"got {kind!r} ({api_version!r})"
        )
    defaults = obj.get("defaults") or {}
    exemptions = obj.get("exemptions") or {}
    if not isinstance(defaults, dict) or not isinstance(exemptions, dict):
        raise ConfigError("defaults and exemptions must be objects")
    return PodSecurityConfig(
        defaults=_policy_from_fields(defaults, "defaults."),
        exemptions=Exemptions(
            usernames=_string_list(exemptions.get("usernames"), "exemptions.usernames"),
            runtime_classes=_string_list(
                exemptions.get("runtimeClasses"), "exemptions.runtimeClasses"
            ),
            namespaces=_string_list(exemptions.get("namespaces"), "exemptions.namespaces"),
        ),
    )


def load_config(path: Path) -> PodSecurityConfig:
    """:func:`config_from_object` of a YAML or JSON file (the operator's own file)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if len(documents) != 1:
        raise ConfigError(f"{path}: expected one YAML document")
    try:
        return config_from_object(documents[0], path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def from_flags(default: str | None, config_file: Path | None) -> PodSecurityConfig:
    """The configuration of ``--pod-security-default`` / ``--pod-security-config``
    (one or the other; neither is :data:`DEFAULT_CONFIG`)."""
    if config_file is not None:
        if default is not None:
            raise ConfigError("give --pod-security-default or --pod-security-config, not both")
        return load_config(config_file)
    if default is None:
        return DEFAULT_CONFIG
    return PodSecurityConfig(defaults=parse_defaults(default))


# --- the checks (policy/check_*.go) ------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """A forbidden result: a short reason and, optionally, what exactly was forbidden."""

    reason: str
    detail: str = ""


CheckFn = Callable[[Obj, Obj], CheckResult | None]


def _go_quote(text: str) -> str:
    """Go's ``%q`` of a string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(spec: Obj) -> Iterable[Obj]:
    """Init containers, containers, ephemeral containers (``visitContainers``)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in lst(spec.get(key)):
            yield d(container)


def _name(container: Obj) -> str:
    return s(container.get("name"))


def _sc(obj: Obj) -> Obj | None:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else None


def _user_namespace(spec: Obj) -> bool:
    """``relaxPolicyForUserNamespacePod``: the pod asked for its own user namespace."""
    return spec.get("hostUsers") is False


def _windows(spec: Obj) -> bool:
    return d(spec.get("os")).get("name") == "windows"


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    setters = ["pod"] if pod_bad else []
    if containers:
        setters.append(
            f"{_plural('container', 'containers', len(containers))} {_join_quote(containers)}"
        )
    return setters


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _app_armor_profile(meta: Obj, spec: Obj) -> CheckResult | None:
    def allowed_type(profile: Obj) -> bool:
        return profile.get("type") in ("RuntimeDefault", "Localhost")

    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_profile = d(_sc(spec)).get("appArmorProfile")
    if isinstance(pod_profile, dict) and not allowed_type(pod_profile):
        bad_setters.append("pod")
        bad_values.add(s(pod_profile.get("type")))
    bad_containers: list[str] = []
    for c in _containers(spec):
        profile = d(_sc(c)).get("appArmorProfile")
        if isinstance(profile, dict) and not allowed_type(profile):
            bad_containers.append(_name(c))
            bad_values.add(s(profile.get("type")))
    if bad_containers:
        bad_setters.append(
            f"{_plural('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)}"
        )
    annotations = sorted(
        f"{k}={_go_quote(s(v))}"
        for k, v in d(meta.get("annotations")).items()
        if k.startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (not s(v) or s(v) == "runtime/default" or s(v).startswith("localhost/"))
    )
    values = sorted(bad_values) + annotations
    if annotations:
        bad_setters.append(_plural("annotation", "annotations", len(annotations)))
    if not bad_setters:
        return None
    return CheckResult(
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(bad_setters)} must not set AppArmor profile type to {_join_quote(values)}",
    )


_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _capabilities_baseline(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    capabilities: set[str] = set()
    for c in _containers(spec):
        caps = d(_sc(c)).get("capabilities")
        if not isinstance(caps, dict):
            continue
        extra = [s(cap) for cap in lst(caps.get("add")) if s(cap) not in _BASELINE_CAPABILITIES]
        if extra:
            bad.append(_name(c))
            capabilities.update(extra)
    if not bad:
        return None
    return CheckResult(
        "non-default capabilities",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not include "
        f"{_join_quote(sorted(capabilities))} in securityContext.capabilities.add",
    )


def _host_namespaces(meta: Obj, spec: Obj) -> CheckResult | None:
    found = [
        f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True
    ]
    return CheckResult("host namespaces", ", ".join(found)) if found else None


def _host_path_volumes(meta: Obj, spec: Obj) -> CheckResult | None:
    names = [
        s(d(v).get("name")) for v in lst(spec.get("volumes")) if d(v).get("hostPath") is not None
    ]
    if not names:
        return None
    return CheckResult(
        "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _host_ports(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [
            str(_int(d(p).get("hostPort")))
            for p in lst(c.get("ports"))
            if _int(d(p).get("hostPort"))
        ]
        if used:
            bad.append(_name(c))
            ports.update(used)
    if not bad:
        return None
    return CheckResult(
        "hostPort",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
        f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
        + ", ".join(sorted(ports)),
    )


def _handler_hosts(handler: Any) -> list[str]:
    hosts = []
    for action in ("httpGet", "tcpSocket"):
        host = s(d(d(handler).get(action)).get("host"))
        if host:
            hosts.append(host)
    return hosts


def _host_probes_and_host_lifecycle(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        lifecycle = d(c.get("lifecycle"))
        handlers = [c.get("livenessProbe"), c.get("readinessProbe"), c.get("startupProbe")]
        handlers += [lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            found = _handler_hosts(handler)
            if found:
                bad.add(_name(c))
                hosts.update(found)
    if not bad:
        return None
    return CheckResult(
        "probe or lifecycle host",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(sorted(bad))} "
        f"{_plural('uses', 'use', len(bad))} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        + _join_quote(sorted(hosts)),
    )


def _privileged(meta: Obj, spec: Obj) -> CheckResult | None:
    bad = [_name(c) for c in _containers(spec) if d(_sc(c)).get("privileged") is True]
    if not bad:
        return None
    return CheckResult(
        "privileged",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not set "
        "securityContext.privileged=true",
    )


def _proc_mount(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    types: set[str] = set()
    for c in _containers(spec):
        value = d(_sc(c)).get("procMount")
        if value is not None and value != "Default":
            bad.append(_name(c))
            types.add(s(value))
    if not bad:
        return None
    return CheckResult(
        "procMount",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not set "
        f"securityContext.procMount to {_join_quote(sorted(types))}",
    )


def _proc_mount_1_35_baseline(meta: Obj, spec: Obj) -> CheckResult | None:
    return None if _user_namespace(spec) else _proc_mount(meta, spec)


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux_options(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Obj) -> bool:
            ok = True
            if s(options.get("type")) not in allowed:
                ok = False
                bad_types.add(s(options.get("type")))
            for key in ("user", "role"):
                if s(options.get(key)):
                    ok = False
                    flags[key] = True
            return ok

        pod_options = d(_sc(spec)).get("seLinuxOptions")
        pod_bad = isinstance(pod_options, dict) and not valid(pod_options)
        bad = []
        for c in _containers(spec):
            options = d(_sc(c)).get("seLinuxOptions")
            if isinstance(options, dict) and not valid(options):
                bad.append(_name(c))
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = []
        if bad_types:
            types = sorted(bad_types)
            data.append(f"{_plural('type', 'types', len(types))} {_join_quote(types)}")
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
        return CheckResult(
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            + "; ".join(data),
        )

    return check


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _valid_seccomp(profile: Obj) -> bool:
    return profile.get("type") in ("Localhost", "RuntimeDefault")


def _seccomp_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult | None:
    def valid(value: str) -> bool:
        return value in ("runtime/default", "docker/default") or value.startswith("localhost/")

    annotations = d(meta.get("annotations"))
    forbidden: set[str] = set()
    keys = [_SECCOMP_POD_ANNOTATION]
    keys += [_SECCOMP_CONTAINER_PREFIX + _name(c) for c in _containers(spec)]
    for key in keys:
        if key in annotations and not valid(s(annotations[key])):
            forbidden.add(f"{key}={_go_quote(s(annotations[key]))}")
    if not forbidden:
        return None
    return CheckResult(
        "seccompProfile",
        f"forbidden {_plural('annotation', 'annotations', len(forbidden))} "
        + ", ".join(sorted(forbidden)),
    )


def _seccomp_setters(spec: Obj) -> tuple[list[str], set[str], bool, list[str]]:
    """Who sets a bad seccomp type, the bad types, whether the pod sets a good one, and
    the containers that set none."""
    values: set[str] = set()
    pod_set = False
    pod_bad = False
    pod_profile = d(_sc(spec)).get("seccompProfile")
    if isinstance(pod_profile, dict):
        if _valid_seccomp(pod_profile):
            pod_set = True
        else:
            pod_bad = True
            values.add(s(pod_profile.get("type")))
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        profile = d(_sc(c)).get("seccompProfile")
        if isinstance(profile, dict):
            if not _valid_seccomp(profile):
                explicit.append(_name(c))
                values.add(s(profile.get("type")))
        elif not pod_set:
            implicit.append(_name(c))
    return _setters(pod_bad, explicit), values, pod_set, implicit


def _seccomp_bad_setters(setters: list[str], values: set[str]) -> CheckResult:
    return CheckResult(
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        + _join_quote(sorted(values)),
    )


def _seccomp_baseline_1_19(meta: Obj, spec: Obj) -> CheckResult | None:
    setters, values, _, _ = _seccomp_setters(spec)
    return _seccomp_bad_setters(setters, values) if setters else None


def _seccomp_restricted_1_19(meta: Obj, spec: Obj) -> CheckResult | None:
    setters, values, _, implicit = _seccomp_setters(spec)
    if setters:
        return _seccomp_bad_setters(setters, values)
    if implicit:
        return CheckResult(
            "seccompProfile",
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        )
    return None


_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult | None:
        names = [s(d(x).get("name")) for x in lst(d(_sc(spec)).get("sysctls"))]
        bad = [name for name in names if name not in allowed]
        return CheckResult("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def _windows_host_process(meta: Obj, spec: Obj) -> CheckResult | None:
    def host_process(sc: Obj | None) -> bool:
        return d(d(sc).get("windowsOptions")).get("hostProcess") is True

    bad = [_name(c) for c in _containers(spec) if host_process(_sc(c))]
    setters = _setters(host_process(_sc(spec)), bad)
    if not setters:
        return None
    return CheckResult(
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


def _allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> CheckResult | None:
    bad = [
        _name(c)
        for c in _containers(spec)
        if d(_sc(c)).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return CheckResult(
        "allowPrivilegeEscalation != false",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must set "
        "securityContext.allowPrivilegeEscalation=false",
    )


def _unless_windows(check: CheckFn) -> CheckFn:
    """The v1.25 revisions: a pod with ``spec.os.name: windows`` is exempt."""

    def revised(meta: Obj, spec: Obj) -> CheckResult | None:
        return None if _windows(spec) else check(meta, spec)

    return revised


def _unless_user_namespace(check: CheckFn) -> CheckFn:
    """The v1.35 revisions: a pod with ``hostUsers: false`` is exempt."""

    def revised(meta: Obj, spec: Obj) -> CheckResult | None:
        return None if _user_namespace(spec) else check(meta, spec)

    return revised


def _capabilities_restricted_1_22(meta: Obj, spec: Obj) -> CheckResult | None:
    missing_drop_all: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for c in _containers(spec):
        caps = d(_sc(c)).get("capabilities")
        if not isinstance(caps, dict):
            missing_drop_all.append(_name(c))
            continue
        if "ALL" not in [s(x) for x in lst(caps.get("drop"))]:
            missing_drop_all.append(_name(c))
        extra = [s(x) for x in lst(caps.get("add")) if s(x) != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            forbidden.update(extra)
    details = []
    if missing_drop_all:
        details.append(
            f"{_plural('container', 'containers', len(missing_drop_all))} "
            f'{_join_quote(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} must not "
            f"include {_join_quote(sorted(forbidden))} in securityContext.capabilities.add"
        )
    return CheckResult("unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUME_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
_RESTRICTED_VOLUME_SOURCES = (
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("gitRepo", "gitRepo"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("rbd", "rbd"),
    ("flexVolume", "flexVolume"),
    ("cinder", "cinder"),
    ("cephfs", "cephfs"),
    ("flocker", "flocker"),
    ("fc", "fc"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("quobyte", "quobyte"),
    ("azureDisk", "azureDisk"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("scaleIO", "scaleIO"),
    ("storageos", "storageos"),
)


def _restricted_volumes(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    types: set[str] = set()
    for volume in (d(v) for v in lst(spec.get("volumes"))):
        if any(volume.get(key) is not None for key in _ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(s(volume.get("name")))
        types.add(
            next(
                (name for key, name in _RESTRICTED_VOLUME_SOURCES if volume.get(key) is not None),
                "unknown",
            )
        )
    if not bad:
        return None
    return CheckResult(
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)} "
        f"{_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
        + _join_quote(sorted(types)),
    )


def _run_as_non_root_1_0(meta: Obj, spec: Obj) -> CheckResult | None:
    pod_value = d(_sc(spec)).get("runAsNonRoot")
    pod_bad = pod_value is False
    pod_non_root = pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = d(_sc(c)).get("runAsNonRoot")
        if isinstance(value, bool):
            if not value:
                explicit.append(_name(c))
        elif not pod_non_root:
            implicit.append(_name(c))
    setters = _setters(pod_bad, explicit)
    if setters:
        return CheckResult(
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return CheckResult(
            "runAsNonRoot != true",
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
            "must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user_1_23(meta: Obj, spec: Obj) -> CheckResult | None:
    def root(sc: Obj | None) -> bool:
        value = d(sc).get("runAsUser")
        return isinstance(value, int) and not isinstance(value, bool) and value == 0

    bad = [_name(c) for c in _containers(spec) if root(_sc(c))]
    setters = _setters(root(_sc(spec)), bad)
    if not setters:
        return None
    return CheckResult("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


@dataclass(frozen=True)
class _Versioned:
    minimum: int  # the first policy minor version (v1.<minimum>) this revision applies to
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check IDs a restricted check replaces


@dataclass(frozen=True)
class _Check:
    id: str
    level: str
    versions: tuple[_Versioned, ...]


def _v(minimum: int, check: CheckFn, *overrides: str) -> _Versioned:
    return _Versioned(minimum, check, overrides)


_CHECKS = (
    # baseline
    _Check("appArmorProfile", BASELINE, (_v(0, _app_armor_profile),)),
    _Check("capabilities_baseline", BASELINE, (_v(0, _capabilities_baseline),)),
    _Check("hostNamespaces", BASELINE, (_v(0, _host_namespaces),)),
    _Check("hostPathVolumes", BASELINE, (_v(0, _host_path_volumes),)),
    _Check("hostPorts", BASELINE, (_v(0, _host_ports),)),
    _Check("hostProbesAndHostLifecycle", BASELINE, (_v(34, _host_probes_and_host_lifecycle),)),
    _Check("privileged", BASELINE, (_v(0, _privileged),)),
    _Check("procMount", BASELINE, (_v(0, _proc_mount), _v(35, _proc_mount_1_35_baseline))),
    _Check(
        "seLinuxOptions",
        BASELINE,
        (
            _v(0, _se_linux_options(_SELINUX_TYPES_1_0)),
            _v(31, _se_linux_options(_SELINUX_TYPES_1_31)),
        ),
    ),
    _Check(
        "seccompProfile_baseline",
        BASELINE,
        (_v(0, _seccomp_baseline_1_0), _v(19, _seccomp_baseline_1_19)),
    ),
    _Check(
        "sysctls",
        BASELINE,
        (
            _v(0, _sysctls(_SYSCTLS_1_0)),
            _v(27, _sysctls(_SYSCTLS_1_27)),
            _v(29, _sysctls(_SYSCTLS_1_29)),
            _v(32, _sysctls(_SYSCTLS_1_32)),
        ),
    ),
    _Check("windowsHostProcess", BASELINE, (_v(0, _windows_host_process),)),
    # restricted
    _Check(
        "allowPrivilegeEscalation",
        RESTRICTED,
        (
            _v(8, _allow_privilege_escalation_1_8),
            _v(25, _unless_windows(_allow_privilege_escalation_1_8)),
        ),
    ),
    _Check(
        "capabilities_restricted",
        RESTRICTED,
        (
            _v(22, _capabilities_restricted_1_22, "capabilities_baseline"),
            _v(25, _unless_windows(_capabilities_restricted_1_22), "capabilities_baseline"),
        ),
    ),
    _Check("procMount_restricted", RESTRICTED, (_v(35, _proc_mount, "procMount"),)),
    _Check("restrictedVolumes", RESTRICTED, (_v(0, _restricted_volumes, "hostPathVolumes"),)),
    _Check(
        "runAsNonRoot",
        RESTRICTED,
        (_v(0, _run_as_non_root_1_0), _v(35, _unless_user_namespace(_run_as_non_root_1_0))),
    ),
    _Check(
        "runAsUser",
        RESTRICTED,
        (_v(23, _run_as_user_1_23), _v(35, _unless_user_namespace(_run_as_user_1_23))),
    ),
    _Check(
        "seccompProfile_restricted",
        RESTRICTED,
        (
            _v(19, _seccomp_restricted_1_19, "seccompProfile_baseline"),
            _v(25, _unless_windows(_seccomp_restricted_1_19), "seccompProfile_baseline"),
        ),
    ),
)
#: The newest policy version any check has a revision for: what ``latest`` evaluates.
MAX_MINOR = max(v.minimum for c in _CHECKS for v in c.versions)


def _revision(check: _Check, minor: int) -> _Versioned | None:
    found = None
    for versioned in check.versions:
        if versioned.minimum <= minor:
            found = versioned
    return found


@cache
def _plan(level: str, minor: int) -> tuple[CheckFn, ...]:
    """The checks of ``level`` at policy version v1.``minor``, in Kubernetes' order
    (baseline IDs sorted, then restricted IDs sorted; a restricted revision's overrides
    remove the baseline checks it replaces)."""
    baseline = sorted((c for c in _CHECKS if c.level == BASELINE), key=lambda c: c.id)
    restricted = sorted((c for c in _CHECKS if c.level == RESTRICTED), key=lambda c: c.id)
    chosen = [(c, _revision(c, minor)) for c in baseline]
    if level == RESTRICTED:
        extra = [(c, _revision(c, minor)) for c in restricted]
        overridden = {o for _, r in extra if r is not None for o in r.overrides}
        chosen = [(c, r) for c, r in chosen if c.id not in overridden] + extra
    return tuple(r.check for _, r in chosen if r is not None)


def evaluate_pod(lv: LevelVersion, meta: Obj, spec: Obj) -> list[CheckResult]:
    """The forbidden results of checking a pod's metadata and spec at ``lv``."""
    if lv.level == PRIVILEGED:
        return []
    minor = MAX_MINOR if lv.version.latest else min(lv.version.minor, MAX_MINOR)
    results = []
    for check in _plan(lv.level, minor):
        result = check(meta, spec)
        if result is not None:
            results.append(result)
    return results


def forbidden_reason(results: list[CheckResult]) -> str:
    """``host ports, privileged`` (the reasons, for a namespace's pods)."""
    return ", ".join(r.reason or "unknown forbidden reason" for r in results)


def forbidden_detail(results: list[CheckResult]) -> str:
    """``hostPort (container "a" uses hostPort 80), privileged (...)``."""
    return ", ".join(
        f"{r.reason or 'unknown forbidden reason'} ({r.detail})"
        if r.detail
        else r.reason or "unknown forbidden reason"
        for r in results
    )


# --- admission (admission/admission.go) --------------------------------------------------
@dataclass
class Decision:
    """What PodSecurity says about one request: an error (403 or 422) or warnings."""

    error: ApiError | None = None
    warnings: list[str] = field(default_factory=list)
    #: The audit annotations kube-apiserver would record (no audit log here).
    audit: dict[str, str] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Request:
    """One create or update, as admission sees it."""

    group: str
    resource: str  # the plural, e.g. "pods", "deployments"
    name: str
    namespace: str  # the object's namespace (a Namespace's own name for namespaces)
    obj: Obj
    old: Obj | None = None  # None on create
    subresource: str = ""
    username: str = ""


@dataclass(frozen=True)
class Lookups:
    """What admission reads besides the request: a namespace's labels (None when the
    namespace does not exist) and a namespace's pods."""

    namespace_labels: Callable[[str], Mapping[str, str] | None]
    pods: Callable[[str], Iterable[Obj]]


def admit(config: PodSecurityConfig, request: Request, lookups: Lookups) -> Decision:
    """Kubernetes' ``Admission.Validate`` for pods, pod-template workloads and namespaces;
    every other resource is allowed untouched."""
    key = (request.group, request.resource)
    if key == ("", "namespaces"):
        return _admit_namespace(config, request, lookups)
    if key == ("", "pods"):
        return _admit_pod(config, request, lookups)
    if key in POD_TEMPLATE_RESOURCES:
        return _admit_pod_controller(config, request, lookups)
    return Decision()


def _exempt_namespace(config: PodSecurityConfig, namespace: str) -> bool:
    return bool(namespace) and namespace in config.exemptions.namespaces


def _exempt_user(config: PodSecurityConfig, username: str) -> bool:
    return bool(username) and username in config.exemptions.usernames


def _exempt(reason: str) -> Decision:
    return Decision(audit={EXEMPT: reason})


def _admit_pod(config: PodSecurityConfig, request: Request, lookups: Lookups) -> Decision:
    if request.subresource in IGNORED_POD_SUBRESOURCES:
        return Decision()
    if _exempt_namespace(config, request.namespace):
        return _exempt("namespace")
    if _exempt_user(config, request.username):
        return _exempt("user")
    labels = lookups.namespace_labels(request.namespace)
    policy, causes = policy_to_evaluate(labels, config.defaults)
    if not causes and policy.fully_privileged():
        return Decision(audit={ENFORCE_POLICY: str(policy.enforce)})
    if request.old is not None and not _significant_pod_update(request.obj, request.old):
        return Decision()
    return _evaluate(
        config,
        policy,
        causes,
        request,
        d(request.obj.get("metadata")),
        d(request.obj.get("spec")),
        enforce=True,
    )


def _pod_template(request: Request) -> Obj | None:
    """``ExtractPodSpec``: the object's pod template (None when it has none)."""
    spec = d(request.obj.get("spec"))
    if request.resource == "podtemplates":
        return d(request.obj.get("template"))
    if request.resource == "cronjobs":
        return d(d(d(spec.get("jobTemplate")).get("spec")).get("template"))
    template = spec.get("template")
    if request.resource == "replicationcontrollers" and not isinstance(template, dict):
        return None  # an optional pointer in Go
    return d(template)


def _admit_pod_controller(
    config: PodSecurityConfig, request: Request, lookups: Lookups
) -> Decision:
    if request.subresource:
        return Decision()
    if _exempt_namespace(config, request.namespace):
        return _exempt("namespace")
    if _exempt_user(config, request.username):
        return _exempt("user")
    labels = lookups.namespace_labels(request.namespace)
    policy, causes = policy_to_evaluate(labels, config.defaults)
    if not causes and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
        return Decision()
    template = _pod_template(request)
    if template is None:
        return Decision()
    meta, spec = d(template.get("metadata")), d(template.get("spec"))
    return _evaluate(config, policy, causes, request, meta, spec, enforce=False)


def _evaluate(
    config: PodSecurityConfig,
    policy: Policy,
    causes: list[Cause],
    request: Request,
    meta: Obj,
    spec: Obj,
    *,
    enforce: bool,
) -> Decision:
    """``EvaluatePod``: enforce (pods only), audit, and warn unless refused."""
    runtime_class = spec.get("runtimeClassName")
    if isinstance(runtime_class, str) and runtime_class in config.exemptions.runtime_classes:
        return _exempt("runtimeClass")
    decision = Decision()
    if causes:
        decision.audit[LABEL_PREFIX + "error"] = "Failed to parse policy: " + (
            causes[0].render()
            if len(causes) == 1
            else "[" + ", ".join(c.render() for c in causes) + "]"
        )
    cached: dict[LevelVersion, list[CheckResult]] = {}

    def results(lv: LevelVersion) -> list[CheckResult]:
        if lv not in cached:
            cached[lv] = evaluate_pod(lv, meta, spec)
        return cached[lv]

    if enforce:
        decision.audit[ENFORCE_POLICY] = str(policy.enforce)
        refused = results(policy.enforce)
        if refused:
            message = f'violates PodSecurity "{policy.enforce}": {forbidden_detail(refused)}'
            decision.error = errors.ApiError(
                403,
                "Forbidden",
                f'{_qualified(request)} "{request.name}" is forbidden: {message}',
                _forbidden_details(request),
            )
    audited = results(policy.audit)
    if audited:
        decision.audit[AUDIT_VIOLATIONS] = (
            f'would violate PodSecurity "{policy.audit}": {forbidden_detail(audited)}'
        )
    if decision.error is None:
        warned = results(policy.warn)
        if warned:
            decision.warnings.append(
                f'would violate PodSecurity "{policy.warn}": {forbidden_detail(warned)}'
            )
    return decision


def _qualified(request: Request) -> str:
    return f"{request.resource}.{request.group}" if request.group else request.resource


def _forbidden_details(request: Request) -> dict[str, Any]:
    details: dict[str, Any] = {"name": request.name} if request.name else {}
    if request.group:
        details["group"] = request.group
    details["kind"] = request.resource
    return details


def _significant_pod_update(pod: Obj, old: Obj) -> bool:
    """``isSignificantPodUpdate``: only these pod changes are checked again."""
    spec, old_spec = d(pod.get("spec")), d(old.get("spec"))
    annotations = d(d(pod.get("metadata")).get("annotations"))
    old_annotations = d(d(old.get("metadata")).get("annotations"))

    def significant(c: Obj, o: Obj) -> bool:
        if c.get("image") != o.get("image"):
            return True
        key = _SECCOMP_CONTAINER_PREFIX + _name(c)
        return annotations.get(key) != old_annotations.get(key)

    for key in ("containers", "initContainers"):
        new_list, old_list = lst(spec.get(key)), lst(old_spec.get(key))
        if len(new_list) != len(old_list):
            return True
        if any(significant(d(c), d(o)) for c, o in zip(new_list, old_list)):
            return True
    old_ephemeral = {_name(d(c)): d(c) for c in lst(old_spec.get("ephemeralContainers"))}
    for c in (d(x) for x in lst(spec.get("ephemeralContainers"))):
        previous = old_ephemeral.get(_name(c))
        if previous is None or significant(c, previous):
            return True
    return False


def _admit_namespace(config: PodSecurityConfig, request: Request, lookups: Lookups) -> Decision:
    if request.subresource:
        return Decision()
    labels = d(d(request.obj.get("metadata")).get("labels"))
    policy, causes = policy_to_evaluate(labels, config.defaults)
    if request.old is None:
        if causes:
            return Decision(error=errors.invalid_object("", "Namespace", request.name, causes))
        return _exempt_namespace_warning(config, request, policy, labels)
    old_labels = d(d(request.old.get("metadata")).get("labels"))
    old_policy, old_causes = policy_to_evaluate(old_labels, config.defaults)
    if causes and (not old_causes or causes != old_causes):
        return Decision(error=errors.invalid_object("", "Namespace", request.name, causes))
    new, old = policy.enforce, old_policy.enforce
    if new == old or new.level == PRIVILEGED:
        return Decision()
    if new.version == old.version and _compare_levels(new.level, old.level) < 1:
        return Decision()
    if _exempt_namespace(config, request.namespace):
        return _exempt_namespace_warning(config, request, policy, labels)
    return Decision(
        warnings=evaluate_pods_in_namespace(config, request.name, new, lookups.pods(request.name))
    )


def _exempt_namespace_warning(
    config: PodSecurityConfig, request: Request, policy: Policy, labels: Mapping[str, Any]
) -> Decision:
    """A warning that an exempt namespace's labels will be ignored."""
    if not _exempt_namespace(config, request.namespace):
        return Decision()
    if policy.fully_privileged() or policy.equivalent(config.defaults):
        return Decision()
    parts = []
    for mode, lv in (("enforce", policy.enforce), ("audit", policy.audit), ("warn", policy.warn)):
        labelled = LABEL_PREFIX + mode in labels or LABEL_PREFIX + mode + "-version" in labels
        if lv.level != PRIVILEGED and labelled:
            parts.append(f"{mode}={lv}")
    return Decision(
        warnings=[
            f'namespace "{request.name}" is exempt from Pod Security, and the policy '
            f"({', '.join(parts)}) will be ignored"
        ]
    )


def _controller_uid(pod: Obj) -> str | None:
    for ref in lst(d(pod.get("metadata")).get("ownerReferences")):
        if d(ref).get("controller") is True:
            return s(d(ref).get("uid"))
    return None


def evaluate_pods_in_namespace(
    config: PodSecurityConfig, namespace: str, enforce: LevelVersion, pods: Iterable[Obj]
) -> list[str]:
    """``EvaluatePodsInNamespace``: the warnings for a namespace whose enforce level
    became stricter -- one line per distinct set of reasons, naming the lexically first
    pod and how many others share it; one pod per controller is checked first."""
    prioritized: list[Obj] = []
    duplicates: list[Obj] = []
    controllers: set[str] = set()
    for pod in pods:
        runtime_class = d(pod.get("spec")).get("runtimeClassName")
        if isinstance(runtime_class, str) and runtime_class in config.exemptions.runtime_classes:
            continue
        uid = _controller_uid(pod)
        if uid is None:
            prioritized.append(pod)
        elif uid in controllers:
            duplicates.append(pod)
        else:
            controllers.add(uid)
            prioritized.append(pod)
    prioritized += duplicates
    total = len(prioritized)
    checked = prioritized[:NAMESPACE_MAX_PODS_TO_CHECK]
    order: list[str] = []
    counts: dict[str, tuple[str, int]] = {}
    for pod in checked:
        refused = evaluate_pod(enforce, d(pod.get("metadata")), d(pod.get("spec")))
        if not refused:
            continue
        reason = forbidden_reason(refused)
        name = s(d(pod.get("metadata")).get("name"))
        if reason not in counts:
            order.append(reason)
            counts[reason] = (name, 1)
        else:
            first, count = counts[reason]
            counts[reason] = (min(first, name), count + 1)
    warnings = []
    if len(checked) < total:
        warnings.append(
            f"new PodSecurity enforce level only checked against the first {len(checked)} "
            f"of {total} existing pods"
        )
    if order:
        warnings.append(
            f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce '
            f'level "{enforce}"'
        )
    decorated = []
    for reason in order:
        first, count = counts[reason]
        if count == 1:
            decorated.append(f"{first}: {reason}")
        elif count == 2:
            decorated.append(f"{first} (and 1 other pod): {reason}")
        else:
            decorated.append(f"{first} (and {count - 1} other pods): {reason}")
    return warnings + sorted(decorated)
