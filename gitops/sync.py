"""One Application's pipeline: fetch → build → plan → apply → prune → health → result.

:class:`AppSync` holds what survives between runs of one Application (its Git cache, its
destination connection, the plan cache, the last good revision) and runs the pipeline
in one of three modes (:class:`Mode`): ``plan`` (what would change: ``gitops diff`` and
``gitops drift``), ``sync`` (apply what changed: ``gitops sync``, commits in the
service) and ``heal`` (a re-plan between commits that corrects drift when the
Application has selfHeal).

Guarantees: a failed fetch keeps the last good revision (and prunes nothing); a build
or plan with any invalid object applies nothing; prune only runs when fetch, build and
every apply succeeded. Every run returns a :class:`SyncResult` (data), which the CLI,
the service, the reports and the metrics render — also when something unexpected is
raised inside it (a bug, an OSError, a RecursionError, a MemoryError): that run fails
with ``internal error in <phase>: <ExceptionType>: <message>`` (:func:`internal_error`,
not retryable, logged with its traceback), goes no further (nothing more is applied,
nothing is pruned) and leaves the last good revision as it was.

Blocking work (git, building) runs in a worker thread; everything else is asyncio.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import structlog

from gitops import apply as applying
from gitops import plan as planning
from gitops.build import build
from gitops.changeset import Action, ChangeSet
from gitops.cluster import Destination
from gitops.config import (
    Application,
    Config,
    is_application,
    load_applications_from_manifests,
)
from gitops.errors import (
    BuildError,
    BuildErrors,
    ClusterError,
    ConfigError,
    GitopsError,
    SourceError,
)
from gitops.health import Health, HealthStatus
from gitops.manifest import Manifest
from gitops.source import GitCredentials, GitSource, Revision, SourceSpec, local_path

log = structlog.get_logger(__name__)


class Mode(StrEnum):
    PLAN = "plan"
    SYNC = "sync"
    HEAL = "heal"


class Phase(StrEnum):
    FETCH = "fetch"
    BUILD = "build"
    PLAN = "plan"
    APPLY = "apply"
    HEALTH = "health"
    DONE = "done"


@dataclass(frozen=True)
class RunOptions:
    mode: Mode = Mode.SYNC
    wait: bool = True
    """Wait for the applied objects to become healthy (up to the Application's timeout)."""
    timeout: float | None = None
    """Overrides the Application's health timeout."""
    revision: Revision | None = None
    """Already fetched (the service fetches to choose the mode): the run does not fetch."""


@dataclass
class SyncResult:
    """What one run did: the data every edge renders."""

    app: str
    mode: Mode
    revision: str = ""
    """The commit this run built ('' if the fetch failed before any good revision)."""
    revision_message: str = ""
    changes: ChangeSet = field(default_factory=ChangeSet)
    health: Health = field(default_factory=lambda: Health(HealthStatus.UNKNOWN))
    object_health: dict[str, Health] = field(default_factory=dict)
    error: str = ""
    error_phase: str = ""
    error_file: str | None = None
    error_line: int | None = None
    retryable: bool = False
    started_at: str = ""
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    dry_runs: int = 0
    applied: bool = False
    """This run applied changes (a sync, or a heal that corrected drift)."""

    @property
    def ok(self) -> bool:
        return not self.error and not self.changes.failed

    @property
    def in_sync(self) -> bool:
        return self.ok and not self.changes.changed

    @property
    def drifted(self) -> bool:
        return any(e.changed for e in self.changes.entries)


MAX_INTERNAL_DETAIL = 1000
"""Characters of an unexpected exception's message kept in a status (the log has it all)."""


def internal_error(phase: str, exc: BaseException) -> str:
    """The message of a run that raised something unexpected: our bug, not the input's."""
    try:
        detail = str(exc).strip()
    except Exception:
        detail = "(the exception cannot be shown)"
    if len(detail) > MAX_INTERNAL_DETAIL:
        detail = detail[:MAX_INTERNAL_DETAIL] + "…"
    return f"internal error in {phase}: {type(exc).__name__}" + (f": {detail}" if detail else "")


def credentials_for(app: Application, config: Config | None = None) -> GitCredentials | None:
    """The Application's Git credentials from the environment variables and files it (or
    the config's named ``credentials`` entry it refers to) names."""
    spec = (config or Config()).credentials_spec(app)
    if spec is None:
        return None

    def env(name: str | None) -> str | None:
        if not name:
            return None
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"application {app.name}: environment variable {name} is not set")
        return value

    def read(path: str | None) -> str | None:
        if not path:
            return None
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"application {app.name}: cannot read {path}: {exc.strerror}"
            ) from None

    username = env(spec.username_env)
    password = env(spec.token_env) or env(spec.password_env) or read(spec.token_file)
    if password is not None and username is None:
        username = "x-access-token" if (spec.token_env or spec.token_file) else None
    return GitCredentials(
        username=username,
        password=password,
        ssh_key_path=Path(spec.ssh_key_file) if spec.ssh_key_file else None,
        known_hosts_path=Path(spec.known_hosts_file) if spec.known_hosts_file else None,
    )


