"""Field paths and field sets, as sigs.k8s.io/structured-merge-diff models them.

Server-side apply (:mod:`runtime.api.ssa`) records which manager owns which field of an
object as a *field set*. This module is the set algebra and its wire format, with no
knowledge of schemas:

* A **path element** is a string in the serialised form Kubernetes uses inside
  ``managedFields[].fieldsV1``: ``f:<name>`` for a map field, ``k:{"name":"x"}`` for
  the element of an associative list (keys sorted by name, compact JSON), ``v:<json>``
  for the element of a set, ``i:<index>`` for a list position. Keeping elements as
  those strings makes them hashable and makes encoding cheap.
* A **field set** (:data:`FieldSet`) is a tree of plain dicts: each key is a path
  element, each value the subtree below it, and the key ``"."`` inside a subtree marks
  the path leading to it as a *member* of the set. A leaf member is ``{".": {}}``.
  The root itself is never a member (nobody owns "the whole object").
* :func:`encode` turns a set into the FieldsV1 JSON Kubernetes stores (leaf members
  as ``{}``, ``"."`` first, path elements in structured-merge-diff order) and
  :func:`decode` reads it back, validating and canonicalising client input.

The operations mirror ``fieldpath.Set``: :func:`union`, :func:`intersection`,
:func:`difference` (membership only; a parent minus a child keeps the parent) and
:func:`recursive_difference` (a member of the right-hand side takes its whole subtree
with it). They never mutate their arguments; results may share subtrees with them,
so nothing may mutate a set once it has been built.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeAlias

import orjson

FieldSet: TypeAlias = dict[str, "FieldSet"]
"""A field set tree: path element -> subtree; ``"."`` in a subtree marks membership."""

MEMBER = "."
_E: FieldSet = {}  # the value under "."; shared, never mutated

__all__ = [
    "MEMBER",
    "FieldSet",
    "decode",
    "difference",
    "encode",
    "field",
    "from_paths",
    "go_quote",
    "has",
    "index",
    "intersection",
    "is_empty",
    "iterate",
    "key",
    "leaf",
    "parse",
    "path_string",
    "recursive_difference",
    "sort_key",
    "to_json",
    "union",
    "value",
]


# --- JSON as Go's encoding/json (and jsoniter's standard-library mode) writes it ------
_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@lru_cache(maxsize=16384)
def _json_str(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    if any(c in out for c in "<>&\u2028\u2029"):
        out = "".join(_HTML_ESCAPES.get(c, c) for c in out)
    return out


def _go_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"unsupported value: {f!r}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        # Python's repr uses the exponent form here too, with the same shortest digits;
        # Go then trims a leading zero from negative two-digit exponents (e-07 -> e-7).
        mantissa, exp = repr(f).split("e")
        if exp.startswith("-0"):
            exp = "-" + exp[2:]
        return f"{mantissa}e{exp}"
    if f.is_integer():
        return str(int(f))
    text = repr(f)
    if "e" in text:  # small magnitudes repr() writes with an exponent
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text


def to_json(v: Any) -> str:
    """Compact JSON of a value, byte for byte as Go's encoding/json writes it
    (map keys sorted, ``<``, ``>``, ``&`` escaped, integral floats without ``.0``).
    Values JSON has no type for are written as their string form."""
    if isinstance(v, str):
        return _json_str(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_json_str(str(k)) + ":" + to_json(v[k]) for k in sorted(v)) + "}"
    return _json_str(str(v))  # e.g. a date YAML parsed: JSON would carry it as a string


def go_quote(v: Any) -> str:
    """A value as structured-merge-diff's ``value.ToString`` prints it in paths."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (int, float)):
        return _go_float(v) if isinstance(v, float) else str(v)
    if isinstance(v, list):
        return "[" + ",".join(go_quote(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={go_quote(x)}" for k, x in v.items())
    return str(v)


# --- path elements ---------------------------------------------------------------------
def field(name: str) -> str:
    """The path element of map field ``name``."""
    return "f:" + name


def index(i: int) -> str:
    """The path element of list position ``i`` (atomic lists)."""
    return "i:" + str(i)


def value(v: Any) -> str:
    """The path element of set element ``v``."""
    return "v:" + to_json(v)


def key(fields: Iterable[tuple[str, Any]]) -> str:
    """The path element of an associative-list element with these key fields."""
    ordered = sorted(fields, key=lambda kv: kv[0])
    return "k:{" + ",".join(_json_str(n) + ":" + to_json(v) for n, v in ordered) + "}"


def parse(pe: str) -> tuple[str, Any]:
    """Split a path element into its kind (``f``, ``k``, ``v``, ``i``) and content.

    ``k`` gives a dict of key fields, ``v`` the element's value, ``i`` an int.
    Raises ValueError on malformed input and KeyError on an unknown kind."""
    if len(pe) < 2 or pe[1] != ":":
        raise ValueError(f"invalid path element {pe!r}: missing colon")
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return kind, body
    if kind == "i":
        return kind, int(body)
    if kind == "v":
        try:
            return kind, orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"invalid path element {pe!r}: {e}") from None
    if kind == "k":
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"invalid path element {pe!r}: {e}") from None
        if not isinstance(fields, dict):
            raise ValueError(f"invalid path element {pe!r}: key must be an object")
        return kind, fields
    raise KeyError(kind)


