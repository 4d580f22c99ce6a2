"""Kustomize (v5 semantics) for the build step: ``kubectl kustomize`` without the binary.

Called by the reconciler's build step for a directory holding a kustomization file.
:func:`is_kustomization` tells whether a directory is one; :func:`build_kustomization`
returns its objects as :class:`~gitops.manifest.Manifest` in kustomize's output order,
each with the origin of the file it was read from (generated objects name the
kustomization). Every problem is a :class:`~gitops.errors.BuildError` naming the
kustomization file and field. Supported: resources/bases/components, namespace,
namePrefix/nameSuffix with name reference fix-up, commonLabels/labels,
commonAnnotations, images, replicas, patches (strategic merge and JSON 6902),
patchesStrategicMerge, patchesJson6902, configMap/secret generators with hash
suffixes, generatorOptions and sortOptions. Other kustomize fields are refused.
"""

from __future__ import annotations

from pathlib import Path

from gitops.build.kustomize.builder import build
from gitops.build.kustomize.kustomization import KUSTOMIZATION_FILES, find_kustomization_file
from gitops.manifest import Manifest

__all__ = ["KUSTOMIZATION_FILES", "build_kustomization", "is_kustomization"]


def is_kustomization(directory: Path) -> bool:
    """True when ``directory`` holds kustomization.yaml, kustomization.yml or Kustomization."""
    return find_kustomization_file(directory) is not None


def build_kustomization(root: Path, directory: Path) -> list[Manifest]:
    """Build the kustomization in ``directory`` of the checkout at ``root``."""
    return [Manifest(resource.obj, resource.origin) for resource in build(root, directory)]
