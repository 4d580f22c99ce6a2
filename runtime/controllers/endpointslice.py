"""The EndpointSlice controller: keeps ``discovery.k8s.io/v1`` EndpointSlices for every
Service with a selector — kube-controller-manager's ``pkg/controller/endpointslice``.

Who runs it: the controller manager (``--controllers endpointslice``).

Kubernetes semantics followed: slices are named ``<service>-<random>`` (generateName),
labelled ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io`` (plus the Service's labels, and
``service.kubernetes.io/headless`` for headless Services), owned by the Service
(controller ownerReference, so the garbage collector removes them with it), one
addressType per Service IP family (IPv4 unless the Service says otherwise). Every pod
that should be in endpoints (terminating pods included) becomes an endpoint with its
address, conditions ``ready`` (serving and not terminating, or publishNotReadyAddresses),
``serving`` and ``terminating``, targetRef, nodeName, zone (the node's
``topology.kubernetes.io/zone`` label) and hostname; pods are grouped into
slices by their resolved port set (named ports resolve per pod), at most
``endpointslice.max-endpoints-per-slice`` (100) endpoints per slice. Existing slices are
updated in place (endpoints removed, changed ones replaced, new ones filling free room)
before new ones are created, slices left empty are deleted, and a Service with no
endpoints keeps one placeholder slice without endpoints or ports. The annotation
``endpoints.kubernetes.io/last-change-trigger-time`` is set on written slices. As
Kubernetes' EndpointSliceTracker, the controller remembers the resourceVersions it wrote
and does not act on a Service while its cache has not yet caught up with them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from kubeclient.informer import Informer, key_of, split_key
from kubeclient.rest import KubeError
from kubeclient.workqueue import WorkQueue, run_workers
from runtime.controllers.common import is_pod_ready, is_terminating, owner_reference
from runtime.controllers.endpoints import (
    HEADLESS,
    TRIGGER_TIME,
    ServiceTriggers,
    pod_hostname,
    pod_ports,
    rfc3339_of,
    selects,
    should_pod_be_in_endpoints,
    target_ref,
)
from runtime.controllers.manager import ControllerContext

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
API_VERSION = "discovery.k8s.io/v1"
ZONE = "topology.kubernetes.io/zone"

PortKey = tuple[tuple[Any, ...], ...]


def port_key(ports: Iterable[Mapping[str, Any]]) -> PortKey:
    return tuple(
        sorted(
            (
                str(p.get("name") or ""),
                int(p.get("port") or 0),
                str(p.get("protocol") or "TCP"),
                str(p.get("appProtocol") or ""),
            )
            for p in ports
        )
    )


def address_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def pod_address(pod: Mapping[str, Any], family: str) -> str | None:
    status = pod.get("status") or {}
    ips = [str(i.get("ip")) for i in status.get("podIPs") or [] if i.get("ip")]
    if status.get("podIP"):
        ips.insert(0, str(status["podIP"]))
    for ip in ips:
        if address_family(ip) == family:
            return ip
    return None


def desired_endpoints(
    service: Mapping[str, Any],
    pods: Iterable[Obj],
    family: str,
    zones: Mapping[str, str] | None = None,
) -> dict[PortKey, tuple[list[Obj], dict[str, Obj]]]:
    """port key -> (ports, targetRef uid -> endpoint) for a Service's selected pods
    (``zones``: node name -> its ``topology.kubernetes.io/zone``)."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    out: dict[PortKey, tuple[list[Obj], dict[str, Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ip = pod_address(pod, family)
        if ip is None:
            continue
        serving = publish or is_pod_ready(pod)
        terminating = is_terminating(pod)
        endpoint: Obj = {
            "addresses": [ip],
            "conditions": {
                "ready": publish or (serving and not terminating),
                "serving": serving,
                "terminating": terminating,
            },
        }
        hostname = pod_hostname(pod, service)
        if hostname:
            endpoint["hostname"] = hostname
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            endpoint["nodeName"] = node
            zone = (zones or {}).get(str(node))
            if zone:
                endpoint["zone"] = zone
        endpoint["targetRef"] = target_ref(pod)
        # Slice ports always carry a name ("" for an unnamed Service port).
        ports = [{"name": "", **p} for p in pod_ports(pod, spec.get("ports") or [])]
        entry = out.setdefault(port_key(ports), (ports, {}))
        entry[1][str(endpoint["targetRef"]["uid"])] = endpoint
    return out


