"""The kubelet's service account token manager (Kubernetes' ``pkg/kubelet/token``):
tokens for projected ``serviceAccountToken`` volume sources, requested from the API
server bound to the pod and cached until they need refreshing.

Who calls it: :class:`runtime.kubelet.volumes.VolumeManager`, on setup and on every
refresh of a projected volume (the pod sync's periodic resync), and on teardown to
forget a pod's tokens.

Kubernetes semantics followed: the request is ``POST
/api/v1/namespaces/<ns>/serviceaccounts/<pod's serviceAccountName>/token`` with
``boundObjectRef {apiVersion: v1, kind: Pod, name, uid}``, the source's
``expirationSeconds`` and its ``audience`` (none: the API server's audiences); a cached
token is reused until 80 % of its TTL has passed or it is 24 h old (minus up to 10 s of
jitter); when a refresh fails the old token is kept while it is still valid; a first
request that fails is ``failed to fetch token: <the API server's message>`` and is worth
retrying (a ServiceAccount not created yet keeps the pod in ``ContainerCreating``).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from kubeclient.rest import Client, KubeError, resource_path

log = structlog.get_logger(__name__)

MAX_TTL_SECONDS = 24 * 60 * 60
MAX_JITTER_SECONDS = 10.0


class TokenError(Exception):
    """A token could not be had; ``message`` is the kubelet's words. Retryable unless
    said otherwise."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class TokenRequester(Protocol):
    """Sends a TokenRequest for ServiceAccount ``namespace/name``; returns the answer
    (with ``status.token`` and ``status.expirationTimestamp``)."""

    async def request_token(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


class ClientTokenRequester:
    """A :class:`TokenRequester` over the kubelet's API client. Raises
    :class:`TokenError` with the API server's message."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def request_token(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        path = resource_path("v1", "serviceaccounts", namespace, name, "token")
        try:
            out: dict[str, Any] = await self.client.request("POST", path, body=body)
        except KubeError as exc:
            raise TokenError(
                exc.message or str(exc),
                retryable=exc.retryable or exc.status in (401, 403, 404, 409, 429),
            ) from exc
        return out


@dataclass
class _Cached:
    token: str
    expires: float  # Unix seconds
    seconds: int  # the requested TTL
    pod_uid: str


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class TokenManager:
    """Tokens per (pod uid, volume, path), as the kubelet's token manager caches them.
    ``clock`` returns Unix seconds; ``jitter`` returns seconds to refresh early by."""

    def __init__(
        self,
        requester: TokenRequester,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = lambda: random.random() * MAX_JITTER_SECONDS,
    ) -> None:
        self.requester = requester
        self.clock = clock
        self.jitter = jitter
        self._cache: dict[tuple[str, ...], _Cached] = {}
        self.requests = 0  # TokenRequests sent (tests, metrics)

    async def token(
        self,
        pod: dict[str, Any] | Any,
        volume: str,
        path: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int = 3600,
    ) -> str:
        """The token for ``pod``'s projected source at ``volume``/``path``: cached, or
        requested anew when due. Raises :class:`TokenError`."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        namespace = str(meta.get("namespace") or "default")
        pod_name = str(meta.get("name") or "")
        pod_uid = str(meta.get("uid") or "")
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        key = (pod_uid, volume, path, account, ",".join(audiences), str(expiration_seconds))
        cached = self._cache.get(key)
        if cached is not None and not self._needs_refresh(cached):
            return cached.token
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": list(audiences),
                "expirationSeconds": int(expiration_seconds),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod_name,
                    "uid": pod_uid,
                },
            },
        }
        self.requests += 1
        try:
            answer = await self.requester.request_token(namespace, account, body)
            status = answer.get("status") or {}
            token = str(status.get("token") or "")
            expires = _timestamp(status.get("expirationTimestamp"))
            if not token or expires is None:
                raise TokenError("the API server answered a token request without a token")
        except TokenError as exc:
            if cached is None:
                raise TokenError(
                    f"failed to fetch token: {exc.message}", retryable=exc.retryable
                ) from exc
            if self.clock() > cached.expires:
                raise TokenError(
                    f"token {namespace}/{account} for pod {pod_name} expired and refresh "
                    f"failed: {exc.message}",
                    retryable=exc.retryable,
                ) from exc
            log.warning(
                "kubelet.token_refresh_failed",
                namespace=namespace,
                pod=pod_name,
                volume=volume,
                error=exc.message,
            )
            return cached.token
        self._cache[key] = _Cached(token, expires, int(expiration_seconds), pod_uid)
        return token

    def _needs_refresh(self, cached: _Cached) -> bool:
        """Older than 80 % of its TTL or than 24 h (kube's ``requiresRefresh``)."""
        now = self.clock()
        issued = cached.expires - cached.seconds
        jitter = self.jitter()
        if now > issued + MAX_TTL_SECONDS - jitter:
            return True
        return now > cached.expires - cached.seconds * 20 // 100 - jitter

    def forget(self, pod_uid: str) -> None:
        """Drop the pod's tokens (its volumes were torn down)."""
        for key in [k for k, v in self._cache.items() if v.pod_uid == pod_uid]:
            del self._cache[key]

    def cleanup(self) -> None:
        """Drop expired tokens."""
        now = self.clock()
        for key in [k for k, v in self._cache.items() if now > v.expires]:
            del self._cache[key]
