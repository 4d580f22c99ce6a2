"""The three PATCH formats of the Kubernetes API server, on plain JSON objects.

The HTTP layer calls one of these for ``PATCH`` requests, picked by ``Content-Type``
(server-side apply, ``application/apply-patch+yaml``, lives elsewhere):

* :func:`json_patch` — ``application/json-patch+json`` (RFC 6902), with the semantics of
  ``gopkg.in/evanphx/json-patch.v4``, the library kube-apiserver applies it with;
* :func:`merge_patch` — ``application/merge-patch+json`` (RFC 7386), as evanphx's
  ``MergePatch``;
* :func:`strategic_merge_patch` — ``application/strategic-merge-patch+json``, following
  ``k8s.io/apimachinery/pkg/util/strategicpatch`` (server side: parallel lists merged,
  unmatched nulls ignored), driven by the OpenAPI markers ``x-kubernetes-patch-strategy``
  and ``x-kubernetes-patch-merge-key`` (see :mod:`kubemodel.schema`) instead of Go
  struct tags. kube-apiserver refuses this patch type for custom resources (415); that
  check belongs to the caller.

Every function takes the current object and the decoded patch body, never mutates either
(the object may be a shared, read-only cached object) and returns a new object that shares
no container with its inputs. A bad patch raises :class:`~kubemodel.errors.ApiError`
with kube-apiserver's code, reason and message:

* a body of the wrong JSON type is ``400 BadRequest`` with Go's decoding message, e.g.
  ``json: cannot unmarshal object into Go value of type jsonpatch.Patch``; a merge patch
  that is not an object is ``400 BadRequest: Invalid JSON Patch`` (an array is ``422
  Invalid``: it would replace the whole object);
* a JSON patch operation that does not apply (failed ``test``, missing path, bad index,
  unknown ``op``) is ``422 Invalid`` with the fixed message *the server rejected our
  request due to an error in our request* — kube-apiserver drops the reason; here it is
  kept as the exception's ``__cause__`` for logs; more than 10000 operations is ``413``;
* malformed strategic-merge directives (``$deleteFromPrimitiveList``, ``$setElementOrder``
  without a ``/field``, a bad ``$retainKeys``) are ``400 BadRequest`` with apimachinery's
  message (``invalid patch format of retainKeys``…); lists of lists are ``422 Invalid``;
  the other strategic-merge errors (a missing merge key, an unknown or ``merge``
  ``$patch`` directive, ``$setElementOrder`` disagreeing with the patch list, mixed
  element types) reach kube-apiserver's client as ``500`` with no reason and Go's text,
  e.g. ``map: map[image:x] does not contain declared merge key: name``; so they do here.

Deliberate differences from kube-apiserver, all on malformed or ambiguous input:

* JSON patch: pointers must start with ``/`` (evanphx silently ignores the first segment
  of ``a/b``); ``test`` compares objects both ways (evanphx only checks the document's
  keys) and numbers by JSON type (``1`` is not ``1.0``, as in evanphx); evanphx's
  ``{'key':'value'}`` array-index extension is not supported. As in evanphx: negative
  array indices count from the end, ``replace`` of a missing object member adds it, a
  missing ``value`` means ``null``, ``test`` of a missing member against ``null`` passes,
  ``copy`` from a missing object member copies ``null``. ``max_copy_bytes`` bounds the
  JSON size of what one patch's ``copy`` operations add (evanphx's
  ``AccumulatedCopySizeLimit``, kube-apiserver's ``JSONPatchMaxCopyBytes``, 3 MiB there;
  the build step of the reconciler passes it too); past it the patch is ``422 Invalid``.
* Strategic merge: directives are resolved everywhere, also inside values that are new
  (kube-apiserver copies new subtrees raw and lets typed decoding drop the ``$`` keys),
  so ``$setElementOrder`` orders a new list, ``{$patch: replace, …}`` on a new key keeps
  its content (kube-apiserver drops the key), ``$patch: merge`` on a new key is rejected
  as it is on an existing one, and no directive ever reaches the result.
  ``$deleteFromPrimitiveList/<f>`` removes the listed values from ``f`` whatever ``f``'s
  strategy (apimachinery replaces a non-merging list with the deletion list).
  ``$setElementOrder`` over two empty lists is a no-op instead of an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from kubemodel.errors import ApiError, bad_request, invalid, invalid_object
from kubemodel.schema import Node, Schemas, patch_merge_key, patch_strategies

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchRejected",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

MAX_JSON_PATCH_OPERATIONS: Final = 10000

_REJECTED: Final = "the server rejected our request due to an error in our request"
_NOT_A_KIND: Final = (
    "couldn't get version/kind; json parse error: json: cannot unmarshal %s into Go value"
    r' of type struct { APIVersion string "json:\"apiVersion,omitempty\""; '
    r'Kind string "json:\"kind,omitempty\"" }'
)

# Strategic merge patch directives.
_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM: Final = "$deleteFromPrimitiveList"
_SET_ORDER: Final = "$setElementOrder"

_GO_MAP: Final = "map[string]interface {}"
_GO_SLICE: Final = "[]interface {}"
_ATOI: Final = re.compile(r"[+-]?[0-9]+")


class PatchRejected(Exception):
    """Why a patch did not apply, when kube-apiserver's answer does not say (``__cause__``)."""


