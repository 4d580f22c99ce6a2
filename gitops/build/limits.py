"""Limits on what a repository can make the build step read, expand and compute.

Everything the build reads comes from a Git repository and is written by whoever can
push to it, so no file's size or shape may take the reconciler down (in ``gitops up``
the same process hosts the cluster). Every builder reads through this module
(:func:`read_bytes`, :func:`read_text`), the YAML loader checks each document with
:func:`check_document` before constructing it, and :func:`gitops.build.build` checks its
result with :func:`check_objects`. A limit that is hit is a
:class:`~gitops.errors.BuildError` naming the file (and line) like any other invalid
input, so the whole revision is refused and nothing of it is applied.

The numbers, and why:

``MAX_FILE_BYTES`` = 8 MiB per file read from the checkout (manifests, kustomization
files, patches, generator sources, values files). The largest real manifest files are
vendored bundles of CustomResourceDefinitions, a few MiB; a file is refused by its size
before it is read.

``MAX_BUILD_BYTES`` = 32 MiB in all for one build: every file read (a kustomize base
used twice is read, and counted, twice), plus what ``helm template`` prints (helm is
stopped when its output passes what is left). Parsed YAML takes about 13 times its size
in memory and 0.4 s per MiB, so this bounds a build to about 400 MiB and 15 seconds
(bench/gitops_bench.py's 2,000-object application is well under 1 MiB).

``MAX_FILES`` = 20,000 files read per build (again, a file read twice counts twice):
empty files cost no bytes but each costs a file system round trip and a parse; a
kustomization listing one empty file a million times would otherwise take a minute.

``MAX_OBJECT_BYTES`` = 3 MiB per object, serialised as compact JSON: the Kubernetes API
server refuses request bodies over 3 MiB (and etcd stores at most 1.5 MiB per value),
so a larger object could never be applied; it is refused at build time with its file.

``MAX_OBJECTS`` = 10,000 objects per build (documents and ``List`` items read, and the
final result). Several thousand objects is a very large application; the bound keeps
the planner's per-object work (one dry run each) and kustomize's id checks in reach.

``MAX_NESTING_DEPTH`` = 128 levels of collections (mappings and lists) in one document
and in every built object, aliases expanded. The deepest real objects are
CustomResourceDefinitions whose ``openAPIV3Schema`` embeds built-in types (a CronJob's
spec written as a schema is 26 levels, 34 with the CRD around it); every later step
(merge, diff, JSON encoding, which stops at 255) walks objects recursively, and 128
levels keep that far from Python's recursion limit. libyaml itself refuses 1,000.

``MAX_YAML_ALIASES`` = 10,000 uses of an alias to a collection (``*name``) per YAML
document; real manifests use a handful (shared env lists, labels). An alias to a scalar
expands to one value, no more than it costs to write, and is not counted.

Alias expansion follows go-yaml, which ``kubectl`` and the API server use since
CVE-2019-11253 ("billion laughs"): once a document expands to more than 1,000 values
with over 100 of them from aliases, at most 99% may come from aliases up to
``ALIAS_RATIO_RANGE_LOW`` (400,000) values, scaling down to 10% at
``ALIAS_RATIO_RANGE_HIGH`` (4,000,000) and beyond. The expanded size is computed from
the composed node graph with memoisation, before anything is constructed, so the
558-byte bomb (387 million values) costs microseconds to refuse. An anchor that
contains an alias to itself (an infinite value) is refused too.

``MAX_KUSTOMIZE_DEPTH`` = 50 kustomizations nested through ``resources``, ``bases`` and
``components`` (overlays are rarely more than five deep; each level is a few Python
frames); cycles are refused at any depth.

``MAX_KUSTOMIZATIONS`` = 1,000 kustomization directories built per build, a base or
component counted each time it is used: a component listed twice by a component listed
twice... is exponential work.

``MAX_OBJECT_VISITS`` = 2,000,000 objects visited per build by kustomize's patches (a
target selector, or the id of a strategic merge patch, is matched against every
accumulated object), generators (looking for the object to merge into) and transformers
(namespace, prefixes, each label, annotation, image and replicas entry): entries times
objects, 1 to 5 microseconds each, so about 10 seconds at most. It also bounds what
small input can multiply: 100,000 ``commonLabels`` on 10,000 objects would be a billion
labels. 200 patches over 10,000 objects fit, or 1,000 over 2,000.

``MAX_JSON_PATCH_COPY_BYTES`` = 3 MiB copied by the ``copy`` operations of one JSON 6902
patch, the API server's ``JSONPatchMaxCopyBytes`` default: 40 copies of an object into
itself would otherwise double it 40 times.

``MAX_REPORTED_ERRORS`` = 100 problems listed in one build error (10,000 invalid
objects would make a message of megabytes in the status and the logs); the rest are
counted.

Regular expressions in kustomize targets run on RE2 (:func:`compile_target_regex`),
whose time is linear in the input, as in kustomize itself (Go's ``regexp``).

The constants are read at call time, so tests may lower them with ``monkeypatch``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import re2

from gitops.errors import BuildError
from kubemodel.patch import JSON_PATCH_MAX_COPY_BYTES
from kubemodel.yamljson import (
    MAX_NESTING_DEPTH,
    MAX_YAML_ALIASES,
    depth_of,
)

if TYPE_CHECKING:
    from gitops.manifest import Manifest

MiB = 1024 * 1024

MAX_FILE_BYTES = 8 * MiB
MAX_BUILD_BYTES = 32 * MiB
MAX_FILES = 20_000
MAX_OBJECT_BYTES = 3 * MiB
MAX_OBJECTS = 10_000
MAX_KUSTOMIZE_DEPTH = 50
MAX_KUSTOMIZATIONS = 1_000
MAX_OBJECT_VISITS = 2_000_000
MAX_JSON_PATCH_COPY_BYTES = JSON_PATCH_MAX_COPY_BYTES  # kube-apiserver's, shared with it
MAX_REPORTED_ERRORS = 100


def describe(size: int) -> str:
    """``size`` bytes for a message: ``8 MiB``, ``1.5 MiB``, ``900 bytes``."""
    if size >= MiB:
        return f"{size / MiB:g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} bytes"


# --- the budget of one build ------------------------------------------------------------
@dataclass
class Budget:
    """What one build has used so far (counters only go up)."""

    bytes_read: int = 0
    files: int = 0
    objects: int = 0
    kustomizations: int = 0
    visits: int = 0

    def charge_bytes(self, size: int, file: str) -> None:
        self.bytes_read += size
        if self.bytes_read > MAX_BUILD_BYTES:
            raise BuildError(
                f"the build reads more than {MAX_BUILD_BYTES:,} bytes "
                f"({describe(MAX_BUILD_BYTES)}) of files and rendered output; "
                "split the application into smaller ones",
                file=file,
            )

    def charge_file(self, file: str) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise BuildError(
                f"the build reads more than {MAX_FILES:,} files (a file read twice counts "
                "twice); split the application into smaller ones",
                file=file,
            )

    def remaining_bytes(self) -> int:
        return max(0, MAX_BUILD_BYTES - self.bytes_read)

    def charge_objects(self, count: int, file: str, line: int | None = None) -> None:
        self.objects += count
        if self.objects > MAX_OBJECTS:
            raise too_many_objects(file, line)

    def charge_kustomization(self, file: str, line: int | None) -> None:
        self.kustomizations += 1
        if self.kustomizations > MAX_KUSTOMIZATIONS:
            raise BuildError(
                f"the build uses more than {MAX_KUSTOMIZATIONS:,} kustomizations (a base or "
                "component counts each time it is used)",
                file=file,
                line=line,
            )

    def charge_visits(self, count: int, file: str, line: int | None) -> None:
        """``count`` objects are about to be visited by a patch, generator or transformer."""
        self.visits += count
        if self.visits > MAX_OBJECT_VISITS:
            raise BuildError(
                f"the build's patches, generators and transformers visit more than "
                f"{MAX_OBJECT_VISITS:,} objects (entries times objects); use fewer entries or "
                "split the application",
                file=file,
                line=line,
            )


_BUDGET: ContextVar[Budget | None] = ContextVar("gitops_build_budget", default=None)


@contextlib.contextmanager
def build_budget() -> Iterator[Budget]:
    """The budget of the build in progress, or a new one for the duration of the block.

    :func:`gitops.build.build` and each builder open one, so nested calls share it."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = Budget()
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def current_budget() -> Budget:
    """The active budget; outside any build, a fresh one (so only per-file limits apply)."""
    return _BUDGET.get() or Budget()


