"""What an Application's ``revision`` means, and which commit it names among a set of refs.

A revision is ``HEAD`` (the remote's default branch), a branch, a tag, a full ref name
(``refs/heads/x``), a commit SHA (full or abbreviated, at least 4 hex digits) or a semver
range over tags (``>=1.2.0 <2``, ``~1.4``, ``^1.0``, ``1.x``, ``1.2.3 - 1.4``, ``>=1 || ^3``;
tags may carry a ``v`` prefix; the highest matching version wins). The range syntax is
the npm/node-semver one (commas are accepted as "and" too); pre-release versions match
only when a comparator of the same range names a pre-release of the same
``major.minor.patch``.

Pure code: :mod:`gitops.source.git` reads the refs of its cache and of local
repositories (the watcher) and calls :func:`resolve`; nothing here runs git.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitops.errors import SourceError

HEAD = "HEAD"
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(
    rf"^[vV]?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-({_IDENT}))?(?:\+{_IDENT})?$"
)
_PART = r"(\d+|[xX*])"
_PARTIAL = re.compile(rf"^[vV]?{_PART}(?:\.{_PART})?(?:\.{_PART})?(?:-({_IDENT}))?(?:\+{_IDENT})?$")
_OPERATOR = re.compile(r"^(>=|<=|>|<|=|~|\^)?(.*)$")


def is_full_sha(text: str) -> bool:
    """A complete (SHA-1 or SHA-256) object name in lower case."""
    return bool(_FULL_SHA.match(text))


@dataclass(frozen=True)
class Version:
    """A semantic version; build metadata is dropped (it does not order versions)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """``1.2.3``, ``v1.2.3-rc.1+build``; ``None`` for anything else (not every tag is a version)."""
        m = _VERSION.match(text)
        if not m:
            return None
        return cls(int(m[1]), int(m[2]), int(m[3]), _prerelease(m[4]))

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Sort key with semver precedence: a pre-release sorts before its release."""
        ids = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (*self.release, 0 if self.prerelease else 1, ids)

    def __str__(self) -> str:
        pre = "-" + ".".join(str(p) for p in self.prerelease) if self.prerelease else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}"


def _prerelease(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


@dataclass(frozen=True)
class Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        a, b = v.key(), self.version.key()
        if self.op == "<":
            return a < b
        if self.op == "<=":
            return a <= b
        if self.op == ">":
            return a > b
        if self.op == ">=":
            return a >= b
        return a == b


@dataclass(frozen=True)
class VersionRange:
    """Alternatives (``||``) of comparator sets that must all hold."""

    alternatives: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange | None:
        """The range, or ``None`` when ``text`` is not range syntax (e.g. a branch name)."""
        alternatives = []
        for alternative in text.split("||"):
            comparators = _parse_set(alternative)
            if comparators is None:
                return None
            alternatives.append(comparators)
        return cls(tuple(alternatives))

    def contains(self, v: Version) -> bool:
        return any(_set_contains(s, v) for s in self.alternatives)

    def highest(self, tags: Mapping[str, str]) -> tuple[str, Version] | None:
        """The tag (short name) with the highest matching version; ties prefer the longer name."""
        best: tuple[str, Version] | None = None
        for name in tags:
            v = Version.parse(name)
            if v is None or not self.contains(v):
                continue
            if best is None or (v.key(), len(name), name) > (best[1].key(), len(best[0]), best[0]):
                best = (name, v)
        return best


def _set_contains(comparators: tuple[Comparator, ...], v: Version) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if not v.prerelease:
        return True
    return any(c.version.prerelease and c.version.release == v.release for c in comparators)


def _parse_set(text: str) -> tuple[Comparator, ...] | None:
    text = re.sub(r"(>=|<=|>|<|=|~|\^)\s+", r"\1", text.replace(",", " ")).strip()
    if not text:
        return ()  # "" or "||" alternatives mean any version, as in node-semver
    words = text.split()
    if len(words) == 3 and words[1] == "-":
        return _hyphen(words[0], words[2])
    result: list[Comparator] = []
    for word in words:
        m = _OPERATOR.match(word)
        assert m is not None  # the pattern matches every string
        partial = _partial(m[2])
        if partial is None:
            return None
        result.extend(_expand(m[1] or "=", *partial))
    return tuple(result)


_Partial = tuple[int | None, int | None, int | None, tuple[int | str, ...]]


def _partial(text: str) -> _Partial | None:
    m = _PARTIAL.match(text)
    if not m:
        return None
    nums = [None if p is None or not p.isdigit() else int(p) for p in (m[1], m[2], m[3])]
    # a wildcard makes every later part a wildcard too ("1.x.3" is "1.x")
    for i in range(1, 3):
        if nums[i - 1] is None:
            nums[i] = None
    pre = _prerelease(m[4]) if nums[2] is not None else ()
    return nums[0], nums[1], nums[2], pre


def _v(major: int, minor: int = 0, patch: int = 0, pre: tuple[int | str, ...] = ()) -> Version:
    return Version(major, minor, patch, pre)


def _expand(
    op: str, major: int | None, minor: int | None, patch: int | None, pre: tuple[int | str, ...]
) -> list[Comparator]:
    if major is None:  # "*", "x"
        return [Comparator("<", _v(0, 0, 0, (0,)))] if op in ("<", ">") else []
    if op in ("=", "~", "^") and minor is not None and patch is not None:
        full = _v(major, minor, patch, pre)
        if op == "=":
            return [Comparator("=", full)]
        if op == "~":
            return [Comparator(">=", full), Comparator("<", _v(major, minor + 1))]
        return [Comparator(">=", full), Comparator("<", _caret_upper(major, minor, patch))]
    low = _v(major, minor or 0, patch or 0, pre)
    if minor is None:
        upper = _v(major + 1)
    elif patch is None:
        upper = _v(major, minor + 1)
    else:
        upper = low  # full version with < <= > >=
    if op in ("=", "~"):
        return [Comparator(">=", low), Comparator("<", upper)]
    if op == "^":
        if major == 0 and minor is not None:
            return [Comparator(">=", low), Comparator("<", _v(0, minor + 1))]
        return [Comparator(">=", low), Comparator("<", _v(major + 1))]
    if op == ">=":
        return [Comparator(">=", low)]
    if op == "<":
        return [Comparator("<", low)]
    if op == ">":
        return [Comparator(">", low)] if upper is low else [Comparator(">=", upper)]
    # "<="
    return [Comparator("<=", low)] if upper is low else [Comparator("<", upper)]


def _caret_upper(major: int, minor: int, patch: int) -> Version:
    if major > 0:
        return _v(major + 1)
    if minor > 0:
        return _v(0, minor + 1)
    return _v(0, 0, patch + 1)


def _hyphen(low_text: str, high_text: str) -> tuple[Comparator, ...] | None:
    low, high = _partial(low_text), _partial(high_text)
    if low is None or high is None:
        return None
    lower = _expand(">=", *low)
    upper = _expand("<=", *high)
    return (*lower, *upper)


@dataclass(frozen=True)
class Refs:
    """The refs of a repository: full ref name → commit SHA (tags peeled to their commit).

    ``head`` is the commit of the default branch (the remote's HEAD), when known.
    """

    refs: Mapping[str, str]
    head: str | None = None

    def named(self, prefix: str) -> dict[str, str]:
        """Short name → commit for the refs under ``prefix`` (``refs/tags/``)."""
        return {k[len(prefix) :]: v for k, v in self.refs.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class ResolvedRevision:
    commit: str
    ref: str
    """``refs/heads/main``, ``refs/tags/v1.4.2``, ``HEAD``, or the SHA for a commit revision."""


def resolve(
    refs: Refs, revision: str, lookup_commit: Callable[[str], str | None]
) -> ResolvedRevision:
    """The commit ``revision`` names.

    Order: ``HEAD``; a full ref name; a branch; a tag; a (possibly abbreviated) SHA that
    ``lookup_commit`` finds; a semver range over the tags. Raises a non-retryable
    :class:`SourceError` when nothing matches (``lookup_commit`` raises for ambiguity).
    """
    revision = revision.strip()
    if revision in ("", HEAD):
        if refs.head is None:
            raise SourceError("the repository has no default branch (HEAD)", retryable=False)
        return ResolvedRevision(refs.head, HEAD)
    for ref in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
        if ref.startswith("refs/") and ref in refs.refs:
            return ResolvedRevision(refs.refs[ref], ref)
    if _HEX.match(revision):
        commit = lookup_commit(revision.lower())
        if commit is not None:
            return ResolvedRevision(commit, commit)
    version_range = VersionRange.parse(revision)
    if version_range is not None:
        best = version_range.highest(refs.named("refs/tags/"))
        if best is None:
            raise SourceError(f"no tag matches the version range {revision!r}", retryable=False)
        ref = f"refs/tags/{best[0]}"
        return ResolvedRevision(refs.refs[ref], ref)
    raise SourceError(
        f"revision {revision!r} not found (no such branch, tag, commit or version range)",
        retryable=False,
    )
