"""User impersonation (``kubectl --as/--as-group/--as-uid``; kube-apiserver's
impersonation filter).

Who calls it: :mod:`runtime.server.app` after authentication. The ``Impersonate-User``,
``Impersonate-Group`` (repeatable), ``Impersonate-Uid`` and ``Impersonate-Extra-<key>``
headers make the request act as another user, when the authenticated user may
``impersonate`` each part: ``users`` (or ``serviceaccounts`` in the account's namespace
for ``system:serviceaccount:<ns>:<name>``), ``groups``, ``uids`` and
``userextras/<key>`` in ``authentication.k8s.io``. Groups without ``Impersonate-User``
are a 400 as in Kubernetes. The impersonated user gets ``system:authenticated`` (or
``system:unauthenticated`` for ``system:anonymous``) unless one of them was asked for;
a ServiceAccount gets its ``system:serviceaccounts`` groups when no group was given.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from kubemodel import errors
from runtime.auth.attributes import Attributes, Authorizer
from runtime.auth.user import (
    ANONYMOUS_USER,
    AUTHENTICATED,
    SERVICE_ACCOUNTS,
    UNAUTHENTICATED,
    UserInfo,
    split_service_account,
)

USER_HEADER = "impersonate-user"
GROUP_HEADER = "impersonate-group"
UID_HEADER = "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"


def wants_impersonation(headers: Sequence[tuple[str, str]]) -> bool:
    return any(name == USER_HEADER or name.startswith("impersonate-") for name, _ in headers)


def impersonate(
    authorizer: Authorizer, requester: UserInfo, headers: Sequence[tuple[str, str]]
) -> UserInfo:
    """The user to act as (``requester`` itself when no impersonation header is set);
    raises 403 naming the first part the requester may not impersonate."""
    user_name = ""
    groups: list[str] = []
    uid = ""
    extra: dict[str, list[str]] = {}
    for name, value in headers:
        if name == USER_HEADER:
            user_name = value
        elif name == GROUP_HEADER:
            groups.append(value)
        elif name == UID_HEADER:
            uid = value
        elif name.startswith(EXTRA_PREFIX):
            key = urllib.parse.unquote(name[len(EXTRA_PREFIX) :]).lower()
            extra.setdefault(key, []).append(value)
    if not user_name and not groups and not uid and not extra:
        return requester
    if not user_name:
        raise errors.bad_request(
            "requested [{Kind:Group ...}] without impersonating a user"
            if groups
            else "requested impersonation of extras or a UID without impersonating a user"
        )
    checks: list[tuple[str, str, str, str, str]] = []  # group, resource, sub, ns, name
    account = split_service_account(user_name)
    if account is not None:
        checks.append(("", "serviceaccounts", "", account[0], account[1]))
    else:
        checks.append(("", "users", "", "", user_name))
    checks += [("", "groups", "", "", g) for g in groups]
    if uid:
        checks.append(("authentication.k8s.io", "uids", "", "", uid))
    for key, values in extra.items():
        checks += [("authentication.k8s.io", "userextras", key, "", v) for v in values]
    for group, resource, sub, namespace, name in checks:
        attrs = Attributes(
            user=requester,
            verb="impersonate",
            api_group=group,
            resource=resource,
            subresource=sub,
            namespace=namespace,
            name=name,
        )
        if not authorizer.authorize(attrs).allowed:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            shown = f"{resource}/{sub}" if sub else resource
            raise errors.forbidden_resource(
                group,
                resource,
                name,
                f'User "{requester.name}" cannot impersonate resource "{shown}" in API group '
                f'"{group}" {scope}',
            )
    if account is not None and not groups:
        groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{account[0]}"]
    if user_name == ANONYMOUS_USER:
        if UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(user_name, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})
