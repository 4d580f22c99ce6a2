"""An asyncio Kubernetes REST client: kubeconfig, TLS, bearer tokens, basic auth, client
certificates and exec credential plugins (EKS, GKE, AKS; see :mod:`kubeclient.auth`),
JSON requests, typed errors, and streaming watches.

Who calls it: the built-in cluster's components (kubelets, scheduler, controllers),
which reach the API server over HTTPS exactly as they would a real cluster, and the
reconciler. It knows nothing of either: paths are built from an apiVersion, a resource
plural, a namespace and a name.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from multidict import CIMultiDict

from kubeclient.auth import (
    Credential,
    CredentialError,
    ExecProvider,
    auth_provider_refusal,
    exec_cluster_info,
    parse_exec,
)

JSON_CT = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class KubeError(Exception):
    """A failed API call, with the server's ``Status`` when there was one."""

    def __init__(
        self, status: int, reason: str, message: str, body: Mapping[str, Any] | None = None
    ):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = dict(body or {})

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling, server errors and lost connections are worth a retry."""
        return self.status in (0, 409, 429, 500, 502, 503, 504) and self.reason != "AlreadyExists"

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason == "Conflict"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"


class CredentialsUnavailable(KubeError):
    """The exec plugin could not give a credential (missing, failed, bad output);
    status 401, and ``retryable`` when the plugin itself failed or timed out."""

    def __init__(self, error: CredentialError) -> None:
        super().__init__(401, "CredentialsUnavailable", error.message)
        self._retryable = error.retryable

    @property
    def retryable(self) -> bool:
        return self._retryable


@dataclass
class ClusterConfig:
    """Where a cluster is and how to authenticate to it (one kubeconfig context).

    At most one of: ``token``, ``username``/``password``, a client certificate, or
    ``exec_provider`` (a plugin that gives a token and/or a client certificate). Secrets
    are left out of the repr.
    """

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str = field(default="", repr=False)
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = field(default=None, repr=False)
    namespace: str = "default"
    user_agent: str = "gitops-cluster"
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    tls_server_name: str = ""
    proxy_url: str = ""
    exec_provider: ExecProvider | None = None
    impersonate: str = ""
    """Send every request as this user (``Impersonate-User``; kubeconfig ``as``), e.g.
    ``system:serviceaccount:ns:name``: the cluster then checks that user's rights."""
    impersonate_groups: tuple[str, ...] = ()
    """``Impersonate-Group`` headers (kubeconfig ``as-groups``)."""

    def impersonation_headers(self) -> list[tuple[str, str]]:
        if not self.impersonate:
            return []
        return [("Impersonate-User", self.impersonate)] + [
            ("Impersonate-Group", group) for group in self.impersonate_groups
        ]

    def ssl_context(self, credential: Credential | None = None) -> ssl.SSLContext | bool:
        """TLS for the server; a client certificate from ``credential`` (an exec
        plugin's) takes the place of the configured one."""
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        pair = credential.cert_pair if credential is not None else None
        if pair is None and self.client_cert_data and self.client_key_data:
            pair = (self.client_cert_data, self.client_key_data)
        if pair is not None:
            with tempfile.TemporaryDirectory() as tmp:
                cert = Path(tmp) / "client.crt"
                key = Path(tmp) / "client.key"
                cert.write_bytes(pair[0])
                key.touch(0o600)
                key.write_bytes(pair[1])
                ctx.load_cert_chain(str(cert), str(key))
        return ctx


