"""The build step: a directory of a checkout → validated objects with their origins.

The service and the CLI call :func:`build` with the checkout of a revision and the
Application's path; the planner then calls :func:`~gitops.build.validate.check_kinds`
with the destination's discovery. Which builder runs (``kind="auto"``):

1. a kustomization file in the directory → kustomize (:mod:`gitops.build.kustomize`);
2. else a ``Chart.yaml`` → ``helm template`` (:mod:`gitops.build.helm`);
3. else every manifest file under the directory (:mod:`gitops.build.plain`).

Any result passes :func:`~gitops.build.validate.validate`, so a build either returns
objects a cluster can be asked to apply or raises :class:`~gitops.errors.BuildError`
(several problems at once as :class:`~gitops.errors.BuildErrors`) naming file and line.
A path that leaves the checkout (``..``, a symbolic link pointing out) is refused.

Everything read is bounded by :mod:`gitops.build.limits` (file and build sizes, nesting,
YAML aliases, object count and size, kustomize depth): one budget spans the whole
build, and a limit that is hit fails the build like any invalid input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from gitops.build import limits
from gitops.build.helm import HelmOptions, build_helm
from gitops.build.plain import build_plain
from gitops.build.validate import check_kinds, validate
from gitops.errors import BuildError
from gitops.manifest import Manifest

BuildKind = Literal["auto", "plain", "kustomize", "helm"]

__all__ = [
    "BuildKind",
    "BuildOptions",
    "HelmOptions",
    "build",
    "check_kinds",
    "detect_kind",
    "limits",
    "resolve_directory",
]


@dataclass(frozen=True)
class BuildOptions:
    """How to build a path. ``exclude`` holds glob patterns relative to the path and
    applies to plain directories only (see :mod:`gitops.build.plain`)."""

    kind: BuildKind = "auto"
    helm: HelmOptions = field(default_factory=HelmOptions)
    exclude: tuple[str, ...] = ()


def resolve_directory(root: Path, path: str) -> tuple[Path, Path]:
    """The resolved checkout and the resolved directory ``path`` inside it.

    ``path`` is relative to ``root``; ``""`` and ``"."`` mean the root itself."""
    checkout = root.resolve()
    if not checkout.is_dir():
        raise BuildError(f"the checkout {root} is not a directory")
    clean = path.strip() or "."
    if PurePosixPath(clean).is_absolute():
        raise BuildError(f"path {path!r} must be relative to the repository root")
    directory = (checkout / clean).resolve()
    if not directory.is_relative_to(checkout):
        raise BuildError(f"path {path!r} leads outside the repository")
    if not directory.exists():
        raise BuildError(f"path {path!r} does not exist in the repository")
    if not directory.is_dir():
        raise BuildError(f"path {path!r} is not a directory", file=clean)
    return checkout, directory


def detect_kind(directory: Path) -> Literal["plain", "kustomize", "helm"]:
    """Which builder ``kind="auto"`` picks for ``directory``."""
    from gitops.build.kustomize import is_kustomization

    if is_kustomization(directory):
        return "kustomize"
    if (directory / "Chart.yaml").is_file():
        return "helm"
    return "plain"


def build(root: Path, path: str, options: BuildOptions = BuildOptions()) -> list[Manifest]:
    """The validated objects of directory ``path`` of the checkout ``root``."""
    checkout, directory = resolve_directory(root, path)
    kind = detect_kind(directory) if options.kind == "auto" else options.kind
    where = directory.relative_to(checkout).as_posix()
    if options.exclude and kind != "plain":
        raise BuildError(
            f"exclude patterns apply to plain directories only, and {where} is built with {kind}"
        )
    with limits.build_budget():
        if kind == "plain":
            manifests = build_plain(checkout, directory, options.exclude)
        elif kind == "helm":
            if not (directory / "Chart.yaml").is_file():
                raise BuildError(f"{where} is not a Helm chart: it has no Chart.yaml")
            manifests = build_helm(checkout, directory, options.helm)
        else:
            from gitops.build.kustomize import build_kustomization

            manifests = build_kustomization(checkout, directory)
    limits.check_objects(manifests)
    validate(manifests)
    return manifests
