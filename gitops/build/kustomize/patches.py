"""patches, patchesStrategicMerge and patchesJson6902 of a kustomization.

Called by :mod:`.builder`. Strategic merge patches use kustomize's client-side
merge (:mod:`.merge`) with the built-in schema of the target's kind; kinds the schema
does not know (custom resources) merge maps and replace lists, as kustomize does. ``$patch: delete`` on a whole object removes the resource.
JSON 6902 patches use :func:`kubemodel.patch.json_patch` (with the API server's 3 MiB
bound on what ``copy`` operations add, and the patched object's nesting checked).
Targets are selected like kustomize's ``Selector``: anchored regular expressions on
group, version, kind, name and namespace, matched against the current and the original
id, plus label and annotation selectors. The expressions run on RE2
(:func:`gitops.build.limits.compile_target_regex`), the engine behind Go's ``regexp``
that kustomize uses: the same syntax (no lookaround, no backreferences) and time linear
in the input, so a target like ``(a+)+`` cannot stall a build. A pattern RE2 refuses is
an error naming the field.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.build import limits
from gitops.build.documents import parse_documents
from gitops.build.kustomize.kustomization import Kustomization, check_keys, relative
from gitops.build.kustomize.merge import merge
from gitops.build.kustomize.paths import resolve_file
from gitops.build.kustomize.resources import ResId, ResMap, Resource
from gitops.errors import BuildError
from kubemodel.errors import ApiError
from kubemodel.patch import json_patch
from kubemodel.schema import builtin

ErrorFactory = Callable[[str], BuildError]
_SELECTOR_FIELDS = {
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
}


# --- selectors ------------------------------------------------------------------------
@dataclass(frozen=True)
class Selector:
    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""

    def selects(self, resource: Resource) -> bool:
        current = resource.cur_id()
        for pattern, value in (
            (self.group, current.group),
            (self.version, current.version),
            (self.kind, current.kind),
        ):
            if pattern and not _full(pattern, value):
                return False
        original = resource.previous[0] if resource.previous else current
        if self.namespace and not (
            _full(self.namespace, original.effective_namespace)
            or _full(self.namespace, current.effective_namespace)
        ):
            return False
        if self.name and not (_full(self.name, original.name) or _full(self.name, current.name)):
            return False
        meta = resource.metadata
        return match_labels(self.label_selector, meta.get("labels")) and match_labels(
            self.annotation_selector, meta.get("annotations")
        )


_REGEX_SYNTAX = frozenset("\\.^$|?*+()[]{}")


@functools.lru_cache(maxsize=512)
def _matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a value matches ``pattern`` anchored, with RE2; a pattern without regular
    expression syntax (``Deployment``, ``web``: most targets) is a plain comparison."""
    if _REGEX_SYNTAX.isdisjoint(pattern):
        return pattern.__eq__
    regex = limits.compile_target_regex(pattern)
    return lambda value: regex.search(value) is not None


def _full(pattern: str, value: str) -> bool:
    """Whether ``value`` matches ``pattern`` (compiled by :func:`parse_selector` first)."""
    return _matcher(pattern)(value)


_TERM = limits.compile_regex(
    r"\s*(?:(?P<key>[^\s,=!()]+)\s*(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[^\s,()]*)"
    r"|(?P<not>!)\s*(?P<absent>[^\s,=!()]+)|(?P<exists>[^\s,=!()]+))\s*(?:,|$)"
)
"""One term of a label selector; RE2, so a long run of spaces cannot make it quadratic."""


def match_labels(selector: str, labels: Any) -> bool:
    """A Kubernetes label selector string against a labels map."""
    if not selector:
        return True
    labels = labels if isinstance(labels, dict) else {}
    position = 0
    while position < len(selector):
        match = _TERM.match(selector, position)
        if not match or match.end() == position:
            raise ValueError(f"invalid selector {selector!r}")
        position = match.end()
        if match.group("exists"):
            if match.group("exists") not in labels:
                return False
            continue
        if match.group("absent"):
            if match.group("absent") in labels:
                return False
            continue
        key, op, value = match.group("key"), match.group("op").strip(), match.group("value")
        current = labels.get(key)
        if op in ("=", "=="):
            ok = current == value
        elif op == "!=":
            ok = current != value
        else:
            values = {v.strip() for v in value.strip("()").split(",")}
            ok = current in values if op == "in" else current not in values
        if not ok:
            return False
    return True


