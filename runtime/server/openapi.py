"""The built-in API server's OpenAPI documents: ``/openapi/v2`` and ``/openapi/v3``.

Clients read these documents to learn the shape of every served kind:

* kubectl 1.20 and older fetch ``/openapi/v2`` as protobuf (the gnostic
  ``openapi.v2.Document`` message, ``Accept:
  application/com.github.proto-openapi.spec.v2@v1.0+protobuf``) and use it for
  ``kubectl explain``, client-side validation (``kubectl apply --validate``: unknown and
  missing required fields) and the patch strategy markers of client-side apply
  (``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key``).
* Modern kubectl reads the ``/openapi/v3`` discovery document and the per
  group-version documents it points at (``/openapi/v3/apis/apps/v1?hash=…``), for
  ``kubectl explain`` and for finding out which query parameters (``dryRun``,
  ``fieldValidation``) the PATCH operation of a kind accepts.
* Other clients read the Swagger 2.0 JSON.

The definitions come from :func:`kubemodel.schema.builtin` (the official Kubernetes
definitions, stored in JSON-schema form) and are converted back to what kube-apiserver
serves: ``#/definitions/…`` (v2) or ``#/components/schemas/…`` (v3) references, one
``type`` string, ``int-or-string`` formats, the ``x-kubernetes-*`` markers kept. Only
definitions reachable from served resources are published. Each served custom-resource
version gets a definition of its own (and one for its list), named like kube-apiserver
names them (``com.example.stable.v1.CronTab``) and converted from the CRD's
``openAPIV3Schema`` with kube-apiserver's v2 rules (no ``nullable``/``oneOf``/``anyOf``/
``not``; ``x-kubernetes-preserve-unknown-fields`` and ``nullable`` drop nested
properties so kubectl does not reject fields the server accepts).

Paths follow kube-apiserver: for each resource the collection, item, all-namespaces,
deprecated ``watch/`` and subresource paths, each operation carrying
``x-kubernetes-action`` and ``x-kubernetes-group-version-kind``, and the discovery
paths (``/api/``, ``/apis/``, ``/apis/<group>/``, ``/apis/<group>/<version>/``,
``/version/``).

The protobuf encoding is written here (no protobuf dependency): a small wire-format
encoder driven by a table of the gnostic OpenAPIv2 messages in use. Vendor extensions,
defaults, examples and enum values travel as ``Any{yaml: …}`` the way gnostic encodes
them.

Documents are built lazily and cached. The cache is dropped when the registry changes
(``Registry.all()`` returns a new tuple after each CRD change) or when
:meth:`OpenAPI.invalidate` is called. Thread-safe.
"""

from __future__ import annotations

import copy
import hashlib
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from kubemodel.schema import KUBERNETES_VERSION, Schemas, builtin
from runtime.api.registry import Registry, ResourceInfo

__all__ = [
    "V2_PROTOBUF_CONTENT_TYPE",
    "V2_PROTOBUF_MEDIA_TYPE",
    "OpenAPI",
    "encode_v2_protobuf",
    "wants_v2_protobuf",
]

#: What clients put in ``Accept`` to get the v2 document as protobuf.
V2_PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
#: The ``Content-Type`` kube-apiserver answers it with.
V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

Json = Any
Node = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = _META + "ObjectMeta"
LIST_META = _META + "ListMeta"
DELETE_OPTIONS = _META + "DeleteOptions"
STATUS = _META + "Status"
WATCH_EVENT = _META + "WatchEvent"
PATCH = _META + "Patch"
API_RESOURCE_LIST = _META + "APIResourceList"
API_GROUP = _META + "APIGroup"
API_GROUP_LIST = _META + "APIGroupList"
API_VERSIONS = _META + "APIVersions"
VERSION_INFO = "io.k8s.apimachinery.pkg.version.Info"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
EVICTION = "io.k8s.api.policy.v1.Eviction"
BINDING = "io.k8s.api.core.v1.Binding"

_SRC_REF = "#/$defs/"
_V2_REF = "#/definitions/"
_V3_REF = "#/components/schemas/"

_SECURITY_SCHEME = {
    "BearerToken": {
        "description": "Bearer Token authentication",
        "in": "header",
        "name": "authorization",
        "type": "apiKey",
    }
}
_SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]

# Descriptions kube-apiserver gives the two definitions the schema package stores as
# bare ``oneOf`` nodes.
_SPECIAL_DEFINITIONS: dict[str, Node] = {
    INT_OR_STRING: {
        "description": (
            "IntOrString is a type that can hold an int32 or a string.  When used in JSON or"
            " YAML marshalling and unmarshalling, it produces or consumes the inner type."
            "  This allows you to have, for example, a JSON field that can accept a name or"
            " number."
        ),
        "format": "int-or-string",
        "type": "string",
    },
    QUANTITY: {
        "description": (
            "Quantity is a fixed-point representation of a number. It provides convenient"
            " marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64()"
            " accessors. The serialization format is <quantity> ::= <signedNumber><suffix>"
            " (e.g. 100m, 1Gi, 2.5, 1e3)."
        ),
        "type": "string",
    },
}

_TYPE_META_DESCRIPTIONS = {
    "apiVersion": (
        "APIVersion defines the versioned schema of this representation of an object."
        " Servers should convert recognized schemas to the latest internal value, and may"
        " reject unrecognized values. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
    ),
    "kind": (
        "Kind is a string value representing the REST resource this object represents."
        " Servers may infer this from the endpoint the client submits requests to. Cannot"
        " be updated. In CamelCase. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
    ),
    "metadata": (
        "Standard object's metadata. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
    ),
    "listMetadata": (
        "Standard list metadata. More info:"
        " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
    ),
}

# ---------------------------------------------------------------------------------------
# Schema conversion
# ---------------------------------------------------------------------------------------

# Keywords of the Swagger 2.0 Schema object (all others are dropped in v2).
_V2_SCHEMA_KEYS = frozenset(
    {
        "$ref",
        "format",
        "title",
        "description",
        "default",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "enum",
        "additionalProperties",
        "type",
        "items",
        "allOf",
        "properties",
        "discriminator",
        "readOnly",
        "example",
        "externalDocs",
    }
)


def _single_type(value: Json) -> str | None:
    if isinstance(value, list):
        for candidate in value:
            if candidate != "null":
                return str(candidate)
        return None
    return value if isinstance(value, str) else None


def _builtin_node(node: Node, v3: bool) -> Node:
    """A built-in (JSON-schema form) node in the form kube-apiserver serves."""
    out: Node = {}
    ref_prefix = _V3_REF if v3 else _V2_REF
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = ref_prefix + ref.removeprefix(_SRC_REF)
        for key, value in node.items():
            if key == "description" or key == "default" or key.startswith("x-"):
                out[key] = value
        if v3 and out:
            out["allOf"] = [{"$ref": target}]
        else:
            out["$ref"] = target
        return out
    for key, value in node.items():
        if key == "type":
            single = _single_type(value)
            if single is not None:
                out["type"] = single
        elif key == "properties":
            props: Node = {}
            for name, child in value.items():
                converted = _builtin_node(child, v3)
                if name in ("apiVersion", "kind") and "enum" in converted:
                    # kubernetes-validate pins these with an enum; kube-apiserver does not.
                    del converted["enum"]
                props[name] = converted
            out["properties"] = props
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _builtin_node(value, v3)
        elif key in ("allOf", "oneOf", "anyOf") and isinstance(value, list):
            if v3 or key == "allOf":
                out[key] = [_builtin_node(v, v3) for v in value]
        elif v3 or key in _V2_SCHEMA_KEYS or key.startswith("x-"):
            out[key] = value
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    return out


