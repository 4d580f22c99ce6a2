"""RefWatcher on real local repositories: a commit, a tag or a bare push reaches the callback."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitops.errors import SourceError
from gitops.source import RefWatcher, WatchOptions
from tests.unit.test_source_git import commit, git, make_repo


class Calls:
    def __init__(self) -> None:
        self.commits: list[str] = []
        self.event = threading.Event()

    def __call__(self, sha: str) -> None:
        self.commits.append(sha)
        self.event.set()

    def wait(self, timeout: float) -> bool:
        ok = self.event.wait(timeout)
        self.event.clear()
        return ok


def test_a_commit_on_the_watched_branch_reaches_the_callback_within_a_second(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    first = commit(repo, {"a": "1"})
    calls = Calls()
    with RefWatcher(repo, "main", calls) as watcher:
        assert watcher.commit == first
        start = time.monotonic()
        second = commit(repo, {"a": "2"})
        assert calls.wait(1.0)
        assert time.monotonic() - start < 1.0
        assert calls.commits == [second]


def test_only_a_change_of_the_watched_revision_fires_and_bursts_fire_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"a": "1"})
    calls = Calls()
    with RefWatcher(repo, "main", calls, WatchOptions(debounce_seconds=0.2)):
        git(repo, "branch", "other")
        git(repo, "tag", "v1")
        git(repo, "pack-refs", "--all")
        assert not calls.wait(0.6)
        for i in range(3):
            last = commit(repo, {"a": f"burst {i}"})
        assert calls.wait(1.0)
        time.sleep(0.3)
        assert calls.commits == [last]


def test_a_tag_matching_a_watched_range_and_a_push_into_a_bare_repository_fire(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "bare.git"
    work = make_repo(tmp_path / "work")
    commit(work, {"a": "1"})
    git(work, "tag", "v1.0.0")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    calls = Calls()
    with RefWatcher(bare, "^1", calls):
        newer = commit(work, {"a": "2"})
        git(work, "tag", "v1.1.0")
        git(work, "push", "-q", str(bare), "main", "v1.1.0")
        assert calls.wait(1.0)
        assert calls.commits == [newer]


def test_head_moving_to_another_branch_fires_for_a_head_watch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"a": "1"})
    git(repo, "checkout", "-q", "-b", "feature")
    feature = commit(repo, {"a": "feature"})
    git(repo, "checkout", "-q", "main")
    calls = Calls()
    with RefWatcher(repo, "HEAD", calls):
        git(repo, "checkout", "-q", "feature")
        assert calls.wait(1.0)
        assert calls.commits == [feature]


def test_stop_joins_the_observer_and_a_non_repository_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"a": "1"})
    before = threading.active_count()
    calls = Calls()
    watcher = RefWatcher(repo, "main", calls)
    watcher.start()
    watcher.stop()
    commit(repo, {"a": "2"})
    assert not calls.wait(0.4)
    assert threading.active_count() == before
    with pytest.raises(SourceError):
        RefWatcher(tmp_path / "nothing", "main", calls)
