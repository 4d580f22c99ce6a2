"""The resource registry: which resources the API serves, under which group, version,
plural name and scope, with which verbs and subresources.

Built-in resources come from a table (their names and scopes are facts of the
Kubernetes API); custom resources are added and removed at run time when their
CustomResourceDefinitions become established or are deleted. The server's routing,
discovery, ``/openapi/v2`` and the store's keys all read from here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
READ_ONLY = ("get", "list")


#: Resources whose kube-apiserver registry sets ``ReturnDeletedObject``: a DELETE that
#: removes the object at once answers with the object, not a Success ``Status``
#: (pkg/registry/*/storage/storage.go; everything else, CRDs and custom resources
#: included, answers with the Status).
RETURNS_DELETED_OBJECT = frozenset(
    {
        "core/pods",
        "core/services",
        "core/serviceaccounts",
        "core/namespaces",
        "core/persistentvolumes",
        "core/persistentvolumeclaims",
        "core/resourcequotas",
        "core/podtemplates",
        "storage.k8s.io/storageclasses",
        "storage.k8s.io/csidrivers",
        "storage.k8s.io/csinodes",
        "storage.k8s.io/volumeattachments",
    }
)


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource at one group/version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    singular: str = ""
    # Versions of the same resource share one storage version and one store key.
    storage_version: str = ""
    # For custom resources: the CRD's schema, printer columns, scale paths.
    custom: CustomInfo | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``plural.group`` as Kubernetes prints it (``deployments.apps``, ``pods``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def store_key(self) -> str:
        """The key under which the store keeps this resource's objects (all versions)."""
        return f"{self.group or 'core'}/{self.plural}"

    @property
    def returns_deleted_object(self) -> bool:
        """Whether an immediate DELETE answers with the deleted object."""
        return self.custom is None and self.store_key in RETURNS_DELETED_OBJECT

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def effective_storage_version(self) -> str:
        return self.storage_version or self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def has_scale(self) -> bool:
        return "scale" in self.subresources


@dataclass(frozen=True)
class CustomInfo:
    """What a CRD says about one version of its resource."""

    schema: dict[str, Any] | None
    printer_columns: tuple[dict[str, Any], ...] = ()
    scale_spec_path: str = ""
    scale_status_path: str = ""
    scale_selector_path: str = ""
    preserve_unknown: bool = False
    crd_name: str = ""
    served: bool = True
    storage: bool = False


def _r(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    short: str = "",
    cats: str = "",
    sub: str = "",
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceInfo:
    return ResourceInfo(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=tuple(short.split()) if short else (),
        categories=tuple(cats.split()) if cats else (),
        subresources=frozenset(sub.split()) if sub else frozenset(),
        verbs=verbs,
    )


NS, CL = True, False

BUILTIN: tuple[ResourceInfo, ...] = (
    # core/v1
    _r("", "v1", "bindings", "Binding", NS, verbs=CREATE_ONLY),
    _r("", "v1", "componentstatuses", "ComponentStatus", CL, "cs", verbs=READ_ONLY),
    _r("", "v1", "configmaps", "ConfigMap", NS, "cm"),
    _r("", "v1", "endpoints", "Endpoints", NS, "ep"),
    _r("", "v1", "events", "Event", NS, "ev"),
    _r("", "v1", "limitranges", "LimitRange", NS, "limits"),
    _r("", "v1", "namespaces", "Namespace", CL, "ns", sub="status finalize"),
    _r("", "v1", "nodes", "Node", CL, "no", sub="status"),
    _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", NS, "pvc", sub="status"),
    _r("", "v1", "persistentvolumes", "PersistentVolume", CL, "pv", sub="status"),
    _r(
        "",
        "v1",
        "pods",
        "Pod",
        NS,
        "po",
        "all",
        "status log binding eviction ephemeralcontainers exec attach",
    ),
    _r("", "v1", "podtemplates", "PodTemplate", NS),
    _r(
        "", "v1", "replicationcontrollers", "ReplicationController", NS, "rc", "all", "status scale"
    ),
    _r("", "v1", "resourcequotas", "ResourceQuota", NS, "quota", sub="status"),
    _r("", "v1", "secrets", "Secret", NS),
    _r("", "v1", "serviceaccounts", "ServiceAccount", NS, "sa", sub="token"),
    _r("", "v1", "services", "Service", NS, "svc", "all", "status"),
    # apps/v1
    _r("apps", "v1", "controllerrevisions", "ControllerRevision", NS),
    _r("apps", "v1", "daemonsets", "DaemonSet", NS, "ds", "all", "status"),
    _r("apps", "v1", "deployments", "Deployment", NS, "deploy", "all", "status scale"),
    _r("apps", "v1", "replicasets", "ReplicaSet", NS, "rs", "all", "status scale"),
    _r("apps", "v1", "statefulsets", "StatefulSet", NS, "sts", "all", "status scale"),
    # batch/v1
    _r("batch", "v1", "cronjobs", "CronJob", NS, "cj", "all", "status"),
    _r("batch", "v1", "jobs", "Job", NS, "", "all", "status"),
    # autoscaling/v2
    _r(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        NS,
        "hpa",
        "all",
        "status",
    ),
    # networking.k8s.io/v1
    _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", CL),
    _r("networking.k8s.io", "v1", "ingresses", "Ingress", NS, "ing", sub="status"),
    _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", NS, "netpol"),
    # policy/v1
    _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", NS, "pdb", sub="status"),
    # rbac.authorization.k8s.io/v1
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", CL),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", CL),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", NS),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", NS),
    # storage.k8s.io/v1
    _r("storage.k8s.io", "v1", "csidrivers", "CSIDriver", CL),
    _r("storage.k8s.io", "v1", "csinodes", "CSINode", CL),
    _r("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", NS),
    _r("storage.k8s.io", "v1", "storageclasses", "StorageClass", CL, "sc"),
    _r("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", CL, sub="status"),
    # coordination, discovery, scheduling, node
    _r("coordination.k8s.io", "v1", "leases", "Lease", NS),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", NS),
    _r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", CL, "pc"),
    _r("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", CL),
    # extension points: stored and served without semantics
    _r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        CL,
        "crd crds",
        "api-extensions",
        "status",
    ),
    _r(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        CL,
        cats="api-extensions",
        sub="status",
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        CL,
        cats="api-extensions",
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        CL,
        cats="api-extensions",
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        CL,
        cats="api-extensions",
        sub="status",
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        CL,
        cats="api-extensions",
    ),
    _r(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        CL,
        "csr",
        sub="status approval",
    ),
    _r("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", CL, sub="status"),
    _r(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
        CL,
        sub="status",
    ),
    # review APIs: create-only, answered by the server, never stored
    _r(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        CL,
        verbs=CREATE_ONLY,
    ),
    _r("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", CL, verbs=CREATE_ONLY),
    _r(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        NS,
        verbs=CREATE_ONLY,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        CL,
        verbs=CREATE_ONLY,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        CL,
        verbs=CREATE_ONLY,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        CL,
        verbs=CREATE_ONLY,
    ),
)

