"""Wires a whole built-in cluster together and runs it in the foreground
(``gitops cluster up``): the API server and store, the scheduler, the node lifecycle
controller, the networking (service proxy, cluster DNS, ingress controller:
:mod:`runtime.network.wiring`), and one kubelet per node driving podman, docker or the
fake runtime.
Every component except the API server reaches the API over HTTPS with an identity of
its own, as on a real cluster: a client certificate signed by the cluster CA
(:func:`runtime.server.tls.issue_client_credentials`) whose CN is the user and O the
groups — each kubelet ``system:node:<node>`` in ``system:nodes`` (the Node authorizer and
NodeRestriction scope it to its node), the scheduler ``system:kube-scheduler``, the
controller manager and the node lifecycle controller ``system:kube-controller-manager``,
and the networking (proxy, DNS, ingress router and host ports share one client, see
:data:`NETWORK_IDENTITY`) ``system:gitops:network``. The API server reaches the kubelets with a token
of its own (:func:`runtime.server.tls.ensure_kubelet_client_token`) that it never
accepts itself; no component holds the admin token. The admin kubeconfig is used only
for what an operator does (kubeadm's part): labelling the first node as control plane,
and :attr:`Cluster.client` for ``gitops up``'s summary. Called by :mod:`gitops.cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from kubeclient.factory import InformerFactory
from kubeclient.rest import Client, KubeError, load_kubeconfig
from runtime.api.encryption import EncryptionError
from runtime.controllers.manager import ControllerContext, ControllerManager
from runtime.controllers.nodelifecycle import NodeLifecycleController, NodeLifecycleOptions
from runtime.kubelet.cri import ContainerRuntime, RuntimeError_
from runtime.kubelet.kubelet import Kubelet, KubeletOptions
from runtime.network.wiring import KUBE_DNS, ClusterNetwork, NetworkConfig, NetworkError
from runtime.server.serve import ApiServer, ApiServerConfig, ApiServerError
from runtime.server.tls import (
    ensure_kubelet_client_token,
    issue_client_credentials,
    issue_serving_certificate,
)

log = structlog.get_logger(__name__)

RUNTIMES = ("auto", "podman", "docker", "fake", "none")


#: A component's identity: (kubeconfig file stem, user = certificate CN, groups = O's).
Identity = tuple[str, str, tuple[str, ...]]
SCHEDULER_IDENTITY: Identity = ("kube-scheduler", "system:kube-scheduler", ())
CONTROLLER_MANAGER_IDENTITY: Identity = (
    "kube-controller-manager",
    "system:kube-controller-manager",
    (),
)
#: The networking's one client (runtime.network.wiring shares it between the proxy, the
#: DNS server, the ingress router and the host ports): the user of the bootstrap role
#: ``system:gitops:network`` (runtime.auth.bootstrap).
NETWORK_IDENTITY: Identity = ("network", "system:gitops:network", ())
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def kubelet_identity(node: str) -> Identity:
    """A kubelet's identity: ``system:node:<node>`` in group ``system:nodes``."""
    return (f"kubelet-{node}", f"system:node:{node}", ("system:nodes",))


def component_kubeconfig(state_dir: Path, identity: Identity) -> Path:
    """The component's kubeconfig (issued once, reused while valid)."""
    stem, user, groups = identity
    return issue_client_credentials(state_dir, stem, user, groups)


STOP_STEP_TIMEOUT = 30.0
"""Seconds one step of :meth:`Cluster.stop` may take (a hung engine must not keep the
process from exiting; what could not be removed is logged)."""


class ClusterError(Exception):
    """The cluster cannot start; the message says what to do."""


@dataclass
class ClusterConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    runtime: str = "auto"  # auto | podman | docker | fake | none (the API server alone)
    nodes: int = 1
    node_grace_period: float = 40.0
    api: ApiServerConfig | None = field(default=None)
    #: Controllers to run (runtime.controllers.manager.CONTROLLERS names).
    controllers: tuple[str, ...] = ()
    controller_settings: Mapping[str, str] = field(default_factory=dict)
    #: Networking: service CIDR (as the API server's), cluster domain, ingress listeners
    #: (``engine`` and ``gateway`` are filled in from the runtime at start).
    network: NetworkConfig = field(default_factory=NetworkConfig)


