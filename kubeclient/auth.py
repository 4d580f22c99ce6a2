"""Credentials from kubeconfig exec plugins (``users[].user.exec``), as client-go runs them.

Who calls it: :mod:`kubeclient.rest`. ``load_kubeconfig`` turns a user's ``exec`` entry
into an :class:`ExecConfig` (:func:`parse_exec`) and refuses the removed
``auth-provider`` entries (:func:`auth_provider_refusal`); the ``Client`` asks an
:class:`ExecProvider` for a :class:`Credential` before each request and asks it to
:meth:`~ExecProvider.refresh` after a 401.

The protocol is ``client.authentication.k8s.io/v1`` (and ``v1beta1``): the plugin gets
an ``ExecCredential`` request in ``KUBERNETES_EXEC_INFO`` (with the cluster in
``spec.cluster`` when ``provideClusterInfo`` is set) and prints an ``ExecCredential``
whose ``status`` holds a bearer token and/or a client certificate and key, and maybe an
``expirationTimestamp``. The credential is cached until shortly before it expires.
This process never has a terminal for the plugin: ``interactiveMode: Always`` is
refused, and the plugin's stdin is empty. Tokens and keys appear in no message or repr.
"""

from __future__ import annotations

import asyncio
import base64
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SUPPORTED_API_VERSIONS = (V1, V1BETA1)
EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
# The cluster extension whose content is passed to the plugin as spec.cluster.config.
EXEC_EXTENSION = "client.authentication.k8s.io/exec"
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")

# The exec plugins that replace the auth providers client-go no longer ships.
AUTH_PROVIDER_REPLACEMENTS = {
    "gcp": "gke-gcloud-auth-plugin (install it with `gcloud components install "
    "gke-gcloud-auth-plugin`, then run `gcloud container clusters get-credentials` "
    "to rewrite the kubeconfig)",
    "azure": "kubelogin (run `kubelogin convert-kubeconfig` to rewrite the kubeconfig)",
    "oidc": "an OIDC exec plugin such as kubelogin's `kubectl oidc-login get-token` "
    "(configure it under users[].user.exec)",
}


class CredentialError(Exception):
    """An exec plugin could not produce a credential; ``retryable`` if it may later."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class ExecConfig:
    """One ``users[].user.exec`` entry, with its command already resolved."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    api_version: str = V1
    install_hint: str = ""
    interactive_mode: str = "IfAvailable"
    # spec.cluster of the request, present only when provideClusterInfo is set.
    cluster: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Credential:
    """What a plugin returned: a bearer token and/or a client certificate and key."""

    token: str = field(default="", repr=False)
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    expires_at: datetime | None = None

    @property
    def cert_pair(self) -> tuple[bytes, bytes] | None:
        if self.client_cert_data and self.client_key_data:
            return (self.client_cert_data, self.client_key_data)
        return None


def auth_provider_refusal(where: str, provider: Mapping[str, Any]) -> str:
    """The message for a user whose kubeconfig still uses a removed ``auth-provider``."""
    name = str(provider.get("name") or "")
    replacement = AUTH_PROVIDER_REPLACEMENTS.get(name, "the cloud's exec credential plugin")
    return (
        f"{where}: auth-provider {name!r} is not supported (Kubernetes clients removed "
        f"the auth providers); use the exec plugin {replacement}"
    )


def exec_cluster_info(
    *,
    server: str,
    ca_data: bytes | None,
    insecure: bool,
    tls_server_name: str,
    proxy_url: str,
    cluster: Mapping[str, Any],
) -> dict[str, Any]:
    """``spec.cluster`` of the request: where the cluster is, as the plugin is told."""
    info: dict[str, Any] = {"server": server}
    if tls_server_name:
        info["tls-server-name"] = tls_server_name
    if insecure:
        info["insecure-skip-tls-verify"] = True
    if ca_data:
        info["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    if proxy_url:
        info["proxy-url"] = proxy_url
    if cluster.get("disable-compression"):
        info["disable-compression"] = True
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, Mapping) and ext.get("name") == EXEC_EXTENSION:
            info["config"] = ext.get("extension")
    return info


