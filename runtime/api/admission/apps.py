"""Validation of apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet.

Follows ``pkg/apis/apps/validation`` plus the registry strategies' update rules: the
selector of all four is immutable (``field is immutable``), and a StatefulSet may only
change replicas, ordinals, template, updateStrategy, revisionHistoryLimit,
persistentVolumeClaimRetentionPolicy and minReadySeconds.
"""

from __future__ import annotations

from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause

from ._causes import (
    Go,
    forbidden,
    go_int_or_string,
    go_selector,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    required,
)
from .meta import (
    d,
    selector_is_empty,
    selector_matches,
    validate_annotations,
    validate_label_selector,
    validate_labels,
)
from .podspec import template_selector_mismatch, validate_pod_template_spec

Obj = dict[str, Any]


def _percent_value(value: Any) -> tuple[int, bool]:
    if isinstance(value, str) and not names.is_valid_percent(value):
        return int(value[:-1]), True
    return 0, False


def _int_or_percent(value: Any) -> int:
    pct, is_pct = _percent_value(value)
    if is_pct:
        return pct
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def validate_positive_int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        return [invalid(path, go_int_or_string(value), m) for m in names.is_valid_percent(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        return nonnegative(path, value)
    return [invalid(path, go_int_or_string(value), "must be an integer or percentage (e.g '5%')")]


def _not_more_than_100_percent(value: Any, path: str) -> list[Cause]:
    pct, is_pct = _percent_value(value)
    if is_pct and pct > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []


def _selector_checks(spec: Obj, kind: str) -> tuple[list[Cause], bool]:
    """Selector required, valid and non-empty; returns (causes, selector parses).

    A missing selector still "parses" (to a selector that matches nothing), as
    ``LabelSelectorAsSelector(nil)`` does in Kubernetes.
    """
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")], True
    out = validate_label_selector(selector, "spec.selector")
    parses = not out
    if selector_is_empty(selector):
        out.append(
            invalid("spec.selector", go_selector(selector), f"empty selector is invalid for {kind}")
        )
    return out, parses


def _selects_template(selector: Any, template: Obj) -> bool:
    """Whether a parsed selector accepts the template (an empty selector accepts all)."""
    if selector is None:
        return False
    if selector_is_empty(selector):
        return True
    return selector_matches(selector, d(template.get("metadata")).get("labels"))


def _template_for_replicas(spec: Obj, kind: str) -> list[Cause]:
    template = d(spec.get("template"))
    out: list[Cause] = []
    if not _selects_template(spec.get("selector"), template):
        out.append(template_selector_mismatch("spec.template", template))
    out.extend(validate_pod_template_spec(template, "spec.template"))
    tspec = d(template.get("spec"))
    if tspec.get("restartPolicy") != "Always":
        out.append(
            not_supported(
                "spec.template.spec.restartPolicy", tspec.get("restartPolicy") or "", ["Always"]
            )
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        out.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind} is not Supported",
            )
        )
    return out


def _selector_immutable(spec: Obj, old: Obj | None) -> list[Cause]:
    if old is None:
        return []
    old_selector = d(old.get("spec")).get("selector")
    if spec.get("selector") != old_selector:
        return [immutable("spec.selector", go_selector(spec.get("selector")))]
    return []


def _strategy_go(strategy: Obj, type_name: str, rolling_type: str) -> Go:
    rolling = "nil" if strategy.get("rollingUpdate") is None else "0xc000000000"
    kind = strategy.get("type") or ""
    return Go(f'{type_name}{{Type:"{kind}", RollingUpdate:(*{rolling_type})({rolling})}}')


