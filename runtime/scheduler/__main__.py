"""Run the scheduler as its own process against any API server reachable through a
kubeconfig: ``python -m runtime.scheduler --kubeconfig ~/.gitops/kubeconfig``.

Who calls it: operators and ``gitops cluster up`` when it prefers the scheduler off the
API server's event loop (a separate process gets its own CPU); in-process use is
``await Scheduler(client, SchedulerOptions()).run()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from kubeclient.rest import Client, load_kubeconfig
from runtime.scheduler.scheduler import Scheduler, SchedulerOptions


async def _run(args: argparse.Namespace) -> None:
    options = SchedulerOptions(
        scheduler_name=args.scheduler_name,
        bind_parallelism=args.bind_parallelism,
        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
    )
    config = load_kubeconfig(args.kubeconfig, args.context)
    async with Client(config, connections=args.bind_parallelism + 32) as client:
        task = asyncio.create_task(Scheduler(client, options).run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.scheduler", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--context", default=None)
    parser.add_argument("--scheduler-name", default="default-scheduler")
    parser.add_argument("--bind-parallelism", type=int, default=16)
    parser.add_argument(
        "--percentage-of-nodes-to-score", type=int, default=0, help="0: adaptive, as kube-scheduler"
    )
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
