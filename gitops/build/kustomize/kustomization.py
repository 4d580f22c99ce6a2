"""Finding, reading and validating one kustomization file.

Called by :mod:`.builder` for every directory of a build. :func:`load_kustomization`
returns a :class:`Kustomization` wrapping the parsed file with typed accessors; every
accessor raises :class:`~gitops.errors.BuildError` naming the file, the field and its
line. Fields kustomize has but this implementation does not (helm charts, replacements,
vars, plugins...) and fields kustomize does not know are refused, never ignored.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.build import limits
from gitops.build.documents import parse_documents
from gitops.errors import BuildError

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "resources",
        "bases",
        "components",
        "namespace",
        "namePrefix",
        "nameSuffix",
        "commonLabels",
        "labels",
        "commonAnnotations",
        "images",
        "replicas",
        "patches",
        "patchesStrategicMerge",
        "patchesJson6902",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "sortOptions",
    }
)
UNSUPPORTED_FIELDS = frozenset(
    {
        "replacements",
        "vars",
        "helmCharts",
        "helmGlobals",
        "helmChartInflationGenerator",
        "openapi",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
        "buildMetadata",
        "imageTags",
    }
)
_API_VERSIONS = {
    "Kustomization": ("kustomize.config.k8s.io/v1beta1",),
    "Component": ("kustomize.config.k8s.io/v1alpha1",),
}


def find_kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of ``directory`` (None when there is none)."""
    found = [directory / name for name in KUSTOMIZATION_FILES if (directory / name).is_file()]
    return found[0] if found else None


def relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass
class Kustomization:
    """A parsed kustomization file: its directory, name (relative to root) and fields."""

    directory: Path
    file: str
    data: dict[str, Any]
    text: str
    _lines: dict[str, int | None] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def kind(self) -> str:
        return str(self.data.get("kind") or "Kustomization")

    def line(self, field: str) -> int | None:
        """The line of a top-level field (None when absent); searched once per field, as
        every patch and error asks again."""
        if field not in self._lines:
            match = re.search(rf"^{re.escape(field)}\s*:", self.text, re.M)
            self._lines[field] = self.text.count("\n", 0, match.start()) + 1 if match else None
        return self._lines[field]

    def error(self, field: str, message: str) -> BuildError:
        return BuildError(f"{field}: {message}", file=self.file, line=self.line(field))

    # --- typed accessors ------------------------------------------------------------
    def string(self, field: str) -> str:
        value = self.data.get(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, not {type(value).__name__}")
        return value

    def strings(self, field: str) -> list[str]:
        value = self.data.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(field, "must be a list of strings")
        return list(value)

    def string_map(self, field: str) -> dict[str, str]:
        return string_map(self.data.get(field), lambda m: self.error(field, m))

    def mappings(self, field: str) -> list[dict[str, Any]]:
        value = self.data.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(field, "must be a list of mappings")
        return list(value)

    def mapping(self, field: str) -> dict[str, Any]:
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(field, "must be a mapping")
        return value


def string_map(value: Any, error: Any) -> dict[str, str]:
    """A map of strings to strings; ``error(message)`` makes the exception."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error("must be a mapping of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise error(f"{key!s}: keys and values must be strings (quote {item!r})")
        result[key] = item
    return result


def check_keys(entry: dict[str, Any], allowed: set[str], error: Any) -> None:
    for key in entry:
        if key not in allowed:
            raise error(f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")


def load_kustomization(directory: Path, root: Path) -> Kustomization:
    """Read and validate the kustomization file of ``directory``."""
    path = find_kustomization_file(directory)
    if path is None:
        raise BuildError(
            "no kustomization file (kustomization.yaml, kustomization.yml or Kustomization) in "
            f"'{relative(directory, root) or '.'}'",
            file=relative(directory, root),
        )
    present = [name for name in KUSTOMIZATION_FILES if (directory / name).is_file()]
    name = relative(path, root)
    if len(present) > 1:
        raise BuildError(f"found multiple kustomization files: {', '.join(present)}", file=name)
    text = limits.read_text(path, name)
    documents = parse_documents(text, name)
    if len(documents) > 1:
        raise BuildError(
            "a kustomization file must hold one document", file=name, line=documents[1][1]
        )
    data = documents[0][0] if documents else {}
    if not isinstance(data, dict):
        raise BuildError("a kustomization must be a mapping", file=name, line=1)
    result = Kustomization(directory, name, data, text)
    _validate(result)
    return result


def _validate(k: Kustomization) -> None:
    for field in k.data:
        if field in UNSUPPORTED_FIELDS:
            raise k.error(field, f"kustomize field '{field}' is not supported")
        if field not in SUPPORTED_FIELDS:
            raise k.error(str(field), f"unknown kustomize field '{field}'")
    kind = k.kind
    if kind not in _API_VERSIONS:
        raise k.error("kind", f"must be Kustomization or Component, not {kind!r}")
    api_version = k.string("apiVersion")
    if api_version and api_version not in _API_VERSIONS[kind]:
        raise k.error(
            "apiVersion", f"{api_version!r} is not a {kind} apiVersion ({_API_VERSIONS[kind][0]})"
        )
