"""The Git source: a cached clone per repository, revision resolution, per-commit trees.

:class:`GitSource` keeps one bare clone per repository URL under
``<cache_dir>/repos/<hash of the URL>.git`` and fetches it incrementally (branches, tags
and, when asked for, the remote's HEAD). :meth:`GitSource.fetch` resolves a revision
(see :mod:`gitops.source.revisions`) to a :class:`Revision`; :meth:`GitSource.checkout`
writes the tree of one commit to ``<cache_dir>/trees/<hash>/<commit>/`` (no ``.git`` in
it; reused while the commit is current; only the few most recently used are kept) for
the build step to read.

All calls block (the service runs them in a worker thread). They are safe to call from
many threads: work on different repositories runs in parallel, work on one repository
is serialised by a lock per repository (a thread lock plus ``flock`` on a lock file, so
several processes may share one cache). A failed fetch raises :class:`SourceError` and
leaves the cache and earlier trees as they were, so the caller keeps its last good
revision. Errors name the URL and git's last words with credentials removed; network
failures are retryable, a missing revision or rejected credentials are not (repeating a
bad password can lock the account).

Not supported (refused or ignored, documented): submodules (their directories stay
empty), Git LFS content (pointer files are checked out), passphrase-protected SSH keys
(ssh runs in batch mode), symlinks that point outside the tree (:class:`SourceError`),
credentials inside the URL (:class:`SourceError`: use :class:`GitCredentials`), and
transports other than https, http, ssh, git and local paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import git
import structlog

from gitops.childenv import git_env
from gitops.errors import SourceError
from gitops.source.credentials import (
    CommandAuth,
    GitCredentials,
    command_auth,
    scrub,
    write_askpass,
)
from gitops.source.revisions import HEAD, Refs, ResolvedRevision, is_full_sha, resolve
from kubemodel.files import private_dir

log = structlog.get_logger(__name__)

HEAD_REF = "refs/gitops/HEAD"
"""Where the cache keeps the remote's HEAD (its default branch)."""
COMMITS_REF = "refs/gitops/commits/"
"""Where the cache keeps commits fetched by SHA that no branch or tag reaches."""
_SCHEMES = ("https", "http", "ssh", "git", "file")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?[^/:\s]+:(?!//)")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_NOT_FOUND = (
    "couldn't find remote ref",
    "not our ref",
    "unadvertised object",
    "no such ref",
)
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied (publickey",
    "host key verification failed",
    "returned error: 401",
    "returned error: 403",
    "invalid username or password",
)


@dataclass(frozen=True)
class SourceSpec:
    """Where an Application's manifests come from: a repository URL and a revision.

    ``url`` is https/http/ssh/git, scp-like (``git@host:org/repo.git``), ``file://`` or a
    local path; ``revision`` as in :mod:`gitops.source.revisions`.
    """

    url: str
    revision: str = HEAD
    credentials: GitCredentials | None = None


@dataclass(frozen=True)
class Revision:
    """The commit a revision resolved to, with what the status shows about it."""

    commit: str
    ref: str
    """``refs/heads/main``, ``refs/tags/v1.4.2``, ``HEAD``, or the SHA for a commit revision."""
    message: str
    """The first line of the commit message."""
    author: str
    """``Name <email>``."""
    date: datetime
    """The author date, with its time zone."""


@dataclass(frozen=True)
class GitSourceOptions:
    """``keep_trees``: checked-out commits kept per repository (least recently used go);
    ``timeout_seconds``: a git command is killed after this long (retryable error);
    ``low_speed_seconds``: a transfer below 1 KiB/s for this long is aborted."""

    keep_trees: int = 3
    timeout_seconds: float = 300.0
    low_speed_seconds: int = 60


def local_path(url: str) -> Path | None:
    """The directory of a local repository URL (a path or ``file://``), else ``None``."""
    if url.startswith("file://"):
        return Path(urlsplit(url).path)
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return Path(url).expanduser().resolve()


def display_url(url: str) -> str:
    """``url`` safe to show: any password in it replaced."""
    return scrub(url)


