"""The semantic layer of the API: what happens to an object on create, update, patch,
delete, and on the ``status``, ``scale`` and ``binding`` subresources.

Who calls it: the HTTP server (:mod:`runtime.server.app`) for every request, and
in-process components that need the same semantics. It owns the rules Kubernetes'
generic registry applies around storage: system metadata (uid, creationTimestamp,
generation, managedFields), decoding checks, defaulting and validation (admission),
namespaces that must exist, optimistic concurrency, finalizers and
``deletionTimestamp``, propagation policies, dry-run, CRDs registering resources,
version conversion for multi-version custom resources, and Service cluster IP / node
port allocation (:mod:`runtime.api.services`). Storage itself is
:mod:`runtime.api.store`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from kubemodel import errors, patch
from kubemodel.errors import ApiError
from kubemodel.schema import Node, Schemas
from runtime.api import admission, decode, services, ssa, storageclasses
from runtime.api.admission import podsecurity
from runtime.api.registry import CustomInfo, Registry, ResourceInfo
from runtime.api.selectors import (
    FieldSelector,
    LabelSelector,
    allowed_fields,
    parse_field_selector,
    parse_label_selector,
)
from runtime.api.store import (
    MAX_OBJECT_BYTES,
    Conflict,
    Entry,
    Exists,
    Missing,
    Store,
    TooLarge,
    Unavailable,
)
from runtime.auth.admission import AdmissionPlugin, AdmissionRequest, Operation
from runtime.auth.user import UserInfo

log = structlog.get_logger(__name__)

NAMESPACES = "core/namespaces"
CRDS = "apiextensions.k8s.io/customresourcedefinitions"
PODS = "core/pods"
JOBS = "batch/jobs"
#: Kinds whose strategies allow a PUT to create a missing object (AllowCreateOnUpdate).
CREATE_ON_UPDATE = frozenset(
    {
        "core/services",
        "core/endpoints",
        "core/events",
        "core/limitranges",
        "rbac.authorization.k8s.io/roles",
        "rbac.authorization.k8s.io/rolebindings",
        "rbac.authorization.k8s.io/clusterroles",
        "rbac.authorization.k8s.io/clusterrolebindings",
        "coordination.k8s.io/leases",
        "node.k8s.io/runtimeclasses",
    }
)
#: Kinds (besides custom resources) whose PUT must carry metadata.resourceVersion
#: (AllowUnconditionalUpdate false).
CONDITIONAL_UPDATE = frozenset(
    {
        "policy/poddisruptionbudgets",
        "storage.k8s.io/csidrivers",
        "storage.k8s.io/csinodes",
        "storage.k8s.io/csistoragecapacities",
        "storage.k8s.io/volumeattachments",
        "coordination.k8s.io/leases",
        "node.k8s.io/runtimeclasses",
        "admissionregistration.k8s.io/validatingwebhookconfigurations",
        "admissionregistration.k8s.io/mutatingwebhookconfigurations",
        "admissionregistration.k8s.io/validatingadmissionpolicies",
        "admissionregistration.k8s.io/validatingadmissionpolicybindings",
        "apiextensions.k8s.io/customresourcedefinitions",
    }
)
#: Kinds whose deletion orphans dependents when the request names no policy.
ORPHAN_BY_DEFAULT = frozenset({JOBS, "core/replicationcontrollers"})
JOB_ORPHAN_WARNING = (
    "child pods are preserved by default when jobs are deleted; set "
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to "
    "suppress this warning"
)
#: The finalizer apiextensions-apiserver puts on a CRD being deleted until its custom
#: objects are gone.
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Kinds whose strategies track metadata.generation (custom resources always do).
_GENERATION_KINDS = frozenset(
    {
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
        "core/replicationcontrollers",
        "core/pods",
        "autoscaling/horizontalpodautoscalers",
        "policy/poddisruptionbudgets",
        "networking.k8s.io/networkpolicies",
        "apiextensions.k8s.io/customresourcedefinitions",
        "admissionregistration.k8s.io/validatingadmissionpolicies",
        "flowcontrol.apiserver.k8s.io/flowschemas",
        "flowcontrol.apiserver.k8s.io/prioritylevelconfigurations",
    }
)
# Kinds whose status may be set on create (everything else with a status subresource
# starts from an empty status, as in Kubernetes' PrepareForCreate strategies).
_STATUS_ON_CREATE = frozenset({"core/nodes", "core/events", "apiregistration.k8s.io/apiservices"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ApiOptions:
    """Behaviour switches of the object layer."""

    # Add the ``orphan``/``foregroundDeletion`` finalizers on delete, as kube-apiserver
    # does when its garbage collector runs. Off until a garbage collector is running,
    # in which case deletion is immediate (Kubernetes with GC disabled).
    garbage_collection: bool = False
    # Pods bound to a node are deleted gracefully (deletionTimestamp + grace period) and
    # removed by their kubelet, as in Kubernetes. Without kubelets, turn this off.
    graceful_pod_deletion: bool = True
    # Where Services get their cluster IPs and node ports (kube-apiserver's
    # --service-cluster-ip-range and --service-node-port-range; defaults as k3s).
    service_cidr: str = services.DEFAULT_SERVICE_CIDR
    service_node_port_range: str = services.DEFAULT_NODE_PORT_RANGE
    # The API server's secure port: the targetPort of the ``kubernetes`` Service.
    apiserver_port: int = 6443
    # PodSecurity admission's defaults for unlabelled namespaces and its exemptions
    # (kube-apiserver's PodSecurityConfiguration; this cluster's default is
    # enforce=baseline, warn=restricted: see runtime.api.admission.podsecurity).
    pod_security: podsecurity.PodSecurityConfig = podsecurity.DEFAULT_CONFIG
    # Admission plugins that read the requester (runtime.auth.admission), in order.
    admission: Sequence[AdmissionPlugin] = ()


@dataclass
class WriteOptions:
    """Per-request options of a write (query parameters of the request)."""

    dry_run: bool = False
    field_manager: str = ""
    force: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    # Who asks (admission plugins, PodSecurity's username exemptions); None for the
    # server's own writes, which skip the requester-dependent admission plugins.
    requester: UserInfo | None = None

    @property
    def user(self) -> str:
        return self.requester.name if self.requester is not None else ""


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    # The object is still there (finalizers, graceful deletion): HTTP 202 on delete.
    pending: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[Entry]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _strip_managed_times(obj: dict[str, Any]) -> Any:
    meta = obj.get("metadata") or {}
    managed = meta.get("managedFields")
    if not managed:
        return obj
    copy = dict(obj)
    copy["metadata"] = dict(meta)
    copy["metadata"]["managedFields"] = [
        {k: v for k, v in entry.items() if k != "time"} for entry in managed
    ]
    return copy


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _selector_string(sel: dict[str, Any] | None) -> str:
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _carry_over(info: ResourceInfo, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Keep what the server allocated or owns when an update omits it, as kube-apiserver
    does: a Service's cluster IPs, IP families and node ports (patchAllocatedValues), and
    a Namespace's spec.finalizers (changed only through the finalize subresource)."""
    old_spec = old.get("spec") or {}
    if info.store_key == "core/namespaces":
        spec = new.setdefault("spec", {})
        if "finalizers" in old_spec:
            spec["finalizers"] = old_spec["finalizers"]
        else:
            spec.pop("finalizers", None)
        return
    if info.store_key != "core/services":
        return
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return
    same_type = spec.get("type", "ClusterIP") == old_spec.get("type", "ClusterIP")
    if (
        not spec.get("clusterIP")
        and old_spec.get("clusterIP")
        and spec.get("type") != "ExternalName"
    ):
        spec["clusterIP"] = old_spec["clusterIP"]
        if old_spec.get("clusterIPs") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = old_spec["clusterIPs"]
    for key in ("ipFamilies", "ipFamilyPolicy"):
        if (
            key not in spec
            and key in old_spec
            and spec.get("clusterIP") == old_spec.get("clusterIP")
        ):
            spec[key] = old_spec[key]
    if same_type and not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
        for p in old_spec.get("ports") or []
        if isinstance(p, dict)
    }
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and not port.get("nodePort"):
            allocated = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if allocated and spec.get("type") in ("NodePort", "LoadBalancer"):
                port["nodePort"] = allocated


