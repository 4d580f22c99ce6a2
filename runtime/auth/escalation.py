"""RBAC's privilege-escalation prevention, as an admission plugin of the object layer
(kube-apiserver does it in the policy-based REST storages of ``pkg/registry/rbac``:
``role/policybased``, ``clusterrole/policybased``, ``rolebinding/policybased``,
``clusterrolebinding/policybased`` and ``escalation_check.go``).

Who calls it: :class:`runtime.api.objects.ObjectAPI` through ``ApiOptions.admission``, on
every create and update from a requester (the server's own writes have no requester and
are not checked, as kube's loopback writes run as ``system:masters``).

Kubernetes semantics followed:

* members of ``system:masters`` may write any role or binding (``EscalationAllowed``);
* a Role or ClusterRole may be written when the requester may ``escalate`` it (verb
  ``escalate`` on ``roles``/``clusterroles`` of ``rbac.authorization.k8s.io``, the name
  only on updates, as kube takes it from the request URL), or when the requester already
  holds every rule it grants: in the Role's namespace (cluster bindings plus that
  namespace's bindings) or cluster-wide for a ClusterRole (``ConfirmNoEscalation``).
  Setting or changing a ClusterRole's ``aggregationRule`` needs ``*`` on ``*.*`` and
  ``*`` on every URL ("must have cluster-admin privileges to use the aggregationRule");
  aggregated ClusterRoles are checked with their stored rules (the aggregation
  controller fills them in);
* a RoleBinding or ClusterRoleBinding may be written when the requester may ``bind``
  the referenced role (verb ``bind`` on ``roles``/``clusterroles`` named by the
  ``roleRef``, in the binding's namespace or cluster-wide) or holds every rule of the
  referenced role in the binding's namespace; a missing role is a 404 NotFound;
* updates that change only ``ownerReferences``/``finalizers`` (the garbage collector's
  fields) are not checked (``IsOnlyMutatingGCFields``);
* refusals are 403 Forbidden worded as kube's ``NewForbidden`` + ``ConfirmNoEscalation``:
  ``clusterroles.rbac.authorization.k8s.io "x" is forbidden: user "u" (groups=["g"]) is
  attempting to grant RBAC permissions not currently held:\\n{APIGroups:["*"], ...}``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubemodel import errors
from kubemodel.errors import ApiError
from runtime.auth.admission import AdmissionRequest
from runtime.auth.attributes import Attributes, Authorizer
from runtime.auth.rbac import (
    RBAC_GROUP,
    PolicyRule,
    RBACAuthorizer,
    compact_rules,
    compact_string,
    covers,
    go_quote,
    go_quote_list,
)
from runtime.auth.user import MASTERS, UserInfo

ROLE_RESOURCES = frozenset({"roles", "clusterroles"})
BINDING_RESOURCES = frozenset({"rolebindings", "clusterrolebindings"})

#: What a ClusterRole with an aggregationRule may gather: anything.
FULL_AUTHORITY = (
    PolicyRule(("*",), ("*",), ("*",)),
    PolicyRule(("*",), non_resource_urls=("*",)),
)

#: Metadata the object layer maintains itself, left out when comparing for GC-only updates.
_SYSTEM_METADATA = (
    "ownerReferences",
    "finalizers",
    "selfLink",
    "resourceVersion",
    "managedFields",
    "generation",
)


def _stripped(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in _SYSTEM_METADATA:
            meta.pop(key, None)
    return out


def only_gc_fields_changed(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether an update changes nothing but ownerReferences and finalizers."""
    return old is not None and _stripped(new) == _stripped(old)


def _has_aggregation_rule(obj: Mapping[str, Any] | None) -> bool:
    rule = (obj or {}).get("aggregationRule")
    return isinstance(rule, Mapping) and bool(rule.get("clusterRoleSelectors"))


