"""Validation of the core/v1 kinds the runtime acts on.

Pod, PodTemplate, ReplicationController, Service, Endpoints, ConfigMap, Secret,
PersistentVolume, PersistentVolumeClaim, Namespace, Node and Event, each as
``validate_<kind>(obj, old)`` (``old`` is None on create). Metadata is validated by the
caller (``runtime.api.admission.validate``); these functions check the rest and, on
update, what Kubernetes keeps immutable.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause
from runtime.api import quantity as _quantity

from ._causes import (
    Go,
    duplicate,
    forbidden,
    go_labels,
    go_slice,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    required,
    too_long,
)
from .meta import (
    d,
    lst,
    map_selector_matches,
    s,
    validate_label_name,
    validate_label_selector,
    validate_labels,
)
from .podspec import (
    PodOptions,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_ip,
    validate_node_selector,
    validate_non_special_ip,
    validate_pod_spec,
    validate_pod_template_spec,
    validate_qualified_name,
    validate_resource_quantity,
    validate_taint_effect,
    validate_tolerations,
)

Obj = dict[str, Any]
MAX_SECRET_SIZE = 1024 * 1024
_PROTOCOLS = ["SCTP", "TCP", "UDP"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- Pod -----------------------------------------------------------------------------
_UPDATABLE_POD_FIELDS = ",".join(
    (
        "`spec.containers[*].image`",
        "`spec.initContainers[*].image`",
        "`spec.activeDeadlineSeconds`",
        "`spec.tolerations` (only additions to existing tolerations)",
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)",
    )
)


def _pod_metadata_and_spec(obj: Obj) -> list[Cause]:
    meta = d(obj.get("metadata"))
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    annotations = d(meta.get("annotations"))
    mirror = annotations.get("kubernetes.io/config.mirror")
    if mirror is not None and not spec.get("nodeName"):
        out.append(
            invalid(
                "metadata.annotations[kubernetes.io/config.mirror]",
                mirror,
                "must set spec.nodeName if mirror pod annotation is set",
            )
        )
    cost = annotations.get("controller.kubernetes.io/pod-deletion-cost")
    if cost is not None:
        try:
            value = int(cost)
            if not -(2**31) <= value < 2**31:
                raise ValueError
        except (TypeError, ValueError):
            out.append(
                invalid(
                    "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]",
                    cost,
                    "must be a 32bit integer",
                )
            )
    out.extend(
        validate_pod_spec(spec, "spec", PodOptions(is_pod=True, pod_name=s(meta.get("name"))))
    )
    if not spec.get("serviceAccountName"):
        for vi, volume in enumerate(lst(spec.get("volumes"))):
            projected = d(volume).get("projected")
            if projected is None:
                continue
            for si, source in enumerate(lst(d(projected).get("sources"))):
                if d(source).get("serviceAccountToken") is not None:
                    out.append(
                        forbidden(
                            f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for key in ("containers", "initContainers"):
        for i, c in enumerate(lst(spec.get(key))):
            image = s(d(c).get("image"))
            if len(image) != len(image.strip()):
                out.append(
                    invalid(
                        f"spec.{key}[{i}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return out


def _toleration_eq_ignoring_seconds(old: Any, new: Any) -> bool:
    a = {k: v for k, v in d(old).items() if k != "tolerationSeconds"}
    b = {k: v for k, v in d(new).items() if k != "tolerationSeconds"}
    return {k: v for k, v in a.items() if v not in (None, "")} == {
        k: v for k, v in b.items() if v not in (None, "")
    }


def validate_pod(obj: Obj, old: Obj | None) -> list[Cause]:
    out = _pod_metadata_and_spec(obj)
    spec = d(obj.get("spec"))
    if old is None:
        if lst(spec.get("ephemeralContainers")):
            out.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if spec.get("nodeName") and lst(spec.get("schedulingGates")):
            out.append(
                forbidden(
                    "spec.nodeName", "cannot be set until all schedulingGates have been cleared"
                )
            )
        return out
    old_spec = d(old.get("spec"))
    for key in ("containers", "initContainers"):
        new_cs, old_cs = lst(spec.get(key)), lst(old_spec.get(key))
        if len(new_cs) != len(old_cs):
            out.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return out
    deadline = spec.get("activeDeadlineSeconds")
    old_deadline = old_spec.get("activeDeadlineSeconds")
    if deadline is not None:
        v = _int(deadline)
        if v < 0 or v > 2147483647:
            out.append(
                invalid(
                    "spec.activeDeadlineSeconds", v, "must be between 0 and 2147483647, inclusive"
                )
            )
            return out
        if old_deadline is not None and _int(old_deadline) < v:
            out.append(
                invalid(
                    "spec.activeDeadlineSeconds", v, "must be less than or equal to previous value"
                )
            )
            return out
    elif old_deadline is not None:
        out.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    new_tolerations = lst(spec.get("tolerations"))
    for old_t in lst(old_spec.get("tolerations")):
        if not any(_toleration_eq_ignoring_seconds(old_t, t) for t in new_tolerations):
            out.append(
                forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
            break
    old_gates = {s(d(g).get("name")) for g in lst(old_spec.get("schedulingGates"))}
    for i, gate in enumerate(lst(spec.get("schedulingGates"))):
        gname = s(d(gate).get("name"))
        if gname not in old_gates:
            out.append(
                forbidden(
                    f"spec.schedulingGates[{i}].name",
                    f"only deletion is allowed, but found new scheduling gate '{gname}'",
                )
            )
    if spec == old_spec:
        return out
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        if key in spec or key in old_spec:
            munged[key] = [
                {**d(c), "image": d(oc).get("image")}
                if "image" in d(oc)
                else {k: v for k, v in d(c).items() if k != "image"}
                for c, oc in zip(lst(spec.get(key)), lst(old_spec.get(key)))
            ]
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        if key in old_spec:
            munged[key] = old_spec[key]
        else:
            munged.pop(key, None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if (
        isinstance(old_grace, int)
        and old_grace < 0
        and munged.get("terminationGracePeriodSeconds") == 1
    ):
        munged["terminationGracePeriodSeconds"] = old_grace
    # Binding a pod to a node is how the scheduler places it; it is not a user edit.
    if not old_spec.get("nodeName"):
        if "nodeName" in old_spec:
            munged["nodeName"] = old_spec["nodeName"]
        else:
            munged.pop("nodeName", None)
    if old_gates:
        # Gated pods may gain node selectors and node affinity terms.
        for key in ("nodeSelector", "affinity"):
            if key in old_spec:
                munged[key] = old_spec[key]
            else:
                munged.pop(key, None)
    if _strip_empty(munged) != _strip_empty(old_spec):
        out.append(
            forbidden(
                "spec", f"pod updates may not change fields other than {_UPDATABLE_POD_FIELDS}"
            )
        )
    return out


def _strip_empty(value: Any) -> Any:
    """Semantic equality as Go sees it: null, "" , [] and {} equal an absent field."""
    if isinstance(value, dict):
        return {k: _strip_empty(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_strip_empty(v) for v in value]
    return value


def validate_pod_template(obj: Obj, old: Obj | None) -> list[Cause]:
    return validate_pod_template_spec(obj.get("template"), "template")


# --- ReplicationController -----------------------------------------------------------
def validate_replication_controller(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    selector = d(spec.get("selector"))
    if not selector:
        out.append(required("spec.selector"))
    out.extend(nonnegative("spec.replicas", spec.get("replicas")))
    template = spec.get("template")
    if template is None:
        out.append(required("spec.template"))
        return out
    labels = d(d(template).get("metadata")).get("labels")
    if selector and not map_selector_matches(selector, labels):
        out.append(
            invalid(
                "spec.template.metadata.labels",
                go_labels(labels),
                "`selector` does not match template `labels`",
            )
        )
    out.extend(validate_pod_template_spec(template, "spec.template"))
    tspec = d(d(template).get("spec"))
    if tspec.get("restartPolicy") != "Always":
        out.append(
            not_supported(
                "spec.template.spec.restartPolicy", tspec.get("restartPolicy") or "", ["Always"]
            )
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        out.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicationController is not Supported",
            )
        )
    return out


# --- Service -------------------------------------------------------------------------
def _headless(spec: Obj) -> bool:
    ips = lst(spec.get("clusterIPs"))
    return len(ips) == 1 and ips[0] == "None"


def _service_port_go(port: Obj) -> Go:
    return Go(
        'core.ServicePort{Name:"", Protocol:'
        + json.dumps(s(port.get("protocol")))
        + ", AppProtocol:(*string)(nil), Port:"
        + str(_int(port.get("port")))
        + ', TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
    )


def _validate_service_port(port: Obj, require_name: bool, seen: set[str], path: str) -> list[Cause]:
    out: list[Cause] = []
    name = s(port.get("name"))
    if require_name and not name:
        out.append(required(f"{path}.name"))
    elif name:
        out.extend(validate_dns1123_label(name, f"{path}.name"))
        if name in seen:
            out.append(duplicate(f"{path}.name", name))
        seen.add(name)
    number = _int(port.get("port"))
    out.extend(invalid(f"{path}.port", number, m) for m in names.is_valid_port_num(number))
    protocol = port.get("protocol")
    if not protocol:
        out.append(required(f"{path}.protocol"))
    elif protocol not in _PROTOCOLS:
        out.append(not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
    from .podspec import validate_port_num_or_name

    out.extend(validate_port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        out.extend(validate_qualified_name(s(app_protocol), f"{path}.appProtocol"))
    return out


def _cluster_ips_related(spec: Obj) -> list[Cause]:
    if spec.get("type") == "ExternalName":
        return []
    out: list[Cause] = []
    cluster_ip = s(spec.get("clusterIP"))
    ips = [ip for ip in lst(spec.get("clusterIPs")) if isinstance(ip, str)]
    if cluster_ip:
        if not ips:
            out.append(required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            out.append(
                invalid("spec.clusterIPs", Go(go_slice(ips)), "first value must match `clusterIP`")
            )
    elif ips:
        out.append(
            invalid(
                "spec.clusterIPs",
                Go(go_slice(ips)),
                "must be empty when `clusterIP` is not specified",
            )
        )
    seen: set[str] = set()
    for i, family in enumerate(lst(spec.get("ipFamilies"))):
        if family not in ("IPv4", "IPv6"):
            out.append(not_supported(f"spec.ipFamilies[{i}]", family, ["IPv4", "IPv6"]))
        if family in seen:
            out.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in ("PreferDualStack", "RequireDualStack", "SingleStack"):
        out.append(
            not_supported(
                "spec.ipFamilyPolicy",
                policy,
                ["PreferDualStack", "RequireDualStack", "SingleStack"],
            )
        )
    bad_ip = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad_ip = True
                out.append(
                    invalid(
                        "spec.clusterIPs",
                        Go(go_slice(ips)),
                        "'None' must be the first and only value",
                    )
                )
            continue
        errs = validate_ip(ip, f"spec.clusterIPs[{i}]")
        bad_ip = bad_ip or bool(errs)
        out.extend(errs)
    if len(ips) > 2:
        out.append(invalid("spec.clusterIPs", Go(go_slice(ips)), "may only hold up to 2 values"))
    if bad_ip:
        return out
    if len(ips) > 1 and (":" in ips[0]) == (":" in ips[1]):
        out.append(
            invalid(
                "spec.clusterIPs",
                Go(go_slice(ips)),
                "may specify no more than one IP for each IP family",
            )
        )
    families = lst(spec.get("ipFamilies"))
    if not _headless(spec) and ips and families:
        for i, ip in enumerate(ips[: len(families)]):
            if families[i] == "IPv4" and ":" in ip:
                out.append(
                    invalid(
                        f"spec.clusterIPs[{i}]",
                        ip,
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`",
                    )
                )
            if families[i] == "IPv6" and ":" not in ip:
                out.append(
                    invalid(
                        f"spec.clusterIPs[{i}]",
                        ip,
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return out


_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def validate_service(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    kind = spec.get("type")
    ports = [d(p) for p in lst(spec.get("ports"))]
    headless = _headless(spec)
    if old is not None:
        out.extend(_service_update(spec, d(old.get("spec"))))
    if not ports and not headless and kind != "ExternalName":
        out.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        out.append(
            invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services")
        )
    elif kind == "ExternalName":
        if lst(spec.get("clusterIPs")):
            out.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if lst(spec.get("ipFamilies")):
            out.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            out.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = s(spec.get("externalName")).removesuffix(".")
        if cname:
            out.extend(validate_dns1123_subdomain(cname, "spec.externalName"))
        else:
            out.append(required("spec.externalName"))
    seen_names: set[str] = set()
    for i, port in enumerate(ports):
        out.extend(_validate_service_port(port, len(ports) > 1, seen_names, f"spec.ports[{i}]"))
    if spec.get("selector") is not None:
        out.extend(validate_labels(spec["selector"], "spec.selector"))
    affinity = spec.get("sessionAffinity")
    if not affinity:
        out.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        out.append(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    if affinity == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        cp = "spec.sessionAffinityConfig"
        detail = "when session affinity type is ClientIP"
        if config is None:
            out.append(required(cp, detail))
        elif d(config).get("clientIP") is None:
            out.append(required(f"{cp}.clientIP", detail))
        elif d(d(config)["clientIP"]).get("timeoutSeconds") is None:
            out.append(required(f"{cp}.clientIP.timeoutSeconds", detail))
        else:
            timeout = _int(d(d(config)["clientIP"]).get("timeoutSeconds"))
            if timeout <= 0 or timeout > 86400:
                out.append(
                    invalid(
                        f"{cp}.clientIP.timeoutSeconds",
                        timeout,
                        "must be greater than 0 and less than 86400",
                    )
                )
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        out.append(
            forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
        )
    out.extend(_cluster_ips_related(spec))
    for i, ip in enumerate(lst(spec.get("externalIPs"))):
        errs = validate_ip(ip, f"spec.externalIPs[{i}]")
        out.extend(errs or validate_non_special_ip(s(ip), f"spec.externalIPs[{i}]"))
    if not kind:
        out.append(required("spec.type"))
    elif kind not in _SERVICE_TYPES:
        out.append(not_supported("spec.type", kind, _SERVICE_TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if _int(port.get("nodePort")):
                out.append(
                    forbidden(
                        f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"
                    )
                )
    node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = _int(port.get("nodePort"))
        if not node_port:
            continue
        key = (s(port.get("protocol")), node_port)
        if key in node_ports:
            out.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
        node_ports.add(key)
    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        key = (s(port.get("protocol")), _int(port.get("port")))
        if key in seen_ports:
            out.append(duplicate(f"spec.ports[{i}]", _service_port_go(port)))
        seen_ports.add(key)
    ranges = lst(spec.get("loadBalancerSourceRanges"))
    if ranges:
        if kind != "LoadBalancer":
            out.append(
                forbidden(
                    "spec.LoadBalancerSourceRanges",
                    "may only be used when `type` is 'LoadBalancer'",
                )
            )
        for i, value in enumerate(ranges):
            value = s(value).strip()
            if not names.is_valid_cidr(value):
                out.append(invalid(f"spec.LoadBalancerSourceRanges[{i}]", value, names.CIDR_MSG))
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        out.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        out.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if kind == "LoadBalancer":
            out.extend(validate_qualified_name(s(lb_class), "spec.loadBalancerClass"))
        else:
            out.append(
                forbidden(
                    "spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"
                )
            )
    externally_accessible = kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(lst(spec.get("externalIPs")))
    )
    etp = spec.get("externalTrafficPolicy")
    if not externally_accessible:
        if etp:
            out.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set for externally-accessible services",
                )
            )
    elif not etp:
        out.append(required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        out.append(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    needs_health_check = kind == "LoadBalancer" and etp == "Local"
    hc_port = _int(spec.get("healthCheckNodePort"))
    if not needs_health_check:
        if hc_port:
            out.append(
                invalid(
                    "spec.healthCheckNodePort",
                    hc_port,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
                    "'Local'",
                )
            )
    elif hc_port:
        out.extend(
            invalid("spec.healthCheckNodePort", hc_port, m)
            for m in names.is_valid_port_num(hc_port)
        )
    itp = spec.get("internalTrafficPolicy")
    if itp is None:
        if kind in ("NodePort", "LoadBalancer", "ClusterIP"):
            out.append(required("spec.internalTrafficPolicy"))
    elif itp not in ("Cluster", "Local"):
        out.append(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution not in (
        "PreferClose",
        "PreferSameZone",
        "PreferSameNode",
    ):
        out.append(
            not_supported(
                "spec.trafficDistribution",
                distribution,
                ["PreferClose", "PreferSameZone", "PreferSameNode"],
            )
        )
    return out


def _service_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    out: list[Cause] = []
    if spec.get("type") == "ExternalName" or old_spec.get("type") == "ExternalName":
        return out
    new_ips = [ip for ip in lst(spec.get("clusterIPs")) if isinstance(ip, str)]
    old_ips = [ip for ip in lst(old_spec.get("clusterIPs")) if isinstance(ip, str)]
    if not new_ips and not spec.get("clusterIP"):
        return out  # left empty: the store carries the allocated addresses over
    if _headless(spec) and _headless(old_spec):
        return out
    if len(new_ips) == len(old_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                out.append(
                    invalid(
                        f"spec.clusterIPs[{i}]", Go(go_slice(new_ips)), "may not change once set"
                    )
                )
    elif len(old_ips) > len(new_ips):
        if new_ips and old_ips and new_ips[0] != old_ips[0]:
            out.append(
                invalid("spec.clusterIPs[0]", Go(go_slice(new_ips)), "may not change once set")
            )
        if len(new_ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            out.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    spec.get("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                )
            )
    elif old_ips and new_ips[0] != old_ips[0]:
        out.append(invalid("spec.clusterIPs[0]", Go(go_slice(new_ips)), "may not change once set"))
    if (
        spec.get("type") == "LoadBalancer"
        and old_spec.get("type") == "LoadBalancer"
        and spec.get("loadBalancerClass") != old_spec.get("loadBalancerClass")
    ):
        out.append(
            invalid(
                "spec.loadBalancerClass",
                spec.get("loadBalancerClass"),
                "may not change once set",
            )
        )
    return out


# --- Endpoints -----------------------------------------------------------------------
def _endpoint_address(address: Any, path: str) -> list[Cause]:
    address = d(address)
    ip = address.get("ip")
    out = validate_ip(ip, f"{path}.ip")
    hostname = s(address.get("hostname"))
    if hostname:
        out.extend(validate_dns1123_label(hostname, f"{path}.hostname"))
    node_name = address.get("nodeName")
    if node_name is not None:
        out.extend(
            invalid(f"{path}.nodeName", s(node_name), m)
            for m in names.name_is_dns_subdomain(s(node_name), False)
        )
    if isinstance(ip, str) and names.is_valid_ip(ip):
        out.extend(validate_non_special_ip(ip, f"{path}.ip"))
    return out


def validate_endpoints(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    for i, subset in enumerate(lst(obj.get("subsets"))):
        subset = d(subset)
        p = f"subsets[{i}]"
        addresses = lst(subset.get("addresses"))
        not_ready = lst(subset.get("notReadyAddresses"))
        if not addresses and not not_ready:
            out.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        for j, address in enumerate(addresses):
            out.extend(_endpoint_address(address, f"{p}.addresses[{j}]"))
        for j, address in enumerate(not_ready):
            out.extend(_endpoint_address(address, f"{p}.notReadyAddresses[{j}]"))
        ports = lst(subset.get("ports"))
        for j, port in enumerate(ports):
            port = d(port)
            pp = f"{p}.ports[{j}]"
            name = s(port.get("name"))
            if len(ports) > 1 and not name:
                out.append(required(f"{pp}.name"))
            elif name:
                out.extend(validate_dns1123_label(name, f"{pp}.name"))
            number = _int(port.get("port"))
            out.extend(invalid(f"{pp}.port", number, m) for m in names.is_valid_port_num(number))
            protocol = port.get("protocol")
            if not protocol:
                out.append(required(f"{pp}.protocol"))
            elif protocol not in _PROTOCOLS:
                out.append(not_supported(f"{pp}.protocol", protocol, _PROTOCOLS))
            if port.get("appProtocol") is not None:
                out.extend(validate_qualified_name(s(port["appProtocol"]), f"{pp}.appProtocol"))
    return out


# --- ConfigMap, Secret ---------------------------------------------------------------
def validate_config_map(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    if old is not None and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            out.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if (obj.get("data") or {}) != (old.get("data") or {}):
            out.append(forbidden("data", "field is immutable when `immutable` is set"))
        if (obj.get("binaryData") or {}) != (old.get("binaryData") or {}):
            out.append(forbidden("binaryData", "field is immutable when `immutable` is set"))
    data = d(obj.get("data"))
    binary = d(obj.get("binaryData"))
    total = 0
    for key in sorted(data):
        out.extend(invalid(f"data[{key}]", key, m) for m in names.is_config_map_key(key))
        if key in binary:
            out.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        value = data[key]
        total += len(value.encode()) if isinstance(value, str) else 0
    for key in sorted(binary):
        out.extend(invalid(f"binaryData[{key}]", key, m) for m in names.is_config_map_key(key))
        total += len(_b64_bytes(binary[key]) or b"")
    if total > MAX_SECRET_SIZE:
        out.append(too_long("", MAX_SECRET_SIZE))
    return out


def _b64_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


_JSON_MESSAGES = (
    ("Expecting property name", "looking for beginning of object key string"),
    ("Expecting value", "looking for beginning of value"),
    ("Expecting ',' delimiter", "after object key:value pair"),
    ("Expecting ':' delimiter", "after object key"),
    ("Extra data", "after top-level value"),
)


def _json_error(raw: bytes) -> str | None:
    """Why ``raw`` is not a JSON object, in the words of Go's ``encoding/json``."""
    try:
        parsed = json.loads(raw)
    except UnicodeDecodeError:
        return "invalid character looking for beginning of value"
    except json.JSONDecodeError as exc:
        text = exc.doc
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
            return "unexpected end of JSON input"
        for prefix, context in _JSON_MESSAGES:
            if exc.msg.startswith(prefix):
                return f"invalid character '{text[exc.pos]}' {context}"
        return f"invalid character '{text[exc.pos]}' looking for beginning of value"
    if not isinstance(parsed, dict):
        kind = (
            "array"
            if isinstance(parsed, list)
            else "string"
            if isinstance(parsed, str)
            else "number"
        )
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return None


