"""Authentication, impersonation and request attributes as kube-apiserver has them: the
authenticator chain (client certificate, admin token, static token file, ServiceAccount
tokens, anonymous), the ``Impersonate-*`` headers and the 403 messages of refused
requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubemodel.errors import ApiError
from runtime.auth.attributes import ALLOW, NO_OPINION, Attributes, Decision, Rules
from runtime.auth.authn import (
    Authenticator,
    AuthnOptions,
    InvalidToken,
    PeerCertificate,
    TokenFileError,
    load_token_file,
)
from runtime.auth.impersonation import impersonate
from runtime.auth.requestinfo import request_info
from runtime.auth.user import ANONYMOUS, UserInfo
from runtime.server.gate import attributes, forbidden


def test_a_token_file_gives_users_uids_and_quoted_groups(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\n\nt1,alice,u-1,"dev,ops"\nt2,bob,u-2\n')
    tokens = load_token_file(path)
    assert tokens["t1"] == UserInfo("alice", "u-1", ("dev", "ops"))
    assert tokens["t2"] == UserInfo("bob", "u-2", ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t1,alice\n", "line 1: want token,user,uid[,groups], got 2 fields"),
        ("t1,alice,1\nt1,bob,2\n", "line 2: duplicate token"),
        (",alice,1\n", "line 1: the token and user must not be empty"),
    ],
)
def test_a_malformed_token_file_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    with pytest.raises(TokenFileError) as info:
        load_token_file(path)
    assert str(info.value) == f"{path}: {message}"


def _chain(anonymous: bool = True) -> Authenticator:
    def service_account(token: str) -> UserInfo | None:
        if token == "sa-bad":
            raise InvalidToken("expired")
        if token == "sa-good":
            return UserInfo("system:serviceaccount:ns:sa", "uid", ("system:serviceaccounts",))
        return None

    return Authenticator(
        AuthnOptions(
            admin_token="admin-secret",
            static_tokens={"static": UserInfo("alice", "1", ("dev",))},
            anonymous=anonymous,
        ),
        (service_account,),
    )


def test_the_chain_maps_each_credential_to_its_user() -> None:
    chain = _chain()
    admin = chain.authenticate("Bearer admin-secret", None)
    assert (admin.name, admin.groups) == (
        "gitops-admin",
        ("system:masters", "system:authenticated"),
    )
    assert chain.authenticate("Bearer static", None).groups == ("dev", "system:authenticated")
    assert chain.authenticate("Bearer sa-good", None).name == "system:serviceaccount:ns:sa"
    cert = chain.authenticate("", PeerCertificate("system:node:n1", ("system:nodes",)))
    assert (cert.name, cert.groups) == (
        "system:node:n1",
        ("system:nodes", "system:authenticated"),
    )
    assert chain.authenticate("", None) == ANONYMOUS


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer sa-bad", "Basic YTpi", "Bearer "])
def test_a_credential_that_does_not_verify_is_401_never_anonymous(header: str) -> None:
    with pytest.raises(ApiError) as info:
        _chain().authenticate(header, None)
    assert info.value.code == 401


def test_without_anonymous_auth_no_credentials_is_401() -> None:
    with pytest.raises(ApiError) as info:
        _chain(anonymous=False).authenticate("", None)
    assert info.value.code == 401


def test_token_review_answers_none_for_a_bad_token() -> None:
    chain = _chain()
    assert chain.authenticate_token("sa-bad") is None
    user = chain.authenticate_token("static")
    assert user is not None and user.name == "alice"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "pods", "", "ns", "")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "", "pods", "", "", "")),
        ("GET", "/api/v1/watch/namespaces/ns/pods", {}, ("watch", "", "pods", "", "ns", "")),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "", "pods", "log", "ns", "p")),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/n/deployments",
            {},
            ("deletecollection", "apps", "deployments", "", "n", ""),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/n/deployments/d/scale",
            {},
            ("patch", "apps", "deployments", "scale", "n", "d"),
        ),
        ("GET", "/api/v1/namespaces/team", {}, ("get", "", "namespaces", "", "team", "team")),
        (
            "PUT",
            "/api/v1/namespaces/team/finalize",
            {},
            ("update", "", "namespaces", "finalize", "team", "team"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name=n1"},
            ("list", "", "nodes", "", "", "n1"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name!=n1"},
            ("list", "", "nodes", "", "", ""),
        ),
    ],
)
def test_resource_requests_get_kubes_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    info = request_info(method, path, query.get("watch") == "true", query.get("fieldSelector", ""))
    assert info.resource_request
    assert (
        info.verb,
        info.api_group,
        info.resource,
        info.subresource,
        info.namespace,
        info.name,
    ) == expected


@pytest.mark.parametrize("path", ["/healthz", "/version", "/api", "/apis/apps/v1", "/openapi/v2"])
def test_other_paths_are_non_resource_requests(path: str) -> None:
    info = request_info("GET", path)
    assert (info.resource_request, info.verb, info.path) == (False, "get", path)


def test_a_websocket_exec_needs_create() -> None:
    info = request_info("GET", "/api/v1/namespaces/n/pods/p/exec", websocket=True)
    assert (info.verb, info.subresource) == ("create", "exec")


def test_forbidden_messages_are_kubes() -> None:
    user = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    listing = attributes(user, request_info("GET", "/api/v1/namespaces/default/pods"))
    err = forbidden(listing)
    assert (err.code, err.reason) == (403, "Forbidden")
    assert err.message == (
        'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group '
        '"" in the namespace "default"'
    )
    assert err.details == {"kind": "pods"}
    getting = attributes(
        user, request_info("GET", "/apis/apps/v1/namespaces/d/deployments/x/scale")
    )
    assert forbidden(getting, "no relationship").message == (
        'deployments.apps "x" is forbidden: User "system:anonymous" cannot get resource '
        '"deployments/scale" in API group "apps" in the namespace "d": no relationship'
    )
    nodes = attributes(user, request_info("GET", "/api/v1/nodes"))
    assert forbidden(nodes).message.endswith('in API group "" at the cluster scope')
    path = attributes(user, request_info("GET", "/api"))
    assert forbidden(path).message == 'forbidden: User "system:anonymous" cannot get path "/api"'


class _Allow:
    """Allows impersonating exactly the (resource, name) pairs given."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[Attributes] = []

    def authorize(self, attrs: Attributes) -> Decision:
        self.asked.append(attrs)
        key = (attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else ""), attrs.name)
        return Decision(ALLOW if key in self.allowed else NO_OPINION)

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return Rules()


