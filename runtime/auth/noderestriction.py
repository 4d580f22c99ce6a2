"""The NodeRestriction admission plugin: what a kubelet may write, narrowed to its own
node (kube-apiserver's plugin/pkg/admission/noderestriction).

Who calls it: the object layer (:mod:`runtime.api.objects`), on every create, update and
delete from a requester, as one of ``ApiOptions.admission``. Requests of users that are
not nodes pass untouched; a ``system:nodes`` member whose name does not say which node
it is is refused. The Node authorizer (:mod:`runtime.auth.node`) lets every node write
Nodes, pods, pod status and leases at all; this plugin limits each node to its own:

* pods: create only mirror pods (``kubernetes.io/config.mirror``) bound to itself, with
  a single controller owner reference to its own Node (matching uid, no
  ``blockOwnerDeletion``), referencing no service account, Secret, ConfigMap,
  PersistentVolumeClaim, ResourceClaim, ClusterTrustBundle or pod certificate; delete
  only pods bound to itself; no other pod write;
* ``pods/status``: update only of pods bound to itself, without changing labels or the
  resource claim statuses; ``pods/eviction``: only of pods bound to itself;
* nodes: create, update and delete only its own Node; no ``configSource``; on create no
  label outside the set kubelets may set (``node-restriction.kubernetes.io/`` labels and
  ``kubernetes.io``/``k8s.io`` labels other than the kubelet's well-known ones); on update
  no change of such labels or of its taints;
* ``persistentvolumeclaims/status``: only ``status.capacity``, ``status.conditions`` and
  the allocated resources may change;
* ``serviceaccounts/token``: the TokenRequest must be bound to a pod (``v1`` ``Pod``,
  name and uid) that exists with that uid and is bound to this node;
* leases: only in ``kube-node-lease`` and named as the node; csinodes and node-local
  resourceslices: only its own.

Refusals are 403 Forbidden with kube's messages (``<resource> "<name>" is forbidden:
…``); a pod or Node that must exist and does not is a 404 as in kube.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubemodel import errors
from kubemodel.errors import ApiError
from runtime.api.store import Store
from runtime.auth.admission import AdmissionRequest
from runtime.auth.node import (
    NODE_LEASE_NAMESPACE,
    is_mirror_pod,
    pod_claim_names,
    pod_configmap_names,
    pod_secret_names,
)
from runtime.auth.user import NODE_PREFIX, NODES, node_name_of

Obj = Mapping[str, Any]

NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"

#: Labels a kubelet may set on its own Node (k8s.io/kubelet ``KubeletLabels``).
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
#: Label namespaces a kubelet may use (``KubeletLabelNamespaces``), subdomains included.
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _label_namespace(key: str) -> str:
    prefix, sep, _ = key.partition("/")
    return prefix if sep else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    """Whether a kubelet may set ``key`` on its own Node (``IsKubeletLabel``)."""
    if key in KUBELET_LABELS:
        return True
    namespace = _label_namespace(key)
    return any(_in_namespace(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def forbidden_node_labels(new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    """The labels added, removed or changed between ``old`` and ``new`` that a node may
    not touch, sorted (``getForbiddenLabels`` of ``getModifiedLabels``)."""
    modified = {k for k, v in new.items() if old.get(k) != v or k not in old}
    modified |= {k for k, v in old.items() if new.get(k) != v or k not in new}
    out = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_LABEL_NAMESPACE):
            out.add(key)
        kube = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")
        if kube and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = _d(_d(obj or {}).get("metadata")).get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _node_of(obj: Obj | None) -> str:
    name = _d(_d(obj or {}).get("spec")).get("nodeName")
    return name if isinstance(name, str) else ""


def _without(obj: Obj, paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields at ``paths`` (the maps on the way copied)."""
    out: dict[str, Any] = dict(obj)
    for path in paths:
        cursor = out
        for part in path[:-1]:
            child = cursor.get(part)
            if not isinstance(child, Mapping):
                break
            copied = dict(child)
            cursor[part] = copied
            cursor = copied
        else:
            cursor.pop(path[-1], None)
    return out