def _namespace_terminating(obj: dict[str, Any]) -> bool:
    status = obj.setdefault("status", {})
    if status.get("phase") == "Terminating":
        return False
    status["phase"] = "Terminating"
    return True


def _crd_terminating(obj: dict[str, Any]) -> bool:
    """apiextensions-apiserver's condition on a CRD marked for deletion."""
    status = obj.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if any(c.get("type") == "Terminating" for c in conditions):
        return False
    conditions.append(
        {
            "type": "Terminating",
            "status": "True",
            "lastTransitionTime": now_rfc3339(),
            "reason": "InstanceDeletionPending",
            "message": "CustomResourceDefinition marked for deletion; CustomResource deletion "
            "will begin soon",
        }
    )
    status["conditions"] = conditions
    return True


def _delete_during_update(info: ResourceInfo, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Kubernetes' ShouldDeleteDuringUpdate: an update that removes the last finalizer of
    an object being deleted (with no grace period pending) deletes it. For namespaces the
    finalizers of ``spec`` count too (emptied through the finalize subresource)."""
    meta = new.get("metadata") or {}
    old_meta = old.get("metadata") or {}
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    had = bool(old_meta.get("finalizers"))
    if info.store_key == NAMESPACES:
        if (new.get("spec") or {}).get("finalizers"):
            return False
        had = had or bool((old.get("spec") or {}).get("finalizers"))
    if not had:
        return False
    grace = meta.get("deletionGracePeriodSeconds")
    return grace is None or int(grace) == 0


def _reset_fields(info: ResourceInfo, subresource: str) -> tuple[str, ...]:
    """Fields a write through this endpoint cannot change (so are not owned by it)."""
    if not info.has_status:
        return ()
    return ("spec",) if subresource == "status" else ("status",)


def _name_mismatch(body_name: str, url_name: str) -> str:
    return f"the name of the object ({body_name}) does not match the name on the URL ({url_name})"


def _uid_precondition(wanted: Any, actual: Any) -> str:
    return f"Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"


def _get_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


class ObjectAPI:
    """Kubernetes object semantics over a :class:`Store`."""

    def __init__(
        self, store: Store, registry: Registry, schemas: Schemas, options: ApiOptions | None = None
    ) -> None:
        self.store = store
        self.registry = registry
        self.schemas = schemas
        self.options = options or ApiOptions()
        self._registry_listeners: list[Callable[[], None]] = []
        self._roots: dict[tuple[str, str, str], Node] = {}
        self.services = services.ServiceAllocator(
            services.parse_service_cidr(self.options.service_cidr),
            services.parse_port_range(self.options.service_node_port_range),
            lambda: (e.obj() for e in store.iter(services.SERVICES)),
        )

    # --- start-up ---------------------------------------------------------------------
    async def bootstrap(self) -> None:
        """Create the system namespaces and register the resources of stored CRDs."""
        for entry in list(self.store.iter(CRDS)):
            self._register_crd(entry.obj())
        ns_info = self._info("", "v1", "namespaces")
        for name in SYSTEM_NAMESPACES:
            if self.store.latest(NAMESPACES, "", name) is None:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                try:
                    await self.create(
                        ns_info, "", body, WriteOptions(field_manager="gitops-apiserver")
                    )
                except ApiError as exc:
                    if exc.reason != "AlreadyExists":
                        raise
        self.services.load()
        await self._kubernetes_service()

    async def _kubernetes_service(self) -> None:
        """kube-apiserver's own Service, ``default/kubernetes``, created when missing."""
        info = self._info("", "v1", "services")
        if self.store.latest(info.store_key, "default", "kubernetes") is not None:
            return
        body = services.kubernetes_service(self.services.cidr, self.options.apiserver_port)
        try:
            await self.create(info, "default", body, WriteOptions(field_manager="kube-apiserver"))
        except ApiError as exc:
            log.warning("apiserver.kubernetes_service_failed", error=exc.message)

    def on_registry_change(self, listener: Callable[[], None]) -> None:
        self._registry_listeners.append(listener)

    def _info(self, group: str, version: str, plural: str) -> ResourceInfo:
        info = self.registry.get(group, version, plural)
        assert info is not None, (group, version, plural)
        return info

    # --- schema helpers ---------------------------------------------------------------
    def root_schema(self, info: ResourceInfo) -> Node:
        key = (info.group, info.version, info.kind)
        root = self._roots.get(key)  # cleared whenever CRDs change the registry
        if root is None:
            if info.custom is not None:
                root = self.schemas.custom_root(info.custom.schema)
            else:
                root = self.schemas.root(info.group, info.version, info.kind) or {}
            self._roots[key] = root
        return root

    # --- conversion -------------------------------------------------------------------
    def convert(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        """Present a stored object in the version of ``info`` (apiVersion rewrite only:
        custom resources use conversion strategy None; built-ins have one version)."""
        if obj.get("apiVersion") != info.api_version:
            obj["apiVersion"] = info.api_version
        return obj

    def render(self, info: ResourceInfo, entry: Entry) -> bytes:
        """The JSON bytes of a stored entry as ``info``'s version presents it."""
        if info.storage_version and info.storage_version != info.version:
            return orjson.dumps(self.convert(info, entry.obj()))
        return entry.data

    # --- reads ------------------------------------------------------------------------
    def get(self, info: ResourceInfo, namespace: str, name: str) -> Entry:
        entry = self.store.get(info.store_key, namespace if info.namespaced else "", name)
        if entry is None:
            raise errors.not_found(info.group, info.plural, name)
        return entry

    def parse_selectors(
        self, info: ResourceInfo, label_selector: str | None, field_selector: str | None
    ) -> tuple[LabelSelector, FieldSelector]:
        custom_fields: tuple[str, ...] = ()
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, allowed_fields(info.store_key, custom_fields))
        return labels, fields

    def list_objects(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        if not info.namespaced:
            namespace = None
        rv = self.store.revision
        after: tuple[str, str] | None = None
        if continue_token:
            after, rv = self._decode_continue(continue_token)
        name = fields.exact("metadata.name")
        ns_field = fields.exact("metadata.namespace")
        if ns_field is not None:
            if namespace is not None and ns_field != namespace:
                return ListResult([], rv)
            namespace = ns_field if info.namespaced else None
        items: list[Entry] = []
        if name is not None and namespace is not None and not continue_token:
            entry = self.store.get(info.store_key, namespace, name)
            candidates: Iterable[Entry] = [entry] if entry else []
        else:
            candidates = self.store.iter(info.store_key, namespace, after=after)
        check_labels = not labels.empty()
        check_fields = not fields.empty()
        token = ""
        remaining: int | None = None
        iterator = iter(candidates)
        for entry in iterator:
            if check_labels and not labels.matches(entry.labels):
                continue
            if check_fields and not fields.matches(entry.fields):
                continue
            if limit and len(items) >= limit:
                last = items[-1]
                token = self._encode_continue((last.namespace, last.name), rv)
                remaining = 1 + sum(
                    1
                    for e in iterator
                    if (not check_labels or labels.matches(e.labels))
                    and (not check_fields or fields.matches(e.fields))
                )
                break
            items.append(entry)
        return ListResult(items, rv, token, remaining)

    @staticmethod
    def _encode_continue(after: tuple[str, str], rv: int) -> str:
        raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(after)})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[tuple[str, str], int]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = orjson.loads(raw)
            start = data["start"]
            return (str(start[0]), str(start[1])), int(data["rv"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise errors.bad_request(f"continue key is not valid: {exc}") from exc

    # --- write helpers ----------------------------------------------------------------
    def _require_namespace(self, info: ResourceInfo, namespace: str, name: str) -> None:
        if not info.namespaced:
            return
        if not namespace:
            raise errors.bad_request(
                "the server could not find the requested resource: a namespace is required"
            )
        ns = self.store.latest(NAMESPACES, "", namespace)
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if b'"deletionTimestamp"' in ns.data:
            ns_obj = ns.obj()
            if (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{info.plural} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                    {"kind": info.plural},
                )

    def _check_identity(self, info: ResourceInfo, obj: Any, namespace: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        # Another served version of the same custom resource converts with strategy None.
        sibling = info.storage_version and self.registry.get(
            info.group, str(api_version).rpartition("/")[2], info.plural
        )
        if api_version and api_version != info.api_version and not sibling:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({info.api_version})"
            )
        if kind and kind != info.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
            )
        obj["apiVersion"] = info.api_version
        obj["kind"] = info.kind
        meta = _meta(obj)
        if info.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace or body_ns or ""
        else:
            meta.pop("namespace", None)
        return obj

    def _decode(self, info: ResourceInfo, obj: dict[str, Any], opts: WriteOptions) -> list[str]:
        if info.custom is not None:
            return []
        root = self.root_schema(info)
        if not root:
            return []
        report = decode.check(self.schemas, root, obj, prune=True)
        if report.type_errors:
            raise errors.bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                + "; ".join(report.type_errors)
            )
        if report.unknown:
            fields_text = ", ".join(f'unknown field "{p}"' for p in report.unknown)
            if opts.field_validation == "Strict":
                raise errors.bad_request(f"strict decoding error: {fields_text}")
            if opts.field_validation != "Ignore":
                return [f'unknown field "{p}"' for p in report.unknown]
        return []

    def _admit(self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is None and info.group == "" and info.plural == "persistentvolumeclaims":
            self._default_storage_class(obj)
        if old is not None and info.store_key == services.SERVICES:
            services.prepare_update(obj, old)
        admission.default(info, obj)
        causes = admission.validate(info, obj, old)
        if info.store_key == CRDS and not causes:
            causes = self._crd_conflicts(obj, old)
        if causes:
            name = str(_meta(obj).get("name") or "")
            raise errors.invalid_object(info.group, info.kind, name, causes)

    def _admission(
        self,
        operation: Operation,
        info: ResourceInfo,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        opts: WriteOptions,
        subresource: str = "",
    ) -> list[str]:
        """The validating/mutating admission chain after defaulting and validation:
        the requester-dependent plugins of ``ApiOptions.admission`` (skipped for the
        server's own writes), then PodSecurity. Raises their refusal; returns warnings."""
        warnings: list[str] = []
        if opts.requester is not None and operation != "DELETE":
            meta = _meta(obj)
            request = AdmissionRequest(
                operation=operation,
                info=info,
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                obj=obj,
                old=old,
                user=opts.requester,
                subresource=subresource,
                dry_run=opts.dry_run,
            )
            for plugin in self.options.admission:
                warnings += plugin.admit(request)
        return warnings + self._pod_security(info, obj, old, opts, subresource)

    def _admit_delete(
        self, info: ResourceInfo, obj: dict[str, Any], opts: WriteOptions
    ) -> list[str]:
        """The requester-dependent admission plugins for a DELETE of ``obj``."""
        if opts.requester is None:
            return []
        meta = _meta(obj)
        request = AdmissionRequest(
            operation="DELETE",
            info=info,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            obj=obj,
            old=obj,
            user=opts.requester,
            dry_run=opts.dry_run,
        )
        warnings: list[str] = []
        for plugin in self.options.admission:
            warnings += plugin.admit(request)
        return warnings

    def _pod_security(
        self,
        info: ResourceInfo,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        opts: WriteOptions,
        subresource: str = "",
    ) -> list[str]:
        """Kubernetes' PodSecurity admission for a validated write: raises its 403 (a pod
        the namespace's enforce level refuses) or 422 (bad namespace labels), returns its
        warnings. Runs after validation, as kube-apiserver's validating admission does."""
        if info.custom is not None or (info.group, info.plural) not in podsecurity.RESOURCES:
            return []
        meta = _meta(obj)
        name = str(meta.get("name") or "")
        request = podsecurity.Request(
            group=info.group,
            resource=info.plural,
            name=name,
            namespace=name if info.store_key == NAMESPACES else str(meta.get("namespace") or ""),
            obj=obj,
            old=old,
            subresource=subresource,
            username=opts.user,
        )
        decision = podsecurity.admit(self.options.pod_security, request, self._lookups)
        if decision.error is not None:
            raise decision.error
        return decision.warnings

    @property
    def _lookups(self) -> podsecurity.Lookups:
        def labels(namespace: str) -> dict[str, str] | None:
            entry = self.store.latest(NAMESPACES, "", namespace)
            return None if entry is None else dict(entry.labels)

        def pods(namespace: str) -> Iterator[dict[str, Any]]:
            return (entry.obj() for entry in self.store.iter(PODS, namespace))

        return podsecurity.Lookups(labels, pods)

    def _default_storage_class(self, claim: dict[str, Any]) -> None:
        """Kubernetes' DefaultStorageClass admission: a new claim that names no class
        gets the cluster's default StorageClass, if there is one."""
        if not storageclasses.claim_needs_default(claim):
            return
        classes = self._info("storage.k8s.io", "v1", "storageclasses")
        name = storageclasses.default_class(e.obj() for e in self.store.iter(classes.store_key))
        if name is not None:
            claim.setdefault("spec", {})["storageClassName"] = name

    @contextlib.contextmanager
    def _allocated(
        self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool
    ) -> Iterator[None]:
        """A Service's cluster IP and node ports for the write of ``obj`` (in the same
        critical section as the store write): kept when the write is stored, given back
        when it fails or is a dry run — kube-apiserver's BeginCreate/BeginUpdate."""
        if info.store_key != services.SERVICES:
            yield
            return
        allocation = self.services.allocate(obj, old)
        try:
            yield
        except BaseException:
            allocation.revert()
            raise
        if dry_run:
            allocation.revert()
        else:
            allocation.commit()

    def _track(
        self,
        info: ResourceInfo,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str = "",
    ) -> None:
        ssa.track_update(
            self.schemas,
            self.root_schema(info),
            old,
            new,
            manager or "unknown",
            api_version=info.api_version,
            now=now_rfc3339(),
            subresource=subresource,
            reset_fields=_reset_fields(info, subresource),
        )

    def _store_error(self, info: ResourceInfo, name: str, exc: Exception) -> ApiError:
        if isinstance(exc, Exists):
            return errors.already_exists(info.group, info.plural, name)
        if isinstance(exc, Missing):
            return errors.not_found(info.group, info.plural, name)
        if isinstance(exc, Conflict):
            return errors.stale(info.group, info.plural, name)
        if isinstance(exc, Unavailable):
            return errors.unavailable(f"storage is unavailable: {exc}")
        if isinstance(exc, TooLarge):
            return errors.too_large(
                f"{info.group_resource} {name!r} is {exc.size} bytes as JSON; objects may be at "
                f"most {MAX_OBJECT_BYTES} bytes (etcd's request limit)"
            )
        return errors.internal(str(exc))

    # --- create -----------------------------------------------------------------------
    async def create(
        self, info: ResourceInfo, namespace: str, body: Any, opts: WriteOptions
    ) -> WriteResult:
        obj = self._check_identity(info, body, namespace)
        meta = _meta(obj)
        namespace = str(meta.get("namespace") or "")
        self._require_namespace(
            info, namespace, str(meta.get("name") or meta.get("generateName") or "")
        )
        warnings = self._decode(info, obj, opts)
        meta = _meta(obj)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            name = str(meta["generateName"]) + suffix
            meta["name"] = name
        name = str(name or "")
        self._prepare_create(info, obj)
        self._admit(info, obj, None)
        warnings += self._admission("CREATE", info, obj, None, opts)
        if info.store_key == CRDS:
            self._crd_status(obj)
        self._track(info, None, obj, opts.field_manager)
        return await self._do_create(info, namespace, name, obj, opts, warnings)

    def _prepare_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        meta = _meta(obj)
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if info.custom is not None or info.store_key in _GENERATION_KINDS:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if info.has_status and info.store_key not in _STATUS_ON_CREATE:
            obj.pop("status", None)

    async def _do_create(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        opts: WriteOptions,
        warnings: list[str],
    ) -> WriteResult:
        storage = self.registry.storage_info(info)
        if self.store.latest(info.store_key, namespace, name) is not None:
            raise errors.already_exists(info.group, info.plural, name)
        with self._allocated(info, obj, None, opts.dry_run):
            if opts.dry_run:
                return WriteResult(obj, created=True, warnings=warnings)
            stored = dict(obj)
            stored["apiVersion"] = storage.api_version
            try:
                entry = await self.store.create(info.store_key, namespace, name, stored)
            except Exception as exc:
                raise self._store_error(info, name, exc) from exc
        if info.store_key == CRDS:
            self._register_crd(entry.obj())
        return WriteResult(self.convert(info, entry.obj()), created=True, warnings=warnings)

    # --- update -----------------------------------------------------------------------
    async def replace(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        subresource: str = "",
    ) -> WriteResult:
        obj = self._check_identity(info, body, namespace)
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(_name_mismatch(str(meta["name"]), name))
        meta["name"] = name
        namespace = str(meta.get("namespace") or "") if info.namespaced else ""
        current = self.store.latest(info.store_key, namespace, name)
        if current is None:
            if not subresource and info.store_key in CREATE_ON_UPDATE and not meta.get("uid"):
                # The strategy's AllowCreateOnUpdate: a PUT creates the object (201).
                meta.pop("resourceVersion", None)
                return await self.create(info, namespace, obj, opts)
            raise errors.not_found(info.group, info.plural, name)
        body_rv = meta.get("resourceVersion")
        if not body_rv and (info.custom is not None or info.store_key in CONDITIONAL_UPDATE):
            # AllowUnconditionalUpdate false: the store refuses an update without one.
            raise errors.invalid_object(
                info.group,
                info.plural,
                name,
                [
                    errors.invalid_literal(
                        "metadata.resourceVersion", "0x0", "must be specified for an update"
                    )
                ],
            )
        if body_rv and str(body_rv) != str(current.rv):
            raise errors.stale(info.group, info.plural, name)
        warnings = self._decode(info, obj, opts)
        old = self.convert(info, current.obj())
        return await self._update(
            info, namespace, name, old, obj, current.rv, opts, subresource, warnings
        )

    async def _update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        expect_rv: int,
        opts: WriteOptions,
        subresource: str,
        warnings: list[str],
        *,
        managed: bool = True,
    ) -> WriteResult:
        old_meta = old.get("metadata") or {}
        meta = _meta(new)
        body_uid = meta.get("uid")
        if body_uid and body_uid != old_meta.get("uid"):
            raise errors.conflict(
                info.group,
                info.plural,
                name,
                _uid_precondition(body_uid, old_meta.get("uid")),
            )
        if subresource == "status":
            merged = dict(old)
            merged["metadata"] = dict(old_meta)
            if "managedFields" in meta:
                merged["metadata"]["managedFields"] = meta["managedFields"]
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
            meta = merged["metadata"]
        else:
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if "managedFields" not in meta and "managedFields" in old_meta:
                meta["managedFields"] = old_meta["managedFields"]
            if info.has_status and subresource != "finalize":
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            if subresource == "finalize":
                # Only spec.finalizers may change through namespaces/x/finalize.
                finalizers = (new.get("spec") or {}).get("finalizers")
                kept = {k: v for k, v in old.items() if k != "metadata"}
                kept["metadata"] = meta
                kept["spec"] = dict(old.get("spec") or {})
                if finalizers:
                    kept["spec"]["finalizers"] = finalizers
                else:
                    kept["spec"].pop("finalizers", None)
                new = kept
        meta.pop("resourceVersion", None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid_object(
                    info.group,
                    info.kind,
                    name,
                    [
                        errors.forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(added)}",
                        )
                    ],
                )
        if subresource not in ("status", "finalize"):
            _carry_over(info, old, new)
        self._admit(info, new, old)
        warnings = warnings + self._admission("UPDATE", info, new, old, opts, subresource)
        tracks_generation = info.custom is not None or info.store_key in _GENERATION_KINDS
        if tracks_generation and _spec_part(new) != _spec_part(old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if info.store_key == CRDS:
            self._crd_status(new)
        if managed:
            self._track(
                info, old, new, opts.field_manager, subresource if subresource == "status" else ""
            )
        with self._allocated(info, new, old, opts.dry_run):
            compare_old = dict(old)
            compare_old["metadata"] = {k: v for k, v in old_meta.items() if k != "resourceVersion"}
            if _strip_managed_times(new) == _strip_managed_times(compare_old):
                old_meta_out = dict(old_meta)
                result = dict(old)
                result["metadata"] = old_meta_out
                return WriteResult(result, warnings=warnings)
            if _delete_during_update(info, old, new):
                return await self._remove(info, namespace, name, new, expect_rv, opts)
            if opts.dry_run:
                meta["resourceVersion"] = str(expect_rv)
                return WriteResult(new, warnings=warnings)
            entry = await self._store_update(info, namespace, name, new, expect_rv)
        if info.store_key == CRDS:
            self._register_crd(entry.obj())
        return WriteResult(self.convert(info, entry.obj()), warnings=warnings)

    # --- patch ------------------------------------------------------------------------
    async def patch(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        subresource: str = "",
    ) -> WriteResult:
        namespace = namespace if info.namespaced else ""
        current = self.store.latest(info.store_key, namespace, name)
        if patch_type == "apply":
            return await self._apply(info, namespace, name, current, body, opts, subresource)
        if current is None:
            raise errors.not_found(info.group, info.plural, name)
        old = self.convert(info, current.obj())
        if patch_type == "json":
            new = patch.json_patch(old, body, max_copy_bytes=patch.JSON_PATCH_MAX_COPY_BYTES)
        elif patch_type == "merge":
            new = patch.merge_patch(old, body)
        elif patch_type == "strategic":
            if info.custom is not None:
                raise errors.unsupported_media_type("application/strategic-merge-patch+json")
            new = patch.strategic_merge_patch(old, body, self.schemas, self.root_schema(info))
        else:
            raise errors.unsupported_media_type(patch_type)
        if not isinstance(new, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        meta = _meta(new)
        patched_rv = meta.get("resourceVersion")
        if patched_rv and str(patched_rv) != str(current.rv):
            raise errors.stale(info.group, info.plural, name)
        if meta.get("name") != name:
            raise errors.bad_request("the name of the object cannot be changed by a patch")
        self._check_identity(info, new, namespace)
        warnings = self._decode(info, new, opts)
        return await self._update(
            info, namespace, name, old, new, current.rv, opts, subresource, warnings
        )

    async def _apply(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        current: Entry | None,
        body: Any,
        opts: WriteOptions,
        subresource: str,
    ) -> WriteResult:
        if not opts.field_manager:
            raise errors.bad_request(
                "PATCH, application/apply-patch+yaml requests must have a fieldManager "
                "query parameter"
            )
        config = self._check_identity(info, body, namespace)
        cmeta = _meta(config)
        if cmeta.get("name") and cmeta["name"] != name:
            raise errors.bad_request(_name_mismatch(str(cmeta["name"]), name))
        cmeta["name"] = name
        if "managedFields" in cmeta:
            raise errors.bad_request("metadata.managedFields must be nil")
        config_rv = cmeta.get("resourceVersion")
        warnings = self._decode(info, config, opts)
        root = self.root_schema(info)
        if current is None:
            if subresource:
                raise errors.not_found(info.group, info.plural, name)
            self._require_namespace(info, namespace, name)
            new = ssa.apply(
                self.schemas,
                root,
                None,
                config,
                opts.field_manager,
                force=opts.force,
                api_version=info.api_version,
                now=now_rfc3339(),
                reset_fields=_reset_fields(info, ""),
            )
            self._prepare_create(info, new)
            self._admit(info, new, None)
            warnings += self._admission("CREATE", info, new, None, opts)
            if info.store_key == CRDS:
                self._crd_status(new)
            return await self._do_create(info, namespace, name, new, opts, warnings)
        if config_rv and str(config_rv) != str(current.rv):
            raise errors.stale(info.group, info.plural, name)
        old = self.convert(info, current.obj())
        live = old
        if info.has_status:
            live = dict(old)
            if subresource == "status":
                config = {
                    "apiVersion": config["apiVersion"],
                    "kind": config["kind"],
                    "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
                    **({"status": config["status"]} if "status" in config else {}),
                }
            else:
                config.pop("status", None)
        new = ssa.apply(
            self.schemas,
            root,
            live,
            config,
            opts.field_manager,
            force=opts.force,
            api_version=info.api_version,
            now=now_rfc3339(),
            subresource="status" if subresource == "status" else "",
            reset_fields=_reset_fields(info, subresource),
        )
        return await self._update(
            info,
            namespace,
            name,
            old,
            new,
            current.rv,
            opts,
            "status" if subresource == "status" else "",
            warnings,
            managed=False,
        )

    # --- delete -----------------------------------------------------------------------
    async def delete(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        options: dict[str, Any] | None,
        opts: WriteOptions,
    ) -> WriteResult:
        options = options or {}
        namespace = namespace if info.namespaced else ""
        current = self.store.latest(info.store_key, namespace, name)
        if current is None:
            raise errors.not_found(info.group, info.plural, name)
        obj = self.convert(info, current.obj())
        meta = _meta(obj)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(
                info.group,
                info.plural,
                name,
                _uid_precondition(pre["uid"], meta.get("uid")),
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(current.rv):
            raise errors.conflict(
                info.group,
                info.plural,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {current.rv}",
            )
        admitted = self._admit_delete(info, obj, opts)
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in PROPAGATION_POLICIES:
            raise errors.invalid_object(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                [errors.not_supported("propagationPolicy", policy, list(PROPAGATION_POLICIES))],
            )
        if options.get("orphanDependents") is not None and policy is not None:
            raise errors.invalid_object(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                [
                    errors.invalid(
                        "propagationPolicy",
                        policy,
                        "orphanDependents and deletionPropagation cannot be both set",
                    )
                ],
            )
        warnings: list[str] = admitted
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        elif policy is None and info.store_key in ORPHAN_BY_DEFAULT:
            # The strategies' DefaultGarbageCollectionPolicy: batch/v1 Jobs and v1
            # ReplicationControllers keep their pods unless told otherwise.
            policy = "Orphan"
            if info.store_key == JOBS:
                warnings.append(JOB_ORPHAN_WARNING)
        finalizers = list(meta.get("finalizers") or [])
        if self.options.garbage_collection and policy in ("Orphan", "Foreground"):
            wanted = "orphan" if policy == "Orphan" else "foregroundDeletion"
            other = "foregroundDeletion" if policy == "Orphan" else "orphan"
            finalizers = [f for f in finalizers if f != other]
            if wanted not in finalizers:
                finalizers.append(wanted)
        result = await self._delete_with(
            info, namespace, name, obj, current.rv, options, opts, finalizers
        )
        result.warnings.extend(warnings)
        return result

    async def _delete_with(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        rv: int,
        options: dict[str, Any],
        opts: WriteOptions,
        finalizers: list[str],
    ) -> WriteResult:
        """The deletion proper once options and finalizers are settled: mark (namespace,
        CRD, grace period, finalizers) or remove."""
        meta = _meta(obj)
        if info.store_key == NAMESPACES and "kubernetes" in (
            (obj.get("spec") or {}).get("finalizers") or []
        ):
            return await self._mark_deleted(
                info,
                namespace,
                name,
                obj,
                rv,
                opts,
                finalizers,
                grace=0,
                mark_status=_namespace_terminating,
            )
        if info.store_key == CRDS and not meta.get("deletionTimestamp"):
            return await self._delete_crd(info, name, obj, rv, opts, finalizers)
        grace = self._grace_period(info, obj, options)
        if finalizers or grace > 0:
            return await self._mark_deleted(
                info, namespace, name, obj, rv, opts, finalizers, grace=grace
            )
        if info.store_key == PODS:
            # Pods are deleted gracefully even with no grace left: the last state (the
            # DELETE answer and the DELETED event) says when and with which grace period.
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
        return await self._remove(info, namespace, name, obj, rv, opts)

    async def _delete_crd(
        self,
        info: ResourceInfo,
        name: str,
        obj: dict[str, Any],
        rv: int,
        opts: WriteOptions,
        finalizers: list[str],
    ) -> WriteResult:
        """A CRD is deleted as apiextensions-apiserver deletes it: marked (deletion
        timestamp, the ``customresourcecleanup`` finalizer, a ``Terminating`` condition),
        which is what the DELETE answers; then its custom objects are removed and the
        finalizer with them, which removes the CRD unless another finalizer holds it."""
        if CRD_CLEANUP_FINALIZER not in finalizers:
            finalizers = [*finalizers, CRD_CLEANUP_FINALIZER]
        marked = await self._mark_deleted(
            info, "", name, obj, rv, opts, finalizers, grace=0, mark_status=_crd_terminating
        )
        if opts.dry_run:
            return marked
        await self._delete_custom_objects(marked.obj, opts)
        current = self.store.latest(info.store_key, "", name)
        if current is None:
            return marked
        latest = self.convert(info, current.obj())
        meta = _meta(latest)
        left = [f for f in meta.get("finalizers") or [] if f != CRD_CLEANUP_FINALIZER]
        if left:
            meta["finalizers"] = left
            meta.pop("resourceVersion", None)
            await self._store_update(info, "", name, latest, current.rv)
        else:
            meta.pop("finalizers", None)
            await self._remove(info, "", name, latest, current.rv, opts)
        return marked

    def _grace_period(
        self, info: ResourceInfo, obj: dict[str, Any], options: dict[str, Any]
    ) -> int:
        if info.store_key != PODS or not self.options.graceful_pod_deletion:
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        current = (obj.get("metadata") or {}).get("deletionGracePeriodSeconds")
        if current is not None:
            grace = min(int(grace), int(current))
        return max(int(grace), 0)

    async def _mark_deleted(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        rv: int,
        opts: WriteOptions,
        finalizers: list[str],
        *,
        grace: int,
        mark_status: Callable[[dict[str, Any]], bool] | None = None,
    ) -> WriteResult:
        """Set the deletion timestamp (``grace`` seconds ahead) and ``finalizers``;
        ``mark_status`` changes the status of a kind that reports its deletion there
        (returns whether it changed anything)."""
        meta = _meta(obj)
        changed = False
        if not meta.get("deletionTimestamp"):
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
            meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = grace
            if "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
            changed = True
        elif grace < int(meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionGracePeriodSeconds"] = grace
            changed = True
        if finalizers != list(meta.get("finalizers") or []):
            meta["finalizers"] = finalizers
            changed = True
        if mark_status is not None and mark_status(obj):
            changed = True
        if not changed:
            return WriteResult(obj, pending=True)
        meta.pop("resourceVersion", None)
        if opts.dry_run:
            meta["resourceVersion"] = str(rv)
            return WriteResult(obj, pending=True)
        entry = await self._store_update(info, namespace, name, obj, rv)
        return WriteResult(self.convert(info, entry.obj()), pending=True)

    async def _store_update(
        self, info: ResourceInfo, namespace: str, name: str, obj: dict[str, Any], expect_rv: int
    ) -> Entry:
        """Write ``obj`` in the storage version, expecting revision ``expect_rv``."""
        stored = dict(obj)
        stored["apiVersion"] = self.registry.storage_info(info).api_version
        try:
            return await self.store.update(info.store_key, namespace, name, stored, expect_rv)
        except Exception as exc:
            raise self._store_error(info, name, exc) from exc

    async def _remove(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        rv: int,
        opts: WriteOptions,
    ) -> WriteResult:
        if opts.dry_run:
            return WriteResult(obj)
        try:
            entry = await self.store.delete(info.store_key, namespace, name, obj, rv)
        except Exception as exc:
            raise self._store_error(info, name, exc) from exc
        if info.store_key == services.SERVICES:
            self.services.release(obj)
        if info.store_key == CRDS:
            self._unregister_crd(str(_meta(obj).get("name")))
        return WriteResult(self.convert(info, entry.obj()))

    async def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: dict[str, Any] | None,
        opts: WriteOptions,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Delete every matching object; returns them as they were listed before the
        deletion (what kube-apiserver's DeleteCollection answers), and the warnings."""
        result = self.list_objects(info, namespace, labels, fields)
        deleted = []
        warnings: list[str] = []
        for entry in result.items:
            try:
                out = await self.delete(info, entry.namespace, entry.name, options, opts)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(self.convert(info, entry.obj()))
            warnings.extend(w for w in out.warnings if w not in warnings)
        return deleted, warnings

    # --- subresources -------------------------------------------------------------------
    def scale_paths(self, info: ResourceInfo) -> tuple[str, str, str]:
        if info.custom is not None:
            c = info.custom
            return c.scale_spec_path, c.scale_status_path, c.scale_selector_path
        return ".spec.replicas", ".status.replicas", ".spec.selector"

    def to_scale(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        spec_path, status_path, selector_path = self.scale_paths(info)
        meta = obj.get("metadata") or {}
        selector: Any = _get_path(obj, selector_path) if selector_path else None
        if info.custom is None:
            if info.store_key == "core/replicationcontrollers":
                sel = (obj.get("spec") or {}).get("selector") or {}
                selector = ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
            else:
                selector = _selector_string(selector)
        status: dict[str, Any] = {"replicas": int(_get_path(obj, status_path) or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(_get_path(obj, spec_path) or 0)},
            "status": status,
        }

    async def update_scale(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        scale: dict[str, Any],
        opts: WriteOptions,
    ) -> WriteResult:
        namespace = namespace if info.namespaced else ""
        current = self.store.latest(info.store_key, namespace, name)
        if current is None:
            raise errors.not_found(info.group, info.plural, name)
        smeta = scale.get("metadata") or {}
        if smeta.get("resourceVersion") and str(smeta["resourceVersion"]) != str(current.rv):
            raise errors.stale(info.group, info.plural, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid_object(
                "autoscaling",
                "Scale",
                name,
                [errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        old = self.convert(info, current.obj())
        new = orjson.loads(orjson.dumps(old))
        spec_path = self.scale_paths(info)[0]
        _set_path(new, spec_path, replicas)
        result = await self._update(info, namespace, name, old, new, current.rv, opts, "scale", [])
        return WriteResult(self.to_scale(info, result.obj), warnings=result.warnings)

    async def bind(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        binding: dict[str, Any],
        opts: WriteOptions,
    ) -> None:
        """pods/{name}/binding: assign a pod to a node, once. Like kube-apiserver's
        binding storage this is a plain storage update (nodeName and the PodScheduled
        condition), without admission or managedFields tracking."""
        target = (binding.get("target") or {}).get("name")
        if not target:
            raise errors.invalid_object("", "Binding", name, [errors.required("target.name")])
        current = self.store.latest(info.store_key, namespace, name)
        if current is None:
            raise errors.not_found(info.group, info.plural, name)
        old = current.obj()
        spec = old.get("spec") or {}
        if (old.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.conflict(
                "", "pods", name, f"pod {name} is being deleted, cannot be assigned to a host"
            )
        if spec.get("nodeName"):
            raise errors.conflict(
                "", "pods", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"'
            )
        new = orjson.loads(current.data)
        new["spec"]["nodeName"] = target
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        )
        status["conditions"] = conditions
        meta = new.get("metadata") or {}
        meta.pop("resourceVersion", None)
        annotations = (binding.get("metadata") or {}).get("annotations") or {}
        if annotations:
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
        if opts.dry_run:
            return
        await self._store_update(info, namespace, name, new, current.rv)

    # --- custom resource definitions ------------------------------------------------------
    def _crd_status(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        status = crd.setdefault("status", {})
        now = now_rfc3339()
        previous = {c.get("type"): c for c in status.get("conditions") or []}

        def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
            old = previous.get(kind) or {}
            when = old.get("lastTransitionTime") if old.get("status") == "True" else now
            return {
                "type": kind,
                "status": "True",
                "lastTransitionTime": when or now,
                "reason": reason,
                "message": message,
            }

        status["acceptedNames"] = dict(spec.get("names") or {})
        status["conditions"] = [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established", "InitialNamesAccepted", "the initial names have been accepted"
            ),
        ]
        stored = list(status.get("storedVersions") or [])
        for version in spec.get("versions") or []:
            if version.get("storage") and version.get("name") not in stored:
                stored.append(version.get("name"))
        status["storedVersions"] = stored

    def _crd_conflicts(self, crd: dict[str, Any], old: dict[str, Any] | None) -> list[errors.Cause]:
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        plural = (spec.get("names") or {}).get("plural", "")
        for version in spec.get("versions") or []:
            existing = self.registry.get(group, version.get("name", ""), plural)
            if existing is not None and existing.custom is None:
                return [
                    errors.invalid(
                        "spec.names.plural", plural, "conflicts with a built-in resource"
                    )
                ]
        return []

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        name = str((crd.get("metadata") or {}).get("name"))
        names = spec.get("names") or {}
        group = str(spec.get("group") or "")
        versions = spec.get("versions") or []
        storage = next((str(v.get("name")) for v in versions if v.get("storage")), "")
        infos = []
        for version in versions:
            if not version.get("served", True):
                continue
            sub = version.get("subresources") or {}
            scale = sub.get("scale") or {}
            subresources = set()
            if "status" in sub:
                subresources.add("status")
            if "scale" in sub:
                subresources.add("scale")
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            custom = CustomInfo(
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                scale_spec_path=str(scale.get("specReplicasPath") or ""),
                scale_status_path=str(scale.get("statusReplicasPath") or ""),
                scale_selector_path=str(scale.get("labelSelectorPath") or ""),
                preserve_unknown=bool((schema or {}).get("x-kubernetes-preserve-unknown-fields")),
                crd_name=name,
                served=True,
                storage=bool(version.get("storage")),
            )
            infos.append(
                ResourceInfo(
                    group=group,
                    version=str(version.get("name")),
                    plural=str(names.get("plural") or ""),
                    kind=str(names.get("kind") or ""),
                    namespaced=spec.get("scope") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=frozenset(subresources),
                    singular=str(names.get("singular") or ""),
                    storage_version=storage,
                    custom=custom,
                )
            )
        self.registry.set_custom(name, infos)
        self._roots.clear()
        for listener in self._registry_listeners:
            listener()

    def _unregister_crd(self, name: str) -> None:
        self.registry.remove_custom(name)
        self._roots.clear()
        for listener in self._registry_listeners:
            listener()

    async def _delete_custom_objects(self, crd: dict[str, Any], opts: WriteOptions) -> None:
        spec = crd.get("spec") or {}
        res = f"{spec.get('group')}/{(spec.get('names') or {}).get('plural')}"
        infos = self.registry.find_store_key(res)
        if not infos or opts.dry_run:
            return
        info = infos[0]
        for entry in list(self.store.iter(res)):
            obj = self.convert(info, entry.obj())
            try:
                await self._remove(info, entry.namespace, entry.name, obj, entry.rv, opts)
            except ApiError as exc:
                if exc.code != 404:
                    raise
