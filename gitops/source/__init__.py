"""The reconciler's Git source: fetch a repository, resolve a revision, check out a commit.

The service calls :class:`GitSource` (in a worker thread) for each Application, watches
local repositories with :class:`RefWatcher`, and hands push webhooks to
:func:`parse_webhook` / :func:`matches` to trigger a fetch early.
"""

from gitops.source.credentials import GitCredentials
from gitops.source.git import (
    GitSource,
    GitSourceOptions,
    Revision,
    SourceSpec,
    local_path,
    resolve_local,
)
from gitops.source.revisions import Version, VersionRange
from gitops.source.watch import RefWatcher, WatchOptions
from gitops.source.webhook import (
    WebhookIgnored,
    WebhookPush,
    WebhookRejected,
    matches,
    parse_webhook,
)

__all__ = [
    "GitCredentials",
    "GitSource",
    "GitSourceOptions",
    "RefWatcher",
    "Revision",
    "SourceSpec",
    "Version",
    "VersionRange",
    "WatchOptions",
    "WebhookIgnored",
    "WebhookPush",
    "WebhookRejected",
    "local_path",
    "matches",
    "parse_webhook",
    "resolve_local",
]
