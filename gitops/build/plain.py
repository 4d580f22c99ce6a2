"""Plain directories: every manifest file under a path, in a stable order.

Called by :func:`gitops.build.build` for a directory that is neither a kustomization nor
a Helm chart. The rules:

* Every file ending in ``.yaml``, ``.yml`` or ``.json`` under the directory is read,
  recursively, in the order of its path relative to the directory, compared bytewise
  (``a/x.yaml`` < ``b.yaml`` because ``a/`` < ``b.``); each file may hold several
  documents and ``List`` kinds, and empty documents are skipped.
* Hidden files and directories (name starting with ``.``, e.g. ``.github/``) are skipped.
* Files named ``kustomization.yaml``, ``kustomization.yml`` or ``Kustomization`` are
  skipped: they configure kustomize and are not objects. (A directory with one at its
  top is built with kustomize instead, see :func:`gitops.build.build`.)
* ``exclude`` patterns are shell globs matched against the path relative to the
  directory, where ``*`` also matches ``/``; a pattern matching a directory excludes
  everything below it (``tests``, ``*.json``, ``charts/*``).
* Symbolic links to directories are not followed; a symbolic link to a file is read when
  its target stays inside the repository and is an error otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from gitops.build.documents import load_file
from gitops.build.kustomize import KUSTOMIZATION_FILES
from gitops.errors import BuildError
from gitops.manifest import Manifest

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def excluded(relative: str, patterns: Sequence[str]) -> bool:
    """Whether the posix path ``relative`` (or a directory above it) matches a pattern."""
    if not patterns:
        return False
    parts = PurePosixPath(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    cleaned = [p.removeprefix("./").strip("/") for p in patterns]
    return any(fnmatchcase(c, p) for c in candidates for p in cleaned)


def manifest_files(directory: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """The manifest files under ``directory`` in build order (see the module docstring)."""
    found: list[tuple[bytes, Path]] = []
    for current, dirs, files in os.walk(directory):
        base = Path(current)
        rel_dir = base.relative_to(directory).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and not (base / d).is_symlink()
            and not excluded(prefix + d, exclude)
        ]
        for name in files:
            if name.startswith(".") or name in KUSTOMIZATION_FILES:
                continue
            if not name.endswith(MANIFEST_SUFFIXES):
                continue
            relative = prefix + name
            if excluded(relative, exclude):
                continue
            found.append((relative.encode("utf-8", "surrogateescape"), base / name))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def build_plain(root: Path, directory: Path, exclude: Sequence[str] = ()) -> list[Manifest]:
    """The objects of every manifest file under ``directory`` (origins relative to ``root``).

    ``root`` and ``directory`` must already be resolved (no symbolic links)."""
    manifests: list[Manifest] = []
    for path in manifest_files(directory, exclude):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise BuildError(
                    "is a symbolic link to a file outside the repository",
                    file=path.relative_to(root).as_posix(),
                )
            if not target.is_file():
                raise BuildError(
                    "is a symbolic link to a missing file", file=path.relative_to(root).as_posix()
                )
        manifests.extend(load_file(path, root))
    return manifests
