"""Admission for the built-in API server: Kubernetes' defaults and validation.

The store calls :func:`default` on every object it is about to write (after setting
``metadata.uid`` on create) and then :func:`validate`, which returns the reasons to
reject it as :class:`~kubemodel.errors.Cause` values worded and pathed as Kubernetes
words them; the server turns a non-empty list into a 422 ``Invalid`` Status with
:func:`kubemodel.errors.invalid_object`.

* every kind gets metadata validation (name rules per kind, labels, annotations,
  owner references, finalizers, namespace vs scope; immutable name/namespace/uid);
* the kinds the runtime acts on get their Kubernetes defaults and in-depth validation,
  including what is immutable on update (modules ``core``, ``podspec``, ``apps``,
  ``batch``, ``others``; defaults in ``defaults``);
* custom resources are defaulted, pruned and validated against their CRD's
  ``openAPIV3Schema`` (``custom``), and CRDs themselves are checked (``crd``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause
from runtime.api.registry import REVIEW_RESOURCES, ResourceInfo

from . import apps, batch, core, crd, custom, defaults, others
from ._causes import type_invalid
from .meta import validate_object_meta, validate_object_meta_update

__all__ = ["default", "validate"]

Obj = dict[str, Any]
Validator = Callable[[Obj, "Obj | None"], list[Cause]]


@dataclass(frozen=True)
class _Kind:
    name_fn: names.NameFn = names.name_is_dns_subdomain
    validate: Validator | None = None


_KINDS: dict[tuple[str, str], _Kind] = {
    ("", "Pod"): _Kind(validate=core.validate_pod),
    ("", "PodTemplate"): _Kind(validate=core.validate_pod_template),
    ("", "ReplicationController"): _Kind(validate=core.validate_replication_controller),
    ("", "Service"): _Kind(names.name_is_dns1035_label, core.validate_service),
    ("", "Endpoints"): _Kind(validate=core.validate_endpoints),
    ("", "ConfigMap"): _Kind(validate=core.validate_config_map),
    ("", "Secret"): _Kind(validate=core.validate_secret),
    ("", "PersistentVolume"): _Kind(validate=core.validate_persistent_volume),
    ("", "PersistentVolumeClaim"): _Kind(validate=core.validate_persistent_volume_claim),
    ("", "Namespace"): _Kind(names.name_is_dns_label, core.validate_namespace),
    ("", "Node"): _Kind(validate=core.validate_node),
    ("", "Event"): _Kind(validate=core.validate_event),
    ("apps", "Deployment"): _Kind(validate=apps.validate_deployment),
    ("apps", "ReplicaSet"): _Kind(validate=apps.validate_replica_set),
    ("apps", "StatefulSet"): _Kind(names.name_is_dns_label, apps.validate_stateful_set),
    ("apps", "DaemonSet"): _Kind(validate=apps.validate_daemon_set),
    ("batch", "Job"): _Kind(validate=batch.validate_job),
    ("batch", "CronJob"): _Kind(validate=batch.validate_cron_job),
    ("autoscaling", "HorizontalPodAutoscaler"): _Kind(
        validate=others.validate_horizontal_pod_autoscaler
    ),
    ("networking.k8s.io", "Ingress"): _Kind(validate=others.validate_ingress),
    ("networking.k8s.io", "IngressClass"): _Kind(validate=others.validate_ingress_class),
    ("discovery.k8s.io", "EndpointSlice"): _Kind(validate=others.validate_endpoint_slice),
    ("storage.k8s.io", "StorageClass"): _Kind(validate=others.validate_storage_class),
    ("coordination.k8s.io", "Lease"): _Kind(validate=others.validate_lease),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _Kind(validate=crd.validate),
}
_PATH_SEGMENT_GROUPS = frozenset({"rbac.authorization.k8s.io"})
# Groups whose validation uses apimachinery's ObjectMeta checks (no kube finalizer rule).
_GENERIC_META_GROUPS = frozenset(
    {"rbac.authorization.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io"}
)
_DEFAULT_KIND = _Kind()
_PATH_SEGMENT_KIND = _Kind(names.name_is_path_segment)


def _string_data_to_data(obj: Obj) -> None:
    """A Secret's ``stringData`` is write-only: it is merged into ``data`` (base64)."""
    string_data = obj.get("stringData")
    if not isinstance(string_data, dict):
        obj.pop("stringData", None)
        return
    data = obj.get("data")
    merged: Obj = dict(data) if isinstance(data, dict) else {}
    for key, value in string_data.items():
        if isinstance(value, str):
            merged[key] = base64.b64encode(value.encode()).decode()
    obj["data"] = merged
    del obj["stringData"]


