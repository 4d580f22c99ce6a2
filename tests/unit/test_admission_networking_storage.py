"""Validation of Services, endpoints, ingress, config, secrets, storage and cluster kinds."""

from __future__ import annotations

import base64
import copy
from typing import Any

from runtime.api import admission
from runtime.api.registry import Registry

REGISTRY = Registry()
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def admitted(obj: dict[str, Any]) -> dict[str, Any]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    return obj


def errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    admission.default(info, obj)
    if old is not None:
        admission.default(info, old)
    return [c.render() for c in admission.validate(info, obj, old)]


# --- Service -----------------------------------------------------------------------------
def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "d"},
        "spec": spec,
    }


def test_a_service_needs_ports_unless_it_is_headless_or_external() -> None:
    assert errors(service()) == ["spec.ports: Required value"]
    assert errors(service(clusterIP="None")) == []
    assert errors(service(type="ExternalName", externalName="db.example.com")) == []


def test_service_ports_are_named_when_several_and_unique_per_protocol() -> None:
    assert errors(service(ports=[{"port": 80}, {"port": 80, "name": "b"}])) == [
        "spec.ports[0].name: Required value",
        'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
        'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}',
    ]
    assert (
        errors(
            service(
                ports=[
                    {"name": "dns", "port": 53},
                    {"name": "dns-udp", "port": 53, "protocol": "UDP"},
                ]
            )
        )
        == []
    )


def test_a_service_port_is_checked_field_by_field() -> None:
    assert errors(service(ports=[{"port": 0, "targetPort": "x" * 20, "protocol": "ICMP"}])) == [
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        f'spec.ports[0].targetPort: Invalid value: "{"x" * 20}": must be no more than 15 characters',
    ]


def test_node_ports_are_only_for_node_port_and_load_balancer_services() -> None:
    assert errors(service(ports=[{"port": 80, "nodePort": 30000}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    dup = service(
        type="NodePort",
        ports=[
            {"name": "a", "port": 80, "nodePort": 30000},
            {"name": "b", "port": 81, "nodePort": 30000},
        ],
    )
    assert errors(dup) == ["spec.ports[1].nodePort: Duplicate value: 30000"]


def test_an_external_name_must_be_a_dns_name() -> None:
    assert errors(service(type="ExternalName")) == ["spec.externalName: Required value"]
    assert errors(service(type="ExternalName", externalName="Bad_Host")) == [
        f'spec.externalName: Invalid value: "Bad_Host": {SUBDOMAIN_MSG}'
    ]


def test_a_load_balancer_cannot_be_headless_and_cluster_ips_must_be_ips() -> None:
    assert errors(service(type="LoadBalancer", clusterIP="None", ports=[{"port": 80}])) == [
        "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"
    ]
    assert errors(service(clusterIP="10.0.0.300", ports=[{"port": 80}])) == [
        'spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]


def test_service_policies_are_checked_against_the_service_type() -> None:
    assert errors(service(type="Weird", sessionAffinity="Sometimes", ports=[{"port": 80}])) == [
        'spec.sessionAffinity: Unsupported value: "Sometimes": supported values: "ClientIP", "None"',
        'spec.type: Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    ]
    assert errors(service(externalTrafficPolicy="Local", ports=[{"port": 80}])) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'
    ]
    assert errors(service(loadBalancerSourceRanges=["10.0.0.0/8"], ports=[{"port": 80}])) == [
        "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"
    ]


def test_a_service_cluster_ip_cannot_change_once_set() -> None:
    old = admitted(service(clusterIP="10.96.0.10", ports=[{"port": 80}]))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    new["spec"]["clusterIPs"] = ["10.96.0.11"]
    assert errors(new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set'
    ]


def test_an_update_that_leaves_the_cluster_ip_out_keeps_the_allocated_one() -> None:
    old = admitted(service(clusterIP="10.96.0.10", ports=[{"port": 80}]))
    new = copy.deepcopy(old)
    del new["spec"]["clusterIP"], new["spec"]["clusterIPs"]
    new["spec"]["ports"][0]["port"] = 8080
    assert errors(new, old) == []


# --- Endpoints, EndpointSlice ------------------------------------------------------------
def test_endpoint_subsets_need_addresses_and_real_ips() -> None:
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "e", "namespace": "d"},
        "subsets": [
            {"ports": [{"port": 80}]},
            {
                "addresses": [{"ip": "127.0.0.1"}, {"ip": "nope"}],
                "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}],
            },
        ],
    }
    assert errors(endpoints) == [
        "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
        'subsets[1].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)',
        'subsets[1].addresses[1].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
    ]


def endpoint_slice(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "e", "namespace": "d"},
        **fields,
    }


def test_an_endpoint_slice_checks_addresses_by_address_type() -> None:
    assert errors(endpoint_slice(endpoints=[])) == ["addressType: Required value"]
    es = endpoint_slice(
        addressType="IPv4", endpoints=[{"addresses": ["fe80::1", "10.0.0.1"]}, {"addresses": []}]
    )
    assert errors(es) == [
        'endpoints[0].addresses[0]: Invalid value: "fe80::1": must be a valid IPv4 address',
        "endpoints[1].addresses: Required value: must contain at least 1 address",
    ]
    fqdn = endpoint_slice(addressType="FQDN", endpoints=[{"addresses": ["example"]}])
    assert errors(fqdn) == [
        'endpoints[0].addresses[0]: Invalid value: "example": should be a domain with at least two segments separated by dots'
    ]


def test_endpoint_slice_port_names_are_unique_and_the_address_type_is_immutable() -> None:
    ports = [{"name": "p", "port": 80}, {"name": "p", "port": 81}]
    assert errors(endpoint_slice(addressType="IPv4", endpoints=[], ports=ports)) == [
        'ports[1].name: Duplicate value: "p"'
    ]
    old = admitted(endpoint_slice(addressType="IPv4", endpoints=[]))
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    assert errors(new, old) == ['addressType: Invalid value: "IPv6": field is immutable']


# --- Ingress, IngressClass ---------------------------------------------------------------
def ingress(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "i", "namespace": "d"},
        "spec": spec,
    }


