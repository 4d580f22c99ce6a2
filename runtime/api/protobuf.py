"""Decode Kubernetes protobuf request bodies into the JSON objects the API works with.

Typed clients (kubectl's ``create namespace|configmap|secret|deployment|job|...``,
``drain``'s Eviction, ``create token``'s TokenRequest, client-go in general) send
``Content-Type: application/vnd.kubernetes.protobuf``. Such a body is the magic
``k8s\\x00`` followed by a ``runtime.Unknown`` message::

    message Unknown { TypeMeta typeMeta = 1; bytes raw = 2;
                      string contentEncoding = 3; string contentType = 4; }
    message TypeMeta { string apiVersion = 1; string kind = 2; }

where ``raw`` is the object's own message. :func:`decode` turns it into exactly the dict
``encoding/json`` would have produced from the same Go object: JSON field names, Go's
``omitempty`` (a zero value field is left out unless the Go field is a pointer, which is
kept when it was set, even to zero), non-``omitempty`` nil slices and maps as ``null``,
embedded structs inlined, map keys sorted, ``[]byte`` as base64, and the apimachinery
types in their JSON form: ``Quantity`` as its string, ``IntOrString`` as an int or a
string, ``Time`` as RFC 3339 seconds (``null`` when zero), ``MicroTime`` with
microseconds, ``Duration`` as Go prints it (``1h0m0s``), ``RawExtension`` and
``FieldsV1`` as the JSON they carry.

The field tables come from :mod:`runtime.api.proto_schema`. Unknown fields are skipped,
as Go's decoder does. An ``apiVersion``/``kind`` without a table is a 415 (the client
may send JSON instead); bytes that are not valid protobuf for the declared kind are a 400.
"""

from __future__ import annotations

import base64
import datetime as _dt
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from kubemodel import errors
from runtime.api import proto_schema

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5

_VARINT_KINDS = frozenset({"bool", "i32", "i64", "u32", "u64"})
_SCALAR_ZERO: dict[str, Any] = {
    "bool": False,
    "i32": 0,
    "i64": 0,
    "u32": 0,
    "u64": 0,
    "f32": 0.0,
    "f64": 0.0,
    "str": "",
}
# JSON of a zero-valued (non-pointer) special type, as its Go MarshalJSON writes it.
_SPECIAL_ZERO: dict[str, Any] = {
    "Time": None,
    "MicroTime": None,
    "Duration": "0s",
    "Quantity": "0",
    "IntOrString": 0,
    "RawExtension": None,
    "FieldsV1": None,
}


class _Malformed(Exception):
    """Bytes that are not valid protobuf (turned into a 400 by :func:`decode`)."""


