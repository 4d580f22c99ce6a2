"""CustomResourceDefinition (apiextensions.k8s.io/v1): defaults and validation.

Follows ``apiextensions-apiserver``'s ``SetDefaults_CustomResourceDefinition`` and
``ValidateCustomResourceDefinition``: the name must be ``<plural>.<group>``, the group a
dotted DNS subdomain, the scope Cluster or Namespaced, exactly one storage version (and
at least one served), a structural ``openAPIV3Schema`` per version, DNS-1035 names,
and a known conversion strategy. On update the group and plural never change, and the
scope and kind not once the CRD is established.
"""

from __future__ import annotations

from typing import Any

from kubemodel import validation as names
from kubemodel.errors import Cause

from ._causes import Go, forbidden, immutable, invalid, not_supported, required
from .custom import _Validator
from .meta import d, lst, s

Obj = dict[str, Any]


def default(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    crd_names = spec.get("names")
    if isinstance(crd_names, dict):
        kind = crd_names.get("kind")
        if not crd_names.get("singular") and isinstance(kind, str):
            crd_names["singular"] = kind.lower()
        if not crd_names.get("listKind") and isinstance(kind, str) and kind:
            crd_names["listKind"] = kind + "List"
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conversion, dict):
        service = d(d(d(conversion.get("webhook")).get("clientConfig")).get("service"))
        if service and service.get("port") is None:
            service["port"] = 443
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict) and not status.get("storedVersions"):
        for version in lst(spec.get("versions")):
            if (
                isinstance(version, dict)
                and version.get("storage") is True
                and isinstance(version.get("name"), str)
            ):
                status["storedVersions"] = [version["name"]]
                break


def _dns1035(value: str, path: str, prefix: str = "") -> list[Cause]:
    errs = names.is_dns1035_label(value)
    return [invalid(path, value, prefix + ",".join(errs))] if errs else []


# --- schema checks -------------------------------------------------------------------
_FORBIDDEN_KEYWORDS = (
    ("id", "id is not supported"),
    ("additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions is not supported"),
    ("dependencies", "dependencies is not supported"),
    ("$ref", "$ref is not supported"),
)


