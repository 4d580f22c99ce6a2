"""Reading manifest files: YAML and JSON documents with the line each object starts at.

Every builder (plain directories, kustomize, helm output) reads files through
:func:`load_file` or :func:`load_text`, so every error and every object can name the file
and the line. The YAML dialect follows what ``kubectl`` accepts (sigs.k8s.io/yaml):
dates stay strings, a key repeated in one mapping is an error, empty documents are
skipped and ``List`` kinds (``v1/List``, ``*List``) are expanded into their items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gitops.errors import BuildError
from gitops.manifest import Manifest, Origin

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader without the timestamp resolver, refusing duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"mapping key {key!r} already defined at line {seen[key].start_mark.line + 1}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def parse_documents(text: str, file: str) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with its 1-based start line.

    Raises :class:`BuildError` naming ``file`` and the line of a syntax error."""
    loader = _Loader(text)
    documents: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is not None:
                documents.append((data, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise BuildError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise BuildError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
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
    return manifests


def load_file(path: Path, root: Path) -> list[Manifest]:
    """The objects in ``path``; origins and errors name it relative to ``root``."""
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BuildError("not a UTF-8 text file", file=name) from None
    except OSError as exc:
        raise BuildError(f"cannot read: {exc.strerror}", file=name) from None
    return load_text(text, name)
