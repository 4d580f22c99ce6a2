"""kubeclient's authentication as managed clusters need it (kubeclient.auth, kubeclient.rest):
exec credential plugins (real scripts in tmp dirs, run by the client against a real HTTPS
server on 127.0.0.1), basic auth, client certificates, TLS options, proxies, and the
refusal of the removed auth providers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeclient.auth import (
    V1,
    V1BETA1,
    CredentialError,
    ExecConfig,
    ExecProvider,
    parse_credential,
)
from kubeclient.rest import (
    Client,
    ClusterConfig,
    CredentialsUnavailable,
    KubeError,
    load_kubeconfig,
)

# --- a small PKI --------------------------------------------------------------------


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Pki:
    """A CA that issues server and client certificates."""

    def __init__(self, name: str = "test-ca") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, cn: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), client: bool = False
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(IPv4Address(ip)) for ip in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


# --- a real HTTPS API server on loopback ---------------------------------------------

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
UNAUTHORIZED = {
    "apiVersion": "v1",
    "kind": "Status",
    "status": "Failure",
    "reason": "Unauthorized",
    "message": "Unauthorized",
    "code": 401,
}


@dataclass
class ApiServer:
    """Answers every GET with a Namespace (or a watch stream) when ``accept`` allows."""

    accept: Callable[[web.Request], bool]
    url: str = ""
    authorizations: list[str] = field(default_factory=list)
    peer_names: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.authorizations.append(request.headers.get("Authorization", ""))
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            self.peer_names.append(dict(x[0] for x in peer["subject"])["commonName"])
        if not self.accept(request):
            return web.json_response(UNAUTHORIZED, status=401)
        if request.query.get("watch") == "true":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for kind in ("ADDED", "MODIFIED"):
                await resp.write(json.dumps({"type": kind, "object": NAMESPACE}).encode() + b"\n")
            await resp.write_eof()
            return resp
        return web.json_response(NAMESPACE)


def bearer(*tokens: str) -> Callable[[web.Request], bool]:
    return lambda r: r.headers.get("Authorization") in {f"Bearer {t}" for t in tokens}


@asynccontextmanager
async def serving(
    pki: Pki,
    accept: Callable[[web.Request], bool],
    *,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = ("127.0.0.1",),
    client_ca: bytes | None = None,
    server_pki: Pki | None = None,
    tmp: Path,
) -> AsyncIterator[ApiServer]:
    issued = (server_pki or pki).issue("apiserver", dns=dns, ips=ips)
    (tmp / "server.crt").write_bytes(issued.cert_pem)
    (tmp / "server.key").write_bytes(issued.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "server.crt", tmp / "server.key")
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    server = ApiServer(accept)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"https://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


# --- kubeconfigs and plugins ---------------------------------------------------------


def write_kubeconfig(
    path: Path,
    server: str,
    user: dict[str, Any],
    *,
    ca_pem: bytes | None = None,
    cluster: dict[str, Any] | None = None,
) -> Path:
    entry: dict[str, Any] = {"server": server, **(cluster or {})}
    if ca_pem is not None:
        entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [
            {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "apps"}}
        ],
        "clusters": [{"name": "c", "cluster": entry}],
        "users": [{"name": "u", "user": user}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


PLUGIN = """\
import datetime, json, os, pathlib, sys

settings = json.loads({settings!r})
here = pathlib.Path(__file__).parent
counter = here / "count"
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
(here / "exec-info.json").write_text(os.environ["KUBERNETES_EXEC_INFO"])
seen = {{"args": sys.argv[1:], "env": {{k: os.environ.get(k) for k in settings["show_env"]}}}}
(here / "seen.json").write_text(json.dumps(seen))
if settings["fail"]:
    sys.stderr.write(settings["fail"])
    sys.exit(3)
if settings["raw"] is not None:
    sys.stdout.write(settings["raw"])
    sys.exit(0)
status = dict(settings["status"])
if settings["token"]:
    status["token"] = "token-%d" % n
