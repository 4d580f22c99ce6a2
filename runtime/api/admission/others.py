"""Validation of the remaining kinds the runtime acts on.

HorizontalPodAutoscaler (autoscaling/v2), Ingress and IngressClass (networking.k8s.io),
EndpointSlice (discovery.k8s.io), StorageClass (storage.k8s.io) and Lease
(coordination.k8s.io), following their ``pkg/apis/<group>/validation`` packages.
"""

from __future__ import annotations

from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause
from runtime.api import quantity as _quantity

from ._causes import (
    Go,
    duplicate,
    forbidden,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    required,
    too_long,
    too_many,
)
from .meta import d, lst, s
from .podspec import (
    validate_dns1123_label,
    validate_node_selector,
    validate_non_special_ip,
    validate_qualified_name,
)

Obj = dict[str, Any]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _path_segment(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.is_valid_path_segment_name(value)]


# --- HorizontalPodAutoscaler ---------------------------------------------------------
_METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
_SOURCE_FIELD = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "External": "external",
    "ContainerResource": "containerResource",
}


def _cross_version_ref(ref: Any, path: str) -> list[Cause]:
    ref = d(ref)
    out: list[Cause] = []
    for key in ("kind", "name"):
        value = s(ref.get(key))
        if not value:
            out.append(required(f"{path}.{key}"))
        else:
            out.extend(_path_segment(value, f"{path}.{key}"))
    return out


def _metric_target(target: Any, path: str) -> list[Cause]:
    target = d(target)
    out: list[Cause] = []
    kind = target.get("type")
    if not kind:
        out.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        out.append(
            invalid(
                f"{path}.type", kind or "", "must be either Utilization, Value, or AverageValue"
            )
        )
    for key in ("value", "averageValue"):
        if target.get(key) is not None:
            q = _quantity.parse(target[key])
            if q is None or q <= 0:
                out.append(
                    invalid(f"{path}.{key}", _quantity.show(target[key]), "must be positive")
                )
    utilization = target.get("averageUtilization")
    if utilization is not None and _int(utilization) < 1:
        out.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return out


def _metric_identifier(metric: Any, path: str) -> list[Cause]:
    name = s(d(metric).get("name"))
    if not name:
        return [required(f"{path}.name", "must specify a metric name")]
    return _path_segment(name, f"{path}.name")