def too_many_objects(file: str, line: int | None = None) -> BuildError:
    return BuildError(
        f"the build produces more than {MAX_OBJECTS:,} objects; split the application",
        file=file,
        line=line,
    )


# --- reading files ------------------------------------------------------------------
def _too_big(size: int, file: str) -> BuildError:
    return BuildError(
        f"the file is {size:,} bytes; a file may be at most {MAX_FILE_BYTES:,} bytes "
        f"({describe(MAX_FILE_BYTES)})",
        file=file,
    )


def check_file_size(path: Path, file: str) -> int:
    """The size of a file someone else reads (helm's values files), within the limits."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BuildError(f"cannot read: {exc.strerror}", file=file) from None
    if size > MAX_FILE_BYTES:
        raise _too_big(size, file)
    budget = current_budget()
    budget.charge_file(file)
    budget.charge_bytes(size, file)
    return size


def read_bytes(path: Path, file: str) -> bytes:
    """The content of ``path`` (named ``file`` in errors), within the size limits.

    The size is checked before reading, and at most one byte more than the limit is ever
    read (a file that grows while being read is refused too)."""
    budget = current_budget()
    budget.charge_file(file)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise _too_big(size, file)
            budget.charge_bytes(size, file)
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BuildError(f"cannot read: {exc.strerror or exc}", file=file) from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(len(data), file)
    if len(data) > size:
        budget.charge_bytes(len(data) - size, file)
    return data


def decode(data: bytes, file: str) -> str:
    """``data`` as UTF-8 text; an invalid byte is named with its line and offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BuildError(f"not valid UTF-8 (byte {exc.start})", file=file, line=line) from None


