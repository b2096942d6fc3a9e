"""Timings of the offline tooling (not a timed test): `aquascene render` as a whole process, and the unit suite.

    .venv/bin/python benchmarks/bench_infra.py [--runs N] [--unit]

Targets: render prod < 3 s and dev < 1.5 s (median of 5, whole process: interpreter start,
imports, the program under the recording engine, validation, writing); unit suite < 60 s
(with --unit; it takes minutes on a shared machine, so only on request). Where the time goes:
`python -X importtime -m tooling render prod --out DIR 2> imports.txt`.

Each row gives wall time and the process's user CPU time (medians), and the load average at the
end of the row: on a shared machine the wall time is only comparable at a similar load. The
warm-up run writes the bytecode cache even where PYTHONDONTWRITEBYTECODE is set (as a user's
checkout would have it after the first command).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENDER_TARGETS = {"prod": 3.0, "dev": 1.5}


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, user CPU seconds) of one run of `cmd`."""
    user_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=CHILD_ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - user_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--unit", action="store_true", help="also time the unit suite (tests/unit)")
    args = parser.parse_args()
    python = sys.executable
    rows: list[tuple[str, list[tuple[float, float]], float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for stack, target in RENDER_TARGETS.items():
            timed([python, "-m", "tooling", "render", stack, "--out", f"{tmp}/warm-{stack}"])  # bytecode cache
            samples = [timed([python, "-m", "tooling", "render", stack, "--out", f"{tmp}/{stack}-{i}"])
                       for i in range(args.runs)]
            rows.append((f"aquascene render {stack} (process)", samples, target, os.getloadavg()[0]))
    if args.unit:
        unit = [timed([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"]) for _ in range(args.runs)]
        rows.append(("unit suite (tests/unit)", unit, 60.0, os.getloadavg()[0]))
    print(f"{'what':<32} {'median':>8} {'min':>8} {'max':>8} {'user':>8} {'target':>8} {'load':>6}")
    for label, samples, target, load in rows:
        walls = [wall for wall, _ in samples]
        user = statistics.median(cpu for _, cpu in samples)
        print(f"{label:<32} {statistics.median(walls):>7.2f}s {min(walls):>7.2f}s "
              f"{max(walls):>7.2f}s {user:>7.2f}s {target:>7.1f}s {load:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
