"""An asyncio Kubernetes REST client: kubeconfig, TLS, bearer tokens and client
certificates, JSON requests, typed errors, and streaming watches.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

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


@dataclass
class ClusterConfig:
    """Where a cluster is and how to authenticate to it (one kubeconfig context)."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str = ""
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    namespace: str = "default"
    user_agent: str = "gitops-cluster"
    extra_headers: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        if self.client_cert_data and self.client_key_data:
            with tempfile.TemporaryDirectory() as tmp:
                cert = Path(tmp) / "client.crt"
                key = Path(tmp) / "client.key"
                cert.write_bytes(self.client_cert_data)
                key.write_bytes(self.client_key_data)
                key.chmod(0o600)
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
    """Read one context of a kubeconfig file (token, client certificate, CA)."""
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
    base = path.parent
    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token = (base / str(user["tokenFile"])).read_text().strip()
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_file_or_data(cluster, "certificate-authority-data", "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=token,
        client_cert_data=_file_or_data(user, "client-certificate-data", "client-certificate", base),
        client_key_data=_file_or_data(user, "client-key-data", "client-key", base),
        namespace=str(ctx.get("namespace") or "default"),
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
    """One connection pool to one cluster. Use as ``async with Client(config) as c``."""

    def __init__(
        self, config: ClusterConfig, *, connections: int = 16, timeout: float = 30.0
    ) -> None:
        self.config = config
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is not None:
            return
        headers = {
            "User-Agent": self.config.user_agent,
            "Accept": JSON_CT,
            **self.config.extra_headers,
        }
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=self.config.ssl_context())
        self._session = aiohttp.ClientSession(
            base_url=self.config.server,
            connector=connector,
            headers=headers,
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the client is not open")
        return self._session

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
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self.session.request(
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
            raise KubeError(0, "ConnectionFailed", f"{method} {path}: {exc!r}") from exc

    async def get_raw(
        self, path: str, params: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> bytes:
        """GET a non-JSON body (e.g. ``pods/{name}/log``)."""
        try:
            async with self.session.get(
                path, params=params, timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return raw
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "ConnectionFailed", f"GET {path}: {exc!r}") from exc

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
            async with self.session.get(
                path, params=query, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
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
            raise KubeError(0, "ConnectionFailed", f"watch {path}: {exc!r}") from exc


def _error(status: int, raw: bytes) -> KubeError:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return KubeError(status, str(body.get("reason", "")), str(body.get("message", "")), body)
    return KubeError(status, "", raw.decode(errors="replace")[:500])
