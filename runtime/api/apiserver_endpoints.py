"""The ``kubernetes`` Service's endpoints: where pods reach the API server
(kube-apiserver's master endpoint reconciler).

Who calls it: :class:`runtime.server.serve.ApiServer` once it listens where pods can
connect (the container bridge's gateway). It writes ``default/kubernetes`` as an
Endpoints object and an EndpointSlice (``kubernetes.io/service-name: kubernetes``,
without the EndpointSlice controller's ``managed-by`` label, so that controller leaves
it alone) with one ready endpoint, port ``https``
— so ``https://kubernetes.default.svc`` from a pod reaches this server through the
service proxy, as on any cluster. Internal writes: no requester, no admission plugins.
"""

from __future__ import annotations

from typing import Any

from kubemodel.errors import ApiError
from runtime.api.objects import ObjectAPI, WriteOptions

NAMESPACE = "default"
NAME = "kubernetes"
MANAGER = "kube-apiserver"


def _endpoints(ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }


def _slice(ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": "IPv6" if ":" in ip else "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


async def publish(api: ObjectAPI, ip: str, port: int) -> None:
    """Create or replace the ``kubernetes`` Endpoints and EndpointSlice."""
    opts = WriteOptions(field_manager=MANAGER)
    for (group, version, plural), body in (
        (("", "v1", "endpoints"), _endpoints(ip, port)),
        (("discovery.k8s.io", "v1", "endpointslices"), _slice(ip, port)),
    ):
        info = api.registry.get(group, version, plural)
        assert info is not None, plural
        live = api.store.latest(info.store_key, NAMESPACE, NAME)
        try:
            if live is None:
                await api.create(info, NAMESPACE, body, opts)
            else:
                body["metadata"]["resourceVersion"] = str(live.rv)
                await api.replace(info, NAMESPACE, NAME, body, opts)
        except ApiError as exc:
            if exc.reason not in ("AlreadyExists", "Conflict"):
                raise