# --- Deployment ----------------------------------------------------------------------
def validate_deployment(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = nonnegative("spec.replicas", spec.get("replicas"))
    sel_errs, parses = _selector_checks(spec, "deployment")
    out.extend(sel_errs)
    if parses:
        out.extend(_template_for_replicas(spec, "ReplicaSet"))
    else:
        out.append(
            invalid("spec.selector", go_selector(spec.get("selector")), "invalid label selector")
        )
    strategy = d(spec.get("strategy"))
    kind = strategy.get("type")
    sp = "spec.strategy"
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            out.append(
                forbidden(
                    f"{sp}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
                )
            )
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            out.append(required(f"{sp}.rollingUpdate", "this should be defaulted and never be nil"))
        else:
            rolling = d(rolling)
            rp = f"{sp}.rollingUpdate"
            out.extend(
                validate_positive_int_or_percent(
                    rolling.get("maxUnavailable"), f"{rp}.maxUnavailable"
                )
            )
            out.extend(validate_positive_int_or_percent(rolling.get("maxSurge"), f"{rp}.maxSurge"))
            if (
                _int_or_percent(rolling.get("maxUnavailable")) == 0
                and _int_or_percent(rolling.get("maxSurge")) == 0
            ):
                out.append(
                    invalid(
                        f"{rp}.maxUnavailable",
                        go_int_or_string(rolling.get("maxUnavailable")),
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
            out.extend(
                _not_more_than_100_percent(rolling.get("maxUnavailable"), f"{rp}.maxUnavailable")
            )
    else:
        out.append(
            not_supported(
                sp,
                _strategy_go(strategy, "apps.DeploymentStrategy", "apps.RollingUpdateDeployment"),
                ["Recreate", "RollingUpdate"],
            )
        )
    out.extend(nonnegative("spec.minReadySeconds", spec.get("minReadySeconds")))
    out.extend(nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit")))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        out.extend(nonnegative("spec.progressDeadlineSeconds", deadline))
        min_ready = spec.get("minReadySeconds") or 0
        if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
            out.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    out.extend(_selector_immutable(spec, old))
    return out


# --- ReplicaSet ----------------------------------------------------------------------
def validate_replica_set(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = nonnegative("spec.replicas", spec.get("replicas"))
    out.extend(nonnegative("spec.minReadySeconds", spec.get("minReadySeconds")))
    sel_errs, parses = _selector_checks(spec, "deployment")
    out.extend(sel_errs)
    if parses:
        out.extend(_template_for_replicas(spec, "ReplicaSet"))
    else:
        out.append(
            invalid("spec.selector", go_selector(spec.get("selector")), "invalid label selector")
        )
    out.extend(_selector_immutable(spec, old))
    return out


# --- DaemonSet -----------------------------------------------------------------------
def validate_daemon_set(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out = validate_label_selector(spec.get("selector"), "spec.selector")
    template = d(spec.get("template"))
    selector = spec.get("selector")
    if not out and not _selects_template(selector, template):
        out.append(template_selector_mismatch("spec.template", template))
    if selector is not None and selector_is_empty(selector):
        out.append(
            invalid(
                "spec.selector", go_selector(selector), "empty selector is invalid for daemonset"
            )
        )
    out.extend(validate_pod_template_spec(template, "spec.template"))
    tspec = d(template.get("spec"))
    if tspec.get("restartPolicy") != "Always":
        out.append(
            not_supported(
                "spec.template.spec.restartPolicy", tspec.get("restartPolicy") or "", ["Always"]
            )
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        out.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in DaemonSet is not Supported",
            )
        )
    out.extend(nonnegative("spec.minReadySeconds", spec.get("minReadySeconds")))
    strategy = d(spec.get("updateStrategy"))
    kind = strategy.get("type")
    sp = "spec.updateStrategy"
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            out.append(required(f"{sp}.rollingUpdate"))
        else:
            rolling = d(rolling)
            rp = f"{sp}.rollingUpdate"
            out.extend(
                validate_positive_int_or_percent(
                    rolling.get("maxUnavailable"), f"{rp}.maxUnavailable"
                )
            )
            out.extend(validate_positive_int_or_percent(rolling.get("maxSurge"), f"{rp}.maxSurge"))
            out.extend(
                _not_more_than_100_percent(rolling.get("maxUnavailable"), f"{rp}.maxUnavailable")
            )
            out.extend(_not_more_than_100_percent(rolling.get("maxSurge"), f"{rp}.maxSurge"))
            has_unavailable = _int_or_percent(rolling.get("maxUnavailable")) != 0
            has_surge = _int_or_percent(rolling.get("maxSurge")) != 0
            if has_unavailable and has_surge:
                out.append(
                    invalid(
                        f"{rp}.maxSurge",
                        go_int_or_string(rolling.get("maxSurge")),
                        "may not be set when maxUnavailable is non-zero",
                    )
                )
            elif not has_unavailable and not has_surge:
                out.append(required(f"{rp}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    elif kind != "OnDelete":
        out.append(
            not_supported(
                sp,
                _strategy_go(
                    strategy, "apps.DaemonSetUpdateStrategy", "apps.RollingUpdateDaemonSet"
                ),
                ["RollingUpdate", "OnDelete"],
            )
        )
    out.extend(nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit")))
    out.extend(_selector_immutable(spec, old))
    return out


# --- StatefulSet ---------------------------------------------------------------------
_STS_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
_STS_FORBIDDEN_MSG = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)


def validate_stateful_set(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        out.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        out.append(
            invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
        )
    strategy = d(spec.get("updateStrategy"))
    kind = strategy.get("type")
    sp = "spec.updateStrategy"
    if not kind:
        out.append(required(sp))
    elif kind == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            out.append(
                invalid(
                    f"{sp}.rollingUpdate",
                    Go("&apps.RollingUpdateStatefulSetStrategy{...}"),
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            )
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is not None:
            rolling = d(rolling)
            rp = f"{sp}.rollingUpdate"
            out.extend(nonnegative(f"{rp}.partition", rolling.get("partition")))
            unavailable = rolling.get("maxUnavailable")
            if unavailable is not None:
                out.extend(validate_positive_int_or_percent(unavailable, f"{rp}.maxUnavailable"))
                if _int_or_percent(unavailable) == 0:
                    out.append(
                        invalid(
                            f"{rp}.maxUnavailable", go_int_or_string(unavailable), "cannot be 0"
                        )
                    )
                out.extend(_not_more_than_100_percent(unavailable, f"{rp}.maxUnavailable"))
    else:
        out.append(
            invalid(
                sp,
                Go(
                    f'apps.StatefulSetUpdateStrategy{{Type:"{kind}", '
                    "RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}"
                ),
                "must be 'RollingUpdate' or 'OnDelete'",
            )
        )
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            value = d(retention).get(key)
            if value not in ("Retain", "Delete"):
                out.append(
                    not_supported(
                        f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                        value or "",
                        ["Retain", "Delete"],
                    )
                )
    out.extend(nonnegative("spec.replicas", spec.get("replicas")))
    out.extend(nonnegative("spec.minReadySeconds", spec.get("minReadySeconds")))
    ordinals = spec.get("ordinals")
    if ordinals is not None:
        out.extend(nonnegative("spec.ordinals.start", d(ordinals).get("start")))
    selector = spec.get("selector")
    sel_errs, parses = _selector_checks(spec, "statefulset")
    out.extend(sel_errs)
    template = d(spec.get("template"))
    if not parses:
        out.append(invalid("spec.selector", go_selector(selector), ""))
    else:
        if not _selects_template(selector, template):
            out.append(template_selector_mismatch("spec.template", template))
        tmeta = d(template.get("metadata"))
        out.extend(validate_labels(tmeta.get("labels"), "spec.template.labels"))
        out.extend(validate_annotations(tmeta.get("annotations"), "spec.template.annotations"))
    tspec = d(template.get("spec"))
    if tspec.get("restartPolicy") != "Always":
        out.append(
            not_supported(
                "spec.template.spec.restartPolicy", tspec.get("restartPolicy") or "", ["Always"]
            )
        )
    if tspec.get("activeDeadlineSeconds") is not None:
        out.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in StatefulSet is not Supported",
            )
        )
    if old is not None:
        old_spec = d(old.get("spec"))
        new_rest = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
        old_rest = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
        if _normalized(new_rest) != _normalized(old_rest):
            out.append(forbidden("spec", _STS_FORBIDDEN_MSG))
    return out


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value
