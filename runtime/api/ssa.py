"""Managed fields and server-side apply, as kube-apiserver does them.

The API server calls :func:`track_update` on every create, update and non-apply patch,
and :func:`apply` for ``application/apply-patch+yaml`` patches. Both follow
``k8s.io/apimachinery/pkg/util/managedfields`` (the field manager chain the apiserver
builds: version check, last-applied upgrade, skip-non-applied, cap of update managers,
manager identity, timestamps, metadata stripping) on top of a port of
``sigs.k8s.io/structured-merge-diff`` (typed compare, merge, field sets, pruning).

Field semantics come from the OpenAPI schema node of the kind (see
:mod:`kubemodel.schema`): ``x-kubernetes-list-type`` (atomic, set, map with
``x-kubernetes-list-map-keys``), ``x-kubernetes-map-type`` (granular or atomic), and,
for lists without those markers, the strategic-merge ``x-kubernetes-patch-strategy``
and ``x-kubernetes-patch-merge-key`` as Kubernetes' schema conversion reads them.
Values without a schema (unknown fields, ``x-kubernetes-preserve-unknown-fields``,
untyped JSON) are *deduced*: maps are granular, lists atomic.

Callers must treat what they pass in as read-only: neither function mutates ``old``,
``live`` or ``config``; :func:`track_update` only writes
``new["metadata"]["managedFields"]``, and :func:`apply` returns a fresh object that
shares nothing with its inputs. As in kube-apiserver, defaulting runs *after* apply
(a field the applier stops applying is removed even when it has a default; defaulting
puts the default back), and creates and updates are tracked on the object as decoded
and defaulted, before mutating admission.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from kubemodel import fieldpath as fp
from kubemodel.errors import ApiError, Cause
from kubemodel.fieldpath import MEMBER, FieldSet
from kubemodel.schema import Node, Schemas, type_of

__all__ = [
    "BEFORE_FIRST_APPLY",
    "LAST_APPLIED_ANNOTATION",
    "MAX_UPDATE_MANAGERS",
    "STRIPPED_FIELDS",
    "apply",
    "field_set",
    "track_update",
]

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY: Final = "before-first-apply"
ANCIENT_CHANGES: Final = "ancient-changes"
MAX_UPDATE_MANAGERS: Final = 10
"""Update entries beyond this many are merged, oldest first, into ``ancient-changes``."""

STRIPPED_FIELDS: Final[tuple[tuple[str, ...], ...]] = (
    ("apiVersion",),
    ("kind",),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "creationTimestamp"),
    ("metadata", "selfLink"),
    ("metadata", "uid"),
    ("metadata", "clusterName"),
    ("metadata", "generation"),
    ("metadata", "managedFields"),
    ("metadata", "resourceVersion"),
)
"""Paths never recorded in a manager's set (the apiserver's strip-meta manager)."""

_STRIP: Final = fp.from_paths(tuple(fp.field(n) for n in p) for p in STRIPPED_FIELDS)
_E: Final[FieldSet] = {}
_ABSENT: Final = object()  # "no value", as opposed to an explicit null

# Metadata the registry owns; pruning may drop them (nobody owns them), and
# kube-apiserver's update path restores them from the live object afterwards.
_SYSTEM_METADATA: Final = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)

# Defaults of list-map keys that Kubernetes' published OpenAPI carries but the
# definitions we load do not (an element may omit a key field that has a default).
_KEY_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
}

# What a freshly allocated Go object of a built-in kind looks like once converted to
# JSON: non-pointer struct fields are present as {} and pointer/slice fields without
# omitempty as null. Creates are compared against it, so these intermediate fields
# are not "added" (no "." in their FieldsV1), exactly as in Kubernetes. Top-level
# metadata/spec/status are always structs; the rest is listed per definition.
_STRUCT: Final = "struct"
_ZERO_FIELDS: Final[dict[str, dict[str, str | None]]] = {
    "io.k8s.api.apps.v1.DeploymentSpec": {
        "selector": None,
        "template": _STRUCT,
        "strategy": _STRUCT,
    },
    "io.k8s.api.apps.v1.ReplicaSetSpec": {"selector": None, "template": _STRUCT},
    "io.k8s.api.apps.v1.StatefulSetSpec": {
        "selector": None,
        "template": _STRUCT,
        "updateStrategy": _STRUCT,
    },
    "io.k8s.api.apps.v1.DaemonSetSpec": {
        "selector": None,
        "template": _STRUCT,
        "updateStrategy": _STRUCT,
    },
    "io.k8s.api.batch.v1.JobSpec": {"template": _STRUCT},
    "io.k8s.api.batch.v1.CronJobSpec": {"jobTemplate": _STRUCT},
    "io.k8s.api.batch.v1.JobTemplateSpec": {"metadata": _STRUCT, "spec": _STRUCT},
    "io.k8s.api.core.v1.PodTemplateSpec": {"metadata": _STRUCT, "spec": _STRUCT},
    "io.k8s.api.core.v1.PodTemplate": {"template": _STRUCT},
    "io.k8s.api.core.v1.PodSpec": {"containers": None},
    "io.k8s.api.core.v1.ServiceStatus": {"loadBalancer": _STRUCT},
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec": {"resources": _STRUCT},
    "io.k8s.api.networking.v1.IngressStatus": {"loadBalancer": _STRUCT},
    "io.k8s.api.rbac.v1.Role": {"rules": None},
    "io.k8s.api.rbac.v1.ClusterRole": {"rules": None},
    "io.k8s.api.rbac.v1.RoleBinding": {"roleRef": _STRUCT},
    "io.k8s.api.rbac.v1.ClusterRoleBinding": {"roleRef": _STRUCT},
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec": {"scaleTargetRef": _STRUCT},
}
_TOP_LEVEL_STRUCTS: Final = ("metadata", "spec", "status")


# =========================================================================================
# Schema: OpenAPI nodes compiled into the few facts the algorithms need
# =========================================================================================
_SCALAR, _MAP, _LIST, _DEDUCED = 0, 1, 2, 3
_ATOMIC, _SET, _ASSOC = 0, 1, 2
_SCALAR_TYPES: Final = frozenset({"string", "integer", "number", "boolean"})


class _Type:
    """A compiled schema node. Children are compiled lazily (schemas are recursive)."""

    __slots__ = (
        "_elem",
        "_fields",
        "atomic",
        "def_name",
        "elem_node",
        "key_defaults",
        "key_names",
        "key_prefixes",
        "kind",
        "props",
        "rel",
        "schemas",
    )

    def __init__(self, kind: int, schemas: Schemas | None = None) -> None:
        self.kind = kind
        self.schemas = schemas
        self.atomic = False
        self.props: dict[str, Node] = {}
        self.elem_node: Node | None = None
        self.rel = _ATOMIC
        self.key_names: tuple[str, ...] = ()
        self.key_prefixes: tuple[str, ...] = ()
        self.key_defaults: dict[str, Any] = {}
        self.def_name: str | None = None
        self._fields: dict[str, tuple[_Type, bool]] = {}
        self._elem: _Type | None = None

    def field(self, name: str) -> tuple[_Type, bool]:
        """The type of map field ``name`` and whether it is a declared (named) field."""
        hit = self._fields.get(name)
        if hit is None:
            node = self.props.get(name)
            if node is not None and self.schemas is not None:
                hit = (_compile(self.schemas, node), True)
            else:
                hit = (self.elem(), False)
            self._fields[name] = hit
        return hit

    def elem(self) -> _Type:
        """The type of list elements or of a map's undeclared fields."""
        if self._elem is None:
            if self.elem_node is not None and self.schemas is not None:
                self._elem = _compile(self.schemas, self.elem_node)
            else:
                self._elem = _DEDUCED_T
        return self._elem


