"""The Endpoints controller: keeps, for every Service with a selector, an Endpoints object
of the same name listing the selected pods' addresses — kube-controller-manager's
``pkg/controller/endpoint``.

Who runs it: the controller manager (``--controllers endpoints``). The pod/port helpers
here (:func:`should_pod_be_in_endpoints`, :func:`find_port`, :func:`pod_ports`) are
shared with the EndpointSlice controller.

Kubernetes semantics followed: pods matching the selector with an IP, not being deleted
(unless ``publishNotReadyAddresses``) and not finished (Succeeded/Failed) are listed;
ready pods (or every pod when ``publishNotReadyAddresses``) in ``addresses``, the others
in ``notReadyAddresses``; each address has the pod's IP, nodeName, a targetRef to the pod
and the pod's hostname when ``spec.hostname`` is set and ``spec.subdomain`` names the
Service. Ports resolve per pod (a numeric targetPort as is, a named one through the
pod's container ports of the same protocol; a pod without the name is left out for that
port). Subsets are repacked: one subset per distinct port set, addresses sorted by IP.
Labels are the Service's (plus ``service.kubernetes.io/headless`` for headless
Services), the annotation ``endpoints.kubernetes.io/last-change-trigger-time`` records
when the change that triggered the write happened, and more than 1000 addresses are
truncated with ``endpoints.kubernetes.io/over-capacity: truncated``. Services without a
selector are left alone; the Endpoints of a deleted Service is deleted. Writes are
skipped when nothing changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from kubeclient.informer import Informer, key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import is_pod_ready, is_terminating, labels_of, pod_phase
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS = "service.kubernetes.io/headless"
MAX_ADDRESSES = 1000


# --- shared pod/port logic ---------------------------------------------------------------
def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints: not terminal (Succeeded/Failed), with an IP,
    and not being deleted unless ``include_terminating``."""
    if pod_phase(pod) in ("Succeeded", "Failed"):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not is_terminating(pod)


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port (Kubernetes' FindPort): a numeric targetPort
    as is, a named one by the containers' port names with the same protocol."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    smeta = service.get("metadata") or {}
    pmeta = pod.get("metadata") or {}
    if (
        spec.get("hostname")
        and spec.get("subdomain") == smeta.get("name")
        and pmeta.get("namespace") == smeta.get("namespace")
    ):
        return str(spec["hostname"])
    return None


def target_ref(pod: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """A Service's (map) selector matches the pod's labels, in the same namespace."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return False
    if (service.get("metadata") or {}).get("namespace") != (pod.get("metadata") or {}).get(
        "namespace"
    ):
        return False
    labels = labels_of(pod)
    return all(labels.get(k) == v for k, v in selector.items())


def service_keys_for_pod(services: Iterable[Obj], *pods: Obj) -> set[str]:
    return {key_of(s) for s in services for p in pods if selects(s, p)}


# --- Endpoints ----------------------------------------------------------------------------
def _port_key(ports: list[Obj]) -> tuple[tuple[Any, ...], ...]:
    return tuple(
        sorted(
            (p.get("name", ""), p.get("port"), p.get("protocol"), p.get("appProtocol", ""))
            for p in ports
        )
    )


def desired_subsets(service: Mapping[str, Any], pods: Iterable[Obj]) -> list[Obj]:
    """The repacked subsets of a Service's Endpoints for these (selected) pods."""
    spec = service.get("spec") or {}
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    Group = tuple[list[Obj], dict[str, Obj], dict[str, Obj]]
    groups: dict[tuple[tuple[Any, ...], ...], Group] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, tolerate):
            continue
        status = pod.get("status") or {}
        ip = str(status.get("podIP") or ((status.get("podIPs") or [{}])[0].get("ip") or ""))
        address: Obj = {"ip": ip}
        hostname = pod_hostname(pod, service)
        if hostname:
            address["hostname"] = hostname
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        address["targetRef"] = target_ref(pod)
        ports = pod_ports(pod, spec.get("ports") or [])
        if not ports and (spec.get("ports") or not headless):
            continue
        ready = tolerate or is_pod_ready(pod)
        entry = groups.setdefault(_port_key(ports), (ports, {}, {}))
        (entry[1] if ready else entry[2])[ip] = address
    subsets: list[Obj] = []
    for key in sorted(groups, key=repr):
        ports, ready_map, not_ready_map = groups[key]
        for ip in ready_map:
            not_ready_map.pop(ip, None)  # ready wins (RepackSubsets)
        subset: Obj = {}
        if ready_map:
            subset["addresses"] = [ready_map[i] for i in sorted(ready_map, key=_ip_key)]
        if not_ready_map:
            subset["notReadyAddresses"] = [
                not_ready_map[i] for i in sorted(not_ready_map, key=_ip_key)
            ]
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def pod_ports(pod: Mapping[str, Any], service_ports: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The Service's ports as this pod serves them (ports it cannot resolve left out),
    sorted by name and number."""
    out: list[Obj] = []
    for sp in service_ports:
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("name"):
            port["name"] = sp["name"]
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return sorted(out, key=lambda p: (str(p.get("name", "")), int(p["port"])))


def _ip_key(ip: str) -> tuple[int, ...] | tuple[str]:
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    return (ip,)


def _truncate(subsets: list[Obj], limit: int) -> tuple[list[Obj], bool]:
    total = sum(
        len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets
    )
    if total <= limit:
        return subsets, False
    out = copy.deepcopy(subsets)
    budget = limit
    for s in out:
        for field in ("addresses", "notReadyAddresses"):
            items = s.get(field) or []
            keep = items[: max(budget, 0)]
            budget -= len(keep)
            if keep:
                s[field] = keep
            else:
                s.pop(field, None)
    return [s for s in out if s.get("addresses") or s.get("notReadyAddresses")], True


def rfc3339_of(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class ServiceTriggers:
    """What the Endpoints and EndpointSlice controllers share: a queue of Service keys
    fed by Services and by the pods they select (both informers indexed by namespace),
    remembering per key when the first change not yet written was seen."""

    queue: WorkQueue
    services: Informer
    pods: Informer
    #: service key -> when the first change not yet written was seen.
    triggers: dict[str, float]

    def _follow_services_and_pods(self) -> None:
        self.pods.add_index("namespace", _namespace_index)
        self.services.add_index("namespace", _namespace_index)
        self.triggers = {}
        self.services.on(
            add=self._on_service,
            update=lambda _o, n: self._on_service(n),
            delete=self._on_service,
        )
        self.pods.on(add=self._on_pod, update=self._on_pod_update, delete=self._on_pod)

    def _enqueue(self, key: str) -> None:
        self.triggers.setdefault(key, time.time())
        self.queue.add(key)

    def _on_service(self, svc: Obj) -> None:
        self._enqueue(key_of(svc))

    def _enqueue_services_of(self, pod: Obj, *also: Obj) -> None:
        """Enqueue the Services selecting ``pod`` (or, before an update, ``also``)."""
        ns = str((pod.get("metadata") or {}).get("namespace") or "")
        for key in service_keys_for_pod(self.services.by_index("namespace", ns), *also, pod):
            self._enqueue(key)

    def _on_pod(self, pod: Obj) -> None:
        self._enqueue_services_of(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._enqueue_services_of(new, old)


class EndpointsController(ServiceTriggers):
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.workers = ctx.setting("endpoints.workers", 2)
        self.queue = WorkQueue()
        self.services: Informer = ctx.informers.informer("v1", "services")
        self.pods: Informer = ctx.informers.informer("v1", "pods")
        self.endpoints: Informer = ctx.informers.informer("v1", "endpoints")
        self._follow_services_and_pods()
        self.endpoints.on(delete=lambda ep: self.queue.add(key_of(ep)))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get(
            "resourceVersion"
        ):
            return
        super()._on_pod_update(old, new)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        for svc in self.services.items():
            self._enqueue(key_of(svc))
        await run_workers(self.queue, self.sync, workers=self.workers, name="endpoints")

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.triggers.pop(key, None)
            try:
                await self.client.delete("v1", "endpoints", name, namespace)
            except KubeError as exc:
                if not exc.not_found:
                    raise
            return
        spec = service.get("spec") or {}
        if not spec.get("selector"):
            self.triggers.pop(key, None)
            return  # endpoints of selector-less Services are managed by their users
        pods = [p for p in self.pods.by_index("namespace", namespace) if selects(service, p)]
        subsets, truncated = _truncate(desired_subsets(service, pods), MAX_ADDRESSES)
        labels = dict((service.get("metadata") or {}).get("labels") or {})
        if spec.get("clusterIP") == "None":
            labels[HEADLESS] = ""
        else:
            labels.pop(HEADLESS, None)
        current = self.endpoints.get(key)
        if current is not None:
            cur_meta = current.get("metadata") or {}
            cur_ann = dict(cur_meta.get("annotations") or {})
            if (
                (current.get("subsets") or []) == subsets
                and dict(cur_meta.get("labels") or {}) == labels
                and (OVER_CAPACITY in cur_ann) == truncated
            ):
                self.triggers.pop(key, None)
                return
            body = copy.deepcopy(current)
        else:
            body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}}
        meta = body["metadata"]
        annotations = dict(meta.get("annotations") or {})
        trigger = self.triggers.get(key)
        if trigger is not None:
            annotations[TRIGGER_TIME] = rfc3339_of(trigger)
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        for field, value in (("labels", labels), ("annotations", annotations)):
            if value:
                meta[field] = value
            else:
                meta.pop(field, None)
        body["subsets"] = subsets
        try:
            if current is None:
                await self.client.create("v1", "endpoints", body, namespace)
            else:
                await self.client.replace("v1", "endpoints", name, body, namespace)
        except KubeError as exc:
            if exc.already_exists or exc.not_found:
                # The cache is behind: try again once it has caught up.
                raise KubeError(409, "Conflict", str(exc)) from exc
            if exc.status == 403:  # the namespace is being terminated
                return
            raise
        self.triggers.pop(key, None)


def _namespace_index(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]
