"""Validation of batch/v1: Job and CronJob, and the cron schedule grammar.

Follows ``pkg/apis/batch/validation``. Schedules are parsed as ``robfig/cron/v3``'s
``ParseStandard`` does (five fields, names for months and weekdays, ``*``/``?``,
ranges, steps, lists, and the ``@yearly``..``@hourly``/``@every`` descriptors) and
rejected with that library's messages. :func:`parse_schedule` is reusable by the
CronJob controller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kubemodel import validation as names
from kubemodel.errors import Cause

from ._causes import (
    Go,
    duplicate,
    go_labels,
    go_selector,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    required,
    too_many,
)
from .meta import d, lst, s, selector_matches, validate_label_selector
from .podspec import validate_pod_template_spec, validate_qualified_name

Obj = dict[str, Any]


# --- cron ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """Allowed values per field; ``every`` is set for ``@every <duration>`` schedules."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days_of_month: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    days_of_week: frozenset[int] = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    every: float | None = None


class ScheduleError(ValueError):
    pass


_MONTH_NAMES = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DOW_NAMES = {d_: i for i, d_ in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_BOUNDS = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, _MONTH_NAMES),
    (0, 6, _DOW_NAMES),
)
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _go_duration(text: str) -> float:
    if text in ("0", "+0", "-0"):
        return 0.0
    body = text.lstrip("+-")
    if not body:
        raise ScheduleError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            if re.match(r"[0-9.]+$", body[pos:]):
                raise ScheduleError(f'time: missing unit in duration "{text}"')
            raise ScheduleError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return -total if text.startswith("-") else total


def _go_atoi(expr: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise ScheduleError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax'
        )
    num = int(expr)
    if num < 0:
        raise ScheduleError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_int_or_name(expr: str, names_: dict[str, int] | None) -> int:
    if names_ is not None and expr.lower() in names_:
        return names_[expr.lower()]
    return _go_atoi(expr)


def _get_range(expr: str, lo: int, hi: int, names_: dict[str, int] | None) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = lo, hi, True
    else:
        start = _parse_int_or_name(low_and_high[0], names_)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int_or_name(low_and_high[1], names_)
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _go_atoi(range_and_step[1])
        if single:
            end = hi
        if step > 1:
            star = False
    else:
        raise ScheduleError(f"too many slashes: {expr}")
    if start < lo:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise ScheduleError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def parse_schedule(spec: str) -> Schedule:
    """Parse a standard five-field cron schedule; :class:`ScheduleError` says why not."""
    if not spec:
        raise ScheduleError("empty spec string")
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        zone, _, rest = spec.partition(" ")
        name = zone.partition("=")[2]
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"provided bad location {name}: unknown time zone {name}") from exc
        spec = rest.strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            spec = _DESCRIPTORS[spec]
        elif spec.startswith("@every "):
            text = spec[len("@every ") :]
            try:
                seconds = _go_duration(text)
            except ScheduleError as exc:
                raise ScheduleError(f"failed to parse duration {spec}: {exc}") from exc
            return Schedule(every=max(seconds, 1.0))
        else:
            raise ScheduleError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    values: list[frozenset[int]] = []
    stars: list[bool] = []
    for field_text, (lo, hi, names_) in zip(fields, _BOUNDS):
        bits: set[int] = set()
        star = False
        for expr in (part for part in field_text.split(",") if part):
            got, is_star = _get_range(expr, lo, hi, names_)
            bits |= got
            star = star or is_star
        values.append(frozenset(bits))
        stars.append(star)
    return Schedule(
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=values[4],
        dom_star=stars[2],
        dow_star=stars[4],
    )


_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}").fullmatch


def _validate_time_zone(zone: Any, path: str) -> list[Cause]:
    if zone is None:
        return []
    value = s(zone)
    if not value:
        return [invalid(path, value, "timeZone must be nil or non-empty string")]
    for part in value.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART(part):
            return [invalid(path, value, f"unknown time zone {value}")]
    out: list[Cause] = []
    if value.lower() == "local":
        out.append(
            invalid(
                path,
                value,
                "timeZone must be an explicit time zone as defined in "
                "https://www.iana.org/time-zones",
            )
        )
    if value != "Local":  # Go's time.LoadLocation accepts "Local" itself
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(invalid(path, value, f"unknown time zone {value}"))
    return out


