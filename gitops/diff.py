"""The pure comparison step of the planner: what differs between the cluster and Git.

:mod:`gitops.plan` calls these functions for every desired object once it has

* ``desired`` — the manifest as the build produced it,
* ``dry`` — a server-side apply dry-run of it with our field manager
  (:data:`kubemodel.names.FIELD_MANAGER`): the object as it would be after applying,
  with server defaults and every other manager's fields, and
* ``live`` — the object as it is in the cluster (or None).

and gets back plain data: :func:`field_diff` gives the fields that applying would change
(hand edits of fields we own show up here), :func:`manual_additions` the fields a *human*
added that Git does not have (``kubectl label``, ``kubectl edit``, ``kubectl patch``…:
managers whose name starts with one of :attr:`DiffOptions.manual_managers`), and
:func:`removal_patch` the RFC 6902 patch that removes those on self-heal. Fields of other
managers (controllers, the HPA, the kubelet) are never drift. :func:`respect_ignored`
makes the desired object agree with the ignore rules before it is applied.

Nothing here talks to a cluster; the functions never mutate their arguments.

Paths come in three spellings:

* **concrete paths** (:data:`Path`): tuples of map keys and list indexes into one object;
* **display paths**, as :class:`gitops.changeset.FieldChange` carries them:
  ``spec.template.spec.containers[name=web].image``, ``metadata.labels["a.b/c"]``, list
  items by their keys (``[containerPort=80,protocol="TCP"]`` — key fields in name order)
  or by index (``[2]``); the spelling :func:`gitops.config.parse_field_path` reads;
* **JSON pointers** (RFC 6901) for :class:`ManualField` and patches, list items by index.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeAlias

from gitops.changeset import FieldChange, masked
from gitops.config import IgnoreDifference
from gitops.manifest import ObjectKey
from kubemodel import fieldpath
from kubemodel.fieldpath import MEMBER, FieldSet
from kubemodel.names import FIELD_MANAGER
from kubemodel.schema import (
    Node,
    Schemas,
    builtin,
    list_map_keys,
    list_type,
    patch_merge_key,
    patch_strategies,
)

__all__ = [
    "DiffOptions",
    "ManualField",
    "Path",
    "field_diff",
    "ignored_paths",
    "manual_additions",
    "normalise",
    "removal_patch",
    "respect_ignored",
]

Path: TypeAlias = tuple[str | int, ...]
"""A concrete path into one object: map keys and list indexes."""

_Step: TypeAlias = tuple[str, Any]
"""One step of a selector: ``("f", name)``, ``("k", {key fields})``, ``("v", value)``,
``("i", index)`` as :func:`kubemodel.fieldpath.parse` gives them, or ``("t", token)`` for
a JSON pointer token (a map key, or a list index when it lands on a list)."""
_Selector: TypeAlias = tuple[_Step, ...]

_MISSING: Any = object()


@dataclass(frozen=True)
class DiffOptions:
    """What the comparison leaves out and whose additions count as drift."""

    ignore: Sequence[IgnoreDifference] = ()
    """The Application's ``ignoreDifferences``; rules not matching the object are skipped."""
    extra_ignore_pointers: Sequence[str] = ()
    """JSON pointers ignored on every object compared (e.g. ``/spec/replicas`` of an
    HPA-targeted workload; the planner computes them per object)."""
    manual_managers: Sequence[str] = ("kubectl",)
    """Prefixes of field manager names whose additions are drift (people, not controllers)."""
    own_manager: str = FIELD_MANAGER
    """Our field manager: never manual, and what it owns is never a manual addition."""


@dataclass(frozen=True)
class ManualField:
    """A field a person added to the live object that Git does not set."""

    path: str
    """Display form, as :class:`FieldChange` paths (``metadata.labels.team``)."""
    pointer: str
    """RFC 6901 pointer into the live object (list items by current index)."""
    manager: str
    value: Any
    """The live value (masked under ``data``/``stringData`` of a Secret)."""


