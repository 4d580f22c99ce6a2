"""The kubelet's own HTTPS endpoint: container logs, ``kubectl exec`` and resource usage
(port-forward is not served).

Who calls it: the API server, which proxies ``pods/{name}/log`` here and reads
``/stats/summary`` to serve the resource metrics API (``metrics.k8s.io``, what
metrics-server does in Kubernetes) — the address is the Node's InternalIP and
``status.daemonEndpoints.kubeletEndpoint.Port``, as in Kubernetes. Requests must carry
the API server's kubelet-client token (``KubeletOptions.server_token``: the
``<state_dir>/kubelet-client.token`` of :func:`runtime.server.tls.ensure_kubelet_client_token`,
never the admin token, which kubelets do not hold). The serving certificate is signed by
the cluster CA.

``/stats/summary`` answers in the shape of the kubelet's Summary API
(``k8s.io/kubelet/pkg/apis/stats/v1alpha1``): ``node`` with cpu ``usageNanoCores`` and
memory ``workingSetBytes``, and ``pods[]`` with ``podRef`` and per-container usage, from
:meth:`ContainerRuntime.stats` of the running containers of the pods this kubelet runs.
The node's usage is the sum of its pods' (no system containers are accounted).

``/exec/{namespace}/{pod}/{container}?command=..&stdin=..&stdout=..&stderr=..&tty=..``
runs a command in the newest instance of a running container, over a WebSocket that
speaks Kubernetes' remotecommand channel protocol (:mod:`runtime.kubelet.remotecommand`;
the API server proxies ``pods/{name}/exec`` here).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from runtime.kubelet import cri, remotecommand
from runtime.kubelet.cri import (
    ContainerRuntime,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecOptions,
    LogOptions,
)


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid integer {value!r}") from exc


class KubeletServer:
    def __init__(
        self,
        runtime: ContainerRuntime,
        token: str,
        find_pod: Callable[[str, str], Mapping[str, Any] | None],
        node_name: str = "",
    ) -> None:
        self.runtime = runtime
        self.token = token.encode()
        self.find_pod = find_pod
        self.node_name = node_name
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _check(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if (
            not self.token
            or not auth.startswith("Bearer ")
            or not hmac.compare_digest(auth[7:].strip().encode(), self.token)
        ):
            raise web.HTTPUnauthorized(text="Unauthorized")

    async def _instances(self, request: web.Request) -> tuple[str, str, list[ContainerStatus]]:
        """The pod's name, the container's name and its instances, newest first (404
        when the pod is not on this node)."""
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        pod = self.find_pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found on this node')
        uid = str((pod.get("metadata") or {}).get("uid"))
        instances = await self.runtime.list_containers(
            {cri.LABEL_POD_UID: uid, cri.LABEL_CONTAINER_NAME: container}
        )
        instances.sort(
            key=lambda c: (int(c.labels.get(cri.LABEL_RESTART_COUNT, "0")), c.created_at),
            reverse=True,
        )
        return name, container, instances

    async def logs(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        name, container, instances = await self._instances(request)
        q = request.query
        previous = q.get("previous") in ("true", "1")
        if previous:
            if len(instances) < 2:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container}" in pod "{name}" not found'
                )
            target = instances[1]
        else:
            if not instances or instances[0].state == ContainerState.CREATED:
                raise web.HTTPBadRequest(
                    text=f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
                )
            target = instances[0]
        options = LogOptions(
            follow=q.get("follow") in ("true", "1") and target.state == ContainerState.RUNNING,
            tail_lines=_int(q.get("tailLines")),
            since_seconds=_int(q.get("sinceSeconds")),
            timestamps=q.get("timestamps") in ("true", "1"),
            limit_bytes=_int(q.get("limitBytes")),
        )
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        # Closed on every exit (a client gone mid-stream too), which ends a follow.
        async with contextlib.aclosing(self.runtime.logs(target.id, options)) as stream:
            async for chunk in stream:
                if options.limit_bytes is not None:
                    chunk = chunk[: max(options.limit_bytes - sent, 0)]
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
        await response.write_eof()
        return response

    async def exec(self, request: web.Request) -> web.StreamResponse:
        """``kubectl exec``: the command in a running container, over the WebSocket
        channel protocol (:mod:`runtime.kubelet.remotecommand`). Errors before the
        upgrade are plain HTTP: 400 bad request or container not running, 404 pod or
        container not here, 403 no supported subprotocol offered."""
        return await self._stream(request, attach=False)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        """``kubectl attach`` (and ``kubectl run -i``): the container's own stdio over
        the same protocol and with the same errors as :meth:`exec`."""
        return await self._stream(request, attach=True)

    async def _stream(self, request: web.Request, *, attach: bool) -> web.StreamResponse:
        self._check(request)
        verb = "attach" if attach else "exec"
        try:
            wanted = remotecommand.parse_exec_request(request.query.items(), attach=attach)
        except remotecommand.ExecRequestError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        name, container, instances = await self._instances(request)
        if not instances:
            raise web.HTTPNotFound(text=f'container "{container}" not found in pod "{name}"')
        target = instances[0]
        if target.state != ContainerState.RUNNING:
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is not running '
                f"(state: {target.state})"
            )
        offered = remotecommand.offered_protocols(request.headers.get("Sec-WebSocket-Protocol", ""))
        protocol = remotecommand.negotiate(offered)
        ws = web.WebSocketResponse(
            protocols=remotecommand.PROTOCOLS if offered else (), compress=False
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(
                text=f"{verb} needs a WebSocket upgrade (subprotocols "
                f"{', '.join(remotecommand.PROTOCOLS)}); SPDY is not supported"
            )
        if protocol is None:
            raise web.HTTPForbidden(
                text=f"requested protocol(s) are not supported: {offered}; "
                f"supports {list(remotecommand.PROTOCOLS)}"
            )
        await ws.prepare(request)
        await remotecommand.send_opening(ws, wanted)
        options = ExecOptions(stdin=wanted.stdin, tty=wanted.tty)
        try:
            if attach:
                session = await self.runtime.attach_session(target.id, options)
            else:
                session = await self.runtime.exec_session(target.id, wanted.command, options)
        except cri.RuntimeError_ as exc:
            await remotecommand.send_failure(ws, protocol, str(exc))
            return ws
        await remotecommand.serve(ws, session, protocol, wanted)
        return ws

    async def summary(self, request: web.Request) -> web.Response:
        """The Summary API: current usage of the node and of each of its running pods."""
        self._check(request)
        return web.json_response(await self.stats_summary())

    async def stats_summary(self) -> dict[str, Any]:
        wanted = {cri.LABEL_NODE: self.node_name} if self.node_name else None
        running = [
            c
            for c in await self.runtime.list_containers(wanted)
            if c.state == ContainerState.RUNNING
        ]

        async def one(container_id: str) -> ContainerStats | None:
            try:
                return await self.runtime.stats(container_id)
            except Exception:  # gone between the listing and the sample: no usage
                return None

        samples = await asyncio.gather(*(one(c.id) for c in running))
        pods: dict[str, dict[str, Any]] = {}
        node_cpu = node_memory = 0
        latest = 0.0
        for container, sample in zip(running, samples, strict=True):
            if sample is None:
                continue
            labels = container.labels
            ns = labels.get(cri.LABEL_POD_NAMESPACE, "")
            name = labels.get(cri.LABEL_POD_NAME, "")
            uid = labels.get(cri.LABEL_POD_UID, "")
            pod = self.find_pod(ns, name)
            if pod is None or str((pod.get("metadata") or {}).get("uid")) != uid:
                continue  # not (or no longer) a pod of this node
            when = _rfc3339(sample.timestamp)
            entry = pods.setdefault(
                uid,
                {
                    "podRef": {"name": name, "namespace": ns, "uid": uid},
                    "startTime": (pod.get("status") or {}).get("startTime"),
                    "containers": [],
                    "cpu": {"time": when, "usageNanoCores": 0},
                    "memory": {"time": when, "workingSetBytes": 0},
                },
            )
            entry["containers"].append(
                {
                    "name": labels.get(cri.LABEL_CONTAINER_NAME, container.name),
                    "startTime": _rfc3339(container.started_at or container.created_at),
                    "cpu": {
                        "time": when,
                        "usageNanoCores": sample.cpu_usage_nanocores,
                        "usageCoreNanoSeconds": sample.cpu_usage_core_nanoseconds,
                    },
                    "memory": {"time": when, "workingSetBytes": sample.memory_working_set_bytes},
                }
            )
            entry["cpu"]["usageNanoCores"] += sample.cpu_usage_nanocores
            entry["memory"]["workingSetBytes"] += sample.memory_working_set_bytes
            node_cpu += sample.cpu_usage_nanocores
            node_memory += sample.memory_working_set_bytes
            latest = max(latest, sample.timestamp)
        now = _rfc3339(latest or dt.datetime.now(dt.UTC).timestamp())
        return {
            "node": {
                "nodeName": self.node_name,
                "cpu": {"time": now, "usageNanoCores": node_cpu},
                "memory": {"time": now, "workingSetBytes": node_memory},
            },
            "pods": list(pods.values()),
        }

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self.exec)
        app.router.add_post("/exec/{namespace}/{pod}/{container}", self.exec)  # SPDY: 400
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self.attach)
        app.router.add_post("/attach/{namespace}/{pod}/{container}", self.attach)
        app.router.add_get("/stats/summary", self.summary)
        app.router.add_get("/healthz", _ok)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server  # the bound socket tells the port when 0 was asked
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _rfc3339(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")