def _file_or_data(
    entry: Mapping[str, Any], data_key: str, file_key: str, base: Path
) -> bytes | None:
    if entry.get(data_key):
        return base64.b64decode(str(entry[data_key]))
    if entry.get(file_key):
        path = Path(str(entry[file_key]))
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def load_kubeconfig(path: Path, context: str | None = None) -> ClusterConfig:
    """Read one context of a kubeconfig file: the cluster (CA, ``insecure-skip-tls-verify``,
    ``tls-server-name``, ``proxy-url``) and the user (``token``/``tokenFile``, basic auth,
    client certificate, or an ``exec`` plugin). Raises ``ValueError`` for what cannot work,
    such as a removed ``auth-provider``."""
    doc = yaml.safe_load(path.read_text()) or {}
    name = context or doc.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    if name not in contexts:
        raise ValueError(
            f"{path}: context {name!r} not found (have: {', '.join(sorted(contexts))})"
        )
    ctx = contexts[name]
    clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None:
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} of context {name!r} not found")
    user = users.get(ctx.get("user"), {})
    where = f"{path}: user {ctx.get('user')!r}"
    if user.get("auth-provider"):
        raise ValueError(auth_provider_refusal(where, user["auth-provider"]))
    base = path.parent
    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token = (base / str(user["tokenFile"])).read_text().strip()
    username, password = str(user.get("username") or ""), str(user.get("password") or "")
    if token and (username or password):
        raise ValueError(f"{where}: has both a token and a username/password; keep one")
    cert = _file_or_data(user, "client-certificate-data", "client-certificate", base)
    key = _file_or_data(user, "client-key-data", "client-key", base)
    if bool(cert) != bool(key):
        raise ValueError(f"{where}: a client certificate needs its key, and a key its certificate")
    server = str(cluster["server"]).rstrip("/")
    ca_data = _file_or_data(cluster, "certificate-authority-data", "certificate-authority", base)
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    tls_server_name = str(cluster.get("tls-server-name") or "")
    proxy_url = str(cluster.get("proxy-url") or "")
    if proxy_url and not proxy_url.startswith(("http://", "https://")):
        raise ValueError(
            f"{path}: cluster {ctx.get('cluster')!r}: proxy-url {proxy_url!r} is not "
            "supported (only http:// and https:// proxies)"
        )
    provider = None
    # As client-go: credentials written in the kubeconfig win over the plugin.
    if user.get("exec") and not (token or username or cert):
        info = exec_cluster_info(
            server=server,
            ca_data=ca_data,
            insecure=insecure,
            tls_server_name=tls_server_name,
            proxy_url=proxy_url,
            cluster=cluster,
        )
        provider = ExecProvider(parse_exec(user["exec"], where=where, base=base, cluster_info=info))
    return ClusterConfig(
        server=server,
        ca_data=ca_data,
        insecure=insecure,
        token=token,
        client_cert_data=cert,
        client_key_data=key,
        namespace=str(ctx.get("namespace") or "default"),
        username=username,
        password=password,
        tls_server_name=tls_server_name,
        proxy_url=proxy_url,
        exec_provider=provider,
        impersonate=str(user.get("as") or ""),
        impersonate_groups=tuple(str(g) for g in user.get("as-groups") or ()),
    )


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/namespaces/ns/pods/x/status`` and friends."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