def _metric_spec(metric: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    kind = metric.get("type")
    if not kind:
        out.append(required(f"{path}.type", "must specify a metric source type"))
    if kind not in _METRIC_TYPES:
        out.append(not_supported(f"{path}.type", kind or "", _METRIC_TYPES))
    present = [
        f
        for f in ("object", "external", "pods", "resource", "containerResource")
        if metric.get(f) is not None
    ]
    if present:
        first = present[0]
        src = d(metric[first])
        sp = f"{path}.{first}"
        target = d(src.get("target"))
        tp = f"{sp}.target"
        if first == "object":
            out.extend(_cross_version_ref(src.get("describedObject"), f"{sp}.describedObject"))
            out.extend(_metric_identifier(src.get("metric"), f"{sp}.metric"))
            out.extend(_metric_target(target, tp))
            if target.get("value") is None and target.get("averageValue") is None:
                out.append(
                    required(f"{tp}.averageValue", "must set either a target value or averageValue")
                )
        elif first == "external":
            out.extend(_metric_identifier(src.get("metric"), f"{sp}.metric"))
            out.extend(_metric_target(target, tp))
            if target.get("value") is None and target.get("averageValue") is None:
                out.append(
                    required(
                        f"{tp}.averageValue",
                        "must set either a target value for metric or a per-pod target",
                    )
                )
            if target.get("value") is not None and target.get("averageValue") is not None:
                out.append(
                    forbidden(
                        f"{tp}.value",
                        "may not set both a target value for metric and a per-pod target",
                    )
                )
        elif first == "pods":
            out.extend(_metric_identifier(src.get("metric"), f"{sp}.metric"))
            out.extend(_metric_target(target, tp))
            if target.get("averageValue") is None:
                out.append(
                    required(f"{tp}.averageValue", "must specify a positive target averageValue")
                )
        else:
            if not src.get("name"):
                out.append(required(f"{sp}.name", "must specify a resource name"))
            if first == "containerResource":
                container = s(src.get("container"))
                if not container:
                    out.append(required(f"{sp}.container", "must specify a container"))
                else:
                    out.extend(validate_dns1123_label(container, f"{sp}.container"))
            out.extend(_metric_target(target, tp))
            if target.get("averageUtilization") is None and target.get("averageValue") is None:
                out.append(
                    required(
                        f"{tp}.averageUtilization",
                        "must set either a target raw value or a target utilization",
                    )
                )
            if (
                target.get("averageUtilization") is not None
                and target.get("averageValue") is not None
            ):
                out.append(
                    forbidden(
                        f"{tp}.averageValue",
                        "may not set both a target raw value and a target utilization",
                    )
                )
    expected = _SOURCE_FIELD.get(kind or "")
    if expected is not None and metric.get(expected) is None:
        out.append(
            required(f"{path}.{expected}", "must populate information for the given metric source")
        )
    if len(present) != 1:
        for field in present:
            if field != expected:
                out.append(
                    forbidden(f"{path}.{field}", "must populate the given metric source only")
                )
    return out


def _scaling_rules(rules: Any, path: str) -> list[Cause]:
    if rules is None:
        return []
    rules = d(rules)
    out: list[Cause] = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        if _int(window) < 0:
            out.append(
                invalid(
                    f"{path}.stabilizationWindowSeconds",
                    window,
                    "must be greater than or equal to zero",
                )
            )
        if _int(window) > 3600:
            out.append(
                invalid(
                    f"{path}.stabilizationWindowSeconds",
                    window,
                    "must be less than or equal to 3600",
                )
            )
    select = rules.get("selectPolicy")
    if select is not None and select not in ("Disabled", "Max", "Min"):
        out.append(not_supported(f"{path}.selectPolicy", select, ["Disabled", "Max", "Min"]))
    policies = lst(rules.get("policies"))
    if not policies:
        out.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        policy = d(policy)
        pp = f"{path}.policies[{i}]"
        if policy.get("type") not in ("Pods", "Percent"):
            out.append(not_supported(f"{pp}.type", policy.get("type") or "", ["Percent", "Pods"]))
        if _int(policy.get("value")) <= 0:
            out.append(
                invalid(f"{pp}.value", _int(policy.get("value")), "must be greater than zero")
            )
        period = _int(policy.get("periodSeconds"))
        if period <= 0:
            out.append(invalid(f"{pp}.periodSeconds", period, "must be greater than zero"))
        if period > 1800:
            out.append(invalid(f"{pp}.periodSeconds", period, "must be less than or equal to 1800"))
    return out


def validate_horizontal_pod_autoscaler(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    lower = 0 if old is not None and d(old.get("spec")).get("minReplicas") == 0 else 1
    min_replicas = spec.get("minReplicas")
    max_replicas = _int(spec.get("maxReplicas"))
    if min_replicas is not None and _int(min_replicas) < lower:
        out.append(
            invalid(
                "spec.minReplicas", _int(min_replicas), f"must be greater than or equal to {lower}"
            )
        )
    if max_replicas < 1:
        out.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    if min_replicas is not None and max_replicas < _int(min_replicas):
        out.append(
            invalid(
                "spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"
            )
        )
    out.extend(_cross_version_ref(spec.get("scaleTargetRef"), "spec.scaleTargetRef"))
    has_object = False
    for i, metric in enumerate(lst(spec.get("metrics"))):
        metric = d(metric)
        out.extend(_metric_spec(metric, f"spec.metrics[{i}]"))
        has_object = has_object or metric.get("type") in ("Object", "External")
    if min_replicas == 0 and not has_object:
        out.append(
            forbidden(
                "spec.metrics",
                "must specify at least one Object or External metric to support scaling to zero "
                "replicas",
            )
        )
    behavior = spec.get("behavior")
    if behavior is not None:
        out.extend(_scaling_rules(d(behavior).get("scaleUp"), "spec.behavior.scaleUp"))
        out.extend(_scaling_rules(d(behavior).get("scaleDown"), "spec.behavior.scaleDown"))
    return out


# --- Ingress, IngressClass -----------------------------------------------------------
_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")


def _ingress_backend(backend: Any, path: str) -> list[Cause]:
    backend = d(backend)
    resource = backend.get("resource")
    service = backend.get("service")
    if resource is not None and service is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_local_ref(resource, f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    service = d(service)
    out: list[Cause] = []
    name = s(service.get("name"))
    if not name:
        out.append(required(f"{path}.service.name"))
    else:
        out.extend(
            invalid(f"{path}.service.name", name, m)
            for m in names.name_is_dns1035_label(name, False)
        )
    port = d(service.get("port"))
    port_name = s(port.get("name"))
    port_number = _int(port.get("number"))
    if port_name and port_number:
        out.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        out.extend(
            invalid(f"{path}.service.port.name", port_name, m)
            for m in names.is_valid_port_name(port_name)
        )
    elif port_number:
        out.extend(
            invalid(f"{path}.service.port.number", port_number, m)
            for m in names.is_valid_port_num(port_number)
        )
    else:
        out.append(required(path, "port name or number is required"))
    return out


def _typed_local_ref(ref: Any, path: str) -> list[Cause]:
    ref = d(ref)
    out: list[Cause] = []
    group = ref.get("apiGroup")
    if group is not None:
        out.extend(
            invalid(f"{path}.apiGroup", s(group), m) for m in names.is_dns1123_subdomain(s(group))
        )
    for key in ("kind", "name"):
        value = s(ref.get(key))
        if not value:
            out.append(required(f"{path}.{key}", f"{key} is required"))
        else:
            out.extend(_path_segment(value, f"{path}.{key}"))
    return out


def _ingress_rules_go(rules: Any) -> Go:
    return Go("[]networking.IngressRule(nil)" if not rules else "[]networking.IngressRule{...}")


def validate_ingress(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    rules = lst(spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        out.append(
            invalid(
                "spec",
                _ingress_rules_go(rules),
                "either `defaultBackend` or `rules` must be specified",
            )
        )
    if spec.get("defaultBackend") is not None:
        out.extend(_ingress_backend(spec["defaultBackend"], "spec.defaultBackend"))
    old_rules = lst(d(old.get("spec")).get("rules")) if old is not None else []
    allow_bad_wildcard = any(
        "*" in s(d(r).get("host")) and _http_rule_errors(d(r).get("http"), "x") for r in old_rules
    )
    for i, rule in enumerate(rules):
        rule = d(rule)
        rp = f"spec.rules[{i}]"
        host = s(rule.get("host"))
        wildcard = False
        if host:
            if names.is_valid_ip(host):
                out.append(invalid(f"{rp}.host", host, "must be a DNS name, not an IP address"))
            if "*" in host:
                out.extend(
                    invalid(f"{rp}.host", host, m)
                    for m in names.is_wildcard_dns1123_subdomain(host)
                )
                wildcard = True
            else:
                out.extend(invalid(f"{rp}.host", host, m) for m in names.is_dns1123_subdomain(host))
        if not wildcard or not allow_bad_wildcard:
            out.extend(_http_rule_errors(rule.get("http"), rp))
    old_tls = lst(d(old.get("spec")).get("tls")) if old is not None else []
    allow_bad_secret = any(
        s(d(t).get("secretName")) and names.name_is_dns_subdomain(s(d(t).get("secretName")), False)
        for t in old_tls
    )
    for i, tls in enumerate(lst(spec.get("tls"))):
        tls = d(tls)
        tp = f"spec.tls[{i}]"
        for j, host in enumerate(lst(tls.get("hosts"))):
            host = s(host)
            checks = (
                names.is_wildcard_dns1123_subdomain(host)
                if "*" in host
                else names.is_dns1123_subdomain(host)
            )
            out.extend(invalid(f"{tp}.hosts[{j}]", host, m) for m in checks)
        secret = s(tls.get("secretName"))
        if secret and not allow_bad_secret:
            out.extend(
                invalid(f"{tp}.secretName", secret, m)
                for m in names.name_is_dns_subdomain(secret, False)
            )
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        out.extend(
            invalid("spec.ingressClassName", s(class_name), m)
            for m in names.name_is_dns_subdomain(s(class_name), False)
        )
    annotation = d(d(obj.get("metadata")).get("annotations")).get("kubernetes.io/ingress.class")
    if old is None and annotation is not None and class_name is not None:
        out.append(
            invalid(
                "annotations.kubernetes.io/ingress.class",
                annotation,
                "can not be set when the class field is also set",
            )
        )
    return out


def _http_rule_errors(http: Any, path: str) -> list[Cause]:
    if http is None:
        return []
    paths = lst(d(http).get("paths"))
    hp = f"{path}.http"
    out: list[Cause] = []
    if not paths:
        out.append(required(f"{hp}.paths"))
    for i, item in enumerate(paths):
        item = d(item)
        pp = f"{hp}.paths[{i}]"
        path_type = item.get("pathType")
        if path_type is None:
            out.append(required(f"{pp}.pathType", "pathType must be specified"))
            continue
        value = s(item.get("path"))
        if path_type in ("Exact", "Prefix"):
            if not value.startswith("/"):
                out.append(invalid(f"{pp}.path", value, "must be an absolute path"))
            if value:
                for seq in _INVALID_PATH_SEQUENCES:
                    if seq in value:
                        out.append(invalid(f"{pp}.path", value, f"must not contain '{seq}'"))
                for suffix in _INVALID_PATH_SUFFIXES:
                    if value.endswith(suffix):
                        out.append(invalid(f"{pp}.path", value, f"cannot end with '{suffix}'"))
        elif path_type == "ImplementationSpecific":
            if value and not value.startswith("/"):
                out.append(invalid(f"{pp}.path", value, "must be an absolute path"))
        else:
            out.append(not_supported(f"{pp}.pathType", path_type, _PATH_TYPES))
        out.extend(_ingress_backend(item.get("backend"), f"{pp}.backend"))
    return out


def validate_ingress_class(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    controller = s(spec.get("controller"))
    if len(controller) > 250:
        out.append(too_long("spec.controller", 250))
    for value, msg in names.is_domain_prefixed_path(controller):
        out.append(
            required("spec.controller") if not msg else invalid("spec.controller", value, msg)
        )
    params = spec.get("parameters")
    if params is not None:
        params = d(params)
        pp = "spec.parameters"
        out.extend(_typed_local_ref(params, pp))
        scope = params.get("scope")
        if scope is None:
            out.append(required(f"{pp}.scope"))
        elif scope not in ("Cluster", "Namespace"):
            out.append(not_supported(f"{pp}.scope", scope, ["Cluster", "Namespace"]))
        elif scope == "Namespace":
            namespace = params.get("namespace")
            if namespace is None:
                out.append(required(f"{pp}.namespace", "`parameters.scope` is set to 'Namespace'"))
            else:
                out.extend(
                    invalid(f"{pp}.namespace", s(namespace), m)
                    for m in names.name_is_dns_label(s(namespace), False)
                )
        elif params.get("namespace") is not None:
            out.append(forbidden(f"{pp}.namespace", "`parameters.scope` is set to 'Cluster'"))
    if old is not None and controller != s(d(old.get("spec")).get("controller")):
        out.insert(0, immutable("spec.controller", controller))
    return out


# --- EndpointSlice -------------------------------------------------------------------
_ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]


def _fqdn(value: str, path: str) -> list[Cause]:
    if not value:
        return [required(path)]
    name = value.removesuffix(".")
    errs = names.is_dns1123_subdomain(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    if len(name.split(".")) < 2:
        return [
            invalid(path, name, "should be a domain with at least two segments separated by dots")
        ]
    for label in name.split("."):
        label_errs = names.is_dns1123_label(label)
        if label_errs:
            return [invalid(path, label, ",".join(label_errs))]
    return []


def validate_endpoint_slice(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    address_type = obj.get("addressType")
    if not address_type:
        out.append(required("addressType"))
    elif address_type not in _ADDRESS_TYPES:
        out.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    endpoints = lst(obj.get("endpoints"))
    if len(endpoints) > 1000:
        out.append(too_many("endpoints", len(endpoints), 1000))
    for i, endpoint in enumerate(endpoints):
        endpoint = d(endpoint)
        ep = f"endpoints[{i}]"
        addresses = lst(endpoint.get("addresses"))
        if not addresses:
            out.append(required(f"{ep}.addresses", "must contain at least 1 address"))
        elif len(addresses) > 100:
            out.append(too_many(f"{ep}.addresses", len(addresses), 100))
        for j, address in enumerate(addresses):
            ap = f"{ep}.addresses[{j}]"
            value = s(address)
            if address_type == "IPv4":
                if not names.is_valid_ip(value) or ":" in value:
                    out.append(invalid(ap, value, "must be a valid IPv4 address"))
                else:
                    out.extend(validate_non_special_ip(value, ap))
            elif address_type == "IPv6":
                if not names.is_valid_ip(value) or ":" not in value:
                    out.append(invalid(ap, value, "must be a valid IPv6 address"))
                else:
                    out.extend(validate_non_special_ip(value, ap))
            elif address_type == "FQDN":
                out.extend(_fqdn(value, ap))
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            out.extend(
                invalid(f"{ep}.nodeName", s(node_name), m)
                for m in names.name_is_dns_subdomain(s(node_name), False)
            )
        hostname = endpoint.get("hostname")
        if hostname is not None:
            out.extend(validate_dns1123_label(s(hostname), f"{ep}.hostname"))
    ports = lst(obj.get("ports"))
    if len(ports) > 20000:
        out.append(too_many("ports", len(ports), 20000))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port = d(port)
        pp = f"ports[{i}]"
        name = s(port.get("name"))
        if name:
            out.extend(validate_dns1123_label(name, f"{pp}.name"))
        if name in seen:
            out.append(duplicate(f"{pp}.name", name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            out.append(required(f"{pp}.protocol"))
        elif protocol not in ("SCTP", "TCP", "UDP"):
            out.append(not_supported(f"{pp}.protocol", protocol, ["SCTP", "TCP", "UDP"]))
        if port.get("port") is not None:
            number = _int(port.get("port"))
            out.extend(invalid(f"{pp}.port", number, m) for m in names.is_valid_port_num(number))
        if port.get("appProtocol") is not None:
            out.extend(validate_qualified_name(s(port["appProtocol"]), f"{pp}.appProtocol"))
    if old is not None and old.get("addressType") != address_type:
        out.append(immutable("addressType", address_type or ""))
    return out


# --- StorageClass, Lease -------------------------------------------------------------
def validate_storage_class(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    provisioner = s(obj.get("provisioner"))
    if not provisioner:
        out.append(required("provisioner"))
    else:
        out.extend(validate_qualified_name(provisioner.lower(), "provisioner"))
    params = d(obj.get("parameters"))
    if len(params) > 512:
        out.append(too_long("parameters", 512))
    else:
        total = 0
        for key in sorted(params):
            if not key:
                out.append(invalid("parameters", key, "field can not be empty."))
            total += len(key) + len(s(params[key]))
        if total > 256 * 1024:
            out.append(too_long("parameters", 256 * 1024))
    policy = obj.get("reclaimPolicy")
    if policy and policy not in ("Delete", "Retain"):
        out.append(not_supported("reclaimPolicy", policy, ["Delete", "Retain"]))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        out.append(required("volumeBindingMode"))
    elif mode not in ("Immediate", "WaitForFirstConsumer"):
        out.append(not_supported("volumeBindingMode", mode, ["Immediate", "WaitForFirstConsumer"]))
    for i, term in enumerate(lst(obj.get("allowedTopologies"))):
        expressions = lst(d(term).get("matchLabelExpressions"))
        keys: set[str] = set()
        for j, expr in enumerate(expressions):
            expr = d(expr)
            ep = f"allowedTopologies[{i}].matchLabelExpressions[{j}]"
            values = lst(expr.get("values"))
            if not values:
                out.append(required(f"{ep}.values"))
            seen_values: set[Any] = set()
            for k, value in enumerate(values):
                if value in seen_values:
                    out.append(duplicate(f"{ep}.values[{k}]", value))
                seen_values.add(value)
            key = s(expr.get("key"))
            out.extend(validate_qualified_name(key, f"{ep}.key"))
            if key in keys:
                out.append(duplicate(f"{ep}.key", key))
            keys.add(key)
    if old is not None:
        if d(obj.get("parameters")) != d(old.get("parameters")):
            out.append(forbidden("parameters", "updates to parameters are forbidden."))
        if provisioner != s(old.get("provisioner")):
            out.append(forbidden("provisioner", "updates to provisioner are forbidden."))
        if obj.get("reclaimPolicy") != old.get("reclaimPolicy"):
            out.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        if mode != old.get("volumeBindingMode"):
            out.append(immutable("volumeBindingMode", mode or ""))
    return out


def validate_lease(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and _int(duration) <= 0:
        out.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    out.extend(nonnegative("spec.leaseTransitions", spec.get("leaseTransitions")))
    strategy = spec.get("strategy")
    if strategy is not None and strategy != "OldestEmulationVersion":
        out.append(not_supported("spec.strategy", strategy, ["OldestEmulationVersion"]))
    if spec.get("preferredHolder") and strategy is None:
        out.append(
            forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
        )
    return out


__all__ = [
    "validate_endpoint_slice",
    "validate_horizontal_pod_autoscaler",
    "validate_ingress",
    "validate_ingress_class",
    "validate_lease",
    "validate_node_selector",
    "validate_storage_class",
]
