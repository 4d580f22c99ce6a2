"""Semver ranges over tags and the order in which a revision is resolved (pure, no git)."""

from __future__ import annotations

import pytest

from gitops.errors import SourceError
from gitops.source.revisions import Refs, Version, VersionRange, resolve

VERSIONS = [
    "0.0.3", "0.2.5", "0.3.0", "1.0.0", "1.2.0", "1.2.9", "1.3.0-rc.1", "1.3.0",
    "1.4.0", "1.4.7", "2.0.0-alpha", "2.0.0", "2.1.0", "3.0.0",
]  # fmt: skip


def best(range_text: str) -> str | None:
    r = VersionRange.parse(range_text)
    assert r is not None, range_text
    found = r.highest({f"v{v}": "sha" for v in VERSIONS})
    return found[0] if found else None


@pytest.mark.parametrize(
    ("range_text", "expected"),
    [
        (">=1.2.0 <2", "v1.4.7"),
        (">=1.2.0, <2", "v1.4.7"),
        (">= 1.2.0 < 1.3", "v1.2.9"),
        ("~1.4", "v1.4.7"),
        ("~1.2.3", "v1.2.9"),
        ("~1.2.10", None),
        ("~1.2.0", "v1.2.9"),
        ("~1", "v1.4.7"),
        ("^1.0", "v1.4.7"),
        ("^1.2.3", "v1.4.7"),
        ("^0.2.1", "v0.2.5"),
        ("^0.0.3", "v0.0.3"),
        ("^0", "v0.3.0"),
        ("1.x", "v1.4.7"),
        ("1.2.*", "v1.2.9"),
        ("1", "v1.4.7"),
        ("*", "v3.0.0"),
        ("x", "v3.0.0"),
        ("2.0.0", "v2.0.0"),
        ("v2.0.0", "v2.0.0"),
        ("=1.3.0-rc.1", "v1.3.0-rc.1"),
        (">=1.3.0-rc.0 <1.3.0", "v1.3.0-rc.1"),
        (">1.2", "v3.0.0"),
        ("<=1.2", "v1.2.9"),
        ("<1.2", "v1.0.0"),
        ("1.2.3 - 1.4", "v1.4.7"),
        ("1.0 - 2", "v2.1.0"),
        ("^0.2 || ~2.0", "v2.0.0"),
        ("<0", None),
        ("^4", None),
    ],
)
def test_the_highest_version_in_a_range_is_chosen(range_text: str, expected: str | None) -> None:
    assert best(range_text) == expected


def test_pre_releases_match_only_when_the_range_names_one_of_the_same_version() -> None:
    r = VersionRange.parse(">=1.3.0-rc.0")
    assert r is not None
    assert r.contains(Version(1, 3, 0, ("rc", 1)))
    assert not r.contains(Version(2, 0, 0, ("alpha",)))
    loose = VersionRange.parse("^1")
    assert loose is not None and not loose.contains(Version(1, 3, 0, ("rc", 1)))


def test_versions_order_by_semver_precedence() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
             "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0"]  # fmt: skip
    parsed = [Version.parse(v) for v in order]
    assert all(p is not None for p in parsed)
    keys = [p.key() for p in parsed if p is not None]
    assert keys == sorted(keys)
    assert str(Version.parse("v1.2.3-rc.1+build.5")) == "1.2.3-rc.1"
    assert Version.parse("1.2") is None and Version.parse("release-1") is None


@pytest.mark.parametrize("text", ["main", "feature/x", "1.2.3.4", "~>1.2", ">=abc", "v", "1.2 - "])
def test_names_that_are_not_ranges_are_not_parsed_as_ranges(text: str) -> None:
    assert VersionRange.parse(text) is None


def test_a_v_prefixed_and_a_plain_tag_of_one_version_pick_one_deterministically() -> None:
    r = VersionRange.parse("^1")
    assert r is not None
    assert r.highest({"1.0.0": "a", "v1.0.0": "b"}) == ("v1.0.0", Version(1, 0, 0))


REFS = Refs(
    {
        "refs/heads/main": "m" * 40,
        "refs/heads/1.x": "b" * 40,
        "refs/tags/v1.0.0": "1" * 40,
        "refs/tags/v1.1.0": "2" * 40,
        "refs/tags/main": "t" * 40,
    },
    head="h" * 40,
)


def no_commits(prefix: str) -> str | None:
    return None


def test_branches_win_over_tags_and_tags_over_shas_and_ranges() -> None:
    assert resolve(REFS, "HEAD", no_commits).commit == "h" * 40
    assert resolve(REFS, "", no_commits).ref == "HEAD"
    assert resolve(REFS, "main", no_commits).ref == "refs/heads/main"
    assert resolve(REFS, "refs/tags/main", no_commits).commit == "t" * 40
    assert resolve(REFS, "1.x", no_commits).ref == "refs/heads/1.x"
    assert resolve(REFS, "~1", no_commits).ref == "refs/tags/v1.1.0"
    found = resolve(REFS, "abcd123", lambda p: "abcd123" + "0" * 33 if p == "abcd123" else None)
    assert found.commit == found.ref == "abcd123" + "0" * 33


def test_an_unresolvable_revision_is_a_permanent_error() -> None:
    for revision in ("nope", "~7", "abcdef1"):
        with pytest.raises(SourceError) as e:
            resolve(REFS, revision, no_commits)
        assert not e.value.retryable
    with pytest.raises(SourceError):
        resolve(Refs({}), "HEAD", no_commits)
