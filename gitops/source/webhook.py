"""Verify and read push webhooks of GitHub, GitLab and Gitea (Forgejo), to fetch early.

:func:`parse_webhook` checks a request's signature against the shared secret and returns
the :class:`WebhookPush` it announces (the repository's URLs, the ref, the new commit);
:func:`matches` tells whether a push concerns an Application's repository URL. The HTTP
endpoint (built elsewhere) answers with the status of a :class:`WebhookRejected`:

* 400 - no provider headers, a body that is not a push payload;
* 401 - a secret is configured but the request carries no signature/token;
* 403 - the signature or token is wrong;
* 202 (:class:`WebhookIgnored`, a subclass) - verified but nothing to do: GitHub's
  ``ping``, Gitea ``create``/``delete`` and every other event. 2xx so the provider
  marks the delivery successful and does not retry it.

Signatures are checked before the event type, so an unauthenticated caller learns
nothing. With ``secret=None`` nothing is verified: the caller (the service's HTTP
endpoint) has authenticated the request otherwise (its API token) or explicitly allows
unsigned webhooks on a loopback listener.

Each push carries the provider's delivery ID (:func:`delivery_id`; ``""`` without one)
and whether its body's HMAC signature was verified (``signed``), so the endpoint can
ignore replayed deliveries (:mod:`gitops.service.replay`).

Providers: GitHub (``X-GitHub-Event``, ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``,
JSON or form-encoded ``payload=``), GitLab (``X-Gitlab-Event: Push Hook`` / ``Tag Push
Hook``, ``X-Gitlab-Token`` equal to the secret), Gitea and Forgejo (``X-Gitea-Event`` /
``X-Forgejo-Event: push``, ``X-Gitea-Signature`` / ``X-Forgejo-Signature``: hex
HMAC-SHA256). Gitea also sends GitHub's headers; its own win. Delivery IDs: GitHub
``X-GitHub-Delivery``; GitLab ``Idempotency-Key`` (17.4+), ``X-Gitlab-Event-UUID``,
``X-Gitlab-Webhook-UUID``; Gitea ``X-Gitea-Delivery``, Forgejo ``X-Forgejo-Delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

ZERO_SHA = "0" * 40


class WebhookRejected(Exception):
    """The request is refused (or ignored): answer ``status_code`` with ``message``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message


class WebhookIgnored(WebhookRejected):
    """A verified delivery that announces no push (a ping, another event): 202."""

    def __init__(self, message: str) -> None:
        super().__init__(202, message)


@dataclass(frozen=True)
class WebhookPush:
    """A push: ``ref`` (``refs/heads/main``, ``refs/tags/v1``) now points at ``after``."""

    provider: str
    """``github``, ``gitlab`` or ``gitea``."""
    repository_urls: tuple[str, ...]
    ref: str
    after: str
    """The new commit; ``""`` when the ref was deleted."""
    delivery: str = field(default="", compare=False)
    """The provider's ID of this delivery (:func:`delivery_id`); ``""`` without one."""
    signed: bool = field(default=False, compare=False)
    """The body's HMAC signature was verified (GitHub, Gitea, Forgejo with a secret);
    GitLab's token does not sign the body."""

    @property
    def deleted(self) -> bool:
        return not self.after

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


_DELIVERY_HEADERS = {
    "gitea": ("x-gitea-delivery", "x-forgejo-delivery"),
    "forgejo": ("x-forgejo-delivery", "x-gitea-delivery"),
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"),
    "github": ("x-github-delivery",),
}
MAX_DELIVERY_ID = 200
"""Longer delivery IDs are cut (they are only compared, and logged)."""


def _provider(h: Mapping[str, str]) -> str | None:
    for name in ("gitea", "forgejo", "gitlab", "github"):
        if f"x-{name}-event" in h:
            return name
    return None


