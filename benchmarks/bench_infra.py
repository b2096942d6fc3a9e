"""Timings of the offline tooling (not a timed test): `aquascene render prod` and the unit suite.

    .venv/bin/python benchmarks/bench_infra.py [--runs N]

Targets (issue "Foundation"): render prod < 5 s, unit suite < 60 s, on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        render = [
            timed([python, "-m", "tooling", "render", "prod", "--out", f"{tmp}/prod-{i}"]) for i in range(args.runs)
        ]
    unit = [timed([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"]) for _ in range(args.runs)]
    print(f"{'what':<32} {'median':>8} {'min':>8} {'max':>8} {'target':>8}")
    for label, samples, target in (
        ("aquascene render prod (process)", render, 5.0),
        ("unit suite (tests/unit)", unit, 60.0),
    ):
        print(
            f"{label:<32} {statistics.median(samples):>7.2f}s {min(samples):>7.2f}s {max(samples):>7.2f}s {target:>7.0f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
