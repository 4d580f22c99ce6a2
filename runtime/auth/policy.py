"""The default RBAC policy of the built-in cluster, as data: kube-apiserver's bootstrap
roles and bindings (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``: ``policy.go``,
``controller_policy.go``, ``namespace_policy.go``), one function per role family.

Who reads it: :mod:`runtime.auth.bootstrap`, which writes it at every start.

Kubernetes semantics followed:

* every object carries the label ``kubernetes.io/bootstrapping: rbac-defaults`` and the
  annotation ``rbac.authorization.kubernetes.io/autoupdate: "true"``; rules are sorted
  within each list as kube's rule builder does;
* ``admin``, ``edit`` and ``view`` are created empty with an ``aggregationRule``; the
  ``clusterrole-aggregation`` controller fills in their rules from the
  ``system:aggregate-to-*`` roles.

Documented differences from kube:

* only the roles of the controllers this cluster runs are created (its
  :data:`runtime.controllers.manager.CONTROLLERS`), and the DRA/alpha roles are left
  out;
* kube runs each controller as its own ServiceAccount ``kube-system/<controller>``; this
  cluster's controller manager runs every controller under one identity, the user
  ``system:kube-controller-manager``. Each ``system:controller:*`` binding therefore
  names both the kube ServiceAccount and that user, and the local-path provisioner's
  ``system:persistent-volume-provisioner`` role is bound to that user as well;
* ``system:gitops:ingress-controller`` (bound to the user of the same name) is this
  cluster's own: what its ingress router reads and writes;
* ``system:gitops:network`` (bound to the user of the same name) is what the built-in
  networking's one client needs — service proxy, cluster DNS (which creates the
  ``kube-dns`` Service and its EndpointSlice), ingress router (which creates its
  IngressClass) and host ports;
* ``system:gitops:storageclass-maker`` lets the controller manager's local-path
  provisioner create the default StorageClass (k3s ships it as a manifest instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.auth.rbac import RBAC_GROUP

Obj = dict[str, Any]

BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAP_VALUE = "rbac-defaults"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
API_VERSION = f"{RBAC_GROUP}/v1"
FIELD_MANAGER = "kube-apiserver"

CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
INGRESS_CONTROLLER_USER = "system:gitops:ingress-controller"
NETWORK_USER = "system:gitops:network"
STORAGECLASS_MAKER = "system:gitops:storageclass-maker"
CONTROLLER_PREFIX = "system:controller:"

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE

CORE = ""
APPS = "apps"
AUTHENTICATION = "authentication.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
AUTOSCALING = "autoscaling"
BATCH = "batch"
CERTIFICATES = "certificates.k8s.io"
COORDINATION = "coordination.k8s.io"
DISCOVERY = "discovery.k8s.io"
EVENTS = "events.k8s.io"
EXTENSIONS = "extensions"
NETWORKING = "networking.k8s.io"
NODE = "node.k8s.io"
POLICY = "policy"
STORAGE = "storage.k8s.io"
METRICS = "metrics.k8s.io"
CUSTOM_METRICS = "custom.metrics.k8s.io"
EXTERNAL_METRICS = "external.metrics.k8s.io"


# --- builders -------------------------------------------------------------------------------
def rule(
    verbs: Iterable[str],
    groups: Iterable[str],
    resources: Iterable[str],
    names: Iterable[str] = (),
) -> Obj:
    """A resource rule, each list sorted (kube's ``NewRule(...).RuleOrDie()``)."""
    out: Obj = {
        "verbs": sorted(verbs),
        "apiGroups": sorted(groups),
        "resources": sorted(resources),
    }
    names = sorted(names)
    if names:
        out["resourceNames"] = names
    return out


def url_rule(verbs: Iterable[str], urls: Iterable[str]) -> Obj:
    """A non-resource rule, each list sorted."""
    return {"verbs": sorted(verbs), "nonResourceURLs": sorted(urls)}


def events_rule() -> Obj:
    """What every controller may do with events (kube's ``eventsRule``)."""
    return rule(("create", "update", "patch"), (CORE, EVENTS), ("events",))


def _meta(name: str, namespace: str = "", labels: Mapping[str, str] | None = None) -> Obj:
    meta: Obj = {
        "name": name,
        "labels": {BOOTSTRAP_LABEL: BOOTSTRAP_VALUE, **(labels or {})},
        "annotations": {AUTOUPDATE: "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_role(
    name: str,
    rules: Sequence[Obj] = (),
    *,
    labels: Mapping[str, str] | None = None,
    aggregate_from: str = "",
) -> Obj:
    """A ClusterRole; ``aggregate_from`` gives it the aggregationRule selecting
    ``rbac.authorization.k8s.io/aggregate-to-<aggregate_from>: "true"``."""
    out: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": _meta(name, labels=labels),
    }
    if aggregate_from:
        label = f"{RBAC_GROUP}/aggregate-to-{aggregate_from}"
        out["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]}
    out["rules"] = [dict(r) for r in rules]
    return out


def user(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


def group(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def service_account(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_binding(name: str, subjects: Sequence[Obj], role: str = "") -> Obj:
    """A ClusterRoleBinding of ClusterRole ``role`` (default: the binding's name)."""
    out: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role or name},
    }
    if subjects:
        out["subjects"] = [dict(s) for s in subjects]
    return out


def role(name: str, namespace: str, rules: Sequence[Obj]) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "Role",
        "metadata": _meta(name, namespace),
        "rules": [dict(r) for r in rules],
    }


def role_binding(name: str, namespace: str, role_name: str, subjects: Sequence[Obj]) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role_name},
        "subjects": [dict(s) for s in subjects],
    }