_DEDUCED_T: Final = _Type(_DEDUCED)
_SCALAR_T: Final = _Type(_SCALAR)
_DEDUCED_MAP: Final = _Type(_MAP)  # maps without schema: granular, all fields deduced
_DEDUCED_LIST: Final = _Type(_LIST)  # lists without schema: atomic
_DEDUCED_LIST.atomic = True

_CACHE: dict[int, tuple[Node, _Type]] = {}
_CACHE_LIMIT: Final = 50_000


def _eff(t: _Type, v: Any) -> _Type:
    """The effective type of value ``v``: deduced types follow the value's shape."""
    if t.kind != _DEDUCED:
        return t
    if isinstance(v, dict):
        return _DEDUCED_MAP
    if isinstance(v, list):
        return _DEDUCED_LIST
    return _SCALAR_T


def _resolve(schemas: Schemas, node: Node) -> tuple[Node, str | None]:
    name: str | None = None
    for _ in range(64):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            node = schemas.definitions.get(name) or {}
            continue
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            node = all_of[0]
            continue
        return node, name
    raise RuntimeError("schema reference loop")


def _compile(schemas: Schemas, node: Node) -> _Type:
    hit = _CACHE.get(id(node))
    if hit is not None and hit[0] is node and hit[1].schemas is schemas:
        return hit[1]
    t = _build(schemas, node)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[id(node)] = (node, t)  # keeping the node alive keeps its id unique
    return t


def _is_scalar_schema(schemas: Schemas, node: Node) -> bool:
    if node.get("x-kubernetes-int-or-string"):
        return True
    alternatives = node.get("oneOf") or node.get("anyOf")
    if not isinstance(alternatives, list) or not alternatives:
        return False
    for alt in alternatives:
        if not isinstance(alt, dict) or type_of(_resolve(schemas, alt)[0]) not in _SCALAR_TYPES:
            return False
    return True


def _build(schemas: Schemas, node: Node) -> _Type:
    n, name = _resolve(schemas, node)
    typ = type_of(n)
    if typ is None:
        t = _Type(_SCALAR if _is_scalar_schema(schemas, n) else _DEDUCED, schemas)
    elif typ == "object":
        t = _Type(_MAP, schemas)
        props = n.get("properties")
        t.props = props if isinstance(props, dict) else {}
        extra = n.get("additionalProperties")
        t.elem_node = extra if isinstance(extra, dict) else None
        t.atomic = n.get("x-kubernetes-map-type") == "atomic"
    elif typ == "array":
        t = _Type(_LIST, schemas)
        items = n.get("items")
        t.elem_node = items if isinstance(items, dict) else None
        _list_semantics(schemas, t, n)
    else:
        t = _Type(_SCALAR, schemas)
    t.def_name = name
    return t


def _list_semantics(schemas: Schemas, t: _Type, n: Node) -> None:
    list_type = n.get("x-kubernetes-list-type")
    keys: list[str] = []
    if list_type == "set":
        t.rel = _SET
    elif list_type == "map":
        raw = n.get("x-kubernetes-list-map-keys") or (
            [n["x-kubernetes-patch-merge-key"]] if n.get("x-kubernetes-patch-merge-key") else []
        )
        keys = [str(k) for k in raw]
        t.rel = _ASSOC if keys else _ATOMIC
    elif list_type is None and n.get("x-kubernetes-patch-strategy") in (
        "merge",
        "merge,retainKeys",
    ):
        merge_key = n.get("x-kubernetes-patch-merge-key")
        if merge_key:
            keys = [str(merge_key)]
            t.rel = _ASSOC
        else:
            t.rel = _SET
    t.atomic = t.rel == _ATOMIC
    if keys:
        t.key_names = tuple(sorted(keys))
        t.key_prefixes = tuple(fp.to_json(k) + ":" for k in t.key_names)
        defaults: dict[str, Any] = {}
        if t.elem_node is not None:
            item, item_name = _resolve(schemas, t.elem_node)
            defaults.update(_KEY_DEFAULTS.get(item_name or "", {}))
            props = item.get("properties")
            if isinstance(props, dict):
                for k in keys:
                    prop = props.get(k)
                    if isinstance(prop, dict) and "default" in prop:
                        defaults[k] = prop["default"]
        t.key_defaults = defaults


def _root_type(schemas: Schemas, root: Node) -> _Type:
    return _compile(schemas, root)


