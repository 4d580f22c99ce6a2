"""A desired object as the build produced it, with where it came from.

The build step turns a checkout into a list of :class:`Manifest`; the plan, apply, prune
and report steps key everything by :class:`ObjectKey`. ``origin`` lets every error and
report name the file and line an object was written at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubemodel.names import PREFIX

APP_LABEL = f"{PREFIX}/app"
"""Label on every applied object: the Application that owns it."""
PRUNE_ANNOTATION = f"{PREFIX}/prune"
"""``disabled`` on an object: never prune it (it is left in place when it leaves Git)."""
SYNC_WAVE_ANNOTATION = f"{PREFIX}/sync-wave"
"""An integer: objects of lower waves are applied (and healthy) before higher waves."""
ARGO_SYNC_WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
"""Argo CD's wave annotation, honoured too so repositories written for it keep their order."""


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of an object in a cluster: API group, kind, namespace ('' if cluster-scoped), name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectKey:
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        meta = obj.get("metadata") or {}
        return cls(
            group,
            str(obj.get("kind") or ""),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
        )

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind}/{self.namespace}/{self.name}" if self.namespace else f"{kind}/{self.name}"


@dataclass(frozen=True)
class Origin:
    """Where an object was written: file relative to the repository root, 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass
class Manifest:
    """One desired object (a plain JSON-like dict) and its origin."""

    obj: dict[str, Any]
    origin: Origin = field(default_factory=lambda: Origin("<unknown>"))

    @property
    def key(self) -> ObjectKey:
        return ObjectKey.of(self.obj)

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")