def backend(service: str = "api", **port: Any) -> dict[str, Any]:
    return {"service": {"name": service, "port": port or {"number": 80}}}


def test_an_ingress_needs_rules_or_a_default_backend() -> None:
    assert errors(ingress()) == [
        "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
    ]
    assert errors(ingress(defaultBackend=backend())) == []


def test_ingress_hosts_are_dns_names_possibly_with_one_leading_wildcard() -> None:
    rules = [{"host": "1.2.3.4"}, {"host": "*.*.example.com"}, {"host": "*.example.com"}]
    (ip, wildcard) = errors(ingress(rules=rules))
    assert (
        ip == 'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address'
    )
    assert wildcard.startswith(
        "spec.rules[1].host: Invalid value: \"*.*.example.com\": a wildcard DNS-1123 subdomain must start with '*.'"
    )


def test_ingress_paths_need_a_type_an_absolute_path_and_one_backend() -> None:
    paths = [
        {"path": "api", "pathType": "Prefix", "backend": backend(number=80, name="http")},
        {"path": "/x", "backend": backend()},
        {"path": "/a//b", "pathType": "Exact", "backend": {}},
        {"path": "/r", "pathType": "Regex", "backend": {"service": {"name": "Bad", "port": {}}}},
    ]
    prefix = "spec.rules[0].http.paths"
    assert errors(ingress(rules=[{"http": {"paths": paths}}])) == [
        f'{prefix}[0].path: Invalid value: "api": must be an absolute path',
        f'{prefix}[0].backend: Invalid value: "": cannot set both port name & port number',
        f"{prefix}[1].pathType: Required value: pathType must be specified",
        f"{prefix}[2].path: Invalid value: \"/a//b\": must not contain '//'",
        f'{prefix}[2].backend: Invalid value: "": resource or service backend is required',
        f'{prefix}[3].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"',
        f'{prefix}[3].backend.service.name: Invalid value: "Bad": a DNS-1035 label must consist of lower case '
        "alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        f"{prefix}[3].backend: Required value: port name or number is required",
    ]


def test_an_ingress_class_needs_a_domain_prefixed_controller_that_never_changes() -> None:
    ic = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "c"},
        "spec": {},
    }
    assert errors(copy.deepcopy(ic)) == ["spec.controller: Required value"]
    ic["spec"]["controller"] = "nginx"
    assert errors(copy.deepcopy(ic)) == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")'
    ]
    ic["spec"]["controller"] = "example.com/ingress"
    old = admitted(copy.deepcopy(ic))
    new = copy.deepcopy(old)
    new["spec"]["controller"] = "example.com/other"
    assert errors(new, old) == [
        'spec.controller: Invalid value: "example.com/other": field is immutable'
    ]


