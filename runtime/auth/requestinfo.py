"""What an HTTP request asks to do, for the authorizer (kube-apiserver's
``request.RequestInfoFactory``).

Who calls it: :mod:`runtime.server.app` before routing every request. Resource requests
are the ``/api/v1/...`` and ``/apis/<group>/<version>/...`` paths: the verb comes from
the method (GET → get, list or watch; POST → create; PUT → update; PATCH → patch;
DELETE → delete or deletecollection), the deprecated ``/watch/`` prefix and
``?watch=true`` make a watch, and ``namespaces/<ns>`` scopes the rest (a request for
the namespace object itself has that namespace as its namespace too, as in
Kubernetes). Everything else is a non-resource request whose verb is the lower-case
method. WebSocket upgrades of ``exec``, ``attach`` and ``portforward`` need ``create``
(Kubernetes 1.30's authorisation of WebSocket upgrades).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Subresources of a namespace that are not resources of their own.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_STREAMING = frozenset({"exec", "attach", "portforward"})
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class RequestInfo:
    resource_request: bool
    verb: str
    path: str
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_info(
    method: str,
    path: str,
    watch_param: bool = False,
    field_selector: str = "",
    websocket: bool = False,
) -> RequestInfo:
    """The authorisation attributes of ``method path`` (``watch_param``: ``?watch=``
    was true; ``field_selector``: the ``fieldSelector`` query; ``websocket``: an upgrade
    request). A list or watch selecting exactly one ``metadata.name`` names it, so
    ``resourceNames`` rules apply to it as in Kubernetes."""
    parts = [p for p in path.split("/") if p]
    non_resource = RequestInfo(False, method.lower(), path)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        if len(parts) < 2:
            return non_resource
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return non_resource  # discovery of a group version
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
        verb = "watch"
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if watch_param else "list"
        name = _exact_name(field_selector)
    elif verb == "watch" and not name:
        name = _exact_name(field_selector)
    if not name and verb == "delete":
        verb = "deletecollection"
    if websocket and subresource in _STREAMING:
        verb = "create"
    return RequestInfo(
        True,
        verb,
        path,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


def _exact_name(field_selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` or ``==``)."""
    for term in field_selector.split(","):
        term = term.strip()
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and not key.endswith("!"):
                return value.strip()
    return ""
