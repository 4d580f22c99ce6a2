"""The CronJob controller: creates a batch/v1 Job from a CronJob's template at each of its
schedule's times — kube-controller-manager's ``pkg/controller/cronjob`` (the v2
controller) for the built-in cluster.

Who runs it: :class:`runtime.controllers.manager.ControllerManager` (controller name
``cronjob``). Level-triggered: ``sync(namespace/name)`` reads the CronJob and the Jobs it
controls from the shared informers, acts, and queues itself again for the next schedule
time (``WorkQueue.add_after``), so a changed schedule takes effect at the next sync.

Schedules: parsed (and refused) exactly as the API server's validation does
(:func:`runtime.api.admission.batch.parse_schedule`: five fields, names, ``@yearly`` ..
``@hourly`` macros, ``@every <duration>``), and their times computed by APScheduler's
cron trigger (``CronTrigger.from_crontab``; when both day-of-month and day-of-week are
restricted, either matches, as in cron, through an ``OrTrigger``) in ``spec.timeZone``
(default: this machine's local zone). A ``TZ=``/``CRON_TZ=`` prefix, which validation no
longer accepts on new objects, is still honoured with an ``UnsupportedSchedule`` warning,
as Kubernetes does.

Kubernetes semantics followed: only the most recent missed schedule time runs (the
others are skipped), and only if within ``startingDeadlineSeconds`` (else
``MissSchedule``); more than 100 missed times raise a ``TooManyMissedTimes`` warning;
``concurrencyPolicy`` Allow/Forbid/Replace; ``suspend``; Jobs named
``<cronjob>-<scheduled time in minutes since the epoch>`` with the
``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation, the template's labels and
annotations and a controller ownerReference; ``status.active`` (object references),
``lastScheduleTime``, ``lastSuccessfulTime``; finished Jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` deleted oldest first.
Jobs created by hand from a CronJob (``kubectl create job --from=cronjob/x``) are owned
by it but, as in Kubernetes, not added to ``status.active`` (``UnexpectedJob``).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from tzlocal import get_localzone

from kubeclient.informer import key_of
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.api.admission.batch import ScheduleError, parse_schedule
from runtime.controllers.common import Obj, controller_ref, owner_reference, parse_time
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
OWNER_INDEX = "cronjob-owner"
MAX_MISSED = 100
#: Requeue a little after the schedule time, as Kubernetes' nextScheduleDelta does.
NEXT_DELTA = 0.1
_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


# --- schedules ---------------------------------------------------------------------------
class CronSchedule:
    """A parsed schedule in a time zone; :meth:`next` is robfig/cron's ``Next``: the first
    activation strictly after ``t`` (whole seconds)."""

    def __init__(self, text: str, tz: dt.tzinfo) -> None:
        self.text = text
        self.tz = tz
        parsed = parse_schedule(text)
        self.every = parsed.every
        self.trigger: Any = None
        if parsed.every is not None:
            return

        def field(values: frozenset[int]) -> str:
            return ",".join(str(v) for v in sorted(values))

        minute, hour = field(parsed.minutes), field(parsed.hours)
        dom, month = field(parsed.days_of_month), field(parsed.months)
        dow = ",".join(_DOW[d] for d in sorted(parsed.days_of_week))
        if parsed.dom_star or parsed.dow_star:
            self.trigger = CronTrigger.from_crontab(
                f"{minute} {hour} {dom} {month} {dow}", timezone=tz
            )
        else:  # both restricted: a day matching either field runs
            self.trigger = OrTrigger(
                [
                    CronTrigger.from_crontab(f"{minute} {hour} {dom} {month} *", timezone=tz),
                    CronTrigger.from_crontab(f"{minute} {hour} * {month} {dow}", timezone=tz),
                ]
            )

    def next(self, t: dt.datetime) -> dt.datetime | None:
        whole = t.replace(microsecond=0)
        if self.every is not None:
            return whole + dt.timedelta(seconds=self.every)
        after = (whole + dt.timedelta(seconds=1)).astimezone(self.tz)
        found: dt.datetime | None = self.trigger.get_next_fire_time(None, after)
        return found


def resolve_schedule(cronjob: Mapping[str, Any]) -> tuple[CronSchedule, str | None]:
    """The CronJob's schedule in its time zone, and a warning when the schedule carries a
    ``TZ=``/``CRON_TZ=`` prefix. Raises :class:`ScheduleError` (bad schedule) or
    :class:`ZoneInfoNotFoundError` (unknown ``spec.timeZone``)."""
    spec = cronjob.get("spec") or {}
    text = str(spec.get("schedule") or "").strip()
    warning: str | None = None
    tz: dt.tzinfo
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, rest = text.partition(" ")
        warning = (
            f'CRON_TZ or TZ used in schedule "{text}" is not officially supported, see '
            "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
        )
        tz = _zone(zone.partition("=")[2])
        text = rest.strip()
    elif spec.get("timeZone"):
        tz = _zone(str(spec["timeZone"]))
    else:
        tz = get_localzone()
    return CronSchedule(text, tz), warning


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except ValueError as exc:
        raise ZoneInfoNotFoundError(name) from exc


def most_recent_schedule_time(
    earliest: dt.datetime,
    now: dt.datetime,
    schedule: CronSchedule,
    starting_deadline: int | None,
) -> tuple[dt.datetime | None, int]:
    """The latest schedule time in ``(earliest, now]`` and how many there were
    (Kubernetes' mostRecentScheduleTime; ``earliest`` moves up to ``now -
    startingDeadlineSeconds``). The count is exact up to ``MAX_MISSED + 1`` and an
    estimate beyond, as Kubernetes' is."""
    if starting_deadline is not None:
        deadline = now - dt.timedelta(seconds=starting_deadline)
        if deadline > earliest:
            earliest = deadline
    t1 = schedule.next(earliest)
    if t1 is None or t1 > now:
        return None, 0
    t2 = schedule.next(t1)
    if t2 is None or t2 > now:
        return t1, 1
    latest, count = t1, 1
    t: dt.datetime | None = t2
    while t is not None and t <= now and count <= MAX_MISSED:
        latest, count = t, count + 1
        t = schedule.next(t)
    if t is None or t > now:
        return latest, count
    # Far behind: estimate the count from the period and find the last time by looking
    # back from now over growing windows.
    period = max((t2 - t1).total_seconds(), 1.0)
    estimate = int((now - t1).total_seconds() // period) + 1
    window = period * 2
    while True:
        start = max(now - dt.timedelta(seconds=window), latest)
        probe: dt.datetime | None = schedule.next(start)
        if probe is not None and probe <= now:
            while True:
                following = schedule.next(probe)
                if following is None or following > now:
                    return probe, max(estimate, count + 1)
                probe = following
        window *= 2


def next_schedule_delay(now: dt.datetime, schedule: CronSchedule) -> float | None:
    """Seconds until the schedule's next time after ``now`` (plus a small delta)."""
    upcoming = schedule.next(now)
    if upcoming is None:
        return None
    return max((upcoming - now).total_seconds(), 0.0) + NEXT_DELTA


def job_name(cronjob_name: str, scheduled: dt.datetime) -> str:
    """``<cronjob>-<minutes since the epoch>`` (Kubernetes' getJobName)."""
    return f"{cronjob_name}-{int(scheduled.timestamp() // 60)}"


def rfc3339(t: dt.datetime) -> str:
    """RFC 3339 as Go formats it: ``Z`` for UTC, else the offset."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def utc_stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_template(cronjob: Mapping[str, Any], scheduled: dt.datetime) -> Obj:
    """The Job to create for ``scheduled`` (Kubernetes' getJobFromTemplate2)."""
    meta = cronjob.get("metadata") or {}
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = rfc3339(scheduled)
    job_meta: Obj = {
        "name": job_name(str(meta.get("name")), scheduled),
        "namespace": meta.get("namespace"),
        "labels": dict(tmeta.get("labels") or {}),
        "annotations": annotations,
        "ownerReferences": [owner_reference(cronjob)],
    }
    if not job_meta["labels"]:
        del job_meta["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": template.get("spec") or {},
    }


def job_finished(job: Mapping[str, Any]) -> str | None:
    """``Complete`` or ``Failed`` when the Job has finished."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def history_to_delete(cronjob: Mapping[str, Any], jobs: list[Obj]) -> list[Obj]:
    """Finished Jobs beyond the history limits, oldest first (by start time, then name)."""
    spec = cronjob.get("spec") or {}
    out: list[Obj] = []
    for kind, limit_key in (
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ):
        limit = spec.get(limit_key)
        if limit is None:
            continue
        done = [j for j in jobs if job_finished(j) == kind]
        if len(done) <= int(limit):
            continue

        def started(job: Obj) -> tuple[float, str]:
            status = job.get("status") or {}
            at = parse_time(status.get("startTime"))
            return (at if at is not None else -math.inf, str(job["metadata"].get("name")))

        done.sort(key=started)
        out.extend(done[: len(done) - int(limit)])
    return out


def object_reference(job: Mapping[str, Any]) -> Obj:
    meta = job.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }


def _owner_key(job: Mapping[str, Any]) -> list[str]:
    ref = controller_ref(job)
    if ref is None or ref.get("kind") != "CronJob":
        return []
    return [f"{(job.get('metadata') or {}).get('namespace') or ''}/{ref.get('name')}"]


# --- the controller -----------------------------------------------------------------------
class CronJobController:
    def __init__(
        self,
        ctx: ControllerContext,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = clock
        self.recorder = ctx.recorder("cronjob-controller")
        self.queue = WorkQueue()
        # The resourceVersion of this controller's last status write per CronJob: a sync
        # waits until the cache has it (else it would act on a stale status.active).
        self.written: dict[str, str] = {}
        self.cronjobs = ctx.informers.informer("batch/v1", "cronjobs")
        self.jobs = ctx.informers.informer("batch/v1", "jobs")
        self.jobs.add_index(OWNER_INDEX, _owner_key)
        self.cronjobs.on(
            add=lambda o: self.queue.add(key_of(o)),
            update=self._cronjob_updated,
            delete=self._cronjob_deleted,
        )
        self.jobs.on(
            add=self._job_event,
            update=lambda old, new: self._job_event(new, old),
            delete=self._job_event,
        )

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        self.queue.add(key_of(new))

    def _cronjob_deleted(self, cronjob: Obj) -> None:
        self.written.pop(key_of(cronjob), None)

    def _job_event(self, job: Obj, old: Obj | None = None) -> None:
        for key in _owner_key(job) + (_owner_key(old) if old is not None else []):
            self.queue.add(key)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=5, name="cronjob")

    def owned_jobs(self, cronjob: Mapping[str, Any]) -> list[Obj]:
        uid = (cronjob.get("metadata") or {}).get("uid")
        return [
            j
            for j in self.jobs.by_index(OWNER_INDEX, key_of(dict(cronjob)))
            if (controller_ref(j) or {}).get("uid") == uid
        ]

    async def sync(self, key: str) -> None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return
        written = self.written.get(key)
        seen = str((cached.get("metadata") or {}).get("resourceVersion") or "")
        if written is not None:
            if seen.isdigit() and written.isdigit() and int(seen) < int(written):
                return  # the cache has not seen our last status write; its event requeues
            self.written.pop(key, None)
        cronjob = copy.deepcopy(cached)
        cronjob.setdefault("apiVersion", "batch/v1")
        cronjob.setdefault("kind", "CronJob")
        jobs = self.owned_jobs(cronjob)
        requeue = await self._sync(cronjob, jobs)
        await self._cleanup(cronjob, jobs)
        if requeue is not None:
            self.queue.add_after(key, requeue)

    async def _sync(self, cronjob: Obj, jobs: list[Obj]) -> float | None:
        """Reconcile ``status.active`` with the Jobs, then schedule; returns when to look
        again (seconds)."""
        meta = cronjob["metadata"]
        status = cronjob.setdefault("status", {})
        old_status = copy.deepcopy(status)
        active: list[Obj] = list(status.get("active") or [])
        active_uids = {a.get("uid") for a in active}
        by_uid = {j["metadata"].get("uid"): j for j in jobs}

        for job in jobs:
            uid = job["metadata"].get("uid")
            finished = job_finished(job)
            if uid not in active_uids:
                if finished is None:
                    self.recorder.event(
                        cronjob,
                        "Warning",
                        "UnexpectedJob",
                        "Sync",
                        f"Saw a job that the controller did not create or forgot: "
                        f"{job['metadata'].get('name')}",
                    )
                continue
            if finished is None:
                continue
            active = [a for a in active if a.get("uid") != uid]
            self.recorder.event(
                cronjob,
                "Normal",
                "SawCompletedJob",
                "Sync",
                f"Saw completed job: {job['metadata'].get('name')}, status: {finished}",
            )
            done = parse_time((job.get("status") or {}).get("completionTime"))
            last = parse_time(status.get("lastSuccessfulTime"))
            if finished == "Complete" and done is not None and (last is None or done > last):
                status["lastSuccessfulTime"] = (job.get("status") or {})["completionTime"]
        for ref in list(active):
            if ref.get("uid") in by_uid:
                continue
            try:
                await self.client.get("batch/v1", "jobs", str(ref.get("name")), meta["namespace"])
            except KubeError as exc:
                if not exc.not_found:
                    raise
                active = [a for a in active if a.get("uid") != ref.get("uid")]
                self.recorder.event(
                    cronjob,
                    "Normal",
                    "MissingJob",
                    "Sync",
                    f"Active job went missing: {ref.get('name')}",
                )
        status["active"] = active

        requeue = await self._schedule(cronjob)
        if not status.get("active"):
            status.pop("active", None)
        if status != old_status:
            await self._write_status(cronjob)
        return requeue

    async def _schedule(self, cronjob: Obj) -> float | None:
        """Create the Job for the most recent unmet schedule time, if it is due."""
        meta = cronjob["metadata"]
        spec = cronjob.get("spec") or {}
        status = cronjob["status"]
        if meta.get("deletionTimestamp") or spec.get("suspend"):
            return None
        try:
            schedule, warning = resolve_schedule(cronjob)
        except ZoneInfoNotFoundError:
            self.recorder.event(
                cronjob,
                "Warning",
                "UnknownTimeZone",
                "Sync",
                f"invalid timeZone: {spec.get('timeZone')!r}",
            )
            return None
        except ScheduleError as exc:
            self.recorder.event(
                cronjob,
                "Warning",
                "UnparseableSchedule",
                "Sync",
                f"unparseable schedule: {spec.get('schedule')!r} : {exc}",
            )
            return None
        if warning:
            self.recorder.event(cronjob, "Warning", "UnsupportedSchedule", "Sync", warning)
        now = self.clock()
        earliest_at = parse_time(status.get("lastScheduleTime")) or parse_time(
            meta.get("creationTimestamp")
        )
        earliest = dt.datetime.fromtimestamp(earliest_at or now.timestamp(), dt.UTC)
        deadline = spec.get("startingDeadlineSeconds")
        scheduled, missed = most_recent_schedule_time(
            earliest, now, schedule, None if deadline is None else int(deadline)
        )
        requeue = next_schedule_delay(now, schedule)
        if missed > MAX_MISSED:
            self.recorder.event(
                cronjob,
                "Warning",
                "TooManyMissedTimes",
                "Sync",
                f"too many missed start times: {missed}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew",
            )
        if scheduled is None:
            return requeue
        scheduled = scheduled.astimezone(schedule.tz)
        if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < now:
            self.recorder.event(
                cronjob,
                "Warning",
                "MissSchedule",
                "Sync",
                f"Missed scheduled time to start a job: {rfc3339(scheduled)}",
            )
            return requeue
        name = job_name(str(meta["name"]), scheduled)
        active: list[Obj] = status.get("active") or []
        if any(a.get("name") == name for a in active) or parse_time(
            status.get("lastScheduleTime")
        ) == float(int(scheduled.timestamp())):
            return requeue
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(
                cronjob,
                "Normal",
                "JobAlreadyActive",
                "Sync",
                "Not starting job because prior execution is running and concurrency "
                "policy is Forbid",
            )
            return requeue
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cronjob, str(ref.get("name")), ref.get("uid"))
                status["active"] = [a for a in status["active"] if a.get("uid") != ref.get("uid")]
        body = job_from_template(cronjob, scheduled)
        try:
            created = await self.client.create("batch/v1", "jobs", body, meta.get("namespace"))
        except KubeError as exc:
            if exc.already_exists:
                # Created by an earlier sync whose status write was lost, or by someone
                # else: Kubernetes assumes the creator recorded it and moves on.
                log.info("cronjob.job-exists", cronjob=meta["name"], job=name)
                return requeue
            self.recorder.event(
                cronjob, "Warning", "FailedCreate", "Create", f"Error creating job: {exc}"
            )
            raise
        self.recorder.event(cronjob, "Normal", "SuccessfulCreate", "Create", f"Created job {name}")
        status.setdefault("active", []).append(object_reference(created))
        status["lastScheduleTime"] = utc_stamp(scheduled)
        return requeue

    async def _delete_job(self, cronjob: Obj, name: str, uid: Any) -> None:
        try:
            await self.client.delete(
                "batch/v1",
                "jobs",
                name,
                cronjob["metadata"].get("namespace"),
                body={"propagationPolicy": "Background", "preconditions": {"uid": uid}},
            )
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):
                raise
            return
        self.recorder.event(cronjob, "Normal", "SuccessfulDelete", "Delete", f"Deleted job {name}")

    async def _cleanup(self, cronjob: Obj, jobs: list[Obj]) -> None:
        for job in history_to_delete(cronjob, jobs):
            await self._delete_job(cronjob, str(job["metadata"]["name"]), job["metadata"]["uid"])

    async def _write_status(self, cronjob: Obj) -> None:
        meta = cronjob["metadata"]
        out = await self.client.replace(
            "batch/v1",
            "cronjobs",
            meta["name"],
            cronjob,
            meta.get("namespace"),
            subresource="status",
        )
        key = f"{meta.get('namespace') or ''}/{meta['name']}"
        self.written[key] = str((out.get("metadata") or {}).get("resourceVersion") or "")


__all__ = [
    "CronJobController",
    "CronSchedule",
    "history_to_delete",
    "job_from_template",
    "job_name",
    "most_recent_schedule_time",
    "next_schedule_delay",
    "resolve_schedule",
]
