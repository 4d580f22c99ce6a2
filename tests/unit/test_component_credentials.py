"""Component identities (runtime.server.tls.issue_client_credentials): client
certificates signed by the cluster CA with the user as CN and the groups as O, written
as private kubeconfigs the client loads; and the API server's separate kubelet-client
token (ensure_kubelet_client_token)."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeclient.rest import load_kubeconfig
from runtime.cluster import (
    CONTROLLER_MANAGER_IDENTITY,
    NETWORK_IDENTITY,
    SCHEDULER_IDENTITY,
    component_kubeconfig,
    kubelet_identity,
)
from runtime.server import tls
from runtime.server.tls import (
    Credentials,
    ensure_credentials,
    ensure_kubelet_client_token,
    issue_client_credentials,
)


def cluster(tmp_path: Path) -> Credentials:
    return ensure_credentials(tmp_path, host="127.0.0.1", port=6443)


def certificate_of(kubeconfig: Path) -> x509.Certificate:
    doc = yaml.safe_load(kubeconfig.read_text())
    data = doc["users"][0]["user"]["client-certificate-data"]
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_kubelet_certificate_names_the_node_user_and_the_nodes_group(tmp_path: Path) -> None:
    creds = cluster(tmp_path)
    path = issue_client_credentials(
        tmp_path, "kubelet-node-0", "system:node:node-0", ("system:nodes",)
    )
    assert path == tmp_path / "components" / "kubelet-node-0.kubeconfig"
    cert = certificate_of(path)
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "system:node:node-0"
    ]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:nodes"
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_several_organizations_become_several_groups(tmp_path: Path) -> None:
    cluster(tmp_path)
    stem, user, _ = NETWORK_IDENTITY
    cert = certificate_of(issue_client_credentials(tmp_path, stem, user, ("ops", "extra")))
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["ops", "extra"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "system:gitops:network"
    )


def test_the_kubeconfig_is_private_and_loads_with_the_client(tmp_path: Path) -> None:
    creds = cluster(tmp_path)
    path = issue_client_credentials(tmp_path, "kube-scheduler", "system:kube-scheduler", ())
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    config = load_kubeconfig(path)
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_data == creds.ca_cert.read_bytes()
    assert config.token == ""  # the admin token is nowhere in it
    assert creds.token not in path.read_text()
    assert config.client_cert_data is not None and config.client_key_data is not None
    context = config.ssl_context()
    assert isinstance(context, ssl.SSLContext)  # the certificate and key load as a pair


def test_the_certificate_completes_a_tls_handshake_with_a_server_trusting_the_ca(
    tmp_path: Path,
) -> None:
    creds = cluster(tmp_path)
    path = issue_client_credentials(tmp_path, "kube-controller-manager", "system:kcm", ())
    client_ctx = load_kubeconfig(path).ssl_context()
    assert isinstance(client_ctx, ssl.SSLContext)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(creds.server_cert), str(creds.server_key))
    server_ctx.load_verify_locations(str(creds.ca_cert))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    peer = server.getpeercert()
    assert peer is not None
    assert (("commonName", "system:kcm"),) in peer["subject"]


def test_an_issued_kubeconfig_is_reused_while_valid_and_reissued_when_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster(tmp_path)
    args = (tmp_path, "kubelet-node-0", "system:node:node-0", ("system:nodes",))
    first = issue_client_credentials(*args).read_bytes()
    assert issue_client_credentials(*args).read_bytes() == first
    # Another subject under the same file: issued again.
    other = issue_client_credentials(tmp_path, "kubelet-node-0", "system:node:node-9", ())
    cn = certificate_of(other).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "system:node:node-9"
    assert other.read_bytes() != first
    # Close to expiry: issued again.
    again = issue_client_credentials(*args).read_bytes()
    monkeypatch.setattr(tls, "CLIENT_CERT_RENEW_BEFORE", dt.timedelta(days=400))
    assert issue_client_credentials(*args).read_bytes() != again


def test_a_kubeconfig_from_another_ca_or_server_is_replaced(tmp_path: Path) -> None:
    cluster(tmp_path)
    args = (tmp_path, "kube-scheduler", "system:kube-scheduler", ())
    first = issue_client_credentials(*args)
    before = first.read_bytes()
    moved = issue_client_credentials(*args, server="https://127.0.0.1:7443")
    assert load_kubeconfig(moved).server == "https://127.0.0.1:7443"
    assert moved.read_bytes() != before
    # A new CA (state directory reset): the old certificate no longer chains.
    for name in ("ca.crt", "ca.key"):
        (tmp_path / "pki" / name).unlink()
    creds = cluster(tmp_path)
    renewed = issue_client_credentials(*args)
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    certificate_of(renewed).verify_directly_issued_by(ca)


def test_the_cluster_gives_each_component_its_own_identity(tmp_path: Path) -> None:
    cluster(tmp_path)
    users = {}
    for identity in (
        kubelet_identity("node-1"),
        SCHEDULER_IDENTITY,
        CONTROLLER_MANAGER_IDENTITY,
        NETWORK_IDENTITY,
    ):
        cert = certificate_of(component_kubeconfig(tmp_path, identity))
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        users[identity[0]] = (cn, orgs)
    assert users == {
        "kubelet-node-1": ("system:node:node-1", ["system:nodes"]),
        "kube-scheduler": ("system:kube-scheduler", []),
        "kube-controller-manager": ("system:kube-controller-manager", []),
        "network": ("system:gitops:network", []),
    }


def test_a_file_name_that_leaves_the_directory_is_refused(tmp_path: Path) -> None:
    cluster(tmp_path)
    for stem in ("../kubeconfig", "", ".hidden"):
        with pytest.raises(ValueError, match="invalid component file name"):
            issue_client_credentials(tmp_path, stem, "x", ())


def test_the_kubelet_client_token_is_private_stable_and_not_the_admin_token(
    tmp_path: Path,
) -> None:
    creds = cluster(tmp_path)
    token = ensure_kubelet_client_token(tmp_path)
    path = tmp_path / "kubelet-client.token"
    assert mode(path) == 0o600
    assert path.read_text().strip() == token
    assert len(token) >= 32
    assert token != creds.token
    assert ensure_kubelet_client_token(tmp_path) == token
