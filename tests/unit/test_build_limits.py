"""Limits on what a repository's files can make the build do (issue 14, "Git is untrusted input").

Each attack is built as a real repository in a temporary directory and run through the
real build entry point (:func:`gitops.build.build`): it must be refused as a whole with a
:class:`~gitops.errors.BuildError` naming the file (and the line where there is one),
quickly, and never with another exception. The limits themselves live in
:mod:`gitops.build.limits`; the tests that would need hundreds of megabytes lower them
with ``monkeypatch`` instead.
"""

from __future__ import annotations

import stat
import textwrap
import time
from pathlib import Path

import pytest

from gitops.build import BuildOptions, HelmOptions, build, limits
from gitops.build.documents import parse_documents
from gitops.build.helm import parse_output
from gitops.errors import BuildError, BuildErrors
from gitops.manifest import Manifest
from kubemodel.errors import ApiError
from kubemodel.patch import json_patch
from tests.unit.kustomize_helpers import DEPLOYMENT, write_tree

BOMB = """\
apiVersion: v1
data:
  a: &a ["web","web","web","web","web","web","web","web","web"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
kind: ConfigMap
metadata:
  name: yaml-bomb
  namespace: default
"""
"""The "billion laughs" of CVE-2019-11253: under 600 bytes (the issue's was 558), 9**9
strings once expanded."""

KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"


def _build(root: Path, path: str = ".", **options: object) -> list[Manifest]:
    return build(root, path, BuildOptions(**options))  # type: ignore[arg-type]


def _refused(root: Path, path: str = ".", **options: object) -> BuildError:
    started = time.perf_counter()
    with pytest.raises(BuildError) as caught:
        _build(root, path, **options)
    assert time.perf_counter() - started < 5, "a refusal must be quick"
    return caught.value


def _nested(depth: int, shape: str) -> str:
    """A value nested ``depth`` collections deep: flow lists, flow maps or block maps."""
    if shape == "list":
        return "[" * depth + "]" * depth
    if shape == "map":
        return "{a: " * (depth - 1) + "{}" + "}" * (depth - 1)
    return "".join(f"\n{'  ' * (i + 1)}a:" for i in range(depth - 1)) + " {}"


# --- YAML aliases ---------------------------------------------------------------------
def test_the_558_byte_alias_bomb_is_refused_while_loading(tmp_path: Path) -> None:
    assert len(BOMB.encode()) < 600
    (tmp_path / "bomb.yaml").write_text(BOMB)
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("bomb.yaml", 1)
    assert "excessive aliasing" in error.detail
    with pytest.raises(BuildError, match="excessive aliasing"):
        parse_documents(BOMB, "bomb.yaml")  # the loader itself refuses it, not a later step


def test_an_alias_bomb_in_a_kustomize_resource_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": BOMB})
    error = _refused(tmp_path)
    assert error.file == "bomb.yaml"
    assert "excessive aliasing" in error.detail


def test_an_alias_bomb_through_merge_keys_is_refused_before_it_is_merged(tmp_path: Path) -> None:
    levels = ["a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7}"]
    for level in range(1, 24):
        prior = f"*a{level - 1}"
        levels.append(f"a{level}: &a{level} {{<<: [{prior}, {prior}, {prior}, {prior}]}}")
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx:\n" + "".join(
        f"  {line}\n" for line in levels
    )
    (tmp_path / "merge.yaml").write_text(text)
    error = _refused(tmp_path)
    assert error.file == "merge.yaml"
    assert "aliasing" in error.detail


def test_a_document_with_more_aliases_than_the_limit_is_refused(tmp_path: Path) -> None:
    uses = ", ".join(["*v"] * (limits.MAX_YAML_ALIASES + 1))
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\nv: &v [x]\nlist: [{uses}]\n"
    (tmp_path / "aliases.yaml").write_text(text)
    error = _refused(tmp_path)
    assert error.file == "aliases.yaml"
    assert f"more than {limits.MAX_YAML_ALIASES:,} aliases" in error.detail


