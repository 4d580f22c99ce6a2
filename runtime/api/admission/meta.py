"""Object metadata, labels, annotations and label selectors: validation shared by all kinds.

Mirrors Kubernetes' ``ValidateObjectMeta`` / ``ValidateObjectMetaUpdate`` and the
``metav1`` label and selector checks, with the same field paths (label problems are
reported at ``metadata.labels``, not at the key) and the same wording.
"""

from __future__ import annotations

from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause

from ._causes import Go, forbidden, go_slice, immutable, invalid, required, too_long

TOTAL_ANNOTATION_SIZE = 256 * 1024
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
_BANNED_OWNERS = frozenset({("v1", "Event")})


def d(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (read-only use)."""
    return value if isinstance(value, dict) else {}


def lst(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def validate_label_name(key: str, path: str) -> list[Cause]:
    return [invalid(path, key, m) for m in names.is_qualified_name(key)]


def validate_labels(labels: Any, path: str) -> list[Cause]:
    if not isinstance(labels, dict) or not labels:
        return []
    out: list[Cause] = []
    for k in sorted(labels):
        v = labels[k]
        out.extend(invalid(path, k, m) for m in names.is_qualified_name(k))
        if isinstance(v, str):
            out.extend(invalid(path, v, m) for m in names.is_label_value(v))
    return out


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    if not isinstance(annotations, dict) or not annotations:
        return []
    out: list[Cause] = []
    total = 0
    for k in sorted(annotations):
        out.extend(invalid(path, k, m) for m in names.is_qualified_name(k.lower()))
        v = annotations[k]
        total += len(k.encode()) + (len(v.encode()) if isinstance(v, str) else 0)
    if total > TOTAL_ANNOTATION_SIZE:
        out.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return out


def validate_label_selector(sel: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    if not isinstance(sel, dict):
        return []
    out: list[Cause] = []
    for i, expr in enumerate(lst(sel.get("matchExpressions"))):
        p = f"{path}.matchExpressions[{i}]"
        expr = d(expr)
        op = expr.get("operator")
        values = lst(expr.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                out.append(
                    required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                out.append(
                    forbidden(
                        f"{p}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            out.append(invalid(f"{p}.operator", op or "", "not a valid selector operator"))
        out.extend(validate_label_name(s(expr.get("key")), f"{p}.key"))
        if not allow_invalid_values:
            for j, v in enumerate(values):
                if isinstance(v, str):
                    out.extend(invalid(f"{p}.values[{j}]", v, m) for m in names.is_label_value(v))
    out.extend(validate_labels(sel.get("matchLabels"), f"{path}.matchLabels"))
    return out


def selector_is_empty(sel: Any) -> bool:
    sel = d(sel)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def selector_matches(sel: Any, labels: Any) -> bool:
    """Whether a ``LabelSelector`` selects an object with ``labels`` (empty selects all)."""
    sel = d(sel)
    labels = d(labels)
    for k, v in d(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for expr in lst(sel.get("matchExpressions")):
        expr = d(expr)
        key = expr.get("key")
        op = expr.get("operator")
        values = lst(expr.get("values"))
        if op == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif op == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif op == "Exists":
            if key not in labels:
                return False
        elif op == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False
    return True


def map_selector_matches(sel: Any, labels: Any) -> bool:
    labels = d(labels)
    return all(labels.get(k) == v for k, v in d(sel).items())


def _validate_owner_references(refs: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    first_controller = ""
    for ref in lst(refs):
        ref = d(ref)
        api_version = s(ref.get("apiVersion"))
        version = api_version.rpartition("/")[2]
        if not version:
            out.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not ref.get("kind"):
            out.append(invalid(f"{path}.kind", s(ref.get("kind")), "must not be empty"))
        if not ref.get("name"):
            out.append(invalid(f"{path}.name", s(ref.get("name")), "must not be empty"))
        if not ref.get("uid"):
            out.append(invalid(f"{path}.uid", s(ref.get("uid")), "must not be empty"))
        if (api_version, ref.get("kind")) in _BANNED_OWNERS:
            out.append(
                invalid(
                    path,
                    Go("v1.OwnerReference{...}"),
                    "/v1, Kind=Event is disallowed from being an owner",
                )
            )
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first_controller:
                out.append(
                    invalid(
                        path,
                        Go("[]v1.OwnerReference{...}"),
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return out


def _validate_finalizers(finalizers: Any, path: str, kube: bool) -> list[Cause]:
    out: list[Cause] = []
    items = [f for f in lst(finalizers) if isinstance(f, str)]
    for f in items:
        out.extend(invalid(path, f, m) for m in names.is_qualified_name(f))
    if "orphan" in items and "foregroundDeletion" in items:
        out.append(
            invalid(
                path,
                Go(go_slice(items)),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    if kube:
        for i, f in enumerate(items):
            if "/" not in f and f not in STANDARD_FINALIZERS:
                out.append(
                    invalid(
                        f"{path}[{i}]",
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    )
                )
    return out


def validate_object_meta(
    meta: Any,
    namespaced: bool,
    name_fn: names.NameFn,
    path: str = "metadata",
    kube_finalizers: bool = True,
    check_name: bool = True,
) -> list[Cause]:
    """``ValidateObjectMeta``; ``check_name=False`` on update (the name cannot change)."""
    meta = d(meta)
    out: list[Cause] = []
    name = s(meta.get("name"))
    generate_name = s(meta.get("generateName"))
    if check_name:
        if generate_name:
            out.extend(
                invalid(f"{path}.generateName", generate_name, m)
                for m in name_fn(generate_name, True)
            )
        if name:
            out.extend(invalid(f"{path}.name", name, m) for m in name_fn(name, False))
        elif not generate_name:
            out.append(required(f"{path}.name", "name or generateName is required"))
    namespace = s(meta.get("namespace"))
    if namespaced:
        if not namespace:
            out.append(required(f"{path}.namespace"))
        else:
            out.extend(
                invalid(f"{path}.namespace", namespace, m)
                for m in names.name_is_dns_label(namespace, False)
            )
    elif namespace:
        out.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and not isinstance(generation, bool) and generation < 0:
        out.append(invalid(f"{path}.generation", generation, "must be greater than or equal to 0"))
    if "labels" in meta:
        out.extend(validate_labels(meta["labels"], f"{path}.labels"))
    if "annotations" in meta:
        out.extend(validate_annotations(meta["annotations"], f"{path}.annotations"))
    if "ownerReferences" in meta:
        out.extend(_validate_owner_references(meta["ownerReferences"], f"{path}.ownerReferences"))
    if "finalizers" in meta:
        out.extend(_validate_finalizers(meta["finalizers"], f"{path}.finalizers", kube_finalizers))
    return out


# System fields owned by the store (uid, creationTimestamp) are only compared when the
# update carries them; deletionTimestamp/deletionGracePeriodSeconds are the store's to
# change during graceful deletion and are not checked here.
_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp")
_SYSTEM_META = frozenset({"uid", "creationTimestamp"})


def validate_object_meta_update(new: Any, old: Any, path: str = "metadata") -> list[Cause]:
    """The update-only metadata checks (the create checks run separately)."""
    new = d(new)
    old = d(old)
    out: list[Cause] = []
    if old.get("deletionTimestamp"):
        extra = sorted(
            {s_ for s_ in lst(new.get("finalizers")) if isinstance(s_, str)}
            - set(lst(old.get("finalizers")))
        )
        if extra:
            shown = "[]string{" + ", ".join(f'"{e}"' for e in extra) + "}"
            out.append(
                forbidden(
                    f"{path}.finalizers",
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {shown}",
                )
            )
    new_gen = new.get("generation")
    old_gen = old.get("generation")
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        out.append(invalid(f"{path}.generation", new_gen, "must not be decremented"))
    for key in _IMMUTABLE_META:
        nv = new.get(key)
        ov = old.get(key)
        if key in _SYSTEM_META and nv is None:
            continue
        if (nv or None) != (ov or None):
            out.append(immutable(f"{path}.{key}", nv if nv is not None else ""))
    return out