# --- Job -------------------------------------------------------------------------------
_FAILURE_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]


def _validate_pod_failure_policy(spec: Obj, path: str) -> list[Cause]:
    policy = d(spec.get("podFailurePolicy"))
    rules = lst(policy.get("rules"))
    out: list[Cause] = []
    rules_path = f"{path}.rules"
    if len(rules) > 20:
        out.append(too_many(rules_path, len(rules), 20))
    tspec = d(d(spec.get("template")).get("spec"))
    containers = {
        s(d(c).get("name")) for key in ("containers", "initContainers") for c in lst(tspec.get(key))
    }
    for i, rule in enumerate(rules):
        rule = d(rule)
        rp = f"{rules_path}[{i}]"
        action = rule.get("action")
        if not action:
            out.append(
                required(f"{rp}.action", 'valid values: ["Count" "FailIndex" "FailJob" "Ignore"]')
            )
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                out.append(
                    invalid(f"{rp}.action", action, "requires the backoffLimitPerIndex to be set")
                )
        elif action not in _FAILURE_ACTIONS:
            out.append(not_supported(f"{rp}.action", action, _FAILURE_ACTIONS))
        exit_codes = rule.get("onExitCodes")
        conditions = lst(rule.get("onPodConditions"))
        if exit_codes is not None:
            exit_codes = d(exit_codes)
            ep = f"{rp}.onExitCodes"
            operator = exit_codes.get("operator")
            if not operator:
                out.append(required(f"{ep}.operator", 'valid values: ["In" "NotIn"]'))
            elif operator not in ("In", "NotIn"):
                out.append(not_supported(f"{ep}.operator", operator, ["In", "NotIn"]))
            container = exit_codes.get("containerName")
            if container is not None and container not in containers:
                out.append(
                    invalid(
                        f"{ep}.containerName",
                        container,
                        "must be one of the container or initContainer names in the pod template",
                    )
                )
            values = [v for v in lst(exit_codes.get("values")) if isinstance(v, int)]
            if not values:
                out.append(
                    invalid(f"{ep}.values", Go("[]int32(nil)"), "at least one value is required")
                )
            elif len(values) > 255:
                out.append(too_many(f"{ep}.values", len(values), 255))
            seen: set[int] = set()
            for j, v in enumerate(values):
                if operator == "In" and v == 0:
                    out.append(invalid(f"{ep}.values[{j}]", v, "must not be 0 for the In operator"))
                if v in seen:
                    out.append(duplicate(f"{ep}.values[{j}]", v))
                seen.add(v)
            if values != sorted(values):
                out.append(
                    invalid(
                        f"{ep}.values",
                        Go("[]int32{" + ", ".join(map(str, values)) + "}"),
                        "must be ordered",
                    )
                )
        if conditions:
            cp = f"{rp}.onPodConditions"
            if len(conditions) > 20:
                out.append(too_many(cp, len(conditions), 20))
            for j, pattern in enumerate(conditions):
                pattern = d(pattern)
                out.extend(validate_qualified_name(s(pattern.get("type")), f"{cp}[{j}].type"))
                status = pattern.get("status")
                if not status:
                    out.append(
                        required(f"{cp}[{j}].status", 'valid values: ["False" "True" "Unknown"]')
                    )
                elif status not in ("False", "True", "Unknown"):
                    out.append(
                        not_supported(f"{cp}[{j}].status", status, ["False", "True", "Unknown"])
                    )
        if exit_codes is not None and conditions:
            out.append(
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: specifying both OnExitCodes and OnPodConditions is not "
                    "supported",
                    rp,
                )
            )
        if exit_codes is None and not conditions:
            out.append(
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                    rp,
                )
            )
    return out