async def _works(*command: str) -> bool:
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return await asyncio.wait_for(proc.wait(), 30) == 0
    except (OSError, TimeoutError):
        return False


async def choose_runtime(name: str) -> str:
    """Resolve ``auto``: podman when it works, else docker, else a clear error."""
    if name != "auto":
        return name
    if shutil.which("podman") and await _works("podman", "--version"):
        return "podman"
    docker = shutil.which("docker")
    if docker and await _works(docker, "info"):
        return "docker"
    raise ClusterError(
        "no container engine found: install podman (apt-get install podman runc) or docker "
        "(apt-get install docker.io, then start dockerd), or run with --runtime fake"
    )


def make_runtime(name: str, state_dir: Path, node: str) -> ContainerRuntime:
    if name == "fake":
        from runtime.kubelet.runtimes.fake import FakeOptions, FakeRuntime

        # The index picks the node's fake pod-IP range: node-N gets N; another name a
        # stable index past the ones `--nodes` uses.
        suffix = node.rpartition("-")[2]
        index = int(suffix) if suffix.isdigit() else 100 + zlib.crc32(node.encode()) % 100
        return FakeRuntime(FakeOptions(node_index=index))
    if name == "podman":
        from runtime.kubelet.runtimes.podman import PodmanRuntime

        return PodmanRuntime(state_dir=state_dir / "podman")
    if name == "docker":
        from runtime.kubelet.runtimes.docker import DockerRuntime

        return DockerRuntime()
    raise ClusterError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")


def node_names(count: int) -> list[str]:
    return [f"node-{i}" for i in range(count)]


