"""Running the API server: state directory, credentials, encryption at rest, store,
HTTPS listener.

Who calls it: :mod:`runtime.cluster` (``gitops cluster up``) and tests that need a real
server. :class:`ApiServer` is an async context: entering it opens the store, creates
the system namespaces, writes the kubeconfig and starts listening; leaving it stops
the listener, ends open watches and closes the store. The store encrypts Secrets at rest
with ``<state>/encryption-config.yaml`` (written with a new key on first start) or the
operator's ``--encryption-provider-config`` (:mod:`runtime.api.encryption`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import structlog
import uvicorn

from kubemodel import schema
from kubemodel.files import private_dir
from runtime.api.encryption import EncryptionError, load_for_server
from runtime.api.objects import ApiOptions, ObjectAPI
from runtime.api.registry import Registry
from runtime.api.store import Store, StoreOptions
from runtime.server.app import ApiApp, ServerOptions
from runtime.server.tls import Credentials, ensure_credentials

log = structlog.get_logger(__name__)


@dataclass
class ApiServerConfig:
    """Where and how the API server runs."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443  # 0 picks a free port
    store: StoreOptions = field(default_factory=StoreOptions)
    api: ApiOptions = field(default_factory=ApiOptions)
    bookmark_interval: float = 60.0
    extra_sans: tuple[str, ...] = ()
    #: kube-apiserver's ``--encryption-provider-config``: an ``EncryptionConfiguration``
    #: file; None uses (and on first start writes) ``<state_dir>/encryption-config.yaml``.
    #: Ignored when ``store.encryption`` is already set.
    encryption_provider_config: Path | None = None


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the cluster owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _RejectedHandshakes(logging.Filter):
    """Drops uvicorn's "returned without completing handshake" error, which its WebSocket
    protocols log after every handshake the app answered with an HTTP response (the
    ``websocket.http.response`` extension; refused ``pods/exec``), though that response
    was sent."""

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.MESSAGE


def _quiet_rejected_handshakes() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RejectedHandshakes) for f in logger.filters):
        logger.addFilter(_RejectedHandshakes())


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ApiServer:
    """The built-in cluster's API server, as an async context manager."""

    def __init__(self, config: ApiServerConfig) -> None:
        self.config = config
        self.port = config.port or _free_port(config.host)
        self.credentials: Credentials | None = None
        self.store = Store(config.state_dir / "state.db", config.store)
        self.registry = Registry()
        self.api = ObjectAPI(self.store, self.registry, schema.builtin(), config.api)
        self.app: ApiApp | None = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.config.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        assert self.credentials is not None
        return self.credentials.kubeconfig

    async def start(self) -> None:
        state = private_dir(self.config.state_dir)
        self.credentials = await asyncio.to_thread(
            ensure_credentials,
            state,
            host=self.config.host,
            port=self.port,
            extra_hosts=self.config.extra_sans,
        )
        if self.store.options.encryption is None:
            encryption = await asyncio.to_thread(
                load_for_server, state, self.config.encryption_provider_config
            )
            self.store.options = replace(self.store.options, encryption=encryption)
        try:
            await self.store.open()
        except EncryptionError:
            # A default config written just now (its file was missing) cannot read this
            # store: it is not kept, so the next start is the same until it is restored.
            if self.store.options.encryption is not None:
                self.store.options.encryption.discard_if_created()
            raise
        await self.api.bootstrap()
        self.app = ApiApp(
            self.api,
            ServerOptions(
                token=self.credentials.token,
                bookmark_interval=self.config.bookmark_interval,
                server_address=f"{self.config.host}:{self.port}",
                ca_file=str(self.credentials.ca_cert),
            ),
        )
        uconfig = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.port,
            ssl_certfile=str(self.credentials.server_cert),
            ssl_keyfile=str(self.credentials.server_key),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            http="httptools",
            loop="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=2,
            backlog=1024,
        )
        _quiet_rejected_handshakes()
        self._server = _Uvicorn(uconfig)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("apiserver.listening", url=self.url, kubeconfig=str(self.kubeconfig))

    async def stop(self) -> None:
        if self.app is not None:
            self.app.shutdown()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()

    async def wait(self) -> None:
        """Until the listener stops (after :meth:`stop` or a fatal error)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
