"""Service account tokens: the signing key, the JWTs the API server issues, and the
authenticator that turns one back into a requester (kube-apiserver's
``pkg/serviceaccount``: ``claims.go``, ``jwt.go``).

Who calls it: :mod:`runtime.auth.tokenrequest` issues tokens through
:class:`TokenIssuer` (``POST .../serviceaccounts/{name}/token``, which the kubelet calls
for every projected ``serviceAccountToken`` volume); the API server's authentication
chain asks :class:`ServiceAccountAuthenticator` about every bearer token (and
TokenReview asks it too).

Kubernetes semantics followed:

* one ES256 key, ``<state_dir>/service-account.key`` (PKCS#8 PEM, 0600), made on first
  use and reused after, so tokens survive restarts; the JWS header carries
  ``kid`` = base64url(SHA-256(DER public key)) as kube-apiserver's does;
* the issuer (and the default API audience) is
  ``https://kubernetes.default.svc.cluster.local``;
* claims: ``iss``, ``sub`` (``system:serviceaccount:<ns>:<name>``), ``aud``, ``exp``,
  ``iat``, ``nbf``, ``jti`` (a UUID) and the private ``kubernetes.io`` claim with
  ``namespace``, ``serviceaccount{name,uid}``, one of ``pod`` / ``secret`` / ``node``
  (a pod-bound token also names the pod's node) and ``warnafter`` for extended tokens;
* validation: the token must carry our issuer, be signed by our key, carry an audience
  the caller accepts (the API audiences by default), be inside its ``nbf``..``exp``
  window (60 s leeway, as go-jose's), and its ServiceAccount must still exist with the
  same UID; a bound Secret, Pod or (node-bound) Node must still exist with the same UID
  and not have been deleted more than 60 s ago;
* the user: ``system:serviceaccount:<ns>:<name>``, uid the ServiceAccount's, groups
  ``system:serviceaccounts`` and ``system:serviceaccounts:<ns>`` (``system:authenticated``
  is the caller's to add), extra ``authentication.kubernetes.io/pod-name``, ``pod-uid``,
  ``node-name``, ``node-uid`` and ``credential-id`` (``JTI=<jti>``).

The authenticator's API: :meth:`ServiceAccountAuthenticator.authenticate` returns
``None`` for a token that is not a JWT of our issuer (another authenticator may know
it), a :class:`~runtime.auth.user.UserInfo` for a valid one, and raises
:class:`AuthenticationFailed` (with the reason kube-apiserver would log or put in a
TokenReview's ``status.error``) for one of ours that fails validation: the request is
then unauthenticated (401), and no other authenticator should be asked.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubemodel.files import FILE_MODE, private_dir
from runtime.api.store import Store
from runtime.auth.user import SERVICE_ACCOUNTS, UserInfo, service_account_user_name

#: The issuer of this cluster's tokens (kube-apiserver's ``--service-account-issuer``).
ISSUER = "https://kubernetes.default.svc.cluster.local"
#: The audiences the API server accepts (``--api-audiences``; defaults to the issuer).
API_AUDIENCES: tuple[str, ...] = (ISSUER,)
KEY_FILE = "service-account.key"
ALGORITHM = "ES256"
#: go-jose's ``jwt.DefaultLeeway``: clock skew allowed on exp/nbf/iat and deletions.
LEEWAY_SECONDS = 60
#: The expiration the ServiceAccount admission plugin asks for (1 h 7 s); tokens asked
#: with it for a pod and the API audiences are extended (kube's safe rollout).
WARN_ONLY_EXPIRATION_SECONDS = 60 * 60 + 7
#: How long such extended tokens really live (kube's ExpirationExtensionSeconds).
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60

PRIVATE_CLAIM = "kubernetes.io"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

SERVICE_ACCOUNTS_KEY = "core/serviceaccounts"
PODS_KEY = "core/pods"
SECRETS_KEY = "core/secrets"
NODES_KEY = "core/nodes"

BOUND_KINDS = ("Pod", "Secret", "Node")


class ServiceAccountKeyError(Exception):
    """The signing key file exists but cannot be used (not a P-256 EC private key)."""

    retryable = False


class AuthenticationFailed(Exception):
    """A token of ours that must not be accepted; ``reason`` says why (as kube-apiserver
    words it). The request is unauthenticated; no other authenticator should try."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BoundObject:
    """The object a token is bound to (TokenRequest's ``boundObjectRef``)."""

    kind: str  # "Pod" | "Secret" | "Node"
    name: str
    uid: str