def _crd_node_v2(node: Node) -> Node:
    """A CRD schema node under kube-apiserver's OpenAPI v2 publishing rules."""
    out: Node = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {n: _crd_node_v2(c) for n, c in value.items() if isinstance(c, dict)}
        elif key == "items" and isinstance(value, dict):
            out[key] = _crd_node_v2(value)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                if not value.get("nullable"):
                    out[key] = _crd_node_v2(value)
            elif isinstance(value, bool):
                out[key] = value
        elif (key in _V2_SCHEMA_KEYS and key != "allOf" and key != "$ref") or key.startswith("x-"):
            out[key] = value
    if "type" in out:
        single = _single_type(out["type"])
        if single is None:
            del out["type"]
        else:
            out["type"] = single
    if node.get("nullable"):
        # kubectl breaks on untyped values with items or properties.
        for key in ("type", "items", "properties"):
            out.pop(key, None)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("items", None)
        out.pop("properties", None)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if out.get("type") == "array" and "items" not in out:
        del out["type"]  # kubectl cannot cope with an array without an item schema
    props = node.get("properties")
    if isinstance(props, dict) and isinstance(out.get("required"), list):
        nullable = {n for n, c in props.items() if isinstance(c, dict) and c.get("nullable")}
        required = [r for r in out["required"] if r not in nullable]
        if required:
            out["required"] = required
        else:
            del out["required"]
    return out


def _refs(node: Json, prefix: str) -> Iterator[str]:
    """Definition names referenced anywhere under ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key == "$ref" and isinstance(value, str) and value.startswith(prefix):
                    yield value[len(prefix) :]
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(v for v in current if isinstance(v, dict | list))


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """kube-apiserver's definition name of a custom kind: the group reversed."""
    return ".".join([*reversed(group.split(".")), version, kind])


# ---------------------------------------------------------------------------------------
# Operations and paths, in a neutral form rendered as v2 and v3
# ---------------------------------------------------------------------------------------

