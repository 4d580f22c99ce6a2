"""``gitops up``: the built-in cluster and the sync service in one process.

This is the only place where the reconciler and the runtime meet (../shared/DESIGN.md):
it starts :class:`runtime.cluster.Cluster` (API server, controllers, scheduler,
kubelets on podman or docker) in ``<state>/cluster``, then :class:`gitops.service.Service`
with one root Application on the repository (by default the bundled
``examples/repo``, whose ``clusters/local`` declares the example Applications), whose
destination is that cluster, talked to over HTTPS with its kubeconfig like any other.

It prints where the kubeconfig is and a live summary (Applications, revision, sync
status, health, pods ready) — a table redrawn in place on a terminal, a line per change
otherwise. Ctrl-C (SIGINT) or SIGTERM stops the service, then the cluster, which removes
its containers; the state directory keeps the store, so ``gitops up`` again resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gitops.commands import xdg_state_dir
from gitops.config import Application, Config
from gitops.errors import ConfigError, GitopsError
from gitops.projects import BUILTIN_CLUSTER, GroupKind, Project, ProjectDestination
from gitops.status import AppStatus

ROOT_APP = "root"
ROOT_PROJECT = "root"


def bundled_examples() -> Path | None:
    """``examples/repo`` next to the package (a source checkout or editable install)."""
    candidate = Path(__file__).resolve().parent.parent / "examples" / "repo"
    return candidate if candidate.is_dir() else None


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        help="repository URL or local path (default: the bundled examples/repo)",
    )
    parser.add_argument(
        "--path",
        help="directory of the root Application inside the repository "
        "(default: clusters/local for the bundled examples, else .)",
    )
    parser.add_argument("--revision", default="HEAD", help="branch, tag, range or commit")
    parser.add_argument(
        "--interval", default="1m", help="drift check / poll interval (default: %(default)s)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=xdg_state_dir(),
        help="cluster store, status and caches (default: %(default)s)",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="the service's HTTP endpoints (/status, /metrics, /webhook…) (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-unsigned-webhooks",
        action="store_true",
        help="accept POST /webhook without a signature or the service token (only with a "
        "loopback --listen)",
    )
    bounds = parser.add_argument_group(
        "the root project (what the repository may do; see the README's security model)"
    )
    bounds.add_argument(
        "--allow-repo",
        action="append",
        default=[],
        metavar="PATTERN",
        help="another repository URL pattern Applications declared in the repository may "
        "fetch (repeatable; default: only the root repository)",
    )
    bounds.add_argument(
        "--allow-namespace",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a namespace pattern they may deploy to (repeatable; default: every namespace)",
    )
    bounds.add_argument(
        "--allow-cluster-kind",
        action="append",
        default=None,
        metavar="GROUP/KIND",
        help="a cluster-scoped kind they may apply, e.g. /Namespace or "
        "rbac.authorization.k8s.io/ClusterRole (repeatable; default: every kind, '-' none)",
    )
    bounds.add_argument(
        "--allow-pod-security",
        default="baseline",
        choices=("privileged", "baseline", "restricted"),
        help="the least strict Pod Security enforce label a Namespace from the repository "
        "may carry (default: %(default)s: no namespace labelled privileged)",
    )
    bounds.add_argument(
        "--deny-kind",
        action="append",
        default=[],
        metavar="GROUP/KIND",
        help="a namespaced kind they may not apply (repeatable), e.g. /Secret",
    )


def _group_kind(text: str) -> GroupKind:
    group, sep, kind = text.rpartition("/")
    if not sep or not kind:
        raise ConfigError(f"{text!r} is not GROUP/KIND (the core group is empty: /Namespace)")
    return GroupKind(group=group, kind=kind)


def root_project(args: argparse.Namespace, root: Application) -> Project:
    """The project of ``gitops up``'s root Application, from the flags: its own
    repository (and ``--allow-repo``), the built-in cluster (``--allow-namespace``,
    default every namespace), cluster-scoped kinds (``--allow-cluster-kind``, default
    all), no host credentials."""
    kinds = args.allow_cluster_kind
    if kinds is None:
        cluster_kinds: tuple[GroupKind, ...] = (GroupKind(group="*", kind="*"),)
    else:
        cluster_kinds = tuple(_group_kind(k) for k in kinds if k != "-")
    return Project(
        name=ROOT_PROJECT,
        description="gitops up: the root repository on the built-in cluster",
        source_repos=(root.source.repo_url, *args.allow_repo),
        destinations=tuple(
            ProjectDestination(cluster=BUILTIN_CLUSTER, namespace=pattern)
            for pattern in (args.allow_namespace or ["*"])
        ),
        cluster_resource_whitelist=cluster_kinds,
        namespace_resource_blacklist=tuple(_group_kind(k) for k in args.deny_kind),
        minimum_pod_security=args.allow_pod_security,
    )


def root_config(args: argparse.Namespace) -> Config:
    """The service config of ``gitops up``: the root Application in the root project."""
    root = root_application(args)
    return Config(applications=(root,), projects=(root_project(args, root),))


def root_application(args: argparse.Namespace) -> Application:
    repo = args.repo
    path = args.path
    if repo is None:
        examples = bundled_examples()
        if examples is None:
            raise ConfigError("no bundled examples/repo here: give --repo PATH|URL")
        repo = str(examples)
        path = path or "clusters/local"
    elif "://" not in repo and "@" not in repo.split("/", 1)[0]:
        repo = str(Path(repo).expanduser().resolve())
    return Application.model_validate(
        {
            "name": ROOT_APP,
            "project": ROOT_PROJECT,
            "source": {"repoURL": repo, "revision": args.revision, "path": path or "."},
            "interval": args.interval,
            "prune": True,
            "selfHeal": True,
        }
    )


class Summary:
    """The live view: a rich table on a terminal, a line per change otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._last: dict[str, str] = {}
        self._live: Any = None

    def __enter__(self) -> Summary:
        if self.tty:
            from rich.live import Live

            self._live = Live(self._table([], (0, 0)), auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    @staticmethod
    def _table(statuses: list[AppStatus], pods: tuple[int, int]) -> Any:
        from rich.table import Table

        table = Table(title=f"Applications — pods ready {pods[0]}/{pods[1]}")
        for column in ("Application", "State", "Revision", "Sync", "Health", "Last error"):
            table.add_column(column)
        for s in statuses:
            table.add_row(
                s.name,
                str(getattr(s, "state", "")),
                s.revision[:12] or "-",
                s.sync_status,
                s.health,
                (s.last_error[:60] + "…") if len(s.last_error) > 60 else s.last_error,
            )
        return table

    def update(self, statuses: list[AppStatus], pods: tuple[int, int]) -> None:
        if self._live is not None:
            self._live.update(self._table(statuses, pods), refresh=True)
            return
        for s in statuses:
            line = f"{s.name}: {s.sync_status}, {s.health}, revision {s.revision[:12] or '-'}" + (
                f", error: {s.last_error}" if s.last_error else ""
            )
            if self._last.get(s.name) != line:
                self._last[s.name] = line
                print(line, flush=True)
        pods_line = f"pods ready: {pods[0]}/{pods[1]}"
        if self._last.get("") != pods_line:
            self._last[""] = pods_line
            print(pods_line, flush=True)


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


async def run_up(args: argparse.Namespace, cluster_config: Any) -> int:
    from gitops import reconciler_identity
    from gitops.errors import ClusterError as ClusterError_
    from gitops.service import Service, ServiceOptions, WebhookPolicy
    from kubeclient.rest import KubeError
    from runtime.cluster import Cluster, ClusterError
    from runtime.server.tls import issue_client_credentials

    try:
        config = root_config(args)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = config.applications[0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster = Cluster(cluster_config)
    try:
        await cluster.start()
    except (ClusterError, OSError) as exc:
        print(f"error: the cluster cannot start: {exc}", file=sys.stderr)
        await cluster.stop()
        return 1
    kubeconfig = cluster.server.kubeconfig
    try:
        # The reconciler's own least-privilege identity (the root project's bounds as
        # RBAC), never the admin kubeconfig the user gets.
        reconciler_kubeconfig = issue_client_credentials(
            cluster.config.state_dir,
            "gitops-reconciler",
            reconciler_identity.USER,
            (reconciler_identity.GROUP,),
        )
        identity, identity_task = await reconciler_identity.start(kubeconfig, config.projects[0])
    except (KubeError, ClusterError_, OSError) as exc:
        print(f"error: the reconciler's identity cannot be set up: {exc}", file=sys.stderr)
        await cluster.stop()
        return 1
    for warning in cluster.warnings():
        print(f"warning: {warning}", flush=True)
    print(f"cluster: {cluster.server.url} (runtime {cluster.runtime_name})", flush=True)
    print(f"kubeconfig: {kubeconfig}\n  export KUBECONFIG={kubeconfig}", flush=True)
    print(f"repository: {root.source.repo_url} path {root.source.path}", flush=True)
    service = Service(
        config,
        ServiceOptions(
            state_dir=args.state_dir,
            listen=args.listen,
            builtin_kubeconfig=reconciler_kubeconfig,
            webhook_secret=os.environ.get("GITOPS_WEBHOOK_SECRET") or None,
            webhooks=WebhookPolicy(allow_unsigned=args.allow_unsigned_webhooks),
        ),
    )
    code = 0
    try:
        await service.start()
        if service.url:
            print(f"service: {service.url}/status", flush=True)
        if service.token_file:
            print(
                f"service token: {service.token_file} (send it as "
                '"Authorization: Bearer $(cat FILE)" to POST /webhook)',
                flush=True,
            )
        with Summary() as summary:
            while not stop.is_set():
                pods = (0, 0)
                if cluster.client is not None:
                    with contextlib.suppress(Exception):
                        items = (await cluster.client.list("v1", "pods")).get("items") or []
                        pods = (sum(1 for p in items if _ready(p)), len(items))
                summary.update(service.statuses(), pods)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
    except GitopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("shutting down", flush=True)
        await service.stop()
        await reconciler_identity.stop(identity, identity_task)
        await cluster.stop()
    return code