# Kinds the built-in cluster acts on (and so defaults and validates in depth).
REVIEW_RESOURCES = frozenset(
    r.store_key for r in BUILTIN if r.group in ("authentication.k8s.io", "authorization.k8s.io")
)


@dataclass
class _GroupEntry:
    versions: list[str] = field(default_factory=list)
    preferred: str = ""


class Registry:
    """All served resources, indexed for routing and discovery. Thread-safe to read."""

    def __init__(self, resources: Iterable[ResourceInfo] = BUILTIN) -> None:
        self._lock = threading.Lock()
        self._builtin = tuple(resources)
        self._custom: dict[str, tuple[ResourceInfo, ...]] = {}  # crd name -> versions
        self._rebuild()

    # --- mutation (CRDs) ---------------------------------------------------------
    def set_custom(self, crd_name: str, infos: Iterable[ResourceInfo]) -> None:
        with self._lock:
            self._custom[crd_name] = tuple(infos)
            self._rebuild()

    def remove_custom(self, crd_name: str) -> None:
        with self._lock:
            self._custom.pop(crd_name, None)
            self._rebuild()

    def _rebuild(self) -> None:
        everything = list(self._builtin)
        for infos in self._custom.values():
            everything.extend(infos)
        by_path: dict[tuple[str, str, str], ResourceInfo] = {}
        by_kind: dict[tuple[str, str, str], ResourceInfo] = {}
        groups: dict[str, _GroupEntry] = {}
        for info in everything:
            by_path[(info.group, info.version, info.plural)] = info
            by_kind[(info.group, info.version, info.kind)] = info
            entry = groups.setdefault(info.group, _GroupEntry())
            if info.version not in entry.versions:
                entry.versions.append(info.version)
        for entry in groups.values():
            entry.versions.sort(key=version_priority_key)
            entry.preferred = entry.versions[0]
        self._all = tuple(everything)
        self._by_path = by_path
        self._by_kind = by_kind
        self._groups = groups

    # --- lookups -----------------------------------------------------------------
    def all(self) -> tuple[ResourceInfo, ...]:
        return self._all

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        return self._by_kind.get((group, version, kind))

    def groups(self) -> dict[str, tuple[list[str], str]]:
        """group -> (versions, most preferred first; preferred version)."""
        return {g: (list(e.versions), e.preferred) for g, e in self._groups.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [r for r in self._all if r.group == group and r.version == version]

    def storage_info(self, info: ResourceInfo) -> ResourceInfo:
        """The ResourceInfo of the version objects of ``info`` are stored in."""
        if not info.storage_version or info.storage_version == info.version:
            return info
        return self._by_path.get((info.group, info.storage_version, info.plural), info)

    def find_store_key(self, store_key: str) -> list[ResourceInfo]:
        return [r for r in self._all if r.store_key == store_key]


def version_priority_key(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version priority: GA > beta > alpha, higher numbers first, then others."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)
