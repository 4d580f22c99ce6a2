"""Liveness, readiness and startup probes of the built-in kubelet, with the semantics of
Kubernetes' prober (pkg/kubelet/prober and pkg/probe).

Who calls it: the kubelet's pod sync. After each sync it hands the pod, its IP and the
runtime's view of its containers to :meth:`ProbeManager.sync_pod`, which keeps one
worker (an asyncio task) per pod, container, container ID and probe kind. The sync then
asks :meth:`~ProbeManager.readiness` and :meth:`~ProbeManager.started` for the
container statuses, :meth:`~ProbeManager.liveness_failed` for containers to restart,
and drains :meth:`~ProbeManager.events` into ``Unhealthy``/``ProbeWarning`` Events.
Whenever a stored result changes the manager calls ``on_change(pod_uid)`` so the
kubelet re-syncs that pod.

Semantics (as the kubelet's):

* handlers: ``httpGet`` (HTTP/HTTPS without certificate verification, host defaulting
  to the pod IP, numeric or named port, ``httpHeaders``, 200-399 succeeds, same-host
  redirects followed up to 10 requests, a redirect to another host ends the probe with
  a warning, at most 10 KiB of body read), ``tcpSocket`` (connect within the timeout),
  ``exec`` (:meth:`ContainerRuntime.exec` with ``timeoutSeconds``; exit 0 succeeds).
  ``grpc`` is not supported: it yields an unknown result (nothing changes), one
  event per container says so, and that worker stops. With the fake runtime, network
  probes reach only loopback hosts (its pod IPs belong to nobody), likewise said once.
* ``initialDelaySeconds`` (counted from the container's start), ``periodSeconds``
  (default 10), ``timeoutSeconds`` (1), ``successThreshold`` (1; always 1 for liveness
  and startup), ``failureThreshold`` (3). The first probe runs when the worker starts,
  then on every period tick; probes are skipped until the initial delay has passed. A
  worker created within one period of the manager's creation (a restarted kubelet)
  first waits a small random jitter.
* readiness starts as failed, liveness as succeeded, startup as unknown; readiness and
  liveness are not probed until the startup probe succeeds, after which the startup
  worker stops. A liveness or startup failure past the threshold puts the worker on
  hold until the container is replaced, and is reported once per container ID. A new
  container ID starts new workers with fresh results. While the pod is being deleted,
  liveness and startup are set to succeeded and stop.
* errors (an unresolvable port, a runtime failure of exec) are retried three times and
  then thrown away: the result does not change, an ``Unhealthy`` event says so.

Timing runs on asyncio timers; :class:`ProbeOptions` scales periods, delays and
timeouts so tests run in milliseconds, and the clock is injectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import ipaddress
import json
import math
import os
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import structlog

from runtime.kubelet.cri import ContainerRuntime, ContainerState, ContainerStatus, RuntimeError_

log = structlog.get_logger(__name__)

USER_AGENT = "kube-probe/1.35"
MAX_BODY_BYTES = 10 * 1024  # what the kubelet reads of an HTTP body or exec output
MAX_HEADER_BYTES = 1 << 20
MAX_REDIRECT_REQUESTS = 10
PROBE_RETRIES = 3
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class ProbeKind(enum.StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


class ProbeResult(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


_SPEC_FIELDS = {
    ProbeKind.STARTUP: "startupProbe",
    ProbeKind.READINESS: "readinessProbe",
    ProbeKind.LIVENESS: "livenessProbe",
}
_INITIAL = {
    ProbeKind.READINESS: ProbeResult.FAILURE,
    ProbeKind.LIVENESS: ProbeResult.SUCCESS,
    ProbeKind.STARTUP: ProbeResult.UNKNOWN,
}


@dataclass(frozen=True)
class ProbeEvent:
    """A Warning event the kubelet should record on the pod (involvedObject fieldPath
    ``field_path``): reason ``Unhealthy`` for failures and errors, ``ProbeWarning`` for
    successes with a warning (a redirect to another host)."""

    pod_uid: str
    namespace: str
    pod_name: str
    container_name: str
    field_path: str  # "spec.containers{name}" or "spec.initContainers{name}"
    kind: ProbeKind
    type: str  # "Warning"
    reason: str  # "Unhealthy" | "ProbeWarning"
    message: str
    timestamp: float  # unix seconds


@dataclass
class ProbeOptions:
    """Tuning for tests and benchmarks; the defaults are the kubelet's behaviour."""

    # Multiplies periodSeconds, initialDelaySeconds and the start-up jitter.
    time_scale: float = 1.0
    # Multiplies timeoutSeconds.
    timeout_scale: float = 1.0
    # Workers created within one period of the manager's creation wait up to this
    # fraction of their period before the first probe (kubelet: the whole period).
    startup_jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)
    # The clock of ContainerStatus.started_at (unix seconds).
    wall_clock: Callable[[], float] = time.time
    max_events: int = 1000  # undrained events beyond this are dropped, oldest first
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class _Spec:
    probe: Mapping[str, Any]
    initial_delay: int
    period: int
    timeout: int
    success_threshold: int
    failure_threshold: int