class RBACEscalationCheck:
    """The admission plugin refusing role and binding writes that would grant more
    than the requester holds."""

    def __init__(self, rbac: RBACAuthorizer, authorizer: Authorizer) -> None:
        #: Resolves what the requester holds (kube's rule resolver).
        self.rbac = rbac
        #: The server's full authorizer, asked for the ``escalate`` and ``bind`` verbs.
        self.authorizer = authorizer

    def admit(self, request: AdmissionRequest) -> list[str]:
        info = request.info
        if info.group != RBAC_GROUP or request.subresource:
            return []
        if request.operation not in ("CREATE", "UPDATE"):
            return []
        if MASTERS in request.user.groups:
            return []
        if info.plural in ROLE_RESOURCES:
            self._check_role(request)
        elif info.plural in BINDING_RESOURCES:
            self._check_binding(request)
        return []

    # --- roles ------------------------------------------------------------------------------
    def _may(self, user: UserInfo, verb: str, resource: str, name: str, namespace: str) -> bool:
        attrs = Attributes(
            user=user,
            verb=verb,
            api_group=RBAC_GROUP,
            api_version="*",
            resource=resource,
            name=name,
            namespace=namespace,
        )
        return self.authorizer.authorize(attrs).allowed

    def _check_role(self, request: AdmissionRequest) -> None:
        plural = request.info.plural
        namespace = request.namespace if plural == "roles" else ""
        # kube takes the name from the request URL: none on a create.
        url_name = request.name if request.operation == "UPDATE" else ""
        if self._may(request.user, "escalate", plural, url_name, namespace):
            return
        if request.operation == "UPDATE" and only_gc_fields_changed(request.obj, request.old):
            return
        rules = [PolicyRule.of(r) for r in (request.obj.get("rules") or ())]
        self._confirm_no_escalation(request, rules, namespace)
        if plural == "clusterroles" and (
            _has_aggregation_rule(request.obj) or _has_aggregation_rule(request.old)
        ):
            owner, _ = self.rbac.policy_rules_for(request.user, "")
            if covers(owner, FULL_AUTHORITY):
                raise self._forbidden(
                    request, "must have cluster-admin privileges to use the aggregationRule"
                )

    # --- bindings ---------------------------------------------------------------------------
    def _check_binding(self, request: AdmissionRequest) -> None:
        namespace = request.namespace if request.info.plural == "rolebindings" else ""
        if request.operation == "UPDATE" and only_gc_fields_changed(request.obj, request.old):
            return
        ref = request.obj.get("roleRef")
        ref = ref if isinstance(ref, Mapping) else {}
        kind = str(ref.get("kind") or "")
        name = str(ref.get("name") or "")
        resource = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind)
        if resource is not None:
            group = str(ref.get("apiGroup") or "")
            attrs = Attributes(
                user=request.user,
                verb="bind",
                api_group=group,
                resource=resource,
                name=name,
                namespace=namespace,
            )
            if self.authorizer.authorize(attrs).allowed:
                return
        rules = self.rbac.role_ref_rules(kind, name, namespace)
        if rules is None:
            if resource is None:
                raise errors.bad_request(f"unsupported role reference kind: {go_quote(kind)}")
            raise errors.not_found(RBAC_GROUP, resource, name)
        self._confirm_no_escalation(request, rules, namespace)

    # --- ConfirmNoEscalation ----------------------------------------------------------------
    def _confirm_no_escalation(
        self, request: AdmissionRequest, rules: list[PolicyRule], namespace: str
    ) -> None:
        owner, resolution_errors = self.rbac.policy_rules_for(request.user, namespace)
        missing = covers(owner, rules)
        if not missing:
            return
        described = sorted({compact_string(r) for r in compact_rules(missing)})
        user = request.user
        message = (
            f"user {go_quote(user.name)} (groups={go_quote_list(user.groups)}) is attempting "
            "to grant RBAC permissions not currently held:\n" + "\n".join(described)
        )
        if resolution_errors:
            unique = list(dict.fromkeys(resolution_errors))
            joined = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
            message += f"; resolution errors: [{joined}]"
        raise self._forbidden(request, message)

    @staticmethod
    def _forbidden(request: AdmissionRequest, detail: str) -> ApiError:
        plural = request.info.plural
        qualified = f"{plural}.{RBAC_GROUP}"
        details: dict[str, Any] = {}
        if request.name:
            details["name"] = request.name
            message = f"{qualified} {go_quote(request.name)} is forbidden: {detail}"
        else:
            message = f"{qualified} is forbidden: {detail}"
        details["group"] = RBAC_GROUP
        details["kind"] = plural
        return ApiError(403, "Forbidden", message, details)
