"""YAML as Kubernetes reads it into JSON, within bounds: the one reader of YAML text
for both halves (the reconciler's build step reads manifests from Git with it, the API
server reads YAML request bodies with it).

The dialect is sigs.k8s.io/yaml's, which kubectl and kube-apiserver use: dates stay
strings, ``1:30`` and ``=`` are strings (no YAML 1.1 sexagesimal numbers), mapping keys
that are numbers or booleans become strings (``8080: x`` is ``"8080"``), a key repeated
in one mapping is an error; the result is always plain JSON: integers out of 64-bit
range, ``.inf``/``.nan``, null or collection keys and the ``!!binary``, ``!!set``,
``!!omap`` and ``!!pairs`` tags are errors with their line.

Each document is checked after it is composed and before it is constructed
(:func:`check_document`, no recursion): at most :data:`MAX_NESTING_DEPTH` levels, at
most :data:`MAX_YAML_ALIASES` aliases of collections, and go-yaml's alias-expansion
ratio (the rule kubectl adopted after CVE-2019-11253): a "billion laughs" document is
refused in microseconds, an anchor containing itself too. Every problem is a
:class:`YamlError` with the 1-based line it was found at.

Called by :mod:`gitops.build.documents` and :mod:`runtime.server.app`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError

MAX_NESTING_DEPTH = 128
"""Levels of collections in one document (a CRD embedding a CronJob's schema is ~34;
later steps recurse, and orjson stops at 255)."""
MAX_YAML_ALIASES = 10_000
"""Uses of an alias to a collection per document (an alias to a scalar adds one value
and is not counted)."""
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000
"""go-yaml's alias-ratio range: up to LOW decoded values 99% may come from aliases,
scaling down to 10% at HIGH and beyond."""


class YamlError(ValueError):
    """Text that is not YAML Kubernetes reads, or is beyond the bounds; ``line`` is
    1-based (None when unknown)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


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


def load_documents(text: str) -> list[tuple[Any, int]]:
    """Every non-empty document of ``text`` with its 1-based start line; raises
    :class:`YamlError` for a syntax error, a value nested too deep or a document whose
    aliases expand too much."""
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:  # a lone surrogate, only possible in inline text
        raise YamlError(f"not valid UTF-8 (character {exc.start})") from None
    documents: list[tuple[Any, int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            check_document(node)
            data = loader.construct_document(node)
            if data is not None:
                documents.append((data, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "maximum nesting depth" in problem:  # libyaml stops at 1,000 levels
            raise nested_too_deep(line) from None
        raise YamlError(f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None
    except RecursionError:  # the pure-Python composer, without libyaml
        raise nested_too_deep(None) from None
    finally:
        loader.dispose()
    return documents


_SATURATED = 10**15
"""Expanded sizes are counted up to here (far beyond any limit), keeping integers small."""


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's share of a document's values that may come from aliases."""
    if decoded <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * ((decoded - ALIAS_RATIO_RANGE_LOW) / span)


def _line(node: yaml.Node) -> int | None:
    mark = node.start_mark
    return mark.line + 1 if mark is not None else None


def nested_too_deep(line: int | None) -> YamlError:
    return YamlError(f"the value is nested deeper than {MAX_NESTING_DEPTH} levels", line)


def check_document(root: yaml.Node) -> None:
    """Refuse a composed YAML document that is too deep or expands too much by aliases.

    Runs before construction, without recursion: a collection reached a second time is
    an alias (the composer hands out the anchored node again), so expanded sizes and
    heights are memoised per node and an alias costs its expanded size without being
    walked again. Scalars are counted, not tracked: an alias to a scalar expands to one
    value, like the alias itself."""
    if isinstance(root, yaml.ScalarNode):
        return
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    entered: set[int] = set()
    edges = 0  # collection children, alias uses included
    scalars = 0  # scalars written in the document
    # (node, depth, None) to enter; (node, depth, (scalar children, collection children))
    # to finish once the collection children are done.
    stack: list[tuple[yaml.Node, int, tuple[int, list[yaml.Node]] | None]] = [(root, 1, None)]
    while stack:
        node, depth, walked = stack.pop()
        key = id(node)
        if walked is not None:
            total, tallest = 1 + walked[0], 0
            for child in walked[1]:
                total += size[id(child)]
                tallest = max(tallest, height[id(child)])
            size[key] = min(total, _SATURATED)
            height[key] = tallest + 1
            continue
        if key in size:  # an alias of a collection already walked
            if depth - 1 + height[key] > MAX_NESTING_DEPTH:
                raise nested_too_deep(_line(node))
            continue
        if key in entered:
            raise YamlError(
                "an anchored value contains itself through an alias: it would be infinite",
                _line(node),
            )
        entered.add(key)
        if depth > MAX_NESTING_DEPTH:
            raise nested_too_deep(_line(node))
        values = node.value
        children = values if isinstance(node, yaml.SequenceNode) else [n for p in values for n in p]
        collections = [child for child in children if not isinstance(child, yaml.ScalarNode)]
        written = len(children) - len(collections)
        scalars += written
        edges += len(collections)
        stack.append((node, depth, (written, collections)))
        stack.extend((child, depth + 1, None) for child in reversed(collections))
    aliases = edges - (len(entered) - 1)
    if aliases > MAX_YAML_ALIASES:
        raise YamlError(
            f"the document uses more than {MAX_YAML_ALIASES:,} aliases of collections",
            _line(root),
        )
    decoded = size[id(root)]
    written = len(entered) + scalars
    from_aliases = decoded - written
    if (
        from_aliases > 100
        and decoded > 1000
        and from_aliases / decoded > allowed_alias_ratio(decoded)
    ):
        shown = f"{decoded:,}" if decoded < _SATURATED else f"more than {_SATURATED:,}"
        raise YamlError(
            f"document contains excessive aliasing: its aliases expand {written:,} "
            f"written values to {shown}",
            _line(root),
        )


def depth_of(value: Any, limit: int | None = None) -> int:
    """How many collections deep ``value`` is (a scalar is 0), without recursion.

    With ``limit``, stops as soon as the depth is known to exceed it."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if limit is not None and deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest
