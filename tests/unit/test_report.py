"""gitops.report: drift reports in text, JSON, Markdown and JUnit XML.

JSON and JUnit are parsed back and checked; the text and Markdown are checked line by line
for their key lines.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from gitops.changeset import Action, ChangeSet, Entry, FieldChange, masked
from gitops.errors import ConfigError
from gitops.manifest import ObjectKey, Origin
from gitops.report import MAX_VALUE_CHARS, ReportContext, ReportFormat, has_drift, render

CTX = ReportContext("guestbook", "0123abc", "https://127.0.0.1:6443", "2024-05-01T12:00:00Z")
RAW_PASSWORD = "aHVudGVyMg=="


def entry(
    kind: str,
    name: str,
    action: Action,
    *diff: FieldChange,
    group: str = "",
    namespace: str = "default",
    origin: Origin | None = None,
    message: str = "",
) -> Entry:
    api_version = f"{group}/v1" if group else "v1"
    key = ObjectKey(group, kind, namespace, name)
    return Entry(key, action, api_version, origin, list(diff), message)


def sample() -> ChangeSet:
    cs = ChangeSet(revision="0123abc")
    cs.add(
        entry(
            "Deployment",
            "web",
            Action.CONFIGURED,
            FieldChange("spec.replicas", 2, 3),
            FieldChange("spec.template.spec.containers[name=web].image", "nginx:1", "nginx:2"),
            group="apps",
            origin=Origin("apps/web.yaml", 1),
        )
    )
    cs.add(entry("Service", "web", Action.CREATED, origin=Origin("apps/web.yaml", 20)))
    cs.add(entry("ConfigMap", "cfg", Action.UNCHANGED, origin=Origin("apps/cm.yaml")))
    cs.add(
        entry(
            "ClusterRole",
            "viewer",
            Action.FAILED,
            group="rbac.authorization.k8s.io",
            namespace="",
            origin=Origin("rbac.yaml", 3),
            message="forbidden: cannot escalate",
        )
    )
    cs.add(entry("ConfigMap", "old", Action.PRUNED))
    cs.add(entry("ConfigMap", "keep", Action.SKIPPED, message="prune disabled by annotation"))
    return cs


def secret_changes() -> ChangeSet:
    """A Secret whose values reached the report unmasked, in every shape a diff can take."""
    return ChangeSet(
        entries=[
            entry(
                "Secret",
                "creds",
                Action.CONFIGURED,
                FieldChange("data.password", RAW_PASSWORD, "c2VjcmV0LXZhbHVl"),
                FieldChange("stringData[token]", None, "plain-token-value"),
                FieldChange("data", {"user": "YWRtaW4="}, {"user": "cm9vdA=="}),
                FieldChange("", None, {"kind": "Secret", "data": {"key": "d2hvbGUtb2JqZWN0"}}),
                FieldChange("metadata.labels.team", None, "web"),
            )
        ]
    )


RAW_SECRET_VALUES = (
    RAW_PASSWORD,
    "c2VjcmV0LXZhbHVl",
    "plain-token-value",
    "YWRtaW4=",
    "cm9vdA==",
    "d2hvbGUtb2JqZWN0",
)


def parse_json(changes: ChangeSet, ctx: ReportContext = CTX) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render(changes, ReportFormat.JSON, ctx))
    return doc


def parse_junit(changes: ChangeSet, ctx: ReportContext = CTX) -> ET.Element:
    return ET.fromstring(render(changes, ReportFormat.JUNIT, ctx).encode())


# --- has_drift -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.CREATED, Action.CONFIGURED, Action.PRUNED])
def test_an_object_to_create_configure_or_prune_is_drift(action: Action) -> None:
    cs = ChangeSet(
        entries=[entry("ConfigMap", "a", Action.UNCHANGED), entry("ConfigMap", "b", action)]
    )
    assert has_drift(cs)


def test_unchanged_failed_and_skipped_objects_are_not_drift() -> None:
    cs = ChangeSet(
        entries=[
            entry("ConfigMap", "a", Action.UNCHANGED),
            entry("ConfigMap", "b", Action.FAILED, message="boom"),
            entry("ConfigMap", "c", Action.SKIPPED),
        ]
    )
    assert not has_drift(cs)
    assert not has_drift(ChangeSet())


def test_an_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown report format 'xml'.*junit"):
        render(sample(), "xml", CTX)  # type: ignore[arg-type]


# --- JSON ------------------------------------------------------------------------------------


def test_the_json_report_has_the_documented_top_level_schema_and_summary() -> None:
    doc = parse_json(sample())
    assert list(doc) == [
        "application",
        "revision",
        "destination",
        "generatedAt",
        "summary",
        "objects",
    ]
    assert doc["application"] == "guestbook"
    assert doc["revision"] == "0123abc"
    assert doc["destination"] == "https://127.0.0.1:6443"
    assert doc["generatedAt"] == "2024-05-01T12:00:00Z"
    assert doc["summary"] == {
        "created": 1,
        "configured": 1,
        "unchanged": 1,
        "pruned": 1,
        "skipped": 1,
        "failed": 1,
        "total": 6,
        "drifted": True,
    }


def test_the_json_report_lists_every_object_with_its_drift_kind_source_and_diff() -> None:
    objects = parse_json(sample())["objects"]
    assert [(o["kind"], o["name"], o["action"], o["drift"]) for o in objects] == [
        ("Deployment", "web", "configured", "drifted"),
        ("Service", "web", "created", "missing"),
        ("ConfigMap", "cfg", "unchanged", "in-sync"),
        ("ClusterRole", "viewer", "failed", "failed"),
        ("ConfigMap", "old", "pruned", "extra"),
        ("ConfigMap", "keep", "skipped", "skipped"),
    ]
    assert objects[0] == {
        "group": "apps",
        "kind": "Deployment",
        "namespace": "default",
        "name": "web",
        "apiVersion": "apps/v1",
        "action": "configured",
        "drift": "drifted",
        "file": "apps/web.yaml",
        "line": 1,
        "message": "",
        "diff": [
            {"path": "spec.replicas", "live": 2, "desired": 3},
            {
                "path": "spec.template.spec.containers[name=web].image",
                "live": "nginx:1",
                "desired": "nginx:2",
            },
        ],
    }
    assert (objects[2]["file"], objects[2]["line"]) == ("apps/cm.yaml", None)
    assert (objects[4]["file"], objects[4]["line"]) == (None, None)
    assert objects[3]["namespace"] == ""
    assert objects[3]["message"] == "forbidden: cannot escalate"


def test_the_json_report_of_a_cluster_in_sync_says_not_drifted() -> None:
    cs = ChangeSet(entries=[entry("ConfigMap", "a", Action.UNCHANGED)])
    assert parse_json(cs)["summary"]["drifted"] is False


def test_the_json_report_keeps_long_values_whole() -> None:
    long = "x" * (MAX_VALUE_CHARS * 2)
    cs = ChangeSet(
        entries=[entry("ConfigMap", "a", Action.CONFIGURED, FieldChange("data.k", "", long))]
    )
    assert parse_json(cs)["objects"][0]["diff"][0]["desired"] == long


def test_the_revision_of_the_change_set_is_used_when_the_context_has_none() -> None:
    ctx = ReportContext("guestbook", "")
    assert parse_json(sample(), ctx)["revision"] == "0123abc"
    assert "Revision:    0123abc" in render(sample(), ReportFormat.TEXT, ctx).splitlines()


# --- Secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ReportFormat))
def test_raw_secret_values_are_never_printed_in_any_format(fmt: ReportFormat) -> None:
    out = render(secret_changes(), fmt, CTX)
    for raw in RAW_SECRET_VALUES:
        assert raw not in out
    assert "********" in out
    assert "metadata.labels.team" in out


def test_secret_values_are_masked_as_the_planner_masks_them_keeping_the_keys() -> None:
    diff = parse_json(secret_changes())["objects"][0]["diff"]
    assert diff[0] == {
        "path": "data.password",
        "live": masked(RAW_PASSWORD),
        "desired": masked("c2VjcmV0LXZhbHVl"),
    }
    assert diff[1]["live"] is None
    assert diff[2]["live"] == {"user": masked("YWRtaW4=")}
    assert diff[3]["desired"] == {"kind": "Secret", "data": {"key": masked("d2hvbGUtb2JqZWN0")}}
    assert diff[4] == {"path": "metadata.labels.team", "live": None, "desired": "web"}


def test_secret_values_already_masked_by_the_planner_are_not_masked_twice() -> None:
    cs = ChangeSet(
        entries=[
            entry(
                "Secret",
                "creds",
                Action.CONFIGURED,
                FieldChange("data.password", masked("a"), masked("b")),
            )
        ]
    )
    change = parse_json(cs)["objects"][0]["diff"][0]
    assert (change["live"], change["desired"]) == (masked("a"), masked("b"))


def test_data_of_kinds_other_than_secret_is_printed() -> None:
    cs = ChangeSet(
        entries=[entry("ConfigMap", "cfg", Action.CONFIGURED, FieldChange("data.mode", "a", "b"))]
    )
    assert parse_json(cs)["objects"][0]["diff"][0] == {
        "path": "data.mode",
        "live": "a",
        "desired": "b",
    }


# --- text ------------------------------------------------------------------------------------


def test_the_text_report_starts_with_the_application_revision_destination_and_time() -> None:
    lines = render(sample(), ReportFormat.TEXT, CTX).splitlines()
    assert lines[:4] == [
        "Application: guestbook",
        "Revision:    0123abc",
        "Destination: https://127.0.0.1:6443",
        "Generated:   2024-05-01T12:00:00Z",
    ]


def test_the_text_report_aligns_one_row_per_object_not_in_sync_with_its_field_diffs() -> None:
    lines = render(sample(), ReportFormat.TEXT, CTX).splitlines()
    table = lines[lines.index("") + 1 :]
    assert table[:9] == [
        "DRIFT    OBJECT                                        SOURCE            DETAIL",
        "drifted  Deployment.apps/default/web                   apps/web.yaml:1   drifted (2 fields)",
        "           spec.replicas: 2 → 3",
        '           spec.template.spec.containers[name=web].image: "nginx:1" → "nginx:2"',
        "missing  Service/default/web                           apps/web.yaml:20  missing from the cluster (would be created)",
        "failed   ClusterRole.rbac.authorization.k8s.io/viewer  rbac.yaml:3       failed: forbidden: cannot escalate",
        "extra    ConfigMap/default/old                         -                 extra in the cluster (would be pruned)",
        "skipped  ConfigMap/default/keep                        -                 skipped: prune disabled by annotation",
        "",
    ]
    assert not any("ConfigMap/default/cfg" in line for line in lines)


def test_the_text_report_ends_with_a_summary_line_of_counts() -> None:
    lines = render(sample(), ReportFormat.TEXT, CTX).splitlines()
    assert lines[-1] == (
        "Summary: 6 objects: 1 missing, 1 drifted, 1 extra, 1 failed, 1 skipped, 1 in sync"
    )


def test_the_text_report_of_a_cluster_in_sync_says_so_without_a_table() -> None:
    cs = ChangeSet(entries=[entry("ConfigMap", "a", Action.UNCHANGED)])
    lines = render(cs, ReportFormat.TEXT, ReportContext("guestbook", "abc")).splitlines()
    assert lines == [
        "Application: guestbook",
        "Revision:    abc",
        "",
        "No drift: the cluster matches the revision.",
        "Summary: 1 object: 0 missing, 0 drifted, 0 extra, 0 failed, 0 skipped, 1 in sync",
    ]


def test_the_text_report_shows_absent_fields_and_shortens_long_values() -> None:
    long = "y" * (MAX_VALUE_CHARS * 2)
    cs = ChangeSet(
        entries=[
            entry(
                "ConfigMap",
                "a",
                Action.CONFIGURED,
                FieldChange("metadata.labels.old", "x", None),
                FieldChange("data.big", None, long),
            )
        ]
    )
    lines = render(cs, ReportFormat.TEXT, CTX).splitlines()
    assert '           metadata.labels.old: "x" → (absent)' in lines
    big = next(line for line in lines if "data.big" in line)
    assert big.endswith("…")
    assert len(big) < MAX_VALUE_CHARS + 50


def test_the_text_report_keeps_a_multi_line_message_on_its_row() -> None:
    cs = ChangeSet(entries=[entry("ConfigMap", "a", Action.FAILED, message="one\ntwo")])
    lines = render(cs, ReportFormat.TEXT, CTX).splitlines()
    assert any(line.endswith("failed: one\\ntwo") for line in lines)


# --- Markdown --------------------------------------------------------------------------------


def test_the_markdown_report_has_a_heading_and_a_table_of_counts() -> None:
    lines = render(sample(), ReportFormat.MARKDOWN, CTX).splitlines()
    assert lines[0] == "## Drift report: `guestbook`"
    assert (
        "Revision `0123abc`, destination `https://127.0.0.1:6443`, generated 2024-05-01T12:00:00Z."
        in lines
    )
    assert "**Drift detected:** 3 of 6 objects are not in sync." in lines
    start = lines.index("| Drift | Objects |")
    assert lines[start : start + 8] == [
        "| Drift | Objects |",
        "| --- | ---: |",
        "| Missing from the cluster (would be created) | 1 |",
        "| Drifted | 1 |",
        "| Extra in the cluster (would be pruned) | 1 |",
        "| Failed | 1 |",
        "| Skipped | 1 |",
        "| In sync | 1 |",
    ]


def test_the_markdown_report_tables_the_objects_not_in_sync() -> None:
    lines = render(sample(), ReportFormat.MARKDOWN, CTX).splitlines()
    start = lines.index("| Drift | Object | Source |")
    assert lines[start + 2 : start + 4] == [
        "| drifted | `Deployment.apps/default/web` | `apps/web.yaml:1` |",
        "| missing | `Service/default/web` | `apps/web.yaml:20` |",
    ]
    assert "| extra | `ConfigMap/default/old` | `-` |" in lines
    assert not any("ConfigMap/default/cfg" in line for line in lines)


def test_the_markdown_report_has_a_section_per_object_with_a_diff_block() -> None:
    lines = render(sample(), ReportFormat.MARKDOWN, CTX).splitlines()
    start = lines.index("### drifted: `Deployment.apps/default/web`")
    assert lines[start : start + 9] == [
        "### drifted: `Deployment.apps/default/web`",
        "",
        "Drifted — source `apps/web.yaml:1`.",
        "",
        "```diff",
        "- spec.replicas: 2",
        "+ spec.replicas: 3",
        '- spec.template.spec.containers[name=web].image: "nginx:1"',
        '+ spec.template.spec.containers[name=web].image: "nginx:2"',
    ]
    assert lines[start + 9] == "```"
    failed = lines.index("### failed: `ClusterRole.rbac.authorization.k8s.io/viewer`")
    assert lines[failed + 4] == "> forbidden: cannot escalate"


def test_the_markdown_report_escapes_pipes_and_markup_in_messages_and_cells() -> None:
    cs = ChangeSet(
        entries=[
            entry(
                "ConfigMap",
                "a",
                Action.FAILED,
                origin=Origin("dir|x/a.yaml", 2),
                message="bad | value <script> *here*",
            )
        ]
    )
    lines = render(cs, ReportFormat.MARKDOWN, CTX).splitlines()
    assert "| failed | `ConfigMap/default/a` | `dir\\|x/a.yaml:2` |" in lines
    assert "> bad \\| value \\<script\\> \\*here\\*" in lines


def test_the_markdown_diff_block_fence_outgrows_backticks_in_values() -> None:
    cs = ChangeSet(
        entries=[entry("ConfigMap", "a", Action.CONFIGURED, FieldChange("data.md", None, "```"))]
    )
    lines = render(cs, ReportFormat.MARKDOWN, CTX).splitlines()
    start = lines.index("````diff")
    assert lines[start + 1 : start + 3] == ['+ data.md: "```"', "````"]


def test_the_markdown_report_of_a_cluster_in_sync_says_no_drift() -> None:
    cs = ChangeSet(entries=[entry("ConfigMap", "a", Action.UNCHANGED)])
    out = render(cs, ReportFormat.MARKDOWN, CTX)
    assert "**No drift:** the cluster matches the revision." in out.splitlines()
    assert "###" not in out


# --- JUnit -----------------------------------------------------------------------------------


def test_the_junit_report_has_one_testsuite_for_the_application_with_counts() -> None:
    root = parse_junit(sample())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "guestbook"
    assert suite.get("timestamp") == "2024-05-01T12:00:00Z"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6",
        "failures": "3",
        "errors": "1",
        "skipped": "1",
    }
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"revision": "0123abc", "destination": "https://127.0.0.1:6443"}


def test_the_junit_report_has_one_testcase_per_object_named_by_kind_and_namespaced_name() -> None:
    cases = parse_junit(sample()).findall("testsuite/testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("Deployment", "default/web"),
        ("Service", "default/web"),
        ("ConfigMap", "default/cfg"),
        ("ClusterRole", "viewer"),
        ("ConfigMap", "default/old"),
        ("ConfigMap", "default/keep"),
    ]
    assert (cases[0].get("file"), cases[0].get("line")) == ("apps/web.yaml", "1")


def test_the_junit_report_fails_drifted_missing_and_extra_objects_with_the_diff() -> None:
    cases = parse_junit(sample()).findall("testsuite/testcase")
    drifted, missing, _, _, extra, _ = cases
    failure = drifted.find("failure")
    assert failure is not None
    assert failure.get("type") == "drifted"
    assert failure.get("message") == "drifted (2 fields)"
    assert (failure.text or "").splitlines() == [
        "Deployment.apps/default/web (apps/web.yaml:1): drifted",
        "spec.replicas: 2 → 3",
        'spec.template.spec.containers[name=web].image: "nginx:1" → "nginx:2"',
    ]
    missing_failure = missing.find("failure")
    assert missing_failure is not None
    assert missing_failure.get("type") == "missing"
    assert missing_failure.get("message") == "missing from the cluster (would be created)"
    extra_failure = extra.find("failure")
    assert extra_failure is not None
    assert extra_failure.get("type") == "extra"


def test_the_junit_report_passes_objects_in_sync_errors_failed_ones_and_skips_skipped() -> None:
    cases = parse_junit(sample()).findall("testsuite/testcase")
    in_sync, failed, skipped = cases[2], cases[3], cases[5]
    assert list(in_sync) == []
    assert [child.tag for child in failed] == ["error"]
    error = failed.find("error")
    assert error is not None
    assert error.get("message") == "failed: forbidden: cannot escalate"
    assert [child.tag for child in skipped] == ["skipped"]


def test_the_junit_report_stays_valid_xml_with_markup_and_control_characters() -> None:
    message = 'bad <tag> & "quotes" \x00\x1b end'
    cs = ChangeSet(
        entries=[entry("ConfigMap", "a&b", Action.FAILED, message=message, namespace="n<s>")]
    )
    root = parse_junit(cs, ReportContext("app <&>", "r"))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "app <&>"
    case = suite.find("testcase")
    assert case is not None
    assert case.get("name") == "n<s>/a&b"
    error = case.find("error")
    assert error is not None
    assert 'bad <tag> & "quotes" \\x00\\x1b end' in (error.text or "")