def delivery_id(headers: Mapping[str, str]) -> str:
    """The provider's ID of a webhook delivery (the same on a redelivery); ``""`` when
    the request has none."""
    h = {k.lower(): v for k, v in headers.items()}
    provider = _provider(h)
    for name in _DELIVERY_HEADERS.get(provider or "", ()):
        value = h.get(name, "").strip()
        if value:
            return value[:MAX_DELIVERY_ID]
    return ""


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str | None) -> WebhookPush:
    """The push a webhook request announces; :class:`WebhookRejected` otherwise."""
    h = {k.lower(): v for k, v in headers.items()}
    provider = _provider(h)
    if provider in ("gitea", "forgejo"):
        _check_hmac(h.get(f"x-{provider}-signature"), body, secret, prefix="")
        push = _gitea(h[f"x-{provider}-event"], _json(h, body))
    elif provider == "gitlab":
        _check_token(h.get("x-gitlab-token"), secret)
        push = _gitlab(h["x-gitlab-event"], _json(h, body))
    elif provider == "github":
        _check_hmac(h.get("x-hub-signature-256"), body, secret, prefix="sha256=")
        push = _github(h["x-github-event"], _json(h, body))
    else:
        raise WebhookRejected(400, "not a GitHub, GitLab or Gitea webhook (no event header)")
    signed = secret is not None and provider != "gitlab"
    return replace(push, delivery=delivery_id(h), signed=signed)


def _check_hmac(signature: str | None, body: bytes, secret: str | None, prefix: str) -> None:
    if secret is None:
        return
    if not signature:
        raise WebhookRejected(401, "the request is not signed")
    expected = prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise WebhookRejected(403, "the signature does not match")


def _check_token(token: str | None, secret: str | None) -> None:
    if secret is None:
        return
    if not token:
        raise WebhookRejected(401, "the request carries no token")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise WebhookRejected(403, "the token does not match")


def _json(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    try:
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode(), strict_parsing=False)
            payload = json.loads(form["payload"][0])
        else:
            payload = json.loads(body)
    except (ValueError, KeyError, UnicodeDecodeError):
        raise WebhookRejected(400, "the body is not a JSON webhook payload") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "the payload is not a JSON object")
    return payload


def _github(event: str, payload: dict[str, Any]) -> WebhookPush:
    if event == "ping":
        raise WebhookIgnored("pong")
    if event != "push":
        raise WebhookIgnored(f"ignoring the GitHub {event!r} event")
    repo = _object(payload, "repository")
    urls = _urls(repo, "clone_url", "ssh_url", "html_url", "git_url", "svn_url")
    return _push("github", payload, urls)


def _gitlab(event: str, payload: dict[str, Any]) -> WebhookPush:
    if event not in ("Push Hook", "Tag Push Hook"):
        raise WebhookIgnored(f"ignoring the GitLab {event!r} event")
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    assert isinstance(project, dict) and isinstance(repo, dict)
    urls = _urls(project, "git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")
    urls += _urls(repo, "git_http_url", "git_ssh_url", "homepage", "url")
    if not urls:
        raise WebhookRejected(400, "the payload names no repository (project / repository)")
    return _push("gitlab", payload, tuple(dict.fromkeys(urls)))


def _gitea(event: str, payload: dict[str, Any]) -> WebhookPush:
    if event != "push":
        raise WebhookIgnored(f"ignoring the Gitea {event!r} event")
    repo = _object(payload, "repository")
    return _push("gitea", payload, _urls(repo, "clone_url", "ssh_url", "html_url"))


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"the payload has no {key!r} object")
    return value


def _urls(obj: dict[str, Any], *keys: str) -> tuple[str, ...]:
    return tuple(obj[k] for k in keys if isinstance(obj.get(k), str) and obj[k])


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _push(provider: str, payload: dict[str, Any], urls: tuple[str, ...]) -> WebhookPush:
    ref, after = payload.get("ref"), payload.get("after")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookRejected(400, "the payload has no 'ref' (refs/heads/... or refs/tags/...)")
    if not isinstance(after, str) or not _SHA.match(after):
        raise WebhookRejected(400, "the payload has no 'after' commit")
    if not urls:
        raise WebhookRejected(400, "the payload names no repository URL")
    return WebhookPush(provider, urls, ref, "" if set(after) == {"0"} else after)


def repository_identity(url: str) -> tuple[str, str]:
    """``(host, path)`` of a repository URL, lower-cased, without scheme, user, port,
    ``.git`` suffix or slashes at the ends; ``host`` is ``""`` for local paths."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        path = parts.path
    elif re.match(r"^(?:[^@/\s]+@)?[^/:\s]+:", url):  # scp-like git@host:org/repo.git
        userhost, path = url.split(":", 1)
        host = userhost.rsplit("@", 1)[-1]
    else:
        host, path = "", url
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return host.lower(), path.lower()


def matches(push: WebhookPush, repo_url: str) -> bool:
    """Whether ``push`` concerns the repository at ``repo_url`` (any of its URLs)."""
    want = repository_identity(repo_url)
    return any(repository_identity(u) == want for u in push.repository_urls)
