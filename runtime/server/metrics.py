"""The resource metrics API (``metrics.k8s.io/v1beta1``): PodMetrics and NodeMetrics.

In Kubernetes this API is served by metrics-server, an aggregated API server that scrapes
each kubelet's resource usage; here the API server answers it itself, reading the usage
from each node's kubelet (``GET /stats/summary`` on the kubelet endpoint, reached the way
``pods/{name}/log`` is proxied — see :meth:`runtime.server.app.ApiApp.kubelet_get`).

Who calls it: :mod:`runtime.server.app` routes ``/apis/metrics.k8s.io/v1beta1/...`` here
and :mod:`runtime.server.discovery` lists the group, so ``kubectl top pods|nodes`` and the
HorizontalPodAutoscaler controller (which reads pod metrics through this API, like
Kubernetes' REST metrics client) find it.

Semantics followed (metrics-server's):

* ``/pods``, ``/namespaces/{ns}/pods[/{name}]``, ``/nodes[/{name}]``; verbs get and list
  only; ``labelSelector`` filters the pods or nodes listed;
* usage is the current rate: cpu in nanocores (``"1234567n"``, or ``"12m"`` when exact),
  memory the working set in bytes with the largest exact binary suffix (``"1234Ki"``);
* a pod appears only once it has running containers the kubelet can sample; a node whose
  kubelet cannot be reached is left out of lists (and is NotFound when asked by name);
* a node's usage is the sum of its pods' (no system overhead is measured);
* ``window`` is ``0s``: the runtimes report an instantaneous rate, not an average.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog

from kubemodel import errors
from kubemodel.errors import ApiError
from runtime.api.objects import ObjectAPI
from runtime.api.selectors import NO_FIELDS

log = structlog.get_logger(__name__)

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
WINDOW = "0s"
#: How long one kubelet may take to answer a summary before it is left out.
SCRAPE_TIMEOUT = 10.0

#: Fetches a node's kubelet summary (``/stats/summary``); raises ApiError when unreachable.
SummaryFetch = Callable[[str], Awaitable[Mapping[str, Any]]]

_BINARY = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)]


def cpu_quantity(nanocores: int) -> str:
    """Nanocores as a canonical quantity: ``"2"``, ``"12m"`` or ``"1234567n"``."""
    if nanocores == 0:
        return "0"
    if nanocores % 1_000_000_000 == 0:
        return str(nanocores // 1_000_000_000)
    if nanocores % 1_000_000 == 0:
        return f"{nanocores // 1_000_000}m"
    if nanocores % 1_000 == 0:
        return f"{nanocores // 1_000}u"
    return f"{nanocores}n"


def memory_quantity(size: int) -> str:
    """Bytes with the largest binary suffix that keeps the value exact."""
    if size == 0:
        return "0"
    for suffix, unit in _BINARY:
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def group_document() -> dict[str, Any]:
    """The group as listed in ``/apis`` (an APIGroup without kind)."""
    return {
        "name": GROUP,
        "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
    }


def resource_list() -> dict[str, Any]:
    """``/apis/metrics.k8s.io/v1beta1``."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": "nodes",
                "singularName": "",
                "namespaced": False,
                "kind": "NodeMetrics",
                "verbs": ["get", "list"],
            },
            {
                "name": "pods",
                "singularName": "",
                "namespaced": True,
                "kind": "PodMetrics",
                "verbs": ["get", "list"],
            },
        ],
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsAPI:
    """Answers the metrics.k8s.io paths from the store's pods/nodes and kubelet summaries."""

    def __init__(self, api: ObjectAPI, fetch: SummaryFetch) -> None:
        self.api = api
        self.fetch = fetch

    async def handle(
        self, method: str, version: str, rest: list[str], query: Mapping[str, str]
    ) -> bytes:
        """The JSON body for ``/apis/metrics.k8s.io/{version}/{rest...}``."""
        if version != VERSION:
            raise errors.no_such_path()
        if method != "GET":
            raise errors.method_not_allowed(f"{method} is not supported on {GROUP_VERSION}")
        if query.get("watch", "").lower() in ("true", "1"):
            raise errors.method_not_allowed(f"watch is not supported on {GROUP_VERSION}")
        label_selector = query.get("labelSelector")
        match rest:
            case ["pods"]:
                return orjson.dumps(await self.pod_list(None, label_selector))
            case ["namespaces", ns, "pods"]:
                return orjson.dumps(await self.pod_list(ns, label_selector))
            case ["namespaces", ns, "pods", name]:
                return orjson.dumps(await self.pod(ns, name))
            case ["nodes"]:
                return orjson.dumps(await self.node_list(label_selector))
            case ["nodes", name]:
                return orjson.dumps(await self.node(name))
        raise errors.no_such_path()

    # --- kubelet summaries -------------------------------------------------------------
    async def _summaries(self, nodes: set[str]) -> dict[str, Mapping[str, Any]]:
        """Summaries of the nodes that answered in time (the others are left out)."""

        async def one(node: str) -> Mapping[str, Any] | None:
            try:
                return await asyncio.wait_for(self.fetch(node), SCRAPE_TIMEOUT)
            except (ApiError, TimeoutError) as exc:
                log.debug("metrics.scrape_failed", node=node, error=str(exc))
                return None

        names = sorted(nodes)
        results = await asyncio.gather(*(one(n) for n in names))
        return {n: r for n, r in zip(names, results, strict=True) if r is not None}

    # --- pods --------------------------------------------------------------------------
    def _pods(self, namespace: str | None, label_selector: str | None) -> list[dict[str, Any]]:
        info = self.api.registry.get("", "v1", "pods")
        assert info is not None
        labels, _ = self.api.parse_selectors(info, label_selector, None)
        result = self.api.list_objects(info, namespace, labels, NO_FIELDS)
        return [e.obj() for e in result.items]

    async def _pod_metrics(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nodes = {
            str((p.get("spec") or {}).get("nodeName"))
            for p in pods
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") == "Running"
        }
        by_uid: dict[str, Mapping[str, Any]] = {}
        for summary in (await self._summaries(nodes)).values():
            for stats in summary.get("pods") or []:
                by_uid[str((stats.get("podRef") or {}).get("uid"))] = stats
        out = []
        for pod in pods:
            meta = pod.get("metadata") or {}
            stats = by_uid.get(str(meta.get("uid")))
            if stats is None or not stats.get("containers"):
                continue
            containers = [
                {
                    "name": c.get("name"),
                    "usage": {
                        "cpu": cpu_quantity(int((c.get("cpu") or {}).get("usageNanoCores") or 0)),
                        "memory": memory_quantity(
                            int((c.get("memory") or {}).get("workingSetBytes") or 0)
                        ),
                    },
                }
                for c in stats.get("containers") or []
            ]
            stamp = (stats.get("cpu") or {}).get("time") or _now()
            out.append(
                {
                    "kind": "PodMetrics",
                    "apiVersion": GROUP_VERSION,
                    "metadata": {
                        "name": meta.get("name"),
                        "namespace": meta.get("namespace"),
                        "creationTimestamp": _now(),
                        "labels": dict(meta.get("labels") or {}),
                    },
                    "timestamp": stamp,
                    "window": WINDOW,
                    "containers": sorted(containers, key=lambda c: str(c["name"])),
                }
            )
        return out

    async def pod_list(self, namespace: str | None, label_selector: str | None) -> dict[str, Any]:
        items = await self._pod_metrics(self._pods(namespace, label_selector))
        return {
            "kind": "PodMetricsList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": items,
        }

    async def pod(self, namespace: str, name: str) -> dict[str, Any]:
        info = self.api.registry.get("", "v1", "pods")
        assert info is not None
        entry = self.api.store.get(info.store_key, namespace, name)
        items = await self._pod_metrics([entry.obj()]) if entry is not None else []
        if not items:
            raise errors.not_found(GROUP, "pods", name)
        return items[0]

    # --- nodes -------------------------------------------------------------------------
    async def _node_metrics(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = {str((n.get("metadata") or {}).get("name")) for n in nodes}
        summaries = await self._summaries(names)
        out = []
        for node in nodes:
            meta = node.get("metadata") or {}
            summary = summaries.get(str(meta.get("name")))
            if summary is None:
                continue
            stats = summary.get("node") or {}
            cpu = stats.get("cpu") or {}
            memory = stats.get("memory") or {}
            out.append(
                {
                    "kind": "NodeMetrics",
                    "apiVersion": GROUP_VERSION,
                    "metadata": {
                        "name": meta.get("name"),
                        "creationTimestamp": _now(),
                        "labels": dict(meta.get("labels") or {}),
                    },
                    "timestamp": cpu.get("time") or _now(),
                    "window": WINDOW,
                    "usage": {
                        "cpu": cpu_quantity(int(cpu.get("usageNanoCores") or 0)),
                        "memory": memory_quantity(int(memory.get("workingSetBytes") or 0)),
                    },
                }
            )
        return out

    def _nodes(self, label_selector: str | None) -> list[dict[str, Any]]:
        info = self.api.registry.get("", "v1", "nodes")
        assert info is not None
        labels, _ = self.api.parse_selectors(info, label_selector, None)
        result = self.api.list_objects(info, None, labels, NO_FIELDS)
        return [e.obj() for e in result.items]

    async def node_list(self, label_selector: str | None) -> dict[str, Any]:
        items = await self._node_metrics(self._nodes(label_selector))
        return {
            "kind": "NodeMetricsList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": items,
        }

    async def node(self, name: str) -> dict[str, Any]:
        info = self.api.registry.get("", "v1", "nodes")
        assert info is not None
        entry = self.api.store.get(info.store_key, "", name)
        items = await self._node_metrics([entry.obj()]) if entry is not None else []
        if not items:
            raise errors.not_found(GROUP, "nodes", name)
        return items[0]
