"""configMapGenerator and secretGenerator, and kustomize's content-hash name suffix.

Called by :mod:`.builder`: :func:`run_generators` makes the ConfigMaps and Secrets of one
kustomization and merges them into the accumulated resources (``behavior`` create, merge
or replace); :func:`add_hash_suffixes` runs once at the end of the top-level build and
appends the hash to every generated name that still needs one. The hash is the one
kustomize computes: SHA-256 over the compact, key-sorted JSON of kind, type, data and
binaryData (with an empty name), first ten hex digits with 0,1,3,a,e replaced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.build import limits
from gitops.build.kustomize.kustomization import Kustomization, check_keys, relative, string_map
from gitops.build.kustomize.paths import resolve_file
from gitops.build.kustomize.resources import ResId, ResMap, Resource
from gitops.errors import BuildError
from gitops.manifest import Origin

_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_GENERATOR_FIELDS = {"name", "namespace", "behavior", "files", "literals", "envs", "env", "options"}
_OPTION_FIELDS = {"labels", "annotations", "disableNameSuffixHash", "immutable"}


@dataclass
class Options:
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    disable_hash: bool = False
    immutable: bool = False


def _options(value: Any, error: Any) -> Options:
    if value is None:
        return Options()
    if not isinstance(value, dict):
        raise error("options must be a mapping")
    check_keys(value, _OPTION_FIELDS, error)
    for flag in ("disableNameSuffixHash", "immutable"):
        if not isinstance(value.get(flag, False), bool):
            raise error(f"{flag} must be true or false")
    return Options(
        string_map(value.get("labels"), error),
        string_map(value.get("annotations"), error),
        bool(value.get("disableNameSuffixHash", False)),
        bool(value.get("immutable", False)),
    )


def _merge_options(local: Options, global_: Options) -> Options:
    return Options(
        {**global_.labels, **local.labels},
        {**global_.annotations, **local.annotations},
        local.disable_hash or global_.disable_hash,
        local.immutable or global_.immutable,
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _add(data: dict[str, bytes], key: str, value: bytes, error: Any) -> None:
    if not _KEY.match(key):
        raise error(
            f"{key!r} is not a valid key name: a valid key must consist of alphanumeric characters, '-', '_' or '.'"
        )
    if key in data:
        raise error(f"key {key!r} already exists")
    data[key] = value


def _env_file(path: Path, name: str, data: dict[str, bytes], error: Any) -> None:
    text = limits.read_bytes(path, name)
    for number, raw in enumerate(text.split(b"\n")):
        line = raw.removeprefix(b"\xef\xbb\xbf") if number == 0 else raw
        line = line.lstrip()
        if not line or line.startswith(b"#"):
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{name}:{number + 1}: invalid UTF-8") from None
        key, sep, value = decoded.partition("=")
        if not _ENV_NAME.match(key):
            raise error(f"{name}:{number + 1}: {key!r} is not a valid environment variable name")
        # A line without "=" is an empty value, as kubectl kustomize v5.5+ makes it: never
        # the reconciler's own environment variable of that name.
        _add(data, key, value.encode() if sep else b"", error)


def _collect(k: Kustomization, entry: dict[str, Any], root: Path, error: Any) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    literals = entry.get("literals") or []
    files = entry.get("files") or []
    envs = entry.get("envs") or []
    if not isinstance(envs, list):
        raise error("envs must be a list of strings")
    envs = list(envs)
    if entry.get("env"):
        envs.append(entry["env"])
    for label, items in (("literals", literals), ("files", files), ("envs", envs)):
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise error(f"{label} must be a list of strings")
    for env in envs:
        path = resolve_file(k, env, root, error)
        _env_file(path, relative(path, root), data, error)
    for literal in literals:
        key, sep, value = literal.partition("=")
        if not sep:
            raise error(f"literal {literal!r} must be key=value")
        _add(data, key, _unquote(value).encode(), error)
    for spec in files:
        key, sep, file = spec.partition("=")
        if not sep:
            key, file = Path(spec).name, spec
        if not key or not file:
            raise error(f"file source {spec!r} must be path or key=path")
        path = resolve_file(k, file, root, error)
        _add(data, key, limits.read_bytes(path, relative(path, root)), error)
    return data


def _make(
    kind: str, entry: dict[str, Any], data: dict[str, bytes], options: Options, error: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": entry["name"]}
    if entry.get("namespace"):
        meta["namespace"] = entry["namespace"]
    if options.labels:
        meta["labels"] = dict(options.labels)
    if options.annotations:
        meta["annotations"] = dict(options.annotations)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": meta}
    if kind == "Secret":
        if data:
            obj["data"] = {key: base64.b64encode(value).decode() for key, value in data.items()}
        secret_type = entry.get("type") or "Opaque"
        if not isinstance(secret_type, str):
            raise error("type must be a string")
        obj["type"] = secret_type
    else:
        text: dict[str, str] = {}
        binary: dict[str, str] = {}
        for key, value in data.items():
            try:
                text[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = base64.b64encode(value).decode()
        if text:
            obj["data"] = text
        if binary:
            obj["binaryData"] = binary
    if options.immutable:
        obj["immutable"] = True
    return obj


def run_generators(k: Kustomization, root: Path, resmap: ResMap) -> None:
    """Generate this kustomization's ConfigMaps and Secrets into ``resmap``."""
    global_options = _options(
        k.mapping("generatorOptions"), lambda m: k.error("generatorOptions", m)
    )
    known: list[tuple[Resource, list[ResId]]] | None = None  # ids of resmap, read once
    for field_name, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for index, entry in enumerate(k.mappings(field_name)):

            def error(
                message: str,
                field_name: str = field_name,
                index: int = index,
                entry: dict[str, Any] = entry,
            ) -> BuildError:
                name = entry.get("name")
                return k.error(field_name, f"[{index}]{f' ({name})' if name else ''}: {message}")

            allowed = _GENERATOR_FIELDS | ({"type"} if kind == "Secret" else set())
            check_keys(entry, allowed, error)
            if not isinstance(entry.get("name"), str) or not entry["name"]:
                raise error("name is required")
            if not isinstance(entry.get("namespace", ""), str):
                raise error("namespace must be a string")
            behavior = entry.get("behavior") or "create"
            if behavior not in ("create", "merge", "replace"):
                raise error(f"behavior must be create, merge or replace, not {behavior!r}")
            options = _merge_options(_options(entry.get("options"), error), global_options)
            data = _collect(k, entry, root, error)
            obj = _make(kind, entry, data, options, error)
            generated = Resource(
                obj, Origin(k.file, k.line(field_name)), needs_hash=not options.disable_hash
            )
            if known is None:
                known = [(r, r.all_ids()) for r in resmap.resources]
            limits.current_budget().charge_visits(len(known), k.file, k.line(field_name))
            _merge_into(resmap, known, generated, behavior, error, k)


