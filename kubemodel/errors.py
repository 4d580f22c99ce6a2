"""API errors that map one-to-one onto Kubernetes ``Status`` objects.

Every layer of the runtime raises :class:`ApiError` (or a subclass); the HTTP server
renders it with :meth:`ApiError.status`. Whether a client may retry is a property of
the error (``retryable``), never of the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One reason an object was rejected, pointing at a field path."""

    reason: str  # e.g. "FieldValueRequired", "FieldValueInvalid"
    message: str  # e.g. "Required value"
    field: str  # e.g. "spec.template.spec.containers[0].image"

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


# Constructors for the most common causes, worded as Kubernetes words them.
def required(path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_show(value)}: {detail}", path)


def invalid_literal(path: str, shown: str, detail: str) -> Cause:
    """An invalid value printed as given (Go's ``%#v`` of a non-string, e.g. ``0x0``)."""
    return Cause("FieldValueInvalid", f"Invalid value: {shown}: {detail}", path)


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    shown = ", ".join(f'"{a}"' for a in allowed)
    return Cause(
        "FieldValueNotSupported",
        f"Unsupported value: {_show(value)}: supported values: {shown}",
        path,
    )


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_show(value)}", path)


def type_invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {_show(value)}: {detail}", path)


def too_long(path: str, value: Any, limit: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} bytes", path)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value) + '"'


@dataclass
class ApiError(Exception):
    """An error the API reports to its client as a ``Status`` object."""

    code: int
    reason: str
    message: str
    #: ``Status.details``; None leaves it out, ``{}`` writes ``"details":{}`` (as
    #: kube-apiserver's generic server responses do).
    details: dict[str, Any] | None = None
    retryable: bool = False
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        """The ``Status`` object, its fields in kube-apiserver's order."""
        return status_object(
            "Failure",
            message=self.message,
            reason=self.reason,
            details=self.details,
            code=self.code,
        )


# metav1.Status, StatusDetails and StatusCause serialise their fields in Go struct order
# (encoding/json), each left out when empty; ``metadata`` (a struct) is always there.
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def _ordered(obj: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {key: obj[key] for key in order if obj.get(key) not in (None, "", [], 0)}
    out.update((k, v) for k, v in obj.items() if k not in order)
    return out


def status_object(
    status: str,
    *,
    message: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
    code: int = 0,
) -> dict[str, Any]:
    """A ``Status`` as kube-apiserver writes it: ``kind, apiVersion, metadata, status,
    message, reason, details, code``, empty fields left out (a delete's Success Status
    has no ``code``); ``details`` and its ``causes`` in their Go field order."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    if status:
        body["status"] = status
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        ordered = _ordered(details, _DETAILS_ORDER)
        if "causes" in ordered:
            ordered["causes"] = [
                _ordered(c, _CAUSE_ORDER) if isinstance(c, dict) else c for c in ordered["causes"]
            ]
        body["details"] = ordered
    if code:
        body["code"] = code
    return body


def deleted_status(name: str, group: str, resource: str, uid: str) -> dict[str, Any]:
    """What kube-apiserver's generic registry answers to a DELETE that removed an object
    of a kind whose registry does not return the deleted object: ``Success``, details
    naming the object with ``kind`` set to the *resource* (``configmaps``), no code."""
    return status_object(
        "Success", details={"name": name, "group": group, "kind": resource, "uid": uid}
    )


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, resource: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": resource}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    return out


def not_found(group: str, resource: str, name: str) -> ApiError:
    msg = f'{_qualified(resource, group)} "{name}" not found'
    return ApiError(404, "NotFound", msg, _details(name, group, resource))


def already_exists(group: str, resource: str, name: str) -> ApiError:
    msg = f'{_qualified(resource, group)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", msg, _details(name, group, resource))


def conflict(group: str, resource: str, name: str, detail: str) -> ApiError:
    msg = f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}'
    return ApiError(409, "Conflict", msg, _details(name, group, resource), retryable=True)


def stale(group: str, resource: str, name: str) -> ApiError:
    return conflict(
        group,
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def invalid_object(group: str, kind: str, name: str, causes: list[Cause]) -> ApiError:
    rendered = [c.render() for c in causes]
    joined = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [c.to_dict() for c in causes]}
    if group:
        details["group"] = group
    return ApiError(
        422,
        "Invalid",
        f'{kind}{"." + group if group else ""} "{name}" is invalid: {joined}',
        details,
    )


def no_such_path() -> ApiError:
    """kube-apiserver's 404 for a path it does not serve (a generic server response:
    empty ``details``)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def too_large(message: str) -> ApiError:
    """413 as kube-apiserver's NewRequestEntityTooLargeError words it."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml, application/vnd.kubernetes.protobuf; "
        f"got {content_type!r}",
    )


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden_error(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def forbidden_resource(group: str, resource: str, name: str, detail: str) -> ApiError:
    """apimachinery's ``NewForbidden``: ``<resource>[.<group>] ["<name>"] is forbidden:
    <detail>``, or ``forbidden: <detail>`` without a resource (non-resource paths)."""
    if not resource and not group:
        return ApiError(403, "Forbidden", f"forbidden: {detail}", {})
    qualified = _qualified(resource, group)
    subject = f'{qualified} "{name}"' if name else qualified
    return ApiError(
        403, "Forbidden", f"{subject} is forbidden: {detail}", _details(name, group, resource)
    )


def internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
        retryable=True,
    )


def unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message, retryable=True, retry_after=1)