class Cluster:
    """A running built-in cluster (use ``async with``)."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        api_config = config.api or ApiServerConfig(
            state_dir=config.state_dir, host=config.host, port=config.port
        )
        self.server = ApiServer(api_config)
        #: The operator's client (admin kubeconfig): not given to any component.
        self.client: Client | None = None
        self.controller_client: Client | None = None
        self.scheduler_client: Client | None = None
        self.kubelet_clients: list[Client] = []
        self.kubelets: list[Kubelet] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.runtime_name = ""
        self.network: ClusterNetwork | None = None
        self.network_client: Client | None = None

    async def start(self) -> None:
        self.runtime_name = await choose_runtime(self.config.runtime)
        try:
            await self.server.start()
        except (EncryptionError, ApiServerError) as exc:  # bad config: say what to do
            raise ClusterError(str(exc)) from exc
        if self.runtime_name == "none":
            return  # the API server alone: no nodes, no scheduler, no controllers
        self.client = Client(load_kubeconfig(self.server.kubeconfig))
        await self.client.open()
        # Each component has a client of its own, so their watches and writes never
        # queue behind each other's; the node lifecycle controller is the controller
        # manager's.
        self.controller_client = await self._component_client(CONTROLLER_MANAGER_IDENTITY)
        lifecycle = NodeLifecycleController(
            self.controller_client,
            NodeLifecycleOptions(grace_period=self.config.node_grace_period),
        )
        self._tasks.append(asyncio.create_task(lifecycle.run()))
        self.scheduler_client = await self._component_client(SCHEDULER_IDENTITY)
        scheduler = _scheduler(self.scheduler_client)
        if scheduler is not None:
            self._tasks.append(asyncio.create_task(scheduler))
        if self.config.controllers:
            ctx = ControllerContext(
                self.controller_client,
                InformerFactory(self.controller_client),
                self.config.state_dir / "controllers",
                self.config.controller_settings,
                ca_pem=self._ca_pem(),
            )
            manager = ControllerManager(ctx, self.config.controllers)
            self._tasks.append(asyncio.create_task(manager.run()))
        kubelet_token = await asyncio.to_thread(ensure_kubelet_client_token, self._state_dir)
        names = node_names(self.config.nodes)
        runtimes = [make_runtime(self.runtime_name, self.config.state_dir, n) for n in names]
        try:
            self.network = await self._start_network(runtimes[0])
        except BaseException:
            for runtime in runtimes:
                await runtime.close()
            raise
        if self.network.config.gateway:
            # Pods reach the API server as https://kubernetes.default.svc: it listens on
            # the bridge's gateway too, published as the kubernetes Service's endpoint.
            await self.server.serve_pods_at(self.network.config.gateway)
        for name, runtime in zip(names, runtimes, strict=True):
            cert = issue_serving_certificate(
                self.config.state_dir, name, ("127.0.0.1", "localhost")
            )
            client = await self._component_client(kubelet_identity(name))
            self.kubelet_clients.append(client)
            kubelet = Kubelet(
                client,
                runtime,
                KubeletOptions(
                    node_name=name,
                    root_dir=self.config.state_dir / "nodes" / name,
                    server_token=kubelet_token,
                    server_cert=cert,
                    cluster_dns=self.network.cluster_dns,
                    cluster_domain=self.config.network.cluster_domain,
                ),
            )
            self.kubelets.append(kubelet)
            self._tasks.append(asyncio.create_task(kubelet.run()))
        await asyncio.gather(*(k.ready.wait() for k in self.kubelets))
        if "node-0" in names:
            # NodeRestriction keeps kubelets from setting node-role labels: the operator
            # marks the control-plane node, as kubeadm does with its admin credentials.
            try:
                await self.client.patch(
                    "v1", "nodes", "node-0", {"metadata": {"labels": {CONTROL_PLANE_LABEL: "true"}}}
                )
            except KubeError as exc:
                log.warning("cluster.control_plane_label_failed", error=str(exc))

    @property
    def _state_dir(self) -> Path:
        """The API server's state directory (its CA signs the components' certificates)."""
        return self.server.config.state_dir

    async def _component_client(self, identity: Identity) -> Client:
        """An open client with the component's own certificate. No connection limit:
        every informer of a component holds a watch open."""
        path = await asyncio.to_thread(component_kubeconfig, self._state_dir, identity)
        client = Client(load_kubeconfig(path), connections=0)
        await client.open()
        return client

    def _ca_pem(self) -> bytes:
        """The cluster CA certificate (PEM), for the root-ca-cert-publisher."""
        credentials = self.server.credentials
        return credentials.ca_cert.read_bytes() if credentials is not None else b""

    async def _start_network(self, runtime: ContainerRuntime) -> ClusterNetwork:
        """The proxy, cluster DNS and ingress controller, on a client of their own."""
        engine = self.runtime_name in ("podman", "docker")
        gateway: str | None = None
        if engine:
            try:
                gateway = await runtime.network_gateway()
            except RuntimeError_ as exc:
                raise ClusterError(
                    f"pods would get no cluster DNS: the {self.runtime_name} bridge "
                    f"address is unknown: {exc}"
                ) from exc
        config = replace(self.config.network, engine=engine, gateway=gateway)
        self.network_client = await self._component_client(NETWORK_IDENTITY)
        network = ClusterNetwork(self.network_client, config)
        try:
            await network.start()
        except BaseException as exc:
            await network.stop()
            if isinstance(exc, NetworkError):
                raise ClusterError(str(exc)) from exc
            raise
        return network

    def warnings(self) -> list[str]:
        """What runs degraded (printed first by ``cluster up`` and ``gitops up``)."""
        return list(self.network.warnings) if self.network is not None else []

    async def stop(self, *, remove_containers: bool = True) -> None:
        """Stop everything; by default also the pods' containers (nothing is left on the
        host; the pods stay in the store and start again with the cluster)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # The network first: its host rules and listeners must go even when removing the
        # containers fails or hangs on a broken engine.
        if self.network is not None:
            try:
                await asyncio.wait_for(self.network.stop(), STOP_STEP_TIMEOUT)
            except Exception as exc:
                log.warning("cluster.network_stop_failed", error=str(exc) or type(exc).__name__)
        for kubelet in self.kubelets:
            try:
                if remove_containers:
                    await asyncio.wait_for(kubelet.remove_all_containers(), STOP_STEP_TIMEOUT)
            except Exception as exc:  # report, and go on stopping the rest
                log.warning(
                    "cluster.cleanup_failed",
                    node=kubelet.node_name,
                    error=str(exc) or type(exc).__name__,
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(kubelet.runtime.close(), STOP_STEP_TIMEOUT)
        if self.network_client is not None:
            await self.network_client.close()
        for client in self.kubelet_clients:
            await client.close()
        if self.scheduler_client is not None:
            await self.scheduler_client.close()
        if self.controller_client is not None:
            await self.controller_client.close()
        if self.client is not None:
            await self.client.close()
        await self.server.stop()

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _scheduler(client: Client) -> Any:
    """The scheduler's run coroutine (None until the scheduler package exists)."""
    try:
        from runtime.scheduler.scheduler import Scheduler, SchedulerOptions
    except ImportError:
        return None
    return Scheduler(client, SchedulerOptions()).run()


async def run_cluster(config: ClusterConfig) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    cluster = Cluster(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.start()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        await cluster.stop()
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        await cluster.stop()
        return 1
    server = cluster.server
    for warning in cluster.warnings():
        print(f"warning: {warning}", flush=True)
    print(f"API server listening on {server.url}", flush=True)
    print(f"kubeconfig: {server.kubeconfig}", flush=True)
    print(f"  export KUBECONFIG={server.kubeconfig}", flush=True)
    if cluster.kubelets:
        print(
            f"nodes: {', '.join(k.node_name for k in cluster.kubelets)} "
            f"(runtime {cluster.runtime_name})",
            flush=True,
        )
    if cluster.network is not None:
        for line in cluster.network.summary():
            print(line, flush=True)
    waiter = asyncio.ensure_future(server.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    print("shutting down", flush=True)
    await cluster.stop()
    waiter.cancel()
    return 0


async def _cluster_dns_of(client: Client) -> tuple[str, ...]:
    """The running cluster's DNS address for a kubelet of its own: the cluster IP of
    ``kube-system/kube-dns`` (none when that Service does not exist)."""
    try:
        svc = await client.get("v1", "services", KUBE_DNS[1], namespace=KUBE_DNS[0])
    except KubeError as exc:
        log.warning("kubelet.no_cluster_dns", error=str(exc))
        return ()
    ip = (svc.get("spec") or {}).get("clusterIP")
    return (str(ip),) if ip and ip != "None" else ()


async def run_kubelet(state_dir: Path, node_name: str, runtime: str) -> int:
    """``gitops kubelet``: one node's kubelet as its own process, against the cluster whose
    state directory holds the kubeconfig and CA: it reaches the API as
    ``system:node:<node>`` with a client certificate of its own, and checks the API
    server's kubelet-client token on its endpoint. Stops on SIGINT/SIGTERM and leaves the
    containers running (a new kubelet adopts them)."""
    kubeconfig = state_dir / "kubeconfig"
    if not kubeconfig.exists():
        print(
            f"error: {kubeconfig} not found: start the cluster first (gitops cluster up)",
            file=sys.stderr,
        )
        return 1
    try:
        name = await choose_runtime(runtime)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    token = ensure_kubelet_client_token(state_dir)
    cert = issue_serving_certificate(state_dir, node_name, ("127.0.0.1", "localhost"))
    node_kubeconfig = component_kubeconfig(state_dir, kubelet_identity(node_name))
    async with Client(load_kubeconfig(node_kubeconfig)) as client:
        kubelet = Kubelet(
            client,
            make_runtime(name, state_dir, node_name),
            KubeletOptions(
                node_name=node_name,
                root_dir=state_dir / "nodes" / node_name,
                server_token=token,
                server_cert=cert,
                cluster_dns=await _cluster_dns_of(client),
            ),
        )
        task = asyncio.create_task(kubelet.run())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kubelet.runtime.close()
    return 0