# --- errors, worded as kube-apiserver words them ----------------------------------------
def _rejected(detail: str) -> ApiError:
    """422 Invalid with the generic wording of ``NewGenericServerResponse``."""
    error = ApiError(422, "Invalid", _REJECTED)
    error.__cause__ = PatchRejected(detail)
    return error


def _go_error(message: str) -> ApiError:
    """A plain Go error that reached kube-apiserver's response writer: 500, no reason."""
    return ApiError(500, "", message)


def _not_an_object(document: Any) -> ApiError:
    """The patched document is not an object, so it cannot decode into one (422)."""
    shown = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    cause = invalid("patch", shown, _NOT_A_KIND % _json_kind(document))
    return invalid_object("", "", "", [cause])


def _no_merge_key(item: Any, key: str) -> ApiError:
    return _go_error(f"map: {_go_value(item)} does not contain declared merge key: {key}")


def _bad_arg_type(expected: str, actual: Any) -> ApiError:
    return _go_error(f"expected a {expected}, but received a {_go_type(actual)}")


def _bad_patch_type(directive: Any, patch: dict[str, Any]) -> ApiError:
    return _go_error(f"unknown patch type: {_go_string(directive)} in map: {_go_value(patch)}")


# --- Go formatting, for messages that quote values ------------------------------------
def _json_kind(value: Any) -> str:
    """The JSON type as encoding/json names it in 'cannot unmarshal X' errors."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _go_type(value: Any) -> str:
    """``reflect.TypeOf(value)`` of a decoded JSON value, as ``%s`` prints it."""
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return _GO_MAP
    return _GO_SLICE


def _go_float(value: float) -> str:
    """``%v`` of a float64 (``%g``, shortest): exponent form outside [1e-4, 1e6)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    number = Decimal(repr(value)).normalize()
    exponent = number.adjusted()
    if exponent < -4 or exponent >= 6:
        mantissa = format(number.scaleb(-exponent), "f")
        return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return format(number, "f")


