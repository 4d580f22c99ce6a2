"""Checks on built objects, before anything is sent to a cluster.

:func:`validate` runs inside :func:`gitops.build.build` on every build result: each
object must be something a cluster could accept (apiVersion, kind, a valid name and
namespace, string labels and annotations) and no object may be defined twice. Every
problem is collected and raised together as one :class:`~gitops.errors.BuildErrors`,
each naming the file and line the object was written at.

:func:`check_kinds` is the destination-aware half, called by the planner with the
destination's discovery: an object of a kind the cluster does not serve is an error,
unless a CustomResourceDefinition among the same objects defines it.

The name rules are the generic ones of Kubernetes' apimachinery (lowercase RFC 1123
subdomain for most kinds; a DNS label for Namespaces; an RFC 1035 label for Services;
a path segment for RBAC kinds, whose names may contain ``:`` and capitals). The
cluster still validates each kind fully at apply time; this step catches what can be
caught without one, with file and line. The config (:mod:`gitops.config`) reuses the
DNS helpers for Application names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from gitops.build import limits
from gitops.errors import BuildError, BuildErrors
from gitops.manifest import Manifest, ObjectKey, Origin
from kubemodel import validation as names

_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]+")
_RBAC_GROUP = "rbac.authorization.k8s.io"
_CRD_GROUP = "apiextensions.k8s.io"


def is_dns_label(value: str) -> bool:
    """Whether ``value`` is a lowercase RFC 1123 label (a Namespace name)."""
    return not names.is_dns1123_label(value)


def is_dns_subdomain(value: str) -> bool:
    """Whether ``value`` is a lowercase RFC 1123 subdomain (most object names)."""
    return not names.is_dns1123_subdomain(value)


def _name_problem(group: str, kind: str, name: str) -> str | None:
    """Why ``name`` is not a valid name for an object of this kind (None if it is), in
    the API server's words (kubemodel.validation), so the build refuses what it would."""
    if group == _RBAC_GROUP:
        problems = names.name_is_path_segment(name, False)
    elif group == "" and kind == "Namespace":
        problems = names.name_is_dns_label(name, False)
    elif group == "" and kind == "Service":
        problems = names.name_is_dns1035_label(name, False)
    else:
        problems = names.name_is_dns_subdomain(name, False)
    if not problems:
        return None
    return f"metadata.name {name!r} is invalid: {'; '.join(problems)}"


def _string_map_problem(meta: dict[str, Any], field: str) -> str | None:
    value = meta.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"metadata.{field} must be a mapping of strings, not {type(value).__name__}"
    for key, item in value.items():
        if not isinstance(key, str):
            return f"metadata.{field} key {key!r} must be a string"
        if not isinstance(item, str):
            shown = "null" if item is None else repr(item)
            return (
                f"metadata.{field}[{key!r}] must be a string, not {shown}: quote it in YAML "
                f'(e.g. {key}: "{"" if item is None else item}")'
            )
    return None