# =========================================================================================
# Typed walks over JSON values (structured-merge-diff's typed package)
# =========================================================================================
class _TypeError(Exception):
    """A value that does not fit its schema (reported as Kubernetes words it)."""


def _item_pe(t: _Type, item: Any) -> str:
    """The path element of a list item of an associative list (set or map)."""
    if t.rel == _SET:
        if isinstance(item, dict):
            raise _TypeError("associative list without keys has an element that's a map type")
        if isinstance(item, list):
            raise _TypeError("not supported: associative list with lists as elements")
        if item is None:
            raise _TypeError("associative list without keys has an element that's an explicit null")
        return "v:" + fp.to_json(item)
    if not isinstance(item, dict):
        if item is None:
            raise _TypeError("associative list with keys may not have a null element")
        raise _TypeError("associative list with keys may not have non-map elements")
    parts: list[str] = []
    for name, prefix in zip(t.key_names, t.key_prefixes):
        v = item.get(name, _ABSENT)
        if v is _ABSENT:
            v = t.key_defaults.get(name, _ABSENT)
            if v is _ABSENT:
                raise _TypeError(
                    f'associative list with keys has an element that omits key field "{name}" '
                    "(and doesn't have default value)"
                )
        parts.append(prefix + fp.to_json(v))
    return "k:{" + ",".join(parts) + "}"


def _index_items(t: _Type, items: list[Any]) -> tuple[list[str], dict[str, Any]]:
    """Path elements of a list's items in order, first occurrence winning; items whose
    key cannot be built are left out (they cannot be tracked)."""
    order: list[str] = []
    seen: dict[str, Any] = {}
    for i, item in enumerate(items):
        if t.rel == _ATOMIC:
            pe = fp.index(i)
        else:
            try:
                pe = _item_pe(t, item)
            except _TypeError:
                continue
        if pe in seen:
            continue
        seen[pe] = item
        order.append(pe)
    return order, seen


# --- ToFieldSet ----------------------------------------------------------------------------
def _tfs(
    t: _Type, v: Any, named: bool, errs: list[str] | None, path: tuple[str, ...]
) -> FieldSet | None:
    """The subtree of ``v``'s own field set (None when ``v`` contributes nothing).

    ``named`` values (declared fields of a struct) are not members themselves unless
    they are leaves; map entries and list items always are. With ``errs`` given the
    value is validated as an apply configuration is (duplicates and bad keys are
    errors); without, offending items are skipped."""
    t = _eff(t, v)
    kind = t.kind
    if kind == _MAP and not t.atomic:
        if isinstance(v, dict):
            node: FieldSet = {}
            for k, cv in v.items():
                ct, cnamed = t.field(k)
                pe = "f:" + k
                child = _tfs(ct, cv, cnamed, errs, (*path, pe) if errs is not None else path)
                if child is not None:
                    node[pe] = child
            if not named:
                node[MEMBER] = _E
            return node or None
        if v is None:
            return None if named else {MEMBER: _E}
    elif kind == _LIST and not t.atomic:
        if isinstance(v, list):
            node = {}
            elem = t.elem()
            for i, item in enumerate(v):
                try:
                    pe = _item_pe(t, item)
                except _TypeError as e:
                    if errs is not None:
                        errs.append(f"{fp.path_string(path)}: element {i}: {e}")
                    continue
                if pe in node:
                    if errs is not None:
                        errs.append(
                            f"{fp.path_string(path)}: duplicate entries for key "
                            f"{fp.path_string((pe,))}"
                        )
                    continue
                child = _tfs(elem, item, False, errs, (*path, pe) if errs is not None else path)
                if child is None:
                    child = {MEMBER: _E}
                elif MEMBER not in child:
                    child[MEMBER] = _E
                node[pe] = child
            if not named:
                node[MEMBER] = _E
            return node or None
        if v is None:
            return None if named else {MEMBER: _E}
    return {MEMBER: _E}


def field_set(schemas: Schemas, root: Node, obj: dict[str, Any]) -> FieldSet:
    """The set of fields an object sets (what an apply of it would own, unstripped)."""
    return _tfs(_root_type(schemas, root), obj, True, None, ()) or {}


# --- Compare -------------------------------------------------------------------------------
def _added(t: _Type, v: Any, pe: str, out: FieldSet) -> None:
    """Record ``v`` (at ``pe`` below ``out``) and everything inside it as added."""
    t = _eff(t, v)
    if t.kind == _MAP and not t.atomic and isinstance(v, dict) and v:
        node: FieldSet = {MEMBER: _E}
        for k, cv in v.items():
            _added(t.field(k)[0], cv, "f:" + k, node)
        out[pe] = node
    elif t.kind == _LIST and not t.atomic and isinstance(v, list) and v:
        node = {MEMBER: _E}
        elem = t.elem()
        for item in v:
            try:
                ipe = _item_pe(t, item)
            except _TypeError:
                continue
            if ipe not in node:
                _added(elem, item, ipe, node)
        out[pe] = node
    else:
        out[pe] = {MEMBER: _E}


