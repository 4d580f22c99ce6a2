"""Which StorageClass is the cluster's default — shared by the API server's
DefaultStorageClass admission (a new PersistentVolumeClaim without a class gets the
default one) and the volume binder's retroactive assignment of the default class.

Kubernetes' rule (GetDefaultClass): a class is a default when its annotation
``storageclass.kubernetes.io/is-default-class`` (or the beta one) is ``"true"``; of
several defaults the newest wins, ties broken by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
#: A PVC's pre-GA way of naming its class (still honoured: such a claim has a class).
ANN_BETA_CLAIM_CLASS = "volume.beta.kubernetes.io/storage-class"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def is_default_class(sc: Mapping[str, Any]) -> bool:
    ann = _meta(sc).get("annotations") or {}
    return ann.get(ANN_DEFAULT_CLASS) == "true" or ann.get(ANN_BETA_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[Mapping[str, Any]]) -> str | None:
    """The default StorageClass's name: of several, the newest (then by name)."""
    defaults = [sc for sc in classes if is_default_class(sc)]
    if not defaults:
        return None
    defaults.sort(
        key=lambda sc: (str(_meta(sc).get("creationTimestamp") or ""), str(_meta(sc).get("name"))),
    )
    newest = str(_meta(defaults[-1]).get("creationTimestamp") or "")
    ties = [sc for sc in defaults if str(_meta(sc).get("creationTimestamp") or "") == newest]
    return str(_meta(ties[0]).get("name"))


def claim_needs_default(claim: Mapping[str, Any]) -> bool:
    """A claim that names no class (neither field nor beta annotation)."""
    spec = claim.get("spec") or {}
    annotations = _meta(claim).get("annotations") or {}
    return spec.get("storageClassName") is None and ANN_BETA_CLAIM_CLASS not in annotations