def validate_url(spec: SourceSpec) -> str:
    """The URL git is given (local paths made absolute); :class:`SourceError` if refused."""
    url = spec.url.strip()
    shown = display_url(url)
    if not url or url.startswith("-") or "::" in url.split("/", 1)[0]:
        raise SourceError(f"unsupported repository URL {shown!r}", retryable=False)
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _SCHEMES:
            raise SourceError(f"unsupported URL scheme in {shown!r}", retryable=False)
        if parts.password is not None:
            raise SourceError(
                f"the repository URL {shown!r} holds a password; give credentials instead",
                retryable=False,
            )
        creds = spec.credentials
        if (
            parts.scheme.lower() == "http"
            and creds is not None
            and creds.password
            and (parts.hostname or "") not in _LOOPBACK
        ):
            raise SourceError(
                f"refusing to send credentials over plain http to {shown!r}", retryable=False
            )
        return url
    if _SCP_LIKE.match(url):
        return url
    path = local_path(url)
    assert path is not None
    return str(path)


def cache_key(url: str) -> str:
    """Stable short name of a repository's cache entry (a hash of its URL)."""
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:24]


class GitSource:
    """Fetches repositories into ``cache_dir`` and checks out commits from there."""

    def __init__(self, cache_dir: Path, options: GitSourceOptions | None = None) -> None:
        self.cache_dir = cache_dir
        self.options = options or GitSourceOptions()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Private: repositories may be private, and trees are what gets applied.
        private_dir(cache_dir / "repos")
        private_dir(cache_dir / "trees")
        cache_dir.chmod(0o700)
        self._askpass = write_askpass(cache_dir)

    # -- public API -----------------------------------------------------------------

    def repository_dir(self, url: str) -> Path:
        """The bare clone kept for ``url`` (it may not exist yet)."""
        return self.cache_dir / "repos" / f"{cache_key(url)}.git"

    def fetch(self, spec: SourceSpec) -> Revision:
        """Clone or update the cache of ``spec.url`` and resolve ``spec.revision``."""
        url = validate_url(spec)
        key = cache_key(url)
        auth = command_auth(spec.credentials, self._askpass)
        wants_head = spec.revision.strip() in ("", HEAD)
        with self._lock(key):
            repo_dir = self.repository_dir(url)
            if repo_dir.exists():
                self._fetch(repo_dir, url, auth, wants_head)
            else:
                self._clone(repo_dir, url, auth, wants_head)
            resolved = self._resolve(repo_dir, url, auth, spec.revision)
            revision = self._describe(repo_dir, resolved)
        log.debug("git fetched", url=display_url(url), ref=revision.ref, commit=revision.commit)
        return revision

    def checkout(self, spec: SourceSpec, commit: str) -> Path:
        """A directory holding the tree of ``commit`` (a full SHA from :meth:`fetch`)."""
        url = validate_url(spec)
        if not is_full_sha(commit):
            raise SourceError(f"checkout needs a full commit SHA, not {commit!r}", retryable=False)
        key = cache_key(url)
        trees = self.cache_dir / "trees" / key
        dest = trees / commit
        with self._lock(key):
            if dest.is_dir():
                os.utime(dest)
                return dest
            repo_dir = self.repository_dir(url)
            if not repo_dir.exists() or self._lookup_commit(repo_dir, commit) is None:
                raise SourceError(
                    f"commit {commit} of {display_url(url)} is not in the cache; fetch first"
                )
            trees.mkdir(parents=True, exist_ok=True)
            self._write_tree(repo_dir, commit, dest, _latest_tree(trees))
            self._prune_trees(trees, keep=dest)
        return dest

    # -- fetching -------------------------------------------------------------------

    def _clone(self, repo_dir: Path, url: str, auth: CommandAuth, wants_head: bool) -> None:
        tmp = repo_dir.with_name(f"{repo_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            _execute(tmp, ["init", "--bare", "--quiet"], {})
            self._git(tmp, ["config", "remote.origin.url", url])
            self._fetch(tmp, url, auth, wants_head)
            tmp.rename(repo_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _fetch(self, repo_dir: Path, url: str, auth: CommandAuth, wants_head: bool) -> None:
        refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        if wants_head:
            refspecs.append(f"+HEAD:{HEAD_REF}")
        self._network(
            repo_dir,
            url,
            auth,
            ["fetch", "--prune", "--no-tags", "--no-write-fetch-head", "origin", *refspecs],
        )

    def _network(self, repo_dir: Path, url: str, auth: CommandAuth, args: list[str]) -> None:
        env = {
            **auth.env,
            "GIT_HTTP_LOW_SPEED_LIMIT": "1024",
            "GIT_HTTP_LOW_SPEED_TIME": str(self.options.low_speed_seconds),
            "GIT_ALLOW_PROTOCOL": "https:http:ssh:git:file",
        }
        try:
            _execute(
                repo_dir,
                ["-c", "gc.autoDetach=false", *auth.config, *args],
                env,
                self.options.timeout_seconds,
            )
        except git.GitCommandError as e:
            raise _fetch_error(url, e, auth.secrets) from None

    # -- resolving ------------------------------------------------------------------

    def _resolve(
        self, repo_dir: Path, url: str, auth: CommandAuth, revision: str
    ) -> ResolvedRevision:
        refs = read_refs(repo_dir, head_ref=HEAD_REF)

        def lookup(prefix: str) -> str | None:
            return self._lookup_commit(repo_dir, prefix)

        try:
            return resolve(refs, revision, lookup)
        except SourceError:
            sha = revision.strip().lower()
            if not is_full_sha(sha):
                raise
        # A full SHA no branch or tag reaches: servers may still serve it by name.
        not_found = SourceError(f"commit {sha} not found in {display_url(url)}", retryable=False)
        try:
            self._network(
                repo_dir, url, auth, ["fetch", "--no-tags", "origin", f"{sha}:{COMMITS_REF}{sha}"]
            )
        except SourceError as e:
            raise e if e.retryable else not_found from None
        commit = self._lookup_commit(repo_dir, sha)
        if commit is None:
            raise not_found
        return ResolvedRevision(commit, commit)

    def _lookup_commit(self, repo_dir: Path, prefix: str) -> str | None:
        return lookup_commit(repo_dir, prefix)

    def _describe(self, repo_dir: Path, resolved: ResolvedRevision) -> Revision:
        out = self._git(repo_dir, ["log", "-1", "--format=%an <%ae>%x00%aI%x00%s", resolved.commit])
        author, date, subject = out.split("\x00", 2)
        return Revision(
            resolved.commit, resolved.ref, subject, author, datetime.fromisoformat(date)
        )

    # -- trees ----------------------------------------------------------------------

    def _write_tree(
        self, repo_dir: Path, commit: str, dest: Path, base: Path | None = None
    ) -> None:
        """Write the tree of ``commit`` to ``dest``. With ``base`` (the tree of an earlier
        commit) only what changed between the two is written: the rest is hard-linked
        from ``base`` (git replaces a file by unlinking it, so ``base`` is untouched)."""
        tmp = dest.with_name(f".tmp-{commit}-{uuid.uuid4().hex[:8]}")
        index = dest.with_name(f".index-{uuid.uuid4().hex[:8]}")
        try:
            env = {"GIT_INDEX_FILE": str(index)}
            self._git(repo_dir, ["read-tree", commit], env)
            changed = self._changed_paths(repo_dir, base.name, commit) if base else None
            if base is None or changed is None:
                tmp.mkdir()
                self._git(
                    repo_dir, [f"--work-tree={tmp}", "checkout-index", "--all", "--force"], env
                )
            else:
                _link_tree(base, tmp)
                for _, path in changed:
                    target = tmp / path
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)  # a directory became a file
                    else:
                        target.unlink(missing_ok=True)
                written = [path for status, path in changed if status != "D"]
                for chunk in range(0, len(written), 500):
                    self._git(
                        repo_dir,
                        [
                            f"--work-tree={tmp}",
                            "checkout-index",
                            "--force",
                            "--",
                            *written[chunk : chunk + 500],
                        ],
                        env,
                    )
            _check_symlinks(tmp, commit)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            index.unlink(missing_ok=True)

    def _changed_paths(self, repo_dir: Path, old: str, new: str) -> list[tuple[str, str]] | None:
        """(status letter, path) of every path that differs between two commits (``D``
        deleted, else added, modified or changed type); None when ``old`` is not a
        commit here."""
        if not is_full_sha(old) or self._lookup_commit(repo_dir, old) is None:
            return None
        out = self._git(
            repo_dir, ["diff", "--name-status", "--no-renames", "--no-relative", "-z", old, new]
        )
        fields = [f for f in out.split("\0") if f]
        return [(fields[i][0], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def _prune_trees(self, trees: Path, keep: Path) -> None:
        done = [p for p in trees.iterdir() if p.is_dir() and not p.name.startswith(".")]
        done.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        extra = [p for p in done if p != keep][max(self.options.keep_trees - 1, 0) :]
        for old in extra:
            shutil.rmtree(old, ignore_errors=True)

    # -- plumbing -------------------------------------------------------------------

    def _git(self, repo_dir: Path, args: list[str], env: Mapping[str, str] | None = None) -> str:
        try:
            return _execute(repo_dir, args, env or {}, self.options.timeout_seconds)
        except git.GitCommandError as e:
            raise SourceError(
                f"git {args[0]} failed in the cache {repo_dir.name}: {_stderr(e)}"
            ) from None

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock, (self.cache_dir / "repos" / f"{key}.lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _execute(
    repo_dir: Path, args: list[str], env: Mapping[str, str], timeout: float | None = None
) -> str:
    """One git command on the cache's repository, in a clean environment
    (:func:`gitops.childenv.git_env`: none of the reconciler's secrets, no host git
    config); raises :class:`git.GitCommandError` as GitPython would."""
    command = ["git", *args]
    try:
        done = subprocess.run(
            command,
            env=git_env({"GIT_DIR": str(repo_dir), **env}),
            cwd=str(repo_dir) if repo_dir.is_dir() else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise git.GitCommandError(command, -9, f"stderr: 'timed out after {timeout:g} s'") from None
    except OSError as exc:
        raise git.GitCommandError(command, 127, f"stderr: '{exc}'") from None
    if done.returncode != 0:
        raise git.GitCommandError(command, done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout.decode(errors="replace").rstrip("\n")


def _stderr(e: git.GitCommandError) -> str:
    text = e.stderr if isinstance(e.stderr, str) else str(e.stderr or "")
    text = text.strip()
    if text.startswith("stderr:"):
        text = text[len("stderr:") :].strip()
    text = text.strip("'\"").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-3:]) if lines else f"exit status {e.status}"


def _fetch_error(url: str, e: git.GitCommandError, secrets: tuple[str, ...]) -> SourceError:
    detail = scrub(_stderr(e), secrets)
    lowered = detail.lower()
    if any(p in lowered for p in _NOT_FOUND):
        return SourceError(f"fetching {display_url(url)}: {detail}", retryable=False)
    if any(p in lowered for p in _AUTH):
        return SourceError(f"fetching {display_url(url)}: access denied: {detail}", retryable=False)
    return SourceError(f"fetching {display_url(url)} failed: {detail}", retryable=True)


def _latest_tree(trees: Path) -> Path | None:
    """The most recently used finished tree of a repository (a base for the next one)."""
    done = [p for p in trees.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return max(done, key=lambda p: p.stat().st_mtime) if done else None


def _link_tree(base: Path, dest: Path) -> None:
    """``dest`` as a copy of ``base`` whose files are hard links (symlinks copied as such)."""
    for dirpath, dirnames, filenames in os.walk(base):
        rel = Path(dirpath).relative_to(base)
        (dest / rel).mkdir(exist_ok=True)
        for name in dirnames:
            src = Path(dirpath) / name
            if src.is_symlink():
                (dest / rel / name).symlink_to(src.readlink())
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        for name in filenames:
            src = Path(dirpath) / name
            if src.is_symlink():
                (dest / rel / name).symlink_to(src.readlink())
            else:
                os.link(src, dest / rel / name)


def _check_symlinks(root: Path, commit: str) -> None:
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if target != real_root and real_root not in target.parents:
                    rel = p.relative_to(root)
                    raise SourceError(
                        f"{rel} in commit {commit} is a symlink pointing outside the repository",
                        retryable=False,
                    )


def read_refs(repo_dir: Path, head_ref: str = HEAD) -> Refs:
    """Branches and tags (peeled to commits) of a repository, and the commit of ``head_ref``."""
    out = _execute(
        repo_dir,
        [
            "for-each-ref",
            "--format=%(objectname) %(*objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
        {},
    )
    refs: dict[str, str] = {}
    for line in out.splitlines():
        obj, peeled, name = line.split(" ", 2)
        refs[name] = peeled or obj
    head = lookup_commit(repo_dir, head_ref)
    return Refs(refs, head)


def lookup_commit(repo_dir: Path, name: str) -> str | None:
    """The full SHA of the commit ``name`` (a ref or SHA prefix) names, or ``None``.

    Raises a non-retryable :class:`SourceError` for an ambiguous abbreviated SHA.
    """
    try:
        out = _execute(
            repo_dir,
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
            {},
        )
    except git.GitCommandError as e:
        stderr = _stderr(e)
        if "ambiguous" in stderr:
            raise SourceError(
                f"abbreviated commit {name!r} is ambiguous", retryable=False
            ) from None
        return None
    return out.strip() or None


def resolve_local(path: Path, revision: str) -> str:
    """The commit ``revision`` names in the local repository (work tree or bare) at ``path``."""
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{path} is not a git repository", retryable=False) from None
    try:
        git_dir = Path(repo.git_dir)
    finally:
        repo.close()
    refs = read_refs(git_dir)
    return resolve(refs, revision, lambda prefix: lookup_commit(git_dir, prefix)).commit