if settings["expires_in"] is not None:
    when = datetime.datetime.now(datetime.timezone.utc)
    when += datetime.timedelta(seconds=settings["expires_in"])
    status["expirationTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({{"apiVersion": settings["api_version"], "kind": settings["kind"], "status": status}}))
"""


def write_plugin(
    path: Path,
    *,
    api_version: str = V1,
    kind: str = "ExecCredential",
    token: bool = True,
    expires_in: int | None = 3600,
    status: dict[str, Any] | None = None,
    fail: str = "",
    raw: str | None = None,
    show_env: tuple[str, ...] = (),
) -> Path:
    """A plugin that prints ``token-N`` on its Nth run (counting in ``count``), and records
    its ``KUBERNETES_EXEC_INFO`` and the arguments and env it was given."""
    settings = {
        "api_version": api_version,
        "kind": kind,
        "token": token,
        "expires_in": expires_in,
        "status": status or {},
        "fail": fail,
        "raw": raw,
        "show_env": list(show_env),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + PLUGIN.format(settings=json.dumps(settings)))
    path.chmod(0o755)
    return path


def runs(plugin: Path) -> int:
    counter = plugin.parent / "count"
    return int(counter.read_text()) if counter.exists() else 0


def exec_user(command: str = "./bin/plugin.py", **extra: Any) -> dict[str, Any]:
    return {"exec": {"apiVersion": V1, "command": command, "interactiveMode": "Never", **extra}}


# --- exec plugins against a real server ------------------------------------------------


def test_an_exec_plugin_token_is_sent_as_a_bearer_token_and_cached(
    tmp_path: Path, pki: Pki
) -> None:
    plugin = write_plugin(tmp_path / "kube" / "bin" / "plugin.py")

    async def main() -> None:
        async with serving(pki, bearer("token-1"), tmp=tmp_path) as server:
            path = write_kubeconfig(
                tmp_path / "kube" / "config", server.url, exec_user(), ca_pem=pki.ca_pem
            )
            config = load_kubeconfig(path)
            assert config.namespace == "apps" and config.token == ""
            async with Client(config) as client:
                for _ in range(3):
                    assert (await client.get("v1", "namespaces", "default"))["kind"] == "Namespace"
                assert [e["type"] async for e in client.watch("v1", "namespaces")] == [
                    "ADDED",
                    "MODIFIED",
                ]
                assert await client.get_raw("/version")
            assert server.authorizations == ["Bearer token-1"] * 5
            assert runs(plugin) == 1

    asyncio.run(main())


def test_a_rejected_token_is_refreshed_once_and_the_request_sent_again(
    tmp_path: Path, pki: Pki
) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py")

    async def main() -> None:
        async with serving(pki, bearer("token-2"), tmp=tmp_path) as server:
            path = write_kubeconfig(tmp_path / "config", server.url, exec_user(), ca_pem=pki.ca_pem)
            async with Client(load_kubeconfig(path)) as client:
                got = await asyncio.gather(
                    *(client.get("v1", "namespaces", "default") for _ in range(4))
                )
                assert all(ns["kind"] == "Namespace" for ns in got)
                assert await client.get("v1", "namespaces", "default")
            # Four requests refused together share one new run of the plugin.
            assert runs(plugin) == 2
            assert server.authorizations.count("Bearer token-1") == 4
            assert server.authorizations.count("Bearer token-2") == 5

    asyncio.run(main())


def test_a_watch_refused_with_a_401_is_retried_with_a_new_token(tmp_path: Path, pki: Pki) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py")

    async def main() -> None:
        async with serving(pki, bearer("token-2"), tmp=tmp_path) as server:
            path = write_kubeconfig(tmp_path / "config", server.url, exec_user(), ca_pem=pki.ca_pem)
            async with Client(load_kubeconfig(path)) as client:
                events = [e async for e in client.watch("v1", "namespaces")]
            assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
            assert server.authorizations == ["Bearer token-1", "Bearer token-2"]
            assert runs(plugin) == 2

    asyncio.run(main())


def test_a_token_refused_again_after_the_refresh_is_a_401_error(tmp_path: Path, pki: Pki) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py")

    async def main() -> None:
        async with serving(pki, bearer(), tmp=tmp_path) as server:
            path = write_kubeconfig(tmp_path / "config", server.url, exec_user(), ca_pem=pki.ca_pem)
            async with Client(load_kubeconfig(path)) as client:
                with pytest.raises(KubeError) as err:
                    await client.get("v1", "namespaces", "default")
            assert err.value.status == 401 and err.value.reason == "Unauthorized"
            assert server.authorizations == ["Bearer token-1", "Bearer token-2"]
            assert runs(plugin) == 2

    asyncio.run(main())


def test_the_plugin_gets_its_args_env_and_the_exec_info_with_the_cluster(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", show_env=("AWS_REGION", "FROM_PARENT"))
    monkeypatch.setenv("FROM_PARENT", "inherited")

    async def main() -> None:
        async with serving(pki, bearer("token-1"), tmp=tmp_path) as server:
            user = exec_user(
                args=["eks", "get-token", "--cluster-name", "prod"],
                env=[{"name": "AWS_REGION", "value": "eu-west-1"}],
                provideClusterInfo=True,
            )
            extension = {"name": "client.authentication.k8s.io/exec", "extension": {"aud": "x"}}
            path = write_kubeconfig(
                tmp_path / "config",
                server.url,
                user,
                ca_pem=pki.ca_pem,
                cluster={"extensions": [extension], "tls-server-name": "127.0.0.1"},
            )
            async with Client(load_kubeconfig(path)) as client:
                await client.get("v1", "namespaces", "default")

    asyncio.run(main())
    seen = json.loads((plugin.parent / "seen.json").read_text())
    assert seen["args"] == ["eks", "get-token", "--cluster-name", "prod"]
    assert seen["env"] == {"AWS_REGION": "eu-west-1", "FROM_PARENT": "inherited"}
    info = json.loads((plugin.parent / "exec-info.json").read_text())
    assert info["apiVersion"] == V1 and info["kind"] == "ExecCredential"
    assert info["spec"]["interactive"] is False
    cluster = info["spec"]["cluster"]
    assert cluster["server"].startswith("https://127.0.0.1:")
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_pem
    assert cluster["tls-server-name"] == "127.0.0.1"
    assert cluster["config"] == {"aud": "x"}


def test_without_provide_cluster_info_the_request_has_no_cluster(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", api_version=V1BETA1)
    user = {"exec": {"apiVersion": V1BETA1, "command": "./bin/plugin.py"}}
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://127.0.0.1:1", user))
    assert config.exec_provider is not None
    credential = asyncio.run(config.exec_provider.credential())
    assert credential.token == "token-1"
    info = json.loads((plugin.parent / "exec-info.json").read_text())
    assert info == {"apiVersion": V1BETA1, "kind": "ExecCredential", "spec": {"interactive": False}}


def test_a_bare_command_is_found_on_the_path_and_a_relative_one_beside_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = write_plugin(tmp_path / "path-bin" / "my-auth-plugin")
    monkeypatch.setenv("PATH", f"{on_path.parent}:/usr/bin:/bin")
    bare = load_kubeconfig(
        write_kubeconfig(tmp_path / "a" / "config", "https://x:1", exec_user("my-auth-plugin"))
    )
    assert bare.exec_provider is not None
    assert bare.exec_provider.config.command == "my-auth-plugin"
    assert asyncio.run(bare.exec_provider.credential()).token == "token-1"
    beside = load_kubeconfig(
        write_kubeconfig(tmp_path / "b" / "config", "https://x:1", exec_user("bin/plugin"))
    )
    assert beside.exec_provider is not None
    assert beside.exec_provider.config.command == str(tmp_path / "b" / "bin" / "plugin")


def test_client_certificates_from_the_plugin_are_presented_to_the_server(
    tmp_path: Path, pki: Pki
) -> None:
    issued = pki.issue("exec-user", client=True)
    status = {
        "clientCertificateData": issued.cert_pem.decode(),
        "clientKeyData": issued.key_pem.decode(),
    }
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", token=False, status=status)

    async def main() -> None:
        async with serving(pki, lambda r: True, client_ca=pki.ca_pem, tmp=tmp_path) as server:
            path = write_kubeconfig(tmp_path / "config", server.url, exec_user(), ca_pem=pki.ca_pem)
            async with Client(load_kubeconfig(path)) as client:
                await client.get("v1", "namespaces", "default")
                await client.get("v1", "namespaces", "default")
            assert server.peer_names == ["exec-user", "exec-user"]
            assert server.authorizations == ["", ""]
            assert runs(plugin) == 1

    asyncio.run(main())


def test_a_client_certificate_from_the_kubeconfig_files_is_presented(
    tmp_path: Path, pki: Pki
) -> None:
    issued = pki.issue("file-user", client=True)
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "client.crt").write_bytes(issued.cert_pem)
    (tmp_path / "pki" / "client.key").write_bytes(issued.key_pem)
    (tmp_path / "pki" / "ca.crt").write_bytes(pki.ca_pem)
    user = {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}

    async def main() -> None:
        async with serving(pki, lambda r: True, client_ca=pki.ca_pem, tmp=tmp_path) as server:
            path = write_kubeconfig(
                tmp_path / "config",
                server.url,
                user,
                cluster={"certificate-authority": "pki/ca.crt"},
            )
            async with Client(load_kubeconfig(path)) as client:
                await client.get("v1", "namespaces", "default")
            assert server.peer_names == ["file-user"]

    asyncio.run(main())


# --- other kubeconfig authentication and TLS settings -------------------------------------


def test_username_and_password_are_sent_as_basic_auth(tmp_path: Path, pki: Pki) -> None:
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    async def main() -> None:
        accept = lambda r: r.headers.get("Authorization") == expected  # noqa: E731
        async with serving(pki, accept, tmp=tmp_path) as server:
            user = {"username": "alice", "password": "s3cret"}
            path = write_kubeconfig(tmp_path / "config", server.url, user, ca_pem=pki.ca_pem)
            config = load_kubeconfig(path)
            assert "s3cret" not in repr(config)
            async with Client(config) as client:
                await client.get("v1", "namespaces", "default")

    asyncio.run(main())


def test_tls_server_name_is_the_name_the_certificate_is_checked_against(
    tmp_path: Path, pki: Pki
) -> None:
    async def main() -> None:
        async with serving(
            pki, bearer("t"), dns=("kubernetes.internal",), ips=(), tmp=tmp_path
        ) as server:
            user = {"token": "t"}
            named = write_kubeconfig(
                tmp_path / "named",
                server.url,
                user,
                ca_pem=pki.ca_pem,
                cluster={"tls-server-name": "kubernetes.internal"},
            )
            async with Client(load_kubeconfig(named)) as client:
                await client.get("v1", "namespaces", "default")
            unnamed = write_kubeconfig(tmp_path / "unnamed", server.url, user, ca_pem=pki.ca_pem)
            async with Client(load_kubeconfig(unnamed)) as client:
                with pytest.raises(KubeError) as err:
                    await client.get("v1", "namespaces", "default")
            assert err.value.status == 0 and "certificate" in err.value.message.lower()

    asyncio.run(main())


def test_insecure_skip_tls_verify_accepts_a_certificate_from_an_unknown_ca(
    tmp_path: Path, pki: Pki
) -> None:
    async def main() -> None:
        async with serving(pki, bearer("t"), server_pki=Pki("other"), tmp=tmp_path) as server:
            path = write_kubeconfig(
                tmp_path / "config",
                server.url,
                {"token": "t"},
                cluster={"insecure-skip-tls-verify": True},
            )
            async with Client(load_kubeconfig(path)) as client:
                await client.get("v1", "namespaces", "default")

    asyncio.run(main())


@dataclass
class ConnectProxy:
    """An HTTP CONNECT proxy on loopback that only tunnels to 127.0.0.1."""

    tunnels: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )


def test_requests_go_through_the_proxy_url(tmp_path: Path, pki: Pki) -> None:
    async def main() -> None:
        proxy = ConnectProxy()
        proxy_server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        proxy_port = proxy_server.sockets[0].getsockname()[1]
        try:
            async with serving(pki, bearer("t"), tmp=tmp_path) as server:
                path = write_kubeconfig(
                    tmp_path / "config",
                    server.url,
                    {"token": "t"},
                    ca_pem=pki.ca_pem,
                    cluster={"proxy-url": f"http://127.0.0.1:{proxy_port}"},
                )
                async with Client(load_kubeconfig(path)) as client:
                    await client.get("v1", "namespaces", "default")
                assert proxy.tunnels == [server.url.removeprefix("https://")]
                assert server.authorizations == ["Bearer t"]
        finally:
            proxy_server.close()
            await proxy_server.wait_closed()

    asyncio.run(main())


def test_a_socks_proxy_url_is_refused(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", "https://x:1", {}, cluster={"proxy-url": "socks5://127.0.0.1:1080"}
    )
    with pytest.raises(ValueError, match=r"socks5://127\.0\.0\.1:1080.*only http:// and https://"):
        load_kubeconfig(path)


def test_a_token_in_the_kubeconfig_wins_over_the_exec_plugin(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py")
    user = {"token": "static", **exec_user()}
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://x:1", user))
    assert config.token == "static" and config.exec_provider is None
    assert runs(plugin) == 0


# --- caching ------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_credential_is_reused_until_shortly_before_it_expires(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", expires_in=3600)
    provider = ExecProvider(ExecConfig(command=str(plugin)))
    clock = Clock(datetime.now(UTC))
    provider.clock = clock

    async def main() -> None:
        first = await provider.credential()
        assert first.expires_at is not None
        assert (await provider.credential()).token == "token-1"
        clock.now = first.expires_at - timedelta(seconds=31)
        assert (await provider.credential()).token == "token-1"
        clock.now = first.expires_at - timedelta(seconds=29)  # within the 30 s margin
        assert (await provider.credential()).token == "token-2"
        tokens = await asyncio.gather(*(provider.credential() for _ in range(5)))
        assert {c.token for c in tokens} == {"token-2"}

    asyncio.run(main())
    assert runs(plugin) == 2


def test_a_credential_without_expiry_is_kept_until_the_server_refuses_it(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", expires_in=None)
    provider = ExecProvider(ExecConfig(command=str(plugin)))
    clock = Clock(datetime.now(UTC))
    provider.clock = clock

    async def main() -> None:
        first = await provider.credential()
        assert first.expires_at is None
        clock.now += timedelta(days=365)
        assert await provider.credential() is first
        second = await provider.refresh(first)
        assert second.token == "token-2"
        # A caller refused the old credential later does not run the plugin again.
        assert await provider.refresh(first) is second

    asyncio.run(main())
    assert runs(plugin) == 2


def test_a_short_lived_credential_is_refreshed_a_tenth_of_its_life_early(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "bin" / "plugin.py", expires_in=100)
    provider = ExecProvider(ExecConfig(command=str(plugin)))
    clock = Clock(datetime.now(UTC))
    provider.clock = clock

    async def main() -> None:
        first = await provider.credential()
        assert first.expires_at is not None
        lifetime = first.expires_at - clock.now
        clock.now += lifetime * 0.85
        assert (await provider.credential()).token == "token-1"
        clock.now += lifetime * 0.1
        assert (await provider.credential()).token == "token-2"

    asyncio.run(main())


# --- errors ---------------------------------------------------------------------------


def test_a_missing_command_is_named_with_its_install_hint(tmp_path: Path) -> None:
    hint = "Install the AWS CLI: https://docs.aws.amazon.com/cli/"
    user = exec_user("aws-not-installed-here", args=["eks", "get-token"], installHint=hint)
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://127.0.0.1:1", user))

    async def main() -> None:
        async with Client(config) as client:
            with pytest.raises(CredentialsUnavailable) as err:
                await client.get("v1", "namespaces", "default")
        assert err.value.status == 401 and not err.value.retryable
        assert "'aws-not-installed-here' not found" in str(err.value)
        assert hint in str(err.value)

    asyncio.run(main())


def test_a_failing_plugin_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    write_plugin(tmp_path / "bin" / "plugin.py", fail="\n  error: profile prod not found  \n\n")
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://x:1", exec_user()))
    assert config.exec_provider is not None
    with pytest.raises(CredentialError) as err:
        asyncio.run(config.exec_provider.credential())
    assert err.value.message.endswith("failed with exit code 3: error: profile prod not found")
    assert err.value.retryable


def test_unreadable_plugin_output_is_reported_without_quoting_it(tmp_path: Path) -> None:
    write_plugin(tmp_path / "bin" / "plugin.py", raw="token: hunter2-secret\n")
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://x:1", exec_user()))
    assert config.exec_provider is not None
    with pytest.raises(CredentialError, match="no valid JSON ExecCredential") as err:
        asyncio.run(config.exec_provider.credential())
    assert "hunter2" not in str(err.value)


def test_a_plugin_answering_with_another_api_version_is_refused(tmp_path: Path) -> None:
    write_plugin(tmp_path / "bin" / "plugin.py", api_version=V1BETA1)
    config = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://x:1", exec_user()))
    assert config.exec_provider is not None
    with pytest.raises(CredentialError) as err:
        asyncio.run(config.exec_provider.credential())
    assert f"configured for {V1}" in str(err.value) and V1BETA1 in str(err.value)
    assert "token-1" not in str(err.value)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"apiVersion": V1, "kind": "Secret", "status": {"token": "x"}}, "kind 'Secret'"),
        ({"apiVersion": V1, "kind": "ExecCredential"}, "returned no status"),
        ({"apiVersion": V1, "kind": "ExecCredential", "status": {}}, "neither a token"),
        (
            {"apiVersion": V1, "kind": "ExecCredential", "status": {"clientKeyData": "k"}},
            "only a client certificate or a key",
        ),
        (
            {
                "apiVersion": V1,
                "kind": "ExecCredential",
                "status": {"token": "x", "expirationTimestamp": "tomorrow"},
            },
            "not RFC 3339",
        ),
        ([1, 2], "not an object"),
    ],
)
def test_malformed_exec_credentials_are_refused(output: Any, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        parse_credential(json.dumps(output).encode(), ExecConfig(command="p"))


def test_a_valid_exec_credential_is_parsed() -> None:
    out = {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "status": {"token": "abc", "expirationTimestamp": "2030-01-02T03:04:05Z"},
    }
    credential = parse_credential(json.dumps(out).encode(), ExecConfig(command="p"))
    assert credential.token == "abc" and credential.cert_pair is None
    assert credential.expires_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "abc" not in repr(credential)


@pytest.mark.parametrize(
    ("provider", "replacement"),
    [("gcp", "gke-gcloud-auth-plugin"), ("azure", "kubelogin"), ("oidc", "oidc-login")],
)
def test_a_removed_auth_provider_is_refused_with_the_plugin_that_replaces_it(
    tmp_path: Path, provider: str, replacement: str
) -> None:
    user = {"auth-provider": {"name": provider, "config": {"access-token": "secret-at"}}}
    path = write_kubeconfig(tmp_path / "config", "https://x:1", user)
    with pytest.raises(ValueError, match=f"auth-provider '{provider}' is not supported") as err:
        load_kubeconfig(path)
    assert replacement in str(err.value) and "secret-at" not in str(err.value)


@pytest.mark.parametrize(
    ("exec_entry", "message"),
    [
        ({"apiVersion": V1, "command": "p", "interactiveMode": "Always"}, "without a terminal"),
        ({"apiVersion": V1, "command": "p", "interactiveMode": "Sometimes"}, "interactiveMode"),
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "p"}, "v1alpha1"),
        ({"apiVersion": V1}, "needs a command"),
        ({"apiVersion": V1, "command": "p", "env": [{"value": "v"}]}, "needs a name"),
    ],
)
def test_exec_entries_that_cannot_work_are_refused_when_loading(
    tmp_path: Path, exec_entry: dict[str, Any], message: str
) -> None:
    path = write_kubeconfig(tmp_path / "config", "https://x:1", {"exec": exec_entry})
    with pytest.raises(ValueError, match=message):
        load_kubeconfig(path)


def test_a_token_with_basic_auth_or_a_certificate_without_key_is_refused(tmp_path: Path) -> None:
    both = write_kubeconfig(tmp_path / "a", "https://x:1", {"token": "t", "username": "u"})
    with pytest.raises(ValueError, match="both a token and a username"):
        load_kubeconfig(both)
    cert_only = {"client-certificate-data": base64.b64encode(b"pem").decode()}
    half = write_kubeconfig(tmp_path / "b", "https://x:1", cert_only)
    with pytest.raises(ValueError, match="needs its key"):
        load_kubeconfig(half)


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    config = ClusterConfig(
        server="https://x", token="tok-secret", password="pw-secret", client_key_data=b"key"
    )
    assert "tok-secret" not in repr(config) and "pw-secret" not in repr(config)
    user = exec_user(env=[{"name": "API_KEY", "value": "env-secret"}])
    loaded = load_kubeconfig(write_kubeconfig(tmp_path / "config", "https://x:1", user))
    assert "env-secret" not in repr(loaded) and "plugin.py" in repr(loaded)


def test_a_plugin_that_hangs_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    plugin = tmp_path / "hang.sh"
    plugin.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\nexec sleep 30\n")
    plugin.chmod(0o755)
    provider = ExecProvider(ExecConfig(command=str(plugin)), timeout=0.5)
    with pytest.raises(CredentialError, match=r"did not finish in 0\.5s") as err:
        asyncio.run(provider.credential())
    assert err.value.retryable
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
