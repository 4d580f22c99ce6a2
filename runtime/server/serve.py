"""Running the API server: state directory, credentials, encryption at rest, store,
HTTPS listener.

Who calls it: :mod:`runtime.cluster` (``gitops cluster up``) and tests that need a real
server. :class:`ApiServer` is an async context: entering it opens the store, creates
the system namespaces, writes the kubeconfig and starts listening; leaving it stops
the listener, ends open watches and closes the store. The store encrypts Secrets at rest
with ``<state>/encryption-config.yaml`` (written with a new key on first start) or the
operator's ``--encryption-provider-config`` (:mod:`runtime.api.encryption`).
It assembles who may call (:mod:`runtime.auth`): the authenticator chain (client
certificates verified against the cluster CA, the admin token, ``--token-auth-file``,
ServiceAccount tokens, anonymous), the authorizers (``system:masters``, Node, RBAC),
the admission plugins that read the requester, and writes the bootstrap RBAC policy.
:meth:`ApiServer.serve_pods_at` adds a listener on the pods' gateway and publishes it
as the ``kubernetes`` Service's endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import structlog
import uvicorn

from kubemodel import schema
from kubemodel.files import private_dir
from runtime.api import apiserver_endpoints, services
from runtime.api.encryption import EncryptionError, load_for_server
from runtime.api.objects import ApiOptions, ObjectAPI
from runtime.api.registry import Registry
from runtime.api.store import Store, StoreOptions
from runtime.auth.attributes import PrivilegedGroups, Union
from runtime.auth.authn import (
    Authenticator,
    AuthnOptions,
    InvalidToken,
    TokenFileError,
    load_token_file,
)
from runtime.auth.bootstrap import ensure_bootstrap_policy
from runtime.auth.escalation import RBACEscalationCheck
from runtime.auth.node import NodeAuthorizer
from runtime.auth.noderestriction import NodeRestriction
from runtime.auth.rbac import RBACAuthorizer
from runtime.auth.serviceaccount import (
    AuthenticationFailed,
    ServiceAccountAuthenticator,
    TokenIssuer,
)
from runtime.auth.serviceaccount_admission import ServiceAccountAdmission
from runtime.auth.user import MASTERS, UserInfo
from runtime.network.dns import freebind_socket
from runtime.server.app import ApiApp, Security, ServerOptions
from runtime.server.gate import Gate
from runtime.server.peercert import HttpProtocol, WebSocketProtocol
from runtime.server.tls import Credentials, ensure_credentials, ensure_kubelet_client_token

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
    #: kube-apiserver's ``--token-auth-file`` (static bearer tokens); None: none.
    token_auth_file: Path | None = None
    #: kube-apiserver's ``--anonymous-auth``: requests without credentials act as
    #: ``system:anonymous`` (allowed only what RBAC grants it) instead of a 401.
    anonymous_auth: bool = True


def _service_account_tokens(
    authenticator: ServiceAccountAuthenticator,
) -> Callable[[str], UserInfo | None]:
    """The chain's ServiceAccount token step: a token of ours that fails verification
    (expired, its pod or account gone) ends the chain with a 401."""

    def authenticate(token: str) -> UserInfo | None:
        try:
            return authenticator.authenticate(token)
        except AuthenticationFailed as exc:
            log.info("apiserver.token_refused", reason=exc.reason)
            raise InvalidToken(exc.reason) from exc

    return authenticate


#: TLS 1.2 suites as Go's crypto/tls (kube-apiserver) offers them: ECDHE only, AES-GCM,
#: ChaCha20 and AES-CBC. ``@SECLEVEL=0`` lets a TLS 1.2 client that offers no
#: signature_algorithms (so SHA-1 handshake signatures, RFC 5246's default: busybox's
#: wget in a pod) connect, as Go's server lets it; TLS 1.3 is unaffected, and client
#: certificates are still verified against the cluster CA alone.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:@SECLEVEL=0"


class ApiServerError(Exception):
    """The API server cannot start with this configuration (the message says why)."""


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
        # Further listeners (where pods reach the server): uvicorn servers and tasks.
        self._extra: list[tuple[_Uvicorn, asyncio.Task[None]]] = []

    @property
    def url(self) -> str:
        return f"https://{self.config.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        assert self.credentials is not None
        return self.credentials.kubeconfig

    async def start(self) -> None:
        state = private_dir(self.config.state_dir)
        static_tokens = None
        if self.config.token_auth_file is not None:
            try:
                static_tokens = load_token_file(self.config.token_auth_file)
            except (OSError, TokenFileError) as exc:
                raise ApiServerError(f"--token-auth-file: {exc}") from exc
        self.credentials = await asyncio.to_thread(
            ensure_credentials,
            state,
            host=self.config.host,
            port=self.port,
            extra_hosts=(*self.config.extra_sans, *self._in_cluster_names()),
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
        security = self._security(state, static_tokens)
        await self.api.bootstrap()
        await ensure_bootstrap_policy(self.api)
        kubelet_token = await asyncio.to_thread(ensure_kubelet_client_token, state)
        self.app = ApiApp(
            self.api,
            ServerOptions(
                bookmark_interval=self.config.bookmark_interval,
                server_address=f"{self.config.host}:{self.port}",
                ca_file=str(self.credentials.ca_cert),
                kubelet_client_token=kubelet_token,
            ),
            security,
        )
        _quiet_rejected_handshakes()
        self._server, self._task = await self._listen(self.config.host)
        log.info("apiserver.listening", url=self.url, kubeconfig=str(self.kubeconfig))

    def _security(self, state: Path, static_tokens: dict[str, UserInfo] | None) -> Security:
        """The authenticator chain, the authorizers (system:masters, the Node
        authorizer, RBAC — kube-apiserver's ``--authorization-mode=Node,RBAC``) and the
        admission plugins that read the requester."""
        assert self.credentials is not None
        rbac = RBACAuthorizer(self.store, self.registry)
        authorizer = Union([PrivilegedGroups([MASTERS]), NodeAuthorizer(self.store), rbac])
        issuer = TokenIssuer(state)
        service_accounts = ServiceAccountAuthenticator(self.store, issuer)
        self.api.options.admission = (
            ServiceAccountAdmission(self.store, self.registry),
            NodeRestriction(self.store),
            RBACEscalationCheck(rbac, authorizer),
        )
        authenticator = Authenticator(
            AuthnOptions(
                admin_token=self.credentials.token,
                static_tokens=static_tokens,
                anonymous=self.config.anonymous_auth,
            ),
            (_service_account_tokens(service_accounts),),
        )
        return Security(Gate(authenticator, authorizer), issuer)

    def _in_cluster_names(self) -> tuple[str, ...]:
        """The names and address pods use for this server: the ``kubernetes`` Service's
        cluster IP and DNS names (they go into the serving certificate)."""
        cidr = services.parse_service_cidr(self.config.api.service_cidr)
        return (
            str(cidr.network_address + 1),
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )

    async def _listen(
        self, host: str, sock: socket.socket | None = None
    ) -> tuple[_Uvicorn, asyncio.Task[None]]:
        assert self.credentials is not None and self.app is not None
        uconfig = uvicorn.Config(
            self.app,
            host=host,
            port=self.port,
            ssl_certfile=str(self.credentials.server_cert),
            ssl_keyfile=str(self.credentials.server_key),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            # Client certificates are optional and verified against the cluster CA
            # (kube-apiserver's --client-ca-file): their CN and O are the user.
            ssl_cert_reqs=ssl.CERT_OPTIONAL,
            ssl_ca_certs=str(self.credentials.ca_cert),
            ssl_ciphers=TLS12_CIPHERS,
            http=HttpProtocol,
            ws=WebSocketProtocol,
            loop="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=2,
            backlog=1024,
        )
        server = _Uvicorn(uconfig)
        task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        return server, task

    async def serve_pods_at(self, address: str) -> None:
        """Listen also on ``address`` (the pods' gateway, where the container bridge
        reaches the host) and publish it as the ``kubernetes`` Service's endpoint, so
        in-cluster clients reach this server at ``https://kubernetes.default.svc``."""
        if address not in (self.config.host, "0.0.0.0", "::"):
            # IP_FREEBIND: podman creates its bridge with the first container.
            sock = freebind_socket(address, self.port, socket.SOCK_STREAM)
            self._extra.append(await self._listen(address, sock))
        await apiserver_endpoints.publish(self.api, address, self.port)

    async def stop(self) -> None:
        if self.app is not None:
            self.app.shutdown()
        for server, _ in self._extra:
            server.should_exit = True
        if self._server is not None:
            self._server.should_exit = True
        for _, task in self._extra:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
