"""Hypothesis strategies for fuzzing the build step, shared by the test suite and the bench.

Used by tests/unit/test_fuzz_build.py (a short, derandomised run in every test run) and
bench/fuzz_build.py (a long random run that writes bench/results/fuzz_build.json).

A strategy draws a repository as ``{relative path: bytes}``; :func:`run_build` writes it
to a temporary directory, runs the real entry point (:func:`gitops.build.build`) and
says what happened. The property: a build either returns objects the planner can
serialise (``orjson``, as :mod:`gitops.plan` does) or raises
:class:`~gitops.errors.BuildError`; any other exception is a bug.

What is drawn, hostile on purpose:

* YAML text in flow style with anchors, aliases (including an anchor inside its own
  value), merge keys, tags (``!!binary``, ``!!set``, ``!!int 1:30``, local ``!foo``),
  numbers at and past 64 bits, ``.inf``/``.nan``, dates, escapes (``\\ud800``,
  ``\\x00``), odd keys (null, lists, numbers, ``<<``), deep nesting around the limit
  and alias bombs of random width and height;
* the same embedded in manifest-shaped documents (so it reaches validation), several
  documents per file, ``List`` kinds, and random bytes spliced in anywhere;
* kustomization directories: resources (files, a base, missing and escaping paths,
  URLs), patches (inline and file, strategic merge and JSON 6902 with random
  operations, targets with regular expressions RE2 accepts or refuses), the deprecated
  patch fields, generators (literals, files with binary content, env files), and the
  transformer fields with values of the wrong type.
"""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import strategies as st

from gitops.build import build
from gitops.errors import BuildError

Files = dict[str, bytes]

# --- YAML text ----------------------------------------------------------------------------
SCALARS = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=12).map(
        lambda t: json.dumps(t, ensure_ascii=False)
    ),
    st.sampled_from(
        [
            "a",
            "web",
            "1",
            "0",
            "-0",
            "+1",
            "0x1F",
            "0o7",
            "017",
            "0b101",
            "1_000",
            "1:30",
            "190:20:30",
            "1.5",
            "1e400",
            "1.0e+400",
            ".inf",
            "-.Inf",
            ".nan",
            "~",
            "null",
            "true",
            "yes",
            "off",
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "=",
            "''",
            '""',
            '"\\ud800"',
            '"\\x00"',
            '"\\U0010FFFF"',
            '"\\u00e9"',
            "'it''s'",
            "9" * 30,
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "!!binary aGVsbG8=",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!!pairs [a: 1]",
            "!!int 1:2",
            "!!int 0x10",
            "!!float x",
            "!!float 1",
            "!!bool x",
            "!!bool [a]",
            "!!null x",
            "!!int x",
            "!!int [a]",
            "!!map x",
            "!!seq x",
            "!!str [a]",
            "!!float 1:30.5",
            "!!str 1",
            "!!null ''",
            "!!bool yes",
            "!foo bar",
            "!!timestamp 2001-12-14",
            "!!python/object:os.system x",
            "|\n  literal\n",
            ">-\n  folded\n",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=6).map(json.dumps),  # surrogates and control characters too
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "name",
            "kind",
            "metadata",
            "1",
            "1.5",
            "true",
            "~",
            "null",
            "[a, b]",
            "{a: b}",
            '"k"',
            "'q'",
            "!!binary aGk=",
            "8080",
            "a b",
        ]
    ),
    st.text(alphabet="abcxyz-_.", min_size=1, max_size=6),
)
DEPTHS = st.sampled_from([2, 50, 126, 127, 128, 129, 130, 255, 999, 1000, 1001])


