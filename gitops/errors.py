"""Errors of the reconciler, each saying whether trying again can help.

Every step (source, build, plan, apply) raises a subclass of :class:`GitopsError`. The
service retries an Application after a ``retryable`` error on its interval with backoff
and keeps the last good revision applied; a permanent error (bad YAML, an unknown kind,
a bad config) waits for a new commit or a config change. Messages never contain
credentials.
"""

from __future__ import annotations


class GitopsError(Exception):
    """Base class. ``retryable`` says whether the same input may succeed later."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class ConfigError(GitopsError):
    """An Application or service config that does not validate (names the field)."""


class SourceError(GitopsError):
    """Cloning, fetching or resolving a revision failed (network errors are retryable)."""

    retryable = True


class BuildError(GitopsError):
    """The manifests of a revision are invalid: which file, which line, what is wrong.

    ``file`` is relative to the repository root; ``line`` is 1-based (``None`` when the
    problem is not tied to one line, e.g. a missing kustomization).
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = file or ""
        if file and line is not None:
            where = f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message
        self.file = file
        self.line = line


class BuildErrors(BuildError):
    """Several invalid objects found in one build, all reported together."""

    def __init__(self, errors: list[BuildError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class ClusterError(GitopsError):
    """The destination cluster refused or failed a request (``status`` from its Status)."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", retryable: bool | None = None
    ) -> None:
        if retryable is None:
            retryable = status in (0, 409, 429, 500, 502, 503, 504)
        super().__init__(message, retryable=retryable)
        self.status = status
        self.reason = reason
