"""Label selectors, node selector terms and tolerations, compiled once and matched many
times — the predicates the scheduler's plugins are built from.

Who calls it: :mod:`runtime.scheduler.podinfo` (compiles a pod's selectors, affinity
terms and tolerations when the pod enters the scheduler) and the plugins. Semantics are
apimachinery's ``metav1.LabelSelectorAsSelector`` (a nil selector matches nothing, an
empty one everything, an invalid one nothing), component-helpers' node affinity
(``In``/``NotIn``/``Exists``/``DoesNotExist``/``Gt``/``Lt`` and ``matchFields`` on
``metadata.name``; an empty term or an unparsable requirement matches nothing) and
``Toleration.ToleratesTaint``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

Labels = Mapping[str, str]


class Selector:
    """A compiled label selector. ``key`` is a canonical text usable as a cache key."""

    __slots__ = ("equal", "everything", "key", "nothing", "requirements")

    def __init__(
        self,
        equal: tuple[tuple[str, str], ...],
        requirements: tuple[tuple[str, str, frozenset[str]], ...],
        *,
        nothing: bool = False,
    ) -> None:
        self.equal = equal
        self.requirements = requirements
        self.nothing = nothing
        self.everything = not nothing and not equal and not requirements
        self.key = (
            "<nothing>"
            if nothing
            else orjson.dumps([equal, [(k, o, sorted(v)) for k, o, v in requirements]]).decode()
        )

    def matches(self, labels: Labels | None) -> bool:
        if self.nothing:
            return False
        if self.everything:
            return True
        if not labels:
            labels = {}
        for k, v in self.equal:
            if labels.get(k) != v:
                return False
        for k, op, values in self.requirements:
            present = k in labels
            if op == "In":
                if not present or labels[k] not in values:
                    return False
            elif op == "NotIn":
                if present and labels[k] in values:
                    return False
            elif (op == "Exists" and not present) or (op == "DoesNotExist" and present):
                return False
        return True

    def __repr__(self) -> str:
        return f"Selector({self.key})"


NOTHING = Selector((), (), nothing=True)
EVERYTHING = Selector((), ())


def label_selector(sel: Any) -> Selector:
    """``metav1.LabelSelector`` → :class:`Selector`; nil and invalid ones match nothing."""
    if sel is None:
        return NOTHING
    if not isinstance(sel, Mapping):
        return NOTHING
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return NOTHING
    equal = tuple(sorted((str(k), str(v)) for k, v in match_labels.items()))
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for expr in expressions:
        if not isinstance(expr, Mapping):
            return NOTHING
        key = str(expr.get("key") or "")
        op = str(expr.get("operator") or "")
        values = expr.get("values") or []
        if not key or not isinstance(values, list):
            return NOTHING
        if op in ("In", "NotIn"):
            if not values:
                return NOTHING
        elif op in ("Exists", "DoesNotExist"):
            if values:
                return NOTHING
        else:
            return NOTHING
        reqs.append((key, op, frozenset(str(v) for v in values)))
    if not equal and not reqs:
        return EVERYTHING
    return Selector(equal, tuple(sorted(reqs, key=lambda r: (r[0], r[1], sorted(r[2])))))


def selector_from_set(labels: Labels) -> Selector:
    """A selector requiring every ``key=value`` of a map (``labels.SelectorFromSet``)."""
    if not labels:
        return EVERYTHING
    return Selector(tuple(sorted((str(k), str(v)) for k, v in labels.items())), ())


def merge_selectors(*selectors: Selector) -> Selector:
    """The AND of selectors (used to build a controller's default spreading selector)."""
    if any(s.nothing for s in selectors):
        return NOTHING
    equal: dict[str, str] = {}
    extra: list[tuple[str, str, frozenset[str]]] = []
    for s in selectors:
        for k, v in s.equal:
            if k in equal and equal[k] != v:
                extra.append((k, "In", frozenset({v})))
            else:
                equal[k] = v
        extra.extend(s.requirements)
    if not equal and not extra:
        return EVERYTHING
    return Selector(tuple(sorted(equal.items())), tuple(extra))


# --- node selectors -------------------------------------------------------------------


class NodeSelectorTerm:
    """One ``NodeSelectorTerm``: its requirements are ANDed; an empty or invalid term
    matches no node."""

    __slots__ = ("fields", "invalid", "labels")

    def __init__(self, term: Mapping[str, Any]) -> None:
        self.invalid = False
        self.labels: list[tuple[str, str, tuple[str, ...]]] = []
        self.fields: list[tuple[str, str, tuple[str, ...]]] = []
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if (
            not isinstance(exprs, list)
            or not isinstance(fields, list)
            or (not exprs and not fields)
        ):
            self.invalid = True
            return
        for expr in exprs:
            req = _node_requirement(expr, field=False)
            if req is None:
                self.invalid = True
                return
            self.labels.append(req)
        for expr in fields:
            req = _node_requirement(expr, field=True)
            if req is None:
                self.invalid = True
                return
            self.fields.append(req)

    def matches(self, name: str, labels: Labels) -> bool:
        if self.invalid:
            return False
        for key, op, values in self.labels:
            if not _node_requirement_matches(op, key in labels, labels.get(key, ""), values):
                return False
        for _key, op, values in self.fields:  # the only field is metadata.name
            if not _node_requirement_matches(op, True, name, values):
                return False
        return True

    def node_names(self) -> set[str] | None:
        """Node names this term is limited to by ``matchFields metadata.name In``."""
        names: set[str] | None = None
        for _key, op, values in self.fields:
            if op == "In":
                names = set(values) if names is None else names & set(values)
        return names


def _node_requirement(expr: Any, *, field: bool) -> tuple[str, str, tuple[str, ...]] | None:
    if not isinstance(expr, Mapping):
        return None
    key = str(expr.get("key") or "")
    op = str(expr.get("operator") or "")
    values = expr.get("values") or []
    if not key or not isinstance(values, list):
        return None
    vals = tuple(str(v) for v in values)
    if field:
        if key != "metadata.name" or op not in ("In", "NotIn") or len(vals) != 1:
            return None
        return key, op, vals
    if op in ("In", "NotIn"):
        if not vals:
            return None
    elif op in ("Exists", "DoesNotExist"):
        if vals:
            return None
    elif op in ("Gt", "Lt"):
        if len(vals) != 1 or _int64(vals[0]) is None:
            return None
    else:
        return None
    return key, op, vals


def _int64(text: str) -> int | None:
    try:
        value = int(text, 10)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _node_requirement_matches(op: str, present: bool, value: str, values: tuple[str, ...]) -> bool:
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if not present:
        return False
    have = _int64(value)
    if have is None:
        return False
    want = int(values[0])
    return have > want if op == "Gt" else have < want


class NodeSelector:
    """``NodeSelector``: ORed terms. No terms (or only invalid ones) match nothing."""

    __slots__ = ("terms",)

    def __init__(self, selector: Mapping[str, Any] | None) -> None:
        raw = (selector or {}).get("nodeSelectorTerms") or []
        self.terms = [NodeSelectorTerm(t) for t in raw if isinstance(t, Mapping)]

    def matches(self, name: str, labels: Labels) -> bool:
        return any(t.matches(name, labels) for t in self.terms)


class PreferredTerm:
    __slots__ = ("term", "weight")

    def __init__(self, weight: int, term: NodeSelectorTerm) -> None:
        self.weight = weight
        self.term = term


def preferred_node_terms(raw: Any) -> tuple[PreferredTerm, ...]:
    out: list[PreferredTerm] = []
    for item in raw or []:
        if not isinstance(item, Mapping):
            continue
        weight = int(item.get("weight") or 0)
        if weight == 0:
            continue
        out.append(PreferredTerm(weight, NodeSelectorTerm(item.get("preference") or {})))
    return tuple(out)


# --- taints and tolerations ------------------------------------------------------------

Taint = tuple[str, str, str]  # key, value, effect


class Toleration:
    __slots__ = ("effect", "key", "operator", "value")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.key = str(raw.get("key") or "")
        self.operator = str(raw.get("operator") or "Equal")
        self.value = str(raw.get("value") or "")
        self.effect = str(raw.get("effect") or "")

    def tolerates(self, taint: Taint) -> bool:
        key, value, effect = taint
        if self.effect and self.effect != effect:
            return False
        if self.key and self.key != key:
            return False
        if self.operator == "Exists":
            return True
        if self.operator == "Equal":
            return self.value == value
        return False


def tolerates(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


def first_untolerated(
    taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...], effects: frozenset[str]
) -> Taint | None:
    """The first taint with one of ``effects`` that no toleration tolerates."""
    for taint in taints:
        if taint[2] in effects and not tolerates(tolerations, taint):
            return taint
    return None


DO_NOT_SCHEDULE = frozenset({"NoSchedule", "NoExecute"})
