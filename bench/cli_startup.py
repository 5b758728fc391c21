"""Benchmark: how fast `presence-appliance --help` answers, lazy command loading against eager imports.

The naive way imports every command module (and with them Ansible) at start-up.
Prints the median of N runs of each, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

LAZY = [sys.executable, "-m", "appliance.cli", "--help"]
EAGER = [
    sys.executable,
    "-c",
    "import importlib, sys; from appliance.cli import COMMANDS, main; "
    "[importlib.import_module(m) for m, _, _ in COMMANDS.values()]; "
    "sys.argv = ['presence-appliance', '--help']; main()",
]


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lazy = median_seconds(LAZY, args.runs)
    eager = median_seconds(EAGER, args.runs)
    print(f"--help, lazy commands (this CLI): {lazy * 1000:7.1f} ms (median of {args.runs})")
    print(f"--help, every command imported:   {eager * 1000:7.1f} ms (median of {args.runs})")
    print(f"speed-up: {eager / lazy:.1f}x; target under 500 ms: {'PASS' if lazy < 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