def _compare(
    t: _Type, lhs: Any, rhs: Any, pe: str, add: FieldSet, mod: FieldSet, rem: FieldSet
) -> None:
    """structured-merge-diff's Compare of ``lhs`` (old) and ``rhs`` (new) at ``pe``.

    Leaves (scalars, atomic values, maps or lists empty on both sides) are added,
    removed or modified; granular maps and lists recurse, and are themselves added or
    removed when absent on one side."""
    if lhs is _ABSENT:
        _added(t, rhs, pe, add)
        return
    if rhs is _ABSENT:
        _added(t, lhs, pe, rem)
        return
    if lhs is rhs or (lhs == rhs and _same_kind(lhs, rhs)):
        return
    rt = _eff(t, rhs)
    if rt is _eff(t, lhs) and not rt.atomic and (lhs or rhs):
        ca: FieldSet = {}
        cm: FieldSet = {}
        cr: FieldSet = {}
        if rt.kind == _MAP and _dict_or_null(lhs) and _dict_or_null(rhs):
            lm: dict[str, Any] = lhs or {}
            rm: dict[str, Any] = rhs or {}
            for k, lv in lm.items():
                _compare(rt.field(k)[0], lv, rm.get(k, _ABSENT), "f:" + k, ca, cm, cr)
            for k, rv in rm.items():
                if k not in lm:
                    _added(rt.field(k)[0], rv, "f:" + k, ca)
        elif rt.kind == _LIST and _list_or_null(lhs) and _list_or_null(rhs):
            lorder, lseen = _index_items(rt, lhs or [])
            rorder, rseen = _index_items(rt, rhs or [])
            elem = rt.elem()
            for ipe in lorder:
                _compare(elem, lseen[ipe], rseen.get(ipe, _ABSENT), ipe, ca, cm, cr)
            for ipe in rorder:
                if ipe not in lseen:
                    _added(elem, rseen[ipe], ipe, ca)
        else:
            mod[pe] = {MEMBER: _E}
            return
        if ca:
            add[pe] = ca
        if cm:
            mod[pe] = cm
        if cr:
            rem[pe] = cr
        return
    mod[pe] = {MEMBER: _E}


def _same_kind(a: Any, b: Any) -> bool:
    """Whether equal Python values are equal JSON values too (1 == 1.0, but not True)."""
    ta, tb = type(a), type(b)
    return ta is tb or (ta in (int, float) and tb in (int, float))


def _dict_or_null(v: Any) -> bool:
    return v is None or isinstance(v, dict)


def _list_or_null(v: Any) -> bool:
    return v is None or isinstance(v, list)


def _comparison(t: _Type, lhs: Any, rhs: Any) -> tuple[FieldSet, FieldSet, FieldSet]:
    add: FieldSet = {}
    mod: FieldSet = {}
    rem: FieldSet = {}
    _compare(t, lhs, rhs, "", add, mod, rem)
    return (
        _strip_root(add.get("", _E)),
        _strip_root(mod.get("", _E)),
        _strip_root(rem.get("", _E)),
    )


def _strip_root(s: FieldSet) -> FieldSet:
    if MEMBER in s:
        s = dict(s)
        del s[MEMBER]
    return s


# --- Merge ---------------------------------------------------------------------------------
def _merge(t: _Type, lhs: Any, rhs: Any) -> Any:
    """structured-merge-diff's Merge: ``rhs`` (the applied configuration) over ``lhs``.

    Leaves take the configuration's value; granular maps merge field by field;
    associative lists merge element by element (keeping the configuration's order for
    the elements it names); atomic values are replaced. The result may share
    subtrees with both inputs."""
    if rhs is _ABSENT:
        return lhs
    if lhs is _ABSENT or lhs is rhs:
        return rhs
    rt = _eff(t, rhs)
    if rt.atomic or rt is not _eff(t, lhs):
        return rhs
    if rt.kind == _MAP:
        if isinstance(lhs, dict) and isinstance(rhs, dict):
            if not lhs:
                return rhs
            if not rhs:
                return lhs
            out: dict[str, Any] = {}
            for k, lv in lhs.items():
                rv = rhs.get(k, _ABSENT)
                out[k] = lv if rv is _ABSENT else _merge(rt.field(k)[0], lv, rv)
            for k, rv in rhs.items():
                if k not in lhs:
                    out[k] = rv
            return out
        if rhs is None and isinstance(lhs, dict) and lhs:
            return lhs
        return rhs
    if rt.kind == _LIST:
        if isinstance(lhs, list) and isinstance(rhs, list):
            if not lhs or not rhs:
                return rhs if rhs or not lhs else lhs
            return _merge_list(rt, lhs, rhs)
        if rhs is None and isinstance(lhs, list) and lhs:
            return lhs
    return rhs


def _merge_list(t: _Type, lhs: list[Any], rhs: list[Any]) -> list[Any]:
    rorder, rseen = _index_items(t, rhs)
    elem = t.elem()
    # Live items: keyed ones by key (first occurrence), plus pass-through slots for the
    # ones that cannot be keyed or repeat a key. A repeated key the configuration names
    # is replaced as a whole by the configuration's item (duplicates are atomic).
    lorder: list[str] = []
    lseen: dict[str, Any] = {}
    dup: set[str] = set()
    extra: dict[str, Any] = {}
    for i, item in enumerate(lhs):
        try:
            pe = _item_pe(t, item)
        except _TypeError:
            pe = ""
        if not pe or pe in lseen:
            if pe:
                dup.add(pe)
            slot = f"\x00{i}"
            extra[slot] = (pe, item)
            lorder.append(slot)
            continue
        lseen[pe] = item
        lorder.append(pe)
    if extra:
        lorder = [p for p in lorder if p not in extra or extra[p][0] not in rseen]
        for slot in [p for p in lorder if p in extra]:
            lseen[slot] = extra[slot][1]
    shared = [pe for pe in rorder if pe in lseen]
    shared_at = 0
    next_shared = shared[0] if shared else None
    out: list[Any] = []
    li = ri = 0
    nl, nr = len(lorder), len(rorder)
    while li < nl or ri < nr:
        if li < nl and ri < nr:
            pe = lorder[li]
            if pe == rorder[ri]:
                left = _ABSENT if pe in dup else lseen[pe]
                out.append(_merge(elem, left, rseen[pe]))
                li += 1
                ri += 1
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
                continue
            if pe in rseen and next_shared is not None and next_shared != pe:
                li += 1  # shared, but emitted when the configuration reaches it
                continue
        if li < nl:
            pe = lorder[li]
            if pe not in rseen:
                out.append(lseen[pe])
                li += 1
                continue
        if ri < nr:
            pe = rorder[ri]
            left = _ABSENT if pe in dup else lseen.get(pe, _ABSENT)
            out.append(_merge(elem, left, rseen[pe]))
            ri += 1
            if next_shared is not None and next_shared == pe:
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
    return out