@st.composite
def yaml_value(draw: st.DrawFn, anchors: list[str], depth: int = 0) -> str:
    """One YAML value in flow style; ``anchors`` are the names defined so far."""
    choice = draw(st.integers(0, 11)) if depth < 5 else draw(st.integers(0, 3))
    own: str | None = None
    if choice >= 4 and draw(st.integers(0, 3)) == 0:
        own = f"a{len(anchors)}"
        if draw(st.integers(0, 5)) == 0:
            anchors.append(own)  # visible inside its own value: maybe a recursive alias
    if choice <= 3:
        text = draw(SCALARS)
        if text.startswith(("|", ">")):
            text = json.dumps(text)  # block scalars do not fit in flow style
    elif choice <= 6:
        items = draw(st.lists(yaml_value(anchors, depth + 1), max_size=5))
        text = "[" + ", ".join(items) + "]"
    elif choice <= 9:
        pairs = []
        for _ in range(draw(st.integers(0, 4))):
            key = draw(KEYS)
            if key == "<<" or (anchors and draw(st.integers(0, 4)) == 0):
                key = "<<"
                value = "*" + draw(st.sampled_from(anchors)) if anchors else "{}"
            else:
                value = draw(yaml_value(anchors, depth + 1))
            pairs.append(f"{key}: {value}")
        text = "{" + ", ".join(pairs) + "}"
    elif choice == 10 and anchors:
        return "*" + draw(st.sampled_from(anchors))
    else:
        levels = draw(DEPTHS)
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        text = opener * levels + "x" * (opener == "[") + closer * levels
    if own is not None:
        if own not in anchors:
            anchors.append(own)
        text = f"&{own} {text}"
    return text


@st.composite
def alias_bomb(draw: st.DrawFn) -> str:
    """Anchors each listing the previous one ``width`` times, ``height`` levels high."""
    width = draw(st.integers(1, 12))
    height = draw(st.integers(1, 12))
    merge = draw(st.booleans())
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, height + 1):
        uses = ", ".join([f"*l{level - 1}"] * width)
        if merge:
            lines[0] = "l0: &l0 {" + ", ".join(f"k{i}: {i}" for i in range(width)) + "}"
            lines.append(f"l{level}: &l{level} {{<<: [{uses}]}}")
        else:
            lines.append(f"l{level}: &l{level} [{uses}]")
    return "".join(f"  {line}\n" for line in lines)


MANIFEST_HEAD = "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}{ns}}}\n"
API_KINDS = st.sampled_from(
    [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "Namespace"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("example.com/v1", "Widget"),
        ("v1", "List"),
        ("", "ConfigMap"),
        ("v1", ""),
    ]
)
NAMES = st.sampled_from(["web", "app", "a" * 30 + "-b", "UPPER", "x.y", "", "web-1", "1", "~"])


TAME_API_KINDS = st.sampled_from(
    [
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("example.com/v1", "Widget"),
    ]
)
TAME_NAMES = st.sampled_from(["web", "app", "db", "web-1", "x.y"])
TAME_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=8)
TAME_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | TAME_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TAME_TEXT, inner, max_size=3),
    max_leaves=10,
)


def chance(percent: int) -> st.SearchStrategy[bool]:
    """True about ``percent`` % of the time; False for hypothesis' simplest draw (0)."""
    return st.integers(0, 99).map(lambda n: n >= 100 - percent)


def tame() -> st.SearchStrategy[bool]:
    """Mostly True: most of an input is ordinary, so most builds get past the loader."""
    return chance(25).map(lambda hostile: not hostile)


@st.composite
def manifest_document(draw: st.DrawFn) -> str:
    """A manifest-shaped document: mostly ordinary, sometimes with a hostile body."""
    if draw(tame()):
        api, kind = draw(TAME_API_KINDS)
        name = draw(TAME_NAMES)
        ns = draw(st.sampled_from(["", ", namespace: shop"]))
    else:
        api, kind = draw(API_KINDS)
        name = draw(NAMES)
        ns = draw(
            st.sampled_from(["", ", namespace: shop", ", namespace: Bad_NS", ", namespace: 1"])
        )
    head = MANIFEST_HEAD.format(api=api or "''", kind=kind or "''", name=name or "''", ns=ns)
    anchors: list[str] = []
    body = draw(st.sampled_from(["data", "spec", "items", "metadata2", "labels", "stringData"]))
    if draw(tame()):
        if body == "labels":
            labels = draw(st.dictionaries(TAME_NAMES, TAME_NAMES, max_size=2))
            return head.replace("}\n", f", labels: {json.dumps(labels)}}}\n", 1)
        return head + f"{body}: {json.dumps(draw(TAME_VALUES), ensure_ascii=False)}\n"
    if body == "labels":
        head = head.replace("}\n", f", labels: {draw(yaml_value(anchors))}}}\n", 1)
        return head
    if draw(chance(15)):
        return head + f"{body}:\n" + draw(alias_bomb())
    return head + f"{body}: {draw(yaml_value(anchors))}\n"


