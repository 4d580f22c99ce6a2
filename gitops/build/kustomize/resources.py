"""Resources inside a kustomize build: identity, name history, the ordered resource map.

Used by every other module of :mod:`gitops.build.kustomize`. A :class:`Resource` is one
object plus what kustomize remembers about it: the ids it had before transformers
renamed or moved it (name references are fixed up from that history at the end of the
build) and, for generated ConfigMaps/Secrets, whether its name still needs the content
hash. :class:`ResMap` is the accumulator that refuses a second object with the same id,
and :func:`legacy_sort` reproduces kustomize's default ("legacy") output order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gitops.errors import BuildError
from gitops.manifest import Origin

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IPAddress",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
        "SelfSubjectRulesReview",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersion",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)
"""Built-in kinds without a namespace (kustomize decides by kind, as here)."""

_ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def is_cluster_scoped(kind: str) -> bool:
    return kind in CLUSTER_SCOPED_KINDS


@dataclass(frozen=True)
class ResId:
    """Group, version, kind, name and namespace of an object ('' when absent)."""

    group: str
    version: str
    kind: str
    name: str
    namespace: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ResId:
        api_version = str(obj.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):  # a patch may have replaced it; validation says so
            meta = {}
        return cls(
            group,
            version,
            str(obj.get("kind") or ""),
            str(meta.get("name") or ""),
            str(meta.get("namespace") or ""),
        )

    @property
    def effective_namespace(self) -> str:
        """The namespace with '' read as 'default' (cluster-scoped kinds keep '')."""
        if is_cluster_scoped(self.kind):
            return ""
        return self.namespace or "default"

    def same(self, other: ResId) -> bool:
        """kustomize's id equality: same GVK and name, '' and 'default' namespaces equal."""
        return (self.group, self.version, self.kind, self.name) == (
            other.group,
            other.version,
            other.kind,
            other.name,
        ) and self.effective_namespace == other.effective_namespace

    def __str__(self) -> str:
        version = self.version or "[noVer]"
        group = self.group or "[noGrp]"
        namespace = self.namespace or "[noNs]"
        return f"{self.kind}.{version}.{group}/{self.name}.{namespace}"


@dataclass
class Resource:
    """One object of the build and its history."""

    obj: dict[str, Any]
    origin: Origin
    previous: list[ResId] = field(default_factory=list)
    needs_hash: bool = False

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        return self.cur_id().name

    @property
    def namespace(self) -> str:
        return self.cur_id().namespace

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            self.obj["metadata"] = meta
        return meta

    def cur_id(self) -> ResId:
        return ResId.of(self.obj)

    def org_id(self) -> ResId:
        return self.previous[0] if self.previous else self.cur_id()

    def all_ids(self) -> list[ResId]:
        return [*self.previous, self.cur_id()]

    def remember_id(self) -> None:
        """Record the current id before a transformer changes name or namespace."""
        current = self.cur_id()
        if not self.previous or self.previous[-1] != current:
            self.previous.append(current)

    def set_name(self, name: str) -> None:
        if name != self.name:
            self.remember_id()
            self.metadata["name"] = name

    def set_namespace(self, namespace: str) -> None:
        if namespace != self.namespace:
            self.remember_id()
            self.metadata["namespace"] = namespace

    def copy(self) -> Resource:
        return Resource(copy.deepcopy(self.obj), self.origin, list(self.previous), self.needs_hash)


class ResMap:
    """Resources in accumulation order; ids are unique."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []

    def __iter__(self) -> Iterator[Resource]:
        return iter(list(self.resources))

    def __len__(self) -> int:
        return len(self.resources)

    def append(self, resource: Resource, *, file: str, line: int | None = None) -> None:
        self.append_all([(resource, line)], file=file)

    def append_all(self, items: Iterable[tuple[Resource, int | None]], *, file: str) -> None:
        """Append resources (each with the line that lists it) in order, refusing an id
        already present. The ids present are computed once per call, so adding n
        resources to m costs n + m, not n * m."""
        registered = {_identity(r.cur_id()): r for r in self.resources}
        for resource, line in items:
            current = resource.cur_id()
            existing = registered.get(_identity(current))
            if existing is not None:
                raise BuildError(
                    f"may not add resource with an already registered id: {current}"
                    f" (from {resource.origin}; already from {existing.origin})",
                    file=file,
                    line=line,
                )
            registered[_identity(current)] = resource
            self.resources.append(resource)

    def extend(self, other: ResMap, *, file: str, line: int | None = None) -> None:
        self.append_all(((resource, line) for resource in other.resources), file=file)

    def remove(self, resource: Resource) -> None:
        self.resources = [r for r in self.resources if r is not resource]

    def replace(self, old: Resource, new: Resource) -> None:
        self.resources = [new if r is old else r for r in self.resources]

    def matching_any_id(self, wanted: ResId) -> list[Resource]:
        """Resources that have, or once had, ``wanted`` as their id."""
        return [r for r in self.resources if any(i.same(wanted) for i in r.all_ids())]


def _identity(rid: ResId) -> tuple[str, str, str, str, str]:
    """What :meth:`ResId.same` compares, as a dictionary key."""
    return (rid.group, rid.version, rid.kind, rid.name, rid.effective_namespace)


def _gvk_string(rid: ResId) -> str:
    return "_".join((rid.group or "~G", rid.version or "~V", rid.kind or "~K"))


def _ranks(kinds: tuple[str, ...]) -> dict[str, int]:
    """Each kind's first position (a sortOptions list may be long and repeat kinds)."""
    ranks: dict[str, int] = {}
    for position, kind in enumerate(kinds):
        ranks.setdefault(kind, position)
    return ranks


def legacy_sort_key(
    rid: ResId,
    order_first: tuple[str, ...] = _ORDER_FIRST,
    order_last: tuple[str, ...] = _ORDER_LAST,
    *,
    ranks: tuple[dict[str, int], dict[str, int]] | None = None,
) -> tuple[int, str, str, str]:
    """kustomize's legacy order: kind rank, then group_version_kind, namespace, name."""
    first, last = ranks or (_ranks(order_first), _ranks(order_last))
    if rid.kind in first:
        rank = first[rid.kind] - len(order_first)
    elif rid.kind in last:
        rank = last[rid.kind] + 1
    else:
        rank = 0
    return (rank, _gvk_string(rid), rid.namespace or "~X", rid.name or "~N")


def legacy_sort(
    resources: list[Resource],
    order_first: tuple[str, ...] = _ORDER_FIRST,
    order_last: tuple[str, ...] = _ORDER_LAST,
) -> list[Resource]:
    ranks = (_ranks(order_first), _ranks(order_last))
    return sorted(
        resources,
        key=lambda r: legacy_sort_key(r.cur_id(), order_first, order_last, ranks=ranks),
    )


DEFAULT_ORDER_FIRST = _ORDER_FIRST
DEFAULT_ORDER_LAST = _ORDER_LAST
