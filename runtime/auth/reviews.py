"""The review APIs: who am I, may I, may they, what may I, is this token good.

Who calls it: :mod:`runtime.server.app` for ``POST`` of the create-only resources of
``authentication.k8s.io`` and ``authorization.k8s.io``. Each answers with the request
body plus a ``status``, as kube-apiserver's review registries do:

* ``SelfSubjectReview`` — the requester's user info (``kubectl auth whoami``);
* ``SubjectAccessReview`` / ``LocalSubjectAccessReview`` — may ``spec.user`` (with
  ``spec.groups``…) do this (a namespaced review must name its own namespace);
* ``SelfSubjectAccessReview`` — may I (``kubectl auth can-i``);
* ``SelfSubjectRulesReview`` — what may I in ``spec.namespace``
  (``kubectl auth can-i --list``);
* ``TokenReview`` — the user a bearer token authenticates as.

Whether the requester may create the review at all is RBAC's business, decided before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubemodel import errors
from runtime.auth.attributes import DENY, Attributes, Authorizer
from runtime.auth.user import UserInfo

Obj = dict[str, Any]


def _spec(body: Obj) -> Obj:
    spec = body.get("spec")
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise errors.bad_request("spec must be an object")
    return spec


def _attributes(user: UserInfo, spec: Obj, kind: str) -> Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise errors.invalid_object(
            "authorization.k8s.io",
            kind,
            "",
            [
                errors.invalid_literal(
                    "spec.resourceAttributes",
                    "null" if resource is None else "{...}",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    if resource is not None:
        if not isinstance(resource, dict):
            raise errors.bad_request("spec.resourceAttributes must be an object")
        return Attributes(
            user=user,
            verb=str(resource.get("verb") or ""),
            resource_request=True,
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
        )
    if not isinstance(non_resource, dict):
        raise errors.bad_request("spec.nonResourceAttributes must be an object")
    return Attributes(
        user=user,
        verb=str(non_resource.get("verb") or ""),
        resource_request=False,
        path=str(non_resource.get("path") or ""),
    )


def _decide(authorizer: Authorizer, attrs: Attributes) -> Obj:
    decision = authorizer.authorize(attrs)
    status: Obj = {"allowed": decision.allowed}
    if decision.verdict == DENY:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _user_from_spec(spec: Obj, kind: str) -> UserInfo:
    name = str(spec.get("user") or "")
    groups = spec.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise errors.bad_request("spec.groups must be a list of strings")
    if not name and not groups:
        raise errors.invalid_object(
            "authorization.k8s.io",
            kind,
            "",
            [
                errors.invalid_literal(
                    "spec.user", '""', "at least one of user or group must be specified"
                )
            ],
        )
    extra = spec.get("extra") or {}
    if not isinstance(extra, dict):
        raise errors.bad_request("spec.extra must be an object")
    return UserInfo(
        name,
        str(spec.get("uid") or ""),
        tuple(groups),
        {str(k): tuple(str(x) for x in (v or [])) for k, v in extra.items()},
    )


def review(
    kind: str,
    body: Obj,
    namespace: str,
    requester: UserInfo,
    authorizer: Authorizer,
    authenticate_token: Callable[[str], UserInfo | None],
) -> Obj:
    """The answered review (the body with its ``status``)."""
    spec = _spec(body)
    if kind == "SelfSubjectReview":
        body["status"] = {"userInfo": requester.as_dict()}
    elif kind == "SelfSubjectAccessReview":
        body["status"] = _decide(authorizer, _attributes(requester, spec, kind))
    elif kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        attrs = _attributes(_user_from_spec(spec, kind), spec, kind)
        if kind == "LocalSubjectAccessReview":
            meta_ns = str((body.get("metadata") or {}).get("namespace") or namespace)
            if meta_ns != namespace:
                raise errors.bad_request(
                    f"metadata.namespace must match namespace: {meta_ns} != {namespace}"
                )
            if attrs.resource_request and attrs.namespace != namespace:
                raise errors.bad_request(
                    "spec.resourceAttributes.namespace must match namespace: "
                    f"{attrs.namespace} != {namespace}"
                )
            if not attrs.resource_request:
                raise errors.bad_request("nonResourceAttributes are not allowed in a local review")
        body["status"] = _decide(authorizer, attrs)
    elif kind == "SelfSubjectRulesReview":
        target = str(spec.get("namespace") or "")
        rules = authorizer.rules_for(requester, target)
        status: Obj = {
            "resourceRules": [r.as_dict() for r in rules.resource_rules],
            "nonResourceRules": [r.as_dict() for r in rules.non_resource_rules],
            "incomplete": rules.incomplete,
        }
        if rules.evaluation_error:
            status["evaluationError"] = rules.evaluation_error
        body["status"] = status
    elif kind == "TokenReview":
        token = str(spec.get("token") or "")
        user = authenticate_token(token) if token else None
        body["status"] = (
            {"authenticated": True, "user": user.as_dict()}
            if user is not None
            else {"authenticated": False, "error": "invalid bearer token"}
        )
        audiences = spec.get("audiences")
        if user is not None and audiences:
            body["status"]["audiences"] = audiences
    else:
        raise errors.method_not_allowed(f"{kind} is not a review")
    return body
