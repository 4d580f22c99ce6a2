"""Fuzzing benchmark of the build step (issue 14: "Git is untrusted input").

Runs the strategies of tests/unit/fuzz_build_strategies.py (the ones the test suite runs
150 derandomised examples of) with a random seed and many more examples: random YAML
files, plain directories and kustomization directories, each written to a temporary
directory and built with :func:`gitops.build.build`. The property is the suite's: every
build returns objects the planner can serialise or raises ``BuildError``, within
``--max-seconds`` each, in a process whose address space is capped at
``--memory-mib`` (so a memory blow-up is a ``MemoryError`` crash, not a dead machine).

Prints a summary (examples run, outcomes, crashes, slowest example, seconds) and writes
``bench/results/fuzz_build.json`` (or ``--out``), including each crashing input (for a
regression ``@example`` in tests/unit/test_fuzz_build.py) and the seed to replay the run.
Usage: ``.venv/bin/python bench/fuzz_build.py [--examples 5000] [--seconds 900]
[--strategy yaml,plain,kustomize] [--seed N]``; ``--examples`` is per strategy.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.unit.fuzz_build_strategies import STRATEGIES, Files, Outcome, run_build  # noqa: E402


class _OutOfTime(Exception):
    """Raised inside the property once the run's time is up, to stop hypothesis."""


def _shown(files: Files) -> dict[str, str]:
    """An input as JSON can hold it (bytes as Python literals, long files cut)."""
    return {name: repr(data[:2000]) for name, data in files.items()}


def run_strategy(
    name: str,
    strategy: st.SearchStrategy[Files],
    *,
    examples: int,
    deadline: float,
    max_seconds: float,
    run_seed: int,
) -> dict[str, Any]:
    outcomes: dict[str, int] = {"built": 0, "refused": 0, "crashed": 0, "too_slow": 0}
    times: list[float] = []
    failures: list[dict[str, Any]] = []
    slowest: tuple[float, Files, Outcome] | None = None

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(run_seed)
    @given(strategy)
    def fuzz(files: Files) -> None:
        nonlocal slowest
        if time.monotonic() > deadline:
            raise _OutOfTime
        outcome = run_build(files)
        times.append(outcome.seconds)
        outcomes[outcome.result] += 1
        if slowest is None or outcome.seconds > slowest[0]:
            slowest = (outcome.seconds, files, outcome)
        if outcome.result == "crashed" or outcome.seconds > max_seconds:
            if outcome.result != "crashed":
                outcomes["too_slow"] += 1
            if len(failures) < 20:
                failures.append(
                    {
                        "result": outcome.result,
                        "seconds": round(outcome.seconds, 3),
                        "error": outcome.error,
                        "input": _shown(files),
                    }
                )

    started = time.monotonic()
    stopped_early = False
    try:
        fuzz()
    except _OutOfTime:
        stopped_early = True
    seconds = time.monotonic() - started
    run = len(times)
    summary: dict[str, Any] = {
        "examples": run,
        "outcomes": outcomes,
        "seconds": round(seconds, 1),
        "stopped_by_time_limit": stopped_early,
        "build_seconds": {
            "median": round(statistics.median(times), 4) if times else 0,
            "p99": round(sorted(times)[int(run * 0.99)], 4) if times else 0,
            "max": round(max(times), 4) if times else 0,
        },
        "failures": failures,
    }
    if slowest is not None:
        summary["slowest"] = {
            "seconds": round(slowest[0], 3),
            "result": slowest[2].result,
            "input": _shown(slowest[1]),
        }
    print(
        f"{name:10} {run:6} examples in {seconds:6.1f}s: {outcomes['built']} built, "
        f"{outcomes['refused']} refused, {outcomes['crashed']} crashed, "
        f"{outcomes['too_slow']} too slow; slowest build {summary['build_seconds']['max']}s"
    )
    return summary


def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="per strategy")
    parser.add_argument("--seconds", type=float, default=900.0, help="for the whole run")
    parser.add_argument("--max-seconds", type=float, default=5.0, help="per build")
    parser.add_argument("--memory-mib", type=int, default=4096, help="address space cap")
    parser.add_argument("--strategy", default=",".join(STRATEGIES))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz_build.json")
    args = parser.parse_args()
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    limit = args.memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.monotonic()
    deadline = started + args.seconds
    names = [name.strip() for name in args.strategy.split(",") if name.strip()]
    results: dict[str, Any] = {
        "seed": run_seed,
        "examples_per_strategy": args.examples,
        "max_seconds_per_build": args.max_seconds,
        "memory_cap_mib": args.memory_mib,
        "strategies": {},
    }
    for name in names:
        results["strategies"][name] = run_strategy(
            name,
            STRATEGIES[name],
            examples=args.examples,
            deadline=deadline,
            max_seconds=args.max_seconds,
            run_seed=run_seed,
        )
    strategies = results["strategies"].values()
    results["examples"] = sum(s["examples"] for s in strategies)
    results["crashes"] = sum(s["outcomes"]["crashed"] for s in strategies)
    results["too_slow"] = sum(s["outcomes"]["too_slow"] for s in strategies)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(
        f"total: {results['examples']} examples, {results['crashes']} crashes, "
        f"{results['too_slow']} too slow, {results['seconds']}s, peak RSS "
        f"{results['peak_rss_mib']} MiB, seed {run_seed}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(1 if results["crashes"] or results["too_slow"] else 0)


if __name__ == "__main__":
    main()
