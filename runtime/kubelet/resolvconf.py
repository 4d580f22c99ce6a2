"""A pod's DNS settings (its ``/etc/resolv.conf``), as the kubelet computes them from
``dnsPolicy``, ``dnsConfig`` and ``hostNetwork`` — Kubernetes' ``pkg/kubelet/network/dns``
semantics. Called by :func:`runtime.kubelet.podsync.sandbox_config` (through
:meth:`runtime.kubelet.podsync.PodSyncer`), which hands the result to the container
runtime as a :class:`runtime.kubelet.cri.DNSConfig`.

Policies:

* ``ClusterFirst`` (the default): nameservers = the kubelet's cluster DNS addresses;
  searches = ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the host's search
  domains; options ``ndots:5``. A ``hostNetwork`` pod with ``ClusterFirst`` behaves as
  ``Default``; ``ClusterFirstWithHostNet`` always uses the cluster DNS.
* ``Default``: the host's resolv.conf. Left to the engine (``None``: podman and docker
  copy the host's file) unless ``dnsConfig`` is given, then the host's nameservers,
  searches and options merged with it.
* ``None``: ``dnsConfig`` alone.
* No cluster DNS configured: ``ClusterFirst`` falls back to ``Default`` and the result
  carries a ``MissingClusterDNS`` warning for a pod event, as the kubelet does.

``dnsConfig`` merges as Kubernetes merges: nameservers appended and de-duplicated (at most
3 kept), searches appended and de-duplicated (at most 32 and 2048 characters kept),
options overriding by name (``name`` or ``name:value``). Dropped entries are reported in
:attr:`PodDns.warnings` (Kubernetes' ``DNSConfigForming`` event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.kubelet.cri import DNSConfig

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_OPTIONS = ("ndots:5",)


@dataclass(frozen=True)
class ClusterDnsSettings:
    """The kubelet's ``--cluster-dns``, ``--cluster-domain`` and ``--resolv-conf``."""

    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"


@dataclass(frozen=True)
class HostResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodDns:
    """The sandbox's DNS (None: the engine's default, the host's resolv.conf) and the
    warning events to record for the pod as (reason, message)."""

    config: DNSConfig | None
    warnings: tuple[tuple[str, str], ...] = field(default=())


def parse_resolv_conf(text: str) -> HostResolvConf:
    """The nameservers, search domains (the last ``search``/``domain`` line wins, as in
    glibc) and options of a resolv.conf."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = [s.rstrip(".") for s in fields[1:] if s.rstrip(".")]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return HostResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def read_host_resolv_conf(path: str) -> HostResolvConf:
    """The host's resolv.conf; empty when it cannot be read."""
    try:
        return parse_resolv_conf(Path(path).read_text())
    except OSError:
        return HostResolvConf()


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.add(value)
            out.append(value)
    return out


def merge_options(existing: Iterable[str], extra: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Options by name: ``extra`` (``dnsConfig.options``) overrides ``existing``; the
    order is the first appearance of each name."""
    merged: dict[str, str | None] = {}
    for text in existing:
        name, sep, value = text.partition(":")
        merged[name] = value if sep else None
    for option in extra:
        name = str(option.get("name") or "")
        if name:
            raw = option.get("value")
            merged[name] = None if raw is None else str(raw)
    return tuple(name if value is None else f"{name}:{value}" for name, value in merged.items())


def _fit_searches(searches: list[str], warnings: list[tuple[str, str]]) -> list[str]:
    kept: list[str] = []
    chars = 0
    for search in searches:
        if len(kept) == MAX_SEARCHES or chars + len(search) + (1 if kept else 0) > MAX_SEARCH_CHARS:
            break
        chars += len(search) + (1 if kept else 0)
        kept.append(search)
    if len(kept) < len(searches):
        warnings.append(
            (
                "DNSConfigForming",
                f"Search Line limits were exceeded, some search paths have been omitted, "
                f"the applied search line is: {' '.join(kept)}",
            )
        )
    return kept


def _fit_nameservers(servers: list[str], warnings: list[tuple[str, str]]) -> list[str]:
    if len(servers) <= MAX_NAMESERVERS:
        return servers
    kept = servers[:MAX_NAMESERVERS]
    warnings.append(
        (
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            f"the applied nameserver line is: {' '.join(kept)}",
        )
    )
    return kept


def _policy(spec: Mapping[str, Any]) -> str:
    """The effective policy: ``cluster``, ``host`` or ``none``."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst":
        return "host" if spec.get("hostNetwork") else "cluster"
    return "host"  # Default


def pod_dns(
    pod: Mapping[str, Any], settings: ClusterDnsSettings, host: HostResolvConf | None = None
) -> PodDns:
    """The pod's DNS configuration (see the module docstring). ``host`` defaults to
    ``settings.resolv_conf`` read now."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    dns_config = spec.get("dnsConfig")
    warnings: list[tuple[str, str]] = []
    policy = _policy(spec)
    if policy == "cluster" and not settings.cluster_dns:
        warnings.append(
            (
                "MissingClusterDNS",
                f"pod: {meta.get('name')!r}. kubelet does not have ClusterDNS IP configured "
                f"and cannot create Pod using {spec.get('dnsPolicy') or 'ClusterFirst'!r} "
                'policy. Falling back to "Default" policy.',
            )
        )
        policy = "host"
    if policy == "host" and dns_config is None:
        return PodDns(None, tuple(warnings))
    servers: list[str] = []
    searches: list[str] = []
    options: tuple[str, ...] = ()
    if policy == "cluster":
        domain = settings.cluster_domain.strip(".")
        host = host if host is not None else read_host_resolv_conf(settings.resolv_conf)
        servers = list(settings.cluster_dns)
        cluster = [f"{meta.get('namespace') or 'default'}.svc.{domain}", f"svc.{domain}", domain]
        searches = _unique([*cluster, *host.searches]) if domain else list(host.searches)
        options = DEFAULT_OPTIONS
    elif policy == "host":
        host = host if host is not None else read_host_resolv_conf(settings.resolv_conf)
        servers, searches, options = list(host.nameservers), list(host.searches), host.options
    if dns_config is not None:
        servers = _unique([*servers, *(str(s) for s in dns_config.get("nameservers") or ())])
        searches = _unique([*searches, *(str(s) for s in dns_config.get("searches") or ())])
        options = merge_options(options, dns_config.get("options") or ())
    return PodDns(
        DNSConfig(
            nameservers=tuple(_fit_nameservers(_unique(servers), warnings)),
            searches=tuple(_fit_searches(_unique(searches), warnings)),
            options=options,
        ),
        tuple(warnings),
    )
