"""The Job controller: runs a batch/v1 Job's pods to completion — kube-controller-manager's
``pkg/controller/job`` for the built-in cluster.

Who runs it: :class:`runtime.controllers.manager.ControllerManager` (controller name
``job``). Level-triggered: ``sync(namespace/name)`` reads the Job and its pods from the
shared informers and converges.

Kubernetes semantics followed:

- ``completions``/``parallelism``: at most ``parallelism`` active pods and never more than
  the completions still missing; ``completions`` unset is a work queue: no new pods once one
  succeeded, complete when one succeeded and none is active.
- Exact counting with the ``batch.kubernetes.io/job-tracking`` finalizer: every pod is
  created with it; a finished pod (Succeeded, Failed, or deleted before it succeeded) is
  first recorded in ``status.uncountedTerminatedPods``, then its finalizer is removed, then
  it moves into ``status.succeeded``/``status.failed`` — so a pod deleted at any point is
  counted exactly once, even across controller restarts.
- Pod-failure backoff before replacements: ``base * 2^(n-1)`` seconds after the last of
  ``n`` consecutive failures, capped at 6 minutes (``base`` = ``job.backoff-base``, 10 s).
- ``backoffLimit`` (failed pods, and container restarts with ``restartPolicy: OnFailure``)
  -> condition ``Failed`` reason ``BackoffLimitExceeded``; ``activeDeadlineSeconds`` ->
  ``Failed``/``DeadlineExceeded``. Active pods are deleted first; the final condition is
  written once they are all counted (as Kubernetes does).
- ``completionMode: Indexed``: pods ``<job>-<index>-<random>`` with annotation and label
  ``batch.kubernetes.io/job-completion-index``, ``JOB_COMPLETION_INDEX`` from that annotation
  in every container, hostname ``<job>-<index>``; ``status.completedIndexes`` as ranges.
- ``suspend``: active pods deleted, condition ``Suspended``; resuming resets ``startTime``.
- ``ttlSecondsAfterFinished``: the finished Job is deleted (Background propagation), the
  TTL-after-finished controller's job, folded in here.
- ``podFailurePolicy`` rules (``FailJob``/``Ignore``/``Count`` on container exit codes and
  pod conditions such as ``DisruptionTarget``) for pods that failed.

Selector and pod-template labels (``batch.kubernetes.io/controller-uid``, ``job-name``) are
defaulted by the API server's admission (:mod:`runtime.api.admission.defaults`); this
controller relies on them and finds its pods through their controller ownerReference.
Not done: orphan-pod adoption, ``backoffLimitPerIndex``/``maxFailedIndexes``,
``successPolicy``, the interim ``SuccessCriteriaMet``/``FailureTarget`` conditions and
``podReplacementPolicy: Failed`` (terminating pods are replaced at once).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from kubeclient.informer import key_of
from kubeclient.rest import JSON_PATCH, KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import (
    Expectations,
    Obj,
    controller_ref,
    is_pod_active,
    is_pod_ready,
    is_terminating,
    parse_time,
    pod_from_template,
    pod_phase,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
MAX_BACKOFF = 360.0
OWNER_INDEX = "job-owner"


# --- pure helpers ----------------------------------------------------------------------
def stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_indexes(text: str | None) -> set[int]:
    """``"0-2,4"`` -> ``{0, 1, 2, 4}`` (the format of ``status.completedIndexes``)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                out.update(range(int(lo), int(hi) + 1))
            else:
                out.add(int(lo))
        except ValueError:
            continue
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """``{0, 1, 2, 4}`` -> ``"0-2,4"``."""
    ranges: list[str] = []
    run: list[int] = []
    for ix in sorted(set(indexes)):
        if run and ix == run[-1] + 1:
            run.append(ix)
            continue
        if run:
            ranges.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [ix]
    if run:
        ranges.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(ranges)


def backoff_delay(failures: int, base: float) -> float:
    """Delay after ``failures`` consecutive pod failures (10 s doubling, 6 min cap)."""
    if failures <= 0:
        return 0.0
    return float(min(base * (2.0 ** (failures - 1)), MAX_BACKOFF))


