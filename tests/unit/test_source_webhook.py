"""Push webhooks of GitHub, GitLab and Gitea: signatures accepted and rejected, payloads read."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote

import pytest

from gitops.source.webhook import (
    WebhookIgnored,
    WebhookPush,
    WebhookRejected,
    delivery_id,
    matches,
    parse_webhook,
    repository_identity,
)

SECRET = "webhook-secret"
AFTER = "a" * 40


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_body(ref: str = "refs/heads/main", after: str = AFTER) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "after": after,
            "repository": {
                "clone_url": "https://github.com/Org/Repo.git",
                "ssh_url": "git@github.com:Org/Repo.git",
                "html_url": "https://github.com/Org/Repo",
            },
        }
    ).encode()


def gitlab_body(after: str = AFTER) -> bytes:
    return json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/tags/v1.2.0",
            "after": after,
            "checkout_sha": after,
            "project": {
                "git_http_url": "https://gitlab.example.com/group/sub/project.git",
                "git_ssh_url": "git@gitlab.example.com:group/sub/project.git",
                "web_url": "https://gitlab.example.com/group/sub/project",
            },
        }
    ).encode()


def gitea_body() -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/dev",
            "after": AFTER,
            "repository": {
                "clone_url": "https://gitea.local:3000/me/app.git",
                "ssh_url": "ssh://git@gitea.local:2222/me/app.git",
                "html_url": "https://gitea.local:3000/me/app",
            },
        }
    ).encode()


def test_a_signed_github_push_is_accepted_and_names_the_repository() -> None:
    body = github_body()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(body)}
    push = parse_webhook(headers, body, SECRET)
    assert push == WebhookPush(
        "github",
        (
            "https://github.com/Org/Repo.git",
            "git@github.com:Org/Repo.git",
            "https://github.com/Org/Repo",
        ),
        "refs/heads/main",
        AFTER,
    )
    assert push.branch == "main" and push.tag is None and not push.deleted
    assert matches(push, "https://github.com/org/repo")
    assert matches(push, "ssh://git@GitHub.com/org/repo.git/")
    assert not matches(push, "https://github.com/org/other")


def test_a_form_encoded_github_push_is_read_from_its_payload_field() -> None:
    body = ("payload=" + quote(github_body().decode())).encode()
    headers = {
        "x-github-event": "push",
        "x-hub-signature-256": "sha256=" + sign(body),
        "content-type": "application/x-www-form-urlencoded",
    }
    assert parse_webhook(headers, body, SECRET).ref == "refs/heads/main"


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("sha256=" + "0" * 64, 403), ("sha1=abc", 403)],
)
def test_a_github_push_with_a_missing_or_wrong_signature_is_rejected(
    signature: str | None, status: int
) -> None:
    body = github_body()
    headers = {"X-GitHub-Event": "push"}
    if signature:
        headers["X-Hub-Signature-256"] = signature
    with pytest.raises(WebhookRejected) as e:
        parse_webhook(headers, body, SECRET)
    assert e.value.status_code == status
    wrong_secret = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(body, "x")}
    with pytest.raises(WebhookRejected) as e:
        parse_webhook(wrong_secret, body, SECRET)
    assert e.value.status_code == 403


def test_a_github_ping_and_other_events_are_ignored_after_verification() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    with pytest.raises(WebhookIgnored) as e:
        parse_webhook(
            {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(body)}, body, SECRET
        )
    assert e.value.status_code == 202
    with pytest.raises(WebhookRejected) as rejected:
        parse_webhook({"X-GitHub-Event": "ping"}, body, SECRET)
    assert rejected.value.status_code == 401
    with pytest.raises(WebhookIgnored):
        parse_webhook(
            {"X-GitHub-Event": "issues", "X-Hub-Signature-256": "sha256=" + sign(body)},
            body,
            SECRET,
        )


def test_a_gitlab_tag_push_with_the_right_token_is_accepted_and_a_wrong_one_rejected() -> None:
    body = gitlab_body()
    push = parse_webhook(
        {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET}, body, SECRET
    )
    assert (push.provider, push.tag, push.after) == ("gitlab", "v1.2.0", AFTER)
    assert matches(push, "git@gitlab.example.com:group/sub/project.git")
    for token, status in ((None, 401), ("nope", 403)):
        headers = {"X-Gitlab-Event": "Push Hook"}
        if token:
            headers["X-Gitlab-Token"] = token
        with pytest.raises(WebhookRejected) as e:
            parse_webhook(headers, body, SECRET)
        assert e.value.status_code == status
    with pytest.raises(WebhookIgnored):
        parse_webhook(
            {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": SECRET}, body, SECRET
        )


def test_a_deleted_ref_has_no_after_commit() -> None:
    body = gitlab_body(after="0" * 40)
    push = parse_webhook(
        {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET}, body, SECRET
    )
    assert push.deleted and push.after == ""


def test_a_gitea_push_is_verified_by_its_own_signature_even_with_github_headers() -> None:
    body = gitea_body()
    headers = {
        "X-Gitea-Event": "push",
        "X-GitHub-Event": "push",
        "X-Gitea-Signature": sign(body),
        "X-Hub-Signature-256": "sha256=" + sign(body),
    }
    push = parse_webhook(headers, body, SECRET)
    assert (push.provider, push.branch) == ("gitea", "dev")
    assert matches(push, "https://gitea.local/me/app")
    with pytest.raises(WebhookRejected) as e:
        parse_webhook({**headers, "X-Gitea-Signature": sign(body, "wrong")}, body, SECRET)
    assert e.value.status_code == 403


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b"{}"),
        ({"X-GitHub-Event": "push"}, b"not json"),
        ({"X-GitHub-Event": "push"}, b"[1, 2]"),
        (
            {"X-GitHub-Event": "push"},
            b'{"ref": "refs/heads/main", "after": "' + AFTER.encode() + b'"}',
        ),
        ({"X-GitHub-Event": "push"}, b'{"ref": "main", "after": "x", "repository": {}}'),
        (
            {"X-Gitlab-Event": "Push Hook"},
            b'{"ref": "refs/heads/x", "after": "' + AFTER.encode() + b'"}',
        ),
    ],
)
def test_malformed_payloads_are_bad_requests(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(WebhookRejected) as e:
        parse_webhook(headers, body, None)
    assert e.value.status_code == 400


def test_without_a_secret_nothing_is_verified() -> None:
    push = parse_webhook({"X-GitHub-Event": "push"}, github_body(), None)
    assert push.after == AFTER
    assert not push.signed


def test_delivery_ids_are_read_per_provider_and_only_hmac_bodies_count_as_signed() -> None:
    body = github_body()
    github = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": "sha256=" + sign(body),
    }
    push = parse_webhook(github, body, SECRET)
    assert push.delivery == "72d3162e-cc78-11e3-81ab-4c9367dc0958" and push.signed
    unsigned = {k: v for k, v in github.items() if k != "X-Hub-Signature-256"}
    assert parse_webhook(unsigned, body, None).delivery == push.delivery
    # The delivery ID and the signature flag are not part of what the push says.
    assert push == parse_webhook({**github, "X-GitHub-Delivery": "other"}, body, SECRET)

    gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    lab = parse_webhook({**gitlab, "X-Gitlab-Event-UUID": "e-1"}, gitlab_body(), SECRET)
    assert lab.delivery == "e-1" and not lab.signed  # a token does not sign the body
    assert delivery_id({**gitlab, "Idempotency-Key": "k-1", "X-Gitlab-Event-UUID": "e-1"}) == "k-1"
    assert delivery_id({**gitlab, "X-Gitlab-Webhook-UUID": "w-1"}) == "w-1"

    gitea = {"X-Gitea-Event": "push", "X-Gitea-Delivery": "g-1", "X-GitHub-Delivery": "h-1"}
    assert delivery_id(gitea) == "g-1"  # Gitea's own header wins, as for the signature
    assert delivery_id({"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f-1"}) == "f-1"
    assert delivery_id({"X-GitHub-Event": "push"}) == ""
    assert delivery_id({"X-GitHub-Delivery": "no event header"}) == ""
    assert len(delivery_id({"X-GitHub-Event": "push", "X-GitHub-Delivery": "x" * 5000})) == 200


def test_repository_urls_are_compared_without_scheme_user_port_suffix_and_case() -> None:
    same = [
        "https://GitHub.com/org/repo.git",
        "https://user@github.com:443/org/repo/",
        "git@github.com:org/repo.git",
        "ssh://git@github.com:22/org/repo",
        "http://github.com/Org/Repo",
    ]
    assert {repository_identity(u) for u in same} == {("github.com", "org/repo")}
    assert repository_identity("file:///srv/git/app.git") == repository_identity("/srv/git/app")
    assert repository_identity("https://github.com/org/repo2") != ("github.com", "org/repo")