class NodeRestriction:
    """The NodeRestriction admission plugin over this cluster's store (see the module
    docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def admit(self, request: AdmissionRequest) -> list[str]:
        user = request.user
        if NODES not in user.groups or not user.name.startswith(NODE_PREFIX):
            return []
        node = node_name_of(user)
        if node is None:
            raise self._forbidden(request, f'could not determine node from user "{user.name}"')
        info = request.info
        group, plural, sub = info.group, info.plural, request.subresource
        if group == "":
            if plural == "pods":
                if sub == "":
                    self._pod(node, request)
                elif sub == "status":
                    self._pod_status(node, request)
                elif sub == "eviction":
                    self._eviction(node, request)
                else:
                    raise self._forbidden(
                        request,
                        f"unexpected pod subresource \"{sub}\", only 'status' and "
                        "'eviction' are allowed",
                    )
            elif plural == "nodes":
                self._node(node, request)
            elif plural == "persistentvolumeclaims":
                if sub != "status":
                    raise self._forbidden(request, "may only update PVC status")
                self._pvc_status(node, request)
            elif plural == "serviceaccounts":
                self._service_account(node, request)
        elif group == "coordination.k8s.io" and plural == "leases":
            self._lease(node, request)
        elif group == "storage.k8s.io" and plural == "csinodes":
            if request.name != node:
                raise self._forbidden(
                    request, "can only access CSINode with the same name as the requesting node"
                )
        elif group == "resource.k8s.io" and plural == "resourceslices":
            self._resource_slice(node, request)
        return []

    # --- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _forbidden(request: AdmissionRequest, detail: str) -> ApiError:
        """admission's ``NewForbidden``: the resource (without subresource) and name."""
        return errors.forbidden_resource(
            request.info.group, request.info.plural, request.name, detail
        )

    def _pod_named(self, namespace: str, name: str) -> dict[str, Any]:
        entry = self.store.latest("core/pods", namespace, name)
        if entry is None:
            raise errors.not_found("", "pods", name)
        return entry.obj()

    # --- pods -------------------------------------------------------------------------------
    def _pod(self, node: str, request: AdmissionRequest) -> None:
        if request.operation == "CREATE":
            self._mirror_pod(node, request)
        elif request.operation == "DELETE":
            existing = self._pod_named(request.namespace, request.name)
            if _node_of(existing) != node:
                raise self._forbidden(
                    request, f'node "{node}" can only delete pods with spec.nodeName set to itself'
                )
        else:
            raise self._forbidden(
                request,
                f'unexpected operation "{request.operation}", node "{node}" can only create '
                "and delete mirror pods",
            )

    def _mirror_pod(self, node: str, request: AdmissionRequest) -> None:
        pod = request.obj
        meta, spec = _d(pod.get("metadata")), _d(pod.get("spec"))

        def refuse(detail: str) -> ApiError:
            return self._forbidden(request, f'node "{node}" {detail}')

        if not is_mirror_pod(pod):
            raise self._forbidden(
                request,
                f'pod does not have "kubernetes.io/config.mirror" annotation, node "{node}" '
                "can only create mirror pods",
            )
        if _node_of(pod) != node:
            raise refuse("can only create pods with spec.nodeName set to itself")
        owners = [o for o in meta.get("ownerReferences") or () if isinstance(o, Mapping)]
        if len(owners) > 1:
            raise refuse("can only create pods with a single owner reference set to itself")
        if not owners:
            raise refuse("can only create pods with an owner reference set to itself")
        owner = owners[0]
        if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
            raise refuse("can only create pods with an owner reference set to itself")
        if owner.get("controller") is not True:
            raise refuse("can only create pods with a controller owner reference set to itself")
        if owner.get("blockOwnerDeletion") is True:
            raise refuse("must not set blockOwnerDeletion on an owner reference")
        entry = self.store.latest("core/nodes", "", node)
        if entry is None:
            raise errors.not_found("", "nodes", node)
        uid = _d(entry.obj().get("metadata")).get("uid")
        if owner.get("uid") != uid:
            raise self._forbidden(
                request, f"node {node} UID mismatch: expected {owner.get('uid')} got {uid}"
            )
        if spec.get("serviceAccountName"):
            raise refuse("can not create pods that reference a service account")
        if pod_secret_names(pod):
            raise refuse("can not create pods that reference secrets")
        if pod_configmap_names(pod):
            raise refuse("can not create pods that reference configmaps")
        for vol in spec.get("volumes") or ():
            for source in _d(_d(vol).get("projected")).get("sources") or ():
                if _d(source).get("clusterTrustBundle") is not None:
                    raise refuse("can not create pods that reference clustertrustbundles")
                if _d(source).get("podCertificate") is not None:
                    raise refuse(
                        "can not create pods that include podcertificate projected volumes"
                    )
        if any("persistentVolumeClaim" in _d(v) for v in spec.get("volumes") or ()):
            raise refuse("can not create pods that reference persistentvolumeclaims")
        if pod_claim_names(pod) or spec.get("resourceClaims"):
            raise refuse("can not create pods that reference resourceclaims")

    def _pod_status(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != "UPDATE":
            raise self._forbidden(request, f'unexpected operation "{request.operation}"')
        old = request.old or {}
        if _node_of(old) != node:
            raise self._forbidden(
                request,
                f'node "{node}" can only update pod status for pods with spec.nodeName set to '
                "itself",
            )
        if _labels(old) != _labels(request.obj):
            raise self._forbidden(request, f'node "{node}" cannot update labels through pod status')

        def claims(pod: Obj) -> list[tuple[Any, Any]]:
            statuses = _d(pod.get("status")).get("resourceClaimStatuses") or ()
            return [(_d(s).get("name"), _d(s).get("resourceClaimName")) for s in statuses]

        if claims(old) != claims(request.obj):
            raise self._forbidden(request, f'node "{node}" cannot update resource claim statues')

    def _eviction(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != "CREATE":
            raise self._forbidden(request, f"unexpected operation {request.operation}")
        name = request.name or str(_d(request.obj.get("metadata")).get("name") or "")
        if not name:
            raise self._forbidden(request, "could not determine pod from request data")
        existing = self._pod_named(request.namespace, name)
        if _node_of(existing) != node:
            raise self._forbidden(
                request, f"node {node} can only evict pods with spec.nodeName set to itself"
            )

    # --- nodes ------------------------------------------------------------------------------
    def _node(self, node: str, request: AdmissionRequest) -> None:
        if request.name != node:
            raise self._forbidden(
                request, f'node "{node}" is not allowed to modify node "{request.name}"'
            )
        new_spec = _d(request.obj.get("spec"))
        if request.operation == "CREATE":
            if new_spec.get("configSource") is not None:
                raise self._forbidden(
                    request,
                    f'node "{node}" is not allowed to create pods with a non-nil configSource',
                )
            forbidden = forbidden_node_labels(_labels(request.obj), {})
            if forbidden:
                raise self._forbidden(
                    request,
                    f'node "{node}" is not allowed to set the following labels: '
                    + ", ".join(forbidden),
                )
        elif request.operation == "UPDATE":
            old_spec = _d(_d(request.old).get("spec"))
            source = new_spec.get("configSource")
            if source is not None and source != old_spec.get("configSource"):
                raise self._forbidden(
                    request,
                    f'node "{node}" is not allowed to update configSource to a new non-nil '
                    "configSource",
                )
            if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise self._forbidden(request, f'node "{node}" is not allowed to modify taints')
            forbidden = forbidden_node_labels(_labels(request.obj), _labels(request.old))
            if forbidden:
                raise self._forbidden(
                    request, "is not allowed to modify labels: " + ", ".join(forbidden)
                )

    # --- persistent volume claims -----------------------------------------------------------
    def _pvc_status(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != "UPDATE":
            raise self._forbidden(request, f'unexpected operation "{request.operation}"')
        ignored = (
            ("metadata", "resourceVersion"),
            ("metadata", "managedFields"),
            ("status", "capacity"),
            ("status", "conditions"),
            ("status", "allocatedResourceStatuses"),
            ("status", "allocatedResources"),
        )
        if _without(request.old or {}, ignored) != _without(request.obj, ignored):
            raise self._forbidden(
                request,
                f'node "{node}" is not allowed to update fields other than status.capacity '
                "and status.conditions",
            )

    # --- token requests ---------------------------------------------------------------------
    def _service_account(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != "CREATE" or request.subresource != "token":
            return
        ref = _d(_d(request.obj.get("spec")).get("boundObjectRef"))
        if (
            not ref
            or ref.get("apiVersion") != "v1"
            or ref.get("kind") != "Pod"
            or not ref.get("name")
        ):
            raise self._forbidden(request, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise self._forbidden(request, "node requested token with a pod binding without a uid")
        pod = self._pod_named(request.namespace, str(ref["name"]))
        uid = _d(pod.get("metadata")).get("uid")
        if ref.get("uid") != uid:
            raise self._forbidden(
                request,
                f"the UID in the bound object reference ({ref.get('uid')}) does not match the "
                "UID in record. The object might have been deleted and then recreated",
            )
        if _node_of(pod) != node:
            raise self._forbidden(
                request, "node requested token bound to a pod scheduled on a different node"
            )

    # --- leases, resource slices ------------------------------------------------------------
    def _lease(self, node: str, request: AdmissionRequest) -> None:
        if request.namespace != NODE_LEASE_NAMESPACE:
            raise self._forbidden(
                request, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
            )
        if request.name != node:
            raise self._forbidden(
                request, "can only access node lease with the same name as the requesting node"
            )

    def _resource_slice(self, node: str, request: AdmissionRequest) -> None:
        for obj in (request.obj, request.old):
            if obj is None:
                continue
            owner = _d(obj.get("spec")).get("nodeName")
            if owner != node:
                raise self._forbidden(
                    request,
                    f'node "{node}" is not allowed to modify resource slices of node '
                    f'"{owner or ""}"',
                )
