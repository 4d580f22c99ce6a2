"""Validation of a PodSpec (and a PodTemplateSpec), as Kubernetes' ``ValidatePodSpec``.

Used for Pods and for every pod template (ReplicaSet, Deployment, Job, ...). The checks
and their order follow ``pkg/apis/core/validation``: volumes, containers (regular, init,
ephemeral), restart and DNS policy, node selector, security context, affinity, DNS
config, gates, topology spread, tolerations, host aliases and the scalar fields.
``PodOptions.is_pod`` switches on the checks Kubernetes applies only to real Pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause
from runtime.api import quantity as _quantity
from runtime.api.downward import CONVERTIBLE_FIELD_PATHS, split_subscript

from ._causes import (
    Go,
    duplicate,
    forbidden,
    go_labels,
    inclusive_range,
    invalid,
    nonnegative,
    not_found,
    not_supported,
    required,
)
from .meta import (
    d,
    lst,
    s,
    validate_annotations,
    validate_label_name,
    validate_label_selector,
    validate_labels,
)


@dataclass(frozen=True)
class PodOptions:
    is_pod: bool = False
    pod_name: str = ""


_TEMPLATE = PodOptions()
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PROTOCOL_SET = frozenset(_PROTOCOLS)
_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
_INT32_MAX = 2147483647


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> int:
    v = _int(value)
    return v if v is not None else 0


# --- small shared validators ---------------------------------------------------------
def validate_dns1123_label(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.is_dns1123_label(value)]


def validate_dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.is_dns1123_subdomain(value)]


def validate_qualified_name(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.is_qualified_name(value)]


def validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
    if isinstance(port, str):
        return [invalid(path, port, m) for m in names.is_valid_port_name(port)]
    p = _int(port)
    if p is None:
        return [invalid(path, port, "must be an integer or a port name")]
    return [invalid(path, p, m) for m in names.is_valid_port_num(p)]


def validate_ip(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str) and names.is_valid_ip(value):
        return []
    return [invalid(path, value if isinstance(value, str) else "", names.IP_MSG)]


def validate_non_special_ip(value: str, path: str) -> list[Cause]:
    import ipaddress

    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return [invalid(path, value, "must be a valid IP address")]
    out: list[Cause] = []
    if ip.is_unspecified:
        out.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        out.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        out.append(
            invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    if ip.is_multicast and (
        (ip.version == 4 and str(ip).startswith("224.0.0."))
        or (ip.version == 6 and str(ip).lower().startswith("ff02:"))
    ):
        out.append(
            invalid(
                path,
                value,
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )
        )
    return out


def _path_no_backsteps(target: str, path: str) -> list[Cause]:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def validate_local_descending_path(target: str, path: str) -> list[Cause]:
    out: list[Cause] = []
    if target.startswith("/"):
        out.append(invalid(path, target, "must be a relative path"))
    out.extend(_path_no_backsteps(target, path))
    return out


def validate_local_non_reserved_path(target: str, path: str) -> list[Cause]:
    out = validate_local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        out.append(invalid(path, target, "must not start with '..'"))
    return out


# --- resources -----------------------------------------------------------------------
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD_RESOURCES = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    }
)


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not _is_hugepages(name)


def _validate_resource_name(name: str, path: str) -> list[Cause]:
    out = [invalid(path, name, m) for m in names.is_qualified_name(name)]
    if out:
        return out
    if "/" not in name and not (
        name in _STANDARD_RESOURCES or _is_hugepages(name) or name.startswith("requests.hugepages-")
    ):
        return [invalid(path, name, "must be a standard resource type or fully qualified")]
    return []


def _validate_container_resource_name(name: str, path: str) -> list[Cause]:
    out = _validate_resource_name(name, path)
    if "/" not in name:
        if not (name in _STANDARD_CONTAINER_RESOURCES or _is_hugepages(name)):
            out.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and (
        name.startswith("requests.") or names.is_qualified_name("requests." + name)
    ):
        out.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return out


def validate_resource_quantity(name: str, value: Any, path: str) -> list[Cause]:
    q = _quantity.parse(value)
    if q is None:
        return [invalid(path, _quantity.show(value), _quantity.FORMAT_MSG)]
    out: list[Cause] = []
    if q < 0:
        out.append(invalid(path, _quantity.show(value), "must be greater than or equal to 0"))
    integer = ("/" in name and not _is_native(name)) or name in ("pods", "services")
    if integer and q != q.to_integral_value():
        out.append(invalid(path, _quantity.show(value), "must be an integer"))
    return out


def validate_resource_requirements(resources: Any, path: str) -> list[Cause]:
    resources = d(resources)
    limits = d(resources.get("limits"))
    requests = d(resources.get("requests"))
    out: list[Cause] = []
    lim_path = f"{path}.limits"
    req_path = f"{path}.requests"
    lim_cpu_mem = req_cpu_mem = lim_huge = req_huge = False
    for name in sorted(limits):
        p = f"{lim_path}[{name}]"
        out.extend(_validate_container_resource_name(name, p))
        out.extend(validate_resource_quantity(name, limits[name], p))
        if _is_hugepages(name):
            lim_huge = True
        if name in ("cpu", "memory"):
            lim_cpu_mem = True
    for name in sorted(requests):
        value = requests[name]
        p = f"{req_path}[{name}]"
        out.extend(_validate_container_resource_name(name, p))
        out.extend(validate_resource_quantity(name, value, p))
        q = _quantity.parse(value)
        if name in limits:
            lq = _quantity.parse(limits[name])
            if q is not None and lq is not None:
                if q != lq and not _overcommit_allowed(name):
                    out.append(
                        invalid(
                            req_path,
                            _quantity.show(value),
                            f"must be equal to {name} limit of {_quantity.show(limits[name])}",
                        )
                    )
                elif q > lq:
                    out.append(
                        invalid(
                            req_path,
                            _quantity.show(value),
                            f"must be less than or equal to {name} limit of "
                            f"{_quantity.show(limits[name])}",
                        )
                    )
        elif not _overcommit_allowed(name):
            out.append(required(lim_path, "Limit must be set for non overcommitable resources"))
        if _is_hugepages(name):
            req_huge = True
        if name in ("cpu", "memory"):
            req_cpu_mem = True
    if not lim_cpu_mem and not req_cpu_mem and (req_huge or lim_huge):
        out.append(forbidden(path, "HugePages require cpu or memory"))
    claims_path = f"{path}.claims"
    seen: set[str] = set()
    for i, claim in enumerate(lst(resources.get("claims"))):
        claim_name = s(d(claim).get("name"))
        if not claim_name:
            out.append(required(f"{claims_path}[{i}]"))
        elif claim_name in seen:
            out.append(duplicate(f"{claims_path}[{i}]", claim_name))
        seen.add(claim_name)
    return out


# --- env -----------------------------------------------------------------------------
_ENV_FIELD_PATHS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
_VOLUME_FIELD_PATHS = frozenset(
    {
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
    }
)
_CONVERTIBLE_FIELD_PATHS = CONVERTIBLE_FIELD_PATHS
_RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)


def _validate_object_field_selector(ref: Any, allowed: frozenset[str], path: str) -> list[Cause]:
    ref = d(ref)
    api_version = s(ref.get("apiVersion"))
    if not api_version:
        return [required(f"{path}.apiVersion")]
    field_path = s(ref.get("fieldPath"))
    if not field_path:
        return [required(f"{path}.fieldPath")]
    fp = f"{path}.fieldPath"
    if api_version != "v1":
        return [
            invalid(
                fp,
                field_path,
                f"error converting fieldPath: unsupported pod version: {api_version}",
            )
        ]
    split = split_subscript(field_path)
    if split is not None:
        base, subscript = split
        if base == "metadata.annotations":
            return validate_qualified_name(subscript.lower(), path)
        if base == "metadata.labels":
            return validate_qualified_name(subscript, path)
        return [
            invalid(
                fp,
                field_path,
                f"error converting fieldPath: field label does not support subscript: {field_path}",
            )
        ]
    if field_path == "spec.host":
        field_path = "spec.nodeName"
    if field_path not in _CONVERTIBLE_FIELD_PATHS:
        return [
            invalid(
                fp,
                field_path,
                f"error converting fieldPath: field label not supported: {field_path}",
            )
        ]
    if field_path not in allowed:
        return [not_supported(fp, field_path, sorted(allowed))]
    return []


def _validate_resource_field_selector(ref: Any, path: str, volume: bool) -> list[Cause]:
    ref = d(ref)
    resource = s(ref.get("resource"))
    if volume and not ref.get("containerName"):
        return [required(f"{path}.containerName")]
    if not resource:
        return [required(f"{path}.resource")]
    if resource not in _RESOURCE_FIELD_PATHS and not (
        resource.startswith("requests.hugepages-") or resource.startswith("limits.hugepages-")
    ):
        return [not_supported(f"{path}.resource", resource, list(_RESOURCE_FIELD_PATHS))]
    return []


def _validate_key_selector(ref: Any, path: str) -> list[Cause]:
    ref = d(ref)
    out = [
        invalid(f"{path}.name", s(ref.get("name")), m)
        for m in names.name_is_dns_subdomain(s(ref.get("name")), False)
    ]
    key = s(ref.get("key"))
    if not key:
        out.append(required(f"{path}.key"))
    else:
        out.extend(invalid(f"{path}.key", key, m) for m in names.is_config_map_key(key))
    return out


def validate_env(env: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, var in enumerate(lst(env)):
        var = d(var)
        p = f"{path}[{i}]"
        name = s(var.get("name"))
        if not name:
            out.append(required(f"{p}.name"))
        else:
            out.extend(invalid(f"{p}.name", name, m) for m in names.is_env_var_name(name))
        value_from = var.get("valueFrom")
        if value_from is None:
            continue
        value_from = d(value_from)
        vp = f"{p}.valueFrom"
        count = 0
        if value_from.get("fieldRef") is not None:
            count += 1
            out.extend(
                _validate_object_field_selector(
                    value_from["fieldRef"], _ENV_FIELD_PATHS, f"{vp}.fieldRef"
                )
            )
        if value_from.get("resourceFieldRef") is not None:
            count += 1
            out.extend(
                _validate_resource_field_selector(
                    value_from["resourceFieldRef"], f"{vp}.resourceFieldRef", False
                )
            )
        if value_from.get("configMapKeyRef") is not None:
            count += 1
            out.extend(
                _validate_key_selector(value_from["configMapKeyRef"], f"{vp}.configMapKeyRef")
            )
        if value_from.get("secretKeyRef") is not None:
            count += 1
            out.extend(_validate_key_selector(value_from["secretKeyRef"], f"{vp}.secretKeyRef"))
        if value_from.get("fileKeyRef") is not None:
            count += 1
        if count == 0:
            out.append(
                invalid(
                    vp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                    "`secretKeyRef`",
                )
            )
        elif var.get("value"):
            out.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            out.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return out


def validate_env_from(env_from: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, src in enumerate(lst(env_from)):
        src = d(src)
        p = f"{path}[{i}]"
        prefix = s(src.get("prefix"))
        if prefix:
            out.extend(invalid(f"{p}.prefix", prefix, m) for m in names.is_env_var_name(prefix))
        count = 0
        for key in ("configMapRef", "secretRef"):
            if src.get(key) is not None:
                count += 1
                ref_name = s(d(src[key]).get("name"))
                if not ref_name:
                    out.append(required(f"{p}.{key}.name"))
                else:
                    out.extend(
                        invalid(f"{p}.{key}.name", ref_name, m)
                        for m in names.name_is_dns_subdomain(ref_name, True)
                    )
        if count == 0:
            out.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            out.append(invalid(path, "", "may not have more than one field specified at a time"))
    return out


# --- volumes -------------------------------------------------------------------------
# (json key, the path segment Kubernetes names in "may not specify more than 1 volume type")
_VOLUME_SOURCES = (
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
)
_HOST_PATH_TYPES = (
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
)
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _file_mode(value: Any, path: str) -> list[Cause]:
    v = _int(value)
    if v is not None and (v > 0o777 or v < 0):
        return [invalid(path, v, _FILE_MODE_MSG)]
    return []


def _key_to_path(items: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, kp in enumerate(lst(items)):
        kp = d(kp)
        p = f"{path}[{i}]"
        if not kp.get("key"):
            out.append(required(f"{p}.key"))
        target = s(kp.get("path"))
        if not target:
            out.append(required(f"{p}.path"))
        out.extend(validate_local_non_reserved_path(target, f"{p}.path"))
        out.extend(_file_mode(kp.get("mode"), f"{p}.mode"))
    return out


def _downward_file(item: Any, path: str) -> list[Cause]:
    item = d(item)
    out: list[Cause] = []
    target = s(item.get("path"))
    if not target:
        out.append(required(f"{path}.path"))
    out.extend(validate_local_non_reserved_path(target, f"{path}.path"))
    if item.get("fieldRef") is not None:
        out.extend(
            _validate_object_field_selector(
                item["fieldRef"], _VOLUME_FIELD_PATHS, f"{path}.fieldRef"
            )
        )
        if item.get("resourceFieldRef") is not None:
            out.append(
                invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif item.get("resourceFieldRef") is not None:
        out.extend(
            _validate_resource_field_selector(
                item["resourceFieldRef"], f"{path}.resourceFieldRef", True
            )
        )
    else:
        out.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    out.extend(_file_mode(item.get("mode"), f"{path}.mode"))
    return out


def _projected(source: dict[str, Any], path: str) -> list[Cause]:
    out = _file_mode(source.get("defaultMode"), f"{path}.defaultMode")
    seen: set[str] = set()
    for i, src in enumerate(lst(source.get("sources"))):
        src = d(src)
        sp = f"{path}.sources[{i}]"
        count = 0
        for key in ("secret", "configMap"):
            ref = src.get(key)
            if ref is None:
                continue
            count += 1
            ref = d(ref)
            if not ref.get("name"):
                out.append(required(f"{sp}.{key}.name"))
            out.extend(_key_to_path(ref.get("items"), f"{sp}.{key}.items"))
            for kp in lst(ref.get("items")):
                target = s(d(kp).get("path"))
                if target:
                    if target in seen:
                        out.append(invalid(path, s(ref.get("name")), "conflicting duplicate paths"))
                    seen.add(target)
        if src.get("downwardAPI") is not None:
            count += 1
            for item in lst(d(src["downwardAPI"]).get("items")):
                out.extend(_downward_file(item, f"{sp}.downwardAPI"))
                target = s(d(item).get("path"))
                if target:
                    if target in seen:
                        out.append(invalid(path, target, "conflicting duplicate paths"))
                    seen.add(target)
        if src.get("serviceAccountToken") is not None:
            count += 1
            token = d(src["serviceAccountToken"])
            tp = f"{sp}.serviceAccountToken"
            seconds = _num(token.get("expirationSeconds"))
            if seconds < 600:
                out.append(
                    invalid(
                        f"{tp}.expirationSeconds",
                        seconds,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if seconds > 1 << 32:
                out.append(
                    invalid(
                        f"{tp}.expirationSeconds",
                        seconds,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            target = s(token.get("path"))
            if not target:
                out.append(required(f"{path}.path"))
            else:
                out.extend(validate_local_non_reserved_path(target, f"{path}.path"))
        if src.get("clusterTrustBundle") is not None:
            count += 1
        if src.get("podCertificate") is not None:
            count += 1
        if count > 1:
            out.append(forbidden(sp, "may not specify more than 1 volume type per source"))
    return out


def _volume_source(volume: dict[str, Any], path: str, opts: PodOptions) -> list[Cause]:
    out: list[Cause] = []
    count = 0
    for key, label in _VOLUME_SOURCES:
        source = volume.get(key)
        if source is None:
            continue
        if count > 0:
            out.append(forbidden(f"{path}.{label}", "may not specify more than 1 volume type"))
            continue
        count += 1
        source = d(source)
        sp = f"{path}.{key}"
        if key == "emptyDir":
            limit = source.get("sizeLimit")
            q = _quantity.parse(limit) if limit is not None else None
            if q is not None and q < 0:
                out.append(
                    forbidden(
                        f"{sp}.sizeLimit", "SizeLimit field must be a valid resource quantity"
                    )
                )
        elif key == "hostPath":
            target = s(source.get("path"))
            if not target:
                out.append(required(f"{sp}.path"))
            else:
                out.extend(_path_no_backsteps(target, f"{sp}.path"))
                kind = source.get("type")
                if kind is not None and kind not in _HOST_PATH_TYPES:
                    out.append(not_supported(f"{sp}.type", kind, list(_HOST_PATH_TYPES)))
        elif key == "secret":
            if not source.get("secretName"):
                out.append(required(f"{sp}.secretName"))
            out.extend(_file_mode(source.get("defaultMode"), f"{sp}.defaultMode"))
            out.extend(_key_to_path(source.get("items"), f"{sp}.items"))
        elif key == "configMap":
            if not source.get("name"):
                out.append(required(f"{sp}.name"))
            out.extend(_file_mode(source.get("defaultMode"), f"{sp}.defaultMode"))
            out.extend(_key_to_path(source.get("items"), f"{sp}.items"))
        elif key == "persistentVolumeClaim":
            if not source.get("claimName"):
                out.append(required(f"{sp}.claimName"))
        elif key == "nfs":
            server = s(source.get("server"))
            target = s(source.get("path"))
            if not server:
                out.append(required(f"{sp}.server"))
            if not target:
                out.append(required(f"{sp}.path"))
            if not target.startswith("/"):
                out.append(invalid(f"{sp}.path", target, "must be an absolute path"))
        elif key == "downwardAPI":
            out.extend(_file_mode(source.get("defaultMode"), f"{sp}.defaultMode"))
            for item in lst(source.get("items")):
                out.extend(_downward_file(item, sp))
        elif key == "projected":
            out.extend(_projected(source, sp))
        elif key == "gitRepo":
            if not source.get("repository"):
                out.append(required(f"{sp}.repository"))
            out.extend(
                validate_local_descending_path(s(source.get("directory")), f"{sp}.directory")
            )
        elif key == "csi":
            driver = s(source.get("driver"))
            if not driver:
                out.append(required(f"{sp}.driver"))
            if len(driver) > 63:
                out.append(
                    Cause(
                        "FieldValueTooLong",
                        "Too long: may not be more than 63 bytes",
                        f"{sp}.driver",
                    )
                )
            out.extend(
                invalid(f"{sp}.driver", driver, m)
                for m in names.is_dns1123_subdomain(driver.lower())
            )
        elif key == "ephemeral":
            template = source.get("volumeClaimTemplate")
            if template is None:
                out.append(required(f"{sp}.volumeClaimTemplate"))
            else:
                template = d(template)
                tp = f"{sp}.volumeClaimTemplate"
                tmeta = d(template.get("metadata"))
                out.extend(
                    validate_annotations(tmeta.get("annotations"), f"{tp}.metadata.annotations")
                )
                out.extend(validate_labels(tmeta.get("labels"), f"{tp}.metadata.labels"))
                for extra in sorted(tmeta):
                    if extra not in ("annotations", "labels") and tmeta[extra] not in (
                        None,
                        "",
                        {},
                        [],
                    ):
                        out.append(forbidden(f"{tp}.metadata.{extra}", "cannot be set"))
                from .core import validate_pvc_spec  # local import: core imports this module

                out.extend(validate_pvc_spec(template.get("spec"), f"{tp}.spec"))
                vol_name = s(volume.get("name"))
                if opts.pod_name and vol_name:
                    pvc_name = f"{opts.pod_name}-{vol_name}"
                    for m in names.is_dns1123_subdomain(pvc_name):
                        out.append(invalid(f"{path}.name", vol_name, f'PVC name "{pvc_name}": {m}'))
        elif key == "image":
            if opts.is_pod and not source.get("reference"):
                out.append(required(f"{sp}.reference"))
            policy = source.get("pullPolicy")
            if not policy:
                out.append(required(f"{sp}.pullPolicy"))
            elif policy not in _PULL_POLICIES:
                out.append(not_supported(f"{sp}.pullPolicy", policy, list(_PULL_POLICIES)))
    if count == 0:
        out.append(required(path, "must specify a volume type"))
    return out


def validate_volumes(
    volumes: Any, path: str, opts: PodOptions
) -> tuple[dict[str, dict[str, Any]], list[Cause]]:
    out: list[Cause] = []
    known: dict[str, dict[str, Any]] = {}
    created_pvcs: set[str] = set()
    if opts.pod_name:
        for vol in lst(volumes):
            if d(vol).get("ephemeral") is not None:
                created_pvcs.add(f"{opts.pod_name}-{s(d(vol).get('name'))}")
    for i, vol in enumerate(lst(volumes)):
        vol = d(vol)
        p = f"{path}[{i}]"
        errs = _volume_source(vol, p, opts)
        name = s(vol.get("name"))
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs.extend(validate_dns1123_label(name, f"{p}.name"))
        if name in known:
            errs.append(duplicate(f"{p}.name", name))
        if not errs:
            known[name] = vol
        else:
            out.extend(errs)
        claim = d(vol.get("persistentVolumeClaim")).get("claimName")
        if isinstance(claim, str) and claim in created_pvcs:
            out.append(
                invalid(
                    f"{p}.persistentVolumeClaim.claimName",
                    claim,
                    "must not reference a PVC that gets created for an ephemeral volume",
                )
            )
    return known, out


def _validate_volume_mounts(
    c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str
) -> list[Cause]:
    out: list[Cause] = []
    mounts = lst(c.get("volumeMounts"))
    devices = {
        s(d(dev).get("name")): s(d(dev).get("devicePath")) for dev in lst(c.get("volumeDevices"))
    }
    seen_paths: set[str] = set()
    privileged = d(c.get("securityContext")).get("privileged") is True
    for i, mnt in enumerate(mounts):
        mnt = d(mnt)
        p = f"{path}[{i}]"
        name = s(mnt.get("name"))
        mount_path = s(mnt.get("mountPath"))
        if not name:
            out.append(required(f"{p}.name"))
        if name not in volumes:
            out.append(not_found(f"{p}.name", name))
        if not mount_path:
            out.append(required(f"{p}.mountPath"))
        if mount_path in seen_paths:
            out.append(invalid(f"{p}.mountPath", mount_path, "must be unique"))
        seen_paths.add(mount_path)
        if name in devices:
            out.append(invalid(f"{p}.name", name, "must not already exist in volumeDevices"))
        if mount_path in devices.values():
            out.append(
                invalid(
                    f"{p}.mountPath",
                    mount_path,
                    "must not already exist as a path in volumeDevices",
                )
            )
        sub_path = s(mnt.get("subPath"))
        sub_expr = s(mnt.get("subPathExpr"))
        if name in volumes and volumes[name].get("image") is not None:
            if sub_path:
                out.append(invalid(f"{p}.subPath", sub_path, "not allowed in image volume sources"))
            if sub_expr:
                out.append(
                    invalid(f"{p}.subPathExpr", sub_expr, "not allowed in image volume sources")
                )
        if sub_path:
            out.extend(validate_local_descending_path(sub_path, f"{path}.subPath"))
        if sub_expr:
            if sub_path:
                out.append(
                    invalid(
                        f"{p}.subPathExpr",
                        sub_expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            out.extend(validate_local_descending_path(sub_expr, f"{path}.subPathExpr"))
        propagation = mnt.get("mountPropagation")
        if propagation is not None:
            allowed = ("Bidirectional", "HostToContainer", "None")
            if propagation not in allowed:
                out.append(not_supported(f"{path}.mountPropagation", propagation, list(allowed)))
            if propagation == "Bidirectional" and not privileged:
                out.append(
                    forbidden(
                        f"{path}.mountPropagation",
                        "Bidirectional mount propagation is available only to privileged "
                        "containers",
                    )
                )
        rro = mnt.get("recursiveReadOnly")
        if rro is not None and rro != "Disabled":
            rp = f"{path}.recursiveReadOnly"
            if rro in ("Enabled", "IfPossible"):
                if mnt.get("readOnly") is not True:
                    out.append(forbidden(rp, "may only be specified when readOnly is true"))
                if propagation not in (None, "None"):
                    out.append(
                        forbidden(
                            rp,
                            "may only be specified when mountPropagation is None or not specified",
                        )
                    )
            else:
                out.append(not_supported(rp, rro, ["Disabled", "Enabled", "IfPossible"]))
    return out


def _validate_volume_devices(
    c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str
) -> list[Cause]:
    out: list[Cause] = []
    mounts = {s(d(m).get("name")): s(d(m).get("mountPath")) for m in lst(c.get("volumeMounts"))}
    seen_names: set[str] = set()
    seen_paths: set[str] = set()
    for i, dev in enumerate(lst(c.get("volumeDevices"))):
        dev = d(dev)
        p = f"{path}[{i}]"
        name = s(dev.get("name"))
        dev_path = s(dev.get("devicePath"))
        vol = volumes.get(name)
        if not name:
            out.append(required(f"{p}.name"))
        if name in seen_names:
            out.append(invalid(f"{p}.name", name, "must be unique"))
        if (
            vol is not None
            and vol.get("persistentVolumeClaim") is None
            and vol.get("ephemeral") is None
        ):
            out.append(
                invalid(
                    f"{p}.name",
                    name,
                    "can only use volume source type of PersistentVolumeClaim or Ephemeral for "
                    "block mode",
                )
            )
        if vol is None:
            out.append(not_found(f"{p}.name", name))
        if not dev_path:
            out.append(required(f"{p}.devicePath"))
        if dev_path in seen_paths:
            out.append(invalid(f"{p}.devicePath", dev_path, "must be unique"))
        if dev_path and ".." in dev_path.split("/"):
            out.append(invalid(f"{p}.devicePath", dev_path, "can not contain backsteps ('..')"))
        else:
            seen_paths.add(dev_path)
        if name in mounts:
            out.append(invalid(f"{p}.name", name, "must not already exist in volumeMounts"))
        if dev_path in mounts.values():
            out.append(
                invalid(
                    f"{p}.devicePath", dev_path, "must not already exist as a path in volumeMounts"
                )
            )
        if name:
            seen_names.add(name)
    return out


# --- probes, handlers ----------------------------------------------------------------
def _validate_handler(
    handler: dict[str, Any], grace: int | None, path: str, probe: bool
) -> list[Cause]:
    out: list[Cause] = []
    count = 0
    kinds = (
        ("exec", "httpGet", "tcpSocket", "grpc")
        if probe
        else ("exec", "httpGet", "tcpSocket", "sleep")
    )
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        hp = f"{path}.{kind}"
        if count > 0:
            out.append(forbidden(hp, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = d(action)
        if kind == "exec":
            if not lst(action.get("command")):
                out.append(required(f"{hp}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                out.append(required(f"{hp}.path"))
            out.extend(validate_port_num_or_name(action.get("port"), f"{hp}.port"))
            scheme = action.get("scheme")
            if scheme not in ("HTTP", "HTTPS"):
                out.append(not_supported(f"{hp}.scheme", scheme or "", ["HTTP", "HTTPS"]))
            for header in lst(action.get("httpHeaders")):
                hname = s(d(header).get("name"))
                out.extend(
                    invalid(f"{hp}.httpHeaders", hname, m) for m in names.is_http_header_name(hname)
                )
        elif kind == "tcpSocket":
            out.extend(validate_port_num_or_name(action.get("port"), f"{hp}.port"))
        elif kind == "grpc":
            out.extend(validate_port_num_or_name(_num(action.get("port")), f"{hp}.port"))
        elif kind == "sleep":
            seconds = _num(action.get("seconds"))
            if grace is not None and (seconds < 0 or seconds > grace):
                out.append(
                    invalid(
                        hp,
                        seconds,
                        "must be non-negative and less than terminationGracePeriodSeconds "
                        f"({grace})",
                    )
                )
    if count == 0:
        out.append(required(path, "must specify a handler type"))
    return out


def _validate_probe(probe: Any, grace: int | None, path: str, kind: str) -> list[Cause]:
    if probe is None:
        return []
    probe = d(probe)
    out = _validate_handler(probe, grace, path, probe=True)
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        out.extend(nonnegative(f"{path}.{key}", probe.get(key)))
    tgps = probe.get("terminationGracePeriodSeconds")
    if _int(tgps) is not None and tgps <= 0:
        out.append(invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0"))
    if kind in ("liveness", "startup") and _num(probe.get("successThreshold")) != 1:
        out.append(
            invalid(f"{path}.successThreshold", _num(probe.get("successThreshold")), "must be 1")
        )
    if kind == "readiness" and tgps is not None:
        out.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds", tgps, "must not be set for readinessProbes"
            )
        )
    return out


def _validate_lifecycle(lifecycle: Any, grace: int | None, path: str) -> list[Cause]:
    lifecycle = d(lifecycle)
    out: list[Cause] = []
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            out.extend(_validate_handler(d(lifecycle[hook]), grace, f"{path}.{hook}", probe=False))
    stop_signal = lifecycle.get("stopSignal")
    if stop_signal is not None and not isinstance(stop_signal, str):
        out.append(invalid(f"{path}.stopSignal", stop_signal, "must be a signal name"))
    return out


# --- security contexts ---------------------------------------------------------------
_ID_RANGE = inclusive_range(0, 4294967295)


def _id(value: Any, path: str) -> list[Cause]:
    v = _int(value)
    if v is not None and not 0 <= v <= 4294967295:
        return [invalid(path, v, _ID_RANGE)]
    return []


def _seccomp(profile: Any, path: str) -> list[Cause]:
    if profile is None:
        return []
    profile = d(profile)
    kind = profile.get("type")
    out: list[Cause] = []
    if not kind:
        out.append(required(f"{path}.type", "type is required when seccompProfile is set"))
    elif kind not in ("Localhost", "RuntimeDefault", "Unconfined"):
        out.append(
            not_supported(f"{path}.type", kind, ["Localhost", "RuntimeDefault", "Unconfined"])
        )
    local = profile.get("localhostProfile")
    if kind == "Localhost":
        if local is None:
            out.append(
                required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost")
            )
        else:
            out.extend(validate_local_descending_path(s(local), f"{path}.localhostProfile"))
    elif local is not None:
        out.append(
            invalid(
                f"{path}.localhostProfile",
                Go("core.SeccompProfile{...}"),
                "can only be set when seccomp type is Localhost",
            )
        )
    return out


def _apparmor(profile: Any, path: str) -> list[Cause]:
    if profile is None:
        return []
    profile = d(profile)
    kind = profile.get("type")
    local = profile.get("localhostProfile")
    if kind == "Localhost":
        if not isinstance(local, str) or not local.strip():
            return [
                required(f"{path}.localhostProfile", "must be set when AppArmor type is Localhost")
            ]
        if local != local.strip():
            return [
                invalid(f"{path}.localhostProfile", local, "must not be padded with whitespace")
            ]
        return []
    if kind in ("RuntimeDefault", "Unconfined"):
        if local is not None:
            return [
                invalid(
                    f"{path}.localhostProfile",
                    local,
                    "can only be set when AppArmor type is Localhost",
                )
            ]
        return []
    if not kind:
        return [required(f"{path}.type", "type is required when appArmorProfile is set")]
    return [not_supported(f"{path}.type", kind, ["Localhost", "RuntimeDefault", "Unconfined"])]


def _container_security_context(sc: Any, path: str) -> list[Cause]:
    if sc is None:
        return []
    sc = d(sc)
    out: list[Cause] = []
    out.extend(_id(sc.get("runAsUser"), f"{path}.runAsUser"))
    out.extend(_id(sc.get("runAsGroup"), f"{path}.runAsGroup"))
    proc_mount = sc.get("procMount")
    if proc_mount is not None:
        if proc_mount not in ("Default", "Unmasked"):
            out.append(not_supported(f"{path}.procMount", proc_mount, ["Default", "Unmasked"]))
        elif proc_mount == "Unmasked":
            out.append(
                invalid(
                    f"{path}.procMount", proc_mount, "`hostUsers` must be false to use `Unmasked`"
                )
            )
    out.extend(_seccomp(sc.get("seccompProfile"), f"{path}.seccompProfile"))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            out.append(
                invalid(
                    path,
                    Go("core.SecurityContext{...}"),
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            )
        caps = d(sc.get("capabilities"))
        if "CAP_SYS_ADMIN" in lst(caps.get("add")):
            out.append(
                invalid(
                    path,
                    Go("core.SecurityContext{...}"),
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                    "CAP_SYS_ADMIN",
                )
            )
    out.extend(_apparmor(sc.get("appArmorProfile"), f"{path}.appArmorProfile"))
    return out


def _pod_security_context(spec: dict[str, Any], path: str) -> list[Cause]:
    sc = spec.get("securityContext")
    if sc is None:
        return []
    sc = d(sc)
    out: list[Cause] = []
    out.extend(_id(sc.get("fsGroup"), f"{path}.fsGroup"))
    out.extend(_id(sc.get("runAsUser"), f"{path}.runAsUser"))
    out.extend(_id(sc.get("runAsGroup"), f"{path}.runAsGroup"))
    for i, gid in enumerate(lst(sc.get("supplementalGroups"))):
        out.extend(_id(gid, f"{path}.supplementalGroups[{i}]"))
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        out.append(
            invalid(
                f"{path}.shareProcessNamespace",
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        )
    seen: set[str] = set()
    for i, sysctl in enumerate(lst(sc.get("sysctls"))):
        sname = s(d(sysctl).get("name"))
        p = f"{path}.sysctls[{i}].name"
        if not sname:
            out.append(required(p))
        elif not _valid_sysctl(sname):
            out.append(
                invalid(
                    p,
                    sname,
                    "must have at most 253 characters and match regex "
                    "^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                )
            )
        elif sname in seen:
            out.append(duplicate(p, sname))
        seen.add(sname)
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in ("Always", "OnRootMismatch"):
        out.append(
            not_supported(f"{path}.fsGroupChangePolicy", policy, ["Always", "OnRootMismatch"])
        )
    out.extend(_seccomp(sc.get("seccompProfile"), f"{path}.seccompProfile"))
    out.extend(_apparmor(sc.get("appArmorProfile"), f"{path}.appArmorProfile"))
    groups_policy = sc.get("supplementalGroupsPolicy")
    if groups_policy is not None and groups_policy not in ("Merge", "Strict"):
        out.append(
            not_supported(f"{path}.supplementalGroupsPolicy", groups_policy, ["Merge", "Strict"])
        )
    selinux = sc.get("seLinuxChangePolicy")
    if selinux is not None and selinux not in ("MountOption", "Recursive"):
        out.append(
            not_supported(f"{path}.seLinuxChangePolicy", selinux, ["MountOption", "Recursive"])
        )
    return out


def _valid_sysctl(name: str) -> bool:
    import re

    return (
        len(name) <= 253
        and re.fullmatch(
            r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?", name
        )
        is not None
    )


# --- containers ----------------------------------------------------------------------
def _validate_ports(ports: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    seen: set[str] = set()
    for i, port in enumerate(lst(ports)):
        port = d(port)
        p = f"{path}[{i}]"
        name = s(port.get("name"))
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                out.extend(invalid(f"{p}.name", name, m) for m in msgs)
            elif name in seen:
                out.append(duplicate(f"{p}.name", name))
            else:
                seen.add(name)
        container_port = _num(port.get("containerPort"))
        if container_port == 0:
            out.append(required(f"{p}.containerPort"))
        else:
            out.extend(
                invalid(f"{p}.containerPort", container_port, m)
                for m in names.is_valid_port_num(container_port)
            )
        host_port = _num(port.get("hostPort"))
        if host_port != 0:
            out.extend(
                invalid(f"{p}.hostPort", host_port, m) for m in names.is_valid_port_num(host_port)
            )
        protocol = port.get("protocol")
        if not protocol:
            out.append(required(f"{p}.protocol"))
        elif protocol not in _PROTOCOL_SET:
            out.append(not_supported(f"{p}.protocol", protocol, list(_PROTOCOLS)))
    return out


def _validate_container_common(
    c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str
) -> list[Cause]:
    out: list[Cause] = []
    name = s(c.get("name"))
    if not name:
        out.append(required(f"{path}.name"))
    else:
        out.extend(validate_dns1123_label(name, f"{path}.name"))
    if not s(c.get("image")):
        out.append(required(f"{path}.image"))
    policy = c.get("terminationMessagePolicy")
    if not policy:
        out.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        out.append(
            not_supported(
                f"{path}.terminationMessagePolicy", policy, ["File", "FallbackToLogsOnError"]
            )
        )
    if "ports" in c:
        out.extend(_validate_ports(c["ports"], f"{path}.ports"))
    if "env" in c:
        out.extend(validate_env(c["env"], f"{path}.env"))
    if "envFrom" in c:
        out.extend(validate_env_from(c["envFrom"], f"{path}.envFrom"))
    if "volumeMounts" in c:
        out.extend(_validate_volume_mounts(c, volumes, f"{path}.volumeMounts"))
    if "volumeDevices" in c:
        out.extend(_validate_volume_devices(c, volumes, f"{path}.volumeDevices"))
    pull = c.get("imagePullPolicy")
    if not pull:
        out.append(required(f"{path}.imagePullPolicy"))
    elif pull not in _PULL_POLICIES:
        out.append(not_supported(f"{path}.imagePullPolicy", pull, list(_PULL_POLICIES)))
    if "resources" in c:
        out.extend(validate_resource_requirements(c["resources"], f"{path}.resources"))
    for rp in lst(c.get("resizePolicy")):
        rp = d(rp)
        rname = rp.get("resourceName")
        if not rname:
            out.append(required(f"{path}.resizePolicy"))
        elif rname not in ("cpu", "memory"):
            out.append(not_supported(f"{path}.resizePolicy", rname, ["cpu", "memory"]))
        rpolicy = rp.get("restartPolicy")
        if not rpolicy:
            out.append(required(f"{path}.resizePolicy"))
        elif rpolicy not in ("NotRequired", "RestartContainer"):
            out.append(
                not_supported(f"{path}.resizePolicy", rpolicy, ["NotRequired", "RestartContainer"])
            )
    if "securityContext" in c:
        out.extend(_container_security_context(c["securityContext"], f"{path}.securityContext"))
    return out


def _host_port_conflicts(containers: list[Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(lst(d(c).get("ports"))):
            port = d(port)
            host_port = _num(port.get("hostPort"))
            if host_port == 0:
                continue
            key = f"{s(port.get('protocol'))}/{s(port.get('hostIP'))}/{host_port}"
            if key in seen:
                out.append(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)
    return out


def _validate_containers(
    containers: Any, volumes: dict[str, dict[str, Any]], grace: int | None, path: str
) -> list[Cause]:
    items = lst(containers)
    if not items:
        return [required(path)]
    out: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(items):
        c = d(c)
        p = f"{path}[{i}]"
        out.extend(_validate_container_common(c, volumes, p))
        name = s(c.get("name"))
        if name in seen:
            out.append(duplicate(f"{p}.name", name))
        seen.add(name)
        if c.get("lifecycle") is not None:
            out.extend(_validate_lifecycle(c["lifecycle"], grace, f"{p}.lifecycle"))
        out.extend(_validate_probe(c.get("livenessProbe"), grace, f"{p}.livenessProbe", "liveness"))
        out.extend(
            _validate_probe(c.get("readinessProbe"), grace, f"{p}.readinessProbe", "readiness")
        )
        out.extend(_validate_probe(c.get("startupProbe"), grace, f"{p}.startupProbe", "startup"))
        if c.get("restartPolicy") is not None:
            out.append(forbidden(f"{p}.restartPolicy", "may not be set for non-init containers"))
    out.extend(_host_port_conflicts(items, path))
    return out


def _validate_init_containers(
    init: Any, regular: Any, volumes: dict[str, dict[str, Any]], grace: int | None, path: str
) -> list[Cause]:
    out: list[Cause] = []
    seen = {s(d(c).get("name")) for c in lst(regular)}
    for i, c in enumerate(lst(init)):
        c = d(c)
        p = f"{path}[{i}]"
        out.extend(_validate_container_common(c, volumes, p))
        restart_always = False
        policy = c.get("restartPolicy")
        if policy is not None:
            if policy != "Always":
                out.append(not_supported(f"{p}.restartPolicy", policy, ["Always"]))
            restart_always = policy == "Always"
        name = s(c.get("name"))
        if name in seen:
            out.append(duplicate(f"{p}.name", name))
        elif name:
            seen.add(name)
        out.extend(_host_port_conflicts([c], path))
        if restart_always:
            if c.get("lifecycle") is not None:
                out.extend(_validate_lifecycle(c["lifecycle"], grace, f"{p}.lifecycle"))
            out.extend(
                _validate_probe(c.get("livenessProbe"), grace, f"{p}.livenessProbe", "liveness")
            )
            out.extend(
                _validate_probe(c.get("readinessProbe"), grace, f"{p}.readinessProbe", "readiness")
            )
            out.extend(
                _validate_probe(c.get("startupProbe"), grace, f"{p}.startupProbe", "startup")
            )
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(key) is not None:
                    out.append(
                        forbidden(
                            f"{p}.{key}",
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    return out


_EPHEMERAL_FORBIDDEN = (
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resizePolicy",
    "restartPolicy",
)


def _validate_ephemeral_containers(
    spec: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str
) -> list[Cause]:
    items = lst(spec.get("ephemeralContainers"))
    if not items:
        return []
    out: list[Cause] = []
    others = {
        s(d(c).get("name")) for key in ("containers", "initContainers") for c in lst(spec.get(key))
    }
    seen = set(others)
    for i, c in enumerate(items):
        c = d(c)
        p = f"{path}[{i}]"
        out.extend(_validate_container_common(c, volumes, p))
        if len(s(c.get("image"))) != len(s(c.get("image")).strip()):
            out.append(
                invalid(
                    f"{p}.image", s(c.get("image")), "must not have leading or trailing whitespace"
                )
            )
        name = s(c.get("name"))
        if name in seen:
            out.append(duplicate(f"{p}.name", name))
        seen.add(name)
        target = s(c.get("targetContainerName"))
        if target and target not in others:
            out.append(not_found(f"{p}.targetContainerName", target))
        for key in _EPHEMERAL_FORBIDDEN:
            if c.get(key) not in (None, [], {}):
                out.append(forbidden(f"{p}.{key}", "cannot be set for an Ephemeral Container"))
        for j, vm in enumerate(lst(c.get("volumeMounts"))):
            vm = d(vm)
            for key in ("subPath", "subPathExpr"):
                if vm.get(key):
                    out.append(
                        forbidden(
                            f"{p}.volumeMounts[{j}].{key}",
                            "cannot be set for an Ephemeral Container",
                        )
                    )
    return out


# --- scheduling ----------------------------------------------------------------------
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def validate_taint_effect(effect: Any, allow_empty: bool, path: str) -> list[Cause]:
    if not allow_empty and not effect:
        return [required(path)]
    if effect not in _TAINT_EFFECTS:
        return [not_supported(path, effect if effect is not None else "", list(_TAINT_EFFECTS))]
    return []


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, t in enumerate(lst(tolerations)):
        t = d(t)
        p = f"{path}[{i}]"
        key = s(t.get("key"))
        operator = t.get("operator") or ""
        value = s(t.get("value"))
        effect = t.get("effect") or ""
        if key:
            out.extend(validate_label_name(key, f"{p}.key"))
        if not key and operator != "Exists":
            out.append(
                invalid(
                    f"{p}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(
                invalid(
                    f"{p}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            msgs = names.is_label_value(value)
            if msgs:
                out.append(invalid(f"{p}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                out.append(
                    invalid(
                        f"{p}.operator", value, "value must be empty when `operator` is 'Exists'"
                    )
                )
        else:
            out.append(not_supported(f"{p}.operator", operator, ["Equal", "Exists"]))
        if effect:
            out.extend(validate_taint_effect(effect, True, f"{p}.effect"))
    return out


def _node_selector_requirement(req: Any, path: str, fields: bool) -> list[Cause]:
    req = d(req)
    out: list[Cause] = []
    op = req.get("operator")
    values = lst(req.get("values"))
    key = s(req.get("key"))
    if fields:
        if op in ("In", "NotIn"):
            if len(values) != 1:
                out.append(
                    required(
                        f"{path}.values",
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field "
                        "selector",
                    )
                )
        else:
            out.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
        if key != "metadata.name":
            out.append(invalid(f"{path}.key", key, "not a valid field selector key"))
        else:
            for i, v in enumerate(values):
                if isinstance(v, str):
                    out.extend(
                        invalid(f"{path}.values[{i}]", v, m)
                        for m in names.name_is_dns_subdomain(v, False)
                    )
        return out
    if op in ("In", "NotIn"):
        if not values:
            out.append(
                required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif op in ("Exists", "DoesNotExist"):
        if values:
            out.append(
                forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            out.append(
                required(
                    f"{path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
    else:
        out.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    out.extend(validate_label_name(key, f"{path}.key"))
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.extend(invalid(f"{path}.values[{i}]", v, m) for m in names.is_label_value(v))
    return out


def _node_selector_term(term: Any, path: str) -> list[Cause]:
    term = d(term)
    out: list[Cause] = []
    for j, req in enumerate(lst(term.get("matchExpressions"))):
        out.extend(_node_selector_requirement(req, f"{path}.matchExpressions[{j}]", False))
    for j, req in enumerate(lst(term.get("matchFields"))):
        out.extend(_node_selector_requirement(req, f"{path}.matchFields[{j}]", True))
    return out


def validate_node_selector(selector: Any, path: str) -> list[Cause]:
    terms = lst(d(selector).get("nodeSelectorTerms"))
    if not terms:
        return [required(f"{path}.nodeSelectorTerms", "must have at least one node selector term")]
    out: list[Cause] = []
    for i, term in enumerate(terms):
        out.extend(_node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]"))
    return out


def _pod_affinity_term(term: Any, path: str) -> list[Cause]:
    term = d(term)
    out = validate_label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    out.extend(validate_label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector"))
    for ns in lst(term.get("namespaces")):
        if isinstance(ns, str):
            out.extend(
                invalid(f"{path}.namespace", ns, m) for m in names.name_is_dns_label(ns, False)
            )
    for key in ("matchLabelKeys", "mismatchLabelKeys"):
        keys = lst(term.get(key))
        if keys and term.get("labelSelector") is None:
            out.append(
                forbidden(f"{path}.{key}", "must not be specified when labelSelector is not set")
            )
        else:
            for i, k in enumerate(keys):
                out.extend(validate_label_name(s(k), f"{path}.{key}[{i}]"))
    topology = s(term.get("topologyKey"))
    if not topology:
        out.append(required(f"{path}.topologyKey", "can not be empty"))
    out.extend(validate_label_name(topology, f"{path}.topologyKey"))
    return out


def _validate_affinity(affinity: Any, path: str) -> list[Cause]:
    if affinity is None:
        return []
    affinity = d(affinity)
    out: list[Cause] = []
    node_affinity = affinity.get("nodeAffinity")
    if node_affinity is not None:
        node_affinity = d(node_affinity)
        np = f"{path}.nodeAffinity"
        req = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if req is not None:
            out.extend(
                validate_node_selector(req, f"{np}.requiredDuringSchedulingIgnoredDuringExecution")
            )
        for i, term in enumerate(
            lst(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
        ):
            term = d(term)
            tp = f"{np}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            weight = _num(term.get("weight"))
            if weight <= 0 or weight > 100:
                out.append(invalid(f"{tp}.weight", weight, "must be in the range 1-100"))
            out.extend(_node_selector_term(term.get("preference"), f"{tp}.preference"))
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = affinity.get(kind)
        if pa is None:
            continue
        pa = d(pa)
        pp = f"{path}.{kind}"
        for i, term in enumerate(lst(pa.get("requiredDuringSchedulingIgnoredDuringExecution"))):
            out.extend(
                _pod_affinity_term(
                    term, f"{pp}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
                )
            )
        for i, wt in enumerate(lst(pa.get("preferredDuringSchedulingIgnoredDuringExecution"))):
            wt = d(wt)
            tp = f"{pp}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            weight = _num(wt.get("weight"))
            if weight <= 0 or weight > 100:
                out.append(invalid(f"{tp}.weight", weight, "must be in the range 1-100"))
            out.extend(_pod_affinity_term(wt.get("podAffinityTerm"), f"{tp}.podAffinityTerm"))
    return out


def _validate_dns_config(spec: dict[str, Any], path: str) -> list[Cause]:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not lst(d(config).get("nameservers")):
            return [
                required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if config is None:
        return []
    config = d(config)
    out: list[Cause] = []
    servers = lst(config.get("nameservers"))
    if len(servers) > 3:
        out.append(
            invalid(
                f"{path}.nameservers",
                Go(_go_strings(servers)),
                "must not have more than 3 nameservers",
            )
        )
    for i, ns in enumerate(servers):
        out.extend(validate_ip(ns, f"{path}.nameservers[{i}]"))
    searches = [x for x in lst(config.get("searches")) if isinstance(x, str)]
    if len(searches) > 32:
        out.append(
            invalid(
                f"{path}.searches",
                Go(_go_strings(searches)),
                "must not have more than 32 search paths",
            )
        )
    if len(" ".join(searches)) > 2048:
        out.append(
            invalid(
                f"{path}.searches",
                Go(_go_strings(searches)),
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        if search != ".":
            search = search.removesuffix(".")
            out.extend(_subdomain_underscore(search, f"{path}.searches[{i}]"))
    for i, option in enumerate(lst(config.get("options"))):
        if not d(option).get("name"):
            out.append(required(f"{path}.options[{i}]", "must not be empty"))
    return out


def _subdomain_underscore(value: str, path: str) -> list[Cause]:
    import re

    fmt = "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*"
    out: list[Cause] = []
    if len(value) > 253:
        out.append(invalid(path, value, names.max_len_error(253)))
    if not re.fullmatch(fmt, value):
        out.append(
            invalid(
                path,
                value,
                names.regex_error(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, "
                    "'_', '-' or '.', and must start and end with an alphanumeric character",
                    fmt,
                    "example.com",
                ),
            )
        )
    return out


def _go_strings(values: list[Any]) -> str:
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _validate_topology_spread(constraints: Any, path: str) -> list[Cause]:
    items = [d(c) for c in lst(constraints)]
    out: list[Cause] = []
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        skew = _num(c.get("maxSkew"))
        if skew <= 0:
            out.append(invalid(f"{p}.maxSkew", skew, "must be greater than zero"))
        if not c.get("topologyKey"):
            out.append(required(f"{p}.topologyKey", "can not be empty"))
        action = c.get("whenUnsatisfiable")
        if action not in ("DoNotSchedule", "ScheduleAnyway"):
            out.append(
                not_supported(
                    f"{p}.whenUnsatisfiable", action or "", ["DoNotSchedule", "ScheduleAnyway"]
                )
            )
        for other in items[i + 1 :]:
            if (
                other.get("topologyKey") == c.get("topologyKey")
                and other.get("whenUnsatisfiable") == action
            ):
                out.append(
                    duplicate(
                        f"{p}.{{topologyKey, whenUnsatisfiable}}",
                        f"{{{s(c.get('topologyKey'))}, {s(action)}}}",
                    )
                )
                break
        min_domains = c.get("minDomains")
        if min_domains is not None:
            if _num(min_domains) <= 0:
                out.append(invalid(f"{p}.minDomains", min_domains, "must be greater than zero"))
            if action != "DoNotSchedule":
                out.append(
                    invalid(
                        f"{p}.minDomains",
                        min_domains,
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not "
                        f"{s(action)}",
                    )
                )
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            policy = c.get(key)
            if policy is not None and policy not in ("Honor", "Ignore"):
                out.append(not_supported(f"{p}.{key}", policy, ["Honor", "Ignore"]))
        keys = lst(c.get("matchLabelKeys"))
        if keys:
            selector = c.get("labelSelector")
            selector_keys = set(d(d(selector).get("matchLabels"))) | {
                s(d(e).get("key")) for e in lst(d(selector).get("matchExpressions"))
            }
            if selector is None:
                out.append(
                    forbidden(
                        f"{p}.matchLabelKeys", "must not be specified when labelSelector is not set"
                    )
                )
            for j, k in enumerate(keys):
                out.extend(validate_label_name(s(k), f"{p}.matchLabelKeys[{j}]"))
                if k in selector_keys:
                    out.append(
                        invalid(
                            f"{p}.matchLabelKeys[{j}]",
                            k,
                            "exists in both matchLabelKeys and labelSelector",
                        )
                    )
        out.extend(validate_label_selector(c.get("labelSelector"), f"{p}.labelSelector"))
    return out


# --- the PodSpec ---------------------------------------------------------------------
def validate_pod_spec(spec: Any, path: str, opts: PodOptions = _TEMPLATE) -> list[Cause]:
    spec = d(spec)
    out: list[Cause] = []
    grace_value = spec.get("terminationGracePeriodSeconds")
    if grace_value is None:
        out.append(required(f"{path}.terminationGracePeriodSeconds"))
    grace = _int(grace_value)
    volumes, errs = validate_volumes(spec.get("volumes"), f"{path}.volumes", opts)
    out.extend(errs)
    claim_names: set[str] = set()
    for i, claim in enumerate(lst(spec.get("resourceClaims"))):
        claim = d(claim)
        cp = f"{path}.resourceClaims[{i}]"
        cname = s(claim.get("name"))
        if not cname:
            out.append(required(f"{cp}.name"))
        elif cname in claim_names:
            out.append(duplicate(f"{cp}.name", cname))
        else:
            out.extend(validate_dns1123_label(cname, f"{cp}.name"))
            claim_names.add(cname)
    out.extend(_validate_containers(spec.get("containers"), volumes, grace, f"{path}.containers"))
    out.extend(
        _validate_init_containers(
            spec.get("initContainers"),
            spec.get("containers"),
            volumes,
            grace,
            f"{path}.initContainers",
        )
    )
    out.extend(_validate_ephemeral_containers(spec, volumes, f"{path}.ephemeralContainers"))
    if spec.get("hostNetwork") is True:
        for i, c in enumerate(lst(spec.get("containers"))):
            for j, port in enumerate(lst(d(c).get("ports"))):
                port = d(port)
                hp = _num(port.get("hostPort"))
                cp_ = _num(port.get("containerPort"))
                if (opts.is_pod or hp != 0) and hp != cp_:
                    out.append(
                        invalid(
                            f"{path}.containers[{i}].ports[{j}].hostPort",
                            hp,
                            "must match `containerPort` when `hostNetwork` is true",
                        )
                    )
    restart = spec.get("restartPolicy")
    if not restart:
        out.append(required(f"{path}.restartPolicy"))
    elif restart not in ("Always", "OnFailure", "Never"):
        out.append(
            not_supported(f"{path}.restartPolicy", restart, ["Always", "OnFailure", "Never"])
        )
    dns = spec.get("dnsPolicy")
    if not dns:
        out.append(required(f"{path}.dnsPolicy"))
    elif dns not in ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"):
        out.append(
            not_supported(
                f"{path}.dnsPolicy",
                dns,
                ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            )
        )
    if spec.get("nodeSelector"):
        out.extend(validate_labels(spec["nodeSelector"], f"{path}.nodeSelector"))
    out.extend(_pod_security_context(spec, f"{path}.securityContext"))
    for i, secret in enumerate(lst(spec.get("imagePullSecrets"))):
        secret = d(secret)
        if set(secret) - {"name"}:
            out.append(
                invalid(
                    f"{path}.imagePullSecrets[{i}]",
                    Go(f'core.LocalObjectReference{{Name:"{s(secret.get("name"))}"}}'),
                    "only name may be set",
                )
            )
    out.extend(_validate_affinity(spec.get("affinity"), f"{path}.affinity"))
    out.extend(_validate_dns_config(spec, f"{path}.dnsConfig"))
    for i, gate in enumerate(lst(spec.get("readinessGates"))):
        out.extend(
            validate_qualified_name(
                s(d(gate).get("conditionType")), f"{path}.readinessGates[{i}].conditionType"
            )
        )
    seen_gates: set[str] = set()
    for i, gate in enumerate(lst(spec.get("schedulingGates"))):
        gname = s(d(gate).get("name"))
        out.extend(validate_qualified_name(gname, f"{path}.schedulingGates[{i}]"))
        if gname in seen_gates:
            out.append(duplicate(f"{path}.schedulingGates[{i}]", gname))
        seen_gates.add(gname)
    if spec.get("topologySpreadConstraints"):
        out.extend(
            _validate_topology_spread(
                spec["topologySpreadConstraints"], f"{path}.topologySpreadConstraints"
            )
        )
    if d(spec.get("securityContext")).get("hostUsers") is False:
        for key, label in (
            ("hostNetwork", "hostNetwork"),
            ("hostPID", "HostPID"),
            ("hostIPC", "HostIPC"),
        ):
            if spec.get(key) is True:
                out.append(forbidden(f"{path}.{label}", "when `pod.Spec.HostUsers` is false"))
    account = s(spec.get("serviceAccountName"))
    if account:
        out.extend(
            invalid(f"{path}.serviceAccountName", account, m)
            for m in names.name_is_dns_subdomain(account, False)
        )
    node_name = s(spec.get("nodeName"))
    if node_name:
        out.extend(
            invalid(f"{path}.nodeName", node_name, m)
            for m in names.name_is_dns_subdomain(node_name, False)
        )
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        v = _num(deadline)
        if v < 1 or v > _INT32_MAX:
            out.append(invalid(f"{path}.activeDeadlineSeconds", v, inclusive_range(1, _INT32_MAX)))
    for key in ("hostname", "subdomain"):
        value = s(spec.get(key))
        if value:
            out.extend(validate_dns1123_label(value, f"{path}.{key}"))
    if spec.get("tolerations"):
        out.extend(validate_tolerations(spec["tolerations"], f"{path}.tolerations"))
    for i, alias in enumerate(lst(spec.get("hostAliases"))):
        alias = d(alias)
        out.extend(validate_ip(alias.get("ip"), f"{path}.hostAliases[{i}].ip"))
        for j, hostname in enumerate(lst(alias.get("hostnames"))):
            out.extend(
                validate_dns1123_subdomain(s(hostname), f"{path}.hostAliases[{i}].hostnames[{j}]")
            )
    priority_class = s(spec.get("priorityClassName"))
    if priority_class:
        out.extend(
            invalid(f"{path}.priorityClassName", priority_class, m)
            for m in names.name_is_dns_subdomain(priority_class, False)
        )
    runtime_class = spec.get("runtimeClassName")
    if runtime_class is not None:
        out.extend(
            invalid(f"{path}.runtimeClassName", s(runtime_class), m)
            for m in names.name_is_dns_subdomain(s(runtime_class), False)
        )
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        if preemption == "":
            out.append(required(f"{path}.preemptionPolicy"))
        elif preemption not in ("PreemptLowerPriority", "Never"):
            out.append(
                not_supported(
                    f"{path}.preemptionPolicy", preemption, ["PreemptLowerPriority", "Never"]
                )
            )
    overhead = spec.get("overhead")
    if overhead is not None:
        out.extend(validate_resource_requirements({"limits": overhead}, f"{path}.overhead"))
    pod_os = spec.get("os")
    if pod_os is not None:
        os_name = d(pod_os).get("name")
        if not os_name:
            out.append(required(f"{path}.os.name", "cannot be empty"))
        elif os_name not in ("linux", "windows"):
            out.append(not_supported(f"{path}.os", os_name, ["linux", "windows"]))
    return out


def validate_pod_template_spec(template: Any, path: str) -> list[Cause]:
    template = d(template)
    meta = d(template.get("metadata"))
    out = validate_labels(meta.get("labels"), f"{path}.labels")
    out.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    out.extend(validate_pod_spec(template.get("spec"), f"{path}.spec"))
    if lst(d(template.get("spec")).get("ephemeralContainers")):
        out.append(
            forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return out


def template_selector_mismatch(path: str, template: Any) -> Cause:
    labels = d(d(template).get("metadata")).get("labels")
    return invalid(
        f"{path}.metadata.labels", go_labels(labels), "`selector` does not match template `labels`"
    )