def _endpoint_id(endpoint: Mapping[str, Any]) -> str:
    ref = endpoint.get("targetRef") or {}
    return str(ref.get("uid") or (endpoint.get("addresses") or [""])[0])


class EndpointSliceController(ServiceTriggers):
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.workers = ctx.setting("endpointslice.workers", 2)
        self.max_per_slice = ctx.setting("endpointslice.max-endpoints-per-slice", 100)
        self.queue = WorkQueue()
        self.services: Informer = ctx.informers.informer("v1", "services")
        self.pods: Informer = ctx.informers.informer("v1", "pods")
        self.nodes: Informer = ctx.informers.informer("v1", "nodes")
        self.slices: Informer = ctx.informers.informer(API_VERSION, "endpointslices")
        self._follow_services_and_pods()
        self.slices.add_index("service", _service_index)
        #: service key -> slice name -> resourceVersion written ("" = deleted by us).
        self.written: dict[str, dict[str, str]] = {}
        self.slices.on(
            add=self._on_slice,
            update=lambda _o, n: self._on_slice(n),
            delete=self._on_slice,
        )

    # --- handlers -------------------------------------------------------------------------
    def _on_slice(self, eps: Obj) -> None:
        for key in _service_index(eps):
            self.queue.add(key)

    # --- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        await self.ctx.informers.wait_synced()
        for svc in self.services.items():
            self._enqueue(key_of(svc))
        await run_workers(self.queue, self.sync, workers=self.workers, name="endpointslice")

    def _zones(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for node in self.nodes.items():
            meta = node.get("metadata") or {}
            zone = (meta.get("labels") or {}).get(ZONE)
            if zone:
                out[str(meta.get("name"))] = str(zone)
        return out

    def _cache_is_stale(self, key: str) -> bool:
        for name, rv in (self.written.get(key) or {}).items():
            cached = self.slices.get(f"{split_key(key)[0]}/{name}")
            if rv == "":
                if cached is not None:
                    return True
                continue
            if cached is None:
                return True
            have = str((cached.get("metadata") or {}).get("resourceVersion") or "0")
            if have.isdigit() and rv.isdigit() and int(have) < int(rv):
                return True
        return False

    async def sync(self, key: str) -> None:
        namespace = split_key(key)[0]
        if self._cache_is_stale(key):
            self.queue.add_after(key, 0.2)
            return
        self.written.pop(key, None)
        service = self.services.get(key)
        existing = self.slices.by_index("service", key)
        if service is None or not (service.get("spec") or {}).get("selector"):
            self.triggers.pop(key, None)
            if service is None:
                for eps in existing:
                    await self._delete(key, eps)
            return
        pods = [p for p in self.pods.by_index("namespace", namespace) if selects(service, p)]
        families = list((service.get("spec") or {}).get("ipFamilies") or ["IPv4"])
        wanted_families = set(families)
        for eps in existing:
            if eps.get("addressType") not in wanted_families:
                await self._delete(key, eps)
        for family in families:
            mine = [e for e in existing if e.get("addressType") == family]
            await self._reconcile(
                key, service, desired_endpoints(service, pods, family, self._zones()), mine, family
            )
        self.triggers.pop(key, None)

    async def _reconcile(
        self,
        key: str,
        service: Obj,
        desired: dict[PortKey, tuple[list[Obj], dict[str, Obj]]],
        existing: list[Obj],
        family: str,
    ) -> None:
        placeholder_needed = not any(eps for _, eps in desired.values())
        if placeholder_needed:
            desired = {}
        labels = self._labels(service)
        to_create: list[Obj] = []
        to_update: list[Obj] = []
        to_delete: list[Obj] = []
        by_ports: dict[PortKey, list[Obj]] = {}
        for eps in existing:
            by_ports.setdefault(port_key(eps.get("ports") or []), []).append(eps)
        for pk, slices in by_ports.items():
            if pk not in desired:
                to_delete.extend(slices)
        for pk, (ports, wanted) in desired.items():
            remaining = dict(wanted)
            slices = sorted(by_ports.get(pk, []), key=lambda e: str(e["metadata"]["name"]))
            kept: list[tuple[Obj, bool]] = []
            for eps in slices:
                new_eps = []
                for ep in eps.get("endpoints") or []:
                    found = remaining.pop(_endpoint_id(ep), None)
                    if found is not None:
                        new_eps.append(found)
                updated = copy.deepcopy(eps)
                updated["endpoints"] = new_eps
                dirty = new_eps != (eps.get("endpoints") or []) or not self._labels_match(
                    eps, labels
                )
                kept.append((updated, dirty))
            leftovers = list(remaining.values())
            for updated, dirty in kept:
                room = self.max_per_slice - len(updated["endpoints"])
                if room > 0 and leftovers:
                    updated["endpoints"].extend(leftovers[:room])
                    leftovers = leftovers[room:]
                    dirty = True
                if not updated["endpoints"]:
                    to_delete.append(updated)
                elif dirty:
                    to_update.append(updated)
            while leftovers:
                chunk, leftovers = (
                    leftovers[: self.max_per_slice],
                    leftovers[self.max_per_slice :],
                )
                to_create.append(self._new_slice(service, labels, family, ports, chunk))
        if placeholder_needed:
            placeholders = [e for e in existing if not e.get("endpoints") and not e.get("ports")]
            keep = placeholders[0] if placeholders else None
            to_delete = [e for e in existing if e is not keep]
            to_update = []
            if keep is None:
                to_create.append(self._new_slice(service, labels, family, [], []))
            elif not self._labels_match(keep, labels):
                to_update.append(copy.deepcopy(keep))
        for eps in to_update:
            await self._write(key, service, eps, labels)
        for eps in to_create:
            await self._write(key, service, eps, labels)
        for eps in to_delete:
            await self._delete(key, eps)

    def _labels(self, service: Obj) -> dict[str, str]:
        meta = service.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels.pop(MANAGED_BY, None)
        labels[SERVICE_NAME] = str(meta.get("name"))
        labels[MANAGED_BY] = CONTROLLER_NAME
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS] = ""
        else:
            labels.pop(HEADLESS, None)
        return labels

    @staticmethod
    def _labels_match(eps: Obj, labels: Mapping[str, str]) -> bool:
        return dict((eps.get("metadata") or {}).get("labels") or {}) == dict(labels)

    @staticmethod
    def _new_slice(
        service: Obj, labels: Mapping[str, str], family: str, ports: list[Obj], endpoints: list[Obj]
    ) -> Obj:
        meta = service.get("metadata") or {}
        return {
            "apiVersion": API_VERSION,
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta.get('name')}-",
                "namespace": meta.get("namespace"),
                "labels": dict(labels),
                "ownerReferences": [
                    owner_reference({**service, "apiVersion": "v1", "kind": "Service"})
                ],
            },
            "addressType": family,
            "endpoints": endpoints,
            "ports": ports,
        }

    async def _write(self, key: str, service: Obj, eps: Obj, labels: Mapping[str, str]) -> None:
        namespace = str((service.get("metadata") or {}).get("namespace"))
        meta = eps["metadata"]
        meta["labels"] = dict(labels)
        trigger = self.triggers.get(key)
        if trigger is not None:
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                TRIGGER_TIME: rfc3339_of(trigger),
            }
        try:
            if meta.get("name"):
                out = await self.client.replace(
                    API_VERSION, "endpointslices", str(meta["name"]), eps, namespace
                )
            else:
                out = await self.client.create(API_VERSION, "endpointslices", eps, namespace)
        except KubeError as exc:
            if exc.status == 403:  # the namespace is being terminated
                return
            raise
        out_meta = out.get("metadata") or {}
        self.written.setdefault(key, {})[str(out_meta.get("name"))] = str(
            out_meta.get("resourceVersion") or ""
        )

    async def _delete(self, key: str, eps: Obj) -> None:
        meta = eps.get("metadata") or {}
        try:
            await self.client.delete(
                API_VERSION, "endpointslices", str(meta.get("name")), str(meta.get("namespace"))
            )
        except KubeError as exc:
            if not exc.not_found:
                raise
        self.written.setdefault(key, {})[str(meta.get("name"))] = ""


def _service_index(eps: Obj) -> list[str]:
    meta = eps.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER_NAME or not labels.get(SERVICE_NAME):
        return []
    return [f"{meta.get('namespace')}/{labels[SERVICE_NAME]}"]
