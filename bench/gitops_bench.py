"""Reconciler benchmark (issue 5's speed figures) against the built-in cluster.

Starts ``gitops cluster up --runtime fake`` (its own process, reached over HTTPS like any
cluster) and, in this process, runs the reconciler's pipeline (:class:`gitops.sync.AppSync`,
what ``gitops sync`` and the service run) on a real Git repository made here:

* one Application of ``--objects`` objects (default 2,000: Namespaces, ConfigMaps,
  Secrets, ServiceAccounts, Services and Deployments of 0 replicas, spread over 10
  namespaces): the first sync; a commit changing 10 of them; a no-change re-plan (the
  service's interval run, with its plan cache) — for each: seconds, API requests made
  by the reconciler, and the peak RSS of this process during the phase (``VmHWM`` after
  resetting it; the process holds the reconciler only, the cluster runs in its own);
* the service on a local repository: ``--commits`` commits, each timed from the commit
  to its change being visible through the API (target: within 1 s);
* Flux's published benchmark shape (fluxcd/flux-benchmark: 100 Kustomizations of a
  Deployment scaled to zero, a ServiceAccount, a Service and an Ingress; 27 s): ``--apps``
  Applications (default 100) of those 4 objects, synced 4 at a time (the service's
  default concurrency).

Prints the figures and writes ``bench/results/gitops.json`` (or ``--out``).
Usage: ``.venv/bin/python bench/gitops_bench.py [--objects 2000] [--apps 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitops.cluster import Destination  # noqa: E402
from gitops.config import Application  # noqa: E402
from gitops.source import GitSource  # noqa: E402
from gitops.sync import AppSync, Mode, RunOptions, SyncResult  # noqa: E402
from tests.conftest import ClusterProcess  # noqa: E402

KINDS = ("ConfigMap", "Secret", "ServiceAccount", "Service", "Deployment")


def objects(count: int, prefix: str, namespaces: int) -> dict[str, str]:
    """Files of a repository holding ``count`` objects (namespaces included)."""
    files: dict[str, str] = {}
    ns_names = [f"{prefix}-ns{i}" for i in range(namespaces)]
    files["namespaces.yaml"] = "".join(
        f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n" for n in ns_names
    )
    for i in range(count - namespaces):
        kind = KINDS[i % len(KINDS)]
        ns = ns_names[i % namespaces]
        name = f"{prefix}-{kind.lower()}-{i}"
        files[f"{kind.lower()}s/{name}.yaml"] = render(kind, name, ns, "v1")
    return files


def render(kind: str, name: str, ns: str, version: str) -> str:
    head = f"metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\n"
    if kind == "ConfigMap":
        return f"apiVersion: v1\nkind: ConfigMap\n{head}data: {{version: {version}, key: value}}\n"
    if kind == "Secret":
        return f"apiVersion: v1\nkind: Secret\n{head}stringData: {{token: {version}}}\n"
    if kind == "ServiceAccount":
        return f"apiVersion: v1\nkind: ServiceAccount\n{head}"
    if kind == "Service":
        return (
            f"apiVersion: v1\nkind: Service\n{head}spec:\n  selector: {{app: {name}}}\n"
            "  ports: [{port: 80, targetPort: 8080}]\n"
        )
    return (
        f"apiVersion: apps/v1\nkind: Deployment\n{head}spec:\n  replicas: 0\n"
        f"  selector: {{matchLabels: {{app: {name}}}}}\n"
        f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n"
        f"      containers: [{{name: c, image: 'bench:{version}'}}]\n"
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", message)


def reset_peak_rss() -> None:
    """Reset the process's peak RSS (Linux: ``clear_refs`` 5), so each phase has its own."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """Peak RSS of this process since the last reset (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def phase(
    name: str, runner: AppSync, dest: Destination, options: RunOptions
) -> tuple[dict[str, Any], SyncResult]:
    requests = dest.client.requests
    reset_peak_rss()
    t0 = time.perf_counter()
    result = await runner.run(options)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    if result.error:
        raise RuntimeError(f"{name}: {result.error}")
    figures = {
        "seconds": round(seconds, 3),
        "api_requests": dest.client.requests - requests,
        "dry_runs": result.dry_runs,
        "peak_rss_mib": peak,
        "changed": len(result.changes.changed),
        "phases": result.phase_seconds,
    }
    print(f"{name}: {figures}", flush=True)
    return figures, result


async def one_big_app(proc: ClusterProcess, work: Path, count: int) -> dict[str, Any]:
    repo = work / "big"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files = objects(count, "big", 10)
    commit(repo, files, "objects")
    app = Application.model_validate(
        {"name": "big", "source": {"repoURL": str(repo)}, "prune": True}
    )
    out: dict[str, Any] = {"objects": count}
    async with Destination.from_kubeconfig(proc.kubeconfig) as dest:
        runner = AppSync(app, GitSource(work / "cache"), dest)
        out["first_sync"], first = await phase(
            "first sync", runner, dest, RunOptions(Mode.SYNC, wait=False)
        )
        assert len(first.changes.changed) == count, first.changes.counts()
        changed = {
            name: text.replace("version: v1", "version: v2").replace("token: v1", "token: v2")
            for name, text in list(files.items())[1:]
            if name.startswith(("configmaps/", "secrets/"))
        }
        commit(repo, dict(list(changed.items())[:10]), "ten changes")
        out["ten_changes"], ten = await phase(
            "commit changing 10 objects", runner, dest, RunOptions(Mode.SYNC, wait=False)
        )
        assert len(ten.changes.changed) == 10, ten.changes.counts()
        out["no_change_replan"], same = await phase(
            "no-change re-plan", runner, dest, RunOptions(Mode.HEAL, wait=False)
        )
        assert not same.changes.changed
    return out


