"""Name reference fix-up: rewriting references to objects whose names changed.

Called once by :mod:`.builder` at the end of the top-level build, after name prefixes,
suffixes, namespaces and generator hashes are final. For every reference field of
kustomize's name-reference configuration (ConfigMaps and Secrets in pod specs, Services
in Ingresses and StatefulSets, ServiceAccounts in pod specs and RoleBinding subjects,
Roles in roleRefs, PVCs, PriorityClasses, scale targets...) whose value was a previous
name of an object of the referenced kind in the same namespace, the field gets the
object's final name (and, for references that carry a namespace, its final namespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops.build.kustomize.fieldspecs import FieldSpec, Leaf, walk
from gitops.build.kustomize.resources import ResId, ResMap, Resource, is_cluster_scoped
from gitops.errors import BuildError

_POD_KINDS: tuple[tuple[str, str | None, str], ...] = (
    ("Pod", "", "spec"),
    ("ReplicationController", "", "spec/template/spec"),
    ("Deployment", None, "spec/template/spec"),
    ("ReplicaSet", None, "spec/template/spec"),
    ("DaemonSet", None, "spec/template/spec"),
    ("StatefulSet", "apps", "spec/template/spec"),
    ("Job", "batch", "spec/template/spec"),
    ("CronJob", "batch", "spec/jobTemplate/spec/template/spec"),
    ("PodTemplate", "", "template/spec"),
)


def _pod(*paths: str) -> list[FieldSpec]:
    return [
        FieldSpec(f"{base}/{path}", kind, group)
        for kind, group, base in _POD_KINDS
        for path in paths
    ]


_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class Reference:
    """Objects of ``kind`` (and ``group``, None: any) are referred to at ``specs``."""

    kind: str
    group: str | None
    specs: tuple[FieldSpec, ...]


def _ref(kind: str, group: str | None, specs: list[FieldSpec]) -> Reference:
    return Reference(kind, group, tuple(specs))


_RBAC = "rbac.authorization.k8s.io"
REFERENCES: tuple[Reference, ...] = (
    _ref(
        "ConfigMap",
        "",
        _pod(
            "volumes/configMap/name",
            "volumes/projected/sources/configMap/name",
            *(f"{c}/env/valueFrom/configMapKeyRef/name" for c in _CONTAINERS),
            *(f"{c}/envFrom/configMapRef/name" for c in _CONTAINERS),
        ),
    ),
    _ref(
        "Secret",
        "",
        [
            *_pod(
                "volumes/secret/secretName",
                "volumes/projected/sources/secret/name",
                "imagePullSecrets/name",
                *(f"{c}/env/valueFrom/secretKeyRef/name" for c in _CONTAINERS),
                *(f"{c}/envFrom/secretRef/name" for c in _CONTAINERS),
            ),
            FieldSpec("spec/tls/secretName", "Ingress"),
            FieldSpec("imagePullSecrets/name", "ServiceAccount"),
            FieldSpec("secrets/name", "ServiceAccount"),
        ],
    ),
    _ref(
        "Service",
        "",
        [
            FieldSpec("spec/serviceName", "StatefulSet", "apps"),
            FieldSpec("spec/rules/http/paths/backend/serviceName", "Ingress"),
            FieldSpec("spec/backend/serviceName", "Ingress"),
            FieldSpec("spec/rules/http/paths/backend/service/name", "Ingress"),
            FieldSpec("spec/defaultBackend/service/name", "Ingress"),
            FieldSpec("spec/service", "APIService", "apiregistration.k8s.io"),
            FieldSpec("webhooks/clientConfig/service", "ValidatingWebhookConfiguration"),
            FieldSpec("webhooks/clientConfig/service", "MutatingWebhookConfiguration"),
        ],
    ),
    _ref(
        "ServiceAccount",
        "",
        [
            FieldSpec("subjects", "RoleBinding", _RBAC),
            FieldSpec("subjects", "ClusterRoleBinding", _RBAC),
            *_pod("serviceAccountName", "serviceAccount"),
        ],
    ),
    _ref("Role", _RBAC, [FieldSpec("roleRef", "RoleBinding", _RBAC)]),
    _ref(
        "ClusterRole",
        _RBAC,
        [
            FieldSpec("roleRef", "RoleBinding", _RBAC),
            FieldSpec("roleRef", "ClusterRoleBinding", _RBAC),
        ],
    ),
    _ref("PersistentVolumeClaim", "", _pod("volumes/persistentVolumeClaim/claimName")),
    _ref("PersistentVolume", "", [FieldSpec("spec/volumeName", "PersistentVolumeClaim")]),
    _ref(
        "StorageClass",
        "storage.k8s.io",
        [
            FieldSpec("spec/storageClassName", "PersistentVolumeClaim"),
            FieldSpec("spec/storageClassName", "PersistentVolume"),
            FieldSpec("spec/volumeClaimTemplates/spec/storageClassName", "StatefulSet"),
        ],
    ),
    _ref("PriorityClass", "scheduling.k8s.io", _pod("priorityClassName")),
    *(
        _ref(kind, None, [FieldSpec("spec/scaleTargetRef/name", "HorizontalPodAutoscaler")])
        for kind in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")
    ),
    _ref("IngressClass", "networking.k8s.io", [FieldSpec("spec/ingressClassName", "Ingress")]),
)

_NAMESPACED_REFS = {"subjects", "service"}
"""Map-valued references that carry the referred object's namespace."""