def read_text(path: Path, file: str) -> str:
    """The UTF-8 text of ``path``, within the size limits (see :func:`read_bytes`)."""
    return decode(read_bytes(path, file), file)


# --- built objects ----------------------------------------------------------------------
def nested_too_deep(file: str, line: int | None) -> BuildError:
    return BuildError(
        f"the value is nested deeper than {MAX_NESTING_DEPTH} levels", file=file, line=line
    )


def check_object(obj: dict[str, Any], file: str, line: int | None = None) -> None:
    """Refuse one built object that is nested too deep or too large to apply."""
    if depth_of(obj, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
        raise nested_too_deep(file, line)
    size = len(orjson.dumps(obj))
    if size > MAX_OBJECT_BYTES:
        raise BuildError(
            f"the object is {size:,} bytes as JSON; an object may be at most "
            f"{MAX_OBJECT_BYTES:,} bytes ({describe(MAX_OBJECT_BYTES)}, what the Kubernetes "
            "API server accepts)",
            file=file,
            line=line,
        )


def check_objects(manifests: Sequence[Manifest]) -> None:
    """Refuse a build result with too many objects, or one too deep or too large."""
    if len(manifests) > MAX_OBJECTS:
        origin = manifests[MAX_OBJECTS].origin
        raise too_many_objects(origin.file, origin.line)
    for manifest in manifests:
        check_object(manifest.obj, manifest.origin.file, manifest.origin.line)


# --- regular expressions ------------------------------------------------------------------
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (linear-time matching, Go's ``regexp`` syntax)."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


def compile_target_regex(pattern: str) -> Any:
    """A kustomize selector field as kustomize compiles it: anchored, ``^(?:p)$``."""
    return compile_regex(f"^(?:{pattern})$")


# --- subprocess output --------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """What a command printed: exit status, stdout, the start of stderr, and whether
    it was stopped for printing more than allowed."""

    returncode: int
    stdout: bytes
    stderr: bytes
    too_much: bool


def run_bounded(
    command: Sequence[str],
    *,
    timeout: float,
    max_stdout: int,
    max_stderr: int = 64 * 1024,
    env: dict[str, str] | None = None,
) -> Output:
    """Run ``command``, keeping at most ``max_stdout`` bytes of its output.

    The command is killed when its output passes ``max_stdout`` (``too_much``) or when it
    runs longer than ``timeout`` seconds (:class:`subprocess.TimeoutExpired`). stderr
    is drained but only its first ``max_stderr`` bytes are kept."""
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    sizes = {"out": 0, "err": 0}
    too_much = False
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, "out")
        selector.register(process.stderr, selectors.EVENT_READ, "err")
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(list(command), timeout)
                for key, _ in selector.select(timeout=min(left, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    name = key.data
                    if name == "out":
                        sizes["out"] += len(chunk)
                        if sizes["out"] > max_stdout:
                            too_much = True
                            break
                        out.append(chunk)
                    elif sizes["err"] < max_stderr:
                        err.append(chunk[: max_stderr - sizes["err"]])
                        sizes["err"] += len(chunk)
                if too_much:
                    break
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
            process.stderr.close()
    if too_much:
        process.kill()
    left = max(0.1, deadline - time.monotonic())
    try:
        returncode = process.wait(timeout=left)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return Output(returncode, b"".join(out), b"".join(err), too_much)


__all__ = [
    "MAX_BUILD_BYTES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_JSON_PATCH_COPY_BYTES",
    "MAX_KUSTOMIZATIONS",
    "MAX_KUSTOMIZE_DEPTH",
    "MAX_NESTING_DEPTH",
    "MAX_OBJECTS",
    "MAX_OBJECT_BYTES",
    "MAX_OBJECT_VISITS",
    "MAX_REPORTED_ERRORS",
    "MAX_YAML_ALIASES",
    "Budget",
    "Output",
    "RegexError",
    "build_budget",
    "check_file_size",
    "check_object",
    "check_objects",
    "compile_regex",
    "compile_target_regex",
    "current_budget",
    "decode",
    "depth_of",
    "describe",
    "read_bytes",
    "read_text",
    "run_bounded",
]