def object_problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one object on its own (empty when nothing is)."""
    problems: list[str] = []
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        problems.append("apiVersion is missing")
    elif _API_VERSION.fullmatch(api_version) is None:
        problems.append(f"apiVersion {api_version!r} is invalid: expected 'v1' or 'group/version'")
    if not isinstance(kind, str) or not kind:
        problems.append("kind is missing")
    meta = obj.get("metadata")
    if meta is None:
        problems.append("metadata.name is missing")
        return problems
    if not isinstance(meta, dict):
        problems.append(f"metadata must be a mapping, not {type(meta).__name__}")
        return problems
    name = meta.get("name")
    if name is None or name == "":
        if meta.get("generateName"):
            problems.append(
                "metadata.name is missing: generateName cannot be applied declaratively, give a name"
            )
        else:
            problems.append("metadata.name is missing")
    elif not isinstance(name, str):
        problems.append(f"metadata.name must be a string, not {type(name).__name__}")
    else:
        group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
        problem = _name_problem(group, kind if isinstance(kind, str) else "", name)
        if problem:
            problems.append(problem)
    namespace = meta.get("namespace")
    if namespace is not None and namespace != "":
        if not isinstance(namespace, str):
            problems.append(f"metadata.namespace must be a string, not {type(namespace).__name__}")
        elif wrong := names.is_dns1123_label(namespace):
            problems.append(f"metadata.namespace {namespace!r} is invalid: {'; '.join(wrong)}")
    for field in ("labels", "annotations"):
        problem = _string_map_problem(meta, field)
        if problem:
            problems.append(problem)
    return problems


def _error(message: str, origin: Origin) -> BuildError:
    return BuildError(message, file=origin.file, line=origin.line)


def validate(manifests: Sequence[Manifest]) -> None:
    """Raise :class:`BuildErrors` listing every invalid or duplicated object."""
    errors: list[BuildError] = []
    seen: dict[ObjectKey, Origin] = {}
    for manifest in manifests:
        problems = object_problems(manifest.obj)
        errors.extend(_error(problem, manifest.origin) for problem in problems)
        if problems:
            continue
        key = manifest.key
        first = seen.get(key)
        if first is not None:
            errors.append(_error(f"{key} is defined twice: first at {first}", manifest.origin))
        else:
            seen[key] = manifest.origin
    if errors:
        raise _errors(errors)


def _errors(errors: list[BuildError]) -> BuildErrors:
    """All the problems as one error, listing at most ``MAX_REPORTED_ERRORS`` of them."""
    shown = limits.MAX_REPORTED_ERRORS
    if len(errors) > shown:
        more = BuildError(f"and {len(errors) - shown:,} more problems")
        errors = [*errors[:shown], more]
    return BuildErrors(errors)


def _crd_versions(manifests: Sequence[Manifest]) -> dict[tuple[str, str], tuple[set[str], Origin]]:
    """(group, kind) -> (served versions, origin) of every CustomResourceDefinition."""
    defined: dict[tuple[str, str], tuple[set[str], Origin]] = {}
    for manifest in manifests:
        if manifest.key.group != _CRD_GROUP or manifest.kind != "CustomResourceDefinition":
            continue
        spec = manifest.obj.get("spec")
        if not isinstance(spec, dict):
            continue
        names = spec.get("names")
        group, kind = spec.get("group"), names.get("kind") if isinstance(names, dict) else None
        if not isinstance(group, str) or not isinstance(kind, str):
            continue
        versions: set[str] = set()
        for version in spec.get("versions") or []:
            if (
                isinstance(version, dict)
                and isinstance(version.get("name"), str)
                and version.get("served", True) is not False
            ):
                versions.add(version["name"])
        if isinstance(spec.get("version"), str):  # apiextensions.k8s.io/v1beta1
            versions.add(spec["version"])
        defined[(group, kind)] = (versions, manifest.origin)
    return defined


def check_kinds(manifests: Sequence[Manifest], known: Callable[[str, str], bool]) -> None:
    """Raise :class:`BuildErrors` for objects whose kind the destination does not serve.

    ``known(api_version, kind)`` answers from the destination's discovery. An object of
    an unknown kind is accepted when a CustomResourceDefinition among ``manifests``
    defines its group and kind and serves its version (it is applied first)."""
    defined = _crd_versions(manifests)
    errors: list[BuildError] = []
    for manifest in manifests:
        api_version, kind = manifest.api_version, manifest.kind
        if known(api_version, kind):
            continue
        group, _, version = api_version.rpartition("/")
        crd = defined.get((group, kind))
        if crd is None:
            errors.append(
                _error(
                    f"the destination cluster does not serve kind {kind} of apiVersion "
                    f"{api_version}, and no CustomResourceDefinition in this application defines it",
                    manifest.origin,
                )
            )
        elif version not in crd[0]:
            served = ", ".join(sorted(crd[0])) or "none"
            errors.append(
                _error(
                    f"kind {kind} of apiVersion {api_version}: the CustomResourceDefinition at "
                    f"{crd[1]} does not serve version {version!r} (it serves: {served})",
                    manifest.origin,
                )
            )
    if errors:
        raise _errors(errors)
