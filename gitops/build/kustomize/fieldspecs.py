"""Where transformers write: kustomize's field specs and a walker over object paths.

Used by :mod:`.transformers` and :mod:`.references`. A :class:`FieldSpec` selects objects
by group/version/kind (empty parts match anything) and names a slash-separated path;
lists met on the way are entered element by element (``containers[]`` and ``containers``
both work), and with ``create`` missing maps on the way are made. The tables hold the
built-in configuration kustomize ships (common labels with selectors, template labels,
annotations, replicas, namespace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.build.kustomize.resources import ResId

Leaf = Callable[[dict[str, Any], str], None]
"""Called with the parent map and the last key of a path."""


@dataclass(frozen=True)
class FieldSpec:
    path: str
    kind: str = ""
    group: str | None = None
    version: str = ""
    create: bool = False

    def selects(self, rid: ResId) -> bool:
        if self.kind and self.kind != rid.kind:
            return False
        if self.group is not None and self.group != rid.group:
            return False
        return not (self.version and self.version != rid.version)


def walk(node: Any, path: str, create: bool, leaf: Leaf) -> None:
    """Call ``leaf`` for every place ``path`` reaches in ``node``."""
    _walk(node, [s.removesuffix("[]") for s in path.split("/") if s], create, leaf)


def _walk(node: Any, segments: list[str], create: bool, leaf: Leaf) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, segments, create, leaf)
        return
    if not isinstance(node, dict) or not segments:
        return
    key = segments[0]
    if len(segments) == 1:
        leaf(node, key)
        return
    child = node.get(key)
    if child is None:
        if not create:
            return
        child = {}
        node[key] = child
    _walk(child, segments[1:], create, leaf)


def apply_specs(
    obj: dict[str, Any], specs: list[FieldSpec], leaf_for: Callable[[FieldSpec], Leaf]
) -> None:
    rid = ResId.of(obj)
    for spec in specs:
        if spec.selects(rid):
            walk(obj, spec.path, spec.create, leaf_for(spec))


_WORKLOAD_TEMPLATES: tuple[tuple[str, str | None, str], ...] = (
    ("ReplicationController", "", "spec/template"),
    ("Deployment", None, "spec/template"),
    ("ReplicaSet", None, "spec/template"),
    ("DaemonSet", None, "spec/template"),
    ("StatefulSet", "apps", "spec/template"),
    ("Job", "batch", "spec/template"),
    ("CronJob", "batch", "spec/jobTemplate/spec/template"),
)
"""Kinds with a pod template: kind, group (None: any) and the template's path."""

METADATA_LABELS = FieldSpec("metadata/labels", create=True)
METADATA_ANNOTATIONS = FieldSpec("metadata/annotations", create=True)

TEMPLATE_LABELS: list[FieldSpec] = [
    FieldSpec(f"{path}/metadata/labels", kind, group, create=True)
    for kind, group, path in _WORKLOAD_TEMPLATES
] + [
    FieldSpec("spec/jobTemplate/metadata/labels", "CronJob", "batch", create=True),
    FieldSpec("spec/volumeClaimTemplates[]/metadata/labels", "StatefulSet", "apps", create=True),
]

_AFFINITY = (
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
)

SELECTOR_LABELS: list[FieldSpec] = [
    FieldSpec("spec/selector", "ReplicationController", "", "v1", create=True),
    FieldSpec("spec/selector", "Service", "", "v1", create=True),
    FieldSpec("spec/selector/matchLabels", "Deployment", create=True),
    FieldSpec("spec/selector/matchLabels", "ReplicaSet", create=True),
    FieldSpec("spec/selector/matchLabels", "DaemonSet", create=True),
    FieldSpec("spec/selector/matchLabels", "StatefulSet", "apps", create=True),
    *(FieldSpec(path, "Deployment", "apps") for path in _AFFINITY),
    *(FieldSpec(path, "StatefulSet", "apps") for path in _AFFINITY),
    FieldSpec("spec/selector/matchLabels", "Job", "batch"),
    FieldSpec("spec/jobTemplate/spec/selector/matchLabels", "CronJob", "batch"),
    FieldSpec("spec/selector/matchLabels", "PodDisruptionBudget", "policy"),
    FieldSpec("spec/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
    FieldSpec("spec/ingress/from/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
    FieldSpec("spec/egress/to/podSelector/matchLabels", "NetworkPolicy", "networking.k8s.io"),
]

COMMON_LABELS: list[FieldSpec] = [METADATA_LABELS, *SELECTOR_LABELS, *TEMPLATE_LABELS]
"""``commonLabels`` and ``labels`` with ``includeSelectors``."""

LABELS_WITH_TEMPLATES: list[FieldSpec] = [METADATA_LABELS, *TEMPLATE_LABELS]
"""``labels`` with ``includeTemplates`` only."""

COMMON_ANNOTATIONS: list[FieldSpec] = [
    METADATA_ANNOTATIONS,
    *(
        FieldSpec(f"{path}/metadata/annotations", kind, group, create=True)
        for kind, group, path in _WORKLOAD_TEMPLATES
    ),
    FieldSpec("spec/jobTemplate/metadata/annotations", "CronJob", "batch", create=True),
]

REPLICAS: list[FieldSpec] = [
    FieldSpec("spec/replicas", kind, create=True)
    for kind in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")
]