def _value_key(v: Any) -> tuple[Any, ...]:
    # structured-merge-diff's total order: numbers < strings < bools < lists < maps < null
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_key(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, _value_key(v[k])) for k in sorted(v)))
    return (5,)


@lru_cache(maxsize=65536)
def sort_key(pe: str) -> tuple[Any, ...]:
    """Order of path elements: ``.`` first, then fields by name, keys, values, indexes."""
    if pe == MEMBER:
        return (-1,)
    kind, body = parse(pe)
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((n, _value_key(body[n])) for n in sorted(body)))
    if kind == "v":
        return (2, _value_key(body))
    return (3, body)


def _ordered(keys: list[str]) -> list[str]:
    if len(keys) < 2:
        return keys
    if all(k.startswith("f:") for k in keys):
        return sorted(keys)  # same prefix: plain string order is field-name order
    return sorted(keys, key=sort_key)


def path_string(path: Sequence[str]) -> str:
    """A path as Kubernetes prints it in conflicts: ``.spec.containers[name="x"].image``."""
    out: list[str] = []
    for pe in path:
        try:
            kind, body = parse(pe)
        except (ValueError, KeyError):
            out.append("{{invalid path element}}")
            continue
        if kind == "f":
            out.append("." + body)
        elif kind == "k":
            out.append("[" + ",".join(f"{n}={go_quote(body[n])}" for n in body) + "]")
        elif kind == "v":
            out.append("[=" + go_quote(body) + "]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


# --- sets --------------------------------------------------------------------------------
def leaf() -> FieldSet:
    """A fresh subtree for a member with no children."""
    return {MEMBER: _E}


def is_empty(s: FieldSet) -> bool:
    return not s


def from_paths(paths: Iterable[Sequence[str]]) -> FieldSet:
    """A set with the given paths (tuples of path elements) as members."""
    root: FieldSet = {}
    for path in paths:
        if not path:
            continue
        node = root
        for pe in path:
            child = node.get(pe)
            if child is None:
                child = {}
                node[pe] = child
            node = child
        node[MEMBER] = _E
    return root


def has(s: FieldSet, path: Sequence[str]) -> bool:
    """True when ``path`` is a member of ``s``."""
    node = s
    for pe in path:
        child = node.get(pe)
        if child is None:
            return False
        node = child
    return bool(path) and MEMBER in node


def union(a: FieldSet, b: FieldSet) -> FieldSet:
    if not b or a is b:
        return a
    if not a:
        return b
    out = dict(a)
    for k, bc in b.items():
        ac = out.get(k)
        if ac is None or k == MEMBER:
            out[k] = bc
        elif ac is not bc:
            out[k] = union(ac, bc)
    return out


def intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    if len(b) < len(a):
        a, b = b, a  # walk the smaller side; the operation is symmetric
    out: FieldSet = {}
    for k, ac in a.items():
        bc = b.get(k)
        if bc is None:
            continue
        if k == MEMBER:
            out[k] = _E
        else:
            r = intersection(ac, bc)
            if r:
                out[k] = r
    return out


def difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """Members of ``a`` that are not members of ``b`` (a parent minus a child is the parent)."""
    if not b or not a:
        return a
    out: FieldSet = {}
    for k, ac in a.items():
        bc = b.get(k)
        if bc is None:
            out[k] = ac
        elif k != MEMBER:
            r = difference(ac, bc)
            if r:
                out[k] = r
    return out


def recursive_difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """``a`` without the members of ``b`` and everything below them."""
    if not b or not a:
        return a
    out: FieldSet = {}
    for k, ac in a.items():
        bc = b.get(k)
        if bc is None:
            out[k] = ac
        elif k == MEMBER or MEMBER in bc:
            continue
        else:
            r = recursive_difference(ac, bc)
            if r:
                out[k] = r
    return out


def iterate(s: FieldSet) -> Iterator[tuple[str, ...]]:
    """Members in structured-merge-diff's order: a node's own members (sorted), then
    the members below each child (sorted), depth first."""
    yield from _iterate(s, ())


def _iterate(s: FieldSet, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    keys = _ordered([k for k in s if k != MEMBER])
    for k in keys:
        if MEMBER in s[k]:
            yield (*prefix, k)
    for k in keys:
        child = s[k]
        if len(child) > (1 if MEMBER in child else 0):
            yield from _iterate(child, (*prefix, k))


# --- FieldsV1 ------------------------------------------------------------------------------
def encode(s: FieldSet) -> dict[str, Any]:
    """The FieldsV1 JSON object of a set, ordered as Kubernetes serialises it."""
    out: dict[str, Any] = {}
    for k in _ordered([k for k in s if k != MEMBER]):
        out[k] = _encode_node(s[k])
    return out


def _encode_node(node: FieldSet) -> dict[str, Any]:
    keys = [k for k in node if k != MEMBER]
    if not keys:
        return {}
    out: dict[str, Any] = {MEMBER: {}} if MEMBER in node else {}
    for k in _ordered(keys):
        out[k] = _encode_node(node[k])
    return out


@lru_cache(maxsize=65536)
def _canonical(pe: str) -> str | None:
    """The canonical spelling of a path element, None for unknown kinds (ignored, as
    Kubernetes ignores them). Raises ValueError when malformed."""
    try:
        kind, body = parse(pe)
    except KeyError:
        return None
    if kind == "f":
        return pe
    if kind == "i":
        return index(body)
    if kind == "v":
        return value(body)
    return key(body.items())


def decode(fields_v1: Any) -> FieldSet:
    """Read a FieldsV1 JSON object (as stored in ``managedFields``) into a set.

    Raises ValueError when it is not a valid FieldsV1 tree."""
    if fields_v1 is None:
        return {}
    if not isinstance(fields_v1, dict):
        raise ValueError("fieldsV1 must be an object")
    node = _decode_node(fields_v1)
    node.pop(MEMBER, None)  # the root is never a member
    return node


def _decode_node(obj: dict[str, Any]) -> FieldSet:
    out: FieldSet = {}
    for k, v in obj.items():
        if k == MEMBER:
            out[MEMBER] = _E
            continue
        pe = _canonical(k)
        if pe is None:
            continue
        if not isinstance(v, dict):
            raise ValueError(f"value of {k!r} must be an object")
        child = _decode_node(v) if v else {MEMBER: _E}
        prev = out.get(pe)
        out[pe] = child if prev is None else union(prev, child)
    if not out:
        out[MEMBER] = _E
    return out


# --- timestamps ----------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def unix_seconds(timestamp: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp; 0 when missing or unreadable."""
    if not timestamp:
        return 0
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