_PARAMETERS: dict[str, tuple[str, str, str]] = {
    # name: (in, type, description)
    "namespace": ("path", "string", "object name and auth scope, such as for teams and projects"),
    "pretty": (
        "query",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the"
        " user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    ),
    "allowWatchBookmarks": (
        "query",
        "boolean",
        'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do'
        " not implement bookmarks may ignore this flag.",
    ),
    "continue": (
        "query",
        "string",
        "The continue option should be set when retrieving more results from the server,"
        " with the value the server returned in the previous list response.",
    ),
    "fieldSelector": (
        "query",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to"
        " everything.",
    ),
    "labelSelector": (
        "query",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to"
        " everything.",
    ),
    "limit": (
        "query",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items"
        " exist, the server sets the `continue` field on the list metadata.",
    ),
    "resourceVersion": (
        "query",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be"
        " served from. Defaults to unset.",
    ),
    "resourceVersionMatch": (
        "query",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    "sendInitialEvents": (
        "query",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins"
        " with synthetic events for the current state of the collection.",
    ),
    "timeoutSeconds": (
        "query",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless"
        " of any activity or inactivity.",
    ),
    "watch": (
        "query",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add,"
        " update, and remove notifications. Specify resourceVersion.",
    ),
    "dryRun": (
        "query",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values"
        " are: - All: all dry run stages will be processed",
    ),
    "fieldManager": (
        "query",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    ),
    "fieldValidation": (
        "query",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request"
        " containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    ),
    "force": (
        "query",
        "boolean",
        'Force is going to "force" Apply requests. It means user will re-acquire conflicting'
        " fields owned by other people. Must be unset for non-apply patch requests.",
    ),
    "gracePeriodSeconds": (
        "query",
        "integer",
        "The duration in seconds before the object should be deleted. Zero means delete"
        " immediately.",
    ),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "query",
        "boolean",
        "if set to true, it will trigger an unsafe deletion of the resource in case the"
        " normal deletion flow fails with a corrupt object error.",
    ),
    "orphanDependents": (
        "query",
        "boolean",
        "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
    ),
    "propagationPolicy": (
        "query",
        "string",
        "Whether and how garbage collection will be performed. Acceptable values are:"
        " 'Orphan', 'Background', 'Foreground'.",
    ),
    "container": (
        "query",
        "string",
        "The container to stream logs of or to execute the command in. Defaults to only"
        " container if there is one container in the pod.",
    ),
    "command": (
        "query",
        "string",
        "Command is the remote command to execute; argv array (repeat the parameter)."
        " Not executed within a shell.",
    ),
    "stdin": (
        "query",
        "boolean",
        "Redirect the standard input stream of the pod for this call. Defaults to false.",
    ),
    "stdout": (
        "query",
        "boolean",
        "Redirect the standard output stream of the pod for this call.",
    ),
    "stderr": (
        "query",
        "boolean",
        "Redirect the standard error stream of the pod for this call.",
    ),
    "tty": (
        "query",
        "boolean",
        "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
    ),
    "follow": ("query", "boolean", "Follow the log stream of the pod. Defaults to false."),
    "insecureSkipTLSVerifyBackend": (
        "query",
        "boolean",
        "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the"
        " validity of the serving certificate of the backend it is connecting to.",
    ),
    "limitBytes": (
        "query",
        "integer",
        "If set, the number of bytes to read from the server before terminating the log output.",
    ),
    "previous": (
        "query",
        "boolean",
        "Return previous terminated container logs. Defaults to false.",
    ),
    "sinceSeconds": (
        "query",
        "integer",
        "A relative time in seconds before the current time from which to show logs.",
    ),
    "stream": (
        "query",
        "string",
        "Specify which container log stream to return to the client. Acceptable values are"
        ' "All", "Stdout" and "Stderr".',
    ),
    "tailLines": (
        "query",
        "integer",
        "If set, the number of lines from the end of the logs to show.",
    ),
    "timestamps": (
        "query",
        "boolean",
        "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of"
        " log output. Defaults to false.",
    ),
}

_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = (*_WRITE_PARAMS, "force")
_DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
_LOG_PARAMS = (
    "container",
    "follow",
    "insecureSkipTLSVerifyBackend",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "stream",
    "tailLines",
    "timestamps",
)

_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_PRODUCES_WATCH = [
    *_PRODUCES,
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
]
_PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]

_EXEC_PARAMS = ("command", "container", "stderr", "stdin", "stdout", "tty")
_ATTACH_PARAMS = ("container", "stderr", "stdin", "stdout", "tty")

_STRING = "<string>"  # a response body that is a plain string (pods/log)


@dataclass
class _Op:
    method: str  # get put post patch delete
    action: str  # x-kubernetes-action
    operation_id: str
    description: str
    gvk: dict[str, str]
    tag: str
    params: tuple[str, ...] = ()
    body: str | None = None  # definition name
    body_required: bool = True
    responses: dict[str, str | None] = field(default_factory=dict)  # code -> def name
    consumes: list[str] = field(default_factory=lambda: ["*/*"])
    produces: list[str] = field(default_factory=lambda: list(_PRODUCES))


@dataclass
class _Route:
    path: str
    params: list[Node]  # path-level parameters (rendered v2 form; v3 derives from it)
    ops: list[_Op] = field(default_factory=list)


def _camel_group(group: str) -> str:
    if not group:
        return "Core"
    return "".join(p[:1].upper() + p[1:] for p in group.removesuffix(".k8s.io").split("."))


def _tag(group: str, version: str) -> str:
    name = _camel_group(group)
    return name[:1].lower() + name[1:] + "_" + version


def _prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _gv_key(group: str, version: str) -> str:
    """The v3 discovery key of a group-version (``api/v1``, ``apis/apps/v1``)."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _param(name: str, description: str | None = None, required: bool = False) -> Node:
    where, typ, text = _PARAMETERS.get(name, ("path", "string", ""))
    out: Node = {"description": description or text, "in": where, "name": name, "type": typ}
    if where == "path" or required:
        out["required"] = True
    elif typ == "string" or typ == "integer" or typ == "boolean":
        out["uniqueItems"] = True
    return out


class _Paths:
    """Builds the routes of the served resources, as kube-apiserver lays them out."""

    def __init__(self, schemas: Schemas, definition_of: Callable[[ResourceInfo], str | None]):
        self._schemas = schemas
        self._definition_of = definition_of

    def resource_routes(self, info: ResourceInfo) -> list[_Route]:
        kind, plural, verbs = info.kind, info.plural, set(info.verbs)
        kind_def = self._definition_of(info)
        list_def = self._list_definition(info)
        gvk = {"group": info.group, "kind": kind, "version": info.version}
        tag = _tag(info.group, info.version)
        gv = _camel_group(info.group) + info.version[:1].upper() + info.version[1:]
        ns = "Namespaced" if info.namespaced else ""
        prefix = _prefix(info.group, info.version)
        scope = f"{prefix}/namespaces/{{namespace}}" if info.namespaced else prefix
        watch = f"{prefix}/watch/namespaces/{{namespace}}" if info.namespaced else f"{prefix}/watch"
        ns_params = [_param("namespace")] if info.namespaced else []
        name_param = _param("name", f"name of the {kind}")
        pretty = _param("pretty")
        list_params = [_param(p) for p in _LIST_PARAMS]
        patch_types = _patch_types(info)
        watch_note = "deprecated: use the 'watch' parameter with a list operation instead"

        def op(method: str, action: str, oid: str, text: str, **kw: Any) -> _Op:
            return _Op(method, action, oid, text, dict(gvk), tag, **kw)

        def listing(oid: str, params: tuple[str, ...] = ()) -> _Op:
            text = f"list or watch objects of kind {kind}"
            return op(
                "get",
                "list",
                oid,
                text,
                params=params,
                produces=list(_PRODUCES_WATCH),
                responses={"200": list_def, "401": None},
            )

        def watching(action: str, oid: str, text: str) -> _Op:
            return op(
                "get",
                action,
                oid,
                text,
                produces=list(_PRODUCES_WATCH),
                responses={"200": WATCH_EVENT, "401": None},
            )

        collection = _Route(f"{scope}/{plural}", [*ns_params, pretty])
        if "list" in verbs and list_def:
            collection.ops.append(listing(f"list{gv}{ns}{kind}", _LIST_PARAMS))
        if "create" in verbs:
            collection.ops.append(
                op(
                    "post",
                    "post",
                    f"create{gv}{ns}{kind}",
                    f"create {_article(kind)} {kind}",
                    params=_WRITE_PARAMS,
                    body=kind_def,
                    responses={"200": kind_def, "201": kind_def, "202": kind_def, "401": None},
                )
            )
        if "deletecollection" in verbs:
            params = tuple(
                sorted({*_DELETE_PARAMS, *_LIST_PARAMS} - {"watch", "allowWatchBookmarks"})
            )
            collection.ops.append(
                op(
                    "delete",
                    "deletecollection",
                    f"delete{gv}Collection{ns}{kind}",
                    f"delete collection of {kind}",
                    params=params,
                    body=DELETE_OPTIONS,
                    body_required=False,
                    responses={"200": STATUS, "401": None},
                )
            )

        item_path = f"{scope}/{plural}/{{name}}"
        item = _Route(item_path, [name_param, *ns_params, pretty])
        written = {"200": kind_def, "201": kind_def, "401": None}
        if "get" in verbs:
            item.ops.append(
                op(
                    "get",
                    "get",
                    f"read{gv}{ns}{kind}",
                    f"read the specified {kind}",
                    responses={"200": kind_def, "401": None},
                )
            )
        if "update" in verbs:
            item.ops.append(
                op(
                    "put",
                    "put",
                    f"replace{gv}{ns}{kind}",
                    f"replace the specified {kind}",
                    params=_WRITE_PARAMS,
                    body=kind_def,
                    responses=written,
                )
            )
        if "patch" in verbs:
            item.ops.append(
                op(
                    "patch",
                    "patch",
                    f"patch{gv}{ns}{kind}",
                    f"partially update the specified {kind}",
                    params=_PATCH_PARAMS,
                    body=PATCH,
                    responses=written,
                    consumes=patch_types,
                )
            )
        if "delete" in verbs:
            item.ops.append(
                op(
                    "delete",
                    "delete",
                    f"delete{gv}{ns}{kind}",
                    f"delete {_article(kind)} {kind}",
                    params=_DELETE_PARAMS,
                    body=DELETE_OPTIONS,
                    body_required=False,
                    responses={"200": STATUS, "202": STATUS, "401": None},
                )
            )

        routes = [r for r in (collection, item) if r.ops]
        if info.namespaced and "list" in verbs and list_def:
            routes.append(
                _Route(
                    f"{prefix}/{plural}",
                    [*list_params, pretty],
                    [listing(f"list{gv}{kind}ForAllNamespaces")],
                )
            )
        if "watch" in verbs:
            routes.append(
                _Route(
                    f"{watch}/{plural}",
                    [*list_params, *ns_params, pretty],
                    [
                        watching(
                            "watchlist",
                            f"watch{gv}{ns}{kind}List",
                            f"watch individual changes to a list of {kind}. {watch_note}.",
                        )
                    ],
                )
            )
            routes.append(
                _Route(
                    f"{watch}/{plural}/{{name}}",
                    [*list_params, name_param, *ns_params, pretty],
                    [
                        watching(
                            "watch",
                            f"watch{gv}{ns}{kind}",
                            f"watch changes to an object of kind {kind}. {watch_note},"
                            " filtered to a single item with the 'fieldSelector' parameter.",
                        )
                    ],
                )
            )
            if info.namespaced:
                routes.append(
                    _Route(
                        f"{prefix}/watch/{plural}",
                        [*list_params, pretty],
                        [
                            watching(
                                "watchlist",
                                f"watch{gv}{kind}ListForAllNamespaces",
                                f"watch individual changes to a list of {kind}. {watch_note}.",
                            )
                        ],
                    )
                )

        for sub in sorted(info.subresources):
            ops = self._subresource_ops(info, sub, kind_def, tag, f"{gv}{ns}{kind}")
            if ops:
                routes.append(_Route(f"{item_path}/{sub}", [name_param, *ns_params, pretty], ops))
        return routes

    def _list_definition(self, info: ResourceInfo) -> str | None:
        if info.custom is not None:
            return crd_definition_name(info.group, info.version, info.list_kind)
        return self._schemas.definition_name(info.group, info.version, info.list_kind)

    @staticmethod
    def _subresource_ops(
        info: ResourceInfo, sub: str, kind_def: str | None, tag: str, oid: str
    ) -> list[_Op]:
        """The operations of ``<item>/<sub>`` (none for subresources not modelled here)."""
        own = {"group": info.group, "kind": info.kind, "version": info.version}
        suffix = sub[:1].upper() + sub[1:]
        oid += suffix
        kind = info.kind

        def read_write(target: str | None, gvk: dict[str, str]) -> list[_Op]:
            written = {"200": target, "201": target, "401": None}
            ops = [
                _Op(
                    "get",
                    "get",
                    f"read{oid}",
                    f"read {sub} of the specified {kind}",
                    dict(gvk),
                    tag,
                    responses={"200": target, "401": None},
                )
            ]
            if "update" in info.verbs:
                ops.append(
                    _Op(
                        "put",
                        "put",
                        f"replace{oid}",
                        f"replace {sub} of the specified {kind}",
                        dict(gvk),
                        tag,
                        params=_WRITE_PARAMS,
                        body=target,
                        responses=written,
                    )
                )
            if "patch" in info.verbs:
                ops.append(
                    _Op(
                        "patch",
                        "patch",
                        f"patch{oid}",
                        f"partially update {sub} of the specified {kind}",
                        dict(gvk),
                        tag,
                        params=_PATCH_PARAMS,
                        body=PATCH,
                        responses=written,
                        consumes=_patch_types(info),
                    )
                )
            return ops

        def create(target: str, group: str, target_kind: str) -> list[_Op]:
            gvk = {"group": group, "kind": target_kind, "version": "v1"}
            text = f"create {sub} of {_article(kind)} {kind}"
            return [
                _Op(
                    "post",
                    "post",
                    f"create{oid}",
                    text,
                    gvk,
                    tag,
                    params=_WRITE_PARAMS,
                    body=target,
                    responses={"200": target, "201": target, "202": target, "401": None},
                )
            ]

        if sub in ("status", "ephemeralcontainers", "approval"):
            return read_write(kind_def, own)
        if sub == "scale":
            return read_write(SCALE, {"group": "autoscaling", "kind": "Scale", "version": "v1"})
        if sub == "binding":
            return create(BINDING, "", "Binding")
        if sub == "eviction":
            return create(EVICTION, "policy", "Eviction")
        if sub == "log":
            produces = ["text/plain", *_PRODUCES]
            return [
                _Op(
                    "get",
                    "get",
                    f"read{oid}",
                    f"read log of the specified {kind}",
                    own,
                    tag,
                    params=_LOG_PARAMS,
                    responses={"200": _STRING, "401": None},
                    produces=produces,
                )
            ]
        if sub in ("exec", "attach"):
            # kube-apiserver's "connect" operations: a WebSocket upgrade (GET; POST is
            # the SPDY upgrade kubectl falls back to, refused here with a reason).
            gv = _camel_group(info.group) + info.version[:1].upper() + info.version[1:]
            rest = oid[len(gv) :]
            what = sub.title()
            options = {"group": info.group, "kind": f"{kind}{what}Options", "version": "v1"}
            return [
                _Op(
                    method,
                    "connect",
                    f"connect{gv}{method.title()}{rest}",
                    f"connect {method.upper()} requests to {sub} of {kind}",
                    dict(options),
                    tag,
                    params=_EXEC_PARAMS if sub == "exec" else _ATTACH_PARAMS,
                    responses={"200": _STRING, "401": None},
                    consumes=["*/*"],
                    produces=["*/*"],
                )
                for method in ("get", "post")
            ]
        if sub == "finalize":
            return [
                _Op(
                    "put",
                    "put",
                    f"replace{oid}",
                    f"replace finalize of the specified {kind}",
                    own,
                    tag,
                    params=_WRITE_PARAMS,
                    body=kind_def,
                    responses={"200": kind_def, "201": kind_def, "401": None},
                )
            ]
        return []


def _patch_types(info: ResourceInfo) -> list[str]:
    """Patch content types of a kind: custom resources take no strategic merge patch."""
    if info.custom is not None:
        return [t for t in _PATCH_TYPES if t != "application/strategic-merge-patch+json"]
    return list(_PATCH_TYPES)


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _discovery_routes(registry_groups: dict[str, tuple[list[str], str]]) -> dict[str, _Route]:
    """Discovery paths, keyed by their v3 document key."""

    def get(oid: str, text: str, target: str, tag: str) -> _Op:
        return _Op(
            "get",
            "",
            oid,
            text,
            {},
            tag,
            responses={"200": target, "401": None},
            consumes=[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )

    routes = {
        "api": _Route(
            "/api/",
            [],
            [get("getCoreAPIVersions", "get available API versions", API_VERSIONS, "core")],
        ),
        "apis": _Route(
            "/apis/",
            [],
            [get("getAPIVersions", "get available API versions", API_GROUP_LIST, "apis")],
        ),
        "version": _Route(
            "/version/",
            [],
            [
                get(
                    "getCodeVersion",
                    "get the version information for this server",
                    VERSION_INFO,
                    "version",
                )
            ],
        ),
    }
    for group in registry_groups:
        if not group:
            continue
        name = _camel_group(group)
        tag = name[:1].lower() + name[1:]
        routes[f"apis/{group}"] = _Route(
            f"/apis/{group}/",
            [],
            [get(f"get{name}APIGroup", "get information of a group", API_GROUP, tag)],
        )
    return routes


def _resources_route(group: str, version: str) -> _Route:
    gv = _camel_group(group) + version[:1].upper() + version[1:]
    op = _Op(
        "get",
        "",
        f"get{gv}APIResources",
        "get available resources",
        {},
        _tag(group, version),
        responses={"200": API_RESOURCE_LIST, "401": None},
        consumes=["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
    )
    return _Route(_prefix(group, version) + "/", [], [op])


def _render_v2(route: _Route) -> Node:
    item: Node = {}
    if route.params:
        item["parameters"] = [dict(p) for p in route.params]
    for op in route.ops:
        params: list[Node] = []
        if op.body is not None:
            body: Node = {"in": "body", "name": "body", "schema": {"$ref": _V2_REF + op.body}}
            if op.body_required:
                body["required"] = True
            params.append(body)
        params.extend(_param(p) for p in op.params)
        responses: Node = {}
        for code, target in op.responses.items():
            response: Node = {"description": _STATUS_TEXT.get(code, "OK")}
            if target == _STRING:
                response["schema"] = {"type": "string"}
            elif target is not None:
                response["schema"] = {"$ref": _V2_REF + target}
            responses[code] = response
        rendered: Node = {
            "consumes": list(op.consumes),
            "description": op.description,
            "operationId": op.operation_id,
            "produces": list(op.produces),
            "responses": responses,
            "schemes": ["https"],
            "tags": [op.tag],
        }
        if params:
            rendered["parameters"] = params
        if op.action:
            rendered["x-kubernetes-action"] = op.action
        if op.gvk:
            rendered["x-kubernetes-group-version-kind"] = dict(op.gvk)
        item[op.method] = rendered
    return item


def _v3_param(p: Node) -> Node:
    out: Node = {"description": p["description"], "in": p["in"], "name": p["name"]}
    if p.get("required"):
        out["required"] = True
    schema: Node = {"type": p["type"]}
    if p.get("uniqueItems"):
        schema["uniqueItems"] = True
    out["schema"] = schema
    return out


def _render_v3(route: _Route) -> Node:
    item: Node = {}
    if route.params:
        item["parameters"] = [_v3_param(p) for p in route.params]
    for op in route.ops:
        rendered: Node = {"description": op.description, "operationId": op.operation_id}
        if op.params:
            rendered["parameters"] = [_v3_param(_param(p)) for p in op.params]
        if op.body is not None:
            types = op.consumes if op.method == "patch" else ["*/*"]
            body: Node = {"content": {t: {"schema": {"$ref": _V3_REF + op.body}} for t in types}}
            if op.body_required:
                body["required"] = True
            rendered["requestBody"] = body
        responses: Node = {}
        for code, target in op.responses.items():
            response: Node = {"description": _STATUS_TEXT.get(code, "OK")}
            if target == _STRING:
                response["content"] = {t: {"schema": {"type": "string"}} for t in op.produces}
            elif target is not None:
                response["content"] = {
                    t: {"schema": {"$ref": _V3_REF + target}} for t in op.produces
                }
            responses[code] = response
        rendered["responses"] = responses
        rendered["tags"] = [op.tag]
        if op.action:
            rendered["x-kubernetes-action"] = op.action
        if op.gvk:
            rendered["x-kubernetes-group-version-kind"] = dict(op.gvk)
        item[op.method] = rendered
    return item


_STATUS_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}


# ---------------------------------------------------------------------------------------
# The documents
# ---------------------------------------------------------------------------------------


class _Snapshot:
    """Everything derived from one state of the registry (built lazily, then immutable)."""

    def __init__(self, registry: Registry, schemas: Schemas, version: str) -> None:
        self.resources = registry.all()
        self.groups = registry.groups()
        self.schemas = schemas
        self.version = version
        self.served_gvs = {(r.group, r.version) for r in self.resources}
        self.lock = threading.Lock()
        self._v2_json: bytes | None = None
        self._v2_doc: Node | None = None
        self._v2_pb: bytes | None = None
        self._v3_docs: dict[str, bytes] | None = None
        self._v3_index: bytes | None = None
        self._v3_defs: dict[str, Node] = {}

    # --- definitions ------------------------------------------------------------------
    def definition_of(self, info: ResourceInfo) -> str | None:
        if info.custom is not None:
            return crd_definition_name(info.group, info.version, info.kind)
        return self.schemas.definition_name(info.group, info.version, info.kind)

    def _builtin_definition(self, name: str, v3: bool) -> Node | None:
        special = _SPECIAL_DEFINITIONS.get(name)
        if special is not None:
            return copy.deepcopy(special)
        node = self.schemas.definitions.get(name)
        if node is None:
            return None
        out = _builtin_node(node, v3)
        gvks = out.get("x-kubernetes-group-version-kind")
        if isinstance(gvks, list) and len(gvks) > 1:
            served = [g for g in gvks if (g.get("group"), g.get("version")) in self.served_gvs]
            if served:
                out["x-kubernetes-group-version-kind"] = served
        return out

    def _custom_definitions(self, info: ResourceInfo, v3: bool) -> dict[str, Node]:
        assert info.custom is not None
        ref = _V3_REF if v3 else _V2_REF
        gvk = {"group": info.group, "kind": info.kind, "version": info.version}
        raw = info.custom.schema
        type_meta = {
            "apiVersion": {"description": _TYPE_META_DESCRIPTIONS["apiVersion"], "type": "string"},
            "kind": {"description": _TYPE_META_DESCRIPTIONS["kind"], "type": "string"},
        }

        def meta(target: str, description: str) -> Node:
            if v3:
                return {"allOf": [{"$ref": ref + target}], "description": description}
            return {"$ref": ref + target, "description": description}

        preserve = info.custom.preserve_unknown or bool(
            raw and raw.get("x-kubernetes-preserve-unknown-fields")
        )
        if raw is None or (not v3 and preserve):
            # No properties: kubectl would otherwise reject every field not listed.
            root: Node = {"type": "object"}
        else:
            root = copy.deepcopy(raw) if v3 else _crd_node_v2(raw)
            props = dict(root.get("properties") or {})
            props.update(copy.deepcopy(type_meta))
            props["metadata"] = meta(OBJECT_META, _TYPE_META_DESCRIPTIONS["metadata"])
            root["properties"] = props
            root["type"] = "object"
        root["x-kubernetes-group-version-kind"] = [gvk]
        name = crd_definition_name(info.group, info.version, info.kind)
        list_props: Node = copy.deepcopy(type_meta)
        list_props["items"] = {
            "description": f"List of {info.plural}. More info:"
            " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
            "items": {"$ref": ref + name},
            "type": "array",
        }
        list_props["metadata"] = meta(LIST_META, _TYPE_META_DESCRIPTIONS["listMetadata"])
        list_def: Node = {
            "description": f"{info.list_kind} is a list of {info.kind}",
            "properties": list_props,
            "required": ["items"],
            "type": "object",
            "x-kubernetes-group-version-kind": [{**gvk, "kind": info.list_kind}],
        }
        return {name: root, crd_definition_name(info.group, info.version, info.list_kind): list_def}

    def _definitions(self, roots: Iterable[str], custom: dict[str, Node], v3: bool) -> Node:
        """The closure of ``roots`` over references, converted; sorted by name."""
        prefix = _V3_REF if v3 else _V2_REF
        out: dict[str, Node] = {}
        pending = list(roots)
        while pending:
            name = pending.pop()
            if name in out:
                continue
            if name in custom:
                node = custom[name]
            else:
                found = self._v3_defs.get(name) if v3 else None
                if found is None:
                    found = self._builtin_definition(name, v3)
                    if found is None:
                        continue
                    if v3:
                        self._v3_defs[name] = found
                node = found
            out[name] = node
            pending.extend(r for r in _refs(node, prefix) if r not in out)
        return {k: out[k] for k in sorted(out)}

    def _routes(self) -> tuple[dict[tuple[str, str], list[_Route]], dict[str, _Route]]:
        paths = _Paths(self.schemas, self.definition_of)
        per_gv: dict[tuple[str, str], list[_Route]] = {}
        for info in self.resources:
            routes = per_gv.setdefault((info.group, info.version), [])
            if not routes:
                routes.append(_resources_route(info.group, info.version))
            routes.extend(paths.resource_routes(info))
        return per_gv, _discovery_routes(self.groups)

    @staticmethod
    def _merge(routes: Iterable[_Route]) -> dict[str, _Route]:
        merged: dict[str, _Route] = {}
        for route in routes:
            existing = merged.get(route.path)
            if existing is None:
                merged[route.path] = _Route(route.path, list(route.params), list(route.ops))
            else:
                have = {o.method for o in existing.ops}
                existing.ops.extend(o for o in route.ops if o.method not in have)
        return merged

    @staticmethod
    def _route_refs(routes: Iterable[_Route]) -> set[str]:
        names: set[str] = set()
        for route in routes:
            for op in route.ops:
                if op.body:
                    names.add(op.body)
                names.update(t for t in op.responses.values() if t and t != _STRING)
        return names

    def _custom_all(self, v3: bool) -> dict[str, Node]:
        custom: dict[str, Node] = {}
        for info in self.resources:
            if info.custom is not None:
                custom.update(self._custom_definitions(info, v3))
        return custom

    # --- v2 ---------------------------------------------------------------------------
    def v2_doc(self) -> Node:
        with self.lock:
            if self._v2_doc is None:
                per_gv, discovery = self._routes()
                all_routes = [r for rs in per_gv.values() for r in rs] + list(discovery.values())
                merged = self._merge(all_routes)
                custom = self._custom_all(v3=False)
                roots = self._route_refs(merged.values()) | set(custom)
                for info in self.resources:
                    if info.custom is None:
                        for kind in (info.kind, info.list_kind):
                            name = self.schemas.definition_name(info.group, info.version, kind)
                            if name:
                                roots.add(name)
                self._v2_doc = {
                    "definitions": self._definitions(roots, custom, v3=False),
                    "info": {"title": "Kubernetes", "version": self.version},
                    "paths": {p: _render_v2(merged[p]) for p in sorted(merged)},
                    "security": copy.deepcopy(_SECURITY),
                    "securityDefinitions": copy.deepcopy(_SECURITY_SCHEME),
                    "swagger": "2.0",
                }
            return self._v2_doc

    def v2_json(self) -> bytes:
        doc = self.v2_doc()
        with self.lock:
            if self._v2_json is None:
                self._v2_json = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            return self._v2_json

    def v2_protobuf(self) -> bytes:
        doc = self.v2_doc()
        with self.lock:
            if self._v2_pb is None:
                self._v2_pb = encode_v2_protobuf(doc)
            return self._v2_pb

    # --- v3 ---------------------------------------------------------------------------
    def v3_docs(self) -> dict[str, bytes]:
        with self.lock:
            if self._v3_docs is None:
                per_gv, discovery = self._routes()
                custom = self._custom_all(v3=True)
                docs: dict[str, bytes] = {}
                for key, route in discovery.items():
                    docs[key] = self._v3_document([route], {})
                for (group, version), routes in per_gv.items():
                    docs[_gv_key(group, version)] = self._v3_document(routes, custom)
                self._v3_docs = {k: docs[k] for k in sorted(docs)}
            return self._v3_docs

    def _v3_document(self, routes: list[_Route], custom: dict[str, Node]) -> bytes:
        merged = self._merge(routes)
        roots = self._route_refs(merged.values())
        doc: Node = {
            "components": {
                "schemas": self._definitions(roots, custom, v3=True),
                "securitySchemes": copy.deepcopy(_SECURITY_SCHEME),
            },
            "info": {"title": "Kubernetes", "version": self.version},
            "openapi": "3.0.0",
            "paths": {p: _render_v3(merged[p]) for p in sorted(merged)},
            "security": copy.deepcopy(_SECURITY),
        }
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    def v3_index(self) -> bytes:
        docs = self.v3_docs()
        with self.lock:
            if self._v3_index is None:
                paths = {
                    key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(body)}"}
                    for key, body in docs.items()
                }
                self._v3_index = orjson.dumps({"paths": paths}, option=orjson.OPT_SORT_KEYS)
            return self._v3_index


def _hash(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


class OpenAPI:
    """The ``/openapi/v2`` and ``/openapi/v3`` documents of the resources a registry serves.

    ``schemas`` defaults to :func:`kubemodel.schema.builtin`; ``version`` is what
    ``info.version`` says (the Kubernetes version the server reports).
    """

    def __init__(
        self,
        registry: Registry,
        schemas: Schemas | None = None,
        *,
        version: str = KUBERNETES_VERSION,
    ) -> None:
        self._registry = registry
        self._schemas = schemas
        self._version = version
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def invalidate(self) -> None:
        """Forget the built documents (the next request rebuilds them)."""
        with self._lock:
            self._snapshot = None

    def _current(self) -> _Snapshot:
        resources = self._registry.all()
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.resources is not resources:
                schemas = self._schemas if self._schemas is not None else builtin()
                snap = _Snapshot(self._registry, schemas, self._version)
                self._snapshot = snap
            return snap

    # --- v2 ---------------------------------------------------------------------------
    def v2_document(self) -> dict[str, Any]:
        """The Swagger 2.0 document as data (shared: do not modify)."""
        return self._current().v2_doc()

    def v2_json(self) -> bytes:
        """The Swagger 2.0 document, JSON."""
        return self._current().v2_json()

    def v2_protobuf(self) -> bytes:
        """The Swagger 2.0 document as a gnostic ``openapi.v2.Document`` protobuf message."""
        return self._current().v2_protobuf()

    def v2_for_accept(self, accept: str | None) -> tuple[bytes, str]:
        """``(body, content type)`` of ``/openapi/v2`` for a request's ``Accept`` header."""
        if wants_v2_protobuf(accept):
            return self.v2_protobuf(), V2_PROTOBUF_CONTENT_TYPE
        return self.v2_json(), "application/json"

    def etag(self) -> str:
        """The entity tag of ``/openapi/v2``, unquoted (the SHA-512 of the JSON, upper-case
        hex, as kube-apiserver computes it); changes with the registry."""
        return _hash(self.v2_json())

    # --- v3 ---------------------------------------------------------------------------
    def v3_index(self) -> bytes:
        """``/openapi/v3``: ``{"paths": {"apis/apps/v1": {"serverRelativeURL": …}}}``."""
        return self._current().v3_index()

    def v3_group_version(self, path: str) -> bytes | None:
        """The v3 document at ``path`` (``/openapi/v3/apis/apps/v1``, ``api/v1``, with or
        without ``?hash=…``), or None when no such document exists."""
        key = path.split("?", 1)[0].strip("/").removeprefix("openapi/v3").strip("/")
        return self._current().v3_docs().get(key)

    def v3_hash(self, path: str) -> str | None:
        """The ``hash`` the v3 index gives the document at ``path`` (None if unknown)."""
        body = self.v3_group_version(path)
        return _hash(body) if body is not None else None


def wants_v2_protobuf(accept: str | None) -> bool:
    """True when an ``Accept`` header asks ``/openapi/v2`` for the gnostic protobuf."""
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (V2_PROTOBUF_MEDIA_TYPE, V2_PROTOBUF_CONTENT_TYPE):
            return True
        if media == "application/json" or media == "*/*":
            return False
    return False


# ---------------------------------------------------------------------------------------
# Protobuf wire format: gnostic openapi.v2 messages
# ---------------------------------------------------------------------------------------
#
# Each message is a table ``JSON key -> (field number, kind)`` plus the field number of
# its ``vendor_extension`` (``x-*`` keys). Kinds: "string", "bool", "double", "int64",
# "string*" (repeated string), "any", "any*" (gnostic Any, as YAML), a message name, or a
# message name with "*" (repeated). Maps with free keys ("Definitions", "Properties", …)
# and one-ofs have encoders of their own below.

_VARINT, _I64, _LEN = 0, 1, 2


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LEN) + _varint(len(payload)) + payload


