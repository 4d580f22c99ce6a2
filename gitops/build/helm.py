"""Helm charts: the objects ``helm template`` renders from a chart in the repository.

Called by :func:`gitops.build.build` for a directory holding a ``Chart.yaml``. It runs
the ``helm`` binary (``$HELM_BIN``, else ``helm`` on ``PATH``) as::

    helm template RELEASE CHART_DIR --namespace NS --skip-tests [--include-crds]
        [-f VALUES_FILE]... [-f INLINE_VALUES]

Values files are relative to the chart directory and must stay inside the repository;
inline values are written to a temporary file passed last, so they win. Test hooks are
skipped; other hooks are rendered as ordinary objects. Dependencies must be vendored in
the chart's ``charts/`` directory: nothing is downloaded (``helm dependency build`` is
never run), and helm's own error says which one is missing. Each object's origin is the
template it came from (helm's ``# Source:`` comment mapped to a path relative to the
repository root) without a line, because rendered lines are not template lines.
helm's output counts towards the build's input limit (:mod:`gitops.build.limits`): helm
is stopped as soon as it prints more than what is left, and values files are size-checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gitops.build import limits
from gitops.build.documents import load_text, parse_documents
from gitops.build.validate import is_dns_label
from gitops.childenv import child_env
from gitops.errors import BuildError
from gitops.manifest import Manifest, Origin

INSTALL_URL = "https://helm.sh/docs/intro/install/"
TIMEOUT_SECONDS = 120.0
_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$")
_SOURCE = "# Source: "
_MAX_STDERR = 2000


@dataclass(frozen=True)
class HelmOptions:
    """How to render a chart. Empty ``release_name`` means the chart's name; empty
    ``namespace`` means ``default`` (the config fills both from the Application)."""

    release_name: str = ""
    namespace: str = ""
    values_files: tuple[str, ...] = ()
    """Paths relative to the chart directory, applied in order."""
    values: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Inline values, applied after the files."""
    include_crds: bool = True


def helm_binary() -> str | None:
    """The helm executable: ``$HELM_BIN`` if set, else ``helm`` on ``PATH``, else None."""
    configured = os.environ.get("HELM_BIN", "")
    if configured:
        return configured if Path(configured).is_file() and os.access(configured, os.X_OK) else None
    return shutil.which("helm")


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _chart_name(chart_dir: Path, root: Path) -> str:
    chart_file = chart_dir / "Chart.yaml"
    name = _relative(chart_file, root)
    documents = parse_documents(limits.read_text(chart_file, name), name)
    data = documents[0][0] if documents else None
    chart = data.get("name") if isinstance(data, dict) else None
    if not isinstance(chart, str) or not chart:
        raise BuildError("a Chart.yaml needs a name", file=name)
    return chart


def _values_file(chart_dir: Path, root: Path, value_file: str) -> Path:
    chart_file = _relative(chart_dir / "Chart.yaml", root)
    path = (chart_dir / value_file).resolve()
    if not path.is_relative_to(root):
        raise BuildError(f"values file {value_file!r} is outside the repository", file=chart_file)
    if not path.is_file():
        raise BuildError(f"values file {value_file!r} does not exist", file=chart_file)
    limits.check_file_size(path, _relative(path, root))
    return path


_RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
RELEASE_MAX = 53


def _check_arguments(release: str, namespace: str, chart_file: str) -> None:
    """The release name and namespace reach helm's command line: they must be what helm
    accepts (so never a flag), whoever wrote them."""
    if len(release) > RELEASE_MAX or not _RELEASE.fullmatch(release):
        raise BuildError(
            f"helm release name {release!r} is invalid: lowercase letters, digits, '-' and "
            f"'.', starting and ending with a letter or digit, at most {RELEASE_MAX} characters",
            file=chart_file,
        )
    if namespace and not is_dns_label(namespace):
        raise BuildError(f"helm namespace {namespace!r} is not a DNS label", file=chart_file)


def _command(
    helm: str, chart_dir: Path, release: str, options: HelmOptions, values: list[Path]
) -> list[str]:
    command = [helm, "template", "--namespace", options.namespace or "default", "--skip-tests"]
    if options.include_crds:
        command.append("--include-crds")
    for path in values:
        command += ["--values", str(path)]
    # Positionals after "--": nothing in them is ever read as a flag.
    return [*command, "--", release, str(chart_dir)]


def helm_env(home: Path) -> dict[str, str]:
    """helm's environment: clean (:func:`gitops.childenv.child_env`: none of the
    reconciler's secrets) with its config, cache and data in an empty directory (no
    repository credentials or plugins of the host)."""
    return child_env(
        {
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        },
        home=str(home),
    )


