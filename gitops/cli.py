"""The ``gitops`` command.

Subcommands today: ``gitops cluster up`` (the built-in cluster in the foreground) and
``gitops version``. The reconciler's commands (sync, diff, serve) arrive with it.
Exit codes: 0 success, 1 runtime failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.cluster import ClusterConfig

import structlog


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def _default_state_dir() -> Path:
    from gitops.commands import xdg_state_dir

    return xdg_state_dir() / "cluster"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The built-in cluster's settings (``gitops cluster up`` and ``gitops up``)."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=6443, help="HTTPS port (default: %(default)s)")
    parser.add_argument(
        "--runtime",
        choices=["auto", "podman", "docker", "fake", "none"],
        default="auto",
        help="container engine of the nodes: auto picks podman, else docker; fake runs no "
        "processes (tests, benchmarks); none runs the API server only (default: %(default)s)",
    )
    parser.add_argument(
        "--nodes", type=int, default=1, help="number of nodes (default: %(default)s)"
    )
    parser.add_argument(
        "--node-grace-period",
        type=float,
        default=40.0,
        help="seconds without a kubelet heartbeat before a node is unreachable (default: %(default)s)",
    )
    parser.add_argument(
        "--event-retention",
        type=int,
        default=20_000,
        help="watch events kept for resuming watches; older revisions get 410 Gone "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on watches that allow them (default: %(default)s)",
    )
    parser.add_argument(
        "--controllers",
        default="*",
        help="controllers to run: '*' (every built controller), 'none', or a "
        "comma-separated list of names where '-name' removes one (default: %(default)s)",
    )
    parser.add_argument(
        "--controller-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a controller setting, e.g. job.backoff-base=1 (repeatable)",
    )
    parser.add_argument(
        "--service-cidr",
        default="10.43.0.0/16",
        help="IPv4 range Services get their cluster IPs from (default: %(default)s)",
    )
    parser.add_argument(
        "--service-node-port-range",
        default="30000-32767",
        help="ports NodePort and LoadBalancer Services get node ports from (default: %(default)s)",
    )
    parser.add_argument(
        "--ingress-port",
        type=int,
        default=None,
        help="HTTP port of the built-in ingress controller (default: no ingress listener; "
        "0 picks a free port)",
    )
    parser.add_argument(
        "--ingress-tls-port",
        type=int,
        default=None,
        help="HTTPS port of the built-in ingress controller (default: none)",
    )
    parser.add_argument(
        "--ingress-host",
        default="127.0.0.1",
        help="address the ingress listeners bind and Ingresses report (default: %(default)s)",
    )
    parser.add_argument(
        "--encryption-provider-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="an EncryptionConfiguration (kube-apiserver's format) for encryption at rest; "
        "default: STATE_DIR/encryption-config.yaml, written on first start with a new "
        "aesgcm key for Secrets",
    )
    parser.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="static bearer tokens, kube-apiserver's format: CSV lines token,user,uid"
        '[,"group1,group2"] (default: none)',
    )
    parser.add_argument(
        "--anonymous-auth",
        choices=("true", "false"),
        default="true",
        help="requests without credentials act as system:anonymous, allowed only what "
        "RBAC grants it (by default health and version); false answers them 401 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--service-host",
        default="127.0.0.1",
        help="address NodePort and LoadBalancer Service ports bind and LoadBalancer "
        "Services report (default: %(default)s)",
    )
    parser.add_argument(
        "--pod-security-default",
        default=None,
        metavar="MODE=LEVEL,...",
        help="Pod Security levels of namespaces without pod-security.kubernetes.io labels, "
        "e.g. enforce=baseline,warn=restricted (the default) or enforce=privileged; modes "
        "enforce, audit, warn (and MODE-version=v1.X); a mode left out is privileged",
    )
    parser.add_argument(
        "--pod-security-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a PodSecurityConfiguration (kube-apiserver's format: defaults and exemptions "
        "of usernames, runtimeClasses, namespaces) instead of --pod-security-default",
    )


def _log_stream(args: argparse.Namespace) -> Any:
    """``gitops up`` on a terminal draws a live table on stdout: its logs go to a file
    in the state directory instead of over it."""
    if args.command == "up" and sys.stdout.isatty():
        args.state_dir.mkdir(parents=True, exist_ok=True)
        path = args.state_dir / "gitops.log"
        print(f"logs: {path}", flush=True)
        return path.open("a", buffering=1)
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitops", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    cluster = sub.add_parser("cluster", help="the built-in cluster")
    csub = cluster.add_subparsers(dest="cluster_command", required=True)
    up = csub.add_parser("up", help="run the built-in cluster in the foreground")
    up.add_argument(
        "--state-dir",
        type=Path,
        default=_default_state_dir(),
        help="where the store, certificates, token and kubeconfig live (default: %(default)s)",
    )
    add_cluster_arguments(up)
    kubelet = sub.add_parser("kubelet", help="run one node's kubelet as its own process")
    kubelet.add_argument(
        "--state-dir",
        type=Path,
        default=_default_state_dir(),
        help="the cluster's state directory (kubeconfig, token, CA) (default: %(default)s)",
    )
    kubelet.add_argument("--node-name", required=True, help="the Node this kubelet registers")
    kubelet.add_argument(
        "--runtime",
        choices=["auto", "podman", "docker", "fake"],
        default="auto",
        help="container engine (default: %(default)s)",
    )
    _reconciler_parsers(sub)
    from gitops.up import add_up_arguments

    gup = sub.add_parser(
        "up",
        help="the built-in cluster and the sync service in one process (the main job)",
        description="Start the built-in cluster and sync a repository into it (default: the "
        "bundled examples/repo) until Ctrl-C. Exit codes: 0 stopped cleanly, 1 cannot start, "
        "2 usage error.",
    )
    add_up_arguments(gup)
    add_cluster_arguments(gup)
    sub.add_parser("version", help="print the version")
    return parser


def _reconciler_parsers(sub: Any) -> None:
    from gitops.commands import EXIT_CODES, add_app_arguments, xdg_state_dir
    from gitops.report import ReportFormat

    def command(name: str, help_text: str, *, cluster: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=f"{help_text}. Exit codes: {EXIT_CODES[name]}."
        )
        add_app_arguments(p, cluster=cluster)
        return p

    command("build", "print the objects a revision builds to, as YAML", cluster=False)
    command("sync", "apply a revision once and wait until it is healthy")
    command("diff", "show what a sync would change")
    drift = command("drift", "report drift between a revision and the live cluster (for CI)")
    drift.add_argument(
        "--format",
        choices=[f.value for f in ReportFormat],
        default="text",
        help="report format (default: %(default)s)",
    )
    drift.add_argument("--output", type=Path, help="write the report to a file (default: stdout)")
    drift.add_argument(
        "--exit-code", action="store_true", help="exit 1 when there is drift (for CI)"
    )
    status = sub.add_parser(
        "status",
        help="each Application's revision, sync status, health, last error and recent syncs",
        description=f"Exit codes: {EXIT_CODES['status']}.",
    )
    status.add_argument(
        "--state-dir",
        type=Path,
        default=xdg_state_dir(),
        help="the service's state directory (default: %(default)s)",
    )
    status.add_argument("--app", help="only this Application")
    status.add_argument("--history", type=int, default=5, help="recent runs shown per Application")
    status.add_argument("--format", choices=["text", "json"], default="text")
    from gitops.commands import add_serve_arguments

    serve = sub.add_parser(
        "serve",
        help="the long-running sync service for the Applications of a config file",
        description=f"Exit codes: {EXIT_CODES['serve']}.",
    )
    add_serve_arguments(serve)


def _pod_security(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    from runtime.api.admission.podsecurity import ConfigError, from_flags

    try:
        return from_flags(args.pod_security_default, args.pod_security_config)
    except ConfigError as exc:
        parser.error(str(exc))


def cluster_config(
    args: argparse.Namespace, state_dir: Path, parser: argparse.ArgumentParser
) -> ClusterConfig:
    """The built-in cluster's configuration from :func:`add_cluster_arguments`' flags."""
    from runtime.api.store import StoreOptions
    from runtime.cluster import ClusterConfig
    from runtime.controllers.manager import (
        ControllerError,
        enabled_controllers,
        parse_settings,
    )
    from runtime.network.wiring import NetworkConfig
    from runtime.server.serve import ApiServerConfig

    try:
        controllers = enabled_controllers(args.controllers)
        settings = parse_settings(args.controller_option)
    except ControllerError as exc:
        parser.error(str(exc))

    from runtime.api.objects import ApiOptions
    from runtime.api.services import ServiceNetworkError, parse_port_range, parse_service_cidr

    try:
        parse_service_cidr(args.service_cidr)
        parse_port_range(args.service_node_port_range)
    except ServiceNetworkError as exc:
        parser.error(str(exc))
    for flag in ("ingress_port", "ingress_tls_port"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be a port number (0-65535)")
    api = ApiServerConfig(
        # Owners' deletions wait for dependents only where a garbage collector runs.
        api=ApiOptions(
            garbage_collection="garbagecollector" in controllers and args.runtime != "none",
            service_cidr=args.service_cidr,
            service_node_port_range=args.service_node_port_range,
            apiserver_port=args.port or 6443,
            pod_security=_pod_security(args, parser),
        ),
        state_dir=state_dir,
        host=args.host,
        port=args.port,
        store=StoreOptions(event_retention=args.event_retention),
        bookmark_interval=args.bookmark_interval,
        encryption_provider_config=args.encryption_provider_config,
        token_auth_file=args.token_auth_file,
        anonymous_auth=args.anonymous_auth == "true",
    )
    config = ClusterConfig(
        state_dir=state_dir,
        host=args.host,
        port=args.port,
        runtime=args.runtime,
        nodes=args.nodes,
        node_grace_period=args.node_grace_period,
        api=api,
        controllers=tuple(controllers),
        controller_settings=settings,
        network=NetworkConfig(
            service_cidr=args.service_cidr,
            ingress_host=args.ingress_host,
            ingress_port=args.ingress_port,
            ingress_tls_port=args.ingress_tls_port,
            service_host=args.service_host,
        ),
    )
    return config


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "event_retention", 10) < 10:
        parser.error("--event-retention must be at least 10")
    if getattr(args, "nodes", 1) < 1:
        parser.error("--nodes must be at least 1")
    if getattr(args, "bookmark_interval", 1.0) <= 0:
        parser.error("--bookmark-interval must be positive")
    if args.command in ("serve", "up"):
        from gitops.service import configure_logging

        configure_logging(args.verbose, _log_stream(args))
    else:
        _configure_logging(args.verbose)
    if args.command == "version":
        from importlib.metadata import version

        print(version("gitops-cluster"))
        return 0
    if args.command == "cluster" and args.cluster_command == "up":
        from runtime.cluster import run_cluster

        config = cluster_config(args, args.state_dir, parser)
        import uvloop

        return uvloop.run(run_cluster(config))
    if args.command in ("build", "sync", "diff", "drift", "status", "serve"):
        from gitops import commands

        handler: Any = getattr(commands, f"cmd_{args.command}")
        code: int = handler(args)
        return code
    if args.command == "up":
        import uvloop

        from gitops.up import run_up

        config = cluster_config(args, args.state_dir / "cluster", parser)
        return uvloop.run(run_up(args, config))
    if args.command == "kubelet":
        import uvloop

        from runtime.cluster import run_kubelet

        return uvloop.run(run_kubelet(args.state_dir, args.node_name, args.runtime))
    return 2


def run() -> None:
    """The console script: ``main`` with a quiet exit when a pipe closes early
    (``gitops build | head``)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    run()