# --- ConfigMap, Secret -------------------------------------------------------------------
def config_map(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d"},
        **fields,
    }


def test_config_map_keys_must_be_valid_and_not_repeated_in_binary_data() -> None:
    cm = config_map(data={"bad key": "v", "..x": "y", "a": "1"}, binaryData={"a": "eA=="})
    assert errors(cm) == [
        "data[..x]: Invalid value: \"..x\": must not start with '..'",
        'data[a]: Invalid value: "a": duplicate of key present in binaryData',
        'data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '
        "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    ]


def test_a_config_map_is_limited_to_one_mebibyte() -> None:
    assert errors(config_map(data={"big": "x" * (1024 * 1024 + 1)})) == [
        "Too long: may not be more than 1048576 bytes"
    ]


def test_an_immutable_config_map_cannot_change_its_data_or_become_mutable() -> None:
    old = admitted(config_map(data={"a": "1"}, immutable=True))
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    new["immutable"] = False
    assert errors(new, old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"a": "b"}
    assert errors(relabelled, old) == []


def secret(secret_type: str | None = None, **fields: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "d"},
        **fields,
    }
    if secret_type:
        obj["type"] = secret_type
    return obj


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_typed_secrets_require_their_keys() -> None:
    assert errors(secret("kubernetes.io/tls", data={"tls.crt": b64("c")})) == [
        "data[tls.key]: Required value"
    ]
    assert errors(secret("kubernetes.io/dockerconfigjson")) == [
        "data[.dockerconfigjson]: Required value"
    ]
    assert errors(secret("kubernetes.io/basic-auth")) == [
        "data[username]: Required value",
        "data[password]: Required value",
    ]
    assert errors(secret("kubernetes.io/basic-auth", stringData={"password": "p"})) == []
    assert errors(secret("kubernetes.io/ssh-auth", data={"ssh-privatekey": ""})) == [
        "data[ssh-privatekey]: Required value"
    ]
    assert errors(secret("kubernetes.io/service-account-token")) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"
    ]


def test_a_docker_config_secret_must_hold_json() -> None:
    bad = secret("kubernetes.io/dockerconfigjson", data={".dockerconfigjson": b64("{nope")})
    assert errors(bad) == [
        "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'n' "
        "looking for beginning of object key string"
    ]


def test_a_secret_type_is_immutable_and_an_immutable_secret_keeps_its_data() -> None:
    old = admitted(secret(data={"a": b64("x")}, immutable=True))
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/tls"
    new["data"] = {"tls.crt": b64("c"), "tls.key": b64("k")}
    assert errors(new, old) == [
        'type: Invalid value: "kubernetes.io/tls": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


# --- PersistentVolume, PersistentVolumeClaim, StorageClass -------------------------------
def claim(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c", "namespace": "d"},
        "spec": spec,
    }


def test_a_claim_needs_access_modes_and_a_positive_storage_request() -> None:
    assert errors(claim()) == [
        "spec.accessModes: Required value: at least 1 access mode is required",
        "spec.resources[storage]: Required value",
    ]
    bad = claim(
        accessModes=["ReadWriteOnce", "ReadWriteOncePod"],
        resources={"requests": {"storage": "0"}},
        volumeMode="Raw",
    )
    assert errors(bad) == [
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
        'spec.resources[storage]: Invalid value: "0": must be greater than zero',
        'spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem"',
    ]


def bound_claim() -> dict[str, Any]:
    pvc = admitted(claim(accessModes=["ReadWriteOnce"], resources={"requests": {"storage": "1Gi"}}))
    pvc["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    return pvc


def test_a_bound_claim_may_grow_but_not_shrink_below_its_capacity() -> None:
    old = bound_claim()
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert errors(grown, old) == []
    shrunk = copy.deepcopy(old)
    shrunk["spec"]["resources"]["requests"]["storage"] = "512Mi"
    assert errors(shrunk, old) == [
        "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    ]


def test_the_rest_of_a_claim_spec_is_immutable_except_binding_it_once() -> None:
    old = bound_claim()
    modes = copy.deepcopy(old)
    modes["spec"]["accessModes"] = ["ReadWriteMany"]
    assert errors(modes, old) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
    ]
    bound = copy.deepcopy(old)
    bound["spec"]["volumeName"] = "pv-1"
    assert errors(bound, old) == []


def volume(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": spec,
    }


def test_a_volume_needs_modes_a_storage_capacity_and_one_source() -> None:
    assert errors(volume()) == [
        "spec.accessModes: Required value",
        "spec.capacity: Required value",
        'spec.capacity: Unsupported value: core.ResourceList{}: supported values: "storage"',
        "spec: Required value: must specify a volume type",
    ]
    two = volume(
        capacity={"storage": "1Gi"},
        accessModes=["ReadWriteOnce"],
        hostPath={"path": "/x"},
        nfs={"server": "a", "path": "/b"},
    )
    assert errors(two) == ["spec.nfs: Forbidden: may not specify more than 1 volume type"]


def test_a_local_volume_requires_node_affinity() -> None:
    pv = volume(
        capacity={"storage": "1Gi"}, accessModes=["ReadWriteOnce"], local={"path": "/mnt/disk"}
    )
    assert errors(pv) == ["spec.nodeAffinity: Required value: Local volume requires node affinity"]


def test_a_volume_source_is_immutable() -> None:
    old = admitted(
        volume(capacity={"storage": "1Gi"}, accessModes=["ReadWriteOnce"], hostPath={"path": "/x"})
    )
    new = copy.deepcopy(old)
    new["spec"]["hostPath"]["path"] = "/y"
    assert errors(new, old) == [
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
    ]
    resized = copy.deepcopy(old)
    resized["spec"]["capacity"]["storage"] = "2Gi"
    assert errors(resized, old) == []


def test_a_storage_class_is_checked_and_frozen_after_creation() -> None:
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "s"}}
    assert errors(
        {**copy.deepcopy(sc), "reclaimPolicy": "Recycle", "volumeBindingMode": "Later"}
    ) == [
        "provisioner: Required value",
        'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"',
        'volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"',
    ]
    old = admitted(
        {**copy.deepcopy(sc), "provisioner": "example.com/p", "parameters": {"type": "ssd"}}
    )
    new = copy.deepcopy(old)
    new.update(
        parameters={"type": "hdd"},
        provisioner="example.com/q",
        reclaimPolicy="Retain",
        volumeBindingMode="WaitForFirstConsumer",
    )
    assert errors(new, old) == [
        "parameters: Forbidden: updates to parameters are forbidden.",
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
    ]


