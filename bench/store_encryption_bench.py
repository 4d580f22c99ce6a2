"""What encryption at rest costs (runtime.api.encryption): create throughput of Secrets
(encrypted by the default config) and ConfigMaps (not listed: they should pay nothing).

* store level: ``Store.create`` with 256 writes in flight (the writer thread batches
  them), no encryption config vs the built-in default (aesgcm for Secrets); with
  ``--baseline FILE`` also a saved copy of an older ``runtime/api/store.py``
  (``git show HEAD:runtime/api/store.py > /tmp/store_before.py``);
* API level: ``gitops cluster up`` over HTTPS with 4 connections, an identity-only
  ``--encryption-provider-config`` vs the default.

Each figure is the median of ``--runs`` runs, interleaved so that machine noise hits
every variant alike. Prints the figures and writes them as JSON to
``bench/results/store_encryption.json`` (or --out).
Usage: ``.venv/bin/python bench/store_encryption_bench.py [--objects 5000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.api.encryption import default_config_text, parse_config  # noqa: E402
from runtime.api.store import Store, StoreOptions  # noqa: E402
from tests.conftest import ClusterProcess  # noqa: E402

KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}
IN_FLIGHT = 256


def body(kind: str, name: str) -> dict[str, Any]:
    """A small object of ``kind``: three data keys of 24 to 64 bytes."""
    data = {
        "username": "YWRtaW4=",
        "password": "c3VwZXItc2VjcmV0LXBhc3N3b3JkLTEyMzQ1Njc4OTA=",
        "url": "cG9zdGdyZXM6Ly9kYi5kZWZhdWx0LnN2Yy5jbHVzdGVyLmxvY2FsOjU0MzIvYXBw",
    }
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": "bench"}},
        "data": data,
    }


def _store_class(path: Path | None) -> Any:
    if path is None:
        return Store, StoreOptions
    spec = importlib.util.spec_from_file_location("store_baseline", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("store_baseline")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["store_baseline"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return module.Store, module.StoreOptions


async def store_creates(variant: str, res: str, count: int, baseline: Path | None) -> float:
    """Creates/s of ``count`` objects of ``res`` in a fresh store."""
    directory = Path(tempfile.mkdtemp(prefix="enc-bench-"))
    try:
        if variant == "baseline":
            store_cls, options_cls = _store_class(baseline)
            store = store_cls(directory / "state.db", options_cls())
        else:
            encryption = parse_config(default_config_text()) if variant == "default" else None
            store = Store(directory / "state.db", StoreOptions(encryption=encryption))
        await store.open()
        kind = KINDS[res.split("/")[1]]
        objects = [body(kind, f"o-{i:06d}") for i in range(count)]
        started = time.perf_counter()
        for start in range(0, count, IN_FLIGHT):
            await asyncio.gather(
                *(
                    store.create(res, "bench", o["metadata"]["name"], o)
                    for o in objects[start : start + IN_FLIGHT]
                )
            )
        elapsed = time.perf_counter() - started
        await store.close()
        return count / elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def api_creates(server: ClusterProcess, plural: str, count: int) -> float:
    """Creates/s of ``count`` objects over HTTPS with 4 connections."""
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=4, ssl=server.ssl_context())
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    prefix = f"{plural}-{time.monotonic_ns()}"

    async def worker(s: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            obj = body(KINDS[plural], f"{prefix}-{i}")
            async with s.post(f"/api/v1/namespaces/bench/{plural}", json=obj) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create failed: {r.status}")

    async with aiohttp.ClientSession(server.url, connector=connector, headers=headers) as s:
        async with s.post(
            "/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        ) as r:
            await r.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(4)))
        return count / (time.perf_counter() - started)


IDENTITY_ONLY = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers: [{identity: {}}]
"""


async def api_level(count: int, runs: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, list[float]]] = {}
    directory = Path(tempfile.mkdtemp(prefix="enc-bench-api-"))
    try:
        identity = directory / "identity.yaml"
        identity.write_text(IDENTITY_ONLY)
        identity.chmod(0o600)
        servers = {
            "identity": ClusterProcess(
                directory / "identity",
                extra_args=("--encryption-provider-config", str(identity)),
            ),
            "default": ClusterProcess(directory / "default"),
        }
        for server in servers.values():
            server.start()
        try:
            for _ in range(runs):
                for variant, server in servers.items():
                    for plural in KINDS:
                        rate = await api_creates(server, plural, count)
                        results.setdefault(variant, {}).setdefault(plural, []).append(rate)
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {v: {k: statistics.median(r) for k, r in kinds.items()} for v, kinds in results.items()}


async def store_level(count: int, runs: int, baseline: Path | None) -> dict[str, dict[str, float]]:
    variants = (["baseline"] if baseline else []) + ["none", "default"]
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for variant in variants:
            for res in ("core/secrets", "core/configmaps"):
                rate = await store_creates(variant, res, count, baseline)
                results.setdefault(variant, {}).setdefault(res.split("/")[1], []).append(rate)
    return {v: {k: statistics.median(r) for k, r in kinds.items()} for v, kinds in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000, help="creates per run (store)")
    parser.add_argument("--api-objects", type=int, default=1000, help="creates per run (API)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="an older runtime/api/store.py to compare")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "store_encryption.json"
    )
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    results: dict[str, Any] = {
        "store_creates_per_s": asyncio.run(store_level(args.objects, args.runs, args.baseline)),
        "objects": args.objects,
        "runs": args.runs,
    }
    if not args.skip_api:
        results["api_creates_per_s"] = asyncio.run(api_level(args.api_objects, args.runs))
        results["api_objects"] = args.api_objects
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
