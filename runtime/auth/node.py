"""The Node authorizer: what a kubelet (user ``system:node:<name>`` in group
``system:nodes``) may do, as kube-apiserver's ``--authorization-mode=Node``
(plugin/pkg/auth/authorizer/node) decides it.

Who calls it: the API server's authorizer chain (a :class:`~runtime.auth.attributes.Union`,
asked before RBAC as kube does) for every request, and SelfSubjectRulesReview through
:meth:`NodeAuthorizer.rules_for`. Requests of anyone else get NO_OPINION.

For nodes it answers as Kubernetes 1.35 (``AuthorizeNodeWithSelectors`` on):

* secrets, configmaps: get/list/watch of a *named* object in a namespace, only when a pod
  bound to the node references it (volumes, projected sources, env/envFrom,
  imagePullSecrets, the volume plugins' secretRefs, CSI nodePublishSecretRef) or, for a
  secret, when a PersistentVolume bound to a claim such a pod uses names it; a list or
  watch of all of them is refused ("No Object name found");
* persistentvolumeclaims (get; ``status`` update/patch), persistentvolumes (get: the PV
  whose ``spec.claimRef`` is such a claim), resourceclaims (get), volumeattachments
  (get: ``spec.nodeName`` is the node), serviceaccounts (``token`` create for the
  ``serviceAccountName`` of such a pod; the token request's pod binding is checked by
  :mod:`runtime.auth.noderestriction`), resourceslices (by ``spec.nodeName``);
* leases: get/create/update/patch/delete in ``kube-node-lease`` of the node's own name;
  csinodes: the same for its own CSINode;
* nodes: get/list/watch of its own Node only, create/update/patch and ``status``
  update/patch of any (NodeRestriction narrows them to its own);
* pods: get of a pod bound to it, list/watch with the field selector
  ``spec.nodeName=<node>`` (or of a named pod bound to it), create/delete (mirror pods),
  ``status`` update/patch and ``eviction`` create (NodeRestriction narrows them);
* everything else from the static rules of the ``system:node`` bootstrap role
  (:data:`NODE_RULES`, bootstrappolicy ``NodeRules()``).

Refusals are NO_OPINION with kube's reasons ("no relationship found between node 'x' and
this object", …), so RBAC may still allow. The relationships are kept in an index fed
by :meth:`Store.add_listener` (pods by node and what they reference, PV → claim, PV →
secrets, VolumeAttachment and ResourceSlice → node), updated per committed write, so a
decision is a few dictionary look-ups.

Field selectors: :attr:`~runtime.auth.attributes.Attributes.field_selector` (the raw
``fieldSelector`` query value) narrows a node's pod list/watch to
``spec.nodeName=<node>``, as kube 1.35's ``AuthorizeNodeWithSelectors``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.api.store import DELETED, Event, Store
from runtime.auth.attributes import (
    ALLOW,
    NO_OPINION,
    Attributes,
    Decision,
    ResourceRule,
    Rules,
)
from runtime.auth.user import NODE_PREFIX, NODES, UserInfo, node_name_of

Obj = Mapping[str, Any]
Key = tuple[str, str]

NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

PODS = "core/pods"
PERSISTENT_VOLUMES = "core/persistentvolumes"
VOLUME_ATTACHMENTS = "storage.k8s.io/volumeattachments"
RESOURCE_SLICES = "resource.k8s.io/resourceslices"

SECRETS = "secrets"
CONFIGMAPS = "configmaps"
PVCS = "persistentvolumeclaims"
SERVICE_ACCOUNTS = "serviceaccounts"
RESOURCE_CLAIMS = "resourceclaims"

_READ = ("get", "list", "watch")


def _rule(verbs: tuple[str, ...], group: str, *resources: str) -> ResourceRule:
    return ResourceRule(verbs, (group,), resources)


#: The ``system:node`` bootstrap role's rules (bootstrappolicy ``NodeRules()`` of
#: Kubernetes 1.35, with DynamicResourceAllocation on and the beta/alpha-off
#: ClusterTrustBundle and PodCertificateRequest rules left out).
NODE_RULES: tuple[ResourceRule, ...] = (
    _rule(("create",), "authentication.k8s.io", "tokenreviews"),
    _rule(("create",), "authorization.k8s.io", "subjectaccessreviews", "localsubjectaccessreviews"),
    _rule(_READ, "", "services"),
    _rule(("create", "get", "list", "watch"), "", "nodes"),
    _rule(("update", "patch"), "", "nodes/status"),
    _rule(("update", "patch"), "", "nodes"),
    _rule(("create", "update", "patch"), "", "events"),
    _rule(_READ, "", "pods"),
    _rule(("create", "delete"), "", "pods"),
    _rule(("update", "patch"), "", "pods/status"),
    _rule(("create",), "", "pods/eviction"),
    _rule(_READ, "", "secrets", "configmaps"),
    _rule(("get",), "", "persistentvolumeclaims", "persistentvolumes"),
    _rule(("get",), "", "endpoints"),
    _rule(("create", "get", "list", "watch"), "certificates.k8s.io", "certificatesigningrequests"),
    _rule(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", "leases"),
    _rule(("get",), "storage.k8s.io", "volumeattachments"),
    _rule(("create",), "", "serviceaccounts/token"),
    _rule(("get", "update", "patch"), "", "persistentvolumeclaims/status"),
    _rule(("get", "watch", "list"), "storage.k8s.io", "csidrivers"),
    _rule(("get", "create", "update", "patch", "delete"), "storage.k8s.io", "csinodes"),
    _rule(_READ, "node.k8s.io", "runtimeclasses"),
    _rule(("get",), "resource.k8s.io", "resourceclaims"),
    _rule(
        ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"),
        "resource.k8s.io",
        "resourceslices",
    ),
)

#: Resources whose access the authorizer decides itself (graph or name based): their
#: static rules are not reported by :meth:`NodeAuthorizer.rules_for`.
_SUBDIVIDED = frozenset(
    {
        ("", "secrets"),
        ("", "configmaps"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("", "serviceaccounts"),
        ("", "nodes"),
        ("", "pods"),
        ("resource.k8s.io", "resourceclaims"),
        ("resource.k8s.io", "resourceslices"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csinodes"),
        ("coordination.k8s.io", "leases"),
    }
)


def rule_allows(rule: ResourceRule, attrs: Attributes) -> bool:
    """Whether a static rule covers a resource request (RBAC's ``RuleAllows``)."""
    if not attrs.resource_request:
        return False
    if "*" not in rule.verbs and attrs.verb not in rule.verbs:
        return False
    if "*" not in rule.api_groups and attrs.api_group not in rule.api_groups:
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if "*" not in rule.resources and wanted not in rule.resources:
        return False
    return not rule.resource_names or attrs.name in rule.resource_names


# --- what a pod references -----------------------------------------------------------------
def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(obj: Obj, key: str) -> Iterator[Mapping[str, Any]]:
    value = obj.get(key)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield item


def _name(value: Any, key: str = "name") -> str:
    found = _d(value).get(key)
    return found if isinstance(found, str) else ""


def _containers(spec: Obj) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from _items(spec, key)


#: Volume sources whose ``secretRef`` names a Secret in the pod's namespace.
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


@dataclass(frozen=True)
class PodReferences:
    """The objects a pod bound to a node gives that node access to (kube's graph edges
    ``secret/configmap/pvc/serviceaccount/resourceclaim -> pod``)."""

    secrets: frozenset[str] = frozenset()
    configmaps: frozenset[str] = frozenset()
    claims: frozenset[str] = frozenset()
    service_accounts: frozenset[str] = frozenset()
    resource_claims: frozenset[str] = frozenset()

    def by_kind(self) -> Iterator[tuple[str, frozenset[str]]]:
        yield SECRETS, self.secrets
        yield CONFIGMAPS, self.configmaps
        yield PVCS, self.claims
        yield SERVICE_ACCOUNTS, self.service_accounts
        yield RESOURCE_CLAIMS, self.resource_claims


def pod_secret_names(pod: Obj) -> set[str]:
    """Every Secret a pod names (podutil ``VisitPodSecretNames``, all containers)."""
    spec = _d(pod.get("spec"))
    out = {_name(ref) for ref in _items(spec, "imagePullSecrets")}
    for c in _containers(spec):
        for env_from in _items(c, "envFrom"):
            out.add(_name(env_from.get("secretRef")))
        for env in _items(c, "env"):
            out.add(_name(_d(env.get("valueFrom")).get("secretKeyRef")))
    for vol in _items(spec, "volumes"):
        out.add(_name(vol.get("secret"), "secretName"))
        out.add(_name(vol.get("azureFile"), "secretName"))
        for kind in _SECRET_REF_VOLUMES:
            out.add(_name(_d(vol.get(kind)).get("secretRef")))
        out.add(_name(_d(vol.get("csi")).get("nodePublishSecretRef")))
        for source in _items(_d(vol.get("projected")), "sources"):
            out.add(_name(source.get("secret")))
    out.discard("")
    return out


def pod_configmap_names(pod: Obj) -> set[str]:
    """Every ConfigMap a pod names (podutil ``VisitPodConfigmapNames``)."""
    spec = _d(pod.get("spec"))
    out: set[str] = set()
    for c in _containers(spec):
        for env_from in _items(c, "envFrom"):
            out.add(_name(env_from.get("configMapRef")))
        for env in _items(c, "env"):
            out.add(_name(_d(env.get("valueFrom")).get("configMapKeyRef")))
    for vol in _items(spec, "volumes"):
        out.add(_name(vol.get("configMap")))
        for source in _items(_d(vol.get("projected")), "sources"):
            out.add(_name(source.get("configMap")))
    out.discard("")
    return out


def pod_claim_names(pod: Obj) -> set[str]:
    """The PersistentVolumeClaims a pod uses: ``persistentVolumeClaim`` volumes and the
    claims of generic ephemeral volumes (``<pod>-<volume>``)."""
    spec = _d(pod.get("spec"))
    pod_name = _name(pod.get("metadata"))
    out: set[str] = set()
    for vol in _items(spec, "volumes"):
        if "persistentVolumeClaim" in vol:
            out.add(_name(vol.get("persistentVolumeClaim"), "claimName"))
        elif vol.get("ephemeral") is not None:
            out.add(f"{pod_name}-{_name(vol)}")
    out.discard("")
    return out


def pod_resource_claim_names(pod: Obj) -> set[str]:
    """The ResourceClaims a pod uses (``resourceclaim.Name``: a named claim, or the one
    generated from a template as ``status.resourceClaimStatuses`` reports it, and the
    extended-resource claim)."""
    spec, status = _d(pod.get("spec")), _d(pod.get("status"))
    generated = {
        _name(s): s.get("resourceClaimName") for s in _items(status, "resourceClaimStatuses")
    }
    out: set[str] = set()
    for claim in _items(spec, "resourceClaims"):
        named = claim.get("resourceClaimName")
        if isinstance(named, str) and named:
            out.add(named)
        elif claim.get("resourceClaimTemplateName"):
            made = generated.get(_name(claim))
            if isinstance(made, str) and made:
                out.add(made)
    out.add(_name(status.get("extendedResourceClaimStatus"), "resourceClaimName"))
    out.discard("")
    return out


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_POD_ANNOTATION in _d(_d(pod.get("metadata")).get("annotations"))


def pod_references(pod: Obj) -> PodReferences:
    """What a bound pod gives its node access to (kube's ``Graph.AddPod``): nothing for a
    mirror pod (defence in depth: a node must not grant itself access by creating one)."""
    if is_mirror_pod(pod):
        return PodReferences()
    account = _d(pod.get("spec")).get("serviceAccountName")
    return PodReferences(
        secrets=frozenset(pod_secret_names(pod)),
        configmaps=frozenset(pod_configmap_names(pod)),
        claims=frozenset(pod_claim_names(pod)),
        service_accounts=frozenset([account])
        if isinstance(account, str) and account
        else frozenset(),
        resource_claims=frozenset(pod_resource_claim_names(pod)),
    )


#: PersistentVolume sources whose ``secretRef`` the kubelet reads.
_PV_SECRET_REFS = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


def pv_secret_refs(pv: Obj) -> set[Key]:
    """The Secrets ``(namespace, name)`` the kubelet reads for a PersistentVolume
    (pvutil ``VisitPVSecretNames`` with ``kubeletVisible``); a ref without a namespace
    is in the bound claim's namespace."""
    spec = _d(pv.get("spec"))
    claim_ns = _name(spec.get("claimRef"), "namespace")
    out: set[Key] = set()

    def add(ref: Any, ns_key: str = "namespace") -> None:
        name = _name(ref)
        if name:
            out.add((_name(ref, ns_key) or claim_ns, name))

    for kind in _PV_SECRET_REFS:
        add(_d(spec.get(kind)).get("secretRef"))
    csi = _d(spec.get("csi"))
    for key in ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef"):
        add(csi.get(key))
    azure = _d(spec.get("azureFile"))
    if _name(azure, "secretName"):
        out.add((_name(azure, "secretNamespace") or claim_ns, _name(azure, "secretName")))
    return {ref for ref in out if ref[0]}


# --- the index ------------------------------------------------------------------------------
@dataclass
class _Pod:
    node: str
    refs: PodReferences


@dataclass
class NodeGraph:
    """Who references what, per node, kept current from the store's committed writes
    (kube's node authorizer graph, reduced to the questions it is asked)."""

    pods: dict[Key, _Pod] = field(default_factory=dict)
    #: kind -> (namespace, name) -> node -> number of the node's pods referencing it.
    refs: dict[str, dict[Key, dict[str, int]]] = field(default_factory=dict)
    #: PV name -> its ``spec.claimRef`` (namespace, name).
    pv_claims: dict[str, Key] = field(default_factory=dict)
    pv_secrets: dict[str, set[Key]] = field(default_factory=dict)
    #: secret (namespace, name) -> PVs naming it.
    secret_pvs: dict[Key, set[str]] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)
    slices: dict[str, str] = field(default_factory=dict)

    # pods
    def put_pod(self, key: Key, pod: Obj) -> None:
        node = _d(pod.get("spec")).get("nodeName")
        if not isinstance(node, str) or not node:
            self.remove_pod(key)
            return
        refs = pod_references(pod)
        current = self.pods.get(key)
        if current is not None and current.node == node and current.refs == refs:
            return
        self.remove_pod(key)
        self.pods[key] = _Pod(node, refs)
        for kind, names in refs.by_kind():
            table = self.refs.setdefault(kind, {})
            for name in names:
                counts = table.setdefault((key[0], name), {})
                counts[node] = counts.get(node, 0) + 1

    def remove_pod(self, key: Key) -> None:
        current = self.pods.pop(key, None)
        if current is None:
            return
        for kind, names in current.refs.by_kind():
            table = self.refs.get(kind, {})
            for name in names:
                ref = (key[0], name)
                counts = table.get(ref)
                if counts is None:
                    continue
                left = counts.get(current.node, 0) - 1
                if left > 0:
                    counts[current.node] = left
                else:
                    counts.pop(current.node, None)
                    if not counts:
                        del table[ref]

    # persistent volumes
    def put_pv(self, name: str, pv: Obj) -> None:
        self.remove_pv(name)
        spec = _d(pv.get("spec"))
        claim = _d(spec.get("claimRef"))
        if not _name(claim):
            return
        self.pv_claims[name] = (_name(claim, "namespace"), _name(claim))
        secrets = pv_secret_refs(pv)
        if secrets:
            self.pv_secrets[name] = secrets
            for ref in secrets:
                self.secret_pvs.setdefault(ref, set()).add(name)

    def remove_pv(self, name: str) -> None:
        self.pv_claims.pop(name, None)
        for ref in self.pv_secrets.pop(name, set()):
            pvs = self.secret_pvs.get(ref)
            if pvs is not None:
                pvs.discard(name)
                if not pvs:
                    del self.secret_pvs[ref]

    # questions
    def referenced(self, node: str, kind: str, namespace: str, name: str) -> bool:
        return self.refs.get(kind, {}).get((namespace, name), {}).get(node, 0) > 0

    def pv_reachable(self, node: str, pv: str) -> bool:
        claim = self.pv_claims.get(pv)
        return claim is not None and self.referenced(node, PVCS, claim[0], claim[1])

    def has_path(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Whether ``kind`` ``namespace/name`` leads to ``node``."""
        if kind == "pods":
            pod = self.pods.get((namespace, name))
            return pod is not None and pod.node == node
        if kind == "persistentvolumes":
            return self.pv_reachable(node, name)
        if kind == "volumeattachments":
            return self.attachments.get(name) == node
        if kind == "resourceslices":
            return self.slices.get(name) == node
        if self.referenced(node, kind, namespace, name):
            return True
        if kind == SECRETS:
            return any(
                self.pv_reachable(node, pv) for pv in self.secret_pvs.get((namespace, name), ())
            )
        return False


class NodeAuthorizer:
    """kube's Node authorizer over this cluster's store (see the module docstring).

    Construct it once the store is open: it reads the current pods, PVs,
    VolumeAttachments and ResourceSlices, then follows every committed write."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.graph = NodeGraph()
        self.resync()
        store.add_listener(self._on_event)

    def resync(self) -> None:
        """Rebuild the index from the store's committed state."""
        self.graph = NodeGraph()
        for res in (PODS, PERSISTENT_VOLUMES, VOLUME_ATTACHMENTS, RESOURCE_SLICES):
            for entry in self.store.iter(res):
                self._apply(res, entry.namespace, entry.name, entry.obj())

    def _on_event(self, event: Event) -> None:
        res = event.res
        if res not in (PODS, PERSISTENT_VOLUMES, VOLUME_ATTACHMENTS, RESOURCE_SLICES):
            return
        entry = event.entry
        if event.type == DELETED:
            self._apply(res, entry.namespace, entry.name, None)
        else:
            self._apply(res, entry.namespace, entry.name, entry.obj())

    def _apply(self, res: str, namespace: str, name: str, obj: Obj | None) -> None:
        g = self.graph
        if res == PODS:
            if obj is None:
                g.remove_pod((namespace, name))
            else:
                g.put_pod((namespace, name), obj)
        elif res == PERSISTENT_VOLUMES:
            if obj is None:
                g.remove_pv(name)
            else:
                g.put_pv(name, obj)
        else:
            table = g.attachments if res == VOLUME_ATTACHMENTS else g.slices
            node = _d(obj.get("spec")).get("nodeName") if obj is not None else None
            if isinstance(node, str) and node:
                table[name] = node
            else:
                table.pop(name, None)

    # --- decisions ----------------------------------------------------------------------
    def authorize(self, attrs: Attributes) -> Decision:
        user = attrs.user
        if NODES not in user.groups or not user.name.startswith(NODE_PREFIX):
            return Decision(NO_OPINION)
        node = node_name_of(user)
        if node is None:
            return Decision(NO_OPINION, f'unknown node for user "{user.name}"')
        if attrs.resource_request:
            decided = self._subdivided(node, attrs)
            if decided is not None:
                return decided
        if any(rule_allows(rule, attrs) for rule in NODE_RULES):
            return Decision(ALLOW)
        return Decision(NO_OPINION)

    def _subdivided(self, node: str, attrs: Attributes) -> Decision | None:
        group, resource = attrs.api_group, attrs.resource
        if group == "":
            if resource in (SECRETS, CONFIGMAPS):
                return self._read_namespaced(node, resource, attrs)
            if resource == PVCS:
                if attrs.subresource == "status":
                    return self._status_update(node, PVCS, attrs)
                return self._get(node, PVCS, attrs)
            if resource == "persistentvolumes":
                return self._get(node, resource, attrs)
            if resource == SERVICE_ACCOUNTS:
                return self._create_token(node, attrs)
            if resource == "nodes":
                return self._node(node, attrs)
            if resource == "pods":
                return self._pod(node, attrs)
        elif group == "resource.k8s.io":
            if resource == RESOURCE_CLAIMS:
                return self._get(node, RESOURCE_CLAIMS, attrs)
            if resource == "resourceslices":
                return self._resource_slice(node, attrs)
        elif group == "storage.k8s.io":
            if resource == "volumeattachments":
                return self._get(node, resource, attrs)
            if resource == "csinodes":
                return self._own_named(node, attrs, "CSINode")
        elif group == "coordination.k8s.io" and resource == "leases":
            return self._lease(node, attrs)
        return None

    def _related(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return Decision(NO_OPINION, "No Object name found")
        if self.graph.has_path(node, kind, attrs.namespace, attrs.name):
            return Decision(ALLOW)
        return Decision(NO_OPINION, f"no relationship found between node '{node}' and this object")

    def _read_namespaced(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb not in _READ:
            return Decision(NO_OPINION, "can only read resources of this type")
        if attrs.subresource:
            return Decision(NO_OPINION, "cannot read subresource")
        if not attrs.namespace:
            return Decision(NO_OPINION, "can only read namespaced object of this type")
        return self._related(node, kind, attrs)

    def _get(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return Decision(NO_OPINION, "can only get individual resources of this type")
        if attrs.subresource:
            return Decision(NO_OPINION, "cannot get subresource")
        return self._related(node, kind, attrs)

    def _status_update(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("update", "patch"):
            return Decision(NO_OPINION, "can only get/update/patch this type")
        return self._related(node, kind, attrs)

    def _create_token(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return Decision(NO_OPINION, "can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return Decision(NO_OPINION, "can only create token subresource of serviceaccount")
        return self._related(node, SERVICE_ACCOUNTS, attrs)

    def _lease(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(
                NO_OPINION, "can only get, create, update, patch, or delete a node lease"
            )
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return Decision(
                NO_OPINION,
                f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace',
            )
        # The name is unknown on create: NodeRestriction checks the object's.
        if attrs.verb != "create" and attrs.name != node:
            return Decision(
                NO_OPINION, "can only access node lease with the same name as the requesting node"
            )
        return Decision(ALLOW)

    def _own_named(self, node: str, attrs: Attributes, kind: str) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(NO_OPINION, f"can only get, create, update, patch, or delete a {kind}")
        if attrs.subresource:
            return Decision(NO_OPINION, f"cannot authorize {kind} subresources")
        if attrs.verb != "create" and attrs.name != node:
            return Decision(
                NO_OPINION, f"can only access {kind} with the same name as the requesting node"
            )
        return Decision(ALLOW)

    def _resource_slice(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource:
            return Decision(NO_OPINION, "cannot authorize ResourceSlice subresources")
        verb = attrs.verb
        if verb == "create":  # NodeRestriction checks spec.nodeName
            return Decision(ALLOW)
        if verb in ("get", "update", "patch", "delete"):
            return self._related(node, "resourceslices", attrs)
        if verb in ("watch", "list", "deletecollection"):
            selector = _field_selector(attrs)
            if selector is None or ("nodeName", node) in selector:
                return Decision(ALLOW)
            return Decision(
                NO_OPINION,
                "can only list/watch/deletecollection resourceslices with nodeName field selector",
            )
        return Decision(
            NO_OPINION,
            "only the following verbs are allowed for a ResourceSlice: get, watch, list, "
            "create, update, patch, delete, deletecollection",
        )

    def _node(self, node: str, attrs: Attributes) -> Decision:
        verb = attrs.verb
        if attrs.subresource == "":
            if verb in ("create", "update", "patch"):  # NodeRestriction: its own only
                return Decision(ALLOW)
            if verb in _READ:
                if attrs.name == node:
                    return Decision(ALLOW)
                if not attrs.name:
                    return Decision(
                        NO_OPINION, f"node '{node}' cannot read all nodes, only its own Node object"
                    )
                return Decision(
                    NO_OPINION,
                    f"node '{node}' cannot read '{attrs.name}', only its own Node object",
                )
        elif attrs.subresource == "status" and verb in ("update", "patch"):
            return Decision(ALLOW)
        return Decision(NO_OPINION)

    def _pod(self, node: str, attrs: Attributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if sub == "":
            if verb == "get":
                return self._get(node, "pods", attrs)
            if verb in ("list", "watch"):
                selector = _field_selector(attrs)
                if selector is None or ("spec.nodeName", node) in selector:
                    return Decision(ALLOW)
                if attrs.name:
                    return self._related(node, "pods", attrs)
                return Decision(
                    NO_OPINION, "can only list/watch pods with spec.nodeName field selector"
                )
            if verb in ("create", "delete"):  # mirror pods; NodeRestriction narrows
                return Decision(ALLOW)
        elif (sub, verb) in (("status", "update"), ("status", "patch"), ("eviction", "create")):
            return Decision(ALLOW)
        return Decision(NO_OPINION)

    # --- SelfSubjectRulesReview -----------------------------------------------------------
    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """The node's rules that do not depend on the graph: the static ``NodeRules`` of
        resources the authorizer does not subdivide, plus the name-bound ones (its own
        Node, lease and CSINode; mirror pod create/delete, pod status and evictions).
        Always ``incomplete``: reads through the graph (secrets, configmaps, volumes,
        pods, tokens) cannot be enumerated, as kube's node authorizer says."""
        node = node_name_of(user)
        if node is None:
            return Rules()
        rules = [
            rule
            for rule in NODE_RULES
            if not any(
                (g, r.split("/")[0]) in _SUBDIVIDED for g in rule.api_groups for r in rule.resources
            )
        ]
        rules += [
            ResourceRule(_READ, ("",), ("nodes",), (node,)),
            ResourceRule(("create", "update", "patch"), ("",), ("nodes",)),
            ResourceRule(("update", "patch"), ("",), ("nodes/status",)),
            ResourceRule(("create", "delete"), ("",), ("pods",)),
            ResourceRule(("update", "patch"), ("",), ("pods/status",)),
            ResourceRule(("create",), ("",), ("pods/eviction",)),
            ResourceRule(("create",), ("storage.k8s.io",), ("csinodes",)),
            ResourceRule(
                ("get", "update", "patch", "delete"), ("storage.k8s.io",), ("csinodes",), (node,)
            ),
        ]
        if namespace == NODE_LEASE_NAMESPACE:
            rules += [
                ResourceRule(("create",), ("coordination.k8s.io",), ("leases",)),
                ResourceRule(
                    ("get", "update", "patch", "delete"),
                    ("coordination.k8s.io",),
                    ("leases",),
                    (node,),
                ),
            ]
        return Rules(resource_rules=rules, incomplete=True)


def _field_selector(attrs: Attributes) -> set[tuple[str, str]] | None:
    """The request's ``field=value`` requirements."""
    out: set[tuple[str, str]] = set()
    for part in attrs.field_selector.split(","):
        if "!=" in part:
            continue
        key, sep, value = part.partition("==") if "==" in part else part.partition("=")
        if sep:
            out.add((key.strip(), value.strip()))
    return out
