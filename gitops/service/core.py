"""The reconciler's long-running service: keeps every Application synced.

``gitops serve`` and ``gitops up`` (gitops/cli.py) build a :class:`Service` from the
config and :class:`ServiceOptions`, ``await start()``, and ``await stop()`` on exit.

Each Application gets a slot: an asyncio task that runs its :class:`~gitops.sync.AppSync`
whenever it is triggered. Triggers come from one APScheduler interval job per
Application (its ``interval``), from a :class:`~gitops.source.RefWatcher` per local
repository and revision (a commit is applied at once), from push webhooks (``POST
/webhook``), from retries and from self-heal follow-up checks. Triggers that arrive
while a run is pending or running are coalesced into one more run. A run first waits
for its ``dependsOn`` Applications to be Synced and Healthy, then for one of
``max_concurrent`` places. Its mode is :func:`~gitops.service.policy.choose_mode`: a
``sync`` when the source's commit differs from the last applied one, else a drift
check (``heal``; ``plan`` while self-heal is held back by
:class:`~gitops.service.policy.HealGuard`). Every run is recorded in the
:class:`~gitops.status.StatusStore` (``state_dir/status.sqlite``: status survives
restarts), counted in the metrics and logged; a retryable failure is retried with the
Application's backoff; the Applications the run's repository declares (app-of-apps)
are added, updated or removed.

Suspended Applications are not run (their status says Suspended). Removing an
Application stops its jobs; its objects stay in the cluster.

A run that raises anything unexpected (a bug: not a :class:`~gitops.errors.GitopsError`)
is recorded as a failed run like any other — ``internal error in <phase>:
<ExceptionType>: <message>``, not retried, logged with its traceback — and counts as a
completed run for ``/readyz``; the Application keeps its last good revision and nothing
is pruned (:meth:`gitops.sync.AppSync.run` catches what happens inside the pipeline,
:meth:`Service._loop_app` what happens around it).

The HTTP endpoints need the API token for ``POST /webhook`` (unless the webhook is
signed) and, with ``read_access=ReadAccess.TOKEN``, for the reads
(:mod:`gitops.service.http`). Unless :attr:`ServiceOptions.api_token` is given, the
token is :func:`~gitops.service.auth.load_or_create_token`'s (``state_dir/service-token``,
0600): :attr:`Service.token_file` names it for the CLI to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gitops.changeset import use_mask_key
from gitops.config import Application, Config
from gitops.errors import ConfigError, GitopsError
from gitops.service.auth import (
    ReadAccess,
    WebhookPolicy,
    check_listener,
    check_token,
    load_or_create_token,
    token_path,
)
from gitops.service.destinations import Destinations
from gitops.service.http import Access, HttpServer, serve, split_listen
from gitops.service.logs import MAX_LOGGED_OBJECTS, log_result
from gitops.service.metrics import Metrics
from gitops.service.policy import (
    DEFAULT_RETRY,
    HealGuard,
    RetryTracker,
    blocking_dependencies,
    choose_mode,
    dependency_ready,
    reconcile_children,
)
from gitops.service.watchers import RepoWatchers
from gitops.source import GitSource, Revision, WebhookPush, matches
from gitops.status import HISTORY_LIMIT, AppStatus, StatusStore
from gitops.sync import AppSync, Mode, RunOptions, SyncResult, internal_error

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServiceOptions:
    state_dir: Path
    """``status.sqlite`` and the Git cache (``git/``) live here."""
    listen: str | None = "127.0.0.1:8080"
    """Address of the HTTP endpoints (port 0: any free port); ``None``: no HTTP server."""
    webhook_secret: str | None = None
    """The shared secret webhooks are signed with (GitHub, Gitea) or carry (GitLab)."""
    api_token: str | None = None
    """The bearer token of ``POST /webhook`` (and of the reads with
    ``read_access=TOKEN``); ``None``: the one in ``state_dir/service-token``, generated
    there (0600) on the first start with an HTTP listener."""
    read_access: ReadAccess = ReadAccess.OPEN
    """Whether ``/status``, ``/metrics`` and ``/readyz`` need the token (``/healthz`` never)."""
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    """Unsigned webhooks (refused unless allowed, and allowed on loopback only) and the
    replay window."""
    builtin_kubeconfig: Path | None = None
    """The kubeconfig of the destination ``builtin``; without it such runs fail."""
    max_concurrent: int = 4
    """Applications synced at once."""


@dataclass
class ServiceAppStatus(AppStatus):
    """:class:`AppStatus` plus what the service is doing with the Application now."""

    state: str = ""
    """``idle``, ``pending``, ``running``, ``waiting for A, B``, ``retrying at T`` or ``suspended``."""
    declared_by: str = ""
    """The Application whose repository declares it ('' for the config's)."""
    runs: int = 0
    """Runs completed by this process."""


@dataclass
class _Slot:
    """One Application the service runs."""

    app: Application
    parent: str | None
    sync: AppSync | None = None
    wanted: asyncio.Event = field(default_factory=asyncio.Event)
    reasons: list[str] = field(default_factory=list)
    running: bool = False
    closed: bool = False
    waiting_for: tuple[str, ...] = ()
    runs: int = 0
    status: AppStatus | None = None
    retry: RetryTracker = field(default_factory=RetryTracker)
    retry_at: datetime | None = None
    phase: str = ""
    """What the run in progress is doing: ``destination``, ``fetch`` (choosing the
    mode), ``run`` (:meth:`AppSync.run`, which records its own phase), ``record``,
    ``declared applications`` (app-of-apps)."""
    heal: HealGuard = field(default_factory=lambda: HealGuard(5.0, 180.0))
    task: asyncio.Task[None] | None = None
    watch: tuple[Path, str] | None = None

    def gone(self) -> bool:
        """Removed (or the service stopped): no further runs."""
        return self.closed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Service:
    """Keeps the config's Applications (and those their repositories declare) synced."""

    def __init__(self, config: Config, options: ServiceOptions) -> None:
        if options.max_concurrent < 1:
            raise ConfigError("max_concurrent must be at least 1")
        self.config = config
        self.options = options
        self.metrics = Metrics()
        self._slots: dict[str, _Slot] = {}
        self._destinations = Destinations(options.builtin_kubeconfig, config)
        self._watchers: RepoWatchers | None = None
        self._store: StatusStore | None = None
        self._source: GitSource | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._http: HttpServer | None = None
        self._semaphore = asyncio.Semaphore(options.max_concurrent)
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recording: set[asyncio.Future[AppStatus | None]] = set()
        self._started = False
        self._token: str | None = None
        self._token_file: Path | None = None

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open the status store, the destinations, the HTTP server, the scheduler and
        the watchers, and trigger a first sync of every Application."""
        if self._started:
            raise RuntimeError("the service is already started")
        self._started = True
        try:
            await self._open()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "service started",
            applications=len(self._slots),
            url=self.url,
            token_file=str(self._token_file) if self._token_file else None,
            state_dir=str(self.options.state_dir),
            max_concurrent=self.options.max_concurrent,
        )

    def _check_http(self) -> str | None:
        """The listener's host, after refusing an unsafe webhook policy."""
        listen = self.options.listen
        if listen is None:
            return None
        try:
            host, _ = split_listen(listen)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        check_listener(host, self.options.webhooks)
        return host

    async def _open(self) -> None:
        host = self._check_http()
        if host is not None:
            if self.options.api_token is not None:
                self._token = check_token(self.options.api_token)
            else:
                self._token = await asyncio.to_thread(load_or_create_token, self.options.state_dir)
                self._token_file = token_path(self.options.state_dir)
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._watchers = RepoWatchers(self._loop, self._on_commit)
        state = self.options.state_dir
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Secret stand-ins in diffs stay comparable across runs, keyed by the state dir.
        await asyncio.to_thread(use_mask_key, state)
        self._store = await asyncio.to_thread(StatusStore, state / "status.sqlite")
        self._source = await asyncio.to_thread(GitSource, state / "git")
        self._scheduler = AsyncIOScheduler(
            event_loop=self._loop,
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.start()
        for app in self.config.applications:
            # Errors (even unexpected ones) are reported by the Application's runs.
            with contextlib.suppress(Exception):
                await self._destinations.get(app)
        if self.options.listen is not None:
            access = Access(
                token=self._token,
                webhook_secret=self.options.webhook_secret,
                reads=self.options.read_access,
                webhooks=self.options.webhooks,
            )
            self._http = await serve(self, self.options.listen, access)
        for app in self.config.applications:
            await self._add(app, None, "start")

    async def stop(self) -> None:
        """Stop everything: scheduler, watchers, runs, HTTP server, destinations, store."""
        if not self._started:
            return
        self._started = False
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._watchers is not None:
            await self._watchers.close()
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        for slot in self._slots.values():
            slot.closed = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
        await self._destinations.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None
        log.info("service stopped")

    @property
    def url(self) -> str | None:
        return self._http.url if self._http is not None else None

    @property
    def api_token(self) -> str | None:
        """The bearer token the HTTP endpoints accept (``None`` before :meth:`start` or
        without a listener). Never logged."""
        return self._token

    @property
    def token_file(self) -> Path | None:
        """The file the token was read from or written to (``None`` when it was given in
        :attr:`ServiceOptions.api_token`, or without a listener)."""
        return self._token_file

    # --- triggers --------------------------------------------------------------------
    async def trigger(self, app: str, reason: str) -> None:
        """Run ``app`` soon; coalesced with a run already pending or running (one more run
        follows a running one). Suspended Applications are not run."""
        slot = self._slots.get(app)
        if slot is None:
            raise ConfigError(f"unknown application {app!r}")
        self._request(slot, reason)

    def _request(self, slot: _Slot, reason: str) -> None:
        if slot.closed or slot.app.suspend:
            return
        if reason not in slot.reasons:
            slot.reasons.append(reason)
        slot.wanted.set()

    async def _job(self, name: str, reason: str) -> None:
        slot = self._slots.get(name)
        if slot is not None:
            if reason == "retry":
                slot.retry_at = None
            self._request(slot, reason)

    def _on_commit(self, names: list[str], commit: str) -> None:
        for name in names:
            slot = self._slots.get(name)
            if slot is not None:
                self._request(slot, f"commit {commit[:12]}")

    async def on_push(self, push: WebhookPush) -> list[str]:
        """Trigger every Application whose repository the push concerns."""
        names = [
            name
            for name, slot in sorted(self._slots.items())
            if not slot.app.suspend and matches(push, slot.app.source.repo_url)
        ]
        for name in names:
            self._request(self._slots[name], f"webhook {push.provider} {push.ref}")
        return names

    # --- views -----------------------------------------------------------------------
    def statuses(self, history: int = 5) -> list[AppStatus]:
        """Every Application's status: the stored view with the last ``history`` runs,
        plus what the service does with it now (:class:`ServiceAppStatus`)."""
        stored: dict[str, AppStatus] = {}
        if self._store is not None:
            stored = {s.name: s for s in self._store.statuses(list(self._slots), history)}
        out: list[AppStatus] = []
        for name, slot in sorted(self._slots.items()):
            base = stored.get(name) or AppStatus(name)
            status = ServiceAppStatus(
                **{f: getattr(base, f) for f in AppStatus.__dataclass_fields__},
                state=self._state(slot),
                declared_by=slot.parent or "",
                runs=slot.runs,
            )
            if slot.app.suspend:
                status.sync_status = "Suspended"
            out.append(status)
        return out

    def applications(self) -> dict[str, Application]:
        """Every Application the service runs now (the config's and declared ones)."""
        return {name: slot.app for name, slot in sorted(self._slots.items())}

    def status_report(self) -> list[AppStatus]:
        return self.statuses(history=HISTORY_LIMIT)

    def not_ready(self) -> list[str]:
        """Non-suspended Applications that have not completed a run yet."""
        return sorted(n for n, s in self._slots.items() if not s.app.suspend and s.runs == 0)

    def metrics_text(self) -> str:
        return self.metrics.render()

    @staticmethod
    def _state(slot: _Slot) -> str:
        if slot.app.suspend:
            return "suspended"
        if slot.running:
            return "running"
        if slot.waiting_for:
            return "waiting for " + ", ".join(slot.waiting_for)
        if slot.wanted.is_set():
            return "pending"
        if slot.retry_at is not None:
            return f"retrying at {slot.retry_at.isoformat(timespec='seconds')}"
        return "idle"

    # --- the set of Applications --------------------------------------------------------
    async def _add(
        self, app: Application, parent: str | None, reason: str, predecessor: _Slot | None = None
    ) -> None:
        """Run ``app`` (declared by ``parent``); its first run waits for the run in
        progress of the ``predecessor`` it replaces."""
        slot = _Slot(app, parent, heal=self._heal_guard(app))
        self._slots[app.name] = slot
        if not app.suspend:
            before = predecessor.task if predecessor is not None else None
            slot.task = asyncio.create_task(self._loop_app(slot, before), name=f"app:{app.name}")
            self._schedule_interval(app)
            slot.watch = await self._watch(app)
            self._request(slot, reason)
        await self._notify()

    async def _watch(self, app: Application) -> tuple[Path, str] | None:
        """Watch ``app``'s local repository; one that cannot be watched (missing, not a
        repository) is only logged: the Application's runs report the problem."""
        assert self._watchers is not None
        try:
            return await self._watchers.watch(app)
        except GitopsError as exc:
            log.warning("cannot watch the repository", app=app.name, error=str(exc))
        except Exception as exc:
            message = internal_error("watch", exc)
            log.error("cannot watch the repository", app=app.name, error=message, exc_info=exc)
        return None

    async def _remove(self, name: str, *, forget: bool = True) -> _Slot | None:
        """Stop ``name``'s jobs and watcher; its run in progress finishes first. With
        ``forget``, also drop its metrics and the Applications it declared."""
        slot = self._slots.pop(name, None)
        if slot is None:
            return None
        slot.closed = True
        if slot.task is not None and not slot.running:
            slot.task.cancel()
        self._unschedule(name)
        if self._watchers is not None:
            await self._watchers.unwatch(name, slot.watch)
        if forget:
            self.metrics.forget(name)
            for child in [n for n, s in self._slots.items() if s.parent == name]:
                log.info("application removed", app=child, reason=f"{name} was removed")
                await self._remove(child)
        await self._notify()
        return slot

    async def _reconcile_children(self, parent: _Slot) -> None:
        if parent.sync is None or parent.closed:
            return
        changes = reconcile_children(
            parent.app.name,
            parent.sync.children,
            {n: s.app for n, s in self._slots.items()},
            {n: s.parent for n, s in self._slots.items()},
        )
        for app, why in changes.refused:
            log.error("application refused", app=app.name, declared_by=parent.app.name, reason=why)
        for name in changes.removed:
            log.info("application removed", app=name, declared_by=parent.app.name)
            await self._remove(name)
        for app in changes.updated:
            log.info("application updated", app=app.name, declared_by=parent.app.name)
            old = await self._remove(app.name, forget=False)
            await self._add(app, parent.app.name, "spec changed", old)
        for app in changes.added:
            log.info("application added", app=app.name, declared_by=parent.app.name)
            await self._add(app, parent.app.name, f"declared by {parent.app.name}")

    # --- scheduling ------------------------------------------------------------------
    def _heal_guard(self, app: Application) -> HealGuard:
        retry = app.retry or DEFAULT_RETRY
        return HealGuard(base=retry.backoff.duration, cap=app.interval)

    def _schedule_interval(self, app: Application) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=app.interval, timezone=UTC),
            args=[app.name, "interval"],
            id=f"interval:{app.name}",
            replace_existing=True,
        )

    def _schedule_once(self, name: str, kind: str, delay: float) -> datetime:
        assert self._scheduler is not None
        when = datetime.now(UTC) + timedelta(seconds=delay)
        self._scheduler.add_job(
            self._job,
            DateTrigger(run_date=when, timezone=UTC),
            args=[name, kind],
            id=f"{kind}:{name}",
            replace_existing=True,
        )
        return when

    def _unschedule(
        self, name: str, kinds: tuple[str, ...] = ("interval", "retry", "check")
    ) -> None:
        if self._scheduler is None:
            return
        for kind in kinds:
            job = self._scheduler.get_job(f"{kind}:{name}")
            if job is not None:
                job.remove()

    async def _appsync(self, slot: _Slot) -> AppSync:
        if slot.sync is None:
            assert self._source is not None
            slot.sync = AppSync(
                slot.app, self._source, await self._destinations.get(slot.app), self.config
            )
            # Applications a repository declares may depend on the config's.
            slot.sync.others = tuple(self.config.applications)
        return slot.sync

    # --- runs ------------------------------------------------------------------------
    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def _dependency_ready(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.runs > 0 and dependency_ready(slot.status)

    async def _wait_for_dependencies(self, slot: _Slot) -> None:
        assert self._changed is not None
        async with self._changed:
            while True:
                blocking = blocking_dependencies(slot.app, self._dependency_ready)
                if blocking != slot.waiting_for and blocking:
                    log.info("waiting for dependencies", app=slot.app.name, waiting_for=blocking)
                slot.waiting_for = blocking
                if not blocking:
                    return
                await self._changed.wait()

    async def _loop_app(self, slot: _Slot, predecessor: asyncio.Task[None] | None) -> None:
        if predecessor is not None:  # the run of the replaced slot finishes first
            await asyncio.wait([predecessor])
        while not slot.gone():
            await slot.wanted.wait()
            await self._wait_for_dependencies(slot)
            if slot.gone():
                return
            slot.wanted.clear()
            reasons, slot.reasons = slot.reasons, []
            async with self._semaphore:
                if slot.gone():
                    return
                slot.running = True
                slot.phase = "destination"
                try:
                    await self._run_once(slot, reasons)
                except Exception as exc:
                    await self._crashed(slot, reasons, exc)
                finally:
                    slot.running = False
            await self._notify()

    async def _crashed(self, slot: _Slot, reasons: list[str], exc: Exception) -> None:
        """Record a run that raised something unexpected as a failed run of the phase it
        was in; it counts as a completed run (readiness) even if recording fails too."""
        phase = slot.phase
        message = internal_error(phase, exc)
        log.error("run crashed", app=slot.app.name, phase=phase, error=message, exc_info=exc)
        result = SyncResult(
            slot.app.name,
            Mode.SYNC,
            error=message,
            error_phase=phase,
            retryable=False,
            started_at=_now(),
        )
        counted = slot.runs
        try:
            await self._finish(slot, result, reasons)  # no revision: no children to update
        except Exception as again:
            log.error(
                "crashed run not recorded",
                app=slot.app.name,
                error=internal_error("record", again),
                exc_info=again,
            )
        finally:
            if slot.runs == counted:
                slot.runs += 1

    async def _mode(self, slot: _Slot, sync: AppSync) -> RunOptions:
        """The run's mode, and the revision fetched to choose it (the run reuses it)."""
        applied = sync.last_good.commit if sync.last_good is not None else None
        fetched: Revision | None = None
        if applied is not None:
            try:
                fetched = await sync.fetch()
            except GitopsError:
                fetched = None  # the run fetches again and reports the error
            except Exception as exc:  # a bug: the run fetches again and records it
                message = internal_error("fetch", exc)
                log.error("fetch crashed", app=slot.app.name, error=message, exc_info=exc)
                fetched = None
        held = slot.app.self_heal and slot.heal.held(time.monotonic())
        mode = choose_mode(fetched.commit if fetched else None, applied, heal_held=held)
        return RunOptions(mode, revision=fetched)

    async def _run_once(self, slot: _Slot, reasons: list[str]) -> None:
        app = slot.app
        try:
            sync = await self._appsync(slot)
        except GitopsError as exc:
            result = SyncResult(
                app.name,
                Mode.SYNC,
                error=f"{exc}",
                error_phase="destination",
                retryable=exc.retryable,
                started_at=_now(),
            )
        else:
            slot.phase = "fetch"
            options = await self._mode(slot, sync)
            log.debug("run started", app=app.name, mode=options.mode.value, reasons=reasons)
            slot.phase = "run"
            result = await sync.run(options)
        slot.phase = "record"
        await self._finish(slot, result, reasons)

    async def _record(self, result: SyncResult) -> AppStatus | None:
        store = self._store
        if store is None:
            return None

        def work() -> AppStatus | None:
            store.record(result)
            found = store.statuses([result.app], history=0)
            return found[0] if found else None

        future = asyncio.ensure_future(asyncio.to_thread(work))
        self._recording.add(future)
        future.add_done_callback(self._recording.discard)
        return await asyncio.shield(future)

    async def _finish(self, slot: _Slot, result: SyncResult, reasons: list[str]) -> None:
        """Record, count and log a run, schedule its retry or self-heal check, and update
        the Applications its repository declares."""
        app = slot.app
        slot.status = await self._record(result)
        slot.runs += 1
        if not slot.gone():  # a removed Application's series stay forgotten
            self.metrics.observe(result, slot.status)
        log_result(result, app.self_heal, reasons)
        if result.ok:
            slot.retry.succeeded()
            if slot.retry_at is not None:
                self._unschedule(app.name, ("retry",))
                slot.retry_at = None
        else:
            delay = slot.retry.failed(result.revision, result.retryable, app.retry)
            if delay is not None and not slot.closed:
                slot.retry_at = self._schedule_once(app.name, "retry", delay)
                log.info(
                    "retry scheduled", app=app.name, seconds=delay, attempt=slot.retry.failures
                )
        if result.ok and result.mode is Mode.HEAL and app.self_heal:
            healed = [str(e.key) for e in result.changes.changed]
            follow_up = slot.heal.checked(healed, time.monotonic())
            if follow_up is not None and not slot.closed:
                self._schedule_once(app.name, "check", follow_up)
                log.info(
                    "self-heal check scheduled",
                    app=app.name,
                    seconds=follow_up,
                    objects=healed[:MAX_LOGGED_OBJECTS],
                )
        if result.revision and result.error_phase not in ("fetch", "build", "destination"):
            slot.phase = "declared applications"
            await self._reconcile_children(slot)
