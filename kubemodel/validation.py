"""Format checks for names, keys and values, worded as Kubernetes' ``util/validation``.

Each ``is_*`` function returns the list of problems (empty when the value is fine), in
the order Kubernetes reports them; callers wrap each message in an ``Invalid value``
cause at the right field path. Name functions (``name_is_*``) take ``prefix`` like
Kubernetes' ``ValidateNameFunc``: a ``generateName`` prefix may end in ``-``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache

NameFn = Callable[[str, bool], list[str]]

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_WILDCARD_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_PERCENT_FMT = "[0-9]+%"
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"

_dns1123_label = re.compile(_DNS1123_LABEL_FMT).fullmatch
_dns1123_subdomain = re.compile(_DNS1123_SUBDOMAIN_FMT).fullmatch
_dns1035_label = re.compile(_DNS1035_LABEL_FMT).fullmatch
_label_key = re.compile(_LABEL_KEY_FMT).fullmatch
_label_value = re.compile(_LABEL_VALUE_FMT).fullmatch
_wildcard = re.compile(_WILDCARD_FMT).fullmatch
_config_key = re.compile(_CONFIG_KEY_FMT).fullmatch
_http_header = re.compile(_HTTP_HEADER_FMT).fullmatch
_percent = re.compile(_PERCENT_FMT).fullmatch
_http_path = re.compile(_HTTP_PATH_FMT).fullmatch
_port_name_chars = re.compile("[-a-z0-9]+").fullmatch
_has_letter = re.compile("[a-z]").search


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_LABEL_MSG = regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character",
    _DNS1123_LABEL_FMT,
    "my-name",
    "123-abc",
)
_SUBDOMAIN_MSG = regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character",
    _DNS1123_SUBDOMAIN_FMT,
    "example.com",
)
_DNS1035_MSG = regex_error(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character",
    _DNS1035_LABEL_FMT,
    "my-name",
    "abc-123",
)
_KEY_NAME_MSG = regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character",
    _LABEL_KEY_FMT,
    "MyName",
    "my.name",
    "123-abc",
)
_LABEL_VALUE_MSG = regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character",
    _LABEL_VALUE_FMT,
    "MyValue",
    "my_value",
    "12345",
)
_WILDCARD_MSG = regex_error(
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character",
    _WILDCARD_FMT,
    "*.example.com",
)
_CONFIG_KEY_MSG = regex_error(
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    _CONFIG_KEY_FMT,
    "key.name",
    "KEY_NAME",
    "key-name",
)
_HTTP_HEADER_MSG = regex_error(
    "a valid HTTP header must consist of alphanumeric characters or '-'",
    _HTTP_HEADER_FMT,
    "X-Header-Name",
)
_PERCENT_MSG = regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'",
    _PERCENT_FMT,
    "1%",
    "93%",
)


@lru_cache(maxsize=4096)
def _dns1123_label_errors(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _dns1123_label(value):
        errs.append("must not contain dots" if _dns1123_subdomain(value) else _LABEL_MSG)
    return tuple(errs)


def is_dns1123_label(value: str) -> list[str]:
    return list(_dns1123_label_errors(value))


@lru_cache(maxsize=4096)
def _dns1123_subdomain_errors(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _dns1123_subdomain(value):
        errs.append(_SUBDOMAIN_MSG)
    return tuple(errs)


def is_dns1123_subdomain(value: str) -> list[str]:
    return list(_dns1123_subdomain_errors(value))


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _dns1035_label(value):
        errs.append(_DNS1035_MSG)
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _wildcard(value):
        errs.append(_WILDCARD_MSG)
    return errs


@lru_cache(maxsize=8192)
def _qualified_name_errors(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in _dns1123_subdomain_errors(prefix))
    else:
        return (
            "a valid label key "
            + _KEY_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _label_key(name):
        errs.append("name part " + _KEY_NAME_MSG)
    return tuple(errs)


def is_qualified_name(value: str) -> list[str]:
    """A label key / "qualified name": optional DNS-subdomain prefix and a 63-char name."""
    return list(_qualified_name_errors(value))


@lru_cache(maxsize=8192)
def _label_value_errors(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _label_value(value):
        errs.append(_LABEL_VALUE_MSG)
    return tuple(errs)


def is_label_value(value: str) -> list[str]:
    return list(_label_value_errors(value))


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _config_key(value):
        errs.append(_CONFIG_KEY_MSG)
    errs.extend(_chdir_prefix(value))
    return errs


def is_env_var_name(value: str) -> list[str]:
    """Relaxed environment variable names (the default since Kubernetes 1.32)."""
    if not value:
        return ["environment variable name must be non-empty"]
    for ch in value:
        if ord(ch) > 126 or ord(ch) < 32 or ch == "=":
            return [
                "a valid environment variable name must consist only of printable ASCII "
                "characters other than '='"
            ]
    return []


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _port_name_chars(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _has_letter(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    return [] if _percent(value) else [_PERCENT_MSG]


def is_http_header_name(value: str) -> list[str]:
    return [] if _http_header(value) else [_HTTP_HEADER_MSG]


def is_domain_prefixed_path(value: str) -> list[tuple[str, str]]:
    """(offending value, message) pairs, as Kubernetes' ``IsDomainPrefixedPath``."""
    if not value:
        return [("", "")]  # caller reports Required
    segments = value.split("/", 1)
    if len(segments) != 2 or not segments[0] or not segments[1]:
        return [(value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    host, path = segments
    out = [(host, m) for m in is_dns1123_subdomain(host)]
    if not _http_path(path):
        out.append((path, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return out


def is_valid_path_segment_name(name: str) -> list[str]:
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def is_valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def is_valid_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


# --- name functions (ValidateNameFunc) ------------------------------------------------
def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    if prefix:
        name = _mask_trailing_dash(name)
    return list(_dns1123_subdomain_errors(name))


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    if prefix:
        name = _mask_trailing_dash(name)
    return list(_dns1123_label_errors(name))


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    if prefix:
        name = _mask_trailing_dash(name)
    return is_dns1035_label(name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return is_valid_path_segment_name(name)