@dataclass(frozen=True)
class Authenticated:
    """A valid token: who it speaks for and the audiences it was accepted for."""

    user: UserInfo
    audiences: tuple[str, ...]
    claims: Mapping[str, Any] = field(default_factory=dict)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """kube-apiserver's key ID: base64url (no padding) of SHA-256 of the DER
    SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key at ``path`` (made 0600 if wider), created on first use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        private_dir(path.parent)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic, and never replaces a key someone else made
            except FileExistsError:
                return load_or_create_key(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return key
    if path.stat().st_mode & 0o077:
        path.chmod(FILE_MODE)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ServiceAccountKeyError(
            f"{path}: not a PEM private key ({exc}); move it away to have a new key made "
            "(tokens issued with the old key stop working)"
        ) from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise ServiceAccountKeyError(
            f"{path}: the service account signing key must be an EC P-256 key (ES256)"
        )
    return loaded


def _go_strings(values: Sequence[str]) -> str:
    """A string slice as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _rfc3339_seconds(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class TokenIssuer:
    """Signs service account tokens with the cluster's key (kube-apiserver's
    ``JWTTokenGenerator`` + ``Claims``). ``clock`` returns Unix seconds (tests)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        issuer: str = ISSUER,
        api_audiences: Sequence[str] = API_AUDIENCES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_path = Path(state_dir) / KEY_FILE
        self.issuer = issuer
        self.api_audiences: tuple[str, ...] = tuple(api_audiences)
        self.clock = clock
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._kid = ""

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = load_or_create_key(self.key_path)
            self._kid = key_id(self._key.public_key())
        return self._key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()

    @property
    def kid(self) -> str:
        _ = self.key
        return self._kid

    def issue(
        self,
        namespace: str,
        sa_name: str,
        sa_uid: str,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound: BoundObject | None = None,
        node: tuple[str, str] | None = None,
        *,
        warn_after_seconds: int = 0,
    ) -> tuple[str, dt.datetime]:
        """A signed token and its expiry (``exp``). ``node`` is the (name, uid) of the
        node a pod-bound token's pod runs on (uid may be "" when the Node is gone);
        for a node-bound token pass ``bound=BoundObject("Node", ...)``. A non-zero
        ``warn_after_seconds`` adds ``warnafter`` (an extended token)."""
        if bound is not None and bound.kind not in BOUND_KINDS:
            raise ValueError(f"cannot bind a token to a {bound.kind}")
        now = int(self.clock())
        expires = now + int(expiration_seconds)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": sa_name, "uid": sa_uid},
        }
        if bound is not None:
            ref = {"name": bound.name, "uid": bound.uid}
            if bound.kind == "Pod":
                private["pod"] = ref
                if node is not None:
                    private["node"] = _ref(*node)
            elif bound.kind == "Secret":
                private["secret"] = ref
            else:
                private["node"] = ref
        if warn_after_seconds:
            private["warnafter"] = now + int(warn_after_seconds)
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": expires,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            PRIVATE_CLAIM: private,
            "nbf": now,
            "sub": service_account_user_name(namespace, sa_name),
        }
        token = jwt.encode(
            claims, self.key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": None}
        )
        return token, dt.datetime.fromtimestamp(expires, dt.UTC)


def _ref(name: str, uid: str) -> dict[str, str]:
    out = {"name": name}
    if uid:
        out["uid"] = uid
    return out


class ServiceAccountAuthenticator:
    """Authenticates bearer tokens the :class:`TokenIssuer` signed, against the live
    objects in ``store`` (kube-apiserver's ``JWTTokenAuthenticator`` + validator)."""

    def __init__(self, store: Store, issuer: TokenIssuer) -> None:
        self.store = store
        self.issuer = issuer

    def authenticate(self, token: str) -> UserInfo | None:
        """The token's user; ``None`` when it is not a JWT of our issuer; raises
        :class:`AuthenticationFailed` for one of ours that is not valid."""
        result = self.review(token)
        return None if result is None else result.user

    def ours(self, token: str) -> bool:
        """Whether ``token`` is a compact JWT whose (unverified) ``iss`` is our issuer
        (kube's ``hasCorrectIssuer``): only those are ours to accept or refuse."""
        if token.lstrip().startswith("{"):
            return False
        parts = token.split(".")
        if len(parts) != 3:
            return False
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, binascii.Error):
            return False
        return isinstance(payload, dict) and payload.get("iss") == self.issuer.issuer

    def review(self, token: str, audiences: Sequence[str] | None = None) -> Authenticated | None:
        """As :meth:`authenticate`, for the ``audiences`` the caller accepts (a
        TokenReview's ``spec.audiences``; default: the API audiences), with the
        audiences the token was accepted for."""
        if not self.ours(token):
            return None
        claims = self._verified_claims(token)
        accepted = self._check_audiences(claims, audiences)
        now = self.issuer.clock()
        self._check_times(claims, now)
        user = self._validate(claims, now)
        return Authenticated(user, accepted, claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"malformed token: {exc}") from exc
        kid = header.get("kid")
        if kid and kid != self.issuer.kid:
            raise AuthenticationFailed("invalid signature, no keys found")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.issuer.public_key,
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,  # checked below against our clock, with leeway
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationFailed("invalid signature: the token was not signed by us") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"invalid token: {exc}") from exc
        if claims.get("iss") != self.issuer.issuer:
            raise AuthenticationFailed(f"token issuer {json.dumps(claims.get('iss'))} is invalid")
        return claims

    def _check_audiences(
        self, claims: Mapping[str, Any], requested: Sequence[str] | None
    ) -> tuple[str, ...]:
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else [str(a) for a in aud or []]
        if not token_auds:  # a legacy token: the API audiences are implied
            token_auds = list(self.issuer.api_audiences)
        wanted = list(requested) if requested else list(self.issuer.api_audiences)
        accepted = tuple(a for a in token_auds if a in wanted)
        if not accepted:
            raise AuthenticationFailed(
                f"token audiences {_go_strings(token_auds)} is invalid for the target "
                f"audiences {_go_strings(wanted)}"
            )
        return accepted

    @staticmethod
    def _check_times(claims: Mapping[str, Any], now: float) -> None:
        def number(name: str) -> float | None:
            value = claims.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthenticationFailed(
                    "service account token claims could not be validated due to unexpected "
                    "validation error"
                )
            return float(value)

        exp, nbf, iat = number("exp"), number("nbf"), number("iat")
        if exp is None:
            raise AuthenticationFailed("service account token has no expiry")
        if now - LEEWAY_SECONDS > exp:
            raise AuthenticationFailed("service account token has expired")
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise AuthenticationFailed("service account token is not valid yet")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise AuthenticationFailed("service account token is issued in the future")

    def _get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        entry = self.store.latest(key, namespace, name)
        return None if entry is None else entry.obj()

    def _validate(self, claims: Mapping[str, Any], now: float) -> UserInfo:
        private = claims.get(PRIVATE_CLAIM)
        if not isinstance(private, dict):
            raise AuthenticationFailed(
                "service account token claims could not be validated due to unexpected "
                "private claim"
            )
        namespace = str(private.get("namespace") or "")
        sa_ref = _claim_ref(private, "serviceaccount")
        if not namespace or sa_ref is None or not sa_ref[0]:
            raise AuthenticationFailed("service account token has no service account claims")
        deleted_before = now - LEEWAY_SECONDS

        def deleted(obj: Mapping[str, Any]) -> bool:
            when = _rfc3339_seconds((obj.get("metadata") or {}).get("deletionTimestamp"))
            return when is not None and when < deleted_before

        def uid_of(obj: Mapping[str, Any]) -> str:
            return str((obj.get("metadata") or {}).get("uid") or "")

        sa_name, sa_uid = sa_ref
        account = self._get(SERVICE_ACCOUNTS_KEY, namespace, sa_name)
        if account is None:
            raise AuthenticationFailed(f'serviceaccounts "{sa_name}" not found')
        if uid_of(account) != sa_uid:
            raise AuthenticationFailed(
                f"service account UID ({uid_of(account)}) does not match claim ({sa_uid})"
            )
        if deleted(account):
            raise AuthenticationFailed(f"service account {namespace}/{sa_name} has been deleted")

        def still_bound(key: str, ns: str, kind: str, ref: tuple[str, str]) -> None:
            """The object the token is bound to exists with the claimed UID, not
            deleted (kube's validator: gone or deleted → invalidated)."""
            invalidated = "service account token has been invalidated"
            obj = self._get(key, ns, ref[0])
            if obj is None:
                raise AuthenticationFailed(invalidated)
            if uid_of(obj) != ref[1]:
                raise AuthenticationFailed(
                    f"{kind} UID ({uid_of(obj)}) does not match service account {kind} ref "
                    f"claim ({ref[1]})"
                )
            if deleted(obj):
                raise AuthenticationFailed(invalidated)

        secret_ref = _claim_ref(private, "secret")
        if secret_ref is not None:
            still_bound(SECRETS_KEY, namespace, "secret", secret_ref)

        extra: dict[str, tuple[str, ...]] = {}
        pod_ref = _claim_ref(private, "pod")
        if pod_ref is not None:
            still_bound(PODS_KEY, namespace, "pod", pod_ref)
            extra[EXTRA_POD_NAME] = (pod_ref[0],)
            extra[EXTRA_POD_UID] = (pod_ref[1],)

        node_ref = _claim_ref(private, "node")
        if node_ref is not None:
            if pod_ref is None:  # bound to the Node itself: it must still be there
                still_bound(NODES_KEY, "", "node", node_ref)
            extra[EXTRA_NODE_NAME] = (node_ref[0],)
            if node_ref[1]:
                extra[EXTRA_NODE_UID] = (node_ref[1],)

        jti = claims.get("jti")
        if isinstance(jti, str) and jti:
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={jti}",)
        return UserInfo(
            service_account_user_name(namespace, sa_name),
            sa_uid,
            (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}"),
            extra,
        )


def _claim_ref(private: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    ref = private.get(name)
    if not isinstance(ref, dict):
        return None
    return str(ref.get("name") or ""), str(ref.get("uid") or "")