def _go_value(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` of a decoded JSON value (maps print with sorted keys)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(value[k])}" for k in sorted(value)) + "]"
    return "[" + " ".join(_go_value(v) for v in value) + "]"


def _go_string(value: Any) -> str:
    """``fmt.Sprintf("%s", value)``: strings as they are, other scalars as Go flags them."""
    if isinstance(value, str | dict | list):
        return _go_value(value)
    if value is None:
        return "%!s(<nil>)"
    return f"%!s({_go_type(value)}={_go_value(value)})"


# --- plain JSON helpers ---------------------------------------------------------------
def _copy(value: Any) -> Any:
    """A deep copy of a decoded JSON value (containers only; scalars are immutable)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _tag(value: Any) -> tuple[str, Any]:
    """A hashable identity with Go's interface equality: 1, 1.0 and true all differ."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True, separators=(",", ":")))


def _equal(left: Any, right: Any) -> bool:
    """Structural JSON equality, numbers compared within their JSON type."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(_equal(v, right[k]) for k, v in left.items())
        )
    if isinstance(left, list):
        return (
            isinstance(right, list)
            and len(left) == len(right)
            and all(_equal(a, b) for a, b in zip(left, right))
        )
    return _tag(left) == _tag(right)


# ======================================================================================
# RFC 6902 JSON patch (evanphx/json-patch v4 semantics)
# ======================================================================================
JSON_PATCH_MAX_COPY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's JSONPatchMaxCopyBytes: what one patch's copies may add (3 MiB)."""


@dataclass
class _CopyBudget:
    """What the ``copy`` operations of one patch have added so far, in JSON bytes."""

    limit: int | None
    used: int = 0

    def charge(self, value: Any) -> None:
        if self.limit is None:
            return
        self.used += len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if self.used > self.limit:
            raise _rejected(
                "Unable to complete the copy, the accumulated size increase of copy is "
                f"{self.used}, exceeding the limit {self.limit}"
            )


def json_patch(
    obj: dict[str, Any], patch: Any, *, max_copy_bytes: int | None = None
) -> dict[str, Any]:
    """Apply an ``application/json-patch+json`` body (a list of operations) to ``obj``.

    ``max_copy_bytes`` (None: unlimited) bounds what ``copy`` operations may add."""
    if patch is None:  # decodes to an empty patch
        return dict(_copy(obj))
    if not isinstance(patch, list):
        raise bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type jsonpatch.Patch"
        )
    for operation in patch:
        if operation is not None and not isinstance(operation, dict):
            raise bad_request(
                f"json: cannot unmarshal {_json_kind(operation)} into Go value of type "
                "jsonpatch.Operation"
            )
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}",
        )
    document: dict[str, Any] = _copy(obj)
    copies = _CopyBudget(max_copy_bytes)
    for operation in patch:
        _apply_operation(document, operation or {}, copies)
    return document


def _string_member(operation: dict[str, Any], name: str, failure: str) -> str:
    value = operation.get(name)
    if value is None:
        raise _rejected(f"{failure}: missing value")
    if not isinstance(value, str):
        raise _rejected(f"{failure}: json: cannot unmarshal {_json_kind(value)} into string")
    return value


def _apply_operation(
    document: dict[str, Any], operation: dict[str, Any], copies: _CopyBudget
) -> None:
    kind = operation.get("op")
    if not isinstance(kind, str):
        kind = "unknown"
    value = operation.get("value")
    if kind == "add":
        path = _string_member(operation, "path", "add operation failed to decode path")
        parent, key = _find(document, path)
        if parent is None:
            raise _rejected(f'add operation does not apply: doc is missing path: "{path}"')
        _add(parent, key, _copy(value), path)
    elif kind == "remove":
        path = _string_member(operation, "path", "remove operation failed to decode path")
        parent, key = _find(document, path)
        if parent is None:
            raise _rejected(f'remove operation does not apply: doc is missing path: "{path}"')
        _remove(parent, key, path)
    elif kind == "replace":
        path = _string_member(operation, "path", "replace operation failed to decode path")
        parent, key = _find(document, path)
        if parent is None:
            raise _rejected(f"replace operation does not apply: doc is missing path: {path}")
        _get(parent, key, path)  # an object's missing member is fine (evanphx v4)
        _set(parent, key, _copy(value))
    elif kind in ("move", "copy"):
        source = _string_member(operation, "from", f"{kind} operation failed to decode from")
        parent, key = _find(document, source)
        if parent is None:
            raise _rejected(f"{kind} operation does not apply: doc is missing from path: {source}")
        moved = _get(parent, key, source)
        if kind == "move":
            _remove(parent, key, source)
        else:
            moved = _copy(moved)
            copies.charge(moved)
        path = _string_member(operation, "path", f"{kind} operation failed to decode path")
        parent, key = _find(document, path)
        if parent is None:
            raise _rejected(
                f"{kind} operation does not apply: doc is missing destination path: {path}"
            )
        _add(parent, key, moved, path)
    elif kind == "test":
        path = _string_member(operation, "path", "test operation failed to decode path")
        parent, key = _find(document, path)
        if parent is None:
            raise _rejected(f"test operation does not apply: is missing path: {path}")
        current = _get(parent, key, path)
        if current is None and value is None:
            return
        if current is None or value is None or not _equal(current, value):
            raise _rejected(f"testing value {path} failed: test failed")
    else:
        raise _rejected(f"Unexpected kind: {kind}")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _find(document: dict[str, Any], path: str) -> tuple[dict[str, Any] | list[Any] | None, str]:
    """The container holding the last token of ``path``, and that token (decoded)."""
    if not path.startswith("/"):
        return None, ""
    tokens = path.split("/")[1:]
    container: dict[str, Any] | list[Any] = document
    for token in tokens[:-1]:
        step = _unescape(token)
        if isinstance(container, dict):
            child = container.get(step)
        else:
            index = _index(container, step, 0)
            child = None if index is None else container[index]
        if not isinstance(child, dict | list):
            return None, ""
        container = child
    return container, _unescape(tokens[-1])


def _index(array: list[Any], token: str, extra: int) -> int | None:
    """Resolve an array index (negative counts from the end), or None when out of range.

    ``extra`` is 1 for an insertion, where one past the last element is allowed.
    """
    if not _ATOI.fullmatch(token):
        return None
    index = int(token)
    size = len(array) + extra
    if index >= size or index < -size:
        return None
    return index + size if index < 0 else index


def _get(container: dict[str, Any] | list[Any], key: str, path: str) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    index = _index(container, key, 0)
    if index is None:
        raise _rejected(f"error in operation for path: '{path}': invalid index referenced")
    return container[index]


def _set(container: dict[str, Any] | list[Any], key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    index = _index(container, key, 0)
    if index is None:
        raise _rejected(f"error in replace: invalid index referenced: {key}")
    container[index] = value


def _add(container: dict[str, Any] | list[Any], key: str, value: Any, path: str) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    index = _index(container, key, 1)
    if index is None:
        raise _rejected(f"error in add for path: '{path}': invalid index referenced: {key}")
    container.insert(index, value)


def _remove(container: dict[str, Any] | list[Any], key: str, path: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _rejected(
                f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}"
            )
        del container[key]
        return
    index = _index(container, key, 0)
    if index is None:
        raise _rejected(f"error in remove for path: '{path}': invalid index referenced: {key}")
    del container[index]


# ======================================================================================
# RFC 7386 JSON merge patch (evanphx/json-patch v4 MergePatch)
# ======================================================================================
def merge_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an ``application/merge-patch+json`` body (an object) to ``obj``."""
    if isinstance(patch, list):  # evanphx returns the array as the new document
        raise _not_an_object(_pruned(patch))
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    document: dict[str, Any] = _copy(obj)
    _merge_objects(document, patch)
    return document


def _merge_objects(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_objects(target[key], value)
        else:
            target[key] = _pruned(value)


def _pruned(value: Any) -> Any:
    """A copy of a new value without null object members (null array elements stay)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


# ======================================================================================
# Strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch, server side)
# ======================================================================================
def strategic_merge_patch(
    obj: dict[str, Any], patch: Any, schemas: Schemas, root: Node
) -> dict[str, Any]:
    """Apply an ``application/strategic-merge-patch+json`` body to ``obj``.

    ``root`` is the schema node of ``obj``'s kind (e.g.
    ``schema.builtin().root("apps", "v1", "Deployment")``); fields it does not describe
    merge as in a JSON merge patch (lists replaced, maps merged, ``null`` deletes).
    """
    if patch is None:  # decodes to an empty map
        return dict(_copy(obj))
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type {_GO_MAP}"
        )
    return _Strategic(schemas).merge_map(_copy(obj), patch, root)


@dataclass(frozen=True)
class _Field:
    """What the schema says about one field: its (resolved) node and patch markers."""

    node: Node | None = None
    strategy: str = ""  # "merge", "replace" or "" (retainKeys needs no schema on apply)
    merge_key: str = ""


_NO_FIELD: Final = _Field()
_DROP: Final = object()  # a new value that is a `$patch: delete` map: the key goes away


def _extract_field(key: str, prefix: str) -> str:
    head, slash, field = key.partition("/")
    if not slash or head != prefix:
        if prefix == _DELETE_FROM:
            raise bad_request("invalid patch format of primitive list")
        raise bad_request("invalid patch format of setElementOrder list")
    return field


def _element_kind(*lists: list[Any]) -> str | None:
    """The common Go type of all elements (apimachinery's ``sliceElementType``)."""
    kind: str | None = None
    for values in lists:
        for value in values:
            current = _go_type(value)
            if kind is None:
                if isinstance(value, list):
                    raise _rejected("lists of lists are not supported")
                kind = current
            elif current != kind:
                raise _go_error(f"list element types are not identical: {_go_value(list(lists))}")
    return kind


def _ordered(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], key: Any
) -> list[Any]:
    """Order a merged list as apimachinery does (``normalizeElementOrder``).

    Items named in ``patch_order`` keep that relative order, the others (server-only)
    keep their order in ``server_order``; the two runs are interleaved so that a
    server-only item stays before a patch item it preceded on the server. An item new
    to the server therefore lands before the server-only items that follow the last
    patched one: ``[a, b]`` patched with ``[c]`` gives ``[c, a, b]``, with ``[a, c]``
    gives ``[a, c, b]``, exactly as kube-apiserver answers.
    """
    patch_index: dict[tuple[str, Any], int] = {}
    for position, item in enumerate(patch_order):
        patch_index.setdefault(key(item), position)
    server_index: dict[tuple[str, Any], int] = {}
    for position, item in enumerate(server_order):
        server_index.setdefault(key(item), position)
    from_patch = [m for m in merged if key(m) in patch_index]
    server_only = [m for m in merged if key(m) not in patch_index]
    from_patch.sort(key=lambda m: patch_index[key(m)])
    server_only.sort(key=lambda m: server_index.get(key(m), len(server_order)))
    result: list[Any] = []
    i = j = 0
    while i < len(server_only) and j < len(from_patch):
        left = server_index.get(key(server_only[i]))
        right = server_index.get(key(from_patch[j]))
        if left is not None and right is not None and left < right:
            result.append(server_only[i])
            i += 1
        else:
            result.append(from_patch[j])
            j += 1
    result.extend(server_only[i:])
    result.extend(from_patch[j:])
    return result


class _Strategic:
    """One strategic merge: walks the patch alongside the schema."""

    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas

    # --- schema -------------------------------------------------------------------------
    def field(self, node: Node | None, name: str) -> _Field:
        if not node:
            return _NO_FIELD
        resolved = self.schemas.resolve(node)
        properties = resolved.get("properties") or {}
        raw = properties.get(name)
        if raw is None:
            extra = resolved.get("additionalProperties")
            raw = extra if isinstance(extra, dict) else None
        if raw is None:
            return _NO_FIELD
        child = self.schemas.resolve(raw) or None
        # Markers sit beside a $ref on the property, or on the resolved node.
        strategies = patch_strategies(raw) or (patch_strategies(child) if child else set())
        merge_key = patch_merge_key(raw) or (patch_merge_key(child) if child else None)
        strategy = next((s for s in sorted(strategies) if s != "retainKeys"), "")
        return _Field(child, strategy, merge_key or "")

    def items(self, field: _Field) -> _Field:
        return _Field(self.schemas.items(field.node) if field.node else None)

    # --- maps ---------------------------------------------------------------------------
    def merge_map(
        self, original: dict[str, Any], patch: dict[str, Any], node: Node | None
    ) -> dict[str, Any]:
        """Merge ``patch`` into ``original`` (a private copy, changed in place)."""
        if _PATCH in patch:
            directive = patch[_PATCH]
            if directive == "replace":
                rest = {k: v for k, v in patch.items() if k != _PATCH}
                return self.merge_map({}, rest, node)
            if directive == "delete":
                return {}
            raise _bad_patch_type(directive, patch)

        self.retain_keys(original, patch)
        ordered = self.set_element_order(original, patch, node)
        deletions: list[tuple[str, Any]] = []
        for key, value in patch.items():
            if key == _RETAIN_KEYS or key.startswith(_SET_ORDER) or key in ordered:
                continue
            if key.startswith(_DELETE_FROM):
                deletions.append((_extract_field(key, _DELETE_FROM), value))
                continue
            self.merge_entry(original, key, value, node)
        for key, value in deletions:
            self.delete_from_list(original, key, value)
        return original

    def merge_entry(
        self, original: dict[str, Any], key: str, value: Any, node: Node | None
    ) -> None:
        if value is None:
            original.pop(key, None)
            return
        field = self.field(node, key)
        current = original.get(key, _DROP)
        if isinstance(current, dict) and isinstance(value, dict):
            if field.strategy == "replace":
                original[key] = self.merge_map({}, value, field.node)
            else:
                original[key] = self.merge_map(current, value, field.node)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = self.merge_list(current, value, field)
        else:  # new key, scalar, or a change of type: take the patch value
            new = self.new_value(value, field)
            if new is _DROP:
                original.pop(key, None)
            else:
                original[key] = new

    def new_value(self, value: Any, field: _Field) -> Any:
        """A patch value where there was nothing: directives resolved, nulls dropped."""
        if isinstance(value, dict):
            if value.get(_PATCH) == "delete":
                return _DROP
            return self.merge_map({}, value, field.node)
        if isinstance(value, list):
            return self.merge_list([], value, field)
        return value

    def retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        if _RETAIN_KEYS not in patch:
            return
        retained = patch[_RETAIN_KEYS]
        if not isinstance(retained, list):
            raise bad_request("invalid patch format of retainKeys")
        names = {v for v in retained if isinstance(v, str)}
        for key, value in patch.items():
            if value is None or key == _RETAIN_KEYS:
                continue
            if key.startswith(_DELETE_FROM) or key.startswith(_SET_ORDER):
                continue
            if key not in names:
                raise bad_request("invalid patch format of retainKeys")
        for key in [k for k in original if k not in names]:
            del original[key]

    def delete_from_list(self, original: dict[str, Any], key: str, values: Any) -> None:
        if values is None:  # as apimachinery: a null deletion list deletes the field
            original.pop(key, None)
            return
        current = original.get(key)
        if not isinstance(current, list) or not isinstance(values, list):
            return
        doomed = {_tag(v) for v in values}
        original[key] = [v for v in current if _tag(v) not in doomed]

    # --- $setElementOrder ------------------------------------------------------------
    def set_element_order(
        self, original: dict[str, Any], patch: dict[str, Any], node: Node | None
    ) -> set[str]:
        """Merge each list that has a ``$setElementOrder/<f>`` and order it; their names."""
        done: set[str] = set()
        for directive, order in patch.items():
            if not directive.startswith(_SET_ORDER):
                continue
            if not isinstance(order, list):
                raise _bad_arg_type(_GO_SLICE, order)
            key = _extract_field(directive, _SET_ORDER)
            in_original, in_patch = key in original, key in patch
            current, change = original.get(key), patch.get(key)
            if in_original and not isinstance(current, list):
                raise _bad_arg_type(_GO_SLICE, current)
            if in_patch and not isinstance(change, list):
                raise _bad_arg_type(_GO_SLICE, change)
            current_list: list[Any] = current or []
            change_list: list[Any] = change or []
            field = self.field(node, key)
            self.check_order(change_list, order, field.merge_key)
            if in_original and in_patch:
                merged = self.merge_list(current_list, change_list, field)
            elif in_patch:
                merged = self.new_value(change_list, field)
            elif in_original:
                merged = current_list
            else:
                continue
            original[key] = self.reorder(merged, order, current_list, change_list, field.merge_key)
            done.add(key)
        return done

    def check_order(self, change: list[Any], order: list[Any], merge_key: str) -> None:
        """The patch list must be a subsequence of the ``$setElementOrder`` list."""
        if not change or not order:
            return
        items = change
        if merge_key:
            for item in change:
                if not isinstance(item, dict):
                    raise _bad_arg_type(_GO_MAP, item)
            items = [i for i in change if i.get(_PATCH) != "delete"]
        matched = position = 0
        while matched < len(items) and position < len(order):
            item = items[matched]
            if isinstance(item, dict) and _PATCH in item:
                matched += 1
                continue
            if self.same_key(item, order[position], merge_key):
                matched += 1
            position += 1
        if matched < len(items):
            raise _go_error(
                f"the order in patch list:\n{_go_value(change)}\n doesn't match "
                f"{_SET_ORDER} list:\n{_go_value(order)}"
            )

    @staticmethod
    def same_key(left: Any, right: Any, merge_key: str) -> bool:
        if not merge_key:
            return _tag(left) == _tag(right)
        for item in (left, right):
            if not isinstance(item, dict):
                raise _bad_arg_type(_GO_MAP, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        return _tag(left[merge_key]) == _tag(right[merge_key])

    def reorder(
        self,
        merged: list[Any],
        order: list[Any],
        current: list[Any],
        change: list[Any],
        merge_key: str,
    ) -> list[Any]:
        if merge_key:
            for item in [*merged, *order]:
                if not isinstance(item, dict):
                    raise _bad_arg_type(_GO_MAP, item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        kind = _element_kind(current, change)
        if kind is None or (kind == _GO_MAP and not merge_key):
            return merged  # nothing to order by
        if merge_key:
            return _ordered(merged, order, current, lambda m: _tag(m[merge_key]))
        return _ordered(merged, order, current, _tag)

    # --- lists --------------------------------------------------------------------------
    def merge_list(self, original: list[Any], patch: list[Any], field: _Field) -> list[Any]:
        items = self.items(field)
        if field.strategy != "merge":  # replace the list
            out = [self.new_value(v, items) for v in patch]
            return [v for v in out if v is not _DROP]
        if not original and not patch:
            return []
        kind = _element_kind(original, patch)
        if kind != _GO_MAP:
            merged: list[Any] = []
            seen: set[tuple[str, Any]] = set()
            for value in [*original, *patch]:
                if _tag(value) not in seen:
                    seen.add(_tag(value))
                    merged.append(value)
            return _ordered(merged, patch, original, _tag)
        key = field.merge_key
        if not key:
            raise _go_error("cannot merge lists without merge key for type struct")

        def same(item: dict[str, Any], value: Any) -> bool:
            return key in item and _tag(item[key]) == _tag(value)

        working = list(original)
        rest: list[dict[str, Any]] = []
        replace = False
        for element in patch:
            if _PATCH not in element:
                rest.append(element)
                continue
            directive = element[_PATCH]
            if directive == "delete":
                if key not in element:
                    raise _no_merge_key(element, key)
                working = [w for w in working if not same(w, element[key])]
            elif directive == "replace":
                replace = True
            elif directive == "merge":
                raise _go_error("merging lists cannot yet be specified in the patch")
            else:
                raise _bad_patch_type(directive, element)
        if replace:
            working = [self.merge_map({}, r, items.node) for r in rest]
            rest = []
        server_order = list(working)
        for element in rest:
            if key not in element:
                raise _no_merge_key(element, key)
            index = next((i for i, w in enumerate(working) if same(w, element[key])), None)
            if index is None:
                working.append(self.merge_map({}, element, items.node))
            else:
                working[index] = self.merge_map(working[index], element, items.node)
        for item in working:
            if key not in item:
                raise _no_merge_key(item, key)
        return _ordered(working, rest, server_order, lambda m: _tag(m[key]))