def completion_index(pod: Mapping[str, Any], completions: int | None) -> int | None:
    """The pod's completion index when valid for a Job of ``completions``, else None."""
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(INDEX_KEY)
    if raw is None:
        raw = (meta.get("labels") or {}).get(INDEX_KEY)
    try:
        ix = int(str(raw))
    except ValueError:
        return None
    if ix < 0 or (completions is not None and ix >= completions):
        return None
    return ix


def finished_phase(pod: Mapping[str, Any]) -> str | None:
    """``Succeeded``/``Failed`` once the pod counts as finished: a terminal phase, or
    deleted before it succeeded (counted as failed, as Kubernetes' job tracking does)."""
    phase = pod_phase(pod)
    if phase in ("Succeeded", "Failed"):
        return phase
    if is_terminating(pod):
        return "Failed"
    return None


def finish_time(pod: Mapping[str, Any], default: float) -> float:
    """When the pod's last container terminated (``default`` if unknown)."""
    latest: float | None = None
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (st.get("state") or {}).get("terminated") or {}
        at = parse_time(term.get("finishedAt"))
        if at is not None and (latest is None or at > latest):
            latest = at
    return latest if latest is not None else default


def condition(job: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_finished(job: Mapping[str, Any]) -> bool:
    return any((condition(job, k) or {}).get("status") == "True" for k in ("Complete", "Failed"))


def set_condition(
    status: Obj, kind: str, cond_status: str, reason: str, message: str, now: str
) -> bool:
    """Set a Job condition; True when something changed (the transition time moves only
    when the status does)."""
    conds: list[Obj] = status.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == kind:
            if (
                cond.get("status") == cond_status
                and cond.get("reason") == reason
                and cond.get("message") == message
            ):
                return False
            if cond.get("status") != cond_status:
                cond["lastTransitionTime"] = now
            cond.update(status=cond_status, reason=reason, message=message, lastProbeTime=now)
            return True
    conds.append(
        {
            "type": kind,
            "status": cond_status,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )
    return True


def _exit_codes(pod: Mapping[str, Any], container: str | None) -> list[int]:
    codes: list[int] = []
    status = pod.get("status") or {}
    for st in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if container and st.get("name") != container:
            continue
        term = (st.get("state") or {}).get("terminated")
        if term is not None and term.get("exitCode") is not None:
            codes.append(int(term["exitCode"]))
    return codes


def failure_policy_action(job: Mapping[str, Any], pod: Mapping[str, Any]) -> str:
    """What ``spec.podFailurePolicy`` says about a failed pod: the first matching rule's
    action (``FailJob``, ``Ignore``, ``Count``, ``FailIndex``), ``Count`` if none matches."""
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    for rule in policy.get("rules") or []:
        action = str(rule.get("action") or "Count")
        req = rule.get("onExitCodes")
        if req:
            values = {int(v) for v in req.get("values") or []}
            op = req.get("operator")
            for code in _exit_codes(pod, req.get("containerName")):
                if code == 0:
                    continue  # exit code 0 never matches (Kubernetes ignores it)
                if (op == "In" and code in values) or (op == "NotIn" and code not in values):
                    return action
            continue
        for pattern in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == pattern.get("type") and cond.get("status") == (
                    pattern.get("status") or "True"
                ):
                    return action
    return "Count"


def want_active(spec: Mapping[str, Any], succeeded: int, completed_indexes: int) -> int:
    """How many pods should be active (before suspension and backoff)."""
    raw = spec.get("parallelism")
    parallelism = 1 if raw is None else int(raw)
    completions = spec.get("completions")
    if completions is None:
        return 0 if succeeded > 0 else parallelism
    done = completed_indexes if spec.get("completionMode") == "Indexed" else succeeded
    return max(0, min(parallelism, int(completions) - done))


# --- the controller --------------------------------------------------------------------
class _Backoff:
    """Kubernetes' backoff record: consecutive failures since the last success."""

    __slots__ = ("failures", "last_failure")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0


def _owner_key(pod: Mapping[str, Any]) -> list[str]:
    ref = controller_ref(pod)
    if (
        ref is None
        or ref.get("kind") != "Job"
        or not str(ref.get("apiVersion", "")).startswith("batch/")
    ):
        return []
    return [f"{(pod.get('metadata') or {}).get('namespace') or ''}/{ref.get('name')}"]


class JobController:
    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = clock
        self.backoff_base = ctx.setting("job.backoff-base", 10.0)
        self.workers = ctx.setting("job.workers", 5)
        self.recorder = ctx.recorder("job-controller")
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.backoffs: dict[str, _Backoff] = {}
        # Pod uids whose tracking finalizer this controller removed but the cache may
        # still show (Kubernetes' finalizer-removal expectations): never counted twice.
        self.removed: dict[str, set[str]] = {}
        # Jobs a podFailurePolicy FailJob rule has doomed (the message of their condition).
        self.fail_job: dict[str, str] = {}
        # The resourceVersion of this controller's last status write per Job.
        self.written: dict[str, str] = {}
        self.jobs = ctx.informers.informer("batch/v1", "jobs")
        self.pods = ctx.informers.informer("v1", "pods")
        self.pods.add_index(OWNER_INDEX, _owner_key)
        self.jobs.on(
            add=lambda o: self.queue.add(key_of(o)),
            update=lambda _o, n: self.queue.add(key_of(n)),
            delete=self._job_deleted,
        )
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)

    # --- handlers ---------------------------------------------------------------------
    def _job_deleted(self, job: Obj) -> None:
        key = key_of(job)
        self.expectations.forget(key)
        self.backoffs.pop(key, None)
        self.removed.pop(key, None)
        self.fail_job.pop(key, None)
        self.written.pop(key, None)

    def _pod_added(self, pod: Obj) -> None:
        for key in _owner_key(pod):
            self.expectations.created(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in _owner_key(new):
            if is_terminating(new) and not is_terminating(old):
                self.expectations.deleted(key)
            self.queue.add(key)
        for key in _owner_key(old):
            if key not in _owner_key(new):
                self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        for key in _owner_key(pod):
            if not is_terminating(pod):
                self.expectations.deleted(key)
            uid = (pod.get("metadata") or {}).get("uid")
            self.removed.get(key, set()).discard(str(uid))
            self.queue.add(key)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        await run_workers(self.queue, self.sync, workers=self.workers, name="job")

    # --- sync -------------------------------------------------------------------------
    def owned_pods(self, job: Mapping[str, Any]) -> list[Obj]:
        uid = (job.get("metadata") or {}).get("uid")
        return [
            p
            for p in self.pods.by_index(OWNER_INDEX, key_of(dict(job)))
            if (controller_ref(p) or {}).get("uid") == uid
        ]

    async def sync(self, key: str) -> None:
        cached = self.jobs.get(key)
        if cached is None:
            # The Job is gone: its pods must not keep the tracking finalizer (Kubernetes
            # removes it from orphans), or they could never be deleted.
            await self._release_all(key, self.pods.by_index(OWNER_INDEX, key))
            self.removed.pop(key, None)
            return
        uid = (cached.get("metadata") or {}).get("uid")
        orphans = [
            p
            for p in self.pods.by_index(OWNER_INDEX, key)
            if (controller_ref(p) or {}).get("uid") != uid
        ]
        if orphans:  # pods of an earlier Job of the same name
            await self._release_all(key, orphans)
        job = copy.deepcopy(cached)
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        if (job.get("metadata") or {}).get("deletionTimestamp"):
            await self._release_all(key, self.owned_pods(job))
            return
        pods = self.owned_pods(job)
        if is_finished(job):
            await self._release_all(key, pods)
            await self._ttl(key, job)
            return
        if not self.expectations.satisfied(key) or self._stale(key, job):
            return
        job = await self._track(key, job, pods)
        await self._converge(key, job, pods)

    def _stale(self, key: str, job: Obj) -> bool:
        """Whether the cache has not yet seen this controller's last status write (acting
        on older counters could create pods for work already done); the watch event of
        the write queues the Job again."""
        written = self.written.get(key)
        if written is None:
            return False
        seen = str((job.get("metadata") or {}).get("resourceVersion") or "")
        if seen == written or not (seen.isdigit() and written.isdigit()):
            self.written.pop(key, None)
            return False
        if int(seen) > int(written):
            self.written.pop(key, None)
            return False
        return True

    async def _write_status(self, job: Obj) -> Obj:
        meta = job["metadata"]
        key = f"{meta.get('namespace') or ''}/{meta['name']}"
        out = await self.client.replace(
            "batch/v1", "jobs", meta["name"], job, meta.get("namespace"), subresource="status"
        )
        self.written[key] = str((out.get("metadata") or {}).get("resourceVersion") or "")
        out.setdefault("apiVersion", "batch/v1")
        out.setdefault("kind", "Job")
        return out

    async def _remove_finalizer(self, key: str, pod: Obj) -> None:
        """Remove the tracking finalizer with a JSON patch whose ``test`` guards against a
        stale list; when the cached pod was stale, retry once with a fresh read."""
        meta = pod.get("metadata") or {}
        for attempt in range(2):
            finalizers = list(meta.get("finalizers") or [])
            if TRACKING_FINALIZER not in finalizers:
                break
            ix = finalizers.index(TRACKING_FINALIZER)
            patch = [
                {"op": "test", "path": f"/metadata/finalizers/{ix}", "value": TRACKING_FINALIZER},
                {"op": "remove", "path": f"/metadata/finalizers/{ix}"},
            ]
            try:
                await self.client.patch(
                    "v1",
                    "pods",
                    meta["name"],
                    patch,
                    meta.get("namespace"),
                    content_type=JSON_PATCH,
                )
                break
            except KubeError as exc:
                if exc.not_found:
                    break
                if attempt or exc.status not in (409, 422):
                    raise
                try:
                    fresh = await self.client.get("v1", "pods", meta["name"], meta.get("namespace"))
                except KubeError as again:
                    if again.not_found:
                        break
                    raise
                if (fresh.get("metadata") or {}).get("uid") != meta.get("uid"):
                    break
                meta = fresh.get("metadata") or {}
        self.removed.setdefault(key, set()).add(str(meta.get("uid")))

    async def _release_all(self, key: str, pods: list[Obj]) -> None:
        """Remove the tracking finalizer from every pod of a finished or deleted Job."""
        await asyncio.gather(
            *(
                self._remove_finalizer(key, p)
                for p in pods
                if TRACKING_FINALIZER in ((p.get("metadata") or {}).get("finalizers") or [])
                and str((p.get("metadata") or {}).get("uid")) not in self.removed.get(key, set())
            )
        )

    async def _track(self, key: str, job: Obj, pods: list[Obj]) -> Obj:
        """Count finished pods exactly once (uncountedTerminatedPods, then finalizer
        removal, then the counters); returns the Job as last written."""
        status = job.setdefault("status", {})
        spec = job.get("spec") or {}
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        uncounted = status.get("uncountedTerminatedPods") or {}
        unc_succ: list[str] = list(uncounted.get("succeeded") or [])
        unc_fail: list[str] = list(uncounted.get("failed") or [])
        removed = self.removed.setdefault(key, set())
        by_uid = {str((p.get("metadata") or {}).get("uid")): p for p in pods}
        # Forget removals the cache has caught up with.
        for uid in list(removed):
            pod = by_uid.get(uid)
            if pod is None or TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
                removed.discard(uid)
        completed = parse_indexes(status.get("completedIndexes"))
        now = self.clock()
        fresh: list[tuple[float, str, Obj]] = []
        for uid, pod in by_uid.items():
            if uid in removed or uid in unc_succ or uid in unc_fail:
                continue
            if TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
                continue
            phase = finished_phase(pod)
            if phase == "Failed" and spec.get("podFailurePolicy") and pod_phase(pod) != "Failed":
                phase = None  # with a podFailurePolicy only the Failed phase counts
            if phase is not None:
                fresh.append((finish_time(pod, now), phase, pod))
        to_release: list[Obj] = []
        fail_job: Obj | None = None
        if fresh:
            record = self.backoffs.setdefault(key, _Backoff())
            for at, phase, pod in sorted(fresh, key=lambda t: t[0]):
                uid = str(pod["metadata"].get("uid"))
                if phase == "Succeeded":
                    record.failures = 0
                    ix = completion_index(pod, completions) if indexed else None
                    if indexed and (ix is None or ix in completed):
                        to_release.append(pod)  # duplicate or invalid index: not counted
                        continue
                    if ix is not None:
                        completed.add(ix)
                    unc_succ.append(uid)
                    continue
                action = "Count"
                if pod_phase(pod) == "Failed" and spec.get("podFailurePolicy"):
                    action = failure_policy_action(job, pod)
                if action == "Ignore":
                    to_release.append(pod)
                    continue
                if action == "FailJob" and fail_job is None:
                    fail_job = pod
                record.failures += 1
                record.last_failure = max(record.last_failure, at)
                unc_fail.append(uid)
            status["uncountedTerminatedPods"] = {"succeeded": unc_succ, "failed": unc_fail}
            if indexed:
                status["completedIndexes"] = format_indexes(completed)
            job = await self._write_status(job)
            if fail_job is not None:
                name = fail_job["metadata"].get("name")
                self.fail_job[key] = (
                    f"Container of pod {job['metadata'].get('namespace')}/{name} matched a "
                    "podFailurePolicy rule with action FailJob"
                )
            status = job.setdefault("status", {})
        # Finalizers of everything recorded (and of pods not to be counted) come off.
        pending = set(unc_succ) | set(unc_fail)
        await asyncio.gather(
            *(
                self._remove_finalizer(key, by_uid[uid])
                for uid in pending
                if uid in by_uid and uid not in removed
            ),
            *(self._remove_finalizer(key, p) for p in to_release),
        )
        # Everything recorded whose finalizer is gone is counted now.
        succ_n = sum(1 for u in unc_succ if u not in by_uid or u in removed)
        fail_n = sum(1 for u in unc_fail if u not in by_uid or u in removed)
        still_succ = [u for u in unc_succ if u in by_uid and u not in removed]
        still_fail = [u for u in unc_fail if u in by_uid and u not in removed]
        status["succeeded"] = int(status.get("succeeded") or 0) + succ_n
        status["failed"] = int(status.get("failed") or 0) + fail_n
        status["uncountedTerminatedPods"] = {
            k: v for k, v in (("succeeded", still_succ), ("failed", still_fail)) if v
        }
        return job

    async def _converge(self, key: str, job: Obj, pods: list[Obj]) -> None:
        meta = job["metadata"]
        spec = job.get("spec") or {}
        status = job.setdefault("status", {})
        now = self.clock()
        now_s = stamp(now)
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        active = [p for p in pods if is_pod_active(p)]
        uncounted = status.get("uncountedTerminatedPods") or {}
        has_uncounted = bool(uncounted.get("succeeded") or uncounted.get("failed"))
        succeeded = int(status.get("succeeded") or 0)
        failed = int(status.get("failed") or 0)
        completed = parse_indexes(status.get("completedIndexes"))
        suspended = bool(spec.get("suspend"))

        # Suspension and resumption.
        susp = condition(job, "Suspended")
        if suspended:
            if set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", now_s):
                self.recorder.event(job, "Normal", "Suspended", "Suspend", "Job suspended")
        elif susp is not None and susp.get("status") == "True":
            set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now_s)
            status["startTime"] = now_s
            self.backoffs.pop(key, None)  # pods deleted by the suspension are no backoff
            self.recorder.event(job, "Normal", "Resumed", "Resume", "Job resumed")
        if not suspended and not status.get("startTime"):
            status["startTime"] = now_s

        # Why the Job is finished, if it is.
        finished: tuple[str, str, str] | None = None
        fail_msg = self.fail_job.get(key)
        restarts = 0
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            restarts = sum(
                int(cs.get("restartCount") or 0)
                for p in active
                for cs in (p.get("status") or {}).get("containerStatuses") or []
            )
        raw_limit = spec.get("backoffLimit")
        backoff_limit = 6 if raw_limit is None else int(raw_limit)
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if fail_msg:
            finished = ("Failed", "PodFailurePolicy", fail_msg)
        elif failed + restarts > backoff_limit:
            finished = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif (
            deadline is not None
            and started is not None
            and not suspended
            and now - started >= int(deadline)
        ):
            finished = (
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        elif completions is None:
            if succeeded > 0 and not active:
                finished = ("Complete", "", "")
        elif indexed:
            if len(completed) >= int(completions):
                finished = ("Complete", "", "")
        elif succeeded >= int(completions):
            finished = ("Complete", "", "")

        if finished is not None or suspended:
            if active:
                await self._delete_pods(key, job, active)
            if finished is not None and not active and not has_uncounted:
                kind, reason, message = finished
                set_condition(status, kind, "True", reason, message, now_s)
                if kind == "Complete":
                    status["completionTime"] = now_s
                    self.recorder.event(job, "Normal", "Completed", "Complete", "Job completed")
                else:
                    self.recorder.event(job, "Warning", reason, "Fail", message)
                self.backoffs.pop(key, None)
                self.fail_job.pop(key, None)
            elif finished is not None:
                self.queue.add_after(key, 1.0)
        else:
            await self._manage(key, job, active, succeeded, completed, now)
            if deadline is not None and started is not None:
                self.queue.add_after(key, max(started + int(deadline) - now, 0.0) + 0.05)

        still_active = [p for p in active if not finished and not suspended]
        status["active"] = len(still_active)
        status["ready"] = sum(1 for p in still_active if is_pod_ready(p))
        status["terminating"] = sum(
            1 for p in pods if is_terminating(p) and pod_phase(p) not in ("Succeeded", "Failed")
        )
        cached = self.jobs.get(key) or {}
        if _status_changed(cached.get("status") or {}, status) or (
            (cached.get("metadata") or {}).get("resourceVersion") != meta.get("resourceVersion")
        ):
            job = await self._write_status(job)
        if is_finished(job):
            await self._ttl(key, job)

    async def _manage(
        self,
        key: str,
        job: Obj,
        active: list[Obj],
        succeeded: int,
        completed: set[int],
        now: float,
    ) -> None:
        """Create or delete pods towards the wanted number of active ones."""
        spec = job.get("spec") or {}
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        want = want_active(spec, succeeded, len(completed))
        if completions is None and succeeded > 0:
            want = len(active)  # work queue: running pods finish, no new ones
        extra: list[Obj] = []
        to_create: list[int | None] = []
        if indexed and completions is not None:
            by_index: dict[int, list[Obj]] = {}
            for pod in active:
                ix = completion_index(pod, int(completions))
                if ix is None or ix in completed:
                    extra.append(pod)
                else:
                    by_index.setdefault(ix, []).append(pod)
            for ix_pods in by_index.values():
                extra.extend(_deletion_order(ix_pods)[:-1] if len(ix_pods) > 1 else [])
            running = len(by_index)
            pending = [
                i for i in range(int(completions)) if i not in completed and i not in by_index
            ]
            if running > want:
                extra.extend(
                    _deletion_order([ps[-1] for ps in by_index.values()])[: running - want]
                )
            else:
                to_create = list(pending[: want - running])
        else:
            if len(active) > want:
                extra = _deletion_order(active)[: len(active) - want]
            else:
                to_create = [None] * (want - len(active))
        if extra:
            await self._delete_pods(key, job, extra)
        if not to_create:
            return
        record = self.backoffs.get(key)
        if record is not None and record.failures > 0:
            wait = record.last_failure + backoff_delay(record.failures, self.backoff_base) - now
            if wait > 0:
                self.queue.add_after(key, wait)
                return
        await self._create_pods(key, job, to_create)

    async def _create_pods(self, key: str, job: Obj, indexes: list[int | None]) -> None:
        """Create pods in slow-start batches (1, 2, 4, …), stopping at the first error."""
        self.expectations.expect(key, creations=len(indexes))
        batch, pos = 1, 0
        while pos < len(indexes):
            chunk = indexes[pos : pos + batch]
            pos += len(chunk)
            results = await asyncio.gather(
                *(self._create_pod(key, job, ix) for ix in chunk), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                for _ in range(len(indexes) - pos):
                    self.expectations.created(key)  # never attempted
                raise errors[0]
            batch *= 2

    async def _create_pod(self, key: str, job: Obj, index: int | None) -> None:
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        name = meta["name"]
        extra_labels: dict[str, str] = {}
        generate = f"{name}-"
        if index is not None:
            generate = f"{name}-{index}-"
            extra_labels[INDEX_KEY] = str(index)
            tmeta = template.setdefault("metadata", {})
            tmeta["annotations"] = {**(tmeta.get("annotations") or {}), INDEX_KEY: str(index)}
            pspec = template.setdefault("spec", {})
            pspec.setdefault("hostname", f"{name}-{index}")
            for group in ("initContainers", "containers"):
                for container in pspec.get(group) or []:
                    env = [e for e in container.get("env") or [] if e.get("name") != INDEX_ENV]
                    env.append(
                        {
                            "name": INDEX_ENV,
                            "valueFrom": {
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": f"metadata.annotations['{INDEX_KEY}']",
                                }
                            },
                        }
                    )
                    container["env"] = env
        pod = pod_from_template(template, job, generate_name=generate, extra_labels=extra_labels)
        finalizers = pod["metadata"].setdefault("finalizers", [])
        if TRACKING_FINALIZER not in finalizers:
            finalizers.append(TRACKING_FINALIZER)
        try:
            created = await self.client.create("v1", "pods", pod, meta.get("namespace"))
        except KubeError as exc:
            self.expectations.created(key)
            self.recorder.event(job, "Warning", "FailedCreate", "Create", f"Error creating: {exc}")
            raise
        except Exception:
            self.expectations.created(key)
            raise
        self.recorder.event(
            job,
            "Normal",
            "SuccessfulCreate",
            "Create",
            f"Created pod: {(created.get('metadata') or {}).get('name')}",
        )

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        self.expectations.expect(key, deletions=len(pods))

        async def one(pod: Obj) -> None:
            pmeta = pod["metadata"]
            try:
                await self.client.delete(
                    "v1",
                    "pods",
                    pmeta["name"],
                    pmeta.get("namespace"),
                    body={"preconditions": {"uid": pmeta.get("uid")}},
                )
            except KubeError as exc:
                self.expectations.deleted(key)
                if exc.not_found or exc.conflict:
                    return
                raise
            self.recorder.event(
                job, "Normal", "SuccessfulDelete", "Delete", f"Deleted pod: {pmeta['name']}"
            )

        await asyncio.gather(*(one(p) for p in pods))

    async def _ttl(self, key: str, job: Obj) -> None:
        """Delete a finished Job once ``ttlSecondsAfterFinished`` has passed."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or (job.get("metadata") or {}).get("deletionTimestamp"):
            return
        status = job.get("status") or {}
        done = parse_time(status.get("completionTime"))
        if done is None:
            done = parse_time((condition(job, "Failed") or {}).get("lastTransitionTime"))
        if done is None:
            return
        wait = done + int(ttl) - self.clock()
        if wait > 0:
            self.queue.add_after(key, wait)
            return
        meta = job["metadata"]
        try:
            await self.client.delete(
                "batch/v1",
                "jobs",
                meta["name"],
                meta.get("namespace"),
                body={
                    "propagationPolicy": "Background",
                    "preconditions": {"uid": meta.get("uid")},
                },
            )
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):
                raise


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order Kubernetes prefers to delete them: unscheduled, pending, not
    ready, then the most recently created first."""

    def rank(pod: Obj) -> tuple[int, int, int, float]:
        spec = pod.get("spec") or {}
        created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
        return (
            0 if not spec.get("nodeName") else 1,
            0 if pod_phase(pod) == "Pending" else 1,
            0 if not is_pod_ready(pod) else 1,
            -created,
        )

    return sorted(pods, key=rank)


def _status_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def norm(s: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in s.items() if v not in (None, "", [], {})}
        unc = out.get("uncountedTerminatedPods")
        if isinstance(unc, dict) and not (unc.get("succeeded") or unc.get("failed")):
            out.pop("uncountedTerminatedPods")
        for k in ("active", "succeeded", "failed", "ready", "terminating"):
            if out.get(k) == 0:
                out.pop(k)
        return out

    return norm(old) != norm(new)


__all__ = [
    "JobController",
    "backoff_delay",
    "completion_index",
    "failure_policy_action",
    "finished_phase",
    "format_indexes",
    "parse_indexes",
    "want_active",
]
