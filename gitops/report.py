"""Drift reports: a :class:`~gitops.changeset.ChangeSet` rendered for people and for tools.

The CLI (``gitops diff`` / ``gitops sync --dry-run`` with ``--report FORMAT``), CI jobs
(a PR comment, ``$GITHUB_STEP_SUMMARY``, a JUnit file for the test tab) and the service's
status page call :func:`render`; :func:`has_drift` decides a non-zero exit code.

Each object that is not ``unchanged`` is reported with its *drift kind*:

============  ==========  ====================================================
action        drift       meaning
============  ==========  ====================================================
created       missing     missing from the cluster (would be created)
configured    drifted     drifted: each field diff as ``path: live → desired``
pruned        extra       extra in the cluster (would be pruned)
failed        failed      the message says why
skipped       skipped     the message says why
unchanged     in-sync     (listed only in the JSON and JUnit formats)
============  ==========  ====================================================

Secret values: the planner masks them before they enter a ChangeSet
(:func:`gitops.changeset.masked`); as a second line of defence every field change of a
core ``Secret`` whose path is under ``data`` or ``stringData`` (or the whole object) is
masked again here unless it already is, so no format ever prints a Secret's value.

Formats (:class:`ReportFormat`):

* ``text``: a header, one aligned row per drifted object (drift, object, source, detail)
  with its field diffs indented below, and a last line
  ``Summary: N objects: a missing, b drifted, c extra, d failed, e skipped, f in sync``.
* ``markdown``: for a PR comment or a step summary: a heading, a table of counts, a table
  of the drifted objects and one section per object with a ``diff`` code block.
* ``junit``: ``<testsuites>`` holding one ``<testsuite name=APPLICATION>`` with one
  ``<testcase classname=KIND name=NAMESPACE/NAME>`` per object: missing, drifted and extra
  objects carry a ``<failure>`` (the diff as text), failed ones an ``<error>``, skipped
  ones ``<skipped>``; in-sync objects pass.
* ``json``: one object, keys in this order (stable; new keys may be added, none removed)::

    {
      "application": str, "revision": str, "destination": str,
      "generatedAt": str,                       # as given, "" if not
      "summary": {"created": int, "configured": int, "unchanged": int, "pruned": int,
                  "skipped": int, "failed": int, "total": int, "drifted": bool},
      "objects": [                              # every entry, in ChangeSet order
        {"group": str, "kind": str, "namespace": str, "name": str, "apiVersion": str,
         "action": "created|configured|unchanged|pruned|skipped|failed",
         "drift": "missing|drifted|in-sync|extra|skipped|failed",
         "file": str | null, "line": int | null, "message": str,
         "diff": [{"path": str, "live": any | null, "desired": any | null}]}
      ]
    }

  ``live``/``desired`` are the field's values as JSON (``null``: absent), untruncated;
  the other formats shorten values longer than :data:`MAX_VALUE_CHARS`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gitops.changeset import SECRET_MASK, Action, ChangeSet, Entry, FieldChange, masked
from gitops.errors import ConfigError
from gitops.manifest import ObjectKey


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    JUNIT = "junit"


@dataclass
class ReportContext:
    application: str
    revision: str
    destination: str = ""
    generated_at: str = ""
    """ISO 8601 time the report was made (the caller's clock: rendering reads none)."""


MAX_VALUE_CHARS = 200
"""Values longer than this are shortened (with '…') in the text, Markdown and JUnit formats."""

DRIFT: dict[Action, str] = {
    Action.CREATED: "missing",
    Action.CONFIGURED: "drifted",
    Action.UNCHANGED: "in-sync",
    Action.PRUNED: "extra",
    Action.FAILED: "failed",
    Action.SKIPPED: "skipped",
}
"""The drift kind each action is reported as."""

_DESCRIPTION: dict[Action, str] = {
    Action.CREATED: "missing from the cluster (would be created)",
    Action.CONFIGURED: "drifted",
    Action.UNCHANGED: "in sync",
    Action.PRUNED: "extra in the cluster (would be pruned)",
    Action.FAILED: "failed",
    Action.SKIPPED: "skipped",
}

_SUMMARY_ORDER = (
    Action.CREATED,
    Action.CONFIGURED,
    Action.PRUNED,
    Action.FAILED,
    Action.SKIPPED,
    Action.UNCHANGED,
)


def has_drift(changes: ChangeSet) -> bool:
    """Whether any object would be created, configured or pruned."""
    return any(e.changed for e in changes.entries)


def render(changes: ChangeSet, fmt: ReportFormat, ctx: ReportContext) -> str:
    """The report of ``changes`` for ``ctx``'s application, in ``fmt``."""
    report = _Report(
        ctx=ctx,
        revision=ctx.revision or changes.revision,
        entries=[_safe(e) for e in changes.entries],
        counts=changes.counts(),
        drifted=has_drift(changes),
    )
    renderers = {
        ReportFormat.TEXT: _text,
        ReportFormat.JSON: _json,
        ReportFormat.MARKDOWN: _markdown,
        ReportFormat.JUNIT: _junit,
    }
    try:
        renderer = renderers[ReportFormat(fmt)]
    except ValueError:
        choices = ", ".join(f.value for f in ReportFormat)
        raise ConfigError(f"unknown report format {fmt!r} (one of: {choices})") from None
    return renderer(report)


@dataclass
class _Report:
    ctx: ReportContext
    revision: str
    entries: list[Entry]
    counts: dict[str, int]
    drifted: bool
    reported: list[Entry] = field(init=False)
    """The entries shown in the text and Markdown formats: all but the unchanged ones."""

    def __post_init__(self) -> None:
        self.reported = [e for e in self.entries if e.action is not Action.UNCHANGED]

    def count(self, action: Action) -> int:
        return self.counts.get(action.value, 0)


# --- Secrets -------------------------------------------------------------------------------


def _is_secret(key: ObjectKey) -> bool:
    return key.group == "" and key.kind == "Secret"


def _under_secret_data(path: str) -> bool:
    return any(
        path == top or path.startswith((f"{top}.", f"{top}[")) for top in ("data", "stringData")
    )


def _mask(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.startswith(SECRET_MASK)):
        return value
    return masked(value)


def _mask_map(value: Any) -> Any:
    """A ``data`` map with each value masked (keys are not secret), else the value masked."""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    return _mask(value)


def _mask_object(value: Any) -> Any:
    """A whole Secret (a change at the root path) with its data masked."""
    if not isinstance(value, dict):
        return _mask(value)
    return {k: _mask_map(v) if k in ("data", "stringData") else v for k, v in value.items()}


def _safe_change(change: FieldChange) -> FieldChange:
    if change.path in ("", "."):
        return FieldChange(change.path, _mask_object(change.before), _mask_object(change.after))
    if change.path in ("data", "stringData"):
        return FieldChange(change.path, _mask_map(change.before), _mask_map(change.after))
    if _under_secret_data(change.path):
        return FieldChange(change.path, _mask(change.before), _mask(change.after))
    return change


def _safe(entry: Entry) -> Entry:
    """``entry`` itself, or for a Secret a copy whose data values are masked."""
    if not _is_secret(entry.key) or not entry.diff:
        return entry
    return Entry(
        key=entry.key,
        action=entry.action,
        api_version=entry.api_version,
        origin=entry.origin,
        diff=[_safe_change(c) for c in entry.diff],
        message=entry.message,
    )


# --- shared formatting ---------------------------------------------------------------------


def _value(value: Any) -> str:
    """One field value on one line: JSON, '(absent)' for None, shortened if long."""
    if value is None:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _change_line(change: FieldChange) -> str:
    return f"{change.path or '(object)'}: {_value(change.before)} → {_value(change.after)}"


def _detail(entry: Entry) -> str:
    """What is wrong with an object in a few words (the row's last column)."""
    if entry.action is Action.CONFIGURED:
        n = len(entry.diff)
        text = f"drifted ({n} field{'s' if n != 1 else ''})"
    else:
        text = _DESCRIPTION[entry.action]
    if entry.message:
        text += f": {entry.message}"
    return text


def _source(entry: Entry) -> str:
    return str(entry.origin) if entry.origin is not None else "-"


def _summary_line(report: _Report) -> str:
    total = sum(report.counts.values())
    parts = ", ".join(f"{report.count(a)} {_drift_word(a)}" for a in _SUMMARY_ORDER)
    return f"Summary: {total} object{'s' if total != 1 else ''}: {parts}"


def _drift_word(action: Action) -> str:
    return "in sync" if action is Action.UNCHANGED else DRIFT[action]


# --- text ----------------------------------------------------------------------------------


def _text(report: _Report) -> str:
    ctx = report.ctx
    lines = [f"Application: {ctx.application}", f"Revision:    {report.revision or '-'}"]
    if ctx.destination:
        lines.append(f"Destination: {ctx.destination}")
    if ctx.generated_at:
        lines.append(f"Generated:   {ctx.generated_at}")
    lines.append("")
    if report.reported:
        rows = [("DRIFT", "OBJECT", "SOURCE")] + [
            (DRIFT[e.action], str(e.key), _source(e)) for e in report.reported
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        details = ["DETAIL"] + [_detail(e) for e in report.reported]
        entries: list[Entry | None] = [None, *report.reported]
        for row, detail, entry in zip(rows, details, entries):
            cells = [c.ljust(w) for c, w in zip(row, widths)]
            lines.append(_one_line("  ".join([*cells, detail])).rstrip())
            if entry is not None:
                indent = " " * (widths[0] + 2)
                lines.extend(f"{indent}  {_one_line(_change_line(c))}" for c in entry.diff)
        lines.append("")
    if not report.drifted:
        lines.append("No drift: the cluster matches the revision.")
    lines.append(_summary_line(report))
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


# --- JSON ----------------------------------------------------------------------------------


def _json(report: _Report) -> str:
    ctx = report.ctx
    summary: dict[str, Any] = {a.value: report.count(a) for a in Action}
    summary["total"] = sum(report.counts.values())
    summary["drifted"] = report.drifted
    doc = {
        "application": ctx.application,
        "revision": report.revision,
        "destination": ctx.destination,
        "generatedAt": ctx.generated_at,
        "summary": summary,
        "objects": [_json_object(e) for e in report.entries],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def _json_object(entry: Entry) -> dict[str, Any]:
    key = entry.key
    return {
        "group": key.group,
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "apiVersion": entry.api_version,
        "action": entry.action.value,
        "drift": DRIFT[entry.action],
        "file": entry.origin.file if entry.origin is not None else None,
        "line": entry.origin.line if entry.origin is not None else None,
        "message": entry.message,
        "diff": [{"path": c.path, "live": c.before, "desired": c.after} for c in entry.diff],
    }


# --- Markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _md(text: str) -> str:
    """``text`` as literal Markdown inline text (one line; pipes escaped for tables)."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def _md_code(text: str) -> str:
    """``text`` as an inline code span, safe in a table cell."""
    text = _one_line(text).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_fence(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    return "`" * (longest + 1)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _markdown(report: _Report) -> str:
    ctx = report.ctx
    lines = [f"## Drift report: {_md_code(ctx.application)}", ""]
    facts = [f"Revision {_md_code(report.revision or '-')}"]
    if ctx.destination:
        facts.append(f"destination {_md_code(ctx.destination)}")
    if ctx.generated_at:
        facts.append(f"generated {_md(ctx.generated_at)}")
    lines += [", ".join(facts) + ".", ""]
    if report.drifted:
        out_of_sync = sum(1 for e in report.entries if e.changed)
        lines.append(
            f"**Drift detected:** {out_of_sync} of {len(report.entries)} objects are not in sync."
        )
    else:
        lines.append("**No drift:** the cluster matches the revision.")
    lines += ["", "| Drift | Objects |", "| --- | ---: |"]
    lines += [f"| {_md(_sentence(_DESCRIPTION[a]))} | {report.count(a)} |" for a in _SUMMARY_ORDER]
    if report.reported:
        lines += ["", "| Drift | Object | Source |", "| --- | --- | --- |"]
        lines += [
            f"| {DRIFT[e.action]} | {_md_code(str(e.key))} | {_md_code(_source(e))} |"
            for e in report.reported
        ]
        for e in report.reported:
            lines += ["", *_markdown_section(e)]
    return "\n".join(lines) + "\n"


def _markdown_section(entry: Entry) -> list[str]:
    lines = [
        f"### {DRIFT[entry.action]}: {_md_code(str(entry.key))}",
        "",
        f"{_md(_sentence(_DESCRIPTION[entry.action]))}"
        + (f" — source {_md_code(_source(entry))}" if entry.origin is not None else "")
        + ".",
    ]
    if entry.message:
        lines += [""] + [f"> {_md(line)}" for line in entry.message.splitlines() or [""]]
    if entry.diff:
        body: list[str] = []
        for c in entry.diff:
            path = _one_line(c.path or "(object)")
            if c.before is not None:
                body.append(f"- {path}: {_one_line(_value(c.before))}")
            if c.after is not None:
                body.append(f"+ {path}: {_one_line(_value(c.after))}")
            if c.before is None and c.after is None:
                body.append(f"  {path}: (absent)")
        fence = _md_fence("\n".join(body))
        lines += ["", f"{fence}diff", *body, fence]
    return lines


# --- JUnit XML -----------------------------------------------------------------------------

_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry written as ``\\xNN`` escapes."""
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _junit(report: _Report) -> str:
    ctx = report.ctx
    failures = sum(report.count(a) for a in (Action.CREATED, Action.CONFIGURED, Action.PRUNED))
    counts = {
        "tests": str(len(report.entries)),
        "failures": str(failures),
        "errors": str(report.count(Action.FAILED)),
        "skipped": str(report.count(Action.SKIPPED)),
    }
    root = ET.Element("testsuites", {"name": "gitops drift", **counts})
    suite_attrs = {"name": _xml(ctx.application), **counts, "time": "0"}
    if ctx.generated_at:
        suite_attrs["timestamp"] = _xml(ctx.generated_at)
    suite = ET.SubElement(root, "testsuite", suite_attrs)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("revision", report.revision), ("destination", ctx.destination)):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for entry in report.entries:
        _junit_case(suite, entry)
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{xml}\n'


def _junit_case(suite: ET.Element, entry: Entry) -> None:
    key = entry.key
    attrs = {
        "classname": _xml(key.kind),
        "name": _xml(f"{key.namespace}/{key.name}" if key.namespace else key.name),
        "time": "0",
    }
    if entry.origin is not None:
        attrs["file"] = _xml(entry.origin.file)
        if entry.origin.line is not None:
            attrs["line"] = str(entry.origin.line)
    case = ET.SubElement(suite, "testcase", attrs)
    if entry.action is Action.UNCHANGED:
        return
    drift = DRIFT[entry.action]
    message = _xml(_one_line(_detail(entry)))
    if entry.action is Action.SKIPPED:
        ET.SubElement(case, "skipped", {"message": message})
        return
    tag = "error" if entry.action is Action.FAILED else "failure"
    element = ET.SubElement(case, tag, {"message": message, "type": drift})
    body = [f"{key} ({_source(entry)}): {_DESCRIPTION[entry.action]}"]
    if entry.message:
        body.append(entry.message)
    body += [_change_line(c) for c in entry.diff]
    element.text = _xml("\n".join(body))
