"""Running ``wrk`` (Debian package ``wrk``), the compiled HTTP load generator the
benchmarks use so that the client does not compete with a Python server for the GIL:
:func:`run_wrk` runs one timed load with a Lua script that prints a ``RESULT`` line
(counts and the p50/p99 latency in microseconds) and returns the figures. Called by
bench/api_bench.py and bench/network_bench.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Counts 200 responses as ``ok`` and the rest as failures.
WRK_STATUS = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
done = function(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT ok=%d failures=%d p50=%d p99=%d errors=%d\\n",
    o, b, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """One ``wrk`` run: ``prefix`` is put before the command (e.g. ``nsenter -t PID -n``
    to load from inside a pod's network namespace)."""

    url: str
    seconds: int
    script: str = WRK_STATUS
    headers: Sequence[str] = ()
    connections: int = 4
    threads: int = 2
    prefix: Sequence[str] = field(default_factory=tuple)


def run_wrk(load: Load) -> dict[str, float]:
    """Run ``load``; requests (successful ones, as the script counts them), failures,
    socket errors, requests per second and p50/p99 latency in milliseconds."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(load.script)
        path = f.name
    command = [*load.prefix, wrk, "-t", str(load.threads), "-c", str(load.connections)]
    command += ["-d", f"{load.seconds}s", "-s", path]
    for header in load.headers:
        command += ["-H", header]
    try:
        out = subprocess.run(
            [*command, load.url], capture_output=True, text=True, check=True
        ).stdout
    finally:
        Path(path).unlink()
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    ok = int(fields.get("created", fields.get("ok", "0")))
    return {
        "requests": ok,
        "failures": int(fields["failures"]),
        "socket_errors": int(fields.get("errors", "0")),
        "per_second": ok / load.seconds,
        "p50_ms": int(fields["p50"]) / 1000,
        "p99_ms": int(fields["p99"]) / 1000,
        "seconds": load.seconds,
    }