def _str_field(number: int, value: str) -> bytes:
    return _len_field(number, value.encode("utf-8"))


_MESSAGES: dict[str, tuple[dict[str, tuple[int, str]], int | None]] = {
    "Document": (
        {
            "swagger": (1, "string"),
            "info": (2, "Info"),
            "host": (3, "string"),
            "basePath": (4, "string"),
            "schemes": (5, "string*"),
            "consumes": (6, "string*"),
            "produces": (7, "string*"),
            "paths": (8, "Paths"),
            "definitions": (9, "Definitions"),
            "parameters": (10, "ParameterDefinitions"),
            "responses": (11, "ResponseDefinitions"),
            "security": (12, "SecurityRequirement*"),
            "securityDefinitions": (13, "SecurityDefinitions"),
            "tags": (14, "Tag*"),
            "externalDocs": (15, "ExternalDocs"),
        },
        16,
    ),
    "Info": (
        {
            "title": (1, "string"),
            "version": (2, "string"),
            "description": (3, "string"),
            "termsOfService": (4, "string"),
            "contact": (5, "Contact"),
            "license": (6, "License"),
        },
        7,
    ),
    "Contact": ({"name": (1, "string"), "url": (2, "string"), "email": (3, "string")}, 4),
    "License": ({"name": (1, "string"), "url": (2, "string")}, 3),
    "ExternalDocs": ({"description": (1, "string"), "url": (2, "string")}, 3),
    "Tag": (
        {"name": (1, "string"), "description": (2, "string"), "externalDocs": (3, "ExternalDocs")},
        4,
    ),
    "PathItem": (
        {
            "$ref": (1, "string"),
            "get": (2, "Operation"),
            "put": (3, "Operation"),
            "post": (4, "Operation"),
            "delete": (5, "Operation"),
            "options": (6, "Operation"),
            "head": (7, "Operation"),
            "patch": (8, "Operation"),
            "parameters": (9, "ParametersItem*"),
        },
        10,
    ),
    "Operation": (
        {
            "tags": (1, "string*"),
            "summary": (2, "string"),
            "description": (3, "string"),
            "externalDocs": (4, "ExternalDocs"),
            "operationId": (5, "string"),
            "produces": (6, "string*"),
            "consumes": (7, "string*"),
            "parameters": (8, "ParametersItem*"),
            "responses": (9, "Responses"),
            "schemes": (10, "string*"),
            "deprecated": (11, "bool"),
            "security": (12, "SecurityRequirement*"),
        },
        13,
    ),
    "BodyParameter": (
        {
            "description": (1, "string"),
            "name": (2, "string"),
            "in": (3, "string"),
            "required": (4, "bool"),
            "schema": (5, "Schema"),
        },
        6,
    ),
    "JsonReference": ({"$ref": (1, "string"), "description": (2, "string")}, None),
    "Response": (
        {
            "description": (1, "string"),
            "schema": (2, "SchemaItem"),
            "headers": (3, "Headers"),
            "examples": (4, "Examples"),
        },
        5,
    ),
    "Schema": (
        {
            "$ref": (1, "string"),
            "format": (2, "string"),
            "title": (3, "string"),
            "description": (4, "string"),
            "default": (5, "any"),
            "multipleOf": (6, "double"),
            "maximum": (7, "double"),
            "exclusiveMaximum": (8, "bool"),
            "minimum": (9, "double"),
            "exclusiveMinimum": (10, "bool"),
            "maxLength": (11, "int64"),
            "minLength": (12, "int64"),
            "pattern": (13, "string"),
            "maxItems": (14, "int64"),
            "minItems": (15, "int64"),
            "uniqueItems": (16, "bool"),
            "maxProperties": (17, "int64"),
            "minProperties": (18, "int64"),
            "required": (19, "string*"),
            "enum": (20, "any*"),
            "additionalProperties": (21, "AdditionalPropertiesItem"),
            "type": (22, "TypeItem"),
            "items": (23, "ItemsItem"),
            "allOf": (24, "Schema*"),
            "properties": (25, "Properties"),
            "discriminator": (26, "string"),
            "readOnly": (27, "bool"),
            "xml": (28, "Xml"),
            "externalDocs": (29, "ExternalDocs"),
            "example": (30, "any"),
        },
        31,
    ),
    "FileSchema": (
        {
            "format": (1, "string"),
            "title": (2, "string"),
            "description": (3, "string"),
            "default": (4, "any"),
            "required": (5, "string*"),
            "type": (6, "string"),
            "readOnly": (7, "bool"),
            "externalDocs": (8, "ExternalDocs"),
            "example": (9, "any"),
        },
        10,
    ),
    "Xml": (
        {
            "name": (1, "string"),
            "namespace": (2, "string"),
            "prefix": (3, "string"),
            "attribute": (4, "bool"),
            "wrapped": (5, "bool"),
        },
        6,
    ),
    "ApiKeySecurity": (
        {
            "type": (1, "string"),
            "name": (2, "string"),
            "in": (3, "string"),
            "description": (4, "string"),
        },
        5,
    ),
    "BasicAuthenticationSecurity": ({"type": (1, "string"), "description": (2, "string")}, 3),
}

