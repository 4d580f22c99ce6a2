"""GitSource against real repositories made in tmp dirs: cache, revisions, trees, failures.

The helpers :func:`make_repo` and :func:`commit` are also used by the other
``test_source_*`` modules.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from gitops.errors import SourceError
from gitops.source import GitSource, GitSourceOptions, SourceSpec
from gitops.source.git import cache_key, local_path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    return out.stdout.strip()


def make_repo(path: Path, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return path


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, content in files.items():
        f = repo / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = make_repo(tmp_path / "remote")
    commit(r, {"app.yaml": "v: 1\n"}, "first")
    return r


@pytest.fixture
def source(tmp_path: Path) -> GitSource:
    return GitSource(tmp_path / "cache")


def test_the_default_revision_is_the_remote_head_and_its_tree_is_checked_out(
    repo: Path, source: GitSource
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    rev = source.fetch(SourceSpec(str(repo)))
    assert (rev.commit, rev.ref, rev.message) == (head, "HEAD", "first")
    assert rev.author == "Ada <ada@example.com>"
    assert rev.date.tzinfo is not None
    tree = source.checkout(SourceSpec(str(repo)), rev.commit)
    assert (tree / "app.yaml").read_text() == "v: 1\n"
    assert not (tree / ".git").exists()


def test_file_urls_and_plain_paths_both_work_and_later_fetches_are_incremental(
    repo: Path, source: GitSource
) -> None:
    spec = SourceSpec(f"file://{repo}", "main")
    first = source.fetch(spec)
    second_commit = commit(repo, {"app.yaml": "v: 2\n"}, "second")
    second = source.fetch(spec)
    assert first.commit != second.commit == second_commit
    assert second.ref == "refs/heads/main"
    assert source.repository_dir(f"file://{repo}").is_dir()
    assert len(list((source.cache_dir / "repos").glob("*.git"))) == 1
    assert source.fetch(SourceSpec(str(repo), "main")).commit == second_commit


def test_branches_tags_annotated_tags_and_full_ref_names_resolve(
    repo: Path, source: GitSource
) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "light")
    git(repo, "tag", "-a", "annotated", "-m", "a tag")
    git(repo, "checkout", "-q", "-b", "feature/x")
    feature = commit(repo, {"b.yaml": "b\n"})
    url = str(repo)
    assert source.fetch(SourceSpec(url, "feature/x")).commit == feature
    assert source.fetch(SourceSpec(url, "light")).ref == "refs/tags/light"
    annotated = source.fetch(SourceSpec(url, "annotated"))
    assert (annotated.commit, annotated.ref) == (first, "refs/tags/annotated")
    assert source.fetch(SourceSpec(url, "refs/heads/main")).commit == first


def test_the_highest_tag_matching_a_semver_range_is_chosen(repo: Path, source: GitSource) -> None:
    commits = {}
    for tag in ("v1.2.0", "v1.4.1", "1.4.3", "v1.9.0-rc.1", "v2.0.0", "not-a-version"):
        commits[tag] = commit(repo, {"version": tag}, tag)
        git(repo, "tag", tag)
    url = str(repo)
    cases = {
        ">=1.2.0 <2": "1.4.3",
        "~1.4": "1.4.3",
        "^1.0": "1.4.3",
        "1.x": "1.4.3",
        ">=1.9.0-rc.0 <2": "v1.9.0-rc.1",
        "*": "v2.0.0",
        "=1.2.0": "v1.2.0",
    }
    for revision, tag in cases.items():
        rev = source.fetch(SourceSpec(url, revision))
        assert (rev.ref, rev.commit) == (f"refs/tags/{tag}", commits[tag]), revision
    with pytest.raises(SourceError) as e:
        source.fetch(SourceSpec(url, "^3"))
    assert not e.value.retryable
    assert "no tag matches" in str(e.value)


def test_abbreviated_and_full_shas_resolve_to_the_commit(repo: Path, source: GitSource) -> None:
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, {"x": "y"})
    for revision in (first, first[:7], first[:12].upper()):
        rev = source.fetch(SourceSpec(str(repo), revision))
        assert (rev.commit, rev.ref) == (first, first)


def test_a_commit_no_ref_reaches_can_be_fetched_by_full_sha(repo: Path, source: GitSource) -> None:
    git(repo, "checkout", "-q", "-b", "tmp")
    orphan = commit(repo, {"x": "1"}, "dangling")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "tmp")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    assert source.fetch(SourceSpec(str(repo), orphan)).commit == orphan


def test_an_unknown_revision_is_a_permanent_error(repo: Path, source: GitSource) -> None:
    for revision in ("no-such-branch", "deadbeef", "0" * 40):
        with pytest.raises(SourceError) as e:
            source.fetch(SourceSpec(str(repo), revision))
        assert not e.value.retryable, revision
        assert "not found" in str(e.value)


def test_a_failed_fetch_keeps_the_cache_and_the_last_checkout(
    repo: Path, source: GitSource, tmp_path: Path
) -> None:
    spec = SourceSpec(str(repo), "main")
    good = source.fetch(spec)
    tree = source.checkout(spec, good.commit)
    repo.rename(tmp_path / "gone")
    with pytest.raises(SourceError) as e:
        source.fetch(spec)
    assert e.value.retryable
    assert str(repo) in str(e.value)
    assert (tree / "app.yaml").read_text() == "v: 1\n"
    assert source.checkout(spec, good.commit) == tree
    # a first clone that fails leaves nothing behind
    with pytest.raises(SourceError):
        source.fetch(SourceSpec(str(tmp_path / "never")))
    assert sorted(p.name for p in (source.cache_dir / "repos").glob("*.git*")) == [
        f"{cache_key(str(repo))}.git"
    ]


def test_trees_are_reused_while_the_commit_is_current_and_only_a_few_are_kept(
    repo: Path, tmp_path: Path
) -> None:
    source = GitSource(tmp_path / "cache", GitSourceOptions(keep_trees=2))
    spec = SourceSpec(str(repo), "main")
    trees = []
    for i in range(4):
        rev = source.fetch(spec)
        tree = source.checkout(spec, rev.commit)
        assert source.checkout(spec, rev.commit) == tree
        assert (tree / "app.yaml").read_text() == f"v: {i + 1}\n"
        trees.append(tree)
        commit(repo, {"app.yaml": f"v: {i + 2}\n"})
    assert [t.exists() for t in trees] == [False, False, True, True]
    assert not list(trees[0].parent.glob(".*"))  # no temporary directories or indexes


def test_checkout_needs_a_fetched_full_sha(repo: Path, source: GitSource) -> None:
    spec = SourceSpec(str(repo))
    with pytest.raises(SourceError) as e:
        source.checkout(spec, "a" * 40)
    assert "fetch first" in str(e.value)
    rev = source.fetch(spec)
    with pytest.raises(SourceError) as e:
        source.checkout(spec, rev.commit[:7])
    assert not e.value.retryable


def test_symlinks_inside_the_tree_are_kept_and_escaping_ones_are_refused(
    repo: Path, source: GitSource
) -> None:
    (repo / "link.yaml").symlink_to("app.yaml")
    inside = commit(repo, {})
    tree = source.checkout(SourceSpec(str(repo)), source.fetch(SourceSpec(str(repo))).commit)
    assert (tree / "link.yaml").read_text() == "v: 1\n"
    assert source.fetch(SourceSpec(str(repo))).commit == inside
    (repo / "passwd").symlink_to("/etc/passwd")
    escaping = commit(repo, {})
    source.fetch(SourceSpec(str(repo)))
    with pytest.raises(SourceError) as e:
        source.checkout(SourceSpec(str(repo)), escaping)
    assert "outside the repository" in str(e.value)
    assert not e.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@example.com/org/repo.git",
        "ext::sh -c touch% /tmp/pwned",
        "-uhoh",
        "ftp://example.com/repo.git",
    ],
)
def test_urls_with_passwords_or_dangerous_transports_are_refused(
    url: str, source: GitSource
) -> None:
    with pytest.raises(SourceError) as e:
        source.fetch(SourceSpec(url))
    assert not e.value.retryable
    assert "hunter2" not in str(e.value)


def test_local_path_tells_local_urls_from_remote_ones(tmp_path: Path) -> None:
    assert local_path(f"file://{tmp_path}") == tmp_path
    assert local_path(str(tmp_path)) == tmp_path
    assert local_path("git@github.com:org/repo.git") is None
    assert local_path("https://github.com/org/repo") is None


def test_concurrent_fetches_of_several_repositories_all_succeed(
    tmp_path: Path, source: GitSource
) -> None:
    repos = []
    for i in range(3):
        r = make_repo(tmp_path / f"r{i}")
        repos.append((r, commit(r, {"i": str(i)})))
    results: dict[tuple[int, int], str] = {}
    errors: list[BaseException] = []

    def work(i: int, j: int) -> None:
        try:
            spec = SourceSpec(str(repos[i][0]), "main")
            rev = source.fetch(spec)
            tree = source.checkout(spec, rev.commit)
            results[(i, j)] = (tree / "i").read_text()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, j)) for i in range(3) for j in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == {(i, j): str(i) for i in range(3) for j in range(3)}


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): (f"-> {p.readlink()}" if p.is_symlink() else p.read_text())
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_a_tree_written_from_the_previous_commits_tree_equals_a_fresh_checkout(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"a.yaml": "a1", "dir/b.yaml": "b1", "dir/c.yaml": "c1", "gone/x.yaml": "x"})
    source = GitSource(tmp_path / "cache")
    spec = SourceSpec(str(repo))
    first = source.checkout(spec, source.fetch(spec).commit)
    (repo / "gone" / "x.yaml").unlink()
    (repo / "gone").rmdir()
    (repo / "dir" / "c.yaml").unlink()
    (repo / "link.yaml").symlink_to("a.yaml")
    commit(repo, {"a.yaml": "a2", "gone": "now a file", "new/d.yaml": "d1"}, "second")
    second_commit = source.fetch(spec).commit
    second = source.checkout(spec, second_commit)  # incremental: from the first tree
    fresh = GitSource(tmp_path / "fresh").checkout(
        spec, GitSource(tmp_path / "fresh").fetch(spec).commit
    )
    assert (
        _files(second)
        == _files(fresh)
        == {
            "a.yaml": "a2",
            "dir/b.yaml": "b1",
            "gone": "now a file",
            "link.yaml": "-> a.yaml",
            "new/d.yaml": "d1",
        }
    )
    assert _files(first) == {
        "a.yaml": "a1",
        "dir/b.yaml": "b1",
        "dir/c.yaml": "c1",
        "gone/x.yaml": "x",
    }
