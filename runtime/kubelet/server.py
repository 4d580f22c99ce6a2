"""The kubelet's own HTTPS endpoint: container logs (and, later, exec and port-forward).

Who calls it: the API server, which proxies ``pods/{name}/log`` here — the address is
the Node's InternalIP and ``status.daemonEndpoints.kubeletEndpoint.Port``, as in
Kubernetes. Requests must carry the cluster's bearer token. The serving certificate is
signed by the cluster CA.
"""

from __future__ import annotations

import contextlib
import hmac
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from runtime.kubelet import cri
from runtime.kubelet.cri import ContainerRuntime, ContainerState, LogOptions


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
    ) -> None:
        self.runtime = runtime
        self.token = token.encode()
        self.find_pod = find_pod
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

    async def logs(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
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

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.logs)
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


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")
