"""Building a kustomization directory: resources, components, generators, transformers.

Called by :func:`gitops.build.kustomize.build_kustomization`. :func:`build` follows
kustomize's ``KustTarget``: a kustomization accumulates its resources (files and
sub-kustomizations, each built on its own), then its components (each applied to what
has been accumulated so far), then runs its generators and its transformers in
kustomize's fixed order. The top level then adds generator hash suffixes, fixes name
references and sorts the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.build import limits
from gitops.build.documents import load_file
from gitops.build.kustomize import generators, patches, references, transformers
from gitops.build.kustomize.kustomization import (
    Kustomization,
    check_keys,
    load_kustomization,
    relative,
)
from gitops.build.kustomize.paths import resolve_file, resolve_path
from gitops.build.kustomize.resources import (
    DEFAULT_ORDER_FIRST,
    DEFAULT_ORDER_LAST,
    ResMap,
    Resource,
    legacy_sort,
)
from gitops.errors import BuildError

Transformer = Callable[[Kustomization, Path, ResMap], None]


def _no_root(step: Callable[[Kustomization, ResMap], None]) -> Transformer:
    return lambda k, _root, resmap: step(k, resmap)


TRANSFORMERS: tuple[Transformer, ...] = (
    patches.apply_patches_strategic_merge,
    patches.apply_patches,
    _no_root(transformers.set_namespace),
    _no_root(transformers.add_prefix_suffix),
    _no_root(transformers.add_labels),
    _no_root(transformers.add_annotations),
    patches.apply_patches_json6902,
    _no_root(transformers.set_replicas),
    _no_root(transformers.set_images),
)
"""kustomize's built-in transformers, in the order it runs them."""


@dataclass
class _Build:
    root: Path
    stack: list[Path] = field(default_factory=list)

    def accumulate(
        self,
        directory: Path,
        resmap: ResMap | None,
        *,
        component: bool,
        via: tuple[str, int | None] | None,
    ) -> tuple[Kustomization, ResMap]:
        directory = directory.resolve()
        file, line = via or (None, None)
        if directory in self.stack:
            chain = " -> ".join(relative(p, self.root) or "." for p in [*self.stack, directory])
            raise BuildError(f"cycle detected in kustomizations: {chain}", file=file, line=line)
        if len(self.stack) >= limits.MAX_KUSTOMIZE_DEPTH:
            names = [relative(p, self.root) or "." for p in [*self.stack, directory]]
            chain = " -> ".join([*names[:2], "...", *names[-2:]])
            raise BuildError(
                f"kustomizations nested more than {limits.MAX_KUSTOMIZE_DEPTH} deep: {chain}",
                file=file,
                line=line,
            )
        limits.current_budget().charge_kustomization(
            file or relative(directory, self.root) or ".", line
        )
        try:
            k = load_kustomization(directory, self.root)
        except BuildError as exc:
            if via is None or not exc.detail.startswith("no kustomization"):
                raise
            raise BuildError(f"resources: {exc.detail}", file=via[0], line=via[1]) from None
        if component and k.kind != "Component":
            raise k.error("kind", "a directory listed in components must be a Component")
        if not component and k.kind == "Component":
            file, line = via or (k.file, None)
            raise BuildError(
                f"'{relative(directory, self.root)}' is a Component; list it under components, not resources",
                file=file,
                line=line,
            )
        self.stack.append(directory)
        try:
            resmap = resmap if resmap is not None else ResMap()
            self.resources(k, resmap)
            for entry in k.strings("components"):
                path = resolve_path(k, entry, self.root, lambda m: k.error("components", m))
                if not path.is_dir():
                    raise k.error("components", f"{entry!r} is not a directory")
                _, resmap = self.accumulate(
                    path, resmap, component=True, via=(k.file, k.line("components"))
                )
            generators.run_generators(k, self.root, resmap)
            for transformer in TRANSFORMERS:
                transformer(k, self.root, resmap)
        finally:
            self.stack.pop()
        return k, resmap

    def resources(self, k: Kustomization, resmap: ResMap) -> None:
        pending: list[tuple[Resource, int | None]] = []
        for field_name in ("resources", "bases"):
            line = k.line(field_name)
            for entry in k.strings(field_name):

                def error(message: str, field_name: str = field_name) -> BuildError:
                    return k.error(field_name, message)

                path = resolve_path(k, entry, self.root, error)
                if path.is_dir():
                    _, sub = self.accumulate(path, None, component=False, via=(k.file, line))
                    pending.extend((resource, line) for resource in sub.resources)
                    continue
                path = resolve_file(k, entry, self.root, error)
                for manifest in load_file(path, self.root):
                    resource = Resource(manifest.obj, manifest.origin)
                    if not resource.kind or not isinstance(manifest.obj.get("metadata"), dict):
                        raise BuildError(
                            "an object needs kind and metadata",
                            file=manifest.origin.file,
                            line=manifest.origin.line,
                        )
                    pending.append((resource, line))
        resmap.append_all(pending, file=k.file)


def _sort(k: Kustomization, resources: list[Resource]) -> list[Resource]:
    options = k.mapping("sortOptions")
    if not options:
        return legacy_sort(resources)

    def error(message: str) -> BuildError:
        return k.error("sortOptions", message)

    check_keys(options, {"order", "legacySortOptions"}, error)
    order = options.get("order")
    if order == "fifo":
        if options.get("legacySortOptions"):
            raise error("legacySortOptions is only allowed with order: legacy")
        return resources
    if order != "legacy":
        raise error(f"order must be legacy or fifo, not {order!r}")
    legacy = options.get("legacySortOptions") or {}
    if not isinstance(legacy, dict):
        raise error("legacySortOptions must be a mapping")
    check_keys(legacy, {"orderFirst", "orderLast"}, error)
    for name in ("orderFirst", "orderLast"):
        if not isinstance(legacy.get(name) or [], list):
            raise error(f"legacySortOptions.{name} must be a list of kinds")
    first = tuple(str(kind) for kind in legacy.get("orderFirst") or DEFAULT_ORDER_FIRST)
    last = tuple(str(kind) for kind in legacy.get("orderLast") or DEFAULT_ORDER_LAST)
    return legacy_sort(resources, first, last)


def build(root: Path, directory: Path) -> list[Resource]:
    """The final, ordered resources of the kustomization in ``directory``."""
    root = root.resolve()
    with limits.build_budget():
        k, resmap = _Build(root).accumulate(directory, None, component=False, via=None)
        generators.add_hash_suffixes(resmap)
        references.fix_references(resmap, k.file)
        return _sort(k, list(resmap.resources))
