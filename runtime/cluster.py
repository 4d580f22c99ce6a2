"""Wires a whole built-in cluster together and runs it in the foreground
(``gitops cluster up``). Today the cluster is its API server and store; the scheduler,
kubelets and controllers join here as they are built. Called by :mod:`gitops.cli`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from runtime.server.serve import ApiServer, ApiServerConfig

log = structlog.get_logger(__name__)


@dataclass
class ClusterConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    api: ApiServerConfig | None = field(default=None)


async def run_cluster(config: ClusterConfig) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    api_config = config.api or ApiServerConfig(
        state_dir=config.state_dir, host=config.host, port=config.port
    )
    server = ApiServer(api_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except OSError as exc:
        print(
            f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        await server.stop()
        return 1
    print(f"API server listening on {server.url}", flush=True)
    print(f"kubeconfig: {server.kubeconfig}", flush=True)
    print(f"  export KUBECONFIG={server.kubeconfig}", flush=True)
    waiter = asyncio.ensure_future(server.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    print("shutting down", flush=True)
    await server.stop()
    waiter.cancel()
    return 0