# --- Namespace, Node, Event, Lease -------------------------------------------------------
def test_namespace_finalizers_must_be_qualified_or_kubernetes() -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "n"},
        "spec": {"finalizers": ["custom", "example.com/x"]},
    }
    assert errors(ns) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'
    ]


def test_node_taints_are_unique_per_key_and_effect() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "spec": {
            "taints": [
                {"key": "a", "effect": "NoSchedule"},
                {"key": "a", "effect": "NoSchedule"},
                {"key": "a", "effect": "Never"},
            ]
        },
    }
    assert errors(node) == [
        'metadata.taints[1]: Duplicate value: core.Taint{Key:"a", Value:"", Effect:"NoSchedule", '
        "TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
        'metadata.taints[2].effect: Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ]


def test_node_capacity_quantities_are_non_negative_and_pods_whole() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "status": {"capacity": {"cpu": "-1", "pods": "1.5"}},
    }
    assert errors(node) == [
        'status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0',
        'status.capacity.pods: Invalid value: "1.5": must be an integer',
        'status.allocatable.cpu: Invalid value: "-1": must be greater than or equal to 0',
        'status.allocatable.pods: Invalid value: "1.5": must be an integer',
    ]


def test_a_node_pod_cidr_and_provider_id_are_set_once() -> None:
    old = admitted(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "spec": {"podCIDRs": ["10.0.0.0/24"], "providerID": "fake://n"},
        }
    )
    new = copy.deepcopy(old)
    new["spec"].update(podCIDRs=["10.0.1.0/24"], providerID="fake://m", unschedulable=True)
    assert errors(new, old) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid',
        'spec.providerID: Forbidden: node updates may not change providerID except from "" to valid',
    ]


def test_an_event_must_be_in_the_namespace_of_its_object() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "a"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"},
    }
    assert errors(event) == [
        'involvedObject.namespace: Invalid value: "b": does not match event.namespace'
    ]


def test_a_new_style_event_names_its_reporter_action_and_reason() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "a"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingComponent": "example.com/controller",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "a"},
    }
    assert errors(event) == [
        "reportingInstance: Required value",
        "action: Required value",
        "reason: Required value",
    ]


def test_a_lease_lasts_a_positive_duration() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "a"},
        "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1},
    }
    assert errors(lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
    ]