def validate_secret(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    kind = obj.get("type") or ""
    if old is not None:
        if kind != (old.get("type") or ""):
            out.append(immutable("type", kind))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                out.append(forbidden("immutable", "field is immutable when `immutable` is set"))
            if (obj.get("data") or {}) != (old.get("data") or {}):
                out.append(forbidden("data", "field is immutable when `immutable` is set"))
    data = d(obj.get("data"))
    decoded: dict[str, bytes] = {}
    total = 0
    for key in sorted(data):
        out.extend(invalid(f"data[{key}]", key, m) for m in names.is_config_map_key(key))
        raw = _b64_bytes(data[key]) if data[key] is not None else b""
        if raw is None:
            out.append(invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
            raw = b""
        decoded[key] = raw
        total += len(raw)
    if total > MAX_SECRET_SIZE:
        out.append(too_long("data", MAX_SECRET_SIZE))
    meta = d(obj.get("metadata"))
    if kind == "kubernetes.io/service-account-token":
        if not d(meta.get("annotations")).get("kubernetes.io/service-account.name"):
            out.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in decoded:
            out.append(required(f"data[{key}]"))
        else:
            err = _json_error(decoded[key])
            if err:
                out.append(invalid(f"data[{key}]", "<secret contents redacted>", err))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in decoded and "password" not in decoded:
            out.append(required("data[username]"))
            out.append(required("data[password]"))
    elif kind == "kubernetes.io/ssh-auth":
        if not decoded.get("ssh-privatekey"):
            out.append(required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        if "tls.crt" not in decoded:
            out.append(required("data[tls.crt]"))
        if "tls.key" not in decoded:
            out.append(required("data[tls.key]"))
    return out


# --- PersistentVolume, PersistentVolumeClaim -----------------------------------------
_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
_VOLUME_MODES = ["Block", "Filesystem"]


def _access_modes(modes: Any, path: str, detail: str = "") -> list[Cause]:
    items = lst(modes)
    out: list[Cause] = []
    if not items:
        out.append(required(path, detail))
    found_once_pod = found_other = False
    for mode in items:
        if mode not in _ACCESS_MODES:
            out.append(not_supported(path, mode, _ACCESS_MODES))
        elif mode == "ReadWriteOncePod":
            found_once_pod = True
        else:
            found_other = True
    if found_once_pod and found_other:
        out.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return out


def _validate_class_name(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in names.name_is_dns_subdomain(value, False)]


def validate_pvc_spec(spec: Any, path: str) -> list[Cause]:
    spec = d(spec)
    out = _access_modes(
        spec.get("accessModes"), f"{path}.accessModes", "at least 1 access mode is required"
    )
    if spec.get("selector") is not None:
        out.extend(validate_label_selector(spec["selector"], f"{path}.selector"))
    requests = d(d(spec.get("resources")).get("requests"))
    storage_path = f"{path}.resources[storage]"
    if "storage" not in requests:
        out.append(required(storage_path))
    else:
        q = _quantity.parse(requests["storage"])
        if q is None:
            out.append(
                invalid(storage_path, _quantity.show(requests["storage"]), _quantity.FORMAT_MSG)
            )
        elif q <= 0:
            out.append(
                invalid(
                    storage_path, _quantity.show(requests["storage"]), "must be greater than zero"
                )
            )
    class_name = spec.get("storageClassName")
    if isinstance(class_name, str) and class_name:
        out.extend(_validate_class_name(class_name, f"{path}.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        out.append(not_supported(f"{path}.volumeMode", mode, _VOLUME_MODES))
    for key in ("dataSource", "dataSourceRef"):
        ref = spec.get(key)
        if ref is None:
            continue
        ref = d(ref)
        rp = f"{path}.{key}"
        if not ref.get("name"):
            out.append(required(f"{rp}.name"))
        if not ref.get("kind"):
            out.append(required(f"{rp}.kind"))
        group = s(ref.get("apiGroup"))
        if not group and ref.get("kind") != "PersistentVolumeClaim":
            out.append(
                invalid(
                    rp,
                    s(ref.get("kind")),
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                )
            )
        if group:
            out.extend(
                invalid(f"{rp}.apiGroup", group, m) for m in names.is_dns1123_subdomain(group)
            )
    vac = spec.get("volumeAttributesClassName")
    if isinstance(vac, str) and vac:
        out.extend(_validate_class_name(vac, f"{path}.volumeAttributesClassName"))
    return out


_PV_SOURCES = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
]
_PV_SOURCE_LABELS = {"cephfs": "cephFS"}


def validate_persistent_volume(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = _access_modes(spec.get("accessModes"), "spec.accessModes")
    capacity = d(spec.get("capacity"))
    if not capacity:
        out.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        shown = Go(
            "core.ResourceList{"
            + ", ".join(f'"{k}":"{_quantity.show(v)}"' for k, v in sorted(capacity.items()))
            + "}"
        )
        out.append(not_supported("spec.capacity", shown, ["storage"]))
    for name in sorted(capacity):
        q = _quantity.parse(capacity[name])
        p = f"spec.capacity[{name}]"
        if q is None:
            out.append(invalid(p, _quantity.show(capacity[name]), _quantity.FORMAT_MSG))
        elif q <= 0:
            out.append(invalid(p, _quantity.show(capacity[name]), "must be greater than zero"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in ("Delete", "Recycle", "Retain"):
        out.append(
            not_supported(
                "spec.persistentVolumeReclaimPolicy", policy, ["Delete", "Recycle", "Retain"]
            )
        )
    node_affinity = spec.get("nodeAffinity")
    if node_affinity is not None:
        required_terms = d(node_affinity).get("required")
        if required_terms is None:
            out.append(
                required("spec.nodeAffinity.required", "must specify required node constraints")
            )
        else:
            out.extend(validate_node_selector(required_terms, "spec.nodeAffinity.required"))
    count = 0
    for key in _PV_SOURCES:
        source = spec.get(key)
        if source is None:
            continue
        if count > 0:
            out.append(
                forbidden(
                    f"spec.{_PV_SOURCE_LABELS.get(key, key)}",
                    "may not specify more than 1 volume type",
                )
            )
            continue
        count += 1
        source = d(source)
        if key in ("hostPath", "local"):
            if not source.get("path"):
                out.append(required(f"spec.{key}.path"))
            elif ".." in s(source.get("path")).split("/"):
                out.append(
                    invalid(f"spec.{key}.path", s(source.get("path")), "must not contain '..'")
                )
            if key == "local" and node_affinity is None:
                out.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
        elif key == "nfs":
            if not source.get("server"):
                out.append(required("spec.nfs.server"))
            if not source.get("path"):
                out.append(required("spec.nfs.path"))
            if not s(source.get("path")).startswith("/"):
                out.append(
                    invalid("spec.nfs.path", s(source.get("path")), "must be an absolute path")
                )
        elif key == "csi":
            if not source.get("driver"):
                out.append(required("spec.csi.driver"))
            if not source.get("volumeHandle"):
                out.append(required("spec.csi.volumeHandle"))
    if count == 0:
        out.append(required("spec", "must specify a volume type"))
    host_path = s(d(spec.get("hostPath")).get("path"))
    if host_path and host_path.rstrip("/") == "" and policy == "Recycle":
        out.append(
            forbidden(
                "spec.persistentVolumeReclaimPolicy",
                "may not be 'recycle' for a hostPath mount of '/'",
            )
        )
    class_name = s(spec.get("storageClassName"))
    if class_name:
        out.extend(_validate_class_name(class_name, "spec.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        out.append(not_supported("spec.volumeMode", mode, _VOLUME_MODES))
    if old is not None:
        old_spec = d(old.get("spec"))
        new_source = {k: spec.get(k) for k in _PV_SOURCES if spec.get(k) is not None}
        old_source = {k: old_spec.get(k) for k in _PV_SOURCES if old_spec.get(k) is not None}
        csi_new, csi_old = d(new_source.get("csi")), d(old_source.get("csi"))
        if csi_new and csi_old and "controllerExpandSecretRef" not in csi_old:
            new_source["csi"] = {
                k: v for k, v in csi_new.items() if k != "controllerExpandSecretRef"
            }
        if new_source != old_source:
            out.append(
                forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                )
            )
        if spec.get("volumeMode") != old_spec.get("volumeMode"):
            out.append(immutable("volumeMode", spec.get("volumeMode")))
        if old_spec.get("nodeAffinity") is not None and spec.get("nodeAffinity") != old_spec.get(
            "nodeAffinity"
        ):
            out.append(
                invalid(
                    "nodeAffinity",
                    Go("&core.VolumeNodeAffinity{...}"),
                    "field is immutable, except for updating from beta label to GA",
                )
            )
    return out


def validate_persistent_volume_claim(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = validate_pvc_spec(spec, "spec")
    if old is None:
        return out
    old_spec = d(old.get("spec"))
    new_clone = dict(spec)
    old_clone = dict(old_spec)
    if not old_spec.get("volumeName"):
        old_clone["volumeName"] = new_clone.get("volumeName")
    if old_spec.get("storageClassName") is None and spec.get("storageClassName") is not None:
        annotation = d(d(old.get("metadata")).get("annotations")).get(
            "volume.beta.kubernetes.io/storage-class"
        )
        if annotation is None or annotation == spec.get("storageClassName"):
            old_clone["storageClassName"] = new_clone.get("storageClassName")
    bound = d(obj.get("status")).get("phase") == "Bound"
    new_requests = d(d(spec.get("resources")).get("requests"))
    old_requests = d(d(old_spec.get("resources")).get("requests"))
    if bound:
        resources = dict(d(new_clone.get("resources")))
        resources["requests"] = {**new_requests, "storage": old_requests.get("storage")}
        new_clone["resources"] = resources
        if new_clone.get("volumeAttributesClassName") is not None:
            new_clone["volumeAttributesClassName"] = old_clone.get("volumeAttributesClassName")
    if _strip_empty(new_clone) != _strip_empty(old_clone):
        out.append(
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims",
            )
        )
    new_size = _quantity.parse(new_requests.get("storage"))
    old_size = _quantity.parse(old_requests.get("storage"))
    status_size = _quantity.parse(d(d(obj.get("status")).get("capacity")).get("storage")) or 0
    if (
        new_size is not None
        and old_size is not None
        and new_size < old_size
        and new_size <= status_size
    ):
        out.append(
            forbidden(
                "spec.resources.requests.storage", "field can not be less than status.capacity"
            )
        )
    if spec.get("volumeMode") != old_spec.get("volumeMode"):
        out.append(immutable("volumeMode", spec.get("volumeMode")))
    return out


# --- Namespace, Node, Event ----------------------------------------------------------
def validate_namespace(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    for finalizer in lst(d(obj.get("spec")).get("finalizers")):
        value = s(finalizer)
        out.extend(invalid("spec.finalizers", value, m) for m in names.is_qualified_name(value))
        if "/" not in value and value != "kubernetes":
            out.append(
                invalid(
                    "spec.finalizers",
                    value,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return out


def _taint_go(taint: Obj) -> Go:
    return Go(
        "core.Taint{Key:"
        + json.dumps(s(taint.get("key")))
        + ", Value:"
        + json.dumps(s(taint.get("value")))
        + ", Effect:"
        + json.dumps(s(taint.get("effect")))
        + ", TimeAdded:(*v1.Time)(nil)}"
    )


def validate_node(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    unique: dict[str, set[str]] = {}
    for i, taint in enumerate(lst(spec.get("taints"))):
        taint = d(taint)
        p = f"metadata.taints[{i}]"
        key = s(taint.get("key"))
        out.extend(validate_label_name(key, f"{p}.key"))
        value = s(taint.get("value"))
        msgs = names.is_label_value(value)
        if msgs:
            out.append(invalid(f"{p}.value", value, ";".join(msgs)))
        effect = taint.get("effect")
        out.extend(validate_taint_effect(effect, False, f"{p}.effect"))
        seen = unique.setdefault(s(effect), set())
        if key in seen:
            cause = duplicate(p, _taint_go(taint))
            out.append(
                Cause(
                    cause.reason,
                    cause.message + ": taints must be unique by key and effect pair",
                    cause.field,
                )
            )
            continue
        seen.add(key)
    status = d(obj.get("status"))
    for bucket in ("capacity", "allocatable"):
        values = d(status.get(bucket))
        for name in sorted(values):
            out.extend(validate_resource_quantity(name, values[name], f"status.{bucket}.{name}"))
    cidrs = [c for c in lst(spec.get("podCIDRs")) if isinstance(c, str)]
    for i, cidr in enumerate(cidrs):
        if not names.is_valid_cidr(cidr):
            out.append(invalid(f"spec.podCIDRs[{i}]", cidr, names.CIDR_MSG))
    if len(cidrs) > 1:
        if len(cidrs) > 2 or (":" in cidrs[0]) == (":" in cidrs[1]):
            out.append(
                invalid(
                    "spec.podCIDRs",
                    Go(go_slice(cidrs)),
                    "may specify no more than one CIDR for each IP family",
                )
            )
        seen_cidrs: set[str] = set()
        for i, cidr in enumerate(cidrs):
            if cidr in seen_cidrs:
                out.append(duplicate(f"spec.podCIDRs[{i}]", cidr))
            seen_cidrs.add(cidr)
    if old is not None:
        old_spec = d(old.get("spec"))
        old_cidrs = lst(old_spec.get("podCIDRs"))
        if old_cidrs and old_cidrs != cidrs:
            out.append(
                forbidden(
                    "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'
                )
            )
        old_provider = s(old_spec.get("providerID"))
        if old_provider and old_provider != s(spec.get("providerID")):
            out.append(
                forbidden(
                    "spec.providerID",
                    'node updates may not change providerID except from "" to valid',
                )
            )
        seen_addresses: list[Any] = []
        for i, address in enumerate(lst(status.get("addresses"))):
            if address in seen_addresses:
                out.append(
                    duplicate(
                        f"status.addresses[{i}]",
                        _address_go(d(address)),
                    )
                )
            seen_addresses.append(address)
    return out


def _address_go(address: Obj) -> Go:
    kind = json.dumps(s(address.get("type")))
    value = json.dumps(s(address.get("address")))
    return Go(f"core.NodeAddress{{Type:{kind}, Address:{value}}}")


def validate_event(obj: Obj, old: Obj | None) -> list[Cause]:
    out: list[Cause] = []
    namespace = s(d(obj.get("metadata")).get("namespace"))
    involved_ns = s(d(obj.get("involvedObject")).get("namespace"))
    if not obj.get("eventTime"):
        if not involved_ns:
            if namespace not in ("", "default"):
                out.append(
                    invalid(
                        "involvedObject.namespace", involved_ns, "does not match event.namespace"
                    )
                )
        elif namespace != involved_ns:
            out.append(
                invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
            )
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            out.append(
                invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
            )
        controller = s(obj.get("reportingComponent"))
        if not controller:
            out.append(required("reportingComponent"))
        out.extend(validate_qualified_name(controller, "reportingComponent"))
        instance = s(obj.get("reportingInstance"))
        if not instance:
            out.append(required("reportingInstance"))
        if len(instance) > 128:
            out.append(invalid("reportingInstance", "", "can have at most 128 characters"))
        action = s(obj.get("action"))
        if not action:
            out.append(required("action"))
        if len(action) > 128:
            out.append(invalid("action", "", "can have at most 128 characters"))
        reason = s(obj.get("reason"))
        if not reason:
            out.append(required("reason"))
        if len(reason) > 128:
            out.append(invalid("reason", "", "can have at most 128 characters"))
        if len(s(obj.get("message"))) > 1024:
            out.append(invalid("message", "", "can have at most 1024 characters"))
    out.extend(invalid("namespace", namespace, m) for m in names.is_dns1123_subdomain(namespace))
    return out


__all__ = [
    "validate_config_map",
    "validate_endpoints",
    "validate_event",
    "validate_namespace",
    "validate_node",
    "validate_persistent_volume",
    "validate_persistent_volume_claim",
    "validate_pod",
    "validate_pod_template",
    "validate_pvc_spec",
    "validate_replication_controller",
    "validate_secret",
    "validate_service",
    "validate_tolerations",
]