def _validate_job_spec(spec: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ):
        out.extend(nonnegative(f"{path}.{key}", spec.get(key)))
    if spec.get("maxFailedIndexes") is not None:
        out.extend(nonnegative(f"{path}.maxFailedIndexes", spec.get("maxFailedIndexes")))
        if spec.get("backoffLimitPerIndex") is None:
            out.append(
                required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified")
            )
    managed_by = spec.get("managedBy")
    if managed_by is not None:
        for value, msg in names.is_domain_prefixed_path(s(managed_by)):
            out.append(
                required(f"{path}.managedBy")
                if not msg
                else invalid(f"{path}.managedBy", value, msg)
            )
        if len(s(managed_by)) > 63:
            out.append(
                Cause(
                    "FieldValueTooLong",
                    "Too long: may not be more than 63 bytes",
                    f"{path}.managedBy",
                )
            )
    mode = spec.get("completionMode")
    indexed = mode == "Indexed"
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            out.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        if indexed:
            completions = spec.get("completions")
            parallelism = spec.get("parallelism")
            max_failed = spec.get("maxFailedIndexes")
            if completions is None:
                out.append(required(f"{path}.completions", "when completion mode is Indexed"))
            if isinstance(parallelism, int) and parallelism > 100000:
                out.append(
                    invalid(
                        f"{path}.parallelism",
                        parallelism,
                        "must be less than or equal to 100000 when completion mode is Indexed",
                    )
                )
            if (
                isinstance(completions, int)
                and isinstance(max_failed, int)
                and max_failed > completions
            ):
                out.append(
                    invalid(
                        f"{path}.maxFailedIndexes",
                        max_failed,
                        "must be less than or equal to completions",
                    )
                )
    if not indexed:
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                out.append(invalid(f"{path}.{key}", spec[key], "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        out.extend(_validate_pod_failure_policy(spec, f"{path}.podFailurePolicy"))
    if spec.get("successPolicy") is not None and not indexed:
        out.append(
            invalid(
                f"{path}.successPolicy",
                Go("batch.SuccessPolicy{...}"),
                "requires indexed completion mode",
            )
        )
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                out.append(not_supported(f"{path}.podReplacementPolicy", replacement, ["Failed"]))
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            out.append(
                not_supported(
                    f"{path}.podReplacementPolicy", replacement, ["Failed", "TerminatingOrFailed"]
                )
            )
    out.extend(validate_pod_template_spec(spec.get("template"), f"{path}.template"))
    restart = d(d(spec.get("template")).get("spec")).get("restartPolicy") or ""
    rp = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", ""):
        out.append(required(rp, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        out.append(not_supported(rp, restart, ["OnFailure", "Never"]))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        out.append(
            invalid(rp, restart, 'only "Never" is supported when podFailurePolicy is specified')
        )
    return out


def _has_label(meta: Obj, key: str, expected: str, path: str) -> list[Cause]:
    labels = d(meta.get("labels"))
    if key not in labels:
        return [required(f"{path}.labels[{key}]", f"must be '{expected}'")]
    if labels[key] != expected:
        return [invalid(f"{path}.labels[{key}]", go_labels(labels), f"must be '{expected}'")]
    return []


def validate_job(obj: Obj, old: Obj | None) -> list[Cause]:
    meta = d(obj.get("metadata"))
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    uid = s(meta.get("uid"))
    name = s(meta.get("name"))
    if spec.get("manualSelector") is not True and spec.get("selector") is not None:
        if not uid:
            out.append(required("metadata.uid"))
        tmeta = d(d(spec.get("template")).get("metadata"))
        tpath = "spec.template.metadata"
        out.extend(_has_label(tmeta, "controller-uid", uid, tpath))
        out.extend(_has_label(tmeta, "job-name", name, tpath))
        out.extend(_has_label(tmeta, "batch.kubernetes.io/controller-uid", uid, tpath))
        out.extend(_has_label(tmeta, "batch.kubernetes.io/job-name", name, tpath))
        expected = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        if not validate_label_selector(spec["selector"], "spec.selector") and not selector_matches(
            spec["selector"], expected
        ):
            out.append(
                invalid(
                    "spec.selector", go_selector(spec["selector"]), "`selector` not auto-generated"
                )
            )
    out.extend(_validate_job_spec(spec, "spec"))
    selector = spec.get("selector")
    labels = d(d(d(spec.get("template")).get("metadata")).get("labels"))
    mismatch = invalid(
        "spec.template.metadata.labels",
        go_labels(labels),
        "`selector` does not match template `labels`",
    )
    if selector is None:
        # A missing selector parses to one that matches nothing, so both are reported.
        out.append(required("spec.selector"))
        out.append(mismatch)
    else:
        sel_errs = validate_label_selector(selector, "spec.selector")
        out.extend(sel_errs)
        if not sel_errs and not selector_matches(selector, labels):
            out.append(mismatch)
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and isinstance(completions, int) and completions > 0:
        hostname = f"{name}-{completions - 1}"
        if names.is_dns1123_label(hostname):
            out.append(
                invalid(
                    "metadata.name",
                    name,
                    f"will not able to create pod with invalid DNS label: {hostname}",
                )
            )
    if old is not None:
        out.extend(_job_update(spec, d(old.get("spec")), old))
    return out


_SCHEDULING_TEMPLATE_FIELDS = ("nodeSelector", "tolerations", "schedulingGates")


def _job_update(spec: Obj, old_spec: Obj, old: Obj) -> list[Cause]:
    out: list[Cause] = []
    indexed = spec.get("completionMode") == "Indexed"
    if spec.get("completions") != old_spec.get("completions"):
        if not indexed:
            out.append(immutable("spec.completions", spec.get("completions")))
        elif spec.get("completions") is not None and spec.get("completions") != spec.get(
            "parallelism"
        ):
            out.append(
                invalid(
                    "spec.completions",
                    spec.get("completions"),
                    "can only be modified in tandem with spec.parallelism",
                )
            )
    if spec.get("selector") != old_spec.get("selector"):
        out.append(immutable("spec.selector", go_selector(spec.get("selector"))))
    template = d(spec.get("template"))
    old_template = d(old_spec.get("template"))
    never_started = old_spec.get("suspend") is True and not d(old.get("status")).get("startTime")
    if never_started:
        template = _without_scheduling(template)
        old_template = _without_scheduling(old_template)
    if template != old_template:
        out.append(immutable("spec.template", Go("core.PodTemplateSpec{...}")))
    for key in (
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ):
        if spec.get(key) != old_spec.get(key):
            value = spec.get(key)
            out.append(
                immutable(
                    f"spec.{key}",
                    value if not isinstance(value, (dict, list)) else Go(f"{key}{{...}}"),
                )
            )
    return out


def _without_scheduling(template: Obj) -> Obj:
    result = dict(template)
    result["metadata"] = {
        k: v for k, v in d(template.get("metadata")).items() if k not in ("labels", "annotations")
    }
    tspec = dict(d(template.get("spec")))
    for key in _SCHEDULING_TEMPLATE_FIELDS:
        tspec.pop(key, None)
    affinity = dict(d(tspec.get("affinity")))
    affinity.pop("nodeAffinity", None)
    if affinity:
        tspec["affinity"] = affinity
    else:
        tspec.pop("affinity", None)
    result["spec"] = tspec
    return result


# --- CronJob ---------------------------------------------------------------------------
def validate_cron_job(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    old_spec = d(old.get("spec")) if old is not None else None
    out: list[Cause] = []
    schedule = spec.get("schedule")
    if not schedule:
        out.append(required("spec.schedule"))
    else:
        text = s(schedule)
        try:
            parse_schedule(text)
        except ScheduleError as exc:
            out.append(invalid("spec.schedule", text, str(exc)))
        allow_tz = old_spec is not None and "TZ" in s(old_spec.get("schedule"))
        if allow_tz and "TZ" in text and spec.get("timeZone") is not None:
            out.append(
                invalid(
                    "spec.schedule",
                    text,
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                )
            )
        elif not allow_tz and "TZ" in text:
            out.append(
                invalid(
                    "spec.schedule",
                    text,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                )
            )
    out.extend(nonnegative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds")))
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        out.extend(_validate_time_zone(spec.get("timeZone"), "spec.timeZone"))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        out.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        out.append(not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    job_spec = d(d(spec.get("jobTemplate")).get("spec"))
    out.extend(_validate_job_spec(job_spec, "spec.jobTemplate.spec"))
    if job_spec.get("selector") is not None:
        out.append(
            invalid(
                "spec.jobTemplate.spec.selector",
                go_selector(job_spec["selector"]),
                "`selector` will be auto-generated",
            )
        )
    if job_spec.get("manualSelector") is True:
        out.append(not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    out.extend(
        nonnegative("spec.successfulJobsHistoryLimit", spec.get("successfulJobsHistoryLimit"))
    )
    out.extend(nonnegative("spec.failedJobsHistoryLimit", spec.get("failedJobsHistoryLimit")))
    name = s(d(obj.get("metadata")).get("name"))
    if old is None and len(name) > 52:
        out.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return out
