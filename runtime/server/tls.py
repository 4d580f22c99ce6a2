"""Certificates and credentials of the built-in API server.

On first start, :func:`ensure_credentials` generates in the state directory a CA, a
serving certificate for the loopback names, and an admin bearer token, and writes a
kubeconfig (mode 0600) that kubectl and the official Python client accept. Later starts
reuse them, so clients keep working across restarts. Called by
:mod:`runtime.server.serve`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLUSTER_NAME = "gitops-builtin"
USER_NAME = "gitops-admin"


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token: str
    kubeconfig: Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitops-builtin-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / "ca.key", key_pem(key))
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _make_serving(
    directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str]
) -> None:
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitops-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / "apiserver.key", key_pem(key))
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.hosts").write_text("\n".join(hosts) + "\n")


def ensure_credentials(
    state_dir: Path, *, host: str, port: int, extra_hosts: tuple[str, ...] = ()
) -> Credentials:
    """Create (once) or reuse the CA, serving certificate, token and kubeconfig."""
    pki = state_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if (pki / "ca.crt").exists() and (pki / "ca.key").exists():
        ca, ca_key = _load_ca(pki)
    else:
        ca, ca_key = _make_ca(pki)
    hosts = sorted({"127.0.0.1", "localhost", "::1", host, *extra_hosts} - {"0.0.0.0", "::", ""})
    hosts_file = pki / "apiserver.hosts"
    current_hosts = hosts_file.read_text().split() if hosts_file.exists() else []
    if sorted(current_hosts) != hosts or not (pki / "apiserver.crt").exists():
        _make_serving(pki, ca, ca_key, hosts)
    token_file = state_dir / "token"
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = secrets.token_urlsafe(32)
        _write_private(token_file, token.encode() + b"\n")
    kubeconfig = state_dir / "kubeconfig"
    server_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in server_host:
        server_host = f"[{server_host}]"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": f"https://{server_host}:{port}",
                    "certificate-authority-data": base64.b64encode(
                        (pki / "ca.crt").read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": USER_NAME, "user": {"token": token}}],
        "contexts": [
            {
                "name": CLUSTER_NAME,
                "context": {"cluster": CLUSTER_NAME, "user": USER_NAME, "namespace": "default"},
            }
        ],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    _write_private(kubeconfig, yaml.safe_dump(config, sort_keys=False).encode())
    return Credentials(
        pki / "ca.crt", pki / "apiserver.crt", pki / "apiserver.key", token, kubeconfig
    )


def issue_serving_certificate(
    state_dir: Path, name: str, hosts: tuple[str, ...]
) -> tuple[Path, Path]:
    """A serving certificate for ``name`` (e.g. a kubelet) signed by the cluster CA in
    ``state_dir``; reused while its hosts are unchanged. Returns (cert, key) paths."""
    pki = state_dir / "pki"
    ca, ca_key = _load_ca(pki)
    out = pki / "issued" / name
    out.mkdir(parents=True, exist_ok=True)
    hosts_file = out / "apiserver.hosts"
    wanted = sorted(set(hosts))
    if not (out / "apiserver.crt").exists() or (
        not hosts_file.exists() or hosts_file.read_text().split() != wanted
    ):
        _make_serving(out, ca, ca_key, wanted)
    return out / "apiserver.crt", out / "apiserver.key"