def _check_schema(node: Any, path: str, level: str, out: list[Cause], data_path: str = "") -> None:
    """Static and structural checks of one schema node and its children."""
    if not isinstance(node, dict):
        return
    for key, msg in _FORBIDDEN_KEYWORDS:
        if node.get(key) not in (None, "", {}, []):
            out.append(forbidden(f"{path}.{key}", msg))
    kind = node.get("type")
    if kind == "null":
        out.append(forbidden(f"{path}.type", "type cannot be set to null"))
    if node.get("uniqueItems") is True:
        out.append(
            forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    if isinstance(node.get("items"), list):
        out.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if (
        extra is not None
        and isinstance(props, dict)
        and props
        and (extra is False or isinstance(extra, dict))
    ):
        out.append(
            forbidden(
                f"{path}.additionalProperties",
                "additionalProperties and properties are mutual exclusive",
            )
        )
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = node.get("x-kubernetes-embedded-resource") is True
    if int_or_string and kind:
        out.append(forbidden(f"{path}.type", "must be empty if x-kubernetes-int-or-string is true"))
    if not kind and not int_or_string and not preserve and not embedded and level != "combinator":
        detail = {
            "root": "must not be empty at the root",
            "items": "must not be empty for specified array items",
        }.get(level, "must not be empty for specified object fields")
        out.append(required(f"{path}.type", detail))
    if level == "root" and kind and kind != "object":
        out.append(invalid(f"{path}.type", kind, "must be object at the root"))
    if embedded and kind and kind != "object":
        out.append(
            invalid(
                f"{path}.type", kind, "must be object if x-kubernetes-embedded-resource is true"
            )
        )
    if "default" in node and level not in ("root", "combinator"):
        checker = _Validator()
        checker.check(node["default"], {k: v for k, v in node.items() if k != "default"}, data_path)
        for cause in checker.out:
            out.append(Cause(cause.reason, cause.message, f"{path}.default"))
    prefix = f"{data_path}." if data_path else ""
    if isinstance(props, dict):
        for key in sorted(props):
            _check_schema(props[key], f"{path}.properties[{key}]", "properties", out, prefix + key)
    if isinstance(extra, dict):
        _check_schema(extra, f"{path}.additionalProperties", "properties", out, prefix + "*")
    items = node.get("items")
    if isinstance(items, dict):
        _check_schema(items, f"{path}.items", "items", out, f"{data_path}[0]")
    elif kind == "array" and items is None:
        out.append(required(f"{path}.items", "must be specified"))
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(lst(node.get(key))):
            _check_schema(sub, f"{path}.{key}[{i}]", "combinator", out)
    if isinstance(node.get("not"), dict):
        _check_schema(node["not"], f"{path}.not", "combinator", out)


def _simple_json_path(value: Any, path: str) -> list[Cause]:
    text = s(value)
    if not text:
        return [invalid(path, text, "must not be empty")]
    if text[0] != ".":
        return [invalid(path, text, "must be a simple json path starting with .")]
    return []


_COLUMN_TYPES = "boolean,date,integer,number,string"
_COLUMN_FORMATS = "byte,date,date-time,double,float,int32,int64,password"


def _validate_version(version: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    schema = d(version.get("schema")).get("openAPIV3Schema")
    sp = f"{path}.schema.openAPIV3Schema"
    if schema is None:
        out.append(required(sp, "schemas are required"))
    else:
        _check_schema(schema, sp, "root", out)
    subresources = d(version.get("subresources"))
    scale = subresources.get("scale")
    if scale is not None:
        scale = d(scale)
        for key, prefix in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
            kp = f"{path}.subresources.scale.{key}"
            value = s(scale.get(key))
            if not value:
                out.append(required(kp))
                continue
            errs = _simple_json_path(value, kp)
            if errs:
                out.extend(errs)
            elif not value.startswith(prefix):
                out.append(invalid(kp, value, f"should be a json path under {prefix.rstrip('.')}"))
        selector_path = s(scale.get("labelSelectorPath"))
        if selector_path:
            kp = f"{path}.subresources.scale.labelSelectorPath"
            errs = _simple_json_path(selector_path, kp)
            if errs:
                out.extend(errs)
            elif not selector_path.startswith(".status.") and not selector_path.startswith(
                ".spec."
            ):
                out.append(
                    invalid(
                        kp, selector_path, "should be a json path under either .spec or .status"
                    )
                )
    for i, column in enumerate(lst(version.get("additionalPrinterColumns"))):
        column = d(column)
        cp = f"{path}.additionalPrinterColumns[{i}]"
        if not column.get("name"):
            out.append(required(f"{cp}.name"))
        kind = column.get("type")
        if not kind:
            out.append(required(f"{cp}.type", f"must be one of {_COLUMN_TYPES}"))
        elif kind not in _COLUMN_TYPES.split(","):
            out.append(invalid(f"{cp}.type", kind, f"must be one of {_COLUMN_TYPES}"))
        fmt = s(column.get("format"))
        if fmt and fmt not in _COLUMN_FORMATS.split(","):
            out.append(invalid(f"{cp}.format", fmt, f"must be one of {_COLUMN_FORMATS}"))
        if not column.get("jsonPath"):
            out.append(required(f"{cp}.JSONPath"))
        else:
            out.extend(_simple_json_path(column.get("jsonPath"), f"{cp}.JSONPath"))
    return out


def _validate_names(crd_names: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    plural = s(crd_names.get("plural"))
    singular = s(crd_names.get("singular"))
    kind = s(crd_names.get("kind"))
    list_kind = s(crd_names.get("listKind"))
    if plural:
        out.extend(_dns1035(plural, f"{path}.plural"))
    if singular:
        out.extend(_dns1035(singular, f"{path}.singular"))
    mixed = "may have mixed case, but should otherwise match: "
    if kind and names.is_dns1035_label(kind.lower()):
        out.append(
            invalid(f"{path}.kind", kind, mixed + ",".join(names.is_dns1035_label(kind.lower())))
        )
    if list_kind and names.is_dns1035_label(list_kind.lower()):
        out.append(
            invalid(
                f"{path}.listKind",
                list_kind,
                mixed + ",".join(names.is_dns1035_label(list_kind.lower())),
            )
        )
    for i, short in enumerate(lst(crd_names.get("shortNames"))):
        out.extend(_dns1035(s(short), f"{path}.shortNames[{i}]"))
    if kind and kind == list_kind:
        out.append(invalid(f"{path}.listKind", list_kind, "kind and listKind may not be the same"))
    for i, category in enumerate(lst(crd_names.get("categories"))):
        out.extend(_dns1035(s(category), f"{path}.categories[{i}]"))
    return out


def _versions_go(versions: list[Any]) -> Go:
    return Go(
        "[]apiextensions.CustomResourceDefinitionVersion{...}"
        if versions
        else "[]apiextensions.CustomResourceDefinitionVersion(nil)"
    )


def validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = d(obj.get("spec"))
    out: list[Cause] = []
    meta = d(obj.get("metadata"))
    crd_names = d(spec.get("names"))
    group = s(spec.get("group"))
    plural = s(crd_names.get("plural"))
    name = s(meta.get("name"))
    if old is None and name and name != f"{plural}.{group}":
        out.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        out.append(required("spec.group"))
    elif names.is_dns1123_subdomain(group):
        out.append(invalid("spec.group", group, ",".join(names.is_dns1123_subdomain(group))))
    elif len(group.split(".")) < 2:
        out.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        out.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        out.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    versions = [d(v) for v in lst(spec.get("versions"))]
    if not versions:
        out.append(required("spec.versions", "must have at least one version"))
    storage_count = 0
    seen: set[str] = set()
    unique = True
    for i, version in enumerate(versions):
        vp = f"spec.versions[{i}]"
        if version.get("storage") is True:
            storage_count += 1
        vname = s(version.get("name"))
        if vname in seen:
            unique = False
        seen.add(vname)
        out.extend(_dns1035(vname, f"{vp}.name"))
        out.extend(_validate_version(version, vp))
    if not unique:
        out.append(
            invalid("spec.versions", _versions_go(versions), "must contain unique version names")
        )
    if storage_count != 1:
        out.append(
            invalid(
                "spec.versions",
                _versions_go(versions),
                "must have exactly one version marked as storage version",
            )
        )
    if versions and not any(v.get("served") is True for v in versions):
        out.append(
            invalid(
                "spec.versions",
                _versions_go(versions),
                "must have at least one version marked as served",
            )
        )
    for key in ("plural", "singular", "kind", "listKind"):
        if not crd_names.get(key):
            out.append(required(f"spec.names.{key}"))
    out.extend(_validate_names(crd_names, "spec.names"))
    if spec.get("preserveUnknownFields") is True:
        out.append(
            invalid(
                "spec.preserveUnknownFields",
                True,
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                "spec.versions[*].schema instead",
            )
        )
    conversion = spec.get("conversion")
    if conversion is not None:
        conversion = d(conversion)
        strategy = conversion.get("strategy")
        if not strategy:
            out.append(required("spec.conversion.strategy"))
        elif strategy not in ("None", "Webhook"):
            out.append(not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"]))
        webhook = conversion.get("webhook")
        if strategy == "Webhook":
            client = d(webhook).get("clientConfig")
            if client is None:
                out.append(
                    required(
                        "spec.conversion.webhookClientConfig",
                        "required when strategy is set to Webhook",
                    )
                )
            elif (d(client).get("url") is None) == (d(client).get("service") is None):
                out.append(
                    required(
                        "spec.conversion.webhookClientConfig",
                        "exactly one of url or service is required",
                    )
                )
            if not lst(d(webhook).get("conversionReviewVersions")):
                out.append(
                    required(
                        "spec.conversion.conversionReviewVersions",
                        "must include at least one of v1, v1beta1",
                    )
                )
        elif webhook is not None and d(webhook).get("clientConfig") is not None:
            out.append(
                forbidden(
                    "spec.conversion.webhookClientConfig",
                    "should not be set when strategy is not set to Webhook",
                )
            )
    status = d(obj.get("status"))
    stored = [v for v in lst(status.get("storedVersions")) if isinstance(v, str)]
    if "storedVersions" in status or old is not None:
        if not stored:
            out.append(
                invalid(
                    "status.storedVersions",
                    Go("[]string(nil)"),
                    "must have at least one stored version",
                )
            )
        for i, v in enumerate(stored):
            if v not in seen:
                out.append(
                    invalid(f"status.storedVersions[{i}]", v, "must appear in spec.versions")
                )
    if old is not None:
        old_spec = d(old.get("spec"))
        old_names = d(old_spec.get("names"))
        established = any(
            d(c).get("type") == "Established" and d(c).get("status") == "True"
            for c in lst(d(old.get("status")).get("conditions"))
        )
        if established:
            if spec.get("scope") != old_spec.get("scope"):
                out.append(immutable("spec.scope", s(spec.get("scope"))))
            if crd_names.get("kind") != old_names.get("kind"):
                out.append(immutable("spec.names.kind", s(crd_names.get("kind"))))
        if group != s(old_spec.get("group")):
            out.append(immutable("spec.group", group))
        if plural != s(old_names.get("plural")):
            out.append(immutable("spec.names.plural", plural))
    return out