def parse_exec(
    spec: Any,
    *,
    where: str,
    base: Path,
    cluster_info: Mapping[str, Any],
) -> ExecConfig:
    """Validate one ``exec`` entry (``where`` prefixes errors, ``base`` is the
    kubeconfig's directory) and resolve its command; raises ``ValueError``."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: exec must be a mapping")
    command = str(spec.get("command") or "")
    if not command:
        raise ValueError(f"{where}: exec needs a command")
    api_version = str(spec.get("apiVersion") or "")
    if api_version not in SUPPORTED_API_VERSIONS:
        raise ValueError(
            f"{where}: exec apiVersion {api_version!r} is not supported "
            f"(use one of {', '.join(SUPPORTED_API_VERSIONS)})"
        )
    mode = str(spec.get("interactiveMode") or "IfAvailable")
    if mode not in INTERACTIVE_MODES:
        raise ValueError(
            f"{where}: exec interactiveMode {mode!r} is not one of {INTERACTIVE_MODES}"
        )
    if mode == "Always":
        raise ValueError(
            f"{where}: exec plugin {command!r} has interactiveMode Always, but this client "
            "runs without a terminal; log in with the plugin once in a shell (or use "
            "credentials it can refresh on its own) and set interactiveMode to "
            "IfAvailable or Never"
        )
    env: list[tuple[str, str]] = []
    for item in spec.get("env") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            raise ValueError(f"{where}: every exec env entry needs a name")
        env.append((str(item["name"]), str(item.get("value") or "")))
    if os.sep in command and not Path(command).is_absolute():
        command = str(base / command)  # relative to the kubeconfig, as client-go does
    return ExecConfig(
        command=command,
        args=tuple(str(a) for a in spec.get("args") or []),
        env=tuple(env),
        api_version=api_version,
        install_hint=str(spec.get("installHint") or "").strip(),
        interactive_mode=mode,
        cluster=dict(cluster_info) if spec.get("provideClusterInfo") else None,
    )


def exec_request(config: ExecConfig) -> str:
    """The ``ExecCredential`` request put in ``KUBERNETES_EXEC_INFO``."""
    spec: dict[str, Any] = {"interactive": False}
    if config.cluster is not None:
        spec["cluster"] = dict(config.cluster)
    return orjson.dumps(
        {"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec}
    ).decode()


def parse_credential(stdout: bytes, config: ExecConfig) -> Credential:
    """Read a plugin's output; the output itself is never quoted (it holds secrets)."""
    name = config.command
    try:
        doc = orjson.loads(stdout)
    except orjson.JSONDecodeError as exc:
        raise CredentialError(
            f"exec plugin {name!r} printed no valid JSON ExecCredential ({len(stdout)} bytes, "
            f"error at position {exc.pos})"
        ) from None
    if not isinstance(doc, dict):
        raise CredentialError(f"exec plugin {name!r} printed JSON that is not an object")
    if doc.get("kind") != "ExecCredential":
        raise CredentialError(
            f"exec plugin {name!r} returned kind {doc.get('kind')!r}, not ExecCredential"
        )
    if doc.get("apiVersion") != config.api_version:
        raise CredentialError(
            f"exec plugin {name!r} is configured for {config.api_version}, but it returned "
            f"apiVersion {doc.get('apiVersion')!r}"
        )
    status = doc.get("status")
    if not isinstance(status, dict):
        raise CredentialError(f"exec plugin {name!r} returned no status")
    token = str(status.get("token") or "")
    cert = str(status.get("clientCertificateData") or "")
    key = str(status.get("clientKeyData") or "")
    if bool(cert) != bool(key):
        raise CredentialError(
            f"exec plugin {name!r} returned only a client certificate or a key, not both"
        )
    if not token and not cert:
        raise CredentialError(f"exec plugin {name!r} returned neither a token nor a cert/key pair")
    return Credential(
        token=token,
        client_cert_data=cert.encode() or None,
        client_key_data=key.encode() or None,
        expires_at=_expiry(status.get("expirationTimestamp"), name),
    )


def _expiry(value: Any, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise CredentialError(
            f"exec plugin {name!r} returned expirationTimestamp {value!r}, not RFC 3339"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExecProvider:
    """Runs one exec plugin and caches its credential until shortly before expiry.

    Shared by the clients made from one ``ClusterConfig``; concurrent callers on one
    event loop wait for a single run of the plugin.
    """

    def __init__(
        self,
        config: ExecConfig,
        *,
        timeout: float = 120.0,
        refresh_margin: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.clock = clock
        self._cached: Credential | None = None
        self._refresh_at: datetime | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"ExecProvider(command={self.config.command!r})"

    async def credential(self) -> Credential:
        """The cached credential, or a new one when there is none or it is expiring."""
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock():
            cached = self._fresh()
            if cached is not None:
                return cached
            return await self._fetch()

    async def refresh(self, rejected: Credential) -> Credential:
        """A new credential after the server refused ``rejected`` (a 401); callers that
        were refused the same credential at once share one run of the plugin."""
        async with self._lock():
            if self._cached is not None and self._cached is not rejected:
                return self._cached
            return await self._fetch()

    def _fresh(self) -> Credential | None:
        if self._cached is None:
            return None
        if self._refresh_at is not None and self.clock() >= self._refresh_at:
            return None
        return self._cached

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _fetch(self) -> Credential:
        fetched_at = self.clock()
        credential = parse_credential(await self._run(), self.config)
        self._cached = credential
        self._refresh_at = None
        if credential.expires_at is not None:
            # A little early, but never more than a tenth of the credential's lifetime.
            lifetime = max(credential.expires_at - fetched_at, timedelta(0))
            self._refresh_at = credential.expires_at - min(self.refresh_margin, lifetime / 10)
        return credential

    async def _run(self) -> bytes:
        config = self.config
        env = {**os.environ, **dict(config.env), EXEC_INFO_ENV: exec_request(config)}
        try:
            proc = await asyncio.create_subprocess_exec(
                config.command,
                *config.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError:
            hint = f"\n{config.install_hint}" if config.install_hint else ""
            raise CredentialError(
                f"exec plugin: executable {config.command!r} not found; install it or fix "
                f"users[].user.exec.command in the kubeconfig{hint}"
            ) from None
        except PermissionError:
            raise CredentialError(
                f"exec plugin: {config.command!r} is not executable (permission denied)"
            ) from None
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            raise CredentialError(
                f"exec plugin {config.command!r} did not finish in {self.timeout:g}s",
                retryable=True,
            ) from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: leave no process behind
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            detail = stderr.decode(errors="replace").strip()[-2000:] or "(nothing on stderr)"
            raise CredentialError(
                f"exec plugin {config.command!r} failed with exit code {proc.returncode}: {detail}",
                retryable=True,
            )
        return stdout
