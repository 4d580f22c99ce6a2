"""Encryption at rest (runtime.api.encryption): kube-apiserver's EncryptionConfiguration
parsed and validated as kube does, and the stored envelopes byte-compatible with its
``k8s:enc:aesgcm:v1:`` / ``k8s:enc:aescbc:v1:`` formats."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.api.encryption import (
    DEFAULT_FILE,
    DecryptError,
    EncryptionError,
    Key,
    Transformer,
    ensure_default_config,
    load_for_server,
    parse_config,
    resource_name,
    storage_aad,
)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
B1 = base64.b64encode(K1).decode()
B2 = base64.b64encode(K2).decode()
SECRET = b'{"kind":"Secret","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}'
AAD = storage_aad("core/secrets", "default", "db")


def config(providers: str, resources: str = "[secrets]") -> str:
    return (
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        f"  - resources: {resources}\n"
        f"    providers: {providers}\n"
    )


def secrets_transformer(providers: str) -> Transformer:
    transformer = parse_config(config(providers)).transformer("core/secrets")
    assert transformer is not None
    return transformer


def test_an_aesgcm_value_is_the_kube_prefix_a_12_byte_nonce_and_the_sealed_json() -> None:
    sealed = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]").seal(
        SECRET, AAD
    )
    prefix = b"k8s:enc:aesgcm:v1:key1:"
    assert sealed.startswith(prefix)
    body = sealed[len(prefix) :]
    assert len(body) == 12 + len(SECRET) + 16
    assert AESGCM(K1).decrypt(body[:12], body[12:], b"core/secrets/default/db") == SECRET
    assert b"aHVudGVyMg" not in sealed and b"password" not in sealed


def test_an_aesgcm_value_moved_to_another_storage_key_does_not_open() -> None:
    transformer = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]")
    sealed = transformer.seal(SECRET, AAD)
    assert transformer.open(sealed, AAD) == (SECRET, False)
    with pytest.raises(DecryptError, match='aesgcm key "key1"'):
        transformer.open(sealed, storage_aad("core/secrets", "other", "db"))
    body = sealed[len(b"k8s:enc:aesgcm:v1:key1:") :]
    with pytest.raises(InvalidTag):
        AESGCM(K1).decrypt(body[:12], body[12:], b"core/secrets/other/db")


def test_two_seals_of_one_value_differ_by_their_nonce() -> None:
    transformer = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]")
    assert transformer.seal(SECRET, AAD) != transformer.seal(SECRET, AAD)


def test_an_aescbc_value_is_the_kube_prefix_a_16_byte_iv_and_the_padded_ciphertext() -> None:
    sealed = secrets_transformer(f"[{{aescbc: {{keys: [{{name: k, secret: {B2}}}]}}}}]").seal(
        SECRET, AAD
    )
    prefix = b"k8s:enc:aescbc:v1:k:"
    assert sealed.startswith(prefix)
    body = sealed[len(prefix) :]
    decryptor = Cipher(algorithms.AES(K2), modes.CBC(body[:16])).decryptor()
    padded = decryptor.update(body[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == SECRET


def test_the_first_key_of_the_first_provider_writes_and_every_listed_one_reads() -> None:
    old = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]")
    under_old = old.seal(SECRET, AAD)
    rotated = secrets_transformer(
        f"[{{aesgcm: {{keys: [{{name: key2, secret: {B2}}}, {{name: key1, secret: {B1}}}]}}}}, "
        "{identity: {}}]"
    )
    assert rotated.open(under_old, AAD) == (SECRET, True)  # readable, stale
    under_new = rotated.seal(SECRET, AAD)
    assert under_new.startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert rotated.open(under_new, AAD) == (SECRET, False)
    assert rotated.open(SECRET, AAD) == (SECRET, True)  # plain, read by identity: stale


def test_identity_first_writes_plain_and_still_reads_encrypted_values() -> None:
    encrypted = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]")
    sealed = encrypted.seal(SECRET, AAD)
    plain_first = secrets_transformer(
        f"[{{identity: {{}}}}, {{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]"
    )
    assert plain_first.seal(SECRET, AAD) == SECRET
    assert plain_first.open(sealed, AAD) == (SECRET, True)
    assert plain_first.open(SECRET, AAD) == (SECRET, False)


def test_a_value_under_a_key_the_config_lost_names_that_key_and_the_remedy() -> None:
    sealed = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]").seal(
        SECRET, AAD
    )
    other = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key2, secret: {B2}}}]}}}}]")
    with pytest.raises(DecryptError) as missing:
        other.open(sealed, AAD)
    assert missing.value.key == 'aesgcm key "key1"'
    assert "not in the providers" in missing.value.reason
    assert "add aesgcm key" in missing.value.remedy
    wrong = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B2}}}]}}}}]")
    with pytest.raises(DecryptError) as bad:
        wrong.open(sealed, AAD)
    assert bad.value.key == 'aesgcm key "key1"' and "does not decrypt" in bad.value.reason
    encrypted_only = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: k, secret: {B1}}}]}}}}]")
    with pytest.raises(DecryptError, match="plain text and no identity provider"):
        encrypted_only.open(SECRET, AAD)


def test_identity_never_reads_an_encrypted_value_as_plain() -> None:
    sealed = secrets_transformer(f"[{{aesgcm: {{keys: [{{name: key1, secret: {B1}}}]}}}}]").seal(
        SECRET, AAD
    )
    with pytest.raises(DecryptError, match="not in the providers"):
        secrets_transformer("[{identity: {}}]").open(sealed, AAD)


def test_resources_match_as_kube_names_them_and_the_first_entry_applies() -> None:
    text = (
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources: [secrets, deployments.apps]\n"
        f"    providers: [{{aesgcm: {{keys: [{{name: a, secret: {B1}}}]}}}}]\n"
        "  - resources: ['*.apps']\n"
        "    providers: [{identity: {}}]\n"
        "  - resources: ['*.']\n"
        f"    providers: [{{aescbc: {{keys: [{{name: c, secret: {B2}}}]}}}}]\n"
    )
    parsed = parse_config(text, "test.yaml")

    def writer(res: str) -> str | None:
        t = parsed.transformer(res)
        return t.providers[0].kind if t else None

    assert writer("core/secrets") == "aesgcm"
    assert writer("apps/deployments") == "aesgcm"
    assert writer("apps/statefulsets") == "identity"
    assert writer("core/configmaps") == "aescbc"
    assert writer("batch/jobs") is None
    everything = parse_config(config("[{identity: {}}]", "['*.*']"))
    assert everything.transformer("example.com/widgets") is not None
    assert resource_name("core/secrets") == "secrets"
    assert resource_name("apps/deployments") == "deployments.apps"


@pytest.mark.parametrize(
    ("providers", "resources", "message"),
    [
        (
            f"[{{aesgcm: {{keys: [{{name: k, secret: {base64.b64encode(b'x' * 31).decode()}}}]}}}}]",
            "[secrets]",
            "secret is not of the expected length, got 31, expected one of [16, 24, 32]",
        ),
        (
            "[{aesgcm: {keys: [{name: k, secret: 'not base64!'}]}}]",
            "[secrets]",
            "secrets must be base64 encoded",
        ),
        (
            "[{aesgcm: {keys: [{secret: " + B1 + "}]}}]",
            "[secrets]",
            "name is a mandatory field for a key",
        ),
        ("[{aesgcm: {keys: []}}]", "[secrets]", "at least one key is required"),
        (
            f"[{{secretbox: {{keys: [{{name: k, secret: {B1}}}]}}}}]",
            "[secrets]",
            "secretbox is not supported",
        ),
        (
            "[{kms: {name: x, endpoint: 'unix:///kms.sock'}}]",
            "[secrets]",
            "kms providers are not supported",
        ),
        (
            f"[{{identity: {{}}, aesgcm: {{keys: [{{name: k, secret: {B1}}}]}}}}]",
            "[secrets]",
            "more than one provider specified in a single element",
        ),
        ("[{aes-gcm: {}}]", "[secrets]", "unknown field 'aes-gcm'"),
        ("[]", "[secrets]", "at least one provider is required"),
        ("[{identity: {}}]", "['*']", "use '*.' to encrypt all the resources"),
        ("[{identity: {}}]", "[Secrets]", "should not contain capital letters"),
        ("[{identity: {}}]", "[secrets, secrets]", "cannot be specified multiple times"),
        ("[{identity: {}}]", "[secrets, '*.']", "overlapping resources"),
        ("[{identity: {}}]", "['secrets.*']", "across groups is not supported"),
        ("[{identity: {}}]", "['events.events.k8s.io']", "Use 'events' instead"),
    ],
)
def test_an_invalid_config_is_refused_with_kube_apiservers_message(
    providers: str, resources: str, message: str
) -> None:
    with pytest.raises(EncryptionError) as refused:
        parse_config(config(providers, resources), "enc.yaml")
    assert message in str(refused.value)
    assert str(refused.value).startswith("encryption provider config enc.yaml: resources[0]")
    assert B1 not in str(refused.value)


def test_a_config_of_another_kind_or_version_is_refused() -> None:
    with pytest.raises(EncryptionError, match="kind: must be EncryptionConfiguration"):
        parse_config("apiVersion: apiserver.config.k8s.io/v1\nkind: Other\nresources: []\n")
    with pytest.raises(EncryptionError, match=r"apiVersion: must be apiserver\.config\.k8s\.io/v1"):
        parse_config("apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n")
    with pytest.raises(EncryptionError, match="not valid YAML"):
        parse_config("resources: [")


def test_a_keys_secret_never_shows_in_its_repr() -> None:
    assert repr(K1) not in repr(Key("k", K1)) and "k" in repr(Key("k", K1))


def test_the_default_config_is_one_new_aesgcm_key_for_secrets_in_a_private_file(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        path = ensure_default_config(tmp_path / "state")
    finally:
        os.umask(old)
    assert path == tmp_path / "state" / DEFAULT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert ensure_default_config(tmp_path / "state").read_text() == text  # kept, not replaced
    parsed = load_for_server(tmp_path / "state", None)
    transformer = parsed.transformer("core/secrets")
    assert transformer is not None
    assert [p.kind for p in transformer.providers] == ["aesgcm", "identity"]
    assert parsed.transformer("core/configmaps") is None
    assert transformer.seal(SECRET, AAD).startswith(b"k8s:enc:aesgcm:v1:key1:")
    other = tmp_path / "other"
    ensure_default_config(other)
    assert (other / DEFAULT_FILE).read_text() != text  # a new random key each cluster


def test_the_operators_file_is_used_and_no_default_is_written(tmp_path: Path) -> None:
    mine = tmp_path / "enc.yaml"
    mine.write_text(config("[{identity: {}}]"))
    parsed = load_for_server(tmp_path / "state", mine)
    assert parsed.source == str(mine)
    assert not (tmp_path / "state" / DEFAULT_FILE).exists()
    with pytest.raises(EncryptionError, match="cannot read the encryption provider config"):
        load_for_server(tmp_path / "state", tmp_path / "missing.yaml")
