"""The door of the API server: authenticate, impersonate, authorise — or refuse.

Who calls it: :class:`runtime.server.app.ApiApp` for every HTTP request and WebSocket
upgrade, before any routing. :meth:`Gate.admit` returns the user the request acts as
(after ``Impersonate-*`` headers) or raises the 401/403 ``Status`` kube-apiserver would:
a 403 reads ``<resource>[.<group>] ["<name>"] is forbidden: User "<u>" cannot <verb>
resource "<resource>[/<sub>]" in API group "<g>" in the namespace "<ns>"`` (or ``at the
cluster scope``, or ``cannot <verb> path "<path>"`` for non-resource requests), with the
authorizer's reason appended after a colon when it gives one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubemodel import errors
from kubemodel.errors import ApiError
from runtime.auth.attributes import Attributes, Authorizer
from runtime.auth.authn import Authenticator, PeerCertificate
from runtime.auth.impersonation import impersonate
from runtime.auth.requestinfo import RequestInfo, request_info
from runtime.auth.user import UserInfo


@dataclass
class Gate:
    authenticator: Authenticator
    authorizer: Authorizer

    def admit(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Sequence[tuple[str, str]],
        peer: PeerCertificate | None,
        websocket: bool = False,
    ) -> UserInfo:
        authorization = next((v for k, v in headers if k == "authorization"), "")
        user = self.authenticator.authenticate(authorization, peer)
        user = impersonate(self.authorizer, user, headers)
        info = request_info(
            method,
            path,
            watch_param=query.get("watch", "").lower() in ("true", "1"),
            field_selector=query.get("fieldSelector", ""),
            websocket=websocket,
        )
        attrs = attributes(user, info, query.get("fieldSelector", ""))
        decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
        return user


def attributes(user: UserInfo, info: RequestInfo, field_selector: str = "") -> Attributes:
    return Attributes(
        user=user,
        verb=info.verb,
        resource_request=info.resource_request,
        api_group=info.api_group,
        api_version=info.api_version,
        resource=info.resource,
        subresource=info.subresource,
        namespace=info.namespace,
        name=info.name,
        path=info.path,
        field_selector=field_selector,
    )


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """kube-apiserver's ``responsewriters.Forbidden`` for a refused request."""
    name = attrs.user.name
    if not attrs.resource_request:
        message = f'User "{name}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        scope = (
            f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        )
        message = (
            f'User "{name}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" {scope}'
        )
    if reason:
        message = f"{message}: {reason}"
    if not attrs.resource_request:
        return errors.forbidden_resource("", "", "", message)
    return errors.forbidden_resource(attrs.api_group, attrs.resource, attrs.name, message)