# Primitive-valued items and non-body parameters share a shape with different numbers.
_PRIMITIVE_TAIL = (
    "type",
    "format",
    "items",
    "collectionFormat",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
)
_PRIMITIVE_KINDS = {
    "type": "string",
    "format": "string",
    "items": "PrimitivesItems",
    "collectionFormat": "string",
    "default": "any",
    "maximum": "double",
    "exclusiveMaximum": "bool",
    "minimum": "double",
    "exclusiveMinimum": "bool",
    "maxLength": "int64",
    "minLength": "int64",
    "pattern": "string",
    "maxItems": "int64",
    "minItems": "int64",
    "uniqueItems": "bool",
    "enum": "any*",
    "multipleOf": "double",
    "required": "bool",
    "in": "string",
    "description": "string",
    "name": "string",
    "allowEmptyValue": "bool",
}


def _numbered(names: Iterable[str], start: int = 1) -> dict[str, tuple[int, str]]:
    return {n: (i, _PRIMITIVE_KINDS[n]) for i, n in enumerate(names, start)}


_HEAD = ("required", "in", "description", "name")
_MESSAGES["PrimitivesItems"] = (_numbered(_PRIMITIVE_TAIL), 18)
_MESSAGES["Header"] = ({**_numbered(_PRIMITIVE_TAIL), "description": (18, "string")}, 19)
_MESSAGES["HeaderParameterSubSchema"] = (_numbered((*_HEAD, *_PRIMITIVE_TAIL)), 22)
_MESSAGES["PathParameterSubSchema"] = (_numbered((*_HEAD, *_PRIMITIVE_TAIL)), 22)
_MESSAGES["QueryParameterSubSchema"] = (
    _numbered((*_HEAD, "allowEmptyValue", *_PRIMITIVE_TAIL)),
    23,
)
_MESSAGES["FormDataParameterSubSchema"] = _MESSAGES["QueryParameterSubSchema"]