def parse_selector(value: Any, error: ErrorFactory) -> Selector:
    if not isinstance(value, dict):
        raise error("target must be a mapping")
    check_keys(value, _SELECTOR_FIELDS, error)
    for key, item in value.items():
        if not isinstance(item, str):
            raise error(f"target.{key} must be a string")
        if item and key not in ("labelSelector", "annotationSelector"):
            try:
                _matcher(item)
            except limits.RegexError as exc:
                raise error(f"target.{key}: invalid regular expression {item!r}: {exc}") from None
    selector = Selector(
        value.get("group", ""),
        value.get("version", ""),
        value.get("kind", ""),
        value.get("name", ""),
        value.get("namespace", ""),
        value.get("labelSelector", ""),
        value.get("annotationSelector", ""),
    )
    for text in (selector.label_selector, selector.annotation_selector):
        try:
            match_labels(text, {})
        except ValueError as exc:
            raise error(str(exc)) from None
    return selector


# --- applying -------------------------------------------------------------------------
def _api_message(exc: ApiError) -> str:
    cause = exc.__cause__
    return f"{exc}: {cause}" if cause else str(exc)


def _strategic(resource: Resource, patch: dict[str, Any], error: ErrorFactory) -> dict[str, Any]:
    rid = resource.cur_id()
    schemas = builtin()
    root = schemas.root(rid.group, rid.version, rid.kind) or {}
    result = merge(schemas, root, resource.obj, patch)
    if not isinstance(result, dict):
        raise error(f"strategic merge patch of {rid} did not produce an object")
    return result


def apply_strategic(
    resmap: ResMap,
    resource: Resource,
    patch: dict[str, Any],
    error: ErrorFactory,
    allow_name_change: bool = False,
) -> None:
    if patch.get("$patch") == "delete":
        resmap.remove(resource)
        return
    body = dict(patch)
    meta = dict(body.get("metadata") or {})
    if not allow_name_change:
        meta.pop("name", None)
    meta.pop("namespace", None)
    body["metadata"] = meta
    body.pop("apiVersion", None)
    body.pop("kind", None)
    current = resource.cur_id()
    result = _strategic(resource, body, error)
    if ResId.of(result).name != current.name:
        resource.remember_id()
    resource.obj = result


def apply_json6902(resource: Resource, operations: list[Any], error: ErrorFactory) -> None:
    current = resource.cur_id()
    too_deep = (
        f"JSON patch of {current} leaves it nested deeper than {limits.MAX_NESTING_DEPTH} levels"
    )
    try:
        result = json_patch(
            resource.obj, operations, max_copy_bytes=limits.MAX_JSON_PATCH_COPY_BYTES
        )
    except ApiError as exc:
        raise error(f"JSON patch of {current} failed: {_api_message(exc)}") from None
    except RecursionError:  # copying a value made deep by earlier operations of the patch
        raise error(too_deep) from None
    if limits.depth_of(result, limits.MAX_NESTING_DEPTH) > limits.MAX_NESTING_DEPTH:
        raise error(too_deep)
    if not isinstance(result.get("metadata"), dict):
        raise error(f"JSON patch of {current} leaves its metadata not a mapping")
    if ResId.of(result) != current:
        resource.remember_id()
    resource.obj = result


def _documents(text: str, name: str, line_offset: int | None) -> list[tuple[Any, int]]:
    try:
        return parse_documents(text, name)
    except BuildError as exc:
        raise BuildError(
            exc.detail, file=exc.file, line=exc.line if line_offset is None else line_offset
        ) from None


def _patch_documents(
    k: Kustomization, entry: dict[str, Any], root: Path, error: ErrorFactory
) -> tuple[list[Any], str]:
    """The patch's documents and a label (file name or 'inline') for messages."""
    has_path, has_patch = "path" in entry, "patch" in entry
    if has_path == has_patch:
        raise error("exactly one of path and patch is required")
    if has_path:
        if not isinstance(entry["path"], str):
            raise error("path must be a string")
        path = resolve_file(k, entry["path"], root, error)
        name = relative(path, root)
        text = limits.read_text(path, name)
        return [d for d, _ in _documents(text, name, None)], name
    if not isinstance(entry["patch"], str):
        raise error("patch must be a string")
    return [d for d, _ in _documents(entry["patch"], k.file, k.line("patches"))], "inline patch"


def _is_json_patch(documents: list[Any]) -> bool:
    return len(documents) == 1 and isinstance(documents[0], list)


