"""Encryption at rest of stored objects, as kube-apiserver's ``EncryptionConfiguration``
(``--encryption-provider-config``) does it: Secrets by default, any listed resource.

Who calls it: :mod:`runtime.server.serve` resolves the config at start
(:func:`load_for_server`: the operator's file, or the built-in cluster's default written
on first start) and hands it to :class:`runtime.api.store.Store` through
``StoreOptions.encryption``. The store seals a listed resource's value before it reaches
SQLite (the ``objects`` table and the watch history in ``events``) and opens it when it
loads; memory, watches and responses hold plain JSON, so serving is unchanged and
resources that are not listed (everything but Secrets by default) pay nothing.

The config (kube-apiserver's format, ``apiserver.config.k8s.io/v1``)::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]          # also configmaps, deployments.apps, *.apps, *., *.*
        providers:
          - aesgcm:
              keys:
                - name: key2          # the first key of the first provider writes
                  secret: <base64 of 16, 24 or 32 random bytes>
                - name: key1          # every listed key and provider reads
                  secret: <base64>
          - identity: {}              # reads values stored in plain text

The built-in cluster's default: on first start, ``<state dir>/encryption-config.yaml``
(0600, in the 0700 state directory) is written with one random 32-byte ``aesgcm`` key
named ``key1`` for ``secrets`` and ``identity`` second; ``--encryption-provider-config
FILE`` (kube-apiserver's flag) uses the operator's file instead and writes none. The key
beside the database protects the database file and its copies (backups, a disk image
without the key file); a key kept elsewhere (the flag) also protects against whoever can
read the state directory. The config is read at start only (no reload: restart to
apply). If the default file is missing while the store holds values it wrote, the new
key written in its place is removed again and the start refused until it is restored.

The first entry whose ``resources`` match a resource applies. Providers: ``aesgcm``
(AES-GCM, 96-bit random nonce), ``aescbc`` (AES-CBC with PKCS#7 padding, as kube; weaker,
kube advises against it), ``identity`` (plain). ``secretbox`` (XSalsa20-Poly1305) is
refused with a clear error: the installed ``cryptography`` does not implement it, and
adding PyNaCl (libsodium) for a provider that ``aesgcm`` already covers is not worth a
native dependency. ``kms`` needs a KMS plugin and is refused too.

Stored form (byte-compatible with kube-apiserver's): ``k8s:enc:aesgcm:v1:<key name>:``
followed by the 12-byte nonce and the ciphertext with its 16-byte tag, the object's
storage key ``<res>/<namespace>/<name>`` (e.g. ``core/secrets/default/db``) as
additional authenticated data, so a value cannot be moved to another key;
``k8s:enc:aescbc:v1:<key name>:`` followed by the 16-byte IV and the ciphertext;
``identity`` stores the JSON itself.

Rotation and removal (the store does it at start, :meth:`Store.open`): a stored value
that is not under the current write key (the first key of the first provider) is
*stale*. At start, after every value was opened, the store rewrites each stale row of the
``objects`` table and of the watch history in place — same bytes of JSON, same
``resourceVersion``, nothing observable changes — drops the history older than the
retained window, then vacuums the database and truncates the WAL, so no old form
(plain text, or under a key about to be removed) is left in free pages. A second start
finds nothing stale and writes nothing. Hence:

* rotate: put a new key first in the provider's ``keys`` (keep the old one second),
  restart — everything is now under the new key — then remove the old key and restart
  (kube advises rotating an ``aesgcm`` key every 200,000 writes: random 96-bit nonces);
* encrypt an unencrypted store: make ``aesgcm`` the first provider and keep
  ``identity: {}`` after it, restart (the built-in default does this);
* stop encrypting: put ``identity: {}`` first and keep the ``aesgcm`` provider after it,
  restart — every value is stored in plain text — then remove ``aesgcm``.

A value that cannot be opened (its key is missing from the config, the key's secret is
not the one that wrote it, a plain value with no ``identity`` provider, encrypted values
of a resource the config no longer lists) stops the server from starting with an
:class:`EncryptionError` naming the resource, the object, the key and what to do: never
garbage served, never an object silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets as random_bytes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubemodel.files import FILE_MODE, private_dir

log = structlog.get_logger(__name__)

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
DEFAULT_FILE = "encryption-config.yaml"
"""The built-in cluster's config in its state directory (0600), written on first start."""

