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

import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from gitops.build import limits
from gitops.errors import BuildError
from gitops.manifest import Manifest, Origin

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_DROPPED_TAGS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
_INT_RANGE = (-(2**63), 2**64 - 1)
"""What a Kubernetes number can hold (int64; uint64 for the few unsigned fields)."""


def _resolver(tag: str, regexp: re.Pattern[str]) -> tuple[str, re.Pattern[str]]:
    if tag == _INT_TAG:
        return tag, _INT
    if tag == _FLOAT_TAG:
        return tag, _FLOAT
    return tag, regexp


def _error(node: yaml.Node, problem: str) -> ConstructorError:
    return ConstructorError(None, None, problem, node.start_mark)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader reading what kubectl reads and constructing plain JSON values."""

    yaml_implicit_resolvers = {
        first: [_resolver(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def json_key(self, key: Any, node: yaml.Node) -> str:
        """A mapping key as sigs.k8s.io/yaml turns it into a JSON member name."""
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, int):
            return str(key)
        if isinstance(key, float):
            return repr(key)
        if key is None:
            raise _error(node, "a mapping key must not be null (quote it)")
        raise _error(node, "a mapping key must be a string, a number or a boolean")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise _error(node, f"expected a mapping node, but found {node.id}")
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.json_key(self.construct_object(key_node, deep=True), key_node)
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"mapping key {key!r} already defined at line {seen[key].start_mark.line + 1}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.json_key(self.construct_object(key_node, deep=True), key_node)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if not _INT.match(text):  # an explicit !!int tag on anything, e.g. 1:30
            raise _error(node, f"{text[:40]!r} is not an integer (quote it to make a string)")
        out_of_range = "the integer is out of range: Kubernetes numbers are 64-bit"
        try:
            number = super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (4,300), or "0x_"
            raise _error(
                node, out_of_range if len(text) > 20 else f"{text!r} is not a valid integer"
            ) from None
        if not _INT_RANGE[0] <= number <= _INT_RANGE[1]:
            raise _error(node, out_of_range)
        return int(number)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = str(self.construct_scalar(node))
        if not (_FLOAT.match(text) or _INT.match(text)):
            raise _error(node, f"{text[:40]!r} is not a number (quote it to make a string)")
        number = float(super().construct_yaml_float(node))
        if not math.isfinite(number):
            raise _error(node, f"{text[:40]} is not a JSON number (Kubernetes cannot store it)")
        return number

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        text = str(self.construct_scalar(node))
        value = self.bool_values.get(text.lower())
        if value is None:
            raise _error(node, f"{text[:40]!r} is not a boolean (quote it to make a string)")
        return bool(value)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def construct_unsupported(self, node: yaml.Node) -> Any:
        raise _error(node, f"the YAML tag {node.tag} is not supported in Kubernetes manifests")


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.construct_unsupported)


def parse_documents(text: str, file: str) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with its 1-based start line.

    Raises :class:`BuildError` naming ``file`` and the line of a syntax error, of a
    value nested too deep, or of a document whose aliases expand too much."""
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:  # a lone surrogate, only possible in inline text
        raise BuildError(f"not valid UTF-8 (character {exc.start})", file=file) from None
    documents: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            limits.check_document(node, file)
            data = loader.construct_document(node)
            if data is not None:
                line = node.start_mark.line + 1
                documents.append((data, line))
                if len(documents) > limits.MAX_OBJECTS:
                    raise limits.too_many_objects(file, line)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "maximum nesting depth" in problem:  # libyaml stops at 1,000 levels
            raise limits.nested_too_deep(file, line) from None
        raise BuildError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise BuildError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:  # the pure-Python composer, without libyaml
        raise limits.nested_too_deep(file, None) from None
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