def _smp_target(resmap: ResMap, patch: dict[str, Any], error: ErrorFactory) -> Resource:
    wanted = ResId.of(patch)
    matches = resmap.matching_any_id(wanted)
    if len(matches) != 1:
        found = "no resource matches" if not matches else "more than one resource matches"
        raise error(f"{found} strategic merge patch {wanted}")
    return matches[0]


def _apply_smp_documents(
    resmap: ResMap,
    documents: list[Any],
    targets: list[Resource] | None,
    error: ErrorFactory,
    allow_name_change: bool,
) -> None:
    for document in documents:
        if not isinstance(document, dict):
            raise error("a strategic merge patch must be a mapping")
        if not isinstance(document.get("metadata") or {}, dict):
            raise error("the metadata of a strategic merge patch must be a mapping")
        if targets is None:
            if not document.get("kind") or not (document.get("metadata") or {}).get("name"):
                raise error("a strategic merge patch without target needs kind and metadata.name")
            apply_strategic(
                resmap, _smp_target(resmap, document, error), document, error, allow_name_change
            )
        else:
            present = {id(r) for r in resmap.resources}  # a prior document may delete
            alive = [r for r in targets if id(r) in present]
            if document.get("$patch") == "delete":
                doomed = {id(r) for r in alive}
                resmap.resources = [r for r in resmap.resources if id(r) not in doomed]
                continue
            for resource in alive:
                apply_strategic(resmap, resource, document, error, allow_name_change)


def _select(k: Kustomization, field: str, selector: Selector, resmap: ResMap) -> list[Resource]:
    """The resources ``selector`` picks, charged to the build's budget."""
    limits.current_budget().charge_visits(len(resmap), k.file, k.line(field))
    return [r for r in resmap if selector.selects(r)]


def _charge_by_id(k: Kustomization, field: str, documents: list[Any], resmap: ResMap) -> None:
    """Strategic merge patches without a target look every object up by id."""
    limits.current_budget().charge_visits(len(documents) * len(resmap), k.file, k.line(field))


def apply_patches(k: Kustomization, root: Path, resmap: ResMap) -> None:
    """The ``patches`` field."""
    for index, entry in enumerate(k.mappings("patches")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("patches", f"[{index}]: {message}")

        check_keys(entry, {"path", "patch", "target", "options"}, error)
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise error("options must be a mapping")
        check_keys(options, {"allowNameChange", "allowKindChange"}, error)
        documents, _ = _patch_documents(k, entry, root, error)
        targets = None
        if entry.get("target") is not None:
            selector = parse_selector(entry["target"], error)
            targets = _select(k, "patches", selector, resmap)
        elif not _is_json_patch(documents):
            _charge_by_id(k, "patches", documents, resmap)
        if _is_json_patch(documents):
            if targets is None:
                raise error("a JSON 6902 patch needs a target")
            for resource in targets:
                apply_json6902(resource, documents[0], error)
            continue
        _apply_smp_documents(
            resmap, documents, targets, error, bool(options.get("allowNameChange"))
        )


def apply_patches_strategic_merge(k: Kustomization, root: Path, resmap: ResMap) -> None:
    """The deprecated ``patchesStrategicMerge`` field: file paths or inline patches."""
    for index, entry in enumerate(k.strings("patchesStrategicMerge")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("patchesStrategicMerge", f"[{index}]: {message}")

        if "\n" in entry or entry.lstrip().startswith("{"):
            documents = [d for d, _ in _documents(entry, k.file, k.line("patchesStrategicMerge"))]
        else:
            path = resolve_file(k, entry, root, error)
            name = relative(path, root)
            documents = [d for d, _ in _documents(limits.read_text(path, name), name, None)]
        _charge_by_id(k, "patchesStrategicMerge", documents, resmap)
        _apply_smp_documents(resmap, documents, None, error, False)


def apply_patches_json6902(k: Kustomization, root: Path, resmap: ResMap) -> None:
    """The deprecated ``patchesJson6902`` field."""
    for index, entry in enumerate(k.mappings("patchesJson6902")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("patchesJson6902", f"[{index}]: {message}")

        check_keys(entry, {"path", "patch", "target"}, error)
        if entry.get("target") is None:
            raise error("target is required")
        selector = parse_selector(entry["target"], error)
        documents, _ = _patch_documents(k, entry, root, error)
        if not _is_json_patch(documents):
            raise error("not a JSON 6902 patch (a list of operations)")
        for resource in _select(k, "patchesJson6902", selector, resmap):
            apply_json6902(resource, documents[0], error)