def _merge_into(
    resmap: ResMap,
    known: list[tuple[Resource, list[ResId]]],
    new: Resource,
    behavior: str,
    error: Any,
    k: Kustomization,
) -> None:
    """Add ``new`` (create) or fold it into the one existing object with its name.

    ``known`` lists resmap's resources with their ids (generators change no id, so it is
    computed once per kustomization); a created object is added to it."""
    wanted = new.cur_id()
    matches = [
        r
        for r, ids in known
        if any(
            (i.kind, i.group, i.name) == (wanted.kind, wanted.group, wanted.name)
            and (not wanted.namespace or i.effective_namespace == wanted.effective_namespace)
            for i in ids
        )
    ]
    if behavior == "create":
        if matches:
            raise error(f"{wanted} already exists; behavior must be merge or replace")
        # No match by kind, group, name (and namespace) in any id: no id can clash.
        resmap.resources.append(new)
        known.append((new, new.all_ids()))
        return
    if len(matches) != 1:
        found = "no" if not matches else "more than one"
        raise error(
            f"behavior {behavior}: {found} existing {wanted.kind} named {wanted.name!r} to {behavior}"
        )
    old = matches[0]
    meta = old.metadata
    new_meta = new.metadata
    for where, key in (
        (old.obj, "data"),
        (old.obj, "binaryData"),
        (meta, "labels"),
        (meta, "annotations"),
    ):
        if not isinstance(where.get(key) or {}, dict):
            raise error(
                f"cannot {behavior} into {wanted} ({old.origin}): its {key} is not a mapping"
            )
    if behavior == "merge":
        for key in ("data", "binaryData"):
            if key in new.obj:
                old.obj[key] = {**(old.obj.get(key) or {}), **new.obj[key]}
        for key in ("labels", "annotations"):
            if key in new_meta:
                meta[key] = {**(meta.get(key) or {}), **new_meta[key]}
        if new.obj.get("immutable"):
            old.obj["immutable"] = True
    else:
        for key in ("data", "binaryData", "immutable"):
            old.obj.pop(key, None)
            if key in new.obj:
                old.obj[key] = new.obj[key]
        for key in ("labels", "annotations"):
            if key in new_meta:
                meta[key] = {**(meta.get(key) or {}), **new_meta[key]}
    old.needs_hash = old.needs_hash and new.needs_hash


# --- hash suffix ----------------------------------------------------------------------
def _go_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def content_hash(obj: dict[str, Any]) -> str:
    """kustomize's name suffix for a ConfigMap or Secret."""
    kind = obj.get("kind")
    encoded: dict[str, Any] = {"kind": kind, "name": "", "data": obj.get("data") or ""}
    if kind == "Secret":
        encoded["type"] = obj.get("type") or ""
    elif obj.get("binaryData"):
        encoded["binaryData"] = obj["binaryData"]
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def add_hash_suffixes(resmap: ResMap) -> None:
    for resource in resmap:
        if resource.needs_hash and resource.kind in ("ConfigMap", "Secret"):
            resource.set_name(f"{resource.name}-{content_hash(resource.obj)}")
            resource.needs_hash = False


__all__ = ["add_hash_suffixes", "content_hash", "run_generators"]