@dataclass(frozen=True)
class RepoLocation:
    """Where an Application's repository is: the URL git fetches, and the directory
    inside it that the Application's paths are relative to ('' = the repository root)."""

    url: str
    subdir: str = ""


def locate(repo_url: str) -> RepoLocation:
    """A local path inside a repository (like ``examples/repo`` of this project) is the
    enclosing repository plus a sub-directory, so a directory copied out into a
    repository of its own behaves the same."""
    path = local_path(repo_url)
    if path is None or not path.is_dir() or (path / ".git").exists():
        return RepoLocation(repo_url)
    try:
        top = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired):
        if (path / "HEAD").exists():  # a bare repository
            return RepoLocation(repo_url)
        raise SourceError(
            f"{path} is not in a Git repository (run `git init` and commit there)",
            retryable=False,
        ) from None
    return RepoLocation(top, path.resolve().relative_to(Path(top).resolve()).as_posix())


def source_spec(
    app: Application, location: RepoLocation | None = None, config: Config | None = None
) -> SourceSpec:
    url = location.url if location else app.source.repo_url
    return SourceSpec(url, app.source.revision, credentials_for(app, config))


class AppSync:
    """Runs one Application's pipeline against one destination."""

    def __init__(
        self,
        app: Application,
        source: GitSource,
        dest: Destination,
        config: Config | None = None,
    ) -> None:
        self.app = app
        self.source = source
        self.dest = dest
        self.config = config if config is not None else Config(applications=())
        """The operator's config: projects, named clusters and credentials."""
        self.project = self.config.project_of(app)
        self.cache = planning.PlanCache()
        self.last_good: Revision | None = None
        self._manifests: tuple[str, list[Manifest]] | None = None
        self.others: tuple[Application, ...] = ()
        """Applications declared elsewhere (the config's) that declared ones may name in
        ``dependsOn`` (and may not reuse the names of)."""
        self.children: list[Application] = []
        """Applications declared in the repository at this Application's path (app-of-apps)."""
        self._lock = asyncio.Lock()
        self._location: RepoLocation | None = None

    async def location(self) -> RepoLocation:
        if self._location is None:
            self._location = await asyncio.to_thread(locate, self.app.source.repo_url)
        return self._location

    def plan_options(self) -> planning.PlanOptions:
        a = self.app
        return planning.PlanOptions(
            app=a.name,
            namespace=a.destination.namespace,
            ignore=a.ignore_differences,
            force=a.force,
            prune=a.prune,
            project=self.project,
            cluster=a.destination.cluster.label,
        )

    async def fetch(self) -> Revision:
        spec = source_spec(self.app, await self.location(), self.config)
        return await asyncio.to_thread(self.source.fetch, spec)

    async def build(self, revision: Revision) -> list[Manifest]:
        """The revision's objects (built once per commit and kept)."""
        if self._manifests is not None and self._manifests[0] == revision.commit:
            return self._manifests[1]

        location = await self.location()

        def work() -> list[Manifest]:
            tree = self.source.checkout(
                source_spec(self.app, location, self.config), revision.commit
            )
            root = tree / location.subdir if location.subdir else tree
            if not root.is_dir():
                raise BuildError(
                    f"{location.subdir} does not exist at commit {revision.commit[:12]}"
                )
            return build(root, self.app.source.path, self.app.build_options())

        built = await asyncio.to_thread(work)
        declared = [m for m in built if is_application(m)]
        self.children = (
            load_applications_from_manifests(
                declared, self.others, parent=self.app, config=self.config
            )
            if declared
            else []
        )
        manifests = [m for m in built if not is_application(m)]
        self._manifests = (revision.commit, manifests)
        return manifests

    def _remember_applied(self, plan: planning.Plan) -> None:
        """What an apply returned is the live object: the next plan need not dry-run
        it again unless it or its manifest changes."""
        for p in plan.objects:
            key = p.entry.key
            version = str(((p.applied or {}).get("metadata") or {}).get("resourceVersion") or "")
            if p.applied is not None and not p.manual and version:
                self.cache.unchanged[key] = (planning.digest(p.desired), version)
            elif p.entry.changed or p.entry.action is Action.FAILED:
                self.cache.unchanged.pop(key, None)

    async def run(self, options: RunOptions = RunOptions()) -> SyncResult:
        async with self._lock:
            return await self._run(options)

    async def _run(self, options: RunOptions) -> SyncResult:
        result = SyncResult(self.app.name, options.mode)
        result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        phase = Phase.FETCH
        mark = t0
        dry_runs_before = self.cache.dry_runs

        def lap(name: Phase) -> None:
            nonlocal mark
            now = time.perf_counter()
            result.phase_seconds[name.value] = round(now - mark, 4)
            mark = now

        try:
            try:
                revision = options.revision or await self.fetch()
            except GitopsError as exc:
                if self.last_good is None:
                    raise
                # Keep the last good revision applied; report the error; never prune.
                result.error, result.error_phase, result.retryable = (
                    str(exc),
                    "fetch",
                    exc.retryable,
                )
                revision = self.last_good
                options = RunOptions(Mode.PLAN, wait=False)
            result.revision = revision.commit
            result.revision_message = revision.message
            lap(Phase.FETCH)
            phase = Phase.BUILD
            manifests = await self.build(revision)
            lap(Phase.BUILD)
            phase = Phase.PLAN
            plan = await planning.plan(
                self.dest, manifests, self.plan_options(), self.cache, revision.commit
            )
            result.changes = plan.changes
            lap(Phase.PLAN)
            if plan.failed:
                failed = plan.changes.failed
                result.error_phase = "plan"
                result.error = "; ".join(f"{e.key}: {e.message}" for e in failed[:5])
                return result
            if options.mode is Mode.PLAN:
                return result
            if options.mode is Mode.HEAL and not self.app.self_heal:
                return result
            phase = Phase.APPLY
            if plan.changes.changed or plan.inventory.revision != revision.commit:
                await applying.apply(
                    self.dest,
                    plan,
                    applying.ApplyOptions(
                        force=self.app.force,
                        self_heal=self.app.self_heal,
                        prune=self.app.prune and not result.error,
                    ),
                )
                self._remember_applied(plan)
                result.applied = True
            lap(Phase.APPLY)
            if plan.changes.failed:
                result.error_phase = "apply"
                result.error = "; ".join(f"{e.key}: {e.message}" for e in plan.changes.failed[:5])
                return result
            if not result.error:
                self.last_good = revision
            phase = Phase.HEALTH
            if options.wait:
                timeout = options.timeout if options.timeout is not None else self.app.timeout
                healths = await applying.wait_healthy(self.dest, plan.objects, timeout)
                result.object_health = {str(k): h for k, h in healths.items()}
                result.health = applying.overall(healths)
            lap(Phase.HEALTH)
            return result
        except BuildErrors as exc:
            first = exc.errors[0] if exc.errors else exc
            result.error_file, result.error_line = first.file, first.line
            result.error, result.error_phase, result.retryable = str(exc), phase.value, False
            return result
        except BuildError as exc:
            result.error_file, result.error_line = exc.file, exc.line
            result.error, result.error_phase, result.retryable = str(exc), phase.value, False
            return result
        except (GitopsError, ClusterError) as exc:
            result.error, result.error_phase, result.retryable = (
                str(exc),
                phase.value,
                exc.retryable,
            )
            return result
        except Exception as exc:  # a bug, not the input's fault: report it, keep going
            message = internal_error(phase.value, exc)
            log.error(
                "run crashed", app=self.app.name, phase=phase.value, error=message, exc_info=exc
            )
            result.error, result.error_phase, result.retryable = message, phase.value, False
            result.error_file = result.error_line = None
            # What was cached on the way may be half-made: build and plan afresh next time.
            self._manifests = None
            self.cache.unchanged.clear()
            return result
        finally:
            result.seconds = round(time.perf_counter() - t0, 4)
            result.dry_runs = self.cache.dry_runs - dry_runs_before
