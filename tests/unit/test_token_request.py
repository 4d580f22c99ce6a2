"""The TokenRequest subresource (runtime.auth.tokenrequest.create_token) against a real
ObjectAPI on a temporary Store: defaults, kube-apiserver's validation messages, bound
objects, and the extended token the admission plugin's volume gets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubemodel import schema
from kubemodel.errors import ApiError
from runtime.api.objects import ObjectAPI
from runtime.api.registry import Registry
from runtime.api.store import Store
from runtime.auth.serviceaccount import ISSUER, ServiceAccountAuthenticator, TokenIssuer
from runtime.auth.tokenrequest import TokenRequestOptions, create_token
from runtime.auth.user import UserInfo
from tests.unit.test_serviceaccount_tokens import Clock, account, create, payload, pod, uid

Obj = dict[str, Any]
ADMIN = UserInfo("admin", groups=("system:masters",))


def run(tmp_path: Path, body: Callable[[ObjectAPI, TokenIssuer], Awaitable[None]]) -> None:
    async def go() -> None:
        store = Store(tmp_path / "state.db")
        await store.open()
        api = ObjectAPI(store, Registry(), schema.builtin())
        await api.bootstrap()
        try:
            await body(api, TokenIssuer(tmp_path / "state", clock=Clock()))
        finally:
            await store.close()

    asyncio.run(go())


def request(**spec: Any) -> Obj:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


async def refused(api: ObjectAPI, issuer: TokenIssuer, body: Any, name: str = "robot") -> ApiError:
    with pytest.raises(ApiError) as err:
        await create_token(api, issuer, "default", name, body, ADMIN)
    return err.value


def test_a_token_request_gets_kubes_defaults_and_a_working_token(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, issuer: TokenIssuer) -> None:
        sa = await create(api, "serviceaccounts", account())
        out = await create_token(api, issuer, "default", "robot", request(), ADMIN)
        assert out["kind"] == "TokenRequest"
        assert out["apiVersion"] == "authentication.k8s.io/v1"
        assert out["metadata"] == {
            "name": "robot",
            "namespace": "default",
            "uid": uid(sa),
            "creationTimestamp": "2027-01-15T08:00:00Z",
        }
        assert out["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600}
        assert out["status"]["expirationTimestamp"] == "2027-01-15T09:00:00Z"
        claims = payload(out["status"]["token"])
        assert claims["exp"] - claims["iat"] == 3600 and claims["aud"] == [ISSUER]
        user = ServiceAccountAuthenticator(api.store, issuer).authenticate(out["status"]["token"])
        assert user is not None and user.name == "system:serviceaccount:default:robot"

    run(tmp_path, body)


def test_expiration_outside_ten_minutes_to_two_to_the_32_seconds_is_invalid(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI, issuer: TokenIssuer) -> None:
        await create(api, "serviceaccounts", account())
        short = await refused(api, issuer, request(expirationSeconds=599))
        assert (short.code, short.reason) == (422, "Invalid")
        assert short.message == (
            'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
            "Invalid value: 599: may not specify a duration less than 10 minutes"
        )
        long = await refused(api, issuer, request(expirationSeconds=(1 << 32) + 1))
        assert long.message.endswith("may not specify a duration larger than 2^32 seconds")
        ok = await create_token(
            api, issuer, "default", "robot", request(expirationSeconds=600), ADMIN
        )
        assert ok["spec"]["expirationSeconds"] == 600

    run(tmp_path, body)


def test_a_missing_service_account_or_mismatched_metadata_is_refused(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, issuer: TokenIssuer) -> None:
        missing = await refused(api, issuer, request())
        assert (missing.code, missing.message) == (404, 'serviceaccounts "robot" not found')
        await create(api, "serviceaccounts", account())
        wrong_name = await refused(api, issuer, {**request(), "metadata": {"name": "other"}})
        assert wrong_name.code == 422
        assert wrong_name.message == (
            'TokenRequest.authentication.k8s.io "robot" is invalid: metadata.name: Invalid '
            'value: "other": must match the service account name if specified'
        )
        wrong_uid = await refused(api, issuer, {**request(), "metadata": {"uid": "nope"}})
        assert wrong_uid.code == 409
        assert "the UID in the token request (nope) does not match" in wrong_uid.message

    run(tmp_path, body)


def test_bound_object_references_are_checked_as_kube_checks_them(tmp_path: Path) -> None:
    async def body(api: ObjectAPI, issuer: TokenIssuer) -> None:
        await create(api, "serviceaccounts", account())
        await create(api, "serviceaccounts", account("other"))
        p = await create(api, "pods", pod("web"))
        await create(api, "pods", pod("theirs", sa="other"))

        def bound(kind: str, name: str, uid_: str = "", api_version: str = "v1") -> Obj:
            ref = {"kind": kind, "apiVersion": api_version, "name": name, "uid": uid_}
            return request(boundObjectRef=ref)

        gone = await refused(api, issuer, bound("Pod", "ghost"))
        assert (gone.code, gone.message) == (404, 'pods "ghost" not found')
        other = await refused(api, issuer, bound("Pod", "theirs"))
        assert (other.code, other.message) == (
            400,
            'cannot bind token for serviceaccount "robot" to pod running with different '
            "serviceaccount name.",
        )
        stale = await refused(api, issuer, bound("Pod", "web", "old-uid"))
        assert stale.code == 409
        assert stale.message == (
            'Operation cannot be fulfilled on Pod "web": the UID in the bound object reference '
            "(old-uid) does not match the UID in record. The object might have been deleted "
            "and then recreated"
        )
        kind = await refused(api, issuer, bound("Deployment", "web", api_version="apps/v1"))
        assert (kind.code, kind.message) == (
            400,
            "cannot bind token to object of type apps/v1, Kind=Deployment",
        )
        ok = await create_token(api, issuer, "default", "robot", bound("Pod", "web", uid(p)), ADMIN)
        assert ok["spec"]["boundObjectRef"]["name"] == "web"
        assert payload(ok["status"]["token"])["kubernetes.io"]["pod"] == {
            "name": "web",
            "uid": uid(p),
        }
        secretless = await refused(api, issuer, bound("Secret", "nope"))
        assert secretless.message == 'secrets "nope" not found'

    run(tmp_path, body)


def test_the_admission_volume_token_is_extended_with_warnafter_and_the_maximum_applies(
    tmp_path: Path,
) -> None:
    async def body(api: ObjectAPI, issuer: TokenIssuer) -> None:
        await create(api, "serviceaccounts", account())
        p = await create(api, "pods", pod("web"))
        ref = {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid(p)}
        out = await create_token(
            api,
            issuer,
            "default",
            "robot",
            request(expirationSeconds=3607, boundObjectRef=ref),
            ADMIN,
        )
        claims = payload(out["status"]["token"])
        assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
        assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
        assert out["status"]["expirationTimestamp"] == "2027-01-15T09:00:07Z"
        # Other audiences: not extended.
        out = await create_token(
            api,
            issuer,
            "default",
            "robot",
            request(expirationSeconds=3607, boundObjectRef=ref, audiences=["vault"]),
            ADMIN,
        )
        assert "warnafter" not in payload(out["status"]["token"])["kubernetes.io"]
        warnings: list[str] = []
        out = await create_token(
            api,
            issuer,
            "default",
            "robot",
            request(expirationSeconds=7200),
            ADMIN,
            options=TokenRequestOptions(max_expiration_seconds=3600),
            warnings=warnings,
        )
        assert out["spec"]["expirationSeconds"] == 3600
        assert warnings == ["requested expiration of 7200 seconds shortened to 3600 seconds"]

    run(tmp_path, body)