def test_an_anchor_that_contains_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n  loop: &l [a, *l]\n"
    )
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("loop.yaml", 5)
    assert "contains itself" in error.detail


def test_real_manifests_sharing_a_few_anchors_still_load(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              selector: {matchLabels: &labels {app: web}}
              template:
                metadata: {labels: *labels}
                spec:
                  containers:
                  - name: web
                    image: nginx
                    env: &env
                    - {name: A, value: "1"}
                    - {name: B, value: "2"}
                    resources: &resources {limits: {cpu: 100m}}
                  - name: sidecar
                    image: proxy
                    env: *env
                    resources:
                      <<: *resources
                      requests: {cpu: 10m}
            """
        )
    )
    [deployment] = _build(tmp_path)
    containers = deployment.obj["spec"]["template"]["spec"]["containers"]
    assert containers[1]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers[1]["resources"] == {"limits": {"cpu": "100m"}, "requests": {"cpu": "10m"}}
    assert deployment.obj["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


# --- nesting --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["list", "map", "block"])
@pytest.mark.parametrize("depth", [255, 1000])
def test_deep_nesting_in_a_plain_file_is_refused_with_its_line(
    tmp_path: Path, depth: int, shape: str
) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndeep: " + _nested(depth, shape)
    (tmp_path / "deep.yaml").write_text(text + "\n")
    error = _refused(tmp_path)
    assert error.file == "deep.yaml"
    assert error.line is not None
    assert "nested" in error.detail


def test_nesting_up_to_the_limit_is_accepted(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndeep: "
    (tmp_path / "deep.yaml").write_text(text + _nested(limits.MAX_NESTING_DEPTH - 1, "map") + "\n")
    [configmap] = _build(tmp_path)
    assert configmap.name == "m"


@pytest.mark.parametrize("depth", [255, 1000])
def test_deep_nesting_in_a_kustomize_patch_file_is_refused(tmp_path: Path, depth: int) -> None:
    patch = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  deep: "
        + _nested(depth, "map")
        + "\n"
    )
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n- path: deep.yaml\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    (tmp_path / "deep.yaml").write_text(patch)
    error = _refused(tmp_path)
    assert error.file == "deep.yaml"
    assert "nested" in error.detail


@pytest.mark.parametrize("depth", [255, 1000])
def test_deep_nesting_in_an_inline_json6902_patch_is_refused(tmp_path: Path, depth: int) -> None:
    value = "[" * depth + "]" * depth
    patch = f'[{{"op": "add", "path": "/spec/deep", "value": {value}}}]'
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n"
            "- target: {kind: Deployment}\n  patch: '" + patch + "'\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    error = _refused(tmp_path)
    assert error.file == "kustomization.yaml"
    assert "nested" in error.detail


def test_json6902_patches_that_nest_an_object_deeper_and_deeper_are_refused(
    tmp_path: Path,
) -> None:
    # Each operation adds a value nested just under the limit at the deepest point so far:
    # no single value is too deep, the patched object is.
    step = limits.MAX_NESTING_DEPTH - 3  # the patch file itself stays within the limit
    operations, path = [], "/spec"
    for _ in range(4):
        value = '{"a": ' * step + "{}" + "}" * step
        operations.append(f'{{"op": "add", "path": "{path}/x", "value": {value}}}')
        path += "/x" + "/a" * step
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n"
            "- target: {kind: Deployment}\n  path: grow.json\n",
            "d.yaml": DEPLOYMENT,
            "grow.json": "[" + ", ".join(operations) + "]\n",
        },
    )
    error = _refused(tmp_path)
    assert error.file == "kustomization.yaml"
    assert "nested" in error.detail


def test_json6902_copies_that_double_an_object_are_refused(tmp_path: Path) -> None:
    operations = [
        '{"op": "add", "path": "/spec/blob", "value": {"data": "' + "x" * 1000 + '"}}',
        *(
            '{"op": "copy", "from": "/spec/blob", "path": "/spec/blob/' + f'c{i}"' + "}"
            for i in range(40)
        ),
    ]
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n"
            "- target: {kind: Deployment}\n  path: double.json\n",
            "d.yaml": DEPLOYMENT,
            "double.json": "[" + ", ".join(operations) + "]\n",
        },
    )
    error = _refused(tmp_path)
    assert error.file == "kustomization.yaml"
    assert "copy" in error.detail


# --- bytes that are not UTF-8 ---------------------------------------------------------
def test_a_kustomize_patch_file_that_is_not_utf8_names_the_file_line_and_byte(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n- path: p.yaml\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    content = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: \xff\n"
    (tmp_path / "p.yaml").write_bytes(content)
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("p.yaml", 3)
    assert error.detail == f"not valid UTF-8 (byte {content.index(0xFF)})"


@pytest.mark.parametrize(
    ("field", "entry"),
    [
        ("patchesStrategicMerge", "- p.yaml"),
        ("patchesJson6902", "- {path: p.yaml, target: {kind: Deployment}}"),
        ("resources", "- p.yaml"),
    ],
)
def test_every_file_a_kustomization_reads_must_be_utf8(
    tmp_path: Path, field: str, entry: str
) -> None:
    resources = "resources: [d.yaml]\n" if field != "resources" else ""
    write_tree(
        tmp_path, {"kustomization.yaml": f"{resources}{field}:\n{entry}\n", "d.yaml": DEPLOYMENT}
    )
    (tmp_path / "p.yaml").write_bytes(b"\xfe\xff")
    error = _refused(tmp_path)
    assert (error.file, error.line, error.detail) == ("p.yaml", 1, "not valid UTF-8 (byte 0)")


def test_a_kustomization_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_bytes(b"resources: []\nnamePrefix: \xc3\x28\n")
    error = _refused(tmp_path)
    assert (error.file, error.line, error.detail) == (
        "kustomization.yaml",
        2,
        "not valid UTF-8 (byte 26)",
    )


def test_a_plain_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"a: b\n\x80\n")
    error = _refused(tmp_path)
    assert (error.file, error.line, error.detail) == ("bad.yaml", 2, "not valid UTF-8 (byte 5)")


# --- regular expressions in kustomize targets -------------------------------------------
def _target_repo(root: Path, target: str, name: str) -> Path:
    deployment = DEPLOYMENT.replace("name: web\nspec", f"name: {name}\nspec")
    return write_tree(
        root,
        {
            "kustomization.yaml": "resources: [d.yaml]\npatches:\n"
            f"- target: {target}\n"
            '  patch: \'[{"op": "add", "path": "/metadata/labels", "value": {"hit": "yes"}}]\'\n',
            "d.yaml": deployment,
        },
    )


def test_a_catastrophic_target_regex_runs_in_linear_time(tmp_path: Path) -> None:
    name = "a" * 28 + "-b"  # (a+)+ backtracks 2**28 times in Python's re on this
    _target_repo(tmp_path, '{kind: Deployment, name: "(a+)+"}', name)
    started = time.perf_counter()
    [deployment] = _build(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert "labels" not in deployment.obj["metadata"]  # no match: the name has "-b"


def test_target_regexes_are_anchored_and_use_re2_semantics(tmp_path: Path) -> None:
    _target_repo(tmp_path, '{kind: "Deploy.*", name: "(a+)+-b"}', "aaaa-b")
    [deployment] = _build(tmp_path)
    assert deployment.obj["metadata"]["labels"] == {"hit": "yes"}
    _target_repo(tmp_path, '{kind: Deployment, name: "aaaa"}', "aaaa-b")
    [deployment] = _build(tmp_path)
    assert "labels" not in deployment.obj["metadata"]  # anchored: a prefix is no match


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ('{kind: Deployment, name: "(?=web)web"}', "target.name"),  # lookahead: not RE2
        ('{kind: Deployment, name: "(w)eb\\\\1"}', "target.name"),  # backreference
        ('{namespace: "(", kind: Deployment}', "target.namespace"),
        ('{kind: "Deploy[ment"}', "target.kind"),
    ],
)
def test_a_target_regex_re2_cannot_compile_is_an_error_naming_the_field(
    tmp_path: Path, target: str, field: str
) -> None:
    _target_repo(tmp_path, target, "web")
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("kustomization.yaml", 2)
    assert f"patches: [0]: {field}: invalid regular expression" in error.detail


def test_a_label_selector_with_long_whitespace_is_parsed_in_linear_time(tmp_path: Path) -> None:
    selector = "a" + " " * 200_000 + "x"
    _target_repo(tmp_path, f'{{labelSelector: "{selector}"}}', "web")
    error = _refused(tmp_path)
    assert "invalid selector" in error.detail


# --- sizes ----------------------------------------------------------------------------
def test_a_file_over_the_size_limit_is_refused_without_being_parsed(tmp_path: Path) -> None:
    with (tmp_path / "big.yaml").open("wb") as out:
        out.write(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: '")
        out.truncate(limits.MAX_FILE_BYTES + 1)  # a sparse file: it is never read
    error = _refused(tmp_path)
    assert error.file == "big.yaml"
    assert error.detail == (
        f"the file is {limits.MAX_FILE_BYTES + 1:,} bytes; a file may be at most "
        f"{limits.MAX_FILE_BYTES:,} bytes (8 MiB)"
    )


@pytest.mark.parametrize(
    ("field", "entry"),
    [
        ("resources", "- big.yaml"),
        ("patches", "- path: big.yaml"),
        ("configMapGenerator", "- {name: c, files: [big.yaml]}"),
        ("secretGenerator", "- {name: s, envs: [big.yaml]}"),
    ],
)
def test_every_file_a_kustomization_reads_is_size_limited(
    tmp_path: Path, field: str, entry: str
) -> None:
    write_tree(tmp_path, {"kustomization.yaml": f"{field}:\n{entry}\n"})
    with (tmp_path / "big.yaml").open("wb") as out:
        out.truncate(limits.MAX_FILE_BYTES + 1)
    error = _refused(tmp_path)
    assert error.file == "big.yaml"
    assert "a file may be at most" in error.detail


def test_the_total_input_of_a_build_is_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_BUILD_BYTES", 10_000)
    for index in range(20):
        (tmp_path / f"cm{index:02}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm{index}}}\n"
            f"data: {{a: '{'x' * 900}'}}\n"
        )
    error = _refused(tmp_path)
    assert error.file == "cm10.yaml"
    assert "the build reads more than 10,000 bytes" in error.detail


def test_a_kustomize_base_used_many_times_counts_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_BUILD_BYTES", 20_000)
    files = {"base/kustomization.yaml": "resources: [cm.yaml]\n"}
    files["base/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"
    files["base/cm.yaml"] += f"data: {{a: '{'x' * 3000}'}}\n"
    for index in range(10):
        files[f"o{index}/kustomization.yaml"] = f"resources: [../base]\nnamePrefix: o{index}-\n"
    files["kustomization.yaml"] = "resources: [" + ", ".join(f"o{i}" for i in range(10)) + "]\n"
    write_tree(tmp_path, files)
    error = _refused(tmp_path)
    assert error.file == "base/cm.yaml"
    assert "the build reads more than 20,000 bytes" in error.detail


def test_an_object_larger_than_the_api_server_accepts_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"kustomization.yaml": "configMapGenerator:\n- {name: c, files: [a.txt, b.txt]}\n"},
    )
    half = limits.MAX_OBJECT_BYTES // 2 + 10
    (tmp_path / "a.txt").write_text("a" * half)
    (tmp_path / "b.txt").write_text("b" * half)
    error = _refused(tmp_path)
    assert error.file == "kustomization.yaml"
    assert "an object may be at most 3,145,728 bytes" in error.detail


def test_more_objects_than_the_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_OBJECTS", 50)
    (tmp_path / "many.yaml").write_text(
        "".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(51)
        )
    )
    error = _refused(tmp_path)
    assert error.file == "many.yaml"
    assert "more than 50 objects" in error.detail


def test_helm_output_over_the_limit_stops_helm_and_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_BUILD_BYTES", 100_000)
    chart = tmp_path / "chart"
    write_tree(chart, {"Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n"})
    fake = tmp_path / "helm"
    marker = tmp_path / "still-running"
    fake.write_text(
        f"#!/bin/sh\ntouch {marker}\nyes 'a: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HELM_BIN", str(fake))
    error = _refused(tmp_path, "chart", kind="helm", helm=HelmOptions())
    assert error.file == "chart/Chart.yaml"
    assert "helm template printed more than" in error.detail
    assert marker.exists()


# --- kustomizations referring to kustomizations -------------------------------------
def test_a_long_chain_of_kustomize_bases_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    files = {}
    for level in range(400):
        files[f"{'d/' * level}kustomization.yaml"] = "resources: [d]\n"
    files[f"{'d/' * 400}kustomization.yaml"] = "resources: []\n"
    write_tree(tmp_path, files)
    error = _refused(tmp_path)
    assert f"nested more than {limits.MAX_KUSTOMIZE_DEPTH} deep" in error.detail


def test_components_used_exponentially_often_are_refused(tmp_path: Path) -> None:
    files = {"kustomization.yaml": KUSTOMIZATION + "components: [c0, c0]\n"}
    for level in range(18):
        files[f"c{level}/kustomization.yaml"] = (
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            f"components: [../c{level + 1}, ../c{level + 1}]\n"
        )
    files["c18/kustomization.yaml"] = (
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
    )
    write_tree(tmp_path, files)
    error = _refused(tmp_path)
    assert f"more than {limits.MAX_KUSTOMIZATIONS:,} kustomizations" in error.detail


def test_the_limits_are_documented_numbers() -> None:
    assert limits.MAX_FILE_BYTES == 8 * 1024 * 1024
    assert limits.MAX_OBJECT_BYTES == 3 * 1024 * 1024
    assert limits.MAX_BUILD_BYTES == 32 * 1024 * 1024
    assert limits.MAX_NESTING_DEPTH < 255
    assert limits.__doc__ is not None
    for name in dir(limits):
        if name.startswith("MAX_"):
            assert name in limits.__doc__, f"{name} is not explained in the module docstring"


def test_a_symlinked_file_outside_the_repository_is_still_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: secret}\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link.yaml").symlink_to(outside)
    error = _refused(repo)
    assert "outside the repository" in error.detail


def test_patches_times_objects_is_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_OBJECT_VISITS", 1000)
    objects = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(100)
    )
    patches = "".join(
        f"- target: {{kind: ConfigMap, name: c{i}}}\n"
        '  patch: \'[{"op": "add", "path": "/data", "value": {}}]\'\n'
        for i in range(11)
    )
    write_tree(tmp_path, {"kustomization.yaml": f"resources: [cm.yaml]\npatches:\n{patches}"})
    (tmp_path / "cm.yaml").write_text(objects)
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("kustomization.yaml", 2)
    assert "visit more than 1,000 objects" in error.detail


def test_common_labels_multiplied_by_many_objects_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_OBJECT_VISITS", 10_000)
    objects = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(100)
    )
    labels = "".join(f"  l{i}: x\n" for i in range(101))
    write_tree(tmp_path, {"kustomization.yaml": f"resources: [cm.yaml]\ncommonLabels:\n{labels}"})
    (tmp_path / "cm.yaml").write_text(objects)
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("kustomization.yaml", 2)
    assert "visit more than 10,000 objects" in error.detail


def test_a_label_field_path_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = "/".join(["a"] * 2000)
    write_tree(
        tmp_path,
        {
            "kustomization.yaml": "resources: [d.yaml]\nlabels:\n- pairs: {x: y}\n"
            f"  fields: [{{path: {path}, create: true}}]\n",
            "d.yaml": DEPLOYMENT,
        },
    )
    error = _refused(tmp_path)
    assert f"at most {limits.MAX_NESTING_DEPTH} segments" in error.detail


# --- what the loader constructs: plain JSON, as kubectl reads it --------------------------
def _load(tmp_path: Path, body: str) -> dict[str, object]:
    (tmp_path / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\n{body}"
    )
    [manifest] = _build(tmp_path)
    return manifest.obj


def test_number_and_boolean_keys_become_strings_as_kubectl_makes_them(tmp_path: Path) -> None:
    obj = _load(tmp_path, "data: {9000: 'default/web:8080', true: x, 1.5: y}\n")
    assert obj["data"] == {"9000": "default/web:8080", "true": "x", "1.5": "y"}


def test_sexagesimal_numbers_timestamps_and_equals_stay_strings(tmp_path: Path) -> None:
    obj = _load(tmp_path, "data: {a: 1:30, b: 2001-12-14, c: =, d: !!timestamp 2001-12-14}\n")
    assert obj["data"] == {"a": "1:30", "b": "2001-12-14", "c": "=", "d": "2001-12-14"}


def test_a_long_sexagesimal_integer_is_refused_quickly(tmp_path: Path) -> None:
    value = "1" + ":1" * 400_000  # Python's YAML 1.1 reading is quadratic in the parts
    (tmp_path / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\nx: !!int {value}\n"
    )
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("cm.yaml", 4)
    assert "is not an integer" in error.detail


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("x: 18446744073709551616\n", "the integer is out of range"),
        ("x: -9223372036854775809\n", "the integer is out of range"),
        ("x: " + "9" * 5000 + "\n", "the integer is out of range"),
        ("x: .inf\n", "is not a JSON number"),
        ("x: .nan\n", "is not a JSON number"),
        ("x: !!binary aGVsbG8=\n", "tag:yaml.org,2002:binary is not supported"),
        ("x: !!set {a, b}\n", "tag:yaml.org,2002:set is not supported"),
        ("x: !!omap [a: 1]\n", "tag:yaml.org,2002:omap is not supported"),
        ("x: {~: a}\n", "a mapping key must not be null"),
        ("x: {[a, b]: c}\n", "a mapping key must be a string, a number or a boolean"),
        ("x: {1: a, '1': b}\n", "mapping key '1' already defined at line 4"),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_line(
    tmp_path: Path, body: str, problem: str
) -> None:
    (tmp_path / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\n{body}"
    )
    error = _refused(tmp_path)
    assert (error.file, error.line) == ("cm.yaml", 4)
    assert problem in error.detail


def test_the_largest_64_bit_integers_still_load(tmp_path: Path) -> None:
    obj = _load(tmp_path, "x: [18446744073709551615, -9223372036854775808]\n")
    assert obj["x"] == [2**64 - 1, -(2**63)]


def test_helm_source_comments_with_long_whitespace_are_read_in_linear_time(
    tmp_path: Path,
) -> None:
    output = "# Source: app/templates/a.yaml" + " " * 200_000 + "x\nkind: ConfigMap\n"
    started = time.perf_counter()
    [manifest] = parse_output(output, tmp_path / "chart", tmp_path)
    assert time.perf_counter() - started < 1.0
    assert manifest.origin.file == "chart/templates/a.yaml" + " " * 200_000 + "x"


def test_json_patch_bounds_what_copies_add_only_when_asked() -> None:
    document = {"a": {"blob": "x" * 100}}
    operations = [{"op": "copy", "from": "/a", "path": f"/c{i}"} for i in range(10)]
    assert len(json_patch(document, operations)) == 11
    with pytest.raises(ApiError) as caught:
        json_patch(document, operations, max_copy_bytes=500)
    assert "exceeding the limit 500" in str(caught.value.__cause__)


def test_a_build_error_lists_at_most_a_hundred_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: Bad{i}}}\n"
            for i in range(150)
        )
    )
    error = _refused(tmp_path)
    assert isinstance(error, BuildErrors)
    assert len(error.errors) == limits.MAX_REPORTED_ERRORS + 1
    assert str(error).endswith("; and 50 more problems")


def test_a_kustomization_listing_one_empty_file_many_times_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_FILES", 100)
    entries = ", ".join(["empty.yaml"] * 200)
    write_tree(tmp_path, {"kustomization.yaml": f"resources: [{entries}]\n", "empty.yaml": ""})
    error = _refused(tmp_path)
    assert error.file == "empty.yaml"
    assert "the build reads more than 100 files" in error.detail