# --- user-facing roles ----------------------------------------------------------------------
def user_facing_roles() -> list[Obj]:
    """cluster-admin, the discovery/basic/public roles and the aggregated admin/edit/view."""
    to_admin = {f"{RBAC_GROUP}/aggregate-to-admin": "true"}
    to_edit = {f"{RBAC_GROUP}/aggregate-to-edit": "true"}
    to_view = {f"{RBAC_GROUP}/aggregate-to-view": "true"}
    return [
        cluster_role("cluster-admin", [rule(("*",), ("*",), ("*",)), url_rule(("*",), ("*",))]),
        cluster_role(
            "system:discovery",
            [
                url_rule(
                    ("get",),
                    (
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/version",
                        "/version/",
                        "/openapi",
                        "/openapi/*",
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                    ),
                )
            ],
        ),
        cluster_role(
            "system:monitoring",
            [
                url_rule(
                    ("get",),
                    (
                        "/metrics",
                        "/metrics/slis",
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/livez/*",
                        "/readyz/*",
                        "/healthz/*",
                    ),
                )
            ],
        ),
        cluster_role(
            "system:basic-user",
            [
                rule(
                    ("create",),
                    (AUTHORIZATION,),
                    ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
                ),
                rule(("create",), (AUTHENTICATION,), ("selfsubjectreviews",)),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            [url_rule(("get",), ("/livez", "/readyz", "/healthz", "/version", "/version/"))],
        ),
        cluster_role("admin", aggregate_from="admin"),
        cluster_role("edit", labels=to_admin, aggregate_from="edit"),
        cluster_role("view", labels=to_edit, aggregate_from="view"),
        cluster_role(
            "system:aggregate-to-admin",
            [
                rule(("create",), (AUTHORIZATION,), ("localsubjectaccessreviews",)),
                rule(READ_WRITE, (RBAC_GROUP,), ("roles", "rolebindings")),
            ],
            labels=to_admin,
        ),
        cluster_role("system:aggregate-to-edit", aggregate_to_edit_rules(), labels=to_edit),
        cluster_role("system:aggregate-to-view", aggregate_to_view_rules(), labels=to_view),
    ]


def aggregate_to_edit_rules() -> list[Obj]:
    """``edit``: every user-level write in a namespace, no RBAC, no quota, no status."""
    return [
        rule(
            READ,
            (CORE,),
            (
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ),
        ),
        rule(("impersonate",), (CORE,), ("serviceaccounts",)),
        rule(
            WRITE, (CORE,), ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")
        ),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(
            WRITE,
            (CORE,),
            (
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ),
        ),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(
            WRITE,
            (APPS,),
            (
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ),
        ),
        rule(WRITE, (AUTOSCALING,), ("horizontalpodautoscalers",)),
        rule(WRITE, (BATCH,), ("jobs", "cronjobs")),
        rule(
            WRITE,
            (EXTENSIONS,),
            (
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ),
        ),
        rule(WRITE, (POLICY,), ("poddisruptionbudgets",)),
        rule(WRITE, (NETWORKING,), ("networkpolicies", "ingresses")),
        rule(READ_WRITE, (COORDINATION,), ("leases",)),
    ]


def aggregate_to_view_rules() -> list[Obj]:
    """``view``: read-only access to the non-escalating resources of a namespace."""
    return [
        rule(
            READ,
            (CORE,),
            (
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ),
        ),
        rule(
            READ,
            (CORE,),
            (
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ),
        ),
        rule(READ, (CORE,), ("namespaces",)),
        rule(READ, (DISCOVERY,), ("endpointslices",)),
        rule(
            READ,
            (APPS,),
            (
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ),
        ),
        rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
        rule(READ, (BATCH,), ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(
            READ,
            (EXTENSIONS,),
            (
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ),
        ),
        rule(READ, (POLICY,), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, (NETWORKING,), ("ingresses", "ingresses/status", "networkpolicies")),
    ]


# --- component roles ------------------------------------------------------------------------
def node_rules() -> list[Obj]:
    """What kubelets may do (``system:node``; the Node authorizer narrows it in kube)."""
    return [
        rule(("create",), (AUTHENTICATION,), ("tokenreviews",)),
        rule(("create",), (AUTHORIZATION,), ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, (CORE,), ("services",)),
        rule(("create", "get", "list", "watch"), (CORE,), ("nodes",)),
        rule(("update", "patch"), (CORE,), ("nodes/status",)),
        rule(("update", "patch"), (CORE,), ("nodes",)),
        rule(("create", "update", "patch"), (CORE,), ("events",)),
        rule(READ, (CORE,), ("pods",)),
        rule(("create", "delete"), (CORE,), ("pods",)),
        rule(("update", "patch"), (CORE,), ("pods/status",)),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(READ, (CORE,), ("secrets", "configmaps")),
        rule(("get",), (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("get",), (CORE,), ("endpoints",)),
        rule(("create", "get", "list", "watch"), (CERTIFICATES,), ("certificatesigningrequests",)),
        rule(("get", "create", "update", "patch", "delete"), (COORDINATION,), ("leases",)),
        rule(("get",), (STORAGE,), ("volumeattachments",)),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(("get", "update", "patch"), (CORE,), ("persistentvolumeclaims/status",)),
        rule(READ, (STORAGE,), ("csidrivers",)),
        rule(("get", "create", "update", "patch", "delete"), (STORAGE,), ("csinodes",)),
        rule(READ, (NODE,), ("runtimeclasses",)),
    ]


def component_roles() -> list[Obj]:
    """The roles of the cluster's components (kubelet, proxy, DNS, scheduler, controller
    manager) and the other fixed kube roles."""
    return [
        cluster_role(
            "system:auth-delegator",
            [
                rule(("create",), (AUTHENTICATION,), ("tokenreviews",)),
                rule(("create",), (AUTHORIZATION,), ("subjectaccessreviews",)),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            [
                rule(("list", "watch"), (CORE,), ("services", "endpoints")),
                rule(READ, (CORE,), ("nodes",)),
                events_rule(),
                rule(("list", "watch"), (DISCOVERY,), ("endpointslices",)),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            [
                rule(
                    ("create", "get", "list", "watch"),
                    (CERTIFICATES,),
                    ("certificatesigningrequests",),
                )
            ],
        ),
        cluster_role(
            "system:node-problem-detector",
            [
                rule(("get",), (CORE,), ("nodes",)),
                rule(("patch",), (CORE,), ("nodes/status",)),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            [
                rule(READ, (CORE,), ("nodes",)),
                rule(("proxy",), (CORE,), ("nodes",)),
                rule(("*",), (CORE,), ("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log")),
            ],
        ),
        cluster_role(
            "system:kube-dns", [rule(("list", "watch"), (CORE,), ("endpoints", "services"))]
        ),
        cluster_role(
            "system:kube-scheduler",
            [
                events_rule(),
                rule(("create",), (COORDINATION,), ("leases",)),
                rule(("get", "update"), (COORDINATION,), ("leases",), ("kube-scheduler",)),
                rule(READ, (CORE,), ("nodes",)),
                rule(("get", "list", "watch", "delete"), (CORE,), ("pods",)),
                rule(("create",), (CORE,), ("pods/binding", "bindings")),
                rule(("patch", "update"), (CORE,), ("pods/status",)),
                rule(READ, (CORE,), ("replicationcontrollers", "services")),
                rule(READ, (APPS, EXTENSIONS), ("replicasets",)),
                rule(READ, (APPS,), ("statefulsets",)),
                rule(READ, (POLICY,), ("poddisruptionbudgets",)),
                rule(READ, (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
                rule(("create",), (AUTHENTICATION,), ("tokenreviews",)),
                rule(("create",), (AUTHORIZATION,), ("subjectaccessreviews",)),
                rule(READ, (STORAGE,), ("csinodes",)),
                rule(READ, (CORE,), ("namespaces",)),
                rule(READ, (STORAGE,), ("csidrivers",)),
                rule(READ, (STORAGE,), ("csistoragecapacities",)),
            ],
        ),
        cluster_role(
            "system:volume-scheduler",
            [
                rule(("get", "list", "watch", "update", "patch"), (CORE,), ("persistentvolumes",)),
                rule(READ, (STORAGE,), ("storageclasses",)),
                rule(
                    ("get", "list", "watch", "update", "patch"),
                    (CORE,),
                    ("persistentvolumeclaims",),
                ),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            [
                events_rule(),
                rule(("create",), (COORDINATION,), ("leases",)),
                rule(("get", "update"), (COORDINATION,), ("leases",), ("kube-controller-manager",)),
                rule(("create",), (CORE,), ("secrets", "serviceaccounts")),
                rule(("delete",), (CORE,), ("secrets",)),
                rule(("get",), (CORE,), ("namespaces", "secrets", "serviceaccounts", "configmaps")),
                rule(("update",), (CORE,), ("secrets", "serviceaccounts")),
                rule(("create",), (AUTHENTICATION,), ("tokenreviews",)),
                rule(("create",), (AUTHORIZATION,), ("subjectaccessreviews",)),
                rule(("list", "watch"), ("*",), ("*",)),
                rule(("create",), (CORE,), ("serviceaccounts/token",)),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            [
                rule(("get", "list", "watch", "create", "delete"), (CORE,), ("persistentvolumes",)),
                rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
                rule(READ, (STORAGE,), ("storageclasses",)),
                rule(("watch",), (CORE,), ("events",)),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            [url_rule(("get",), ("/.well-known/openid-configuration", "/openid/v1/jwks"))],
        ),
        cluster_role(
            "system:kube-aggregator",
            [rule(READ, (CORE,), ("endpoints", "services"))],
        ),
        cluster_role(
            INGRESS_CONTROLLER_USER,
            [
                rule(READ, (NETWORKING,), ("ingresses", "ingressclasses")),
                rule(("update", "patch"), (NETWORKING,), ("ingresses/status",)),
                rule(READ, (CORE,), ("services", "secrets")),
                rule(READ, (DISCOVERY,), ("endpointslices",)),
                rule(("create", "patch"), (CORE, EVENTS), ("events",)),
            ],
        ),
        cluster_role(
            NETWORK_USER,
            [
                rule((*READ, "create", "update", "patch"), (CORE,), ("services",)),
                rule(("update", "patch"), (CORE,), ("services/status",)),
                rule(READ, (CORE,), ("endpoints", "pods", "nodes", "namespaces", "secrets")),
                rule(
                    (*READ, "create", "update", "patch", "delete"),
                    (DISCOVERY,),
                    ("endpointslices",),
                ),
                rule(READ, (NETWORKING,), ("ingresses", "ingressclasses")),
                rule(("create", "update", "patch"), (NETWORKING,), ("ingressclasses",)),
                rule(("update", "patch"), (NETWORKING,), ("ingresses/status",)),
                rule(("create", "patch", "update"), (CORE, EVENTS), ("events",)),
            ],
        ),
        cluster_role(
            STORAGECLASS_MAKER,
            [rule((*READ, "create", "update", "patch"), (STORAGE,), ("storageclasses",))],
        ),
    ]


# --- controller roles -----------------------------------------------------------------------
def controller_roles() -> list[Obj]:
    """The ``system:controller:*`` roles of the controllers this cluster runs."""
    c = CONTROLLER_PREFIX
    return [
        cluster_role(
            c + "clusterrole-aggregation-controller",
            [
                rule(
                    ("escalate", "get", "list", "watch", "update", "patch"),
                    (RBAC_GROUP,),
                    ("clusterroles",),
                )
            ],
        ),
        cluster_role(
            c + "cronjob-controller",
            [
                rule(("get", "list", "watch", "update"), (BATCH,), ("cronjobs",)),
                rule(
                    ("get", "list", "watch", "create", "update", "delete", "patch"),
                    (BATCH,),
                    ("jobs",),
                ),
                rule(("update",), (BATCH,), ("cronjobs/status",)),
                rule(("update",), (BATCH,), ("cronjobs/finalizers",)),
                rule(("list", "delete"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "daemon-set-controller",
            [
                rule(READ, (EXTENSIONS, APPS), ("daemonsets",)),
                rule(("update",), (EXTENSIONS, APPS), ("daemonsets/status",)),
                rule(("update",), (EXTENSIONS, APPS), ("daemonsets/finalizers",)),
                rule(("list", "watch"), (CORE,), ("nodes",)),
                rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
                rule(("create",), (CORE,), ("pods/binding",)),
                rule(
                    ("get", "list", "watch", "create", "delete", "update", "patch"),
                    (APPS,),
                    ("controllerrevisions",),
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "deployment-controller",
            [
                rule(("get", "list", "watch", "update"), (EXTENSIONS, APPS), ("deployments",)),
                rule(("update",), (EXTENSIONS, APPS), ("deployments/status",)),
                rule(("update",), (EXTENSIONS, APPS), ("deployments/finalizers",)),
                rule(
                    ("get", "list", "watch", "create", "update", "patch", "delete"),
                    (APPS, EXTENSIONS),
                    ("replicasets",),
                ),
                rule(("get", "list", "watch", "update"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "endpoint-controller",
            [
                rule(READ, (CORE,), ("services", "pods")),
                rule(("get", "list", "create", "update", "delete"), (CORE,), ("endpoints",)),
                rule(("create",), (CORE,), ("endpoints/restricted",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "endpointslice-controller",
            [
                rule(READ, (CORE,), ("services", "pods", "nodes")),
                rule(("update",), (CORE,), ("services/finalizers",)),
                rule(
                    ("get", "list", "create", "update", "delete"), (DISCOVERY,), ("endpointslices",)
                ),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "generic-garbage-collector",
            [
                rule(("get", "list", "watch", "patch", "update", "delete"), ("*",), ("*",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "horizontal-pod-autoscaler",
            [
                rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers",)),
                rule(("update",), (AUTOSCALING,), ("horizontalpodautoscalers/status",)),
                rule(("get", "update"), ("*",), ("*/scale",)),
                rule(("list",), (CORE,), ("pods",)),
                rule(("list",), (METRICS,), ("pods",)),
                rule(("get", "list"), (CUSTOM_METRICS,), ("*",)),
                rule(("get", "list"), (EXTERNAL_METRICS,), ("*",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "job-controller",
            [
                rule(("get", "list", "watch", "update", "patch"), (BATCH,), ("jobs",)),
                rule(("update",), (BATCH,), ("jobs/status",)),
                rule(("update",), (BATCH,), ("jobs/finalizers",)),
                rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "namespace-controller",
            [
                rule(("get", "list", "watch", "delete"), (CORE,), ("namespaces",)),
                rule(("update",), (CORE,), ("namespaces/finalize", "namespaces/status")),
                rule(("get", "list", "delete", "deletecollection"), ("*",), ("*",)),
            ],
        ),
        cluster_role(
            c + "node-controller",
            [
                rule(("get", "list", "update", "delete", "patch"), (CORE,), ("nodes",)),
                rule(("patch", "update"), (CORE,), ("nodes/status",)),
                rule(("patch", "update"), (CORE,), ("pods/status",)),
                rule(("list", "get", "delete"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "persistent-volume-binder",
            [
                rule(
                    ("get", "list", "watch", "update", "create", "delete"),
                    (CORE,),
                    ("persistentvolumes",),
                ),
                rule(("update",), (CORE,), ("persistentvolumes/status",)),
                rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
                rule(("update",), (CORE,), ("persistentvolumeclaims/status",)),
                rule(("list", "watch", "get", "create", "delete"), (CORE,), ("pods",)),
                rule(READ, (STORAGE,), ("storageclasses",)),
                rule(("get", "create", "update", "delete"), (CORE,), ("endpoints",)),
                rule(("get", "create", "delete"), (CORE,), ("services",)),
                rule(("get",), (CORE,), ("secrets",)),
                rule(("get", "list"), (CORE,), ("nodes",)),
                rule(("watch",), (CORE,), ("events",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "pod-garbage-collector",
            [
                rule(("list", "watch", "delete"), (CORE,), ("pods",)),
                rule(("get", "list"), (CORE,), ("nodes",)),
                rule(("patch",), (CORE,), ("pods/status",)),
            ],
        ),
        cluster_role(
            c + "replicaset-controller",
            [
                rule(("get", "list", "watch", "update"), (APPS, EXTENSIONS), ("replicasets",)),
                rule(("update",), (APPS, EXTENSIONS), ("replicasets/status",)),
                rule(("update",), (APPS, EXTENSIONS), ("replicasets/finalizers",)),
                rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "replication-controller",
            [
                rule(("get", "list", "watch", "update"), (CORE,), ("replicationcontrollers",)),
                rule(("update",), (CORE,), ("replicationcontrollers/status",)),
                rule(("update",), (CORE,), ("replicationcontrollers/finalizers",)),
                rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
                events_rule(),
            ],
        ),
        cluster_role(
            c + "root-ca-cert-publisher",
            [rule(("create", "update"), (CORE,), ("configmaps",)), events_rule()],
        ),
        cluster_role(
            c + "service-account-controller",
            [rule(("create",), (CORE,), ("serviceaccounts",)), events_rule()],
        ),
        cluster_role(
            c + "statefulset-controller",
            [
                rule(("list", "watch"), (CORE,), ("pods",)),
                rule(READ, (APPS,), ("statefulsets",)),
                rule(("update",), (APPS,), ("statefulsets/status",)),
                rule(("update",), (APPS,), ("statefulsets/finalizers",)),
                rule(("get", "create", "delete", "update", "patch"), (CORE,), ("pods",)),
                rule(
                    ("get", "create", "delete", "update", "patch", "list", "watch"),
                    (APPS,),
                    ("controllerrevisions",),
                ),
                rule(("get", "create"), (CORE,), ("persistentvolumeclaims",)),
                events_rule(),
                rule(("update", "delete"), (CORE,), ("persistentvolumeclaims",)),
            ],
        ),
        cluster_role(
            c + "ttl-after-finished-controller",
            [rule(("get", "list", "watch", "delete"), (BATCH,), ("jobs",)), events_rule()],
        ),
    ]


# --- bindings -------------------------------------------------------------------------------
def cluster_bindings() -> list[Obj]:
    """kube's ClusterRoleBindings, this cluster's additions, and one binding per
    controller role (kube's ServiceAccount plus this cluster's controller-manager user)."""
    out = [
        cluster_binding("cluster-admin", [group("system:masters")]),
        cluster_binding("system:monitoring", [group("system:monitoring")]),
        cluster_binding("system:discovery", [group("system:authenticated")]),
        cluster_binding("system:basic-user", [group("system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            [group("system:authenticated"), group("system:unauthenticated")],
        ),
        cluster_binding("system:node-proxier", [user("system:kube-proxy")]),
        cluster_binding("system:kube-controller-manager", [user(CONTROLLER_MANAGER_USER)]),
        cluster_binding("system:kube-dns", [service_account("kube-system", "kube-dns")]),
        cluster_binding("system:kube-scheduler", [user(SCHEDULER_USER)]),
        cluster_binding("system:volume-scheduler", [user(SCHEDULER_USER)]),
        cluster_binding("system:node", []),
        cluster_binding(
            "system:service-account-issuer-discovery", [group("system:serviceaccounts")]
        ),
        cluster_binding("system:persistent-volume-provisioner", [user(CONTROLLER_MANAGER_USER)]),
        cluster_binding(INGRESS_CONTROLLER_USER, [user(INGRESS_CONTROLLER_USER)]),
        cluster_binding(NETWORK_USER, [user(NETWORK_USER)]),
        cluster_binding(STORAGECLASS_MAKER, [user(CONTROLLER_MANAGER_USER)]),
    ]
    for controller in controller_roles():
        name = controller["metadata"]["name"]
        account = name[len(CONTROLLER_PREFIX) :]
        out.append(
            cluster_binding(
                name, [service_account("kube-system", account), user(CONTROLLER_MANAGER_USER)]
            )
        )
    return out


def namespaced_roles() -> list[Obj]:
    """kube's Roles in ``kube-system`` that matter here (authentication config reading
    and leader election)."""
    return [
        role(
            "extension-apiserver-authentication-reader",
            "kube-system",
            [rule(READ, (CORE,), ("configmaps",), ("extension-apiserver-authentication",))],
        ),
        role(
            "system::leader-locking-kube-controller-manager",
            "kube-system",
            _leader_locking("kube-controller-manager"),
        ),
        role(
            "system::leader-locking-kube-scheduler",
            "kube-system",
            _leader_locking("kube-scheduler"),
        ),
    ]


def _leader_locking(component: str) -> list[Obj]:
    return [
        rule(("watch",), (CORE,), ("configmaps",)),
        rule(("get", "update"), (CORE,), ("configmaps",), (component,)),
        rule(("get", "list", "watch", "create", "update"), (COORDINATION,), ("leases",)),
        rule(("get", "list", "watch", "create", "update"), (COORDINATION,), ("leasecandidates",)),
    ]


def namespaced_bindings() -> list[Obj]:
    return [
        role_binding(
            "system::extension-apiserver-authentication-reader",
            "kube-system",
            "extension-apiserver-authentication-reader",
            [user(CONTROLLER_MANAGER_USER), user(SCHEDULER_USER)],
        ),
        role_binding(
            "system::leader-locking-kube-controller-manager",
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            [service_account("kube-system", "kube-controller-manager")],
        ),
        role_binding(
            "system::leader-locking-kube-scheduler",
            "kube-system",
            "system::leader-locking-kube-scheduler",
            [service_account("kube-system", "kube-scheduler")],
        ),
    ]


def cluster_roles() -> list[Obj]:
    """Every bootstrap ClusterRole."""
    return user_facing_roles() + component_roles() + controller_roles()


# --- reconciliation -------------------------------------------------------------------------