# --- RemoveItems ---------------------------------------------------------------------------
def _remove(t: _Type, v: Any, s: FieldSet) -> Any:
    """``v`` without the members of ``s`` (and what is below them).

    A map or list emptied by the removal is removed too (returns ``_ABSENT``), which is
    what the Go decoding of Kubernetes' result amounts to for built-in kinds; Kubernetes
    itself leaves a null there, which custom resources then fail to validate."""
    t = _eff(t, v)
    if t.atomic:
        return v
    if t.kind == _MAP and isinstance(v, dict) and v:
        out: dict[str, Any] = {}
        changed = False
        for k, cv in v.items():
            sub = s.get("f:" + k)
            if sub is None:
                out[k] = cv
                continue
            changed = True
            if MEMBER in sub:
                continue
            nv = _remove(t.field(k)[0], cv, sub)
            if nv is not _ABSENT:
                out[k] = nv
        if not changed:
            return v
        return out if out else _ABSENT
    if t.kind == _LIST and isinstance(v, list) and v:
        items: list[Any] = []
        changed = False
        elem = t.elem()
        for item in v:
            try:
                pe = _item_pe(t, item)
            except _TypeError:
                items.append(item)
                continue
            sub = s.get(pe)
            if sub is None:
                items.append(item)
                continue
            changed = True
            if MEMBER in sub:
                continue
            nv = _remove(elem, item, sub)
            if nv is not _ABSENT:
                items.append(nv)
        if not changed:
            return v
        return items if items else _ABSENT
    return v


# --- EnsureNamedFieldsAreMembers -------------------------------------------------------------
def _ensure(t: _Type | None, s: FieldSet) -> FieldSet:
    """``s`` with every declared struct field that has members below it made a member."""
    out: FieldSet = {}
    for pe, child in s.items():
        if pe == MEMBER or (len(child) == 1 and MEMBER in child):
            out[pe] = child
            continue
        ct: _Type | None = None
        named = False
        if t is not None:
            if pe[0] == "f" and t.kind in (_MAP, _DEDUCED):
                if t.kind == _MAP:
                    ct, named = t.field(pe[2:])
                else:
                    ct = _DEDUCED_T
            elif pe[0] == "k" and t.kind in (_LIST, _DEDUCED):
                ct = t.elem() if t.kind == _LIST else _DEDUCED_T
        nc = _ensure(ct, child)
        if named and MEMBER not in nc:
            nc[MEMBER] = _E
        out[pe] = nc
    return out


# =========================================================================================
# managedFields: entries, identities, encoding (k8s.io/apimachinery/.../managedfields)
# =========================================================================================
Ident = tuple[str, str, str, str]
"""A manager's identity: (manager, operation, apiVersion or "" for Apply, subresource)."""


@dataclass(slots=True)
class _Versioned:
    fields: FieldSet
    api_version: str
    applied: bool


class _Managed:
    __slots__ = ("fields", "times")

    def __init__(self) -> None:
        self.fields: dict[Ident, _Versioned] = {}
        self.times: dict[Ident, str | None] = {}


def _ident(manager: str, operation: str, api_version: str, subresource: str) -> Ident:
    return (manager, operation, "" if operation == "Apply" else api_version, subresource)


def _ident_json(ident: Ident) -> str:
    manager, operation, api_version, subresource = ident
    parts = []
    if manager:
        parts.append('"manager":' + fp.to_json(manager))
    if operation:
        parts.append('"operation":' + fp.to_json(operation))
    if api_version:
        parts.append('"apiVersion":' + fp.to_json(api_version))
    if subresource:
        parts.append('"subresource":' + fp.to_json(subresource))
    return "{" + ",".join(parts) + "}"


def _print_manager(ident: Ident) -> str:
    manager, operation, api_version, subresource = ident
    text = fp.go_quote(manager)
    if subresource:
        text += f" with subresource {fp.go_quote(subresource)}"
    if operation == "Update":
        text += f" using {api_version}"
    return text


def _decode_managed(entries: Any) -> _Managed:
    """Read ``metadata.managedFields``; ValueError when any entry is invalid."""
    managed = _Managed()
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"managed fields entry {i} must be an object")
        operation = entry.get("operation") or ""
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not isinstance(api_version, str) or not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if fields_type != "FieldsV1":
            if not fields_type:
                raise ValueError(f"missing fieldsType in managed fields entry {i}")
            raise ValueError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        manager = entry.get("manager") or ""
        subresource = entry.get("subresource") or ""
        t = entry.get("time")
        if not isinstance(manager, str) or not isinstance(subresource, str):
            raise ValueError(f"invalid manager in managed fields entry {i}")
        if t is not None and not isinstance(t, str):
            raise ValueError(f"invalid time in managed fields entry {i}")
        ident = _ident(manager, operation, api_version, subresource)
        managed.fields[ident] = _Versioned(
            fp.decode(entry.get("fieldsV1")), api_version, operation == "Apply"
        )
        managed.times[ident] = t
    return managed


def _encode_managed(managed: _Managed) -> list[dict[str, Any]] | None:
    if not managed.fields:
        return None
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for ident, vs in managed.fields.items():
        manager, _, _, subresource = ident
        operation = "Apply" if vs.applied else "Update"
        entry: dict[str, Any] = {}
        if manager:
            entry["manager"] = manager
        entry["operation"] = operation
        entry["apiVersion"] = vs.api_version
        t = managed.times.get(ident)
        if t:
            entry["time"] = t
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fp.encode(vs.fields)
        if subresource:
            entry["subresource"] = subresource
        order = (operation, fp.unix_seconds(t), manager, vs.api_version, subresource)
        rows.append((order, entry))
    rows.sort(key=lambda r: r[0])
    return [entry for _, entry in rows]