def _count(probe: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = probe.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        return default
    return max(value, minimum)


def _parse_spec(kind: ProbeKind, probe: Mapping[str, Any]) -> _Spec:
    success = _count(probe, "successThreshold", 1, 1)
    return _Spec(
        probe=probe,
        initial_delay=_count(probe, "initialDelaySeconds", 0, 0),
        period=_count(probe, "periodSeconds", 10, 1),
        timeout=_count(probe, "timeoutSeconds", 1, 1),
        success_threshold=success if kind is ProbeKind.READINESS else 1,
        failure_threshold=_count(probe, "failureThreshold", 3, 1),
    )


@dataclass
class _Container:
    spec: Mapping[str, Any]
    field_path: str


@dataclass
class _Pod:
    pod: Mapping[str, Any]
    pod_ip: str
    containers: dict[str, ContainerStatus]
    specs: dict[str, _Container]

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))


@dataclass
class _Worker:
    uid: str
    name: str
    kind: ProbeKind
    container_id: str
    spec: _Spec
    started_at: float  # on the manager's clock
    result: ProbeResult
    output: str = ""
    last_result: ProbeResult | None = None
    run: int = 0
    on_hold: bool = False
    reported: bool = False  # the liveness/startup failure was handed to the kubelet
    stopped: bool = False
    trigger: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Outcome:
    """One probe's raw result: ``warning`` counts as success with an event."""

    result: str  # "success" | "warning" | "failure" | "unknown"
    output: str = ""
    error: str | None = None  # set for "unknown": the prober could not run the probe
    retry: bool = True  # errors worth retrying; others end the worker (said once)


class _ProbeError(Exception):
    """The probe could not be run (its result is thrown away)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class _HTTPError(Exception):
    pass


@dataclass(frozen=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def _resolve_port(value: Any, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(value, bool) or value is None or value == "":
        raise _ProbeError("the probe has no port")
    if isinstance(value, int):
        port = value
    else:
        name = str(value)
        for p in container.get("ports") or ():
            if p.get("name") == name and isinstance(p.get("containerPort"), int):
                port = int(p["containerPort"])
                break
        else:
            if not name.isdigit():
                raise _ProbeError(
                    f"port {name!r} is neither a number nor the name of a port of container "
                    f"{container.get('name', '')!r}"
                )
            port = int(name)
    if not 0 < port < 65536:
        raise _ProbeError(f"invalid port number: {port}")
    return port


def _go_quote(text: str) -> str:
    """A string quoted as Go's %q quotes it (close enough for messages)."""
    return json.dumps(text, ensure_ascii=False)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(exc: OSError, host: str) -> str:
    """An OSError from connecting, worded as Go's net package words it."""
    if isinstance(exc, socket.gaierror):
        return f"lookup {host}: no such host"
    if exc.errno == errno.ETIMEDOUT:
        return "i/o timeout"
    if exc.errno is not None:
        text = os.strerror(exc.errno)  # asyncio rewrites exc.strerror
        return "connect: " + text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


def _insecure_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    line = await reader.readline()
    if not line:
        raise _HTTPError("EOF")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        raise _HTTPError(
            "net/http: HTTP/1.x transport connection broken: malformed HTTP response "
            f"{line[:64].decode('latin-1')!r}"
        )
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        raw = await reader.readline()
        if not raw:
            raise _HTTPError("unexpected EOF")
        if raw in (b"\r\n", b"\n"):
            return int(parts[1]), headers
        total += len(raw)
        if total > MAX_HEADER_BYTES:
            raise _HTTPError(
                f"net/http: server response headers exceeded {MAX_HEADER_BYTES} bytes; aborted"
            )
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))


