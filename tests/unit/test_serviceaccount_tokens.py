"""Service account tokens (runtime.auth.serviceaccount): the signing key on disk, the
claims kube-apiserver puts in a token, and the authenticator's verdicts against live
objects in a real Store (expired, wrong audience, forged, ServiceAccount or bound
object gone)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from kubemodel import schema
from runtime.api.objects import ObjectAPI, WriteOptions
from runtime.api.registry import Registry, ResourceInfo
from runtime.api.store import Store
from runtime.auth.serviceaccount import (
    ISSUER,
    KEY_FILE,
    AuthenticationFailed,
    BoundObject,
    ServiceAccountAuthenticator,
    TokenIssuer,
    key_id,
)
from runtime.auth.user import UserInfo

Obj = dict[str, Any]
WRITE = WriteOptions(field_manager="tests")
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def run(tmp_path: Path, body: Callable[[ObjectAPI], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin())
        await api.bootstrap()
        try:
            await body(api)
        finally:
            await store.close()

    asyncio.run(go())


def info(api: ObjectAPI, plural: str) -> ResourceInfo:
    found = api.registry.get("", "v1", plural)
    assert found is not None
    return found


async def create(api: ObjectAPI, plural: str, obj: Obj, namespace: str = "default") -> Obj:
    result = await api.create(info(api, plural), namespace, obj, WRITE)
    return result.obj


def account(name: str = "robot") -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def pod(name: str = "web", sa: str = "robot") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]},
    }


def uid(obj: Obj) -> str:
    return str(obj["metadata"]["uid"])


def payload(token: str) -> Obj:
    part = token.split(".")[1]
    decoded: Obj = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def header(token: str) -> Obj:
    part = token.split(".")[0]
    decoded: Obj = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def refused(auth: ServiceAccountAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as err:
        auth.authenticate(token)
    return err.value.reason


# --- the key --------------------------------------------------------------------------


def test_the_signing_key_is_made_once_private_and_reused_across_issuers(tmp_path: Path) -> None:
    first = TokenIssuer(tmp_path)
    token, _ = first.issue("default", "robot", "u1", [ISSUER], 3600)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TokenIssuer(tmp_path)
    assert again.kid == first.kid == key_id(first.public_key)
    assert header(token) == {"alg": "ES256", "kid": first.kid}
    jwt.decode(token, again.public_key, algorithms=["ES256"], audience=ISSUER)


def test_a_key_file_that_is_not_an_ec_key_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(Exception, match="move it away"):
        _ = TokenIssuer(tmp_path).key


# --- claims ---------------------------------------------------------------------------


def test_a_pod_bound_token_carries_kubernetes_claims(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path, clock=Clock())
    token, expires = issuer.issue(
        "team",
        "robot",
        "sa-uid",
        ["https://kubernetes.default.svc.cluster.local", "vault"],
        3607,
        BoundObject("Pod", "web", "pod-uid"),
        ("node-0", "node-uid"),
        warn_after_seconds=3607,
    )
    claims = payload(token)
    jti = claims.pop("jti")
    assert len(jti) == 36
    assert claims == {
        "aud": ["https://kubernetes.default.svc.cluster.local", "vault"],
        "exp": int(NOW) + 3607,
        "iat": int(NOW),
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": "team",
            "serviceaccount": {"name": "robot", "uid": "sa-uid"},
            "pod": {"name": "web", "uid": "pod-uid"},
            "node": {"name": "node-0", "uid": "node-uid"},
            "warnafter": int(NOW) + 3607,
        },
        "nbf": int(NOW),
        "sub": "system:serviceaccount:team:robot",
    }
    assert expires.timestamp() == int(NOW) + 3607


def test_secret_and_node_bound_tokens_name_their_object(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path)
    token, _ = issuer.issue("ns", "sa", "u", [ISSUER], 600, BoundObject("Secret", "s", "su"))
    assert payload(token)["kubernetes.io"]["secret"] == {"name": "s", "uid": "su"}
    token, _ = issuer.issue("ns", "sa", "u", [ISSUER], 600, BoundObject("Node", "n", "nu"))
    private = payload(token)["kubernetes.io"]
    assert private["node"] == {"name": "n", "uid": "nu"} and "pod" not in private
    assert "warnafter" not in private


# --- authentication -------------------------------------------------------------------


def test_a_valid_pod_bound_token_authenticates_as_its_service_account(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        clock = Clock()
        issuer = TokenIssuer(tmp_path / "state", clock=clock)
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        p = await create(api, "pods", pod())
        token, _ = issuer.issue(
            "default",
            "robot",
            uid(sa),
            [ISSUER],
            3600,
            BoundObject("Pod", "web", uid(p)),
            ("node-0", "node-uid"),
        )
        jti = payload(token)["jti"]
        assert auth.authenticate(token) == UserInfo(
            "system:serviceaccount:default:robot",
            uid(sa),
            ("system:serviceaccounts", "system:serviceaccounts:default"),
            {
                "authentication.kubernetes.io/pod-name": ("web",),
                "authentication.kubernetes.io/pod-uid": (uid(p),),
                "authentication.kubernetes.io/node-name": ("node-0",),
                "authentication.kubernetes.io/node-uid": ("node-uid",),
                "authentication.kubernetes.io/credential-id": (f"JTI={jti}",),
            },
        )

    run(tmp_path, body)


def test_tokens_that_are_not_ours_are_left_to_other_authenticators(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        other = jwt.encode({"iss": "https://elsewhere", "sub": "x"}, "s" * 32, algorithm="HS256")
        for token in ("plain-bearer-token", "a.b.c", "{}.x.y", other, ""):
            assert auth.authenticate(token) is None

    run(tmp_path, body)


def test_expired_and_not_yet_valid_tokens_are_refused_after_a_minute_of_leeway(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        clock = Clock()
        issuer = TokenIssuer(tmp_path / "state", clock=clock)
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        token, _ = issuer.issue("default", "robot", uid(sa), [ISSUER], 600)
        clock.now = NOW + 600 + 60
        assert auth.authenticate(token) is not None
        clock.now = NOW + 600 + 61
        assert refused(auth, token) == "service account token has expired"
        clock.now = NOW - 61
        assert refused(auth, token) == "service account token is not valid yet"

    run(tmp_path, body)


def test_a_token_for_another_audience_is_refused_unless_that_audience_is_asked_for(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        token, _ = issuer.issue("default", "robot", uid(sa), ["vault"], 600)
        assert refused(auth, token) == (
            'token audiences ["vault"] is invalid for the target audiences '
            '["https://kubernetes.default.svc.cluster.local"]'
        )
        reviewed = auth.review(token, ["vault", "other"])
        assert reviewed is not None and reviewed.audiences == ("vault",)

    run(tmp_path, body)


def test_a_tampered_or_foreign_signed_token_is_refused(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        token, _ = issuer.issue("default", "robot", uid(sa), [ISSUER], 600)
        head, _, sig = token.split(".")
        claims = payload(token)
        claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        assert "signature" in refused(auth, f"{head}.{forged}.{sig}")
        # Signed by another key of the same kind (same claims, same kid header).
        stranger = TokenIssuer(tmp_path / "other")
        foreign = jwt.encode(
            payload(token), stranger.key, algorithm="ES256", headers={"kid": issuer.kid}
        )
        assert "signature" in refused(auth, foreign)
        # Another kid: no key of ours.
        other_kid = jwt.encode(
            payload(token), stranger.key, algorithm="ES256", headers={"kid": stranger.kid}
        )
        assert refused(auth, other_kid) == "invalid signature, no keys found"
        # alg=none is never accepted.
        unsigned = jwt.encode(payload(token), "", algorithm="none")
        assert refused(auth, unsigned).startswith("invalid token")

    run(tmp_path, body)


def test_a_deleted_or_recreated_service_account_invalidates_its_tokens(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        token, _ = issuer.issue("default", "robot", uid(sa), [ISSUER], 600)
        await api.delete(info(api, "serviceaccounts"), "default", "robot", None, WRITE)
        assert refused(auth, token) == 'serviceaccounts "robot" not found'
        again = await create(api, "serviceaccounts", account())
        assert refused(auth, token) == (
            f"service account UID ({uid(again)}) does not match claim ({uid(sa)})"
        )

    run(tmp_path, body)


def test_a_deleted_or_recreated_bound_pod_invalidates_its_tokens(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        p = await create(api, "pods", pod())
        token, _ = issuer.issue(
            "default", "robot", uid(sa), [ISSUER], 600, BoundObject("Pod", "web", uid(p))
        )
        assert auth.authenticate(token) is not None
        await api.delete(info(api, "pods"), "default", "web", None, WRITE)
        assert refused(auth, token) == "service account token has been invalidated"
        again = await create(api, "pods", pod())
        assert refused(auth, token) == (
            f"pod UID ({uid(again)}) does not match service account pod ref claim ({uid(p)})"
        )

    run(tmp_path, body)


def test_a_pod_deleted_more_than_a_minute_ago_invalidates_its_tokens(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        clock = Clock()
        clock.now = time.time()  # deletionTimestamp is the real time
        issuer = TokenIssuer(tmp_path / "state", clock=clock)
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        p = pod()
        p["metadata"]["finalizers"] = ["tests/hold"]
        p = await create(api, "pods", p)
        token, _ = issuer.issue(
            "default", "robot", uid(sa), [ISSUER], 3600, BoundObject("Pod", "web", uid(p))
        )
        await api.delete(info(api, "pods"), "default", "web", {"gracePeriodSeconds": 0}, WRITE)
        entry = api.store.latest(info(api, "pods").store_key, "default", "web")
        assert entry is not None
        deleted_at = entry.obj()["metadata"]["deletionTimestamp"]
        when = dt.datetime.fromisoformat(deleted_at).timestamp()
        clock.now = when + 30
        assert auth.authenticate(token) is not None
        clock.now = when + 61
        assert refused(auth, token) == "service account token has been invalidated"

    run(tmp_path, body)


def test_secret_and_node_bound_tokens_die_with_their_object(tmp_path: Path) -> None:
    async def body(api: ObjectAPI) -> None:
        issuer = TokenIssuer(tmp_path / "state")
        auth = ServiceAccountAuthenticator(api.store, issuer)
        sa = await create(api, "serviceaccounts", account())
        secret = await create(
            api, "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
        )
        node = await create(
            api, "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}, ""
        )
        by_secret, _ = issuer.issue(
            "default", "robot", uid(sa), [ISSUER], 600, BoundObject("Secret", "s", uid(secret))
        )
        by_node, _ = issuer.issue(
            "default", "robot", uid(sa), [ISSUER], 600, BoundObject("Node", "n1", uid(node))
        )
        user = auth.authenticate(by_node)
        assert user is not None
        assert user.extra["authentication.kubernetes.io/node-name"] == ("n1",)
        assert auth.authenticate(by_secret) is not None
        await api.delete(info(api, "secrets"), "default", "s", None, WRITE)
        await api.delete(info(api, "nodes"), "", "n1", None, WRITE)
        assert refused(auth, by_secret) == "service account token has been invalidated"
        assert refused(auth, by_node) == "service account token has been invalidated"

    run(tmp_path, body)
