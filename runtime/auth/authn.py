"""Authentication: who sends a request (kube-apiserver's authenticator chain).

Who calls it: :mod:`runtime.server.app` for every HTTP and WebSocket request but the
health paths. The chain, in kube-apiserver's order:

1. an x509 client certificate the TLS handshake verified against the cluster CA
   (user = CN, groups = each O; ``--client-ca-file``);
2. a bearer token: the cluster's admin token (``<state>/token``: user ``gitops-admin``
   in ``system:masters``), then the operator's static token file (``--token-auth-file``:
   CSV ``token,user,uid[,"group1,group2"]``), then ServiceAccount tokens (signed JWTs,
   :mod:`runtime.auth.serviceaccount`);
3. no credentials at all: ``system:anonymous`` in ``system:unauthenticated`` (when
   anonymous requests are enabled, as kube-apiserver's default).

A presented credential that does not verify is a 401, never anonymous. Every
authenticated user also gets ``system:authenticated``.
"""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kubemodel import errors
from runtime.auth.user import ANONYMOUS, MASTERS, UserInfo, with_authenticated

ADMIN_USER = "gitops-admin"


class TokenFileError(ValueError):
    """The static token file is malformed (names the line)."""


@dataclass(frozen=True)
class PeerCertificate:
    """The verified client certificate's subject."""

    common_name: str
    organizations: tuple[str, ...]


def load_token_file(path: Path) -> dict[str, UserInfo]:
    """kube-apiserver's ``--token-auth-file``: one ``token,user,uid[,groups]`` per
    line, groups comma-separated inside quotes; lines starting with ``#`` and blank
    lines skipped."""
    out: dict[str, UserInfo] = {}
    text = path.read_text()
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(
                f"{path}: line {number}: want token,user,uid[,groups], got {len(row)} fields"
            )
        token, name, uid = (c.strip() for c in row[:3])
        if not token or not name:
            raise TokenFileError(f"{path}: line {number}: the token and user must not be empty")
        if token in out:
            raise TokenFileError(f"{path}: line {number}: duplicate token")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        out[token] = UserInfo(name, uid, groups)
    return out


#: A token authenticator: the user, None when the token is not its kind, or raises
#: :class:`InvalidToken` when it is its kind but does not verify.
TokenAuthenticator = Callable[[str], "UserInfo | None"]


class InvalidToken(Exception):
    """A token an authenticator recognised but refused (logged, answered 401)."""


@dataclass
class AuthnOptions:
    admin_token: str = ""
    static_tokens: Mapping[str, UserInfo] | None = None
    anonymous: bool = True


class Authenticator:
    """The chain; :meth:`authenticate` returns the user or raises 401."""

    def __init__(
        self, options: AuthnOptions, token_authenticators: tuple[TokenAuthenticator, ...] = ()
    ) -> None:
        self.options = options
        self._admin = options.admin_token.encode()
        self._static = dict(options.static_tokens or {})
        self._token_authenticators = token_authenticators

    def authenticate(self, authorization: str, peer: PeerCertificate | None) -> UserInfo:
        if peer is not None and peer.common_name:
            return with_authenticated(UserInfo(peer.common_name, groups=peer.organizations))
        if authorization:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise errors.unauthorized()
            user = self._token(token)
            if user is None:
                raise errors.unauthorized()
            return with_authenticated(user)
        if self.options.anonymous:
            return ANONYMOUS
        raise errors.unauthorized()

    def authenticate_token(self, token: str) -> UserInfo | None:
        """TokenReview: the user a bearer token stands for, None when it does not verify."""
        user = self._token(token)
        return with_authenticated(user) if user is not None else None

    def _token(self, token: str) -> UserInfo | None:
        raw = token.encode()
        if self._admin and hmac.compare_digest(raw, self._admin):
            return UserInfo(ADMIN_USER, ADMIN_USER, (MASTERS,))
        # Compared one by one in constant time: no timing oracle on the table's keys.
        found: UserInfo | None = None
        for candidate, user in self._static.items():
            if hmac.compare_digest(raw, candidate.encode()):
                found = user
        if found is not None:
            return found
        for authenticate in self._token_authenticators:
            try:
                found = authenticate(token)
            except InvalidToken:
                return None
            if found is not None:
                return found
        return None