ADMIN = UserInfo("admin", groups=("system:authenticated",))


def test_impersonating_a_user_and_groups_needs_each_right() -> None:
    authz = _Allow(("users", "alice"), ("groups", "dev"))
    headers = [("impersonate-user", "alice"), ("impersonate-group", "dev")]
    user = impersonate(authz, ADMIN, headers)
    assert (user.name, user.groups) == ("alice", ("dev", "system:authenticated"))
    with pytest.raises(ApiError) as info:
        impersonate(authz, ADMIN, [*headers, ("impersonate-group", "system:masters")])
    assert info.value.code == 403
    assert info.value.message == (
        'groups "system:masters" is forbidden: User "admin" cannot impersonate resource '
        '"groups" in API group "" at the cluster scope'
    )


def test_impersonating_a_service_account_checks_serviceaccounts_and_adds_its_groups() -> None:
    authz = _Allow(("serviceaccounts", "viewer"))
    user = impersonate(authz, ADMIN, [("impersonate-user", "system:serviceaccount:team:viewer")])
    assert user.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:team",
        "system:authenticated",
    )
    assert authz.asked[0].namespace == "team"


def test_impersonating_anonymous_gives_unauthenticated() -> None:
    authz = _Allow(("users", "system:anonymous"))
    user = impersonate(authz, ADMIN, [("impersonate-user", "system:anonymous")])
    assert user.groups == ("system:unauthenticated",)


def test_groups_without_a_user_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as info:
        impersonate(_Allow(), ADMIN, [("impersonate-group", "dev")])
    assert info.value.code == 400


def test_extras_and_uid_are_checked_under_authentication_k8s_io() -> None:
    authz = _Allow(("users", "bob"), ("uids", "42"), ("userextras/scopes", "view"))
    user = impersonate(
        authz,
        ADMIN,
        [
            ("impersonate-user", "bob"),
            ("impersonate-uid", "42"),
            ("impersonate-extra-scopes", "view"),
        ],
    )
    assert (user.uid, dict(user.extra)) == ("42", {"scopes": ("view",)})
    assert {a.api_group for a in authz.asked[1:]} == {"authentication.k8s.io"}