# =========================================================================================
# normalise
# =========================================================================================
_SERVER_METADATA = (
    "managedFields",  # who owns what: bookkeeping, compared by manual_additions instead
    "resourceVersion",  # changes on every write
    "uid",  # assigned at creation
    "generation",  # bumped by the server on spec changes
    "creationTimestamp",  # assigned at creation
    "selfLink",  # deprecated, server-written
    "deletionTimestamp",  # only while terminating: lifecycle, not configuration
    "deletionGracePeriodSeconds",  # set together with deletionTimestamp
)
_NOISE_ANNOTATIONS = (
    # kubectl's client-side apply bookkeeping: a copy of the last applied object
    "kubectl.kubernetes.io/last-applied-configuration",
    # the Deployment controller's rollout counter
    "deployment.kubernetes.io/revision",
)


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` without what the server writes and Git never sets.

    Removed: ``status`` (written by controllers through the status subresource);
    ``metadata`` fields ``managedFields``, ``resourceVersion``, ``uid``, ``generation``,
    ``creationTimestamp``, ``selfLink`` (server bookkeeping), ``deletionTimestamp`` and
    ``deletionGracePeriodSeconds`` (present only while an object terminates); the
    annotations ``kubectl.kubernetes.io/last-applied-configuration`` (kubectl's
    client-side bookkeeping) and ``deployment.kubernetes.io/revision`` (the Deployment
    controller's counter); ``metadata.annotations`` itself when nothing else is left in it.
    List items are never removed, so list indexes of ``obj`` stay valid in the result.
    """
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for name in _SERVER_METADATA:
            meta.pop(name, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for name in _NOISE_ANNOTATIONS:
                annotations.pop(name, None)
            if not annotations:
                del meta["annotations"]
    return out


def _is_secret(obj: dict[str, Any]) -> bool:
    key = ObjectKey.of(obj)
    return key.group == "" and key.kind == "Secret"


def _mask_secret(obj: dict[str, Any]) -> None:
    """Replace every value under ``data`` and ``stringData`` with its masked stand-in."""
    for top in ("data", "stringData"):
        values = obj.get(top)
        if isinstance(values, dict):
            obj[top] = {k: masked(v) for k, v in values.items()}
        elif values is not None:
            obj[top] = masked(values)


# =========================================================================================
# concrete paths and selectors
# =========================================================================================
def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``, maps regardless of key order."""
    return a is b or fieldpath.to_json(a) == fieldpath.to_json(b)


def _get(obj: Any, path: Path) -> Any:
    node = obj
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or not 0 <= part < len(node):
                return _MISSING
        elif not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(obj: Any, path: Path, value: Any) -> None:
    parent = _get(obj, path[:-1])
    parent[path[-1]] = value


def _order(path: Path) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in path)


def _delete_all(obj: Any, paths: Sequence[Path]) -> None:
    """Delete ``paths`` from ``obj`` (in place): deeper paths and higher indexes first, so
    every path still names what it named before; paths below another one are skipped."""
    for path in _outermost(sorted(set(paths), key=_order, reverse=True)):
        if not path:
            continue
        parent, last = _get(obj, path[:-1]), path[-1]
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """``paths`` (order kept) without those that lie below another one of them."""
    chosen = set(paths)
    return [p for p in paths if not any(p[:n] in chosen for n in range(len(p)))]


def _list_index(items: list[Any], kind: str, body: Any) -> int | None:
    if kind == "i":
        return body if isinstance(body, int) and 0 <= body < len(items) else None
    if kind == "t":
        if isinstance(body, str) and body.isascii() and body.isdigit():
            i = int(body)
            return i if i < len(items) else None
        return None
    if kind == "k":
        for i, item in enumerate(items):
            if isinstance(item, dict) and all(
                k in item and _same(item[k], v) for k, v in body.items()
            ):
                return i
        return None
    if kind == "v":
        return next((i for i, item in enumerate(items) if _same(item, body)), None)
    return None


def _resolve(obj: Any, steps: _Selector) -> Path | None:
    """The concrete path ``steps`` name in ``obj``, or None when it does not exist."""
    node = obj
    path: list[str | int] = []
    for kind, body in steps:
        if isinstance(node, dict):
            if kind not in ("f", "t") or not isinstance(body, str) or body not in node:
                return None
            path.append(body)
            node = node[body]
        elif isinstance(node, list):
            i = _list_index(node, kind, body)
            if i is None:
                return None
            path.append(i)
            node = node[i]
        else:
            return None
    return tuple(path)


def _pointer_steps(pointer: str) -> _Selector | None:
    if not pointer.startswith("/"):
        return None
    tokens = pointer[1:].split("/")
    return tuple(("t", t.replace("~1", "/").replace("~0", "~")) for t in tokens)


def _element_steps(elements: Sequence[str]) -> _Selector | None:
    try:
        return tuple(fieldpath.parse(pe) for pe in elements)
    except (ValueError, KeyError):
        return None


def _pointer(path: Path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


# --- display paths ----------------------------------------------------------------------
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_$@-]+")
_PLAIN_VALUE = re.compile(r"[A-Za-z_./:@$-][A-Za-z0-9_./:@$-]*")
_INTEGER = re.compile(r"-?\d+")  # a string like this is quoted: unquoted, it reads as a number


def _name_segment(name: str, first: bool) -> str:
    if _PLAIN_NAME.fullmatch(name):
        return name if first else "." + name
    return "[" + json.dumps(name, ensure_ascii=False) + "]"


def _key_value_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _PLAIN_VALUE.fullmatch(value) and not _INTEGER.fullmatch(value):
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return fieldpath.to_json(value)


def _key_segment(fields: dict[str, Any]) -> str:
    return "[" + ",".join(f"{k}={_key_value_text(fields[k])}" for k in sorted(fields)) + "]"


# =========================================================================================
# managedFields
# =========================================================================================
@dataclass(frozen=True)
class _Managed:
    manager: str
    fields: FieldSet


def _managed(obj: dict[str, Any] | None) -> list[_Managed]:
    """The readable entries of ``obj``'s ``metadata.managedFields`` (others are skipped)."""
    if not obj:
        return []
    meta = obj.get("metadata") or {}
    entries = meta.get("managedFields") if isinstance(meta, dict) else None
    out: list[_Managed] = []
    for entry in entries or ():
        if not isinstance(entry, dict) or entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        try:
            fields = fieldpath.decode(entry.get("fieldsV1"))
        except ValueError:
            continue
        out.append(_Managed(str(entry.get("manager") or ""), fields))
    return out


def _subtree(s: FieldSet, elements: Sequence[str]) -> FieldSet | None:
    node = s
    for pe in elements:
        child = node.get(pe)
        if child is None:
            return None
        node = child
    return node


def _leaf_members(s: FieldSet) -> Iterator[tuple[str, ...]]:
    """Members with nothing below them (a map or list item owned together with its
    fields is represented by those fields)."""
    for member in fieldpath.iterate(s):
        node = _subtree(s, member)
        if node is not None and len(node) == 1:
            yield member


def _owns(s: FieldSet, elements: Sequence[str]) -> bool:
    """True when ``s`` has ``elements`` or anything below it, or an atomic leaf above it."""
    node = s
    for pe in elements:
        if node.keys() == {MEMBER}:
            return True  # inside a field owned as a whole
        child = node.get(pe)
        if child is None:
            return False
        node = child
    return bool(node)


# =========================================================================================
# ignore rules
# =========================================================================================
def _glob(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatchcase(value, pattern)


def _matches(rule: IgnoreDifference, key: ObjectKey) -> bool:
    """Group, kind, name and namespace as glob patterns (``*``); an omitted group, name or
    namespace matches any (``group: ""`` is the core group only)."""
    return (
        _glob(rule.group, key.group)
        and fnmatchcase(key.kind, rule.kind)
        and _glob(rule.name, key.name)
        and _glob(rule.namespace, key.namespace)
    )


def _selectors(
    obj: dict[str, Any], options: DiffOptions, live: dict[str, Any] | None
) -> list[_Selector]:
    key = ObjectKey.of(obj)
    found: list[_Selector | None] = [_pointer_steps(p) for p in options.extra_ignore_pointers]
    managers: set[str] = set()
    for rule in options.ignore:
        if not _matches(rule, key):
            continue
        found.extend(_pointer_steps(p) for p in rule.json_pointers)
        found.extend(_element_steps(e) for e in rule.field_path_elements)
        managers.update(rule.managed_fields_managers)
    for entry in _managed(live):
        if entry.manager in managers:
            found.extend(_element_steps(m) for m in _leaf_members(entry.fields))
    return [s for s in found if s is not None]


def ignored_paths(
    obj: dict[str, Any], options: DiffOptions, live: dict[str, Any] | None
) -> list[Path]:
    """The concrete paths of ``obj`` that are ignored, without repeats: those of
    ``extra_ignore_pointers`` first, then of each matching rule in order.

    From the matching rules' ``jsonPointers`` (list items by index) and ``fieldPaths``
    (list items by key), from ``extra_ignore_pointers``, and from the fields that the
    rules' ``managedFieldsManagers`` own according to ``live``'s ``managedFields`` (located
    in ``obj`` by their keys, so they also apply to the dry-run or desired object). Paths
    that do not exist in ``obj`` are skipped silently."""
    out: dict[Path, None] = {}
    for steps in _selectors(obj, options, live):
        path = _resolve(obj, steps)
        if path:
            out.setdefault(path, None)
    return list(out)


def _under(path: Path, paths: Sequence[Path]) -> bool:
    return any(path[: len(p)] == p for p in paths)


def _overlaps(path: Path, paths: Sequence[Path]) -> bool:
    return any(path[: len(p)] == p or p[: len(path)] == path for p in paths)


# =========================================================================================
# field_diff
# =========================================================================================
def _schema_root(obj: dict[str, Any]) -> tuple[Schemas, Node | None]:
    schemas = builtin()
    api_version = str(obj.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    return schemas, schemas.root(group, version, str(obj.get("kind") or ""))


def _item_key(item: Any, keys: Sequence[str]) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(item, dict):
        return None
    found = tuple((k, fieldpath.to_json(item[k])) for k in sorted(keys) if k in item)
    return found or None


def _keyable(lists: Sequence[list[Any]], keys: Sequence[str]) -> bool:
    for items in lists:
        seen = [_item_key(item, keys) for item in items]
        if any(k is None for k in seen) or len(set(seen)) != len(seen):
            return False
    return True


def _list_keys(schemas: Schemas, node: Node | None, a: list[Any], b: list[Any]) -> list[str] | None:
    """Key fields to match items of ``a`` and ``b`` by; ``[]`` compares the lists whole
    (scalars, atomic and set lists), None matches items by index."""
    if not any(isinstance(x, dict) for x in (*a, *b)):
        return []
    if node:
        keys = list_map_keys(node)
        if not keys and "merge" in patch_strategies(node) and patch_merge_key(node):
            keys = [str(patch_merge_key(node))]
        if keys and _keyable((a, b), keys):
            return keys
        if not keys or list_type(node) in ("atomic", "set"):
            return []
    return ["name"] if _keyable((a, b), ["name"]) else None


class _Differ:
    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas
        self.changes: list[FieldChange] = []

    def value(self, path: str, a: Any, b: Any, node: Node | None) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            self.map(path, a, b, node)
        elif isinstance(a, list) and isinstance(b, list):
            self.list(path, a, b, node)
        elif not _same(a, b):
            self.changes.append(FieldChange(path, copy.deepcopy(a), copy.deepcopy(b)))

    def map(self, path: str, a: dict[str, Any], b: dict[str, Any], node: Node | None) -> None:
        for name in [*a, *(k for k in b if k not in a)]:
            child = self.schemas.prop(node, name) if node else None
            sub = path + _name_segment(name, not path)
            self.value(sub, a.get(name), b.get(name), child)

    def list(self, path: str, a: list[Any], b: list[Any], node: Node | None) -> None:
        keys = _list_keys(self.schemas, node, a, b)
        if keys == []:
            if not _same(a, b):
                self.changes.append(FieldChange(path, copy.deepcopy(a), copy.deepcopy(b)))
            return
        items = self.schemas.items(node) if node else None
        if keys is None:
            for i in range(max(len(a), len(b))):
                left = a[i] if i < len(a) else None
                right = b[i] if i < len(b) else None
                self.value(f"{path}[{i}]", left, right, items)
            return
        left_by: dict[Any, dict[str, Any]] = {_item_key(item, keys): item for item in a}
        right_by: dict[Any, dict[str, Any]] = {_item_key(item, keys): item for item in b}
        for k in [*left_by, *(k for k in right_by if k not in left_by)]:
            item = left_by[k] if k in left_by else right_by[k]
            segment = _key_segment({n: item[n] for n in keys if n in item})
            self.value(path + segment, left_by.get(k), right_by.get(k), items)


def field_diff(
    live: dict[str, Any], dry: dict[str, Any], options: DiffOptions, *, secret: bool = False
) -> list[FieldChange]:
    """What applying would change: ``live`` against ``dry``, both :func:`normalise` d and
    without their :func:`ignored_paths`; ``before`` is the live value, ``after`` the
    dry-run's, ``None`` for absent.

    Maps are compared key by key. Lists of scalars, and lists the schema calls atomic or
    set, are compared whole. Lists of objects are compared item by item: by the schema's
    list-map keys (built-in kinds, :func:`kubemodel.schema.builtin`), else by ``name``
    when every item has a unique one, else by index; an added or removed item is one
    change with the whole item on one side, and order does not matter for keyed items.

    Values under ``data`` and ``stringData`` are masked (:func:`gitops.changeset.masked`)
    when ``secret`` is true or either object is a core-group Secret."""
    left, right = normalise(live), normalise(dry)
    _delete_all(left, ignored_paths(left, options, live))
    _delete_all(right, ignored_paths(right, options, live))
    if secret or _is_secret(live) or _is_secret(dry):
        _mask_secret(left)
        _mask_secret(right)
    schemas, root = _schema_root(dry if dry.get("kind") else live)
    differ = _Differ(schemas)
    differ.map("", left, right, root)
    return differ.changes


# =========================================================================================
# manual additions
# =========================================================================================
def _is_manual(manager: str, options: DiffOptions) -> bool:
    return manager != options.own_manager and any(
        manager.startswith(prefix) for prefix in options.manual_managers
    )


def _display(elements: Sequence[str], path: Path) -> str:
    """The display path of a managedFields member, located at ``path`` in an object."""
    text = ""
    for pe, part in zip(elements, path, strict=True):
        kind, body = fieldpath.parse(pe)
        if kind == "f":
            text += _name_segment(str(body), not text)
        elif kind == "k":
            text += _key_segment(body)
        else:
            text += f"[{part}]"
    return text


def manual_additions(
    live: dict[str, Any], desired: dict[str, Any], options: DiffOptions
) -> list[ManualField]:
    """Fields of ``live`` that a manual manager (:attr:`DiffOptions.manual_managers`,
    any operation) owns, ``desired`` does not set, our manager does not own (neither
    the field nor anything below it), and no ignore rule covers — the top-most ones only
    (a list item a person added is one field, not one per sub-field).

    Fields that :func:`normalise` drops (status, bookkeeping annotations) are never
    reported; neither are managedFields entries that name fields live no longer has.
    Values are those of ``live``, masked under ``data``/``stringData`` of a Secret."""
    entries = _managed(live)
    own: FieldSet = {}
    for entry in entries:
        if entry.manager == options.own_manager:
            own = fieldpath.union(own, entry.fields)
    view = normalise(live)
    if _is_secret(live):
        _mask_secret(view)
    ignored = ignored_paths(live, options, live)
    found: dict[Path, tuple[tuple[str, ...], str]] = {}
    for entry in entries:
        if not _is_manual(entry.manager, options):
            continue
        for member in fieldpath.iterate(entry.fields):
            steps = _element_steps(member)
            path = _resolve(live, steps) if steps is not None else None
            if not path or path in found or steps is None:
                continue
            if (
                _get(view, path) is _MISSING
                or _resolve(desired, steps) is not None
                or _owns(own, member)
                or _overlaps(path, ignored)
            ):
                continue
            found[path] = (member, entry.manager)
    out: list[ManualField] = []
    for path in _outermost(list(found)):
        member, manager = found[path]
        value = copy.deepcopy(_get(view, path))
        out.append(ManualField(_display(member, path), _pointer(path), manager, value))
    return out


def removal_patch(live: dict[str, Any], fields: Sequence[ManualField]) -> list[dict[str, Any]]:
    """An RFC 6902 patch removing ``fields`` from ``live``: a ``test`` of
    ``/metadata/resourceVersion`` first (so it fails with a conflict instead of removing
    the wrong list item if the object changed meanwhile), then one ``remove`` per field,
    deeper paths and higher list indexes first so every index stays valid; fields below
    another removed one are left out.

    Raises ValueError when ``live`` has no resourceVersion or a pointer does not exist
    in ``live``."""
    meta = live.get("metadata") or {}
    version = meta.get("resourceVersion") if isinstance(meta, dict) else None
    if not version:
        raise ValueError("the live object has no metadata.resourceVersion to guard the patch")
    paths: list[Path] = []
    for f in fields:
        steps = _pointer_steps(f.pointer)
        path = _resolve(live, steps) if steps is not None else None
        if not path:
            raise ValueError(f"{f.pointer!r} ({f.path}) does not exist in the live object")
        paths.append(path)
    ordered = _outermost(sorted(set(paths), key=_order, reverse=True))
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        *({"op": "remove", "path": _pointer(p)} for p in ordered),
    ]


# =========================================================================================
# respect_ignored
# =========================================================================================
def respect_ignored(
    desired: dict[str, Any], live: dict[str, Any] | None, options: DiffOptions
) -> dict[str, Any]:
    """A copy of ``desired`` in which every ignored field it sets carries the live value,
    or is left out when ``live`` lacks it (or there is no live object), so applying it
    never undoes a difference the rules say to ignore — Argo CD's
    ``RespectIgnoreDifferences=true`` sync option. Each rule is located in ``desired``
    and in ``live`` separately (pointers by index, field paths and managed fields by key)."""
    out = copy.deepcopy(desired)
    drop: list[Path] = []
    for steps in _selectors(desired, options, live):
        path = _resolve(out, steps)
        if not path or _under(path, drop):
            continue
        source = _resolve(live, steps) if live is not None else None
        if source:
            _set(out, path, copy.deepcopy(_get(live, source)))
        else:
            drop.append(path)
    _delete_all(out, drop)
    return out