# Maps with free keys: message -> (field of the Named* entries, value kind, field of
# vendor extensions or None when x-* keys are ordinary entries).
_MAPS: dict[str, tuple[int, str, int | None]] = {
    "Definitions": (1, "Schema", None),
    "Properties": (1, "Schema", None),
    "ParameterDefinitions": (1, "Parameter", None),
    "ResponseDefinitions": (1, "Response", None),
    "SecurityDefinitions": (1, "SecurityDefinitionsItem", None),
    "SecurityRequirement": (1, "StringArray", None),
    "Headers": (1, "Header", None),
    "Examples": (1, "any", None),
    "Paths": (2, "PathItem", 1),
    "Responses": (1, "ResponseValue", 2),
}


def _any_yaml(value: Json) -> str:
    """gnostic's ``Any.yaml``: the value as a YAML document."""
    text = yaml.safe_dump(
        value, default_flow_style=False, sort_keys=True, allow_unicode=True, width=1 << 30
    )
    return text.removesuffix("...\n")


class _Encoder:
    def __init__(self) -> None:
        self._yaml_cache: dict[bytes, bytes] = {}

    def any(self, value: Json) -> bytes:
        """An ``Any`` message body (``yaml`` = field 2)."""
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        cached = self._yaml_cache.get(key)
        if cached is None:
            cached = _str_field(2, _any_yaml(value))
            self._yaml_cache[key] = cached
        return cached

    def named_any(self, name: str, value: Json) -> bytes:
        return _str_field(1, name) + _len_field(2, self.any(value))

    def field(self, number: int, kind: str, value: Json) -> bytes:
        if kind == "string":
            return _str_field(number, str(value)) if value != "" else b""
        if kind == "bool":
            return _key(number, _VARINT) + b"\x01" if value else b""
        if kind == "int64":
            return _key(number, _VARINT) + _varint(int(value)) if value else b""
        if kind == "double":
            return _key(number, _I64) + struct.pack("<d", float(value))
        if kind == "string*":
            return b"".join(_str_field(number, str(v)) for v in value)
        if kind == "any":
            return _len_field(number, self.any(value))
        if kind == "any*":
            return b"".join(_len_field(number, self.any(v)) for v in value)
        if kind.endswith("*"):
            return b"".join(_len_field(number, self.message(kind[:-1], v)) for v in value)
        return _len_field(number, self.message(kind, value))

    def message(self, name: str, value: Json) -> bytes:
        special = getattr(self, "_m_" + name, None)
        if special is not None:
            result: bytes = special(value)
            return result
        if name in _MAPS:
            return self._map(name, value)
        fields, ext = _MESSAGES[name]
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object, got {value!r:.80}")
        parts: list[tuple[int, str, bytes]] = []  # emitted in field-number order, as Go does
        for key, item in value.items():
            spec = fields.get(key)
            if spec is not None:
                parts.append((spec[0], key, self.field(spec[0], spec[1], item)))
            elif key.startswith("x-") and ext is not None:
                parts.append((ext, key, _len_field(ext, self.named_any(key, item))))
            else:
                raise ValueError(f"{name}: no protobuf field for {key!r}")
        parts.sort(key=lambda part: (part[0], part[1]))
        return b"".join(part[2] for part in parts)

    def _map(self, name: str, value: Json) -> bytes:
        entries, kind, ext = _MAPS[name]
        out = bytearray()
        for key in sorted(value):
            if ext is not None and key.startswith("x-"):
                out += _len_field(ext, self.named_any(key, value[key]))
            elif kind == "any":
                out += _len_field(entries, self.named_any(key, value[key]))
            else:
                named = _str_field(1, key) + _len_field(2, self.message(kind, value[key]))
                out += _len_field(entries, named)
        return bytes(out)

    # --- one-ofs and wrappers ---------------------------------------------------------
    def _m_TypeItem(self, value: Json) -> bytes:
        values = value if isinstance(value, list) else [value]
        return b"".join(_str_field(1, str(v)) for v in values)

    def _m_ItemsItem(self, value: Json) -> bytes:
        values = value if isinstance(value, list) else [value]
        return b"".join(_len_field(1, self.message("Schema", v)) for v in values)

    def _m_AdditionalPropertiesItem(self, value: Json) -> bytes:
        if isinstance(value, bool):
            return _key(2, _VARINT) + (b"\x01" if value else b"\x00")
        return _len_field(1, self.message("Schema", value))

    def _m_StringArray(self, value: Json) -> bytes:
        return b"".join(_str_field(1, str(v)) for v in value)

    def _m_SchemaItem(self, value: Json) -> bytes:
        if value.get("type") == "file":
            return _len_field(2, self.message("FileSchema", value))
        return _len_field(1, self.message("Schema", value))

    def _m_ResponseValue(self, value: Json) -> bytes:
        if "$ref" in value:
            return _len_field(2, self.message("JsonReference", value))
        return _len_field(1, self.message("Response", value))

    def _m_ParametersItem(self, value: Json) -> bytes:
        if "$ref" in value:
            return _len_field(2, self.message("JsonReference", value))
        return _len_field(1, self.message("Parameter", value))

    def _m_Parameter(self, value: Json) -> bytes:
        where = value.get("in")
        if where == "body":
            return _len_field(1, self.message("BodyParameter", value))
        number, sub = {
            "header": (1, "HeaderParameterSubSchema"),
            "formData": (2, "FormDataParameterSubSchema"),
            "query": (3, "QueryParameterSubSchema"),
            "path": (4, "PathParameterSubSchema"),
        }[where]
        return _len_field(2, _len_field(number, self.message(sub, value)))

    def _m_SecurityDefinitionsItem(self, value: Json) -> bytes:
        if value.get("type") == "basic":
            return _len_field(1, self.message("BasicAuthenticationSecurity", value))
        if value.get("type") == "apiKey":
            return _len_field(2, self.message("ApiKeySecurity", value))
        raise ValueError(f"unsupported security definition {value!r:.80}")


def encode_v2_protobuf(document: dict[str, Any]) -> bytes:
    """Encode a Swagger 2.0 document as a gnostic ``openapi.v2.Document`` message."""
    return _Encoder().message("Document", document)
