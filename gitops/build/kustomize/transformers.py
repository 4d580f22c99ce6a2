"""The built-in transformers of a kustomization: namespace, name prefix/suffix, labels,
annotations, images and replicas.

Called by :mod:`.builder` in kustomize's order (patches first, then namespace, prefix,
suffix, labels, annotations, JSON patches, replicas, images). Each function takes the
kustomization (for error locations) and the accumulated resources and changes them in
place, recording previous ids where names or namespaces change so references can be
fixed up at the end of the build. Each charges the objects it visits, times the entries
it applies, to the build's budget (:data:`gitops.build.limits.MAX_OBJECT_VISITS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops.build import limits
from gitops.build.kustomize.fieldspecs import (
    COMMON_ANNOTATIONS,
    COMMON_LABELS,
    LABELS_WITH_TEMPLATES,
    METADATA_LABELS,
    REPLICAS,
    FieldSpec,
    Leaf,
    apply_specs,
)
from gitops.build.kustomize.kustomization import Kustomization, check_keys, string_map
from gitops.build.kustomize.resources import ResMap, is_cluster_scoped
from gitops.errors import BuildError

_NO_RENAME = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
}


def _charge(k: Kustomization, field: str, resmap: ResMap, entries: int = 1) -> None:
    """``entries`` applied to every accumulated object: that many visits each."""
    limits.current_budget().charge_visits(len(resmap) * entries, k.file, k.line(field))


# --- namespace ------------------------------------------------------------------------
def set_namespace(k: Kustomization, resmap: ResMap) -> None:
    namespace = k.string("namespace")
    if not namespace:
        return
    _charge(k, "namespace", resmap)
    for resource in resmap:
        kind = resource.kind
        if kind == "Namespace":
            resource.set_name(namespace)
        elif not is_cluster_scoped(kind):
            resource.set_namespace(namespace)
        elif kind == "APIService":
            service = (resource.obj.get("spec") or {}).get("service")
            if isinstance(service, dict):
                service["namespace"] = namespace


# --- name prefix / suffix -------------------------------------------------------------
def add_prefix_suffix(k: Kustomization, resmap: ResMap) -> None:
    for field in ("namePrefix", "nameSuffix"):
        affix = k.string(field)
        if not affix:
            continue
        _charge(k, field, resmap)
        for resource in resmap:
            rid = resource.cur_id()
            if rid.kind == "Namespace" or (rid.group, rid.kind) in _NO_RENAME:
                continue
            name = resource.name
            resource.set_name(affix + name if field == "namePrefix" else name + affix)


# --- labels and annotations -----------------------------------------------------------
def _map_leaf(pairs: dict[str, str], create: bool) -> Leaf:
    def leaf(parent: dict[str, Any], key: str) -> None:
        current = parent.get(key)
        if current is None:
            if not create:
                return
            current = {}
            parent[key] = current
        if isinstance(current, dict):
            current.update(pairs)

    return leaf


def _apply_pairs(resmap: ResMap, pairs: dict[str, str], specs: list[FieldSpec]) -> None:
    if not pairs:
        return
    for resource in resmap:
        apply_specs(resource.obj, specs, lambda spec: _map_leaf(pairs, spec.create))


def _field_specs(value: Any, error: Callable[[str], BuildError]) -> list[FieldSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise error("fields must be a list")
    specs: list[FieldSpec] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise error("every fields entry needs a path")
        if item["path"].count("/") >= limits.MAX_NESTING_DEPTH:
            raise error(f"a fields path may have at most {limits.MAX_NESTING_DEPTH} segments")
        check_keys(item, {"path", "group", "version", "kind", "create"}, error)
        specs.append(
            FieldSpec(
                item["path"],
                str(item.get("kind") or ""),
                str(item["group"]) if "group" in item else None,
                str(item.get("version") or ""),
                bool(item.get("create", False)),
            )
        )
    return specs


def add_labels(k: Kustomization, resmap: ResMap) -> None:
    common = k.string_map("commonLabels")
    if common:
        _charge(k, "commonLabels", resmap, len(common))
    _apply_pairs(resmap, common, COMMON_LABELS)
    for index, entry in enumerate(k.mappings("labels")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("labels", f"[{index}]: {message}")

        check_keys(entry, {"pairs", "includeSelectors", "includeTemplates", "fields"}, error)
        pairs = string_map(entry.get("pairs"), error)
        if entry.get("includeSelectors"):
            specs = list(COMMON_LABELS)
        elif entry.get("includeTemplates"):
            specs = list(LABELS_WITH_TEMPLATES)
        else:
            specs = [METADATA_LABELS]
        specs += _field_specs(entry.get("fields"), error)
        if pairs:
            _charge(k, "labels", resmap, len(pairs) + len(specs))
        _apply_pairs(resmap, pairs, specs)


def add_annotations(k: Kustomization, resmap: ResMap) -> None:
    common = k.string_map("commonAnnotations")
    if common:
        _charge(k, "commonAnnotations", resmap, len(common))
    _apply_pairs(resmap, common, COMMON_ANNOTATIONS)


# --- replicas -------------------------------------------------------------------------
def set_replicas(k: Kustomization, resmap: ResMap) -> None:
    for index, entry in enumerate(k.mappings("replicas")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("replicas", f"[{index}]: {message}")

        check_keys(entry, {"name", "count"}, error)
        name, count = entry.get("name"), entry.get("count")
        if not isinstance(name, str) or not name:
            raise error("name is required")
        if not isinstance(count, int) or isinstance(count, bool):
            raise error("count must be an integer")
        _charge(k, "replicas", resmap)
        found = False
        for resource in resmap:
            if not any(i.name == name for i in resource.all_ids()):
                continue
            for spec in REPLICAS:
                if spec.selects(resource.cur_id()):
                    resource.obj.setdefault("spec", {})
                    if isinstance(resource.obj["spec"], dict):
                        resource.obj["spec"]["replicas"] = count
                        found = True
        if not found:
            raise error(
                f"resource with name {name} does not match a config with the following GVK "
                "[Deployment ReplicationController ReplicaSet StatefulSet]"
            )


# --- images ---------------------------------------------------------------------------
def split_image(image: str) -> tuple[str, str, str]:
    """Name, tag and digest of an image reference (a registry port is not a tag)."""
    slash = image.find("/")
    offset = slash if slash > 0 else 0
    search = image[offset:]
    at, colon = search.find("@"), search.find(":")
    if at < 0 and colon < 0:
        return image, "", ""
    if at >= 0 and (colon < 0 or at < colon):
        return image[: offset + at], "", image[offset + at + 1 :]
    if at >= 0:
        return (
            image[: offset + colon],
            image[offset + colon + 1 : offset + at],
            image[offset + at + 1 :],
        )
    return image[: offset + colon], image[offset + colon + 1 :], ""


def _new_image(image: str, entry: dict[str, str]) -> str:
    name, tag, digest = split_image(image)
    name = entry.get("newName") or name
    new_tag, new_digest = entry.get("newTag", ""), entry.get("digest", "")
    if new_tag and new_digest:
        tag, digest = new_tag, new_digest
    elif new_tag:
        tag, digest = new_tag, ""
    elif new_digest:
        tag, digest = "", new_digest
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _update_containers(node: Any, entries: list[dict[str, str]]) -> None:
    if isinstance(node, list):
        for item in node:
            _update_containers(item, entries)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    for entry in entries:
                        if split_image(container["image"])[0] == entry["name"]:
                            container["image"] = _new_image(container["image"], entry)
                            break
        _update_containers(value, entries)


def set_images(k: Kustomization, resmap: ResMap) -> None:
    entries: list[dict[str, str]] = []
    for index, entry in enumerate(k.mappings("images")):

        def error(message: str, index: int = index) -> BuildError:
            return k.error("images", f"[{index}]: {message}")

        check_keys(entry, {"name", "newName", "newTag", "digest"}, error)
        checked = string_map(entry, error)
        if not checked.get("name"):
            raise error("name is required")
        entries.append(checked)
    if not entries:
        return
    _charge(k, "images", resmap, len(entries))
    for resource in resmap:
        for entry in entries:
            _update_containers(resource.obj, [entry])


__all__ = [
    "add_annotations",
    "add_labels",
    "add_prefix_suffix",
    "set_images",
    "set_namespace",
    "set_replicas",
    "split_image",
]