def _run(command: list[str], chart_file: str, env: dict[str, str]) -> str:
    budget = limits.current_budget()
    allowed = budget.remaining_bytes()
    try:
        done = limits.run_bounded(
            command,
            timeout=TIMEOUT_SECONDS,
            max_stdout=allowed,
            max_stderr=_MAX_STDERR + 1,
            env=env,
        )
    except subprocess.TimeoutExpired:
        error = BuildError(
            f"helm template took longer than {TIMEOUT_SECONDS:.0f}s", file=chart_file
        )
        error.retryable = True
        raise error from None
    except OSError as exc:
        raise BuildError(
            f"cannot run helm ({command[0]}): {exc.strerror}", file=chart_file
        ) from None
    if done.too_much:
        raise BuildError(
            f"helm template printed more than {allowed:,} bytes, what is left of the build's "
            f"limit of {limits.MAX_BUILD_BYTES:,} bytes ({limits.describe(limits.MAX_BUILD_BYTES)})",
            file=chart_file,
        )
    budget.charge_bytes(len(done.stdout), chart_file)
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        stderr = stderr or f"exit status {done.returncode}"
        if len(stderr) > _MAX_STDERR:
            stderr = stderr[:_MAX_STDERR] + " …"
        raise BuildError(f"helm template failed: {stderr}", file=chart_file)
    return limits.decode(done.stdout, chart_file)


def _source_file(source: str, chart_dir: Path, root: Path) -> str:
    """``mychart/templates/x.yaml`` (helm's Source) as a path relative to ``root``."""
    parts = PurePosixPath(source).parts
    inside = PurePosixPath(*parts[1:]) if len(parts) > 1 else PurePosixPath(source)
    return (PurePosixPath(_relative(chart_dir, root)) / inside).as_posix().removeprefix("./")


def parse_output(text: str, chart_dir: Path, root: Path) -> list[Manifest]:
    """The objects of ``helm template`` output, each with the template it came from."""
    chart_file = _relative(chart_dir / "Chart.yaml", root)
    segments: list[tuple[str, list[str]]] = []
    source = chart_file
    lines: list[str] = []
    for line in text.splitlines():
        if _SEPARATOR.match(line):
            segments.append((source, lines))
            lines = []
            continue
        found = line.removeprefix(_SOURCE).rstrip() if line.startswith(_SOURCE) else ""
        if found and not any(part.strip() for part in lines):
            source = _source_file(found, chart_dir, root)
        lines.append(line)
    segments.append((source, lines))
    manifests: list[Manifest] = []
    for file, body in segments:
        try:
            objects = load_text("\n".join(body), file)
        except BuildError as exc:
            where = f" (line {exc.line} of its rendered output)" if exc.line is not None else ""
            raise BuildError(
                f"helm rendered invalid objects{where}: {exc.detail}", file=file
            ) from None
        manifests.extend(Manifest(m.obj, Origin(file)) for m in objects)
    return manifests


def build_helm(root: Path, chart_dir: Path, options: HelmOptions = HelmOptions()) -> list[Manifest]:
    """Render the chart in ``chart_dir`` (inside ``root``, both resolved) with helm."""
    with limits.build_budget():
        return _build_helm(root, chart_dir, options)


def _build_helm(root: Path, chart_dir: Path, options: HelmOptions) -> list[Manifest]:
    chart_file = _relative(chart_dir / "Chart.yaml", root)
    helm = helm_binary()
    if helm is None:
        where = os.environ.get("HELM_BIN", "")
        hint = f" ($HELM_BIN={where} is not an executable file)" if where else ""
        raise BuildError(
            f"helm chart at {_relative(chart_dir, root) or '.'} needs the `helm` binary "
            f"({INSTALL_URL}); it is not installed{hint}",
            file=chart_file,
        )
    release = options.release_name or _chart_name(chart_dir, root)
    _check_arguments(release, options.namespace, chart_file)
    values = [_values_file(chart_dir, root, value_file) for value_file in options.values_files]
    with tempfile.TemporaryDirectory(prefix="gitops-helm-") as tmp:
        if options.values:
            inline = Path(tmp) / "inline-values.json"
            inline.write_text(json.dumps(dict(options.values)), encoding="utf-8")
            values.append(inline)
        command = _command(helm, chart_dir, release, options, values)
        output = _run(command, chart_file, helm_env(Path(tmp)))
    return parse_output(output, chart_dir, root)