class Client:
    """One connection pool to one cluster. Use as ``async with Client(config) as c``.

    With an exec plugin (``config.exec_provider``) each request carries the plugin's
    current token; the connection pool is made after the first credential (whose client
    certificate it presents) and made anew, as client-go does, when the plugin hands out
    another certificate. A 401 makes the plugin run again and the request is sent once more.
    """

    def __init__(
        self, config: ClusterConfig, *, connections: int = 16, timeout: float = 30.0
    ) -> None:
        self.config = config
        self._connections = connections
        self._timeout = timeout
        self.requests = 0
        """Calls made through :meth:`request` (for benchmarks and metrics)."""
        self._open = False
        self._session: aiohttp.ClientSession | None = None
        self._session_cert: tuple[bytes, bytes] | None = None

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Ready the client; with an exec plugin the pool waits for the first request."""
        self._open = True
        if self._session is None and self.config.exec_provider is None:
            self._session = self._new_session(None)

    def _new_session(self, credential: Credential | None) -> aiohttp.ClientSession:
        headers: CIMultiDict[str] = CIMultiDict(
            {"User-Agent": self.config.user_agent, "Accept": JSON_CT, **self.config.extra_headers}
        )
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        elif self.config.username or self.config.password:
            pair = f"{self.config.username}:{self.config.password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        for name, value in self.config.impersonation_headers():
            headers.add(name, value)
        connector = aiohttp.TCPConnector(
            limit=self._connections, ssl=self.config.ssl_context(credential)
        )
        self._session_cert = credential.cert_pair if credential is not None else None
        return aiohttp.ClientSession(
            base_url=self.config.server,
            connector=connector,
            headers=headers,
            proxy=self.config.proxy_url or None,
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        self._open = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The current connection pool (with an exec plugin: none before the first request)."""
        if self._session is None:
            raise RuntimeError("the client is not open")
        return self._session

    async def _prepare(
        self,
    ) -> tuple[aiohttp.ClientSession, dict[str, str], Credential | None]:
        """The session to send on, per-request auth headers, and the credential used."""
        if not self._open:
            raise RuntimeError("the client is not open")
        provider = self.config.exec_provider
        if provider is None:
            return self.session, {}, None
        try:
            credential = await provider.credential()
        except CredentialError as exc:
            raise CredentialsUnavailable(exc) from None
        if self._session is None or credential.cert_pair != self._session_cert:
            old, self._session = self._session, self._new_session(credential)
            if old is not None:  # a new client certificate: drop the old connections
                await old.close()
        headers = {"Authorization": f"Bearer {credential.token}"} if credential.token else {}
        return self._session, headers, credential

    async def _refresh(self, rejected: Credential) -> None:
        provider = self.config.exec_provider
        if provider is None:
            return
        try:
            await provider.refresh(rejected)
        except CredentialError as exc:
            raise CredentialsUnavailable(exc) from None

    @asynccontextmanager
    async def _response(
        self,
        method: str,
        path: str,
        *,
        timeout: aiohttp.ClientTimeout,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request; after a 401 to an exec plugin's credential, get a new
        credential and send it once more."""
        for attempt in (1, 2):
            session, auth, credential = await self._prepare()
            async with session.request(
                method,
                path,
                params=params,
                data=data,
                headers={**(headers or {}), **auth},
                timeout=timeout,
                server_hostname=self.config.tls_server_name or None,
            ) as resp:
                if credential is None or resp.status != 401 or attempt == 2:
                    yield resp
                    return
            await self._refresh(credential)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON_CT,
        timeout: float | None = None,
    ) -> Any:
        """One call; returns the decoded JSON body, raises :class:`KubeError`."""
        self.requests += 1
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self._response(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return orjson.loads(raw) if raw else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "ConnectionFailed", f"{method} {path}: {_describe(exc)}") from exc

    async def get_raw(
        self, path: str, params: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> bytes:
        """GET a non-JSON body (e.g. ``pods/{name}/log``)."""
        try:
            async with self._response(
                "GET",
                path,
                params=params,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return raw
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "ConnectionFailed", f"GET {path}: {_describe(exc)}") from exc

    # --- conveniences -------------------------------------------------------------
    async def get(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "GET", resource_path(api_version, plural, namespace, name, subresource)
        )
        return out

    async def list(
        self, api_version: str, plural: str, namespace: str | None = None, **params: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "GET", resource_path(api_version, plural, namespace), params=params
        )
        return out

    async def create(
        self,
        api_version: str,
        plural: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        **params: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "POST", resource_path(api_version, plural, namespace), params=params, body=body
        )
        return out

    async def replace(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
        **params: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "PUT",
            resource_path(api_version, plural, namespace, name, subresource),
            params=params,
            body=body,
        )
        return out

    async def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: Any,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        **params: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "PATCH",
            resource_path(api_version, plural, namespace, name, subresource),
            params=params,
            body=body,
            content_type=content_type,
        )
        return out

    async def delete(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        body: Mapping[str, Any] | None = None,
        **params: str,
    ) -> Any:
        return await self.request(
            "DELETE", resource_path(api_version, plural, namespace, name), params=params, body=body
        )

    async def watch(
        self, api_version: str, plural: str, namespace: str | None = None, **params: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream watch events (``{"type": ..., "object": ...}``) until the server ends."""
        query = {"watch": "true", **params}
        path = resource_path(api_version, plural, namespace)
        try:
            async with self._response(
                "GET", path, params=query, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
            ) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.read())
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield orjson.loads(line)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "ConnectionFailed", f"watch {path}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    """A connection failure in words (aiohttp's reprs show internal key objects)."""
    text = str(exc).strip()
    return text or type(exc).__name__


def _error(status: int, raw: bytes) -> KubeError:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return KubeError(status, str(body.get("reason", "")), str(body.get("message", "")), body)
    return KubeError(status, "", raw.decode(errors="replace")[:500])
