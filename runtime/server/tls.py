"""Certificates and credentials of the built-in API server.

On first start, :func:`ensure_credentials` generates in the state directory a CA, a
serving certificate for the loopback names, and an admin bearer token, and writes a
kubeconfig (mode 0600) that kubectl and the official Python client accept. Later starts
reuse them, so clients keep working across restarts. Called by
:mod:`runtime.server.serve`.

The cluster's components get identities of their own (:func:`issue_client_credentials`:
a client certificate whose CN is the user and whose O's are the groups, as kube's
components authenticate, in a kubeconfig under ``<state_dir>/components/``), and the
API server reaches the kubelets with a separate token
(:func:`ensure_kubelet_client_token`), so no component holds the admin token. Called by
:mod:`runtime.cluster`.
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
from cryptography.exceptions import InvalidSignature
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


# --- component identities ---------------------------------------------------------------------
#: Client certificates live this long; one with less than CLIENT_CERT_RENEW_BEFORE left is
#: issued again on the next start.
CLIENT_CERT_DAYS = 365
CLIENT_CERT_RENEW_BEFORE = dt.timedelta(days=30)


def _server_of(state_dir: Path) -> str:
    """The API server URL written into the admin kubeconfig by :func:`ensure_credentials`."""
    doc = yaml.safe_load((state_dir / "kubeconfig").read_text()) or {}
    for cluster in doc.get("clusters") or []:
        if cluster.get("name") == CLUSTER_NAME:
            return str((cluster.get("cluster") or {}).get("server") or "")
    raise ValueError(f"{state_dir / 'kubeconfig'}: no cluster {CLUSTER_NAME!r}")


def _client_subject(common_name: str, organizations: tuple[str, ...]) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _make_client(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organizations: tuple[str, ...],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_client_subject(common_name, organizations))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CLIENT_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _reusable(
    path: Path,
    ca: x509.Certificate,
    server: str,
    ca_pem: bytes,
    subject: x509.Name,
) -> bool:
    """Whether the kubeconfig at ``path`` holds a certificate for ``subject`` from the
    current CA, valid for a while yet, for the current server and CA."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        cluster = (doc.get("clusters") or [{}])[0].get("cluster") or {}
        user = (doc.get("users") or [{}])[0].get("user") or {}
        cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        key = serialization.load_pem_private_key(
            base64.b64decode(user["client-key-data"]), password=None
        )
        if (
            cluster.get("server") != server
            or base64.b64decode(cluster.get("certificate-authority-data") or "") != ca_pem
        ):
            return False
        cert.verify_directly_issued_by(ca)
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        yaml.YAMLError,
        InvalidSignature,
    ):
        return False
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return same_key and cert.subject == subject and left > CLIENT_CERT_RENEW_BEFORE


def issue_client_credentials(
    state_dir: Path,
    file_stem: str,
    common_name: str,
    organizations: tuple[str, ...],
    *,
    server: str = "",
) -> Path:
    """A kubeconfig for one component of the cluster (a kubelet, the scheduler, …):
    a client certificate signed by the cluster CA in ``state_dir`` with
    ``CN=common_name`` and one ``O`` per organization (the API server maps them to the
    user name and groups, as kube-apiserver's x509 authenticator does) and extended key
    usage clientAuth, written with its key, the server URL (default: the admin
    kubeconfig's) and the CA as ``<state_dir>/components/<file_stem>.kubeconfig``
    (mode 0600 in a 0700 directory). An existing one is reused while it is for the same
    subject, CA and server and has more than :data:`CLIENT_CERT_RENEW_BEFORE` left.
    Called by :mod:`runtime.cluster` for each component it starts."""
    if not file_stem or "/" in file_stem or file_stem.startswith("."):
        raise ValueError(f"invalid component file name {file_stem!r}")
    pki = state_dir / "pki"
    ca, ca_key = _load_ca(pki)
    ca_pem = (pki / "ca.crt").read_bytes()
    server = server or _server_of(state_dir)
    directory = state_dir / "components"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / f"{file_stem}.kubeconfig"
    subject = _client_subject(common_name, organizations)
    if _reusable(path, ca, server, ca_pem, subject):
        path.chmod(0o600)
        return path
    cert, key = _make_client(ca, ca_key, common_name, organizations)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [
            {
                "name": common_name,
                "user": {
                    "client-certificate-data": base64.b64encode(
                        cert.public_bytes(serialization.Encoding.PEM)
                    ).decode(),
                    "client-key-data": base64.b64encode(key_pem(key)).decode(),
                },
            }
        ],
        "contexts": [
            {
                "name": CLUSTER_NAME,
                "context": {"cluster": CLUSTER_NAME, "user": common_name, "namespace": "default"},
            }
        ],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


KUBELET_CLIENT_TOKEN = "kubelet-client.token"


def ensure_kubelet_client_token(state_dir: Path) -> str:
    """The bearer token the API server presents to the kubelets' HTTPS endpoints (logs,
    exec, stats) and the kubelets check: random, created once as
    ``<state_dir>/kubelet-client.token`` (0600) and reused. It is a credential *to* the
    kubelets only: the API server never accepts it, so a kubelet holding it gains
    nothing against the API."""
    path = state_dir / KUBELET_CLIENT_TOKEN
    if path.exists():
        token = path.read_text().strip()
        if token:
            path.chmod(0o600)
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode() + b"\n")
    return token