# --------------------------------------------------------------------------- wire format


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return ``(value, next position)``."""
    if pos < end:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise _Malformed("varint longer than 10 bytes")


def _skip(buf: bytes, pos: int, end: int, wire: int, number: int) -> int:
    """Skip the value of an unknown field; return the position after it."""
    if wire == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire == _FIXED64:
        pos += 8
    elif wire == _FIXED32:
        pos += 4
    elif wire == _LEN:
        size, pos = _varint(buf, pos, end)
        pos += size
    elif wire == _START_GROUP:
        while True:
            if pos >= end:
                raise _Malformed(f"unterminated group (field {number})")
            key, pos = _varint(buf, pos, end)
            if key & 7 == _END_GROUP:
                if key >> 3 != number:
                    raise _Malformed(f"mismatched end of group (field {number})")
                break
            pos = _skip(buf, pos, end, key & 7, key >> 3)
    else:
        raise _Malformed(f"invalid wire type {wire} (field {number})")
    if pos > end:
        raise _Malformed(f"truncated field {number}")
    return pos


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    name: str  # "" for an embedded struct inlined into its parent
    omitempty: bool
    omitzero: bool
    pointer: bool
    shape: str  # "one", "list" (repeated), "wrapped" (named slice as message), "map"
    elem: str  # scalar kind, special type name, or message name
    map_value_wrapped: bool = False  # map value is a named slice (``ExtraValue``)

    @property
    def nilable(self) -> bool:
        """Whether the Go field can be nil (JSON ``null`` unless omitted)."""
        return self.pointer or self.shape != "one" or self.elem == "bytes"


# What to write for a field that is absent from the wire...
_ABSENT_SKIP, _ABSENT_NULL, _ABSENT_CONST, _ABSENT_STRUCT, _ABSENT_INLINE = range(5)
# ...and for one that is present.
_KEEP, _OMIT_ZERO, _OMIT_EMPTY, _SORT_MAP, _WRAPPED, _OMIT_ZERO_STRUCT, _INLINE = range(7)


@dataclass(frozen=True, slots=True)
class _Message:
    name: str
    fields: tuple[_Field, ...]
    by_number: dict[int, _Field]
    # Per field, in order: (number, JSON name, absent action, present action, zero value).
    plan: tuple[tuple[int, str, int, int, Any], ...]


def _plan(field: _Field) -> tuple[int, str, int, int, Any]:
    """Precompute how Go's ``encoding/json`` writes ``field`` (see :func:`_to_json`)."""
    omit = field.omitempty or field.omitzero
    if not field.name:
        return field.number, "", _ABSENT_INLINE, _INLINE, None
    if field.nilable:
        absent = _ABSENT_SKIP if omit else _ABSENT_NULL
    elif field.elem in _SCALAR_ZERO:
        absent = _ABSENT_SKIP if field.omitempty else _ABSENT_CONST
    elif field.elem in _SPECIAL_ZERO:
        zero_is_omitted = field.omitzero and _SPECIAL_ZERO[field.elem] is None
        absent = _ABSENT_SKIP if zero_is_omitted else _ABSENT_CONST
    else:
        absent = _ABSENT_STRUCT
    if field.shape == "map":
        present = _SORT_MAP
    elif field.shape == "wrapped":
        present = _WRAPPED
    elif not omit or (field.pointer and field.shape == "one"):
        present = _KEEP
    elif field.shape != "one" or field.elem == "bytes":
        present = _OMIT_EMPTY
    elif field.elem in _SCALAR_ZERO:
        present = _OMIT_ZERO
    elif field.omitzero:
        present = _OMIT_ZERO_STRUCT
    else:
        present = _KEEP  # omitempty has no effect on a Go struct value
    zero = _SCALAR_ZERO.get(field.elem, _SPECIAL_ZERO.get(field.elem))
    return field.number, field.name, absent, present, zero


def _parse_field(spec: str) -> _Field:
    number, _, rest = spec.partition("=")
    name, _, typ = rest.partition(":")
    bare = name.rstrip("?~")
    omitempty = "?" in name[len(bare) :]
    omitzero = "~" in name[len(bare) :]
    name = bare
    pointer = typ.startswith("*")
    typ = typ.lstrip("*")
    wrapped_value = False
    if typ.startswith("{"):
        key, _, typ = typ[1:].partition("}")
        if key != "str":
            raise ValueError(f"map key {key!r} is not supported")
        shape = "map"
        if typ.startswith("@[]"):
            typ, wrapped_value = typ[3:], True
    elif typ.startswith("@[]"):
        shape, typ = "wrapped", typ[3:]
    elif typ.startswith("[]"):
        shape, typ = "list", typ[2:]
    else:
        shape = "one"
    return _Field(int(number), name, omitempty, omitzero, pointer, shape, typ, wrapped_value)


@cache
def _message(name: str) -> _Message:
    spec = proto_schema.MESSAGES.get(name)
    if spec is None:
        raise KeyError(name)
    fields = tuple(_parse_field(s) for s in spec.split())
    return _Message(name, fields, {f.number: f for f in fields}, tuple(map(_plan, fields)))


@cache
def _empty_json(name: str) -> bytes:
    """The JSON of a message's zero value, serialised (callers get fresh copies)."""
    return orjson.dumps(_decode_message(_message(name), b"", 0, 0))