def flux_app(name: str) -> dict[str, str]:
    """One app of Flux's published benchmark: a Deployment scaled to zero, a
    ServiceAccount, a Service and an Ingress."""
    meta = f"metadata: {{name: {name}, namespace: flux-shape, labels: {{app: {name}}}}}\n"
    return {
        f"{name}/deployment.yaml": render("Deployment", name, "flux-shape", "v1"),
        f"{name}/serviceaccount.yaml": f"apiVersion: v1\nkind: ServiceAccount\n{meta}",
        f"{name}/service.yaml": render("Service", name, "flux-shape", "v1"),
        f"{name}/ingress.yaml": (
            f"apiVersion: networking.k8s.io/v1\nkind: Ingress\n{meta}spec:\n  rules:\n"
            f"    - host: {name}.example.com\n      http:\n        paths:\n"
            "          - path: /\n            pathType: Prefix\n            backend:\n"
            f"              service: {{name: {name}, port: {{number: 80}}}}\n"
        ),
    }


async def many_apps(proc: ClusterProcess, work: Path, apps: int) -> dict[str, Any]:
    """Flux's shape: ``apps`` Applications of 4 objects each, synced 4 at a time."""
    repo = work / "many"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files: dict[str, str] = {
        "namespace/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-shape}\n"
    }
    for a in range(apps):
        files.update(flux_app(f"app{a}"))
    commit(repo, files, "apps")
    async with Destination.from_kubeconfig(proc.kubeconfig) as dest:
        source = GitSource(work / "cache-many")

        def runner(name: str, path: str) -> AppSync:
            spec = {"name": name, "source": {"repoURL": str(repo), "path": path}}
            return AppSync(Application.model_validate(spec), source, dest)

        ns = await runner("namespace", "namespace").run(RunOptions(Mode.SYNC, wait=False))
        if ns.error:
            raise RuntimeError(ns.error)
        runners = [runner(f"app{a}", f"app{a}") for a in range(apps)]
        gate = asyncio.Semaphore(4)

        async def one(r: AppSync) -> SyncResult:
            async with gate:
                return await r.run(RunOptions(Mode.SYNC, wait=False))

        requests = dest.client.requests
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(r) for r in runners))
        seconds = time.perf_counter() - t0
    failed = [r.error for r in results if r.error]
    if failed:
        raise RuntimeError(f"{len(failed)} apps failed: {failed[:3]}")
    figures = {
        "applications": apps,
        "objects_each": 4,
        "concurrency": 4,
        "seconds": round(seconds, 2),
        "api_requests": dest.client.requests - requests,
    }
    print(f"{apps} applications of 4 objects (Flux's shape): {figures}", flush=True)
    return figures


async def commit_latency(proc: ClusterProcess, work: Path, commits: int) -> dict[str, Any]:
    """The service on a local repository: seconds from a commit to its change being
    visible in the cluster (the watchdog trigger, fetch, build, plan and apply)."""
    from gitops.config import Config
    from gitops.service import Service, ServiceOptions
    from kubeclient.rest import Client, load_kubeconfig

    repo = work / "latency"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")

    def configmap(value: int) -> dict[str, str]:
        return {
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: latency}\n"
            f"data: {{value: '{value}'}}\n"
        }

    commit(repo, configmap(0), "0")
    config = Config.model_validate(
        {"applications": [{"name": "latency", "source": {"repoURL": str(repo)}, "interval": "1h"}]}
    )
    service = Service(
        config,
        ServiceOptions(state_dir=work / "service", listen=None, builtin_kubeconfig=proc.kubeconfig),
    )
    latencies: list[float] = []
    await service.start()
    try:
        async with Client(load_kubeconfig(proc.kubeconfig)) as client:

            async def value() -> str:
                try:
                    cm = await client.get("v1", "configmaps", "latency", "default")
                except Exception:
                    return ""
                return str((cm.get("data") or {}).get("value"))

            deadline = time.monotonic() + 60
            while await value() != "0":
                if time.monotonic() > deadline:
                    raise RuntimeError("the first sync did not happen")
                await asyncio.sleep(0.05)
            for i in range(1, commits + 1):
                await asyncio.sleep(0.5)
                t0 = time.perf_counter()
                commit(repo, configmap(i), str(i))
                while await value() != str(i):
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError(f"commit {i} was not applied in 30 s")
                    await asyncio.sleep(0.01)
                latencies.append(time.perf_counter() - t0)
    finally:
        await service.stop()
    latencies.sort()
    figures = {
        "commits": commits,
        "median_seconds": round(latencies[len(latencies) // 2], 3),
        "max_seconds": round(latencies[-1], 3),
    }
    print(f"local commit -> applied: {figures}", flush=True)
    return figures


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="gitops-bench-"))
    proc = ClusterProcess(
        work / "cluster",
        runtime="fake",
        extra_args=("--controllers", "serviceaccount,root-ca-cert-publisher", "--nodes", "1"),
    )
    proc.start(timeout=120)
    results: dict[str, Any] = {}
    try:
        if args.objects:
            results["one_application"] = await one_big_app(proc, work, args.objects)
        if args.commits:
            results["commit_to_applied"] = await commit_latency(proc, work, args.commits)
        if args.apps:
            results["flux_shape"] = await many_apps(proc, work, args.apps)
    finally:
        proc.stop(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gitops.json")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