def _cap_update_managers(managed: _Managed, limit: int = MAX_UPDATE_MANAGERS) -> None:
    updaters = [i for i, vs in managed.fields.items() if not vs.applied]
    if len(updaters) <= limit:
        return
    updaters.sort(key=lambda i: (fp.unix_seconds(managed.times.get(i)), _ident_json(i)))
    first_of_version: dict[str, Ident] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= limit:
            break
        vs = managed.fields[ident]
        version = vs.api_version
        bucket: Ident = (ANCIENT_CHANGES, "Update", version, "")
        first = first_of_version.get(version)
        if first is None:
            first_of_version[version] = ident
            continue
        if ident == bucket:
            continue
        if bucket not in managed.fields:
            managed.fields[bucket] = managed.fields.pop(first)
        merged = fp.union(vs.fields, managed.fields[bucket].fields)
        managed.fields[bucket] = _Versioned(merged, vs.api_version, vs.applied)
        del managed.fields[ident]
        managed.times[bucket] = managed.times.get(ident)
        length -= 1


def _drop_empty(managed: _Managed) -> None:
    for ident in [i for i, vs in managed.fields.items() if not vs.fields]:
        del managed.fields[ident]


# =========================================================================================
# Helpers
# =========================================================================================
def _reset_set(reset_fields: Iterable[str]) -> FieldSet:
    return fp.from_paths(
        tuple(fp.field(part) for part in path.split(".")) for path in reset_fields if path
    )


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = dict(obj)
        meta = dict(meta)
        del meta["managedFields"]
        obj["metadata"] = meta
    return obj


def _zero_object(schemas: Schemas, root: Node, t: _Type) -> dict[str, Any]:
    """The empty object of a kind as Kubernetes' typed create compares against."""
    if not root.get("x-kubernetes-group-version-kind"):
        return {}
    zero = _zero_struct(t, 0)
    for name in _TOP_LEVEL_STRUCTS:
        if name in t.props and name not in zero:
            zero[name] = _zero_struct(t.field(name)[0], 1)
    return zero


