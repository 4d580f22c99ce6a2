"""Liveness, readiness and startup probes (runtime/kubelet/probes.py): the handlers
against servers on 127.0.0.1 and the fake runtime, thresholds, delays, startup gating,
restart signals, result resets and events. Periods are scaled to milliseconds."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.kubelet.cri import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    SandboxConfig,
)
from runtime.kubelet.probes import (
    ProbeEvent,
    ProbeKind,
    ProbeManager,
    ProbeOptions,
    _parse_spec,
)
from runtime.kubelet.runtimes.fake import FakeRuntime
from runtime.server.tls import ensure_credentials

UID = "uid-1"
SCALE = 0.01  # periodSeconds: 1 is 10 ms


def fast(**kwargs: Any) -> ProbeOptions:
    kwargs.setdefault("time_scale", SCALE)
    kwargs.setdefault("startup_jitter", 0.0)
    return ProbeOptions(**kwargs)


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


async def start_container(
    runtime: FakeRuntime, name: str = "app", env: dict[str, str] | None = None
) -> ContainerStatus:
    sandbox = await runtime.run_sandbox(
        SandboxConfig(pod_uid=UID, name="web", namespace="default", hostname="web")
    )
    cid = await runtime.create_container(
        sandbox.id,
        ContainerConfig(name=name, image="busybox", env=tuple((env or {}).items())),
    )
    await runtime.start_container(cid)
    return await runtime.container_status(cid)


def pod(*containers: dict[str, Any], uid: str = UID, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "default", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": list(containers)}}


def container(
    name: str = "app", ports: dict[str, int] | None = None, **probes: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "image": "busybox",
        "ports": [{"name": n, "containerPort": p} for n, p in (ports or {}).items()],
        **probes,
    }


def http_probe(port: int | str, path: str = "/", **settings: Any) -> dict[str, Any]:
    action = {"port": port, "path": path, **settings.pop("action", {})}
    return {"httpGet": action, "periodSeconds": 1, **settings}


def exec_probe(command: str, **settings: Any) -> dict[str, Any]:
    return {"exec": {"command": [command]}, "periodSeconds": 1, **settings}


def messages(events: list[ProbeEvent]) -> list[str]:
    return [e.message for e in events]


class Server:
    """A small HTTP/1.1 server on 127.0.0.1: ``routes`` maps a request target to
    (status, headers, body); "hang" never answers. Records every request."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes] | str] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def paths(self) -> list[str]:
        return [target for target, _ in self.requests]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            target = line.decode().split(" ")[1]
            headers: dict[str, str] = {}
            while (raw := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = raw.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append((target, headers))
            route = self.routes.get(target, (404, {}, b"not found"))
            if route == "hang":
                await reader.read()  # until the prober gives up
                return
            assert not isinstance(route, str)
            status, extra, body = route
            head = [f"HTTP/1.1 {status} Whatever"]
            if "Transfer-Encoding" in extra:
                body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            else:
                head.append(f"Content-Length: {len(body)}")
            head += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


class ScriptedRuntime(FakeRuntime):
    """``exec`` answers with the exit codes the test feeds, per command name, so a test
    decides each probe's result and sees when the manager has handled it."""

    def __init__(self) -> None:
        super().__init__()
        self.exec_calls: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self._queues: dict[str, asyncio.Queue[int]] = {}

    def _queue(self, command: str) -> asyncio.Queue[int]:
        return self._queues.setdefault(command, asyncio.Queue())

    async def exec(self, container_id: str, command: tuple[str, ...], timeout: float) -> ExecResult:
        self.exec_calls[command[0]] += 1
        code = await self._queue(command[0]).get()
        self.answered[command[0]] += 1
        return ExecResult(code, f"{command[0]} exited {code}\n".encode(), b"")

    def _handled(self, command: str, count: int) -> Callable[[], bool]:
        return lambda: self.answered[command] >= count

    async def answer(self, command: str, *codes: int) -> None:
        """Answer the next probes of ``command``, one at a time, each handled fully."""
        for code in codes:
            await until(lambda: self.exec_calls[command] > self.answered[command])
            self._queue(command).put_nowait(code)
            await until(self._handled(command, self.answered[command] + 1))
            await asyncio.sleep(0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, uid: str) -> None:
        self.calls.append(uid)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- httpGet -------------------------------------------------------------------------


def test_an_http_readiness_probe_answering_200_makes_the_container_ready_and_calls_on_change() -> (
    None
):
    async def go() -> None:
        runtime = FakeRuntime()
        changed = Recorder()
        manager = ProbeManager(runtime, changed, options=fast())
        async with Server() as server:
            server.routes["/healthz"] = (200, {}, b"ok")
            status = await start_container(runtime)
            spec = pod(container(readinessProbe=http_probe(server.port, "/healthz")))
            manager.sync_pod(spec, "127.0.0.1", {"app": status})
            assert not manager.readiness(UID, "app")
            await until(lambda: manager.readiness(UID, "app"))
            assert changed.calls == [UID]
            assert manager.started(UID, "app")
            assert server.paths()[0] == "/healthz"
            assert manager.events() == []
            await manager.close()

    asyncio.run(go())


def test_an_http_liveness_probe_answering_500_past_the_threshold_asks_for_one_restart() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        changed = Recorder()
        manager = ProbeManager(runtime, changed, options=fast())
        async with Server() as server:
            server.routes["/"] = (500, {}, b"broken")
            status = await start_container(runtime)
            spec = pod(container(livenessProbe=http_probe(server.port, failureThreshold=3)))
            manager.sync_pod(spec, "127.0.0.1", {"app": status})
            await until(lambda: len(server.requests) >= 3)
            await until(lambda: changed.calls == [UID])
            message = manager.liveness_failed(UID, "app", status.id)
            assert message == "Liveness probe failed: HTTP probe failed with statuscode: 500"
            assert manager.liveness_failed(UID, "app", status.id) is None  # once per container
            events = manager.events()
            assert [e.reason for e in events] == ["Unhealthy"] * 3
            assert {e.message for e in events} == {message}
            assert events[0].field_path == "spec.containers{app}"
            assert events[0].kind is ProbeKind.LIVENESS and events[0].pod_name == "web"
            await asyncio.sleep(10 * SCALE)
            assert len(server.requests) == 3  # on hold until the container is replaced
            await manager.close()

    asyncio.run(go())


def test_a_refused_http_connection_fails_with_the_kubelets_message() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        port = closed_port()
        status = await start_container(runtime)
        manager.sync_pod(
            pod(container(readinessProbe=http_probe(port))), "127.0.0.1", {"app": status}
        )
        await until(lambda: bool(manager._events))
        event = manager.events()[0]
        assert event.reason == "Unhealthy" and event.type == "Warning"
        assert event.message == (
            f'Readiness probe failed: Get "http://127.0.0.1:{port}/": '
            f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
        assert not manager.readiness(UID, "app")
        await manager.close()

    asyncio.run(go())


def test_http_probes_send_the_configured_headers_host_and_the_kube_probe_user_agent() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            server.routes["/h?x=1"] = (204, {}, b"")
            status = await start_container(runtime)
            headers = [{"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "web.local"}]
            probe = http_probe(server.port, "/h?x=1", action={"httpHeaders": headers})
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            target, seen = server.requests[0]
            assert target == "/h?x=1"
            assert seen["x-probe"] == "yes"
            assert seen["host"] == "web.local"
            assert seen["user-agent"] == "kube-probe/1.35"
            assert seen["accept"] == "*/*"
            assert seen["connection"] == "close"
            await manager.close()

    asyncio.run(go())


def test_an_overridden_user_agent_is_kept_and_an_empty_accept_header_is_dropped() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            server.routes["/"] = (200, {}, b"")
            status = await start_container(runtime)
            headers = [{"name": "user-agent", "value": "mine"}, {"name": "Accept", "value": ""}]
            probe = http_probe(server.port, action={"httpHeaders": headers})
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            _, seen = server.requests[0]
            assert seen["user-agent"] == "mine"
            assert "accept" not in seen
            assert seen["host"] == f"127.0.0.1:{server.port}"
            await manager.close()

    asyncio.run(go())


def test_a_named_port_is_resolved_from_the_container_ports() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            server.routes["/"] = (200, {}, b"")
            status = await start_container(runtime)
            spec = pod(container(ports={"web": server.port}, readinessProbe=http_probe("web")))
            manager.sync_pod(spec, "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            await manager.close()

    asyncio.run(go())


def test_an_unknown_port_name_is_an_error_that_leaves_the_result_unchanged() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        changed = Recorder()
        manager = ProbeManager(runtime, changed, options=fast())
        status = await start_container(runtime)
        spec = pod(
            container(
                readinessProbe=http_probe("nope"),
                livenessProbe=http_probe("nope", failureThreshold=1),
            )
        )
        manager.sync_pod(spec, "127.0.0.1", {"app": status})
        await until(lambda: len(manager._events) >= 4)
        events = manager.events()
        assert {e.reason for e in events} == {"Unhealthy"}
        assert events[0].message.startswith(
            f"{events[0].kind} probe errored and resulted in unknown state: port 'nope' is neither"
        )
        assert not manager.readiness(UID, "app")
        assert manager.liveness_failed(UID, "app", status.id) is None
        assert changed.calls == []
        await manager.close()

    asyncio.run(go())


def test_redirects_to_the_same_host_are_followed() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            server.routes["/old"] = (302, {"Location": "/new"}, b"")
            server.routes["/new"] = (301, {"Location": f"http://127.0.0.1:{server.port}/ok"}, b"")
            server.routes["/ok"] = (200, {}, b"fine")
            status = await start_container(runtime)
            probe = http_probe(server.port, "/old")
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            assert server.paths()[:3] == ["/old", "/new", "/ok"]
            assert manager.events() == []
            await manager.close()

    asyncio.run(go())


def test_a_redirect_to_another_host_is_not_followed_and_succeeds_with_a_warning() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            elsewhere = f"http://127.0.0.2:{server.port}/ok"
            server.routes["/"] = (
                302,
                {"Location": elsewhere, "Transfer-Encoding": "chunked"},
                b"moved",
            )
            status = await start_container(runtime)
            probe = http_probe(server.port)
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            event = manager.events()[0]
            assert event.reason == "ProbeWarning" and event.type == "Warning"
            assert event.message == (
                "Readiness probe warning: Probe terminated redirects, Response body: moved"
            )
            assert set(server.paths()) == {"/"}
            await manager.close()

    asyncio.run(go())


def test_a_redirect_loop_fails_after_ten_requests() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            server.routes["/loop"] = (307, {"Location": "/loop"}, b"")
            status = await start_container(runtime)
            probe = http_probe(server.port, "/loop", periodSeconds=1000)
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: bool(manager._events))
            assert messages(manager.events()) == [
                'Readiness probe failed: Get "/loop": stopped after 10 redirects'
            ]
            assert len(server.requests) == 10
            await manager.close()

    asyncio.run(go())


def test_an_http_probe_that_gets_no_answer_times_out_like_the_go_client() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast(timeout_scale=0.05))
        async with Server() as server:
            server.routes["/slow"] = "hang"
            status = await start_container(runtime)
            probe = http_probe(server.port, "/slow", periodSeconds=1000)
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: bool(manager._events))
            assert messages(manager.events()) == [
                f'Readiness probe failed: Get "http://127.0.0.1:{server.port}/slow": context '
                "deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ]
            await manager.close()

    asyncio.run(go())


def test_https_probes_do_not_verify_the_serving_certificate(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path, host="127.0.0.1", port=1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(creds.server_cert, creds.server_key)

    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server(context) as server:
            server.routes["/"] = (200, {}, b"secure")
            status = await start_container(runtime)
            probe = http_probe(server.port, action={"scheme": "HTTPS"})
            manager.sync_pod(pod(container(readinessProbe=probe)), "127.0.0.1", {"app": status})
            await until(lambda: manager.readiness(UID, "app"))
            await manager.close()

    asyncio.run(go())


# --- tcpSocket and exec --------------------------------------------------------------


def test_tcp_probes_succeed_on_an_open_port_and_fail_on_a_closed_one() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        async with Server() as server:
            port = closed_port()
            spec = pod(
                container("open", readinessProbe={"tcpSocket": {"port": server.port}}),
                container("closed", readinessProbe={"tcpSocket": {"port": port}}),
            )
            statuses = {
                "open": await start_container(runtime, "open"),
                "closed": await start_container(runtime, "closed"),
            }
            manager.sync_pod(spec, "127.0.0.1", statuses)
            await until(lambda: manager.readiness(UID, "open") and bool(manager._events))
            assert not manager.readiness(UID, "closed")
            event = manager.events()[0]
            assert event.container_name == "closed"
            assert event.message == (
                f"Readiness probe failed: dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
            await manager.close()

    asyncio.run(go())


def test_exec_probes_run_in_the_container_and_fail_on_a_nonzero_exit_code() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        healthy = await start_container(runtime, "healthy")
        sick = await start_container(runtime, "sick", {"FAKE_EXEC_EXIT_CODE": "1"})
        spec = pod(
            container("healthy", readinessProbe=exec_probe("true")),
            container("sick", livenessProbe=exec_probe("true", failureThreshold=2)),
        )
        manager.sync_pod(spec, "", {"healthy": healthy, "sick": sick})
        await until(lambda: manager.readiness(UID, "healthy"))
        await until(lambda: manager.liveness_failed(UID, "sick", sick.id) is not None)
        assert messages(manager.events()) == ["Liveness probe failed: "] * 2
        assert manager.readiness(UID, "sick")  # no readiness probe: ready while running
        await manager.close()

    asyncio.run(go())


def test_an_exec_probe_that_outlives_its_timeout_fails() -> None:
    class SlowRuntime(FakeRuntime):
        async def exec(
            self, container_id: str, command: tuple[str, ...], timeout: float
        ) -> ExecResult:
            await asyncio.sleep(5)
            return ExecResult(0, b"", b"")

    async def go() -> None:
        runtime = SlowRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast(timeout_scale=0.02))
        status = await start_container(runtime)
        probe = {"exec": {"command": ["sh", "-c", "sleep 5"]}, "periodSeconds": 1000}
        manager.sync_pod(pod(container(readinessProbe=probe)), "", {"app": status})
        await until(lambda: bool(manager._events))
        assert messages(manager.events()) == [
            'Readiness probe failed: command "sh -c sleep 5" timed out'
        ]
        await manager.close()

    asyncio.run(go())


# --- thresholds, delays, startup -----------------------------------------------------


def test_readiness_needs_success_threshold_consecutive_successes() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        probe = exec_probe("ready", successThreshold=2)
        manager.sync_pod(pod(container(readinessProbe=probe)), "", {"app": status})
        await runtime.answer("ready", 0)
        assert not manager.readiness(UID, "app")
        await runtime.answer("ready", 1, 0)
        assert not manager.readiness(UID, "app")
        await runtime.answer("ready", 0)
        assert manager.readiness(UID, "app")
        await manager.close()

    asyncio.run(go())


def test_readiness_is_lost_only_after_failure_threshold_consecutive_failures() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        changed = Recorder()
        manager = ProbeManager(runtime, changed, options=fast())
        status = await start_container(runtime)
        probe = exec_probe("ready", failureThreshold=3)
        manager.sync_pod(pod(container(readinessProbe=probe)), "", {"app": status})
        await runtime.answer("ready", 0)
        assert manager.readiness(UID, "app")
        await runtime.answer("ready", 1, 1, 0, 1, 1)
        assert manager.readiness(UID, "app")
        await runtime.answer("ready", 1)
        assert not manager.readiness(UID, "app")
        assert changed.calls == [UID, UID]
        assert len(manager.events()) == 5  # one Unhealthy event per failed probe
        await manager.close()

    asyncio.run(go())


def test_probes_wait_for_the_initial_delay_counted_from_the_container_start() -> None:
    async def go() -> None:
        now = [0.0]
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), clock=lambda: now[0], options=fast())
        status = await start_container(runtime)
        probe = exec_probe("ready", initialDelaySeconds=100)  # 1 s once scaled
        manager.sync_pod(pod(container(readinessProbe=probe)), "", {"app": status})
        await asyncio.sleep(10 * SCALE)
        assert runtime.exec_calls["ready"] == 0
        now[0] = 1.0
        await runtime.answer("ready", 0)
        assert manager.readiness(UID, "app")
        await manager.close()

    asyncio.run(go())


def test_readiness_and_liveness_wait_until_the_startup_probe_succeeds() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        spec = pod(
            container(
                startupProbe=exec_probe("start", failureThreshold=10),
                readinessProbe=exec_probe("ready", periodSeconds=1000),
                livenessProbe=exec_probe("live"),
            )
        )
        manager.sync_pod(spec, "", {"app": status})
        await runtime.answer("start", 1, 1)
        assert not manager.started(UID, "app")
        assert runtime.exec_calls["ready"] == runtime.exec_calls["live"] == 0
        await runtime.answer("start", 0)
        assert manager.started(UID, "app")
        # Startup success triggers readiness at once, not after its 1000-period wait.
        await runtime.answer("ready", 0)
        assert manager.readiness(UID, "app")
        await runtime.answer("live", 0)
        await asyncio.sleep(5 * SCALE)
        assert runtime.exec_calls["start"] == 3  # the startup probe stopped after its success
        await manager.close()

    asyncio.run(go())


def test_a_startup_probe_failing_past_its_threshold_asks_for_a_restart() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        spec = pod(container(startupProbe=exec_probe("start", failureThreshold=2)))
        manager.sync_pod(spec, "", {"app": status})
        await runtime.answer("start", 1)
        assert manager.liveness_failed(UID, "app", status.id) is None
        await runtime.answer("start", 1)
        assert manager.liveness_failed(UID, "app", status.id) == (
            "Startup probe failed: start exited 1\n"
        )
        assert not manager.started(UID, "app") and not manager.readiness(UID, "app")
        await manager.close()

    asyncio.run(go())


def test_a_new_container_id_starts_over_with_fresh_results() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        first = await start_container(runtime)
        spec = pod(
            container(
                readinessProbe=exec_probe("ready", periodSeconds=1000),
                livenessProbe=exec_probe("live", failureThreshold=1),
            )
        )
        manager.sync_pod(spec, "", {"app": first})
        await runtime.answer("ready", 0)
        await runtime.answer("live", 1)
        assert manager.readiness(UID, "app")
        assert manager.liveness_failed(UID, "app", first.id) is not None

        second = await start_container(runtime)  # the kubelet restarted it
        manager.sync_pod(spec, "", {"app": second})
        assert not manager.readiness(UID, "app")  # readiness starts failed again
        assert manager.liveness_failed(UID, "app", first.id) is None
        assert manager.liveness_failed(UID, "app", second.id) is None
        await runtime.answer("ready", 0)
        await runtime.answer("live", 0)
        assert manager.readiness(UID, "app")
        await runtime.answer("live", 1)
        assert (
            manager.liveness_failed(UID, "app", second.id)
            == "Liveness probe failed: live exited 1\n"
        )
        await manager.close()

    asyncio.run(go())


def test_containers_without_probes_are_started_and_ready_only_while_running() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        manager.sync_pod(pod(container()), "", {"app": status})
        assert manager.started(UID, "app") and manager.readiness(UID, "app")
        await runtime.stop_container(status.id, 1)
        manager.sync_pod(pod(container()), "", {"app": await runtime.container_status(status.id)})
        assert not manager.started(UID, "app") and not manager.readiness(UID, "app")
        assert not manager.readiness("other-pod", "app")
        await manager.close()

    asyncio.run(go())


def test_an_exited_container_stops_its_workers_and_loses_readiness() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        spec = pod(container(readinessProbe=exec_probe("ready")))
        manager.sync_pod(spec, "", {"app": status})
        await runtime.answer("ready", 0)
        assert manager.readiness(UID, "app")
        await runtime.stop_container(status.id, 1)
        manager.sync_pod(spec, "", {"app": await runtime.container_status(status.id)})
        assert not manager.readiness(UID, "app")
        assert manager._workers == {}
        await manager.close()

    asyncio.run(go())


def test_a_pod_being_deleted_stops_liveness_and_startup_probes_quietly() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        containers = [
            container(
                startupProbe=exec_probe("start"),
                livenessProbe=exec_probe("live", failureThreshold=1),
            )
        ]
        manager.sync_pod(pod(*containers, deleting=True), "", {"app": status})
        await until(lambda: manager.started(UID, "app"))
        await asyncio.sleep(5 * SCALE)
        assert runtime.exec_calls["start"] == runtime.exec_calls["live"] == 0
        assert manager.liveness_failed(UID, "app", status.id) is None
        await manager.close()

    asyncio.run(go())


def test_grpc_probes_are_reported_once_as_unsupported_and_change_nothing() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        changed = Recorder()
        manager = ProbeManager(runtime, changed, options=fast())
        status = await start_container(runtime)
        probe = {"grpc": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 1}
        spec = pod(container(readinessProbe=probe, livenessProbe=probe))
        manager.sync_pod(spec, "127.0.0.1", {"app": status})
        await asyncio.sleep(10 * SCALE)
        events = manager.events()
        assert sorted(e.kind for e in events) == [ProbeKind.LIVENESS, ProbeKind.READINESS]
        assert "grpc probes are not supported" in events[0].message
        assert not manager.readiness(UID, "app")
        assert manager.liveness_failed(UID, "app", status.id) is None
        assert changed.calls == []
        await manager.close()

    asyncio.run(go())


def test_removing_a_pod_stops_its_probes_and_forgets_its_results() -> None:
    async def go() -> None:
        runtime = ScriptedRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        manager.sync_pod(pod(container(readinessProbe=exec_probe("ready"))), "", {"app": status})
        await runtime.answer("ready", 0)
        manager.remove_pod(UID)
        assert not manager.readiness(UID, "app")
        calls = runtime.exec_calls["ready"]
        await asyncio.sleep(5 * SCALE)
        assert runtime.exec_calls["ready"] == calls
        await manager.close()

    asyncio.run(go())


def test_a_young_manager_delays_first_probes_by_a_jitter_and_an_older_one_does_not() -> None:
    class Half(random.Random):
        def random(self) -> float:
            return 0.5

    async def go() -> None:
        now = [0.0]
        runtime = ScriptedRuntime()
        options = fast(time_scale=0.5, startup_jitter=1.0, rng=Half())
        manager = ProbeManager(runtime, Recorder(), clock=lambda: now[0], options=options)
        young = await start_container(runtime, "young")
        manager.sync_pod(
            pod(container("young", readinessProbe=exec_probe("a"))), "", {"young": young}
        )
        await asyncio.sleep(0.02)
        now[0] = 10.0  # more than one period (0.5 s) after the manager was created
        old = await start_container(runtime, "old")
        spec = pod(container("old", readinessProbe=exec_probe("b")), uid="uid-2")
        manager.sync_pod(spec, "", {"old": old})
        await until(lambda: runtime.exec_calls["b"] == 1)
        assert runtime.exec_calls["a"] == 0  # still waiting its 0.25 s jitter
        await until(lambda: runtime.exec_calls["a"] == 1)
        await manager.close()

    asyncio.run(go())


def test_probe_settings_default_like_kubernetes_and_thresholds_are_one_for_liveness() -> None:
    spec = _parse_spec(ProbeKind.READINESS, {"exec": {"command": ["true"]}})
    assert (spec.initial_delay, spec.period, spec.timeout) == (0, 10, 1)
    assert (spec.success_threshold, spec.failure_threshold) == (1, 3)
    assert _parse_spec(ProbeKind.READINESS, {"successThreshold": 3}).success_threshold == 3
    assert _parse_spec(ProbeKind.LIVENESS, {"successThreshold": 3}).success_threshold == 1
    assert _parse_spec(ProbeKind.STARTUP, {"successThreshold": 3}).success_threshold == 1


def test_network_probes_of_fake_pods_never_dial_their_made_up_pod_ip() -> None:
    async def go() -> None:
        runtime = FakeRuntime()
        manager = ProbeManager(runtime, Recorder(), options=fast())
        status = await start_container(runtime)
        spec = pod(
            container(readinessProbe=http_probe(80), livenessProbe={"tcpSocket": {"port": 80}})
        )
        manager.sync_pod(spec, "10.244.0.2", {"app": status})
        await asyncio.sleep(10 * SCALE)
        events = manager.events()
        assert len(events) == 2  # said once per worker, then the workers stop
        assert all("10.244.0.2 is a fake runtime address" in e.message for e in events)
        assert not manager.readiness(UID, "app")
        assert manager.liveness_failed(UID, "app", status.id) is None
        await manager.close()

    asyncio.run(go())
