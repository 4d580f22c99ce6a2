"""Facts of the downward API shared by admission (which validates fieldRefs) and the
kubelet (which resolves them): the pod fields a ``fieldRef`` can name, and the
``metadata.labels['key']`` subscript form."""

from __future__ import annotations

# What the downward API can convert at all (Kubernetes' ConvertDownwardAPIFieldLabel).
CONVERTIBLE_FIELD_PATHS = frozenset(
    {
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)


def split_subscript(field_path: str) -> tuple[str, str] | None:
    """``metadata.labels['app']`` -> ``("metadata.labels", "app")``; None otherwise."""
    if not field_path.endswith("']"):
        return None
    base, sep, subscript = field_path[:-2].partition("['")
    if not sep or not base:
        return None
    return base, subscript
