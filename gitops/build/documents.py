"""Reading manifest files: YAML and JSON documents with the line each object starts at.

Every builder (plain directories, kustomize, helm output) reads files through
:func:`load_file` or :func:`load_text`, so every error and every object can name the file
and the line. The YAML dialect follows what ``kubectl`` accepts (sigs.k8s.io/yaml):
dates stay strings, ``1:30`` and ``=`` are strings (no YAML 1.1 sexagesimal numbers),
mapping keys that are numbers or booleans become strings (``8080: x`` is ``"8080"``), a
key repeated in one mapping is an error, empty documents are skipped and ``List`` kinds
(``v1/List``, ``*List``) are expanded into their items.

The result is always plain JSON (what the planner sends): integers out of 64-bit range,
``.inf``/``.nan``, null or collection keys and the ``!!binary``, ``!!set``, ``!!omap``
and ``!!pairs`` tags are errors with their line. Files are read within the limits of
:mod:`gitops.build.limits` and each document is checked (nesting depth, alias expansion)
after it is composed and before it is constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops.build import limits
from gitops.errors import BuildError
from gitops.manifest import Manifest, Origin
from kubemodel.yamljson import YamlError, load_documents


def parse_documents(text: str, file: str) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with its 1-based start line
    (:func:`kubemodel.yamljson.load_documents`, within the build's object limit).

    Raises :class:`BuildError` naming ``file`` and the line of a syntax error, of a
    value nested too deep, or of a document whose aliases expand too much."""
    try:
        documents = load_documents(text)
    except YamlError as exc:
        raise BuildError(exc.message, file=file, line=exc.line) from None
    if len(documents) > limits.MAX_OBJECTS:
        raise limits.too_many_objects(file, documents[limits.MAX_OBJECTS][1])
    return documents


def _is_list(data: dict[str, Any]) -> bool:
    kind = data.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list)


def load_text(text: str, file: str) -> list[Manifest]:
    """The objects in one file's text (``file`` is the name errors and origins use)."""
    manifests: list[Manifest] = []
    for data, line in parse_documents(text, file):
        if not isinstance(data, dict):
            raise BuildError(
                f"a document must be a mapping (an object), not {type(data).__name__}",
                file=file,
                line=line,
            )
        if _is_list(data):
            for index, item in enumerate(data["items"]):
                if not isinstance(item, dict):
                    raise BuildError(
                        f"items[{index}] of a {data['kind']} is not an object", file=file, line=line
                    )
                manifests.append(Manifest(item, Origin(file, line)))
        else:
            manifests.append(Manifest(data, Origin(file, line)))
    if manifests:
        limits.current_budget().charge_objects(len(manifests), file, manifests[-1].origin.line)
    return manifests


def load_file(path: Path, root: Path) -> list[Manifest]:
    """The objects in ``path``; origins and errors name it relative to ``root``."""
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.as_posix()
    return load_text(limits.read_text(path, name), name)