def _empty(name: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(_empty_json(name))
    return value


def message_for(api_version: str, kind: str) -> str | None:
    """The table's message name for ``apiVersion``/``kind``, or None if there is none."""
    name = proto_schema.KINDS.get(f"{api_version}/{kind}")
    if name is None and kind == "DeleteOptions":  # every group version registers it
        name = "meta.v1.DeleteOptions"
    return name


# --------------------------------------------------------------------------- special types


def _fields_of(buf: bytes, start: int, end: int) -> dict[int, tuple[int, Any]]:
    """Last value of each field of a small message: number -> (wire type, value)."""
    out: dict[int, tuple[int, Any]] = {}
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            out[number] = (wire, value)
        elif wire == _LEN:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Malformed(f"truncated field {number}")
            out[number] = (wire, buf[pos : pos + size])
            pos += size
        else:
            pos = _skip(buf, pos, end, wire, number)
    return out


def _get(fields: dict[int, tuple[int, Any]], number: int, wire: int, default: Any) -> Any:
    got = fields.get(number)
    if got is None:
        return default
    if got[0] != wire:
        raise _Malformed(f"wrong wire type {got[0]} for field {number}")
    return got[1]


def _as_str(raw: bytes) -> str:
    # Go's JSON encoder writes invalid UTF-8 as U+FFFD.
    return raw.decode("utf-8", "replace")


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _timestamp(buf: bytes, start: int, end: int, micro: bool) -> str | None:
    if start == end:  # the zero time is marshalled as an empty message
        return None
    fields = _fields_of(buf, start, end)
    seconds = _signed(_get(fields, 1, _VARINT, 0), 64)
    nanos = _signed(_get(fields, 2, _VARINT, 0), 32)
    try:
        moment = _EPOCH + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as exc:
        raise _Malformed(f"time out of range: {seconds}s") from exc
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return f"{text}.{moment.microsecond:06d}Z" if micro else f"{text}Z"


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's ``fmtFrac``: the fraction digits of ``v / 10**prec`` and the integer part."""
    digits = ""
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        v //= 10
    return ("." + digits if printed else ""), v


def go_duration(nanoseconds: int) -> str:
    """Format a duration as Go's ``time.Duration.String`` does (``1h2m3.5s``, ``250ms``)."""
    if nanoseconds == 0:
        return "0s"
    neg = nanoseconds < 0
    u = -nanoseconds if neg else nanoseconds
    sign = "-" if neg else ""
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            frac, whole = _fmt_frac(u, 3)
            return f"{sign}{whole}{frac}µs"
        frac, whole = _fmt_frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, whole = _fmt_frac(u, 9)
    out = f"{whole % 60}{frac}s"
    whole //= 60
    if whole > 0:
        out = f"{whole % 60}m{out}"
        whole //= 60
        if whole > 0:
            out = f"{whole}h{out}"
    return sign + out


def _raw_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Malformed(f"embedded raw object is not JSON: {exc}") from exc


def _special(kind: str, buf: bytes, start: int, end: int) -> Any:
    if kind == "Time":
        return _timestamp(buf, start, end, micro=False)
    if kind == "MicroTime":
        return _timestamp(buf, start, end, micro=True)
    fields = _fields_of(buf, start, end)
    if kind == "Quantity":
        value = _get(fields, 1, _LEN, b"")
        return _as_str(value) if value else "0"
    if kind == "IntOrString":
        typ = _signed(_get(fields, 1, _VARINT, 0), 64)
        if typ == 0:
            return _signed(_get(fields, 2, _VARINT, 0), 32)
        if typ == 1:
            return _as_str(_get(fields, 3, _LEN, b""))
        raise _Malformed(f"impossible IntOrString type {typ}")
    if kind == "Duration":
        return go_duration(_signed(_get(fields, 1, _VARINT, 0), 64))
    if kind in ("RawExtension", "FieldsV1"):
        return _raw_json(_get(fields, 1, _LEN, b""))
    raise AssertionError(kind)  # pragma: no cover - the table names no other


# --------------------------------------------------------------------------- messages


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "bool":
        return value != 0
    if kind == "i32":
        return _signed(value, 32)
    if kind == "i64":
        return _signed(value, 64)
    if kind == "u32":
        return value & 0xFFFFFFFF
    if kind == "u64":
        return value
    if kind == "f64":
        return float(struct.unpack("<d", value)[0])
    if kind == "f32":
        return float(struct.unpack("<f", value)[0])
    raise AssertionError(kind)  # pragma: no cover


def _read_scalar(elem: str, wire: int, buf: bytes, pos: int, end: int) -> tuple[Any, int]:
    """Read a varint or fixed-width scalar at ``pos``; return ``(JSON value, next position)``."""
    raw: Any
    if wire == _VARINT:
        raw, pos = _varint(buf, pos, end)
    else:
        width = 8 if wire == _FIXED64 else 4
        if pos + width > end:
            raise _Malformed("truncated fixed-width value")
        raw, pos = buf[pos : pos + width], pos + width
    return _scalar(elem, wire, raw), pos


def _element(elem: str, buf: bytes, start: int, end: int) -> Any:
    """A length-delimited element of kind ``elem`` as JSON."""
    if elem == "str":
        return _as_str(buf[start:end])
    if elem == "bytes":
        return base64.b64encode(buf[start:end]).decode("ascii")
    if elem in _SPECIAL_ZERO:
        return _special(elem, buf, start, end)
    return _decode_message(_message(elem), buf, start, end)


def _wire_of(elem: str) -> int:
    if elem in _VARINT_KINDS:
        return _VARINT
    if elem == "f64":
        return _FIXED64
    if elem == "f32":
        return _FIXED32
    return _LEN


def _wrapped_list(elem: str, buf: bytes, start: int, end: int) -> list[Any]:
    """A named slice carried as a message: field 1 repeats the elements."""
    items: list[Any] = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 1 and wire == _LEN and _wire_of(elem) == _LEN:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Malformed("truncated list item")
            items.append(_element(elem, buf, pos, pos + size))
            pos += size
        elif number == 1:
            raise _Malformed(f"wrong wire type {wire} for list items")
        else:
            pos = _skip(buf, pos, end, wire, number)
    return items


def _map_entry(field: _Field, buf: bytes, start: int, end: int) -> tuple[str, Any]:
    key = ""
    value: Any = _MISSING
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number in (1, 2) and wire == _LEN:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise _Malformed(f"truncated map entry of {field.name}")
            if number == 1:
                key = _as_str(buf[pos : pos + size])
            elif field.map_value_wrapped:
                value = _wrapped_list(field.elem, buf, pos, pos + size) or None
            else:
                value = _element(field.elem, buf, pos, pos + size)
            pos += size
        elif number == 2 and wire == _wire_of(field.elem) != _LEN:
            value, pos = _read_scalar(field.elem, wire, buf, pos, end)
        elif number in (1, 2):
            raise _Malformed(f"wrong wire type {wire} in map entry of {field.name}")
        else:
            pos = _skip(buf, pos, end, wire, number)
    if value is _MISSING:  # Go's decoder starts from an empty value: nil only for a slice
        value = "" if field.elem == "bytes" else _zero(field.elem, field.map_value_wrapped)
    return key, value


class _Missing:
    pass


_MISSING: Any = _Missing()


def _zero(elem: str, nilable: bool) -> Any:
    """JSON of the zero value of a non-pointer element."""
    if nilable:
        return None
    if elem in _SCALAR_ZERO:
        return _SCALAR_ZERO[elem]
    if elem in _SPECIAL_ZERO:
        return _SPECIAL_ZERO[elem]
    return _empty(elem)


def _decode_message(msg: _Message, buf: bytes, start: int, end: int) -> dict[str, Any]:
    values: dict[int, Any] = {}
    spans: dict[int, list[tuple[int, int]]] = {}
    by_number = msg.by_number
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed(f"field number 0 in {msg.name}")
        field = by_number.get(number)
        if field is None:
            pos = _skip(buf, pos, end, wire, number)
            continue
        elem = field.elem
        if wire == _LEN:
            size, pos = _varint(buf, pos, end)
            stop = pos + size
            if stop > end:
                raise _Malformed(f"truncated field {msg.name}.{field.name or number}")
            shape = field.shape
            if shape == "map":
                k, v = _map_entry(field, buf, pos, stop)
                values.setdefault(number, {})[k] = v
            elif shape == "wrapped":
                values.setdefault(number, []).extend(_wrapped_list(elem, buf, pos, stop))
            elif shape == "list":
                if elem in _SCALAR_ZERO and elem != "str":  # packed repeated scalars
                    values.setdefault(number, []).extend(_packed(elem, buf, pos, stop))
                else:
                    values.setdefault(number, []).append(_element(elem, buf, pos, stop))
            elif elem == "str" or elem == "bytes":
                values[number] = _element(elem, buf, pos, stop)
            elif elem not in _SCALAR_ZERO:  # a message: occurrences merge, as concatenated
                spans.setdefault(number, []).append((pos, stop))
            else:
                raise _Malformed(f"wrong wire type 2 for {msg.name}.{field.name}")
            pos = stop
            continue
        if wire != _wire_of(elem) or field.shape in ("map", "wrapped"):
            raise _Malformed(f"wrong wire type {wire} for {msg.name}.{field.name or number}")
        item, pos = _read_scalar(elem, wire, buf, pos, end)
        if field.shape == "list":
            values.setdefault(number, []).append(item)
        else:
            values[number] = item
    for number, parts in spans.items():
        elem = by_number[number].elem
        if len(parts) == 1:
            values[number] = _element(elem, buf, *parts[0])
        else:
            joined = b"".join(buf[a:b] for a, b in parts)
            values[number] = _element(elem, joined, 0, len(joined))
    return _to_json(msg, values)


def _packed(elem: str, buf: bytes, pos: int, stop: int) -> list[Any]:
    """The elements of a packed repeated scalar field."""
    items: list[Any] = []
    wire = _wire_of(elem)
    while pos < stop:
        item, pos = _read_scalar(elem, wire, buf, pos, stop)
        items.append(item)
    return items


def _to_json(msg: _Message, values: dict[int, Any]) -> dict[str, Any]:
    """Apply Go's ``encoding/json`` rules to the decoded field values.

    A field absent from the wire holds Go's zero value: nil pointers, slices and maps are
    left out when ``omitempty`` and written as null otherwise; zero scalars are left out
    when ``omitempty``; struct values are always written (``omitempty`` does not apply to
    them, ``omitzero`` does). A present pointer is written even when it points to a zero.
    """
    out: dict[str, Any] = {}
    for number, name, absent, present, zero in msg.plan:
        value = values.get(number, _MISSING)
        if value is _MISSING:
            if absent == _ABSENT_SKIP:
                continue
            if absent == _ABSENT_NULL:
                out[name] = None
                continue
            if absent == _ABSENT_CONST:
                out[name] = zero
                continue
            value = _empty(msg.by_number[number].elem)
            if absent == _ABSENT_STRUCT:
                if present != _OMIT_ZERO_STRUCT:
                    out[name] = value
                continue
        if present == _KEEP:
            out[name] = value
        elif present == _OMIT_ZERO:
            if value != zero:
                out[name] = value
        elif present == _OMIT_EMPTY:
            if value:
                out[name] = value
        elif present == _SORT_MAP:
            out[name] = dict(sorted(value.items()))
        elif present == _WRAPPED:
            field = msg.by_number[number]
            if value:
                out[name] = value
            elif not (field.omitempty or field.omitzero):
                out[name] = None  # an empty named slice decodes to nil
        elif present == _INLINE:  # an embedded struct: its fields join the parent's
            for k, v in value.items():
                out.setdefault(k, v)
        elif value != _zero(msg.by_number[number].elem, nilable=False):  # _OMIT_ZERO_STRUCT
            out[name] = value
    return out


# --------------------------------------------------------------------------- entry point


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-prefixed protobuf body into the object's JSON dict.

    Raises :class:`~kubemodel.errors.ApiError` 415 when the body's apiVersion/kind has
    no protobuf table here (or uses an encoding this decoder does not read), and 400 when
    the bytes are not valid protobuf for it.
    """
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "the protobuf body does not start with the Kubernetes magic prefix 'k8s\\x00'"
        )
    buf = bytes(body)
    try:
        envelope = _fields_of(buf, len(MAGIC), len(buf))
        type_meta_raw: bytes = _get(envelope, 1, _LEN, b"")
        type_meta = _fields_of(type_meta_raw, 0, len(type_meta_raw))
        api_version = _as_str(_get(type_meta, 1, _LEN, b""))
        kind = _as_str(_get(type_meta, 2, _LEN, b""))
        raw: bytes = _get(envelope, 2, _LEN, b"")
        encoding = _as_str(_get(envelope, 3, _LEN, b""))
        content_type = _as_str(_get(envelope, 4, _LEN, b""))
    except (_Malformed, RecursionError) as exc:
        raise errors.bad_request(f"malformed protobuf body: {exc}") from exc
    if not api_version or not kind:
        raise errors.bad_request("the protobuf body does not name its apiVersion and kind")
    if encoding:
        raise _unsupported(f"contentEncoding {encoding!r} of the protobuf body is not supported")
    if content_type and content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise _unsupported(
            f"contentType {content_type!r} inside the protobuf body is not supported"
        )
    name = message_for(api_version, kind)
    if name is None:
        raise _unsupported(
            f"no protobuf decoding for apiVersion {api_version!r}, kind {kind!r}: "
            "send this object as application/json"
        )
    try:
        obj = _decode_message(_message(name), raw, 0, len(raw))
    except _Malformed as exc:
        raise errors.bad_request(
            f"malformed protobuf body for {api_version}, Kind={kind}: {exc}"
        ) from exc
    except RecursionError as exc:
        raise errors.bad_request(
            f"protobuf body for {api_version}, Kind={kind} nests too deeply"
        ) from exc
    return {"apiVersion": api_version, "kind": kind, **obj}


def _unsupported(message: str) -> errors.ApiError:
    return errors.ApiError(415, "UnsupportedMediaType", message)