def default(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Apply Kubernetes' defaults to ``obj`` in place (idempotent)."""
    if info.custom is not None:
        custom.default(info, obj)
        return
    key = (info.group, info.kind)
    if key == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        crd.default(obj)
        return
    if key == ("", "Secret"):
        _string_data_to_data(obj)
    fn = defaults.BY_KIND.get(key)
    if fn is not None:
        fn(obj)


def validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Why ``obj`` may not be stored (empty when it may). ``old`` is None on create."""
    if info.custom is not None:
        return _dedupe(custom.validate(info, obj, old))
    if info.store_key in REVIEW_RESOURCES:
        return []
    kind = _KINDS.get((info.group, info.kind))
    if kind is None:
        kind = _PATH_SEGMENT_KIND if info.group in _PATH_SEGMENT_GROUPS else _DEFAULT_KIND
    meta = obj.get("metadata")
    causes = validate_object_meta(
        meta,
        info.namespaced,
        kind.name_fn,
        kube_finalizers=info.group not in _GENERIC_META_GROUPS,
        check_name=old is None,
    )
    if old is not None:
        causes = validate_object_meta_update(meta, old.get("metadata")) + causes
    if kind.validate is not None:
        try:
            causes.extend(kind.validate(obj, old))
        except (TypeError, AttributeError, ValueError, KeyError):
            causes.extend(_type_causes(info, obj))
    return _dedupe(causes)


def _dedupe(causes: list[Cause]) -> list[Cause]:
    """Kubernetes reports each distinct (field, message) once."""
    if len(causes) < 2:
        return causes
    seen: set[tuple[str, str]] = set()
    out: list[Cause] = []
    for cause in causes:
        key = (cause.field, cause.message)
        if key not in seen:
            seen.add(key)
            out.append(cause)
    return out


def _type_causes(info: ResourceInfo, obj: Obj) -> list[Cause]:
    """Wrong JSON types, found by walking the official schema (only after a failure)."""
    from kubemodel import schema as schemas

    registry = schemas.builtin()
    root = registry.root(info.group, info.version, info.kind)
    out: list[Cause] = []
    if root is None:
        return [type_invalid("", "object", "the object does not match the API schema")]

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = registry.resolve(node)
        if value is None:
            return
        expected = schemas.type_of(node)
        actual = _json_type(value)
        if node.get("format") == "int-or-string":
            if actual not in ("integer", "string"):
                out.append(
                    type_invalid(
                        path, actual, f'{path} in body must be of type integer,string: "{actual}"'
                    )
                )
            return
        if expected and expected != actual and not (expected == "number" and actual == "integer"):
            out.append(
                type_invalid(path, actual, f'{path} in body must be of type {expected}: "{actual}"')
            )
            return
        if isinstance(value, dict):
            for key, child in value.items():
                sub = registry.prop(node, key)
                if sub is not None:
                    walk(child, sub, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            items = registry.items(node)
            if items is not None:
                for i, child in enumerate(value):
                    walk(child, items, f"{path}[{i}]")

    walk(obj, root, "")
    return out or [type_invalid("", "object", "the object does not match the API schema")]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
