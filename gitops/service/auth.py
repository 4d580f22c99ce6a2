"""Who may call the service's HTTP endpoints: its API token and its webhook policy.

The service (:mod:`gitops.service.core`) takes a bearer token for its mutating
endpoints (``POST /webhook`` without a valid provider signature) and, with
:attr:`ReadAccess.TOKEN`, for its read endpoints (``/status``, ``/metrics``,
``/readyz``; never ``/healthz``). Unless the operator passes one, the token is
:func:`load_or_create_token`'s: generated with :func:`secrets.token_urlsafe` on the
first start, written ``0600`` to ``state_dir/service-token`` (the directory is created
``0700``) and read back on later starts. ``gitops up`` and ``gitops serve`` print the
file's path; callers send ``Authorization: Bearer <token>``.

:class:`WebhookPolicy` says whether unsigned webhooks are accepted (only when explicitly
allowed *and* the listener is loopback: :func:`check_listener` refuses to start
otherwise) and how long delivery IDs are remembered to ignore replays
(:mod:`gitops.service.replay`). The HTTP layer (:mod:`gitops.service.http`) applies both.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog

from gitops.errors import ConfigError

log = structlog.get_logger(__name__)

TOKEN_FILE = "service-token"
"""The API token's file name in the state directory."""
MIN_TOKEN_LENGTH = 16
"""A token the operator writes into the file (or passes) must be at least this long."""


class ReadAccess(StrEnum):
    """Who may read ``/status``, ``/metrics`` and ``/readyz`` (``/healthz`` is always open)."""

    OPEN = "open"
    """Anyone who can reach the listener (the default)."""
    TOKEN = "token"
    """Only requests with the API token (401 without it, 403 with a wrong one)."""


@dataclass(frozen=True)
class WebhookPolicy:
    """How ``POST /webhook`` treats requests that are not signed, and replays."""

    allow_unsigned: bool = False
    """Accept webhooks without a signature when no secret is configured. Only on a
    loopback listener (127.0.0.0/8, ::1, localhost): the service refuses to start with
    it on any other address. Off: such a webhook is refused with 401."""
    replay_window: float = 600.0
    """Seconds a delivery (its ID, and the body of a signed one) is remembered: a
    second delivery with the same ID within the window is answered 200 and ignored."""
    replay_capacity: int = 10_000
    """Deliveries remembered at most (the oldest are forgotten first)."""


class Credential(StrEnum):
    """What a request's ``Authorization`` header proves."""

    NONE = "none"
    """No bearer token."""
    VALID = "valid"
    WRONG = "wrong"


def token_path(state_dir: Path) -> Path:
    """Where :func:`load_or_create_token` keeps the token of ``state_dir``."""
    return state_dir / TOKEN_FILE


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(
            f"{where}: the API token must be at least {MIN_TOKEN_LENGTH} printable characters"
            " without spaces (delete the file to have a new one generated)"
        )
    return token


def check_token(token: str) -> str:
    """``token`` if it is usable as the API token, else :class:`ConfigError`."""
    return _check_token(token, "the API token")


def load_or_create_token(state_dir: Path) -> str:
    """The service's API token: read from ``state_dir/service-token``, or generated and
    written there (mode 0600, atomically; ``state_dir`` is created 0700 if missing) on
    the first start. A file other users can read is narrowed to 0600 (and logged).
    :class:`ConfigError` when the file cannot be read or written, or holds no usable
    token."""
    path = token_path(state_dir)
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(0o600)
            log.warning(
                "token file was readable by others: narrowed to 0600",
                path=str(path),
                mode=oct(mode),
            )
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read or create the API token: {why}") from None
    return _check_token(token, str(path))


def _create(path: Path) -> None:
    """Write a new token to a private temporary file and link it into place: a
    concurrent start that got there first wins, and no reader sees a partial file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def credential(authorization: str | None, token: str) -> Credential:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token (compared
    in constant time)."""
    if not authorization:
        return Credential.NONE
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Credential.WRONG
    ok = hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )
    return Credential.VALID if ok else Credential.WRONG


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts connections from this machine: an address in
    127.0.0.0/8 or ::1, or ``localhost``. ``0.0.0.0``, ``::`` and other names are not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listener(host: str | None, policy: WebhookPolicy) -> None:
    """:class:`ConfigError` unless ``policy`` is safe on a listener bound to ``host``
    (``None``: no listener)."""
    if host is None or not policy.allow_unsigned or is_loopback(host):
        return
    raise ConfigError(
        f"unsigned webhooks may only be allowed on a loopback listener, not on {host!r}:"
        " configure a webhook secret (and set it in the Git provider's webhook), or listen"
        " on 127.0.0.1"
    )