async def _read_body(
    reader: asyncio.StreamReader, status: int, headers: list[tuple[str, str]], limit: int
) -> bytes:
    """At most ``limit`` bytes of the body (more is not an error, as in the kubelet)."""
    if status in (204, 304):
        return b""
    values = dict(headers)
    if "chunked" in values.get("transfer-encoding", "").lower():
        body = bytearray()
        while len(body) < limit:
            size_line = await reader.readline()
            if not size_line:
                raise _HTTPError("unexpected EOF")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _HTTPError("net/http: malformed chunked encoding") from None
            if size == 0:
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return bytes(body[:limit])
    if "content-length" in values:
        try:
            length = int(values["content-length"])
        except ValueError:
            raise _HTTPError("net/http: malformed Content-Length") from None
        return await reader.readexactly(min(max(length, 0), limit))
    body = bytearray()
    while len(body) < limit:
        chunk = await reader.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def _http_get(
    url: SplitResult, headers: list[tuple[str, str]], host_header: str, tls: ssl.SSLContext
) -> _Response:
    """One HTTP/1.1 GET on a fresh connection (the kubelet disables keep-alives)."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls if url.scheme == "https" else None
        )
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise _HTTPError(f"tls: {exc}") from None
        raise _HTTPError(
            f"dial tcp {_join_host_port(host, port)}: {_dial_error(exc, host)}"
        ) from None
    try:
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines += ["Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("utf-8"))
        await writer.drain()
        while True:
            status, response_headers = await _read_head(reader)
            if not 100 <= status < 200 or status == 101:
                break
        body = await _read_body(reader, status, response_headers, MAX_BODY_BYTES)
        return _Response(status, response_headers, body)
    except asyncio.IncompleteReadError:
        raise _HTTPError("unexpected EOF") from None
    except ValueError:  # a line longer than the stream limit
        raise _HTTPError("net/http: HTTP/1.x transport connection broken: line too long") from None
    except OSError as exc:
        raise _HTTPError(str(exc) or type(exc).__name__) from None
    finally:
        writer.close()


class ProbeManager:
    """Runs the probes of every container of the pods of one kubelet."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        on_change: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        options: ProbeOptions | None = None,
    ) -> None:
        self._runtime = runtime
        self._on_change = on_change
        self._clock = clock
        self._opts = options or ProbeOptions()
        self._created = clock()
        self._pods: dict[str, _Pod] = {}
        self._workers: dict[str, dict[tuple[str, ProbeKind], _Worker]] = {}
        self._events: deque[ProbeEvent] = deque(maxlen=max(self._opts.max_events, 1))
        self._tls = _insecure_tls()

    # --- what the kubelet calls ------------------------------------------------------
    def sync_pod(
        self, pod: Mapping[str, Any], pod_ip: str, containers: Mapping[str, ContainerStatus]
    ) -> None:
        """Start workers for the running containers that have probes and stop those of
        containers that are gone, exited or replaced. Call on the event loop."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        spec = pod.get("spec") or {}
        specs: dict[str, _Container] = {}
        for c in spec.get("containers") or ():
            specs[c.get("name", "")] = _Container(c, f"spec.containers{{{c.get('name', '')}}}")
        for c in spec.get("initContainers") or ():
            if c.get("restartPolicy") == "Always":  # sidecars are the only probed init containers
                specs[c.get("name", "")] = _Container(
                    c, f"spec.initContainers{{{c.get('name', '')}}}"
                )
        self._pods[uid] = _Pod(pod, pod_ip, dict(containers), specs)
        workers = self._workers.setdefault(uid, {})
        wanted: set[tuple[str, ProbeKind]] = set()
        for name, container in specs.items():
            status = containers.get(name)
            if status is None or status.state != ContainerState.RUNNING:
                continue
            for kind, spec_field in _SPEC_FIELDS.items():
                probe = container.spec.get(spec_field)
                if not probe:
                    continue
                wanted.add((name, kind))
                worker = workers.get((name, kind))
                if worker is not None and worker.container_id == status.id:
                    continue
                if worker is not None:
                    self._stop(worker)
                workers[(name, kind)] = self._start(
                    uid, name, kind, status, _parse_spec(kind, probe)
                )
        for key in [k for k in workers if k not in wanted]:
            self._stop(workers.pop(key))
        if not workers:
            del self._workers[uid]

    def readiness(self, pod_uid: str, container_name: str) -> bool:
        """Whether the container is ready: running, started, and its readiness probe
        succeeded (a container without a readiness probe is ready once started)."""
        status = self._running(pod_uid, container_name)
        if status is None or not self.started(pod_uid, container_name):
            return False
        if not self._has_probe(pod_uid, container_name, ProbeKind.READINESS):
            return True
        worker = self._worker(pod_uid, container_name, ProbeKind.READINESS, status.id)
        return worker is not None and worker.result is ProbeResult.SUCCESS

    def started(self, pod_uid: str, container_name: str) -> bool:
        """Whether the container is running and its startup probe succeeded (a running
        container without a startup probe has started)."""
        status = self._running(pod_uid, container_name)
        if status is None:
            return False
        if not self._has_probe(pod_uid, container_name, ProbeKind.STARTUP):
            return True
        worker = self._worker(pod_uid, container_name, ProbeKind.STARTUP, status.id)
        return worker is not None and worker.result is ProbeResult.SUCCESS

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> str | None:
        """The message when this container failed its liveness (or startup) probe past
        the failure threshold and must be restarted; returned once per container ID."""
        for kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            worker = self._worker(pod_uid, container_name, kind, container_id)
            if worker is not None and worker.result is ProbeResult.FAILURE and not worker.reported:
                worker.reported = True
                return f"{kind} probe failed: {worker.output}"
        return None

    def remove_pod(self, pod_uid: str) -> None:
        """Stop every worker of the pod and forget its results."""
        for worker in self._workers.pop(pod_uid, {}).values():
            self._stop(worker)
        self._pods.pop(pod_uid, None)

    def events(self) -> list[ProbeEvent]:
        """The events recorded since the last call (then forgotten)."""
        drained = list(self._events)
        self._events.clear()
        return drained

    async def close(self) -> None:
        """Stop every worker and wait for them."""
        tasks = []
        for uid in list(self._workers):
            for worker in self._workers.pop(uid).values():
                self._stop(worker)
                if worker.task is not None:
                    tasks.append(worker.task)
        self._pods.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- state -----------------------------------------------------------------------
    def _running(self, uid: str, name: str) -> ContainerStatus | None:
        pod = self._pods.get(uid)
        status = pod.containers.get(name) if pod is not None else None
        if status is None or status.state != ContainerState.RUNNING:
            return None
        return status

    def _has_probe(self, uid: str, name: str, kind: ProbeKind) -> bool:
        pod = self._pods.get(uid)
        container = pod.specs.get(name) if pod is not None else None
        return container is not None and bool(container.spec.get(_SPEC_FIELDS[kind]))

    def _worker(self, uid: str, name: str, kind: ProbeKind, container_id: str) -> _Worker | None:
        worker = self._workers.get(uid, {}).get((name, kind))
        if worker is None or worker.container_id != container_id:
            return None
        return worker

    def _start(
        self, uid: str, name: str, kind: ProbeKind, status: ContainerStatus, spec: _Spec
    ) -> _Worker:
        now = self._clock()
        if status.started_at is not None:
            started_at = now - max(0.0, self._opts.wall_clock() - status.started_at)
        else:
            started_at = now
        worker = _Worker(uid, name, kind, status.id, spec, started_at, _INITIAL[kind])
        worker.task = asyncio.get_running_loop().create_task(
            self._run(worker), name=f"probe {kind} {uid}/{name}"
        )
        return worker

    def _stop(self, worker: _Worker) -> None:
        worker.stopped = True
        if worker.task is not None and not worker.task.done():
            worker.task.cancel()

    def _set(self, worker: _Worker, result: ProbeResult, output: str) -> None:
        worker.output = output
        if worker.result is result:
            return
        worker.result = result
        try:
            self._on_change(worker.uid)
        except Exception:
            log.exception("probe_on_change_failed", pod_uid=worker.uid)

    def _event(self, worker: _Worker, reason: str, message: str) -> None:
        pod = self._pods.get(worker.uid)
        if pod is None:
            return
        meta = pod.pod.get("metadata") or {}
        container = pod.specs.get(worker.name)
        self._events.append(
            ProbeEvent(
                pod_uid=worker.uid,
                namespace=str(meta.get("namespace", "")),
                pod_name=str(meta.get("name", "")),
                container_name=worker.name,
                field_path=container.field_path if container is not None else "",
                kind=worker.kind,
                type="Warning",
                reason=reason,
                message=message,
                timestamp=self._opts.wall_clock(),
            )
        )

    # --- the worker loop -------------------------------------------------------------
    async def _run(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        period = worker.spec.period * self._opts.time_scale
        if self._opts.startup_jitter > 0 and self._clock() - self._created < period:
            # A restarted kubelet would otherwise start every probe at once.
            await asyncio.sleep(self._opts.rng.random() * period * self._opts.startup_jitter)
        next_tick = loop.time() + period
        while True:
            try:
                keep_going = await self._do_probe(worker)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe_crashed", pod_uid=worker.uid, container=worker.name)
                keep_going = True
            if not keep_going or worker.stopped:
                return
            now = loop.time()
            if next_tick <= now:
                next_tick += (math.floor((now - next_tick) / period) + 1) * period
            if not worker.trigger.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(next_tick):
                        await worker.trigger.wait()
            worker.trigger.clear()

    async def _do_probe(self, worker: _Worker) -> bool:
        """Probe once and record the result; whether the worker should go on."""
        pod = self._pods.get(worker.uid)
        if pod is None or worker.on_hold:
            return False
        if pod.deleting and worker.kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            self._set(worker, ProbeResult.SUCCESS, "")  # a quiet shutdown
            return False
        delay = worker.spec.initial_delay * self._opts.time_scale
        if self._clock() - worker.started_at < delay:
            return True
        if worker.kind is not ProbeKind.STARTUP and not self.started(worker.uid, worker.name):
            return True
        outcome = await self._probe_with_retries(worker, pod)
        if worker.stopped:
            return False
        if outcome.result == "unknown":
            return outcome.retry  # what cannot work for this container is said once
        result = ProbeResult.FAILURE if outcome.result == "failure" else ProbeResult.SUCCESS
        if result is worker.last_result:
            worker.run += 1
        else:
            worker.last_result = result
            worker.run = 1
        if (result is ProbeResult.FAILURE and worker.run < worker.spec.failure_threshold) or (
            result is ProbeResult.SUCCESS and worker.run < worker.spec.success_threshold
        ):
            return True
        self._set(worker, result, outcome.output)
        if worker.kind is not ProbeKind.READINESS and result is ProbeResult.FAILURE:
            # The container will be restarted; probe again only a new container.
            worker.on_hold = True
            worker.run = 0
            return False
        if worker.kind is ProbeKind.STARTUP:
            readiness = self._worker(
                worker.uid, worker.name, ProbeKind.READINESS, worker.container_id
            )
            if readiness is not None:
                readiness.trigger.set()  # be ready as soon as possible
            return False
        return True

    async def _probe_with_retries(self, worker: _Worker, pod: _Pod) -> _Outcome:
        outcome = _Outcome("unknown", error="not probed")
        for _ in range(PROBE_RETRIES):
            outcome = await self._probe(worker, pod)
            if outcome.error is None or not outcome.retry or worker.stopped:
                break
        if worker.stopped:
            return outcome
        kind = worker.kind
        if outcome.error is not None:
            self._event(
                worker,
                "Unhealthy",
                f"{kind} probe errored and resulted in unknown state: {outcome.error}",
            )
            log.debug("probe_errored", pod_uid=worker.uid, container=worker.name, kind=str(kind))
        elif outcome.result == "warning":
            self._event(worker, "ProbeWarning", f"{kind} probe warning: {outcome.output}")
        elif outcome.result == "failure":
            self._event(worker, "Unhealthy", f"{kind} probe failed: {outcome.output}")
        return outcome

    async def _probe(self, worker: _Worker, pod: _Pod) -> _Outcome:
        probe = worker.spec.probe
        container = pod.specs.get(worker.name)
        container_spec: Mapping[str, Any] = container.spec if container is not None else {}
        timeout = worker.spec.timeout * self._opts.timeout_scale
        try:
            if probe.get("exec") is not None:
                return await self._exec(worker, probe["exec"], timeout)
            if probe.get("httpGet") is not None:
                return await self._http(probe["httpGet"], container_spec, pod.pod_ip, timeout)
            if probe.get("tcpSocket") is not None:
                return await self._tcp(probe["tcpSocket"], container_spec, pod.pod_ip, timeout)
        except _ProbeError as exc:
            return _Outcome("unknown", error=str(exc), retry=exc.retry)
        if probe.get("grpc") is not None:
            return _Outcome(
                "unknown",
                error="grpc probes are not supported by the built-in kubelet; "
                "use an httpGet, tcpSocket or exec probe",
                retry=False,
            )
        return _Outcome("unknown", error="the probe has no handler", retry=False)

    # --- handlers --------------------------------------------------------------------
    def _check_reachable(self, host: str) -> None:
        if not host:
            raise _ProbeError("the pod has no IP address yet")
        if self._runtime.name != "fake":
            return
        # The fake runtime's pod IPs belong to nobody: never send traffic there.
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise _ProbeError(
                f"{host} is a fake runtime address that nothing listens on; network probes "
                "of fake pods reach only loopback hosts (use an exec probe)",
                retry=False,
            )

    async def _exec(self, worker: _Worker, action: Mapping[str, Any], timeout: float) -> _Outcome:
        command = tuple(str(part) for part in action.get("command") or ())
        try:
            async with asyncio.timeout(timeout):
                result = await self._runtime.exec(worker.container_id, command, timeout)
        except TimeoutError:
            return _Outcome("failure", f"command {_go_quote(' '.join(command))} timed out")
        except RuntimeError_ as exc:
            return _Outcome("unknown", error=str(exc))
        output = (result.stdout + result.stderr)[:MAX_BODY_BYTES].decode("utf-8", "replace")
        return _Outcome("success" if result.exit_code == 0 else "failure", output)

    async def _tcp(
        self, action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, timeout: float
    ) -> _Outcome:
        port = _resolve_port(action.get("port"), container)
        host = str(action.get("host") or pod_ip)
        self._check_reachable(host)
        address = _join_host_port(host, port)
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return _Outcome("failure", f"dial tcp {address}: i/o timeout")
        except OSError as exc:
            return _Outcome("failure", f"dial tcp {address}: {_dial_error(exc, host)}")
        writer.close()
        return _Outcome("success")

    async def _http(
        self, action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, timeout: float
    ) -> _Outcome:
        scheme = str(action.get("scheme") or "HTTP").lower()
        host = str(action.get("host") or pod_ip)
        self._check_reachable(host)
        port = _resolve_port(action.get("port"), container)
        path = urlsplit(str(action.get("path") or "/"))
        netloc = _join_host_port(host, port)
        request_path = path.path if path.path.startswith("/") else "/" + path.path
        url = urlunsplit((scheme, netloc, request_path, path.query, ""))

        given = [
            (str(h.get("name", "")), str(h.get("value", "")))
            for h in action.get("httpHeaders") or ()
        ]
        names = {name.lower() for name, _ in given}
        host_override = next((v for n, v in given if n.lower() == "host"), "")
        headers = [(n, v) for n, v in given if n.lower() != "host"]
        if "user-agent" not in names:
            headers.append(("User-Agent", self._opts.user_agent))
        if "accept" not in names:
            headers.append(("Accept", "*/*"))
        elif next(v for n, v in given if n.lower() == "accept") == "":
            headers = [(n, v) for n, v in headers if n.lower() != "accept"]
        for name, value in [*headers, ("Host", host_override)]:
            if any(ch in name + value for ch in "\r\n\0"):
                return _Outcome(
                    "failure", f'Get "{url}": net/http: invalid header field value for "{name}"'
                )

        current = url
        host_header = host_override or netloc
        origin_host = urlsplit(url).hostname
        try:
            async with asyncio.timeout(timeout):
                for hop in range(MAX_REDIRECT_REQUESTS):
                    split = urlsplit(current)
                    if split.scheme not in ("http", "https"):
                        return _Outcome(
                            "failure",
                            f'Get "{current}": unsupported protocol scheme "{split.scheme}"',
                        )
                    response = await _http_get(split, headers, host_header, self._tls)
                    location = response.header("location")
                    if response.status not in _REDIRECT_CODES or location is None:
                        break
                    target = urljoin(current, location)
                    if urlsplit(target).hostname != origin_host:
                        break  # not followed: the redirect itself is the answer
                    if hop + 1 >= MAX_REDIRECT_REQUESTS:
                        return _Outcome(
                            "failure",
                            f'Get "{location}": stopped after {MAX_REDIRECT_REQUESTS} redirects',
                        )
                    relative = not urlsplit(location).scheme
                    host_header = (
                        host_override if host_override and relative else urlsplit(target).netloc
                    )
                    current = target
        except TimeoutError:
            return _Outcome(
                "failure",
                f'Get "{current}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)",
            )
        except _HTTPError as exc:
            return _Outcome("failure", f'Get "{current}": {exc}')
        body = response.body.decode("utf-8", "replace")
        if 200 <= response.status < 400:
            if response.status >= 300:
                return _Outcome("warning", f"Probe terminated redirects, Response body: {body}")
            return _Outcome("success", body)
        return _Outcome("failure", f"HTTP probe failed with statuscode: {response.status}")
