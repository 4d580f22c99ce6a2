"""Resolving paths named in a kustomization, with kustomize's load restrictions.

Used by :mod:`.builder`, :mod:`.generators` and :mod:`.patches`. Files (resources,
patches, generator sources) must lie in or below the kustomization's directory, as
kustomize's default ``LoadRestrictionsRootOnly`` demands; directories (bases,
components) may be anywhere inside the repository, never outside it; remote URLs are
refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from gitops.build.kustomize.kustomization import Kustomization, relative
from gitops.errors import BuildError

_REMOTE = re.compile(r"^(https?://|git::|git@|ssh://|github\.com/|gitlab\.com/|bitbucket\.org/)")

ErrorFactory = Callable[[str], BuildError]


def is_remote(entry: str) -> bool:
    return bool(_REMOTE.match(entry)) or "?ref=" in entry


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def resolve_path(k: Kustomization, entry: str, root: Path, error: ErrorFactory) -> Path:
    """``entry`` relative to the kustomization directory; inside ``root``; must exist."""
    if is_remote(entry):
        raise error(f"remote resource {entry!r} is not supported (only paths in the repository)")
    path = (k.directory / entry).resolve()
    if not _inside(path, root.resolve()):
        raise error(f"{entry!r} is outside the repository root")
    if not path.exists():
        raise error(f"{entry!r} does not exist ({relative(path, root.resolve())})")
    return path


def resolve_file(k: Kustomization, entry: str, root: Path, error: ErrorFactory) -> Path:
    """A file ``entry``, which must lie in or below the kustomization directory."""
    path = resolve_path(k, entry, root, error)
    if not _inside(path, k.directory.resolve()):
        raise error(
            f"security: file {entry!r} is not in or below the kustomization directory "
            f"'{relative(k.directory.resolve(), root.resolve())}'"
        )
    if not path.is_file():
        raise error(f"{entry!r} is not a file")
    return path
