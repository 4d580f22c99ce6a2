"""The reconciler's one-shot commands: ``build``, ``sync``, ``diff``, ``drift``, ``status``.

Each takes an Application from a config file (``--config FILE --app NAME``) or from
flags (``--name --repo [--revision] [--path] [--namespace] [--prune] [--self-heal]``),
a destination (``--kubeconfig [--context]``, or the built-in cluster of ``--state-dir``)
and runs the same pipeline as the service (:mod:`gitops.sync`) once. Results are data
(:class:`~gitops.sync.SyncResult`); this module renders them: rich tables on a
terminal, plain lines otherwise, reports (:mod:`gitops.report`) for ``drift``.

Exit codes: see :data:`EXIT_CODES` (also in the README).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from gitops.build import build
from gitops.changeset import Action, ChangeSet, Entry
from gitops.cluster import Destination
from gitops.config import Application, Config, load_config
from gitops.errors import BuildError, BuildErrors, ConfigError, GitopsError
from gitops.report import ReportContext, ReportFormat, has_drift, render
from gitops.service.destinations import service_account_user
from gitops.source import GitSource
from gitops.status import StatusStore
from gitops.sync import AppSync, Mode, RunOptions, SyncResult, locate, source_spec

EXIT_OK = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2
EXIT_CODES = {
    "build": "0 built; 2 invalid input (file:line on stderr) or the source cannot be read",
    "sync": "0 synced and healthy; 1 an object failed or is not healthy in time; 2 invalid input",
    "diff": "0 no change; 1 changes; 2 error",
    "drift": "0 report written (with --exit-code: 0 no drift, 1 drift); 2 error",
    "status": "0 printed; 2 no status database",
    "serve": "0 stopped by SIGINT/SIGTERM; 1 cannot start (port in use); 2 invalid config",
}


def xdg_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gitops"


def xdg_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops"


def add_app_arguments(parser: argparse.ArgumentParser, *, cluster: bool = True) -> None:
    """The flags that choose an Application (and, with ``cluster``, its destination)."""
    group = parser.add_argument_group("application (from a config file, or from flags)")
    group.add_argument("--config", type=Path, help="config file declaring Applications")
    group.add_argument("--app", help="the Application of --config to use")
    group.add_argument("--name", help="Application name (flags mode; default: the repo's name)")
    group.add_argument("--repo", help="repository URL or local path (flags mode)")
    group.add_argument("--revision", help="branch, tag, semver range or commit (default: HEAD)")
    group.add_argument("--path", help="directory inside the repository (default: .)")
    group.add_argument("--namespace", help="default namespace of namespaced objects")
    group.add_argument(
        "--prune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="delete objects that left the revision (default: on)",
    )
    group.add_argument(
        "--self-heal", action="store_true", default=None, help="correct drift (flags mode)"
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        default=xdg_cache_dir() / "git",
        help="where repositories are cloned (default: %(default)s)",
    )
    if cluster:
        dest = parser.add_argument_group("destination")
        dest.add_argument("--kubeconfig", type=Path, help="a real cluster's kubeconfig")
        dest.add_argument("--context", help="the kubeconfig context (default: current)")
        dest.add_argument(
            "--state-dir",
            type=Path,
            default=xdg_state_dir(),
            help="the built-in cluster's state directory, used without --kubeconfig "
            "(default: %(default)s)",
        )
        dest.add_argument(
            "--timeout", type=float, default=None, help="seconds to wait for health (sync)"
        )


def application(args: argparse.Namespace) -> Application:
    """The Application the flags describe; ConfigError when they do not."""
    return application_and_config(args)[0]


def application_and_config(args: argparse.Namespace) -> tuple[Application, Config]:
    """The Application the flags describe and the config it comes from (projects, named
    clusters and credentials; an empty config in flags mode); ConfigError when the flags
    describe none."""
    if args.config is not None:
        if args.repo:
            raise ConfigError("give either --config/--app or --repo, not both")
        config = load_config(args.config)
        if args.app is None:
            if len(config.applications) != 1:
                names = ", ".join(a.name for a in config.applications)
                raise ConfigError(
                    f"{args.config} declares several Applications ({names}): pick one with --app"
                )
            app = config.applications[0]
        else:
            found = config.application(args.app)
            if found is None:
                names = ", ".join(a.name for a in config.applications)
                raise ConfigError(
                    f"{args.config} has no Application {args.app!r} (it has: {names})"
                )
            app = found
        overrides: dict[str, Any] = {}
        if args.prune is not None:
            overrides["prune"] = args.prune
        if args.self_heal:
            overrides["self_heal"] = True
        return (app.model_copy(update=overrides) if overrides else app), config
    if not args.repo:
        raise ConfigError("give --repo URL|PATH (or --config FILE --app NAME)")
    name = args.name or _default_name(args.repo)
    spec: dict[str, Any] = {
        "name": name,
        "source": {"repoURL": _absolute(args.repo), "path": args.path or "."},
        "destination": {"namespace": args.namespace or "default"},
        "prune": True if args.prune is None else args.prune,
        "selfHeal": bool(args.self_heal),
    }
    if args.revision:
        spec["source"]["revision"] = args.revision
    try:
        return Application.model_validate(spec), Config()
    except Exception as exc:
        raise ConfigError(f"invalid flags: {exc}") from None


def _absolute(repo: str) -> str:
    if "://" in repo or "@" in repo.split("/", 1)[0]:
        return repo
    return str(Path(repo).expanduser().resolve())


def _default_name(repo: str) -> str:
    stem = repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git").lower()
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in stem).strip("-")
    return cleaned[:63] or "app"


def destination(
    args: argparse.Namespace, app: Application, config: Config | None = None
) -> Destination:
    if args.kubeconfig is not None:
        return Destination.from_kubeconfig(args.kubeconfig, args.context)
    access = (config or Config()).cluster_access(app.destination.cluster)
    if access is not None:
        dest = Destination.from_kubeconfig(Path(access.kubeconfig).expanduser(), access.context)
    else:
        dest = Destination.from_kubeconfig(builtin_kubeconfig(args.state_dir))
    dest.impersonate = service_account_user(app, config or Config())
    return dest


def builtin_kubeconfig(state_dir: Path) -> Path:
    """The kubeconfig of the built-in cluster of a state directory (``gitops up`` keeps
    the cluster in ``<state>/cluster``; ``gitops cluster up --state-dir D`` in ``D``)."""
    for candidate in (state_dir / "kubeconfig", state_dir / "cluster" / "kubeconfig"):
        if candidate.exists():
            return candidate
    raise ConfigError(
        f"no built-in cluster in {state_dir} (no kubeconfig there): start one with `gitops up` "
        "or `gitops cluster up`, or give --kubeconfig"
    )


# --- rendering -------------------------------------------------------------------------
_WORDS = {
    Action.CREATED: "create",
    Action.CONFIGURED: "configure",
    Action.UNCHANGED: "unchanged",
    Action.PRUNED: "prune",
    Action.SKIPPED: "skip",
    Action.FAILED: "FAILED",
}
_DONE = {
    Action.CREATED: "created",
    Action.CONFIGURED: "configured",
    Action.UNCHANGED: "unchanged",
    Action.PRUNED: "pruned",
    Action.SKIPPED: "skipped",
    Action.FAILED: "FAILED",
}


def _short(value: Any) -> str:
    if value is None:
        return "<absent>"
    text = (
        value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    )
    return text if len(text) <= 120 else text[:117] + "..."


def _entry_lines(entry: Entry, done: bool) -> list[str]:
    word = (_DONE if done else _WORDS)[entry.action]
    where = f"  ({entry.origin})" if entry.origin else ""
    lines = [f"{word:>10}  {entry.key}{where}"]
    if entry.message:
        lines.append(f"{'':>12}{entry.message}")
    for change in entry.diff:
        lines.append(f"{'':>12}{change.path}: {_short(change.before)} -> {_short(change.after)}")
    return lines


def print_changes(changes: ChangeSet, out: TextIO, *, done: bool, verbose: bool = False) -> None:
    for entry in changes.entries:
        if entry.action is Action.UNCHANGED and not verbose:
            continue
        for line in _entry_lines(entry, done):
            print(line, file=out)
    counts = {k: v for k, v in changes.counts().items() if v}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no objects"
    print(f"{len(changes.entries)} objects: {summary}", file=out)


def print_error(result: SyncResult, out: TextIO) -> None:
    if result.error:
        print(f"error ({result.error_phase}): {result.error}", file=out)


# --- commands ---------------------------------------------------------------------------
@dataclass
class Context:
    args: argparse.Namespace
    app: Application
    config: Config


def _load(args: argparse.Namespace) -> Context | int:
    try:
        return Context(args, *application_and_config(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def cmd_build(args: argparse.Namespace) -> int:
    ctx = _load(args)
    if isinstance(ctx, int):
        return ctx
    app = ctx.app
    try:
        location = locate(app.source.repo_url)
        source = GitSource(args.cache_dir)
        spec = source_spec(app, location, ctx.config)
        revision = source.fetch(spec)
        tree = source.checkout(spec, revision.commit)
        root = tree / location.subdir if location.subdir else tree
        manifests = build(root, app.source.path, app.build_options())
    except BuildErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except (BuildError, GitopsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    out = sys.stdout
    print(f"# revision {revision.commit} ({revision.ref})", file=out)
    for m in manifests:
        print(f"---\n# Source: {m.origin}", file=out)
        out.write(yaml.safe_dump(m.obj, sort_keys=False, default_flow_style=False))
    return EXIT_OK


async def _run_once(ctx: Context, options: RunOptions) -> SyncResult:
    app = ctx.app
    async with destination(ctx.args, app, ctx.config) as dest:
        runner = AppSync(app, GitSource(ctx.args.cache_dir), dest, ctx.config)
        return await runner.run(options)


def _run(ctx: Context, options: RunOptions) -> SyncResult | int:
    try:
        if sys.stderr.isatty():  # progress on a terminal; nothing extra in pipes and CI logs
            from rich.console import Console

            verb = {"sync": "syncing", "plan": "planning", "heal": "checking"}[options.mode.value]
            with Console(stderr=True).status(f"{verb} {ctx.app.name}…"):
                return asyncio.run(_run_once(ctx, options))
        return asyncio.run(_run_once(ctx, options))
    except GitopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _record(args: argparse.Namespace, result: SyncResult) -> None:
    """One-shot runs against the built-in cluster also go into its status history."""
    if args.kubeconfig is not None:
        return
    path = args.state_dir / "status.sqlite"
    if not args.state_dir.is_dir():
        return
    store = StatusStore(path)
    try:
        store.record(result)
    finally:
        store.close()


def cmd_sync(args: argparse.Namespace) -> int:
    ctx = _load(args)
    if isinstance(ctx, int):
        return ctx
    result = _run(ctx, RunOptions(Mode.SYNC, wait=True, timeout=args.timeout))
    if isinstance(result, int):
        return result
    _record(args, result)
    print(f"{ctx.app.name}: revision {result.revision[:12] or '-'}", file=sys.stdout)
    print_changes(result.changes, sys.stdout, done=True)
    print_error(result, sys.stderr)
    if result.error and result.error_phase in ("build", "plan") and not result.changes.entries:
        return EXIT_ERROR
    if result.error_file is not None:
        return EXIT_ERROR
    if not result.ok:
        return EXIT_CHANGES
    print(
        f"health: {result.health.status}"
        + (f" ({result.health.message})" if result.health.message else "")
    )
    for key, health in sorted(result.object_health.items()):
        if health.status.value not in ("Healthy", "Suspended"):
            print(f"  {health.status}: {key} {health.message}")
    return EXIT_OK if result.health.status.value in ("Healthy", "Suspended") else EXIT_CHANGES


def _plan(args: argparse.Namespace) -> tuple[Context, SyncResult] | int:
    """The Application of the flags planned against its destination (or an exit code)."""
    ctx = _load(args)
    if isinstance(ctx, int):
        return ctx
    result = _run(ctx, RunOptions(Mode.PLAN, wait=False))
    if isinstance(result, int):
        return result
    return ctx, result


def cmd_diff(args: argparse.Namespace) -> int:
    planned = _plan(args)
    if isinstance(planned, int):
        return planned
    _, result = planned
    print_changes(result.changes, sys.stdout, done=False)
    if result.error:
        print_error(result, sys.stderr)
        return EXIT_ERROR
    return EXIT_CHANGES if result.changes.changed else EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    planned = _plan(args)
    if isinstance(planned, int):
        return planned
    ctx, result = planned
    if result.error:
        print_error(result, sys.stderr)
        return EXIT_ERROR
    dest = str(args.kubeconfig) if args.kubeconfig else f"built-in ({args.state_dir})"
    text = render(
        result.changes,
        ReportFormat(args.format),
        ReportContext(ctx.app.name, result.revision, dest, result.started_at),
    )
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.exit_code and has_drift(result.changes):
        return EXIT_CHANGES
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    path = args.state_dir / "status.sqlite"
    if not path.exists():
        print(f"error: no status in {args.state_dir} (nothing has run there yet)", file=sys.stderr)
        return EXIT_ERROR
    store = StatusStore(path)
    try:
        statuses = store.statuses(args.app and [args.app], history=args.history)
    finally:
        store.close()
    if args.format == "json":
        import json

        print(json.dumps([s.to_json() for s in statuses], indent=2))
        return EXIT_OK
    for s in statuses:
        print(
            f"{s.name}: {s.sync_status}, {s.health}"
            f"{' (' + s.health_message + ')' if s.health_message else ''}, "
            f"revision {s.revision[:12] or '-'} {s.revision_message!r}"
        )
        if s.last_error:
            print(f"  last error: {s.last_error}")
        if s.drift:
            print(f"  out of sync: {s.drift} objects")
        for h in s.history:
            changed = ", ".join(f"{v} {k}" for k, v in h.counts.items() if v and k != "unchanged")
            print(
                f"  {h.started_at} {h.mode:<4} {h.revision[:12] or '-':<12} {h.result:<9}"
                f" {h.seconds:6.2f}s {changed}" + (f" error: {h.error}" if h.error else "")
            )
    if not statuses:
        print("no Applications recorded yet")
    return EXIT_OK


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the config file")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=xdg_state_dir(),
        help="status database and Git cache; the built-in cluster of Applications with "
        "destination 'builtin' is the one in this directory (default: %(default)s)",
    )
    parser.add_argument(
        "--listen", help="HTTP endpoints' address (default: the config's service.listen)"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from gitops.service import ReadAccess, Service, ServiceOptions, WebhookPolicy

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    secret = None
    if config.service.webhook_secret_env:
        secret = os.environ.get(config.service.webhook_secret_env)
        if not secret:
            print(
                f"error: the webhook secret variable {config.service.webhook_secret_env} is not set",
                file=sys.stderr,
            )
            return EXIT_ERROR
    state_dir = Path(config.service.state_dir) if config.service.state_dir else args.state_dir
    try:
        builtin: Path | None = builtin_kubeconfig(state_dir)
    except ConfigError:
        builtin = None
    options = ServiceOptions(
        state_dir=state_dir,
        listen=args.listen or config.service.listen,
        webhook_secret=secret,
        builtin_kubeconfig=builtin,
        read_access=ReadAccess(config.service.read_access),
        webhooks=WebhookPolicy(allow_unsigned=config.service.allow_unsigned_webhooks),
    )

    async def serve() -> int:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        service = Service(config, options)
        try:
            await service.start()
        except GitopsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(
                f"error: cannot listen on {options.listen}: {exc.strerror or exc}", file=sys.stderr
            )
            await service.stop()
            return 1
        print(
            f"serving {len(config.applications)} Applications; {service.url or 'no HTTP'}",
            flush=True,
        )
        if service.token_file:
            print(f"service token: {service.token_file}", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
        return 0

    return asyncio.run(serve())