ENCRYPTED_PREFIX = b"k8s:enc:"
"""What every encrypted value starts with (and no JSON object does)."""

AES_KEY_SIZES = (16, 24, 32)
GCM_NONCE_SIZE = 12
CBC_IV_SIZE = 16


class EncryptionError(Exception):
    """The encryption config cannot be used, or stored values cannot be decrypted with
    it: the server does not start. Not retryable: the operator must change the config."""

    retryable = False


class DecryptError(Exception):
    """One stored value cannot be opened; ``key`` names the key (or provider) concerned,
    ``remedy`` what the operator can do. The store collects these into an
    :class:`EncryptionError`."""

    def __init__(self, key: str, reason: str, remedy: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.remedy = remedy


@dataclass(frozen=True)
class Key:
    """A named key of a provider; the secret never appears in a repr or a message."""

    name: str
    secret: bytes = field(repr=False)


class Provider(Protocol):
    """One entry of a resource's ``providers``."""

    kind: str

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        """The stored form of ``plain`` under this provider's write key."""
        ...

    def open(self, stored: bytes, aad: bytes) -> tuple[bytes, int] | None:
        """``(plain, index of the key that opened it)``, or None when ``stored`` is not
        this provider's; raises :class:`DecryptError` when it is but no key opens it."""
        ...

    def is_current(self, stored: bytes) -> bool:
        """Whether ``stored`` looks written by :meth:`seal` (by its prefix only)."""
        ...


def key_prefix(kind: str, name: str) -> bytes:
    """kube-apiserver's prefix of a value written by key ``name`` of provider ``kind``."""
    return b"k8s:enc:" + kind.encode() + b":v1:" + name.encode() + b":"


class _KeyedProvider:
    """Shared by aesgcm and aescbc: one prefix per key, the first key writes."""

    kind = ""

    def __init__(self, keys: Sequence[Key]) -> None:
        self.names = tuple(k.name for k in keys)
        self.prefixes = tuple(key_prefix(self.kind, k.name) for k in keys)

    def is_current(self, stored: bytes) -> bool:
        return stored.startswith(self.prefixes[0])

    def _try(self, body: bytes, index: int, aad: bytes) -> bytes:
        raise NotImplementedError

    def open(self, stored: bytes, aad: bytes) -> tuple[bytes, int] | None:
        failed: str | None = None
        for index, prefix in enumerate(self.prefixes):
            if stored.startswith(prefix):
                try:
                    return self._try(stored[len(prefix) :], index, aad), index
                except (InvalidTag, ValueError):
                    failed = failed or self.names[index]
        if failed is None:
            return None
        raise DecryptError(
            f'{self.kind} key "{failed}"',
            "the key's secret does not decrypt it (it is not the secret that wrote it, or "
            "the value was moved from another object)",
            f'put back the secret key "{failed}" had when the value was written',
        )


class AESGCMProvider(_KeyedProvider):
    """``aesgcm``: prefix, 12-byte random nonce, AES-GCM ciphertext and tag."""

    kind = "aesgcm"

    def __init__(self, keys: Sequence[Key]) -> None:
        super().__init__(keys)
        self._aeads = tuple(AESGCM(k.secret) for k in keys)

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(GCM_NONCE_SIZE)
        return self.prefixes[0] + nonce + self._aeads[0].encrypt(nonce, plain, aad)

    def _try(self, body: bytes, index: int, aad: bytes) -> bytes:
        if len(body) < GCM_NONCE_SIZE + 16:
            raise ValueError("too short")
        return self._aeads[index].decrypt(body[:GCM_NONCE_SIZE], body[GCM_NONCE_SIZE:], aad)


class AESCBCProvider(_KeyedProvider):
    """``aescbc``: prefix, 16-byte random IV, AES-CBC ciphertext of the PKCS#7-padded
    value (no authentication: as kube-apiserver's, which advises aesgcm instead)."""

    kind = "aescbc"

    def __init__(self, keys: Sequence[Key]) -> None:
        super().__init__(keys)
        self._ciphers = tuple(algorithms.AES(k.secret) for k in keys)

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        iv = os.urandom(CBC_IV_SIZE)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(self._ciphers[0], modes.CBC(iv)).encryptor()
        return self.prefixes[0] + iv + encryptor.update(padded) + encryptor.finalize()

    def _try(self, body: bytes, index: int, aad: bytes) -> bytes:
        if len(body) < 2 * CBC_IV_SIZE or len(body) % CBC_IV_SIZE:
            raise ValueError("not a whole number of blocks")
        decryptor = Cipher(self._ciphers[index], modes.CBC(body[:CBC_IV_SIZE])).decryptor()
        padded = decryptor.update(body[CBC_IV_SIZE:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


class IdentityProvider:
    """``identity``: the value as it is; reads anything not encrypted."""

    kind = "identity"

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        return plain

    def open(self, stored: bytes, aad: bytes) -> tuple[bytes, int] | None:
        return None if stored.startswith(ENCRYPTED_PREFIX) else (stored, 0)

    def is_current(self, stored: bytes) -> bool:
        return not stored.startswith(ENCRYPTED_PREFIX)


def describe_stored(stored: bytes) -> str:
    """``aesgcm key "k1"`` for an encrypted value, ``plain text`` otherwise (messages)."""
    if not stored.startswith(ENCRYPTED_PREFIX):
        return "plain text"
    parts = stored[len(ENCRYPTED_PREFIX) :].split(b":", 3)
    if len(parts) < 4:
        return "an unknown encryption format"
    kind, name = parts[0].decode(errors="replace"), parts[2].decode(errors="replace")
    return f'{kind} key "{name}"'


class Transformer:
    """The providers of one resource: the first writes, all read."""

    def __init__(self, resource: str, providers: Sequence[Provider]) -> None:
        self.resource = resource
        self.providers = tuple(providers)
        self._writer = self.providers[0]

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        return self._writer.seal(plain, aad)

    def is_current(self, stored: bytes) -> bool:
        return self._writer.is_current(stored)

    def open(self, stored: bytes, aad: bytes) -> tuple[bytes, bool]:
        """``(plain, stale)``: stale when not written by the current write key."""
        failure: DecryptError | None = None
        for pindex, provider in enumerate(self.providers):
            try:
                opened = provider.open(stored, aad)
            except DecryptError as exc:
                failure = failure or exc
                continue
            if opened is not None:
                plain, kindex = opened
                return plain, pindex != 0 or kindex != 0
        if failure is not None:
            raise failure
        what = describe_stored(stored)
        if what == "plain text":
            raise DecryptError(
                "identity",
                "it is stored in plain text and no identity provider is listed",
                "add `- identity: {}` as the last provider (the server then encrypts it at start)",
            )
        raise DecryptError(
            what,
            "the key is not in the providers",
            f"add {what} back to the providers of {self.resource} (second, to read it; "
            "the server then rewrites the value under the first key at start)",
        )


def storage_aad(res: str, namespace: str, name: str) -> bytes:
    """The additional authenticated data of a value: its storage key."""
    return f"{res}/{namespace}/{name}".encode()


def resource_name(res: str) -> str:
    """A store key (``core/secrets``, ``apps/deployments``) as the config names it
    (``secrets``, ``deployments.apps``)."""
    group, _, plural = res.partition("/")
    return plural if group == "core" else f"{plural}.{group}"


@dataclass(frozen=True)
class Rule:
    """One entry of ``resources``: what it matches, as (group, resource) with ``*``."""

    matches: tuple[tuple[str, str], ...]
    transformer: Transformer

    def applies(self, group: str, resource: str) -> bool:
        return any(
            (g == "*" or g == group) and (r == "*" or r == resource) for g, r in self.matches
        )


class EncryptionConfig:
    """A parsed ``EncryptionConfiguration``: which resources are sealed, and how."""

    def __init__(self, source: str, rules: Sequence[Rule]) -> None:
        self.source = source
        self.rules = tuple(rules)
        #: Set when the file was missing and has just been written with a new key.
        self.created = False
        self._cache: dict[str, Transformer | None] = {}

    def transformer(self, res: str) -> Transformer | None:
        """The transformer of store key ``res``; None when no entry lists it."""
        try:
            return self._cache[res]
        except KeyError:
            pass
        group, _, plural = res.partition("/")
        group = "" if group == "core" else group
        found = next((r.transformer for r in self.rules if r.applies(group, plural)), None)
        self._cache[res] = found
        return found

    def discard_if_created(self) -> None:
        """Remove the file when :func:`load_for_server` has just written it (a store it
        cannot read must not make a new key look like the cluster's)."""
        if self.created:
            Path(self.source).unlink(missing_ok=True)
            log.warning("encryption.new_config_removed", path=self.source)

    def summary(self) -> dict[str, str]:
        """What each entry writes with, for the start-up log (names, never secrets)."""
        out = {}
        for rule in self.rules:
            writer = rule.transformer.providers[0]
            names = getattr(writer, "names", ())
            out[rule.transformer.resource] = (
                f'{writer.kind} key "{names[0]}"' if names else writer.kind
            )
        return out


# --- parsing ---------------------------------------------------------------------------


def _fail(source: str, path: str, message: str) -> EncryptionError:
    return EncryptionError(f"encryption provider config {source}: {path}: {message}")


def _mapping(value: Any, source: str, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(source, path, f"must be a mapping, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _fail(
            source, path, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )
    return value


def _list(value: Any, source: str, path: str, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(source, path, f"at least one {what} is required")
    return value


def _parse_group_resource(name: str) -> tuple[str, str]:
    """``schema.ParseGroupResource``: ``deployments.apps`` -> (apps, deployments)."""
    resource, dot, group = name.partition(".")
    return (group if dot else ""), resource


def _parse_resources(value: Any, source: str, path: str) -> tuple[tuple[str, str], ...]:
    names = _list(value, source, path, "resource")
    parsed = []
    for i, name in enumerate(names):
        where = f"{path}[{i}]"
        if not isinstance(name, str) or not name:
            raise _fail(source, where, "must be a resource name such as secrets")
        if name.lower() != name:
            raise _fail(source, where, "resource name should not contain capital letters")
        if name == "*":
            raise _fail(
                source,
                where,
                "use '*.' to encrypt all the resources from core API group or *.* to "
                "encrypt all resources",
            )
        group, resource = _parse_group_resource(name)
        if group == "events.k8s.io":
            raise _fail(
                source,
                where,
                "'*.events.k8s.io' objects are stored using the 'events' API group in "
                "etcd. Use 'events' instead in the config file",
            )
        if group == "extensions":
            raise _fail(
                source,
                where,
                "'extensions' group has been removed and cannot be used for encryption",
            )
        if group == "*" and resource != "*":
            raise _fail(
                source, where, "encrypting the same resource across groups is not supported"
            )
        parsed.append((group, resource))
    if len(set(parsed)) != len(parsed):
        raise _fail(source, path, "the same resource cannot be specified multiple times")
    for a in parsed:
        for b in parsed:
            if a is not b and (a == ("*", "*") or (a[0] == b[0] and "*" in (a[1], b[1]))):
                raise _fail(
                    source,
                    path,
                    "using overlapping resources such as 'secrets' and '*.' in the same "
                    "resource list is not allowed as they will be masked",
                )
    return tuple(parsed)


def _parse_keys(value: Any, source: str, path: str, sizes: tuple[int, ...]) -> list[Key]:
    if not isinstance(value, dict):
        raise _fail(source, path, "must be a mapping with keys")
    _mapping(value, source, path, {"keys"})
    keys = []
    for i, item in enumerate(_list(value.get("keys"), source, f"{path}.keys", "key")):
        where = f"{path}.keys[{i}]"
        item = _mapping(item, source, where, {"name", "secret"})
        name, secret = item.get("name"), item.get("secret")
        if not isinstance(name, str) or not name:
            raise _fail(source, f"{where}.name", "name is a mandatory field for a key")
        if not isinstance(secret, str) or not secret:
            raise _fail(source, f"{where}.secret", "secret is a mandatory field for a key")
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(source, f"{where}.secret", "secrets must be base64 encoded") from None
        if len(raw) not in sizes:
            raise _fail(
                source,
                f"{where}.secret",
                f"secret is not of the expected length, got {len(raw)}, expected one of "
                f"{list(sizes)}",
            )
        keys.append(Key(name, raw))
    return keys


_PROVIDER_KINDS = {"aesgcm", "aescbc", "secretbox", "identity", "kms"}


def _parse_provider(value: Any, source: str, path: str) -> Provider:
    entry = _mapping(value, source, path, _PROVIDER_KINDS)
    kinds = [k for k in _PROVIDER_KINDS if k in entry]
    if not kinds:
        raise _fail(
            source,
            path,
            "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, "
            "Secretbox, Identity",
        )
    if len(kinds) > 1:
        raise _fail(
            source,
            path,
            "more than one provider specified in a single element, should split into "
            "different list elements",
        )
    kind = kinds[0]
    body = entry[kind]
    if kind == "identity":
        if body not in (None, {}):
            raise _fail(source, f"{path}.identity", "takes no settings: write `identity: {}`")
        return IdentityProvider()
    if kind == "aesgcm":
        return AESGCMProvider(_parse_keys(body, source, f"{path}.aesgcm", AES_KEY_SIZES))
    if kind == "aescbc":
        return AESCBCProvider(_parse_keys(body, source, f"{path}.aescbc", AES_KEY_SIZES))
    if kind == "secretbox":
        raise _fail(
            source,
            f"{path}.secretbox",
            "secretbox is not supported by this server (XSalsa20-Poly1305 is not in its "
            "crypto library): use aesgcm",
        )
    raise _fail(
        source,
        f"{path}.kms",
        "kms providers are not supported by this server (there is no KMS plugin): use aesgcm",
    )


def parse_config(text: str, source: str = "<config>") -> EncryptionConfig:
    """Parse and validate an ``EncryptionConfiguration`` (YAML or JSON); raises
    :class:`EncryptionError` naming ``source`` and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionError(
            f"encryption provider config {source}: not valid YAML: {exc}"
        ) from None
    doc = _mapping(doc, source, "(top level)", {"apiVersion", "kind", "resources"})
    if doc.get("kind") != KIND:
        raise _fail(source, "kind", f"must be {KIND}, not {doc.get('kind')!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise _fail(source, "apiVersion", f"must be {API_VERSION}, not {doc.get('apiVersion')!r}")
    rules = []
    for i, item in enumerate(_list(doc.get("resources"), source, "resources", "resources entry")):
        where = f"resources[{i}]"
        item = _mapping(item, source, where, {"resources", "providers"})
        matches = _parse_resources(item.get("resources"), source, f"{where}.resources")
        providers = [
            _parse_provider(p, source, f"{where}.providers[{j}]")
            for j, p in enumerate(
                _list(item.get("providers"), source, f"{where}.providers", "provider")
            )
        ]
        label = ",".join(str(r) for r in item["resources"])
        rules.append(Rule(matches, Transformer(label, providers)))
    return EncryptionConfig(source, rules)


def load_config(path: Path) -> EncryptionConfig:
    """Read and parse the operator's (or the default) config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EncryptionError(f"cannot read the encryption provider config {path}: {exc}") from None
    return parse_config(text, str(path))


def default_config_text(key_name: str = "key1") -> str:
    """A config encrypting Secrets with one new random 32-byte aesgcm key, and reading
    values written before encryption was on (``identity`` second)."""
    secret = base64.b64encode(random_bytes.token_bytes(32)).decode()
    return (
        "# Encryption at rest of the built-in cluster's Secrets (kube-apiserver's format).\n"
        "# Keep this file: without it the stored Secrets cannot be read. To rotate, add a\n"
        "# new key first under keys and restart the cluster; then remove the old key.\n"
        f"apiVersion: {API_VERSION}\n"
        f"kind: {KIND}\n"
        "resources:\n"
        "  - resources:\n"
        "      - secrets\n"
        "    providers:\n"
        "      - aesgcm:\n"
        "          keys:\n"
        f"            - name: {key_name}\n"
        f"              secret: {secret}\n"
        "      - identity: {}\n"
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` 0600, atomically and durably (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ensure_default_config(state_dir: Path) -> Path:
    """The built-in cluster's config, ``<state_dir>/encryption-config.yaml`` (0600 in the
    0700 state directory), written with a new random key when missing."""
    path = private_dir(state_dir) / DEFAULT_FILE
    if not path.exists():
        write_private(path, default_config_text())
        log.info("encryption.config_written", path=str(path))
    else:
        path.chmod(FILE_MODE)
    return path


def load_for_server(state_dir: Path, config_file: Path | None) -> EncryptionConfig:
    """What the API server encrypts with: ``config_file`` (``--encryption-provider-config``)
    when given, else the state directory's default (written on first start)."""
    created = False
    if config_file is None:
        created = not (state_dir / DEFAULT_FILE).exists()
        config_file = ensure_default_config(state_dir)
    path = config_file
    config = load_config(path)
    config.created = created
    try:
        readable = path.stat().st_mode & 0o077
    except OSError:
        readable = 0
    if readable:
        log.warning(
            "encryption.config_readable_by_others",
            path=str(path),
            hint=f"chmod 600 {path}: it holds the keys of the data at rest",
        )
    log.info("encryption.config_loaded", path=str(path), writes=config.summary())
    return config


class Unsealer:
    """Opens the values the store loads at start, remembering which are stale (to be
    rewritten under the current write key) and which cannot be opened (reported together
    by :meth:`error`). Used by :meth:`runtime.api.store.Store.open` only."""

    def __init__(self, config: EncryptionConfig | None) -> None:
        self.config = config
        self._failures: dict[tuple[str, str, str, str], list[str]] = {}

    def transformer(self, res: str) -> Transformer | None:
        return self.config.transformer(res) if self.config is not None else None

    def open(self, res: str, namespace: str, name: str, stored: bytes) -> tuple[bytes, bool] | None:
        """``(plain, stale)``, or None when the value cannot be opened (recorded)."""
        transformer = self.transformer(res)
        if transformer is None:
            if not stored.startswith(ENCRYPTED_PREFIX):
                return stored, False
            resource = resource_name(res)
            reason = (
                f"the config lists no providers for {resource}"
                if self.config is not None
                else "the store was opened without one"
            )
            self.fail(
                res,
                namespace,
                name,
                DecryptError(
                    describe_stored(stored),
                    reason,
                    f"list {resource} in the config with the provider and key that wrote it "
                    "(after `identity: {}` to store it in plain text again)",
                ),
            )
            return None
        try:
            return transformer.open(stored, storage_aad(res, namespace, name))
        except DecryptError as exc:
            self.fail(res, namespace, name, exc)
            return None

    def is_stale_remnant(self, res: str, stored: bytes) -> bool:
        """Whether a row of history past the retained window (never read again) is not in
        the current write form (checked by prefix only)."""
        transformer = self.transformer(res)
        if transformer is None:
            return stored.startswith(ENCRYPTED_PREFIX)
        return not transformer.is_current(stored)

    def fail(self, res: str, namespace: str, name: str, exc: DecryptError) -> None:
        key = (resource_name(res), exc.key, exc.reason, exc.remedy)
        self._failures.setdefault(key, []).append(f"{namespace}/{name}" if namespace else name)

    def error(self) -> EncryptionError | None:
        """All failures as one error naming resource, object, key and remedy; None when
        every value opened."""
        if not self._failures:
            return None
        source = (
            f"the encryption provider config {self.config.source}"
            if self.config is not None
            else "no encryption provider config"
        )
        lines = []
        for (resource, key, reason, remedy), rows in self._failures.items():
            objects = sorted(set(rows))
            more = ", ..." if len(objects) > 3 else ""
            lines.append(
                f"{len(rows)} stored values of {resource} ({len(objects)} objects with their "
                f"watch history: {', '.join(objects[:3])}{more}) cannot be decrypted with "
                f"{source}: {key}: {reason}. To start the server: {remedy}."
            )
        if self.config is not None and self.config.created:
            lines.append(
                f"{self.config.source} did not exist: a new key was tried and not kept; "
                "restore the file the data was written with (from a backup)."
            )
        lines.append("The server does not start rather than serve wrong or missing objects.")
        return EncryptionError(" ".join(lines))