def _zero_struct(t: _Type, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = _ZERO_FIELDS.get(t.def_name or "")
    if not fields or depth > 8:
        return out
    for name, zero in fields.items():
        if name not in t.props:
            continue
        out[name] = _zero_struct(t.field(name)[0], depth + 1) if zero == _STRUCT else zero
    return out


_ZEROS: dict[int, tuple[Node, dict[str, Any]]] = {}


def _zero_for(schemas: Schemas, root: Node, t: _Type) -> dict[str, Any]:
    hit = _ZEROS.get(id(root))
    if hit is not None and hit[0] is root:
        return hit[1]
    zero = _zero_object(schemas, root, t)
    if len(_ZEROS) >= 4096:
        _ZEROS.clear()
    _ZEROS[id(root)] = (root, zero)
    return zero


def _overlay(obj: dict[str, Any], zero: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as a Go object of its kind would read: struct fields it lacks present
    with their zero value (a view for comparisons; shares everything)."""
    out: dict[str, Any] | None = None
    for k, zv in zero.items():
        cur = obj.get(k, _ABSENT)
        if cur is _ABSENT:
            nv = zv
        elif isinstance(zv, dict) and zv and isinstance(cur, dict):
            nv = _overlay(cur, zv)
            if nv is cur:
                continue
        else:
            continue
        if out is None:
            out = dict(obj)
        out[k] = nv
    return obj if out is None else out


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value (orjson round trip; deepcopy for anything exotic)."""
    if not isinstance(value, (dict, list)):
        return value
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(value)


def _deep_copy(obj: dict[str, Any]) -> dict[str, Any]:
    out = _clone(obj)
    return out if isinstance(out, dict) else copy.deepcopy(obj)


def _gvk_string(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _object_ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    gvk = _gvk_string(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}; {gvk}"


# =========================================================================================
# Update (create, update, non-apply patch)
# =========================================================================================
def _update_managed(
    t: _Type,
    old: dict[str, Any],
    new: dict[str, Any],
    managed: _Managed,
    me: Ident,
    api_version: str,
    now: str,
    ignored: FieldSet,
) -> None:
    """Record an update by ``me`` (structured-merge-diff's Updater.Update as the
    managed-fields updater, strip-meta and cap-managers wrappers drive it)."""
    add, mod, rem = _comparison(t, old, new)
    if ignored:
        add = fp.recursive_difference(add, ignored)
        mod = fp.recursive_difference(mod, ignored)
        rem = fp.recursive_difference(rem, ignored)
    changed = fp.union(mod, add)
    if changed or rem:
        for ident, vs in list(managed.fields.items()):
            s = fp.difference(fp.difference(vs.fields, changed), rem)
            if s is not vs.fields:
                managed.fields[ident] = _Versioned(s, vs.api_version, vs.applied)
    _drop_empty(managed)
    own = fp.difference(changed, rem)
    if ignored:
        own = fp.recursive_difference(own, ignored)
    own = fp.difference(own, _STRIP)
    if own:
        previous = managed.fields.get(me)
        if previous is not None:
            own = fp.union(own, previous.fields)
        managed.fields[me] = _Versioned(own, api_version, False)
        managed.times[me] = now
    _cap_update_managers(managed)


def _is_reset(entries: Any) -> bool:
    if isinstance(entries, list):
        return not entries or (len(entries) == 1 and entries[0] == {})
    return False


def track_update(
    schemas: Schemas,
    root: Node,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    api_version: str,
    now: str,
    subresource: str = "",
    reset_fields: Sequence[str] = (),
) -> None:
    """Set ``new["metadata"]["managedFields"]`` for a create (``old`` is None), an
    update or a non-apply patch by ``manager`` (``Update`` operation).

    The manager gains the fields it added or changed, other managers lose the fields
    that changed, fields removed from the object leave every set, empty entries go.
    ``reset_fields`` are dotted paths the request cannot change and that are not
    tracked (``("status",)`` on the main resource of a kind with a status subresource,
    ``("spec",)`` or more on its ``status`` subresource). Managed fields sent in
    ``new`` replace the live ones (``[]`` or ``[{}]`` clears them); a subresource
    request always keeps the live ones. An update of an object that has no managed
    fields leaves it untracked, as Kubernetes does. ``now`` is the RFC 3339 time of
    the request. ``old`` is never modified."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    old_meta = old.get("metadata") if old is not None else None
    old_entries = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    sent = meta.pop("managedFields", None)

    managed: _Managed | None = None
    if not subresource and _is_reset(sent):
        managed = _Managed()
    elif not subresource and sent:
        try:
            managed = _decode_managed(sent)
        except ValueError:
            managed = None
        if managed is not None and not managed.fields:
            managed = None
    if managed is None:
        try:
            managed = _decode_managed(old_entries)
        except ValueError:
            managed = _Managed()

    is_create = old is None or not (isinstance(old_meta, dict) and old_meta.get("uid"))
    if not managed.fields and not is_create:
        return  # an object nobody tracks stays untracked until its first apply

    t = _root_type(schemas, root)
    zero = _zero_for(schemas, root, t)
    before = zero if old is None else _overlay(_without_managed_fields(old), zero)
    after = _overlay(new, zero)
    me = _ident(manager or "unknown", "Update", api_version, subresource)
    try:
        _update_managed(t, before, after, managed, me, api_version, now, _reset_set(reset_fields))
    except _TypeError:  # pragma: no cover - lenient walks do not raise
        if old_entries:
            meta["managedFields"] = _clone(old_entries)
        return
    encoded = _encode_managed(managed)
    if encoded:
        meta["managedFields"] = encoded


# =========================================================================================
# Apply
# =========================================================================================
class _Conflicts(Exception):
    def __init__(self, conflicts: list[tuple[Ident, tuple[str, ...]]]) -> None:
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts


def _conflict_error(conflicts: list[tuple[Ident, tuple[str, ...]]]) -> ApiError:
    causes = [
        Cause("FieldManagerConflict", f"conflict with {_print_manager(m)}", fp.path_string(p))
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_print_manager(m)}: {fp.path_string(p)}"
        )
    else:
        by_manager: dict[Ident, list[tuple[str, ...]]] = {}
        for m, p in conflicts:
            by_manager.setdefault(m, []).append(p)
        lines: list[str] = []
        for m in sorted(by_manager, key=_ident_json):
            lines.append(f"conflicts with {_print_manager(m)}:")
            lines.extend(f"- {fp.path_string(p)}" for p in by_manager[m])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": [c.to_dict() for c in causes]})


def _prune(t: _Type, merged: dict[str, Any], managed: _Managed, last: FieldSet) -> dict[str, Any]:
    """Remove what ``me`` applied last time but not now, unless another manager (or
    its new configuration) owns it; never remove what ``me`` did not own."""
    owned: FieldSet = {}
    for vs in managed.fields.values():
        owned = fp.union(owned, vs.fields)
    if not fp.difference(last, owned):
        # Everything applied last time is still owned (typically: the same configuration
        # again); the steps below would add every removed item back.
        return merged
    last_e = _ensure(t, last)
    owned_e = _ensure(t, owned)
    pruned = _remove(t, merged, last_e)
    merged_e = _ensure(t, _owned_by(t, merged))
    keep = fp.union(_ensure(t, _owned_by(t, pruned)), owned_e)
    pruned = _remove(t, merged, fp.difference(merged_e, keep))
    pruned_e = _ensure(t, _owned_by(t, pruned))
    pruned = _remove(t, merged, fp.intersection(fp.difference(merged_e, pruned_e), last_e))
    return pruned if isinstance(pruned, dict) else {}


def _owned_by(t: _Type, obj: Any) -> FieldSet:
    """The field set of a whole object (empty for a removed one)."""
    if obj is _ABSENT:
        return {}
    return _tfs(t, obj, True, None, ()) or {}


def _apply_ownership(
    t: _Type,
    live: dict[str, Any],
    merged: dict[str, Any],
    managed: _Managed,
    me: Ident,
    force: bool,
    ignored: FieldSet,
) -> None:
    add, mod, rem = _comparison(t, live, merged)
    if ignored:
        add = fp.recursive_difference(add, ignored)
        mod = fp.recursive_difference(mod, ignored)
        rem = fp.recursive_difference(rem, ignored)
    changed = fp.union(mod, add)
    taken: dict[Ident, FieldSet] = {}
    if changed:
        for ident, vs in managed.fields.items():
            if ident != me:
                both = fp.intersection(vs.fields, changed)
                if both:
                    taken[ident] = both
    if taken and not force:
        found = [
            (ident, path)
            for ident in sorted(taken, key=_ident_json)
            for path in fp.iterate(taken[ident])
        ]
        raise _Conflicts(found)
    for ident, vs in list(managed.fields.items()):
        if ident == me:
            continue
        s = fp.difference(fp.difference(vs.fields, taken.get(ident, _E)), rem)
        if s is not vs.fields:
            managed.fields[ident] = _Versioned(s, vs.api_version, vs.applied)
    _drop_empty(managed)


def _apply_once(
    t: _Type,
    live: dict[str, Any],
    config: dict[str, Any],
    config_set: FieldSet,
    managed: _Managed,
    me: Ident,
    api_version: str,
    force: bool,
    ignored: FieldSet,
) -> dict[str, Any]:
    out = _merge(t, live, config)
    merged: dict[str, Any] = out if isinstance(out, dict) else dict(config)
    last = managed.fields.get(me)
    managed.fields[me] = _Versioned(config_set, api_version, True)
    if last is not None and last.fields:
        merged = _prune(t, merged, managed, last.fields)
    _apply_ownership(t, live, merged, managed, me, force, ignored)
    return merged


def _copy_managed(managed: _Managed) -> _Managed:
    out = _Managed()
    out.fields = dict(managed.fields)
    out.times = dict(managed.times)
    return out


def _allowed_from_last_applied(t: _Type, live: dict[str, Any], api_version: str) -> FieldSet | None:
    """Fields kubectl's client-side apply recorded and that still have its values: an
    SSA by ``kubectl`` may take them over without conflict (the CSA -> SSA upgrade)."""
    meta = live.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str) or not text:
        return None
    try:
        last_applied = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != api_version:
        return None
    fields = _tfs(t, last_applied, True, None, ()) or {}
    add, mod, rem = _comparison(t, last_applied, live)
    return fp.difference(fp.difference(fp.difference(fields, mod), add), rem)


def _last_applied_value(config: dict[str, Any]) -> str:
    obj = _deep_copy(config)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
    return fp.to_json(obj) + "\n"


def apply(
    schemas: Schemas,
    root: Node,
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    *,
    force: bool,
    api_version: str,
    now: str,
    subresource: str = "",
    reset_fields: Sequence[str] = (),
    kind: str | None = None,
) -> dict[str, Any]:
    """Server-side apply of ``config`` by ``manager``; returns the new object with its
    ``managedFields``. ``live`` None means the apply creates the object.

    The configuration is merged into the live object by the schema; the manager then
    owns exactly the fields the configuration sets. Fields it applied before and
    omits now are removed unless another manager owns them. A field the
    configuration changes that another manager (Apply or Update) owns is a conflict:
    ``ApiError(409, "Conflict")`` worded and detailed as kube-apiserver does, unless
    ``force`` moves the ownership. Applying an equal value shares ownership. An
    object without managed fields first has its fields attributed to
    ``before-first-apply``; the ``kubectl`` manager may take over what kubectl's
    client-side apply recorded in its last-applied annotation. ``reset_fields`` and
    ``now`` are as for :func:`track_update` (reset fields are neither owned nor
    conflicting; values the configuration gives them are merged like the rest, and
    the registry's strategy resets them, as in Kubernetes); ``kind``, when given, must
    match the configuration's. Raises ``ApiError`` 400 for a configuration with
    ``managedFields`` or of another apiVersion/kind, 500 for one that does not fit
    the schema (duplicate or incomplete list keys), as Kubernetes does."""
    if not isinstance(config, dict):
        raise ApiError(400, "BadRequest", "the apply configuration must be an object")
    config_kind = str(config.get("kind") or "")
    config_version = str(config.get("apiVersion") or "")
    if kind is None:
        gvks = root.get("x-kubernetes-group-version-kind")
        if isinstance(gvks, list) and len(gvks) == 1 and isinstance(gvks[0], dict):
            kind = str(gvks[0].get("kind") or "") or None
    if (kind is not None and config_kind != kind) or config_version != api_version:
        raise ApiError(
            400, "BadRequest", f"invalid object type: {_gvk_string(config_version, config_kind)}"
        )
    config_meta = config.get("metadata")
    if isinstance(config_meta, dict) and config_meta.get("managedFields") is not None:
        raise ApiError(400, "BadRequest", "metadata.managedFields must be nil")

    t = _root_type(schemas, root)
    errors: list[str] = []
    config_set = _tfs(t, config, True, errors, ()) or {}
    if errors:
        detail = errors[0] if len(errors) == 1 else "errors:\n  " + "\n  ".join(errors)
        raise ApiError(
            500,
            "InternalError",
            f"failed to create typed patch object ({_object_ref(config)}): {detail}",
        )

    try:
        managed = _decode_managed(
            live.get("metadata", {}).get("managedFields")
            if live is not None and isinstance(live.get("metadata"), dict)
            else None
        )
    except ValueError as e:
        raise ApiError(500, "InternalError", f"failed to decode managed fields: {e}") from None

    ignored = _reset_set(reset_fields)
    if ignored:
        config_set = fp.recursive_difference(config_set, ignored)
    base = _without_managed_fields(live) if live is not None else {}
    me = _ident(manager or "unknown", "Apply", api_version, subresource)

    if not managed.fields and live is not None:
        # Fields set before anyone applied belong to "before-first-apply".
        first = _ident(BEFORE_FIRST_APPLY, "Update", api_version, subresource)
        zero = _zero_for(schemas, root, t)
        _update_managed(t, zero, _overlay(base, zero), managed, first, api_version, now, _E)

    attempt = _copy_managed(managed)
    try:
        merged = _apply_once(t, base, config, config_set, attempt, me, api_version, force, ignored)
    except _Conflicts as c:
        allowed = (
            _allowed_from_last_applied(t, base, api_version)
            if manager == "kubectl" and live is not None
            else None
        )
        if allowed is None:
            raise _conflict_error(c.conflicts) from None
        remaining = [(m, p) for m, p in c.conflicts if not fp.has(allowed, p)]
        if remaining:
            raise _conflict_error(remaining) from None
        attempt = _copy_managed(managed)
        merged = _apply_once(t, base, config, config_set, attempt, me, api_version, True, ignored)
    managed = attempt

    own = managed.fields.get(me)
    if own is not None:
        stripped = fp.difference(own.fields, _STRIP)
        if stripped:
            managed.fields[me] = _Versioned(stripped, own.api_version, True)
        else:
            del managed.fields[me]
    managed.times[me] = now

    result = _deep_copy(merged)
    meta = result.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        result["metadata"] = meta
    live_meta = base.get("metadata") if isinstance(base.get("metadata"), dict) else None
    if isinstance(live_meta, dict):
        for name in _SYSTEM_METADATA:
            if name not in meta and name in live_meta:
                meta[name] = _clone(live_meta[name])

    annotations = meta.get("annotations")
    if (
        manager == "kubectl"
        and isinstance(annotations, dict)
        and annotations.get(LAST_APPLIED_ANNOTATION)
    ):
        annotations[LAST_APPLIED_ANNOTATION] = _last_applied_value(config)

    encoded = _encode_managed(managed)
    if live is not None and result == base:
        # Only timestamps changed: keep the live managedFields so nothing is written.
        live_entries = live["metadata"].get("managedFields") or []
        if _same_but_times(encoded or [], live_entries):
            if live_entries:
                meta["managedFields"] = _clone(live_entries)
            return result
    if encoded:
        meta["managedFields"] = encoded
    return result


def _same_but_times(a: list[dict[str, Any]], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    ours = {_entry_key(e): {k: v for k, v in e.items() if k != "time"} for e in a}
    for e in b:
        if not isinstance(e, dict):
            return False
        mine = ours.get(_entry_key(e))
        theirs = {k: v for k, v in e.items() if k != "time"}
        if mine is None or mine != theirs:
            return False
    return True


def _entry_key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e.get("manager"), e.get("operation"), e.get("apiVersion"), e.get("subresource"))