@st.composite
def yaml_file(draw: st.DrawFn) -> bytes:
    """A file of documents, sometimes plain random YAML, sometimes damaged bytes."""
    if draw(chance(5)):
        text = draw(yaml_value([]))
    elif draw(chance(5)):
        return draw(st.binary(max_size=64))
    else:
        documents = draw(st.lists(manifest_document(), min_size=1, max_size=3))
        text = "".join(f"---\n{d}" for d in documents)
    data = text.encode("utf-8", "surrogatepass")
    if draw(chance(5)):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@st.composite
def plain_repository(draw: st.DrawFn) -> Files:
    """A plain directory of one to three manifest files."""
    names = draw(
        st.lists(
            st.sampled_from(["a.yaml", "b.yml", "c.json", "sub/d.yaml", ".hidden.yaml"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return {name: draw(yaml_file()) for name in names}


# --- kustomizations -------------------------------------------------------------------------
PATTERNS = st.sampled_from(
    [
        "",
        "Deployment",
        "ConfigMap",
        "Config.*",
        ".*",
        "web|app",
        "(a+)+",
        "(a+)+-b",
        "(",
        "[",
        "a{1001}",
        "(?=x)x",
        "(w)\\1",
        "\\",
        "^web$",
        "x" * 50,
        "apps",
        "v1",
        "shop",
        "(?i)WEB",
    ]
)
TAME_PATTERNS = st.sampled_from(
    ["Deployment", "ConfigMap", "Widget", "web", "app", "web|app", "Config.*", ".*", "shop", "v1"]
)
POINTERS = st.sampled_from(
    [
        "/metadata/name",
        "/metadata/namespace",
        "/metadata/labels",
        "/metadata/labels/x",
        "/spec",
        "/spec/replicas",
        "/data",
        "/data/a",
        "/kind",
        "/apiVersion",
        "/items/0",
        "/-",
        "",
        "/",
        "/a/b/c",
        "/spec/template/spec/containers/0",
        "/spec/template/spec/containers/-",
        "/data/~1x",
        "metadata",
    ]
)


@st.composite
def json6902(draw: st.DrawFn) -> str:
    operations = []
    for _ in range(draw(st.integers(0, 4))):
        op: dict[str, Any] = {
            "op": draw(
                st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"])
            )
        }
        op["path"] = draw(POINTERS)
        if op["op"] in ("move", "copy"):
            op["from"] = draw(POINTERS)
        if op["op"] in ("add", "replace", "test"):
            op["value"] = draw(
                st.recursive(
                    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
                    lambda inner: (
                        st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                    ),
                    max_leaves=8,
                )
            )
        operations.append(op)
    return json.dumps(operations)


@st.composite
def smp_patch(draw: st.DrawFn) -> str:
    ordinary = draw(tame())
    api, kind = draw(TAME_API_KINDS if ordinary else API_KINDS)
    name = draw(TAME_NAMES if ordinary else NAMES)
    extra = draw(st.sampled_from(["", "", "", "$patch: delete\n", "$patch: replace\n"]))
    body = json.dumps(draw(TAME_VALUES), ensure_ascii=False) if ordinary else draw(yaml_value([]))
    return (
        MANIFEST_HEAD.format(api=api or "''", kind=kind or "''", name=name or "''", ns="")
        + extra
        + f"spec: {body}\n"
    )


@st.composite
def target(draw: st.DrawFn) -> dict[str, str]:
    fields = draw(
        st.lists(
            st.sampled_from(["group", "version", "kind", "name", "namespace", "labelSelector"]),
            max_size=3,
            unique=True,
        )
    )
    patterns = TAME_PATTERNS if draw(tame()) else PATTERNS
    chosen = {field: draw(patterns) for field in fields}
    if "labelSelector" in chosen:
        chosen["labelSelector"] = draw(
            st.sampled_from(["app=web", "app in (a, b)", "!x", "a" + " " * 50 + "x", "=", ""])
        )
    return chosen


@st.composite
def kustomize_repository(draw: st.DrawFn) -> Files:
    """A kustomization directory with a few files, a base and a component."""
    files: Files = {}
    resources = [f"r{i}.yaml" for i in range(draw(st.integers(0, 3)))]
    for name in resources:
        files[name] = draw(yaml_file())
    if draw(st.booleans()):
        files["base/kustomization.yaml"] = b"resources: [cm.yaml]\n"
        files["base/cm.yaml"] = draw(yaml_file())
        resources.append("base")
    if draw(st.integers(0, 3)) == 0:
        files["comp/kustomization.yaml"] = (
            b"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            b"namePrefix: c-\nresources: [x.yaml]\n"
        )
        files["comp/x.yaml"] = draw(yaml_file())
    files["p.yaml"] = draw(st.one_of(smp_patch().map(str.encode), yaml_file()))
    files["p.json"] = draw(json6902()).encode()
    files["bin.dat"] = draw(st.binary(max_size=32))
    files["app.env"] = draw(
        st.sampled_from([b"A=1\nB=2\n", b"A\n", b"=x\n", b"\xff=1\n", b"1A=x\n", b"# c\n\n"])
    )
    kustomization: dict[str, Any] = {}
    candidates = [
        *resources,
        "missing.yaml",
        "../escape.yaml",
        "/etc/hostname",
        "https://example.com/x.yaml",
        "p.yaml",
        ".",
    ]
    if draw(tame()):
        kustomization["resources"] = resources
    else:
        kustomization["resources"] = draw(st.lists(st.sampled_from(candidates), max_size=4))
    if draw(st.integers(0, 3)) == 0:
        kustomization["components"] = draw(
            st.lists(st.sampled_from(["comp", "base", "missing"]), max_size=2)
        )
    if draw(st.booleans()):
        entries = []
        for _ in range(draw(st.integers(1, 3))):
            entry: dict[str, Any] = {}
            source = draw(st.integers(0, 3))
            if source == 0:
                entry["path"] = draw(st.sampled_from(["p.yaml", "p.json", "bin.dat", "nope"]))
            elif source == 1:
                entry["patch"] = draw(json6902())
            else:
                entry["patch"] = draw(smp_patch())
            if draw(st.booleans()):
                entry["target"] = draw(target())
            if draw(st.integers(0, 5)) == 0:
                entry["options"] = {"allowNameChange": draw(st.booleans())}
            entries.append(entry)
        kustomization["patches"] = entries
    if draw(st.integers(0, 4)) == 0:
        kustomization["patchesStrategicMerge"] = draw(
            st.lists(st.one_of(st.just("p.yaml"), smp_patch()), max_size=2)
        )
    if draw(st.integers(0, 4)) == 0:
        kustomization["patchesJson6902"] = [{"target": draw(target()), "path": "p.json"}]
    for field in ("configMapGenerator", "secretGenerator"):
        if draw(st.integers(0, 2)) == 0:
            generator: dict[str, Any] = {"name": draw(NAMES)}
            if draw(st.booleans()):
                generator["literals"] = draw(
                    st.lists(st.sampled_from(["a=b", "x", "=", "k='v'", "b=\xe9"]), max_size=3)
                )
            if draw(st.booleans()):
                generator["files"] = draw(
                    st.lists(st.sampled_from(["bin.dat", "k=p.yaml", "nope", "=x"]), max_size=2)
                )
            if draw(st.booleans()):
                generator["envs"] = ["app.env"]
            if draw(st.booleans()):
                generator["behavior"] = draw(st.sampled_from(["create", "merge", "replace", "x"]))
            kustomization[field] = [generator]
    for field, values in (
        ("namePrefix", ["p-", "", "UP-", 1]),
        ("nameSuffix", ["-s", None]),
        ("namespace", ["shop", "Bad_NS", "", 1]),
        ("commonLabels", [{"app": "web"}, {"a": 1}, "x"]),
        ("commonAnnotations", [{"note": "x"}, []]),
        ("labels", [[{"pairs": {"a": "b"}, "includeSelectors": True}], [{"pairs": 1}]]),
        ("images", [[{"name": "nginx", "newTag": "2"}], [{"name": 1}]]),
        ("replicas", [[{"name": "web", "count": 3}], [{"name": "web", "count": "x"}]]),
        (
            "sortOptions",
            [
                {"order": "fifo"},
                {"order": "legacy"},
                {"order": "x"},
                {"order": "legacy", "legacySortOptions": {"orderFirst": ["Secret"]}},
            ],
        ),
        ("generatorOptions", [{"disableNameSuffixHash": True}, {"labels": {"a": "b"}}]),
    ):
        if draw(st.integers(0, 5)) == 0:
            kustomization[field] = values[0] if draw(tame()) else draw(st.sampled_from(values))
    kustomization = draw(confused(kustomization))
    text = yaml.safe_dump(kustomization, sort_keys=False, allow_unicode=True)
    if draw(chance(5)):
        text += draw(yaml_value([])) + "\n"  # damage it
    files["kustomization.yaml"] = text.encode("utf-8", "surrogatepass")
    return files


@st.composite
def confused(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with, here and there, a part of the wrong type (a number for a list,
    a string for a mapping...), as a careless or hostile commit writes it."""
    if draw(chance(1)):
        return draw(TAME_VALUES)
    if isinstance(value, dict):
        return {key: draw(confused(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [draw(confused(item)) for item in value]
    return value


# --- running one build -------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What one build did: ``built`` (objects), ``refused`` (BuildError) or ``crashed``."""

    result: str
    seconds: float
    objects: int = 0
    error: str = ""


def write_files(root: Path, files: Files) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_build(files: Files) -> Outcome:
    """Build ``files`` as a repository; never raises (a crash is an outcome)."""
    with tempfile.TemporaryDirectory(prefix="gitops-fuzz-") as tmp:
        root = Path(tmp)
        write_files(root, files)
        started = time.perf_counter()
        try:
            manifests = build(root, ".")
            for manifest in manifests:
                orjson.dumps(manifest.obj, option=orjson.OPT_SORT_KEYS)  # what plan.py does
        except BuildError as exc:
            return Outcome("refused", time.perf_counter() - started, error=str(exc)[:300])
        except Exception as exc:  # the property under test: nothing else escapes
            trace = "".join(traceback.format_exception(exc)[-4:])
            return Outcome("crashed", time.perf_counter() - started, error=trace[-2000:])
        return Outcome("built", time.perf_counter() - started, objects=len(manifests))


STRATEGIES: dict[str, st.SearchStrategy[Files]] = {
    "yaml": yaml_file().map(lambda data: {"file.yaml": data}),
    "plain": plain_repository(),
    "kustomize": kustomize_repository(),
}
"""Each strategy by name, for the bench's ``--strategy``."""


# --- every field with a value of the wrong type --------------------------------------------
WRONG_TYPES: tuple[Any, ...] = (None, 7, 1.5, True, "x", ["x"], [None], {"x": 1}, [{"x": 1}])
"""What a careless or hostile commit writes where something else is expected."""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = json.loads(json.dumps(document))
    node = copied
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copied


def wrong_types(document: Any) -> list[tuple[str, Any]]:
    """``document`` with each of its fields (at any depth) replaced by each wrong type,
    named by the path of the field."""
    variants = []
    for path in _paths(document)[1:]:
        for value in WRONG_TYPES:
            where = "/".join(str(step) for step in path)
            variants.append((f"{where}={value!r}", _replaced(document, path, value)))
    return variants