def _same_namespace(a: str, b: str) -> bool:
    return (a or "default") == (b or "default")


_Renamed = dict[tuple[str, str], list[tuple[Resource, ResId]]]
"""(kind, a former name) -> the renamed objects that had it, with their current id."""


def _renamed(resmap: ResMap) -> _Renamed:
    """Every renamed object by kind and former name, in resmap order. Fixing references
    changes no object's id, so this is computed once per build: looking a reference up
    costs the objects that once had its name, not every object."""
    index: _Renamed = {}
    for candidate in resmap:
        if not candidate.previous:
            continue
        rid = candidate.cur_id()
        for name in dict.fromkeys(i.name for i in candidate.previous):
            index.setdefault((rid.kind, name), []).append((candidate, rid))
    return index


def _candidates(
    renamed: _Renamed,
    ref: Reference,
    referrer: Resource,
    name: str,
    node: dict[str, Any] | None,
    key: str,
) -> list[Resource]:
    found: list[Resource] = []
    for candidate, rid in renamed.get((ref.kind, name), ()):
        if rid.kind != ref.kind or (ref.group is not None and rid.group != ref.group):
            continue
        if node is not None and key == "roleRef" and node.get("kind") not in (None, ref.kind):
            continue
        history = [i for i in candidate.previous if i.name == name]
        if not history:
            continue
        if is_cluster_scoped(ref.kind):
            found.append(candidate)
            continue
        if node is not None and key in _NAMESPACED_REFS and "namespace" in node:
            if any(_same_namespace(i.namespace, str(node["namespace"] or "")) for i in history):
                found.append(candidate)
        elif is_cluster_scoped(referrer.kind) or _same_namespace(rid.namespace, referrer.namespace):
            found.append(candidate)
    return found


def fix_references(resmap: ResMap, file: str) -> None:
    """Rewrite reference fields to the final names of renamed objects."""
    renamed = _renamed(resmap)
    if not renamed:
        return
    for referrer in resmap:
        rid = referrer.cur_id()
        for ref in REFERENCES:
            for spec in ref.specs:
                if not spec.selects(rid):
                    continue

                walk(referrer.obj, spec.path, False, _leaf(renamed, ref, referrer, file))


def _leaf(renamed: _Renamed, ref: Reference, referrer: Resource, file: str) -> Leaf:
    def leaf(parent: dict[str, Any], key: str) -> None:
        value = parent.get(key)
        if isinstance(value, str):
            target = _choose(renamed, ref, referrer, value, None, key, file)
            if target is not None:
                parent[key] = target.name
        elif isinstance(value, dict):
            _fix_map(renamed, ref, referrer, value, key, file)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _fix_map(renamed, ref, referrer, item, key, file)

    return leaf


def _fix_map(
    renamed: _Renamed,
    ref: Reference,
    referrer: Resource,
    node: dict[str, Any],
    key: str,
    file: str,
) -> None:
    name = node.get("name")
    if not isinstance(name, str):
        return
    target = _choose(renamed, ref, referrer, name, node, key, file)
    if target is None:
        return
    node["name"] = target.name
    if key in _NAMESPACED_REFS and target.namespace:
        node["namespace"] = target.namespace


def _choose(
    renamed: _Renamed,
    ref: Reference,
    referrer: Resource,
    name: str,
    node: dict[str, Any] | None,
    key: str,
    file: str,
) -> Resource | None:
    found = _candidates(renamed, ref, referrer, name, node, key)
    if not found:
        return None
    if len({c.name for c in found}) == 1:
        return found[0]
    raise BuildError(
        f"{referrer.cur_id()} ({referrer.origin}) refers to {ref.kind} {name!r}, which matches several "
        f"renamed objects: {', '.join(str(c.cur_id()) for c in found)}",
        file=file,
    )
