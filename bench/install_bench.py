"""Benchmark: where a re-provisioning run (`install` on an already provisioned Pi) spends its time.

Brings the lab up (waiting, bounded, for a test session that holds it), provisions it once,
then times RUNS further `install --no-check` runs that change nothing, with Ansible's junit
callback recording every task. Prints the median wall time, time per role, and the slowest
tasks. With --compare ENV=VALUE it also times runs with that Ansible setting in the same
session; by default ANSIBLE_PIPELINING=0, the naive way (one SSH round trip per file).
Takes the lab down at the end.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from appliance.lab.handle import CLI, Lab
from appliance.lab.lab import SESSION_LOCK

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "test-artifacts" / "bench-lab"


def hold_the_lab(seconds: int) -> object:
    handle = open(SESSION_LOCK, "w")  # noqa: SIM115 - held until the process ends
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError()))
    signal.alarm(seconds)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except TimeoutError:
        sys.exit(f"another session held the lab for {seconds} s")
    finally:
        signal.alarm(0)
    return handle


def lab_command(*args: str) -> None:
    env = {**os.environ, "PA_LAB_DIR": str(LAB_DIR), "PA_LAB_TEST_SESSION": "1"}
    result = subprocess.run(
        [*CLI, "lab", *args], env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        sys.exit(f"lab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def timed_install(lab: Lab, extra_env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """Wall seconds of one `install --no-check`, and (task, seconds) from the junit report."""
    with tempfile.TemporaryDirectory() as junit:
        env = {
            **extra_env,
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.junit",
            "JUNIT_OUTPUT_DIR": junit,
        }
        os.environ.update(env)
        try:
            started = time.monotonic()
            result = lab.cli("install", "-i", str(lab.inventory_path), "--no-check", timeout=900)
            took = time.monotonic() - started
        finally:
            for key in env:
                os.environ.pop(key, None)
        if result.returncode != 0:
            sys.exit(f"install failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        tasks = []
        for report in Path(junit).glob("*.xml"):
            for case in ET.parse(report).getroot().iter("testcase"):
                tasks.append((case.get("name", "?"), float(case.get("time", "0"))))
        return took, tasks


def role_of(task: str) -> str:
    name = task.split("] ", 1)[-1]
    return name.split(" : ", 1)[0] if " : " in name else "(playbook)"


def report(label: str, runs: list[tuple[float, list[tuple[str, float]]]]) -> float:
    walls = [wall for wall, _ in runs]
    median = statistics.median(walls)
    print(
        f"\n{label}: median {median:.1f} s over {len(walls)} runs ({', '.join(f'{w:.1f}' for w in walls)})"
    )
    tasks = runs[-1][1]
    if not tasks:
        return median
    per_role: collections.Counter[str] = collections.Counter()
    for task, seconds in tasks:
        per_role[role_of(task)] += seconds
    print(f"  {len(tasks)} task results, {sum(s for _, s in tasks):.1f} s in tasks; per role:")
    for role, seconds in per_role.most_common():
        print(f"    {seconds:6.1f} s  {role}")
    print("  slowest tasks:")
    for task, seconds in sorted(tasks, key=lambda t: -t[1])[:15]:
        print(f"    {seconds:6.1f} s  {task[:110]}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--compare",
        action="append",
        metavar="ENV=VALUE",
        help="an Ansible setting to time against ours (default: ANSIBLE_PIPELINING=0, the naive way)",
    )
    parser.add_argument("--wait", type=int, default=3600, help="seconds to wait for the lab")
    args = parser.parse_args()
    lock = hold_the_lab(args.wait)
    try:
        lab_command("up")
        lab = Lab(LAB_DIR)
        first = timed_install(lab, {})
        print(f"first install (provisioning a fresh Pi): {first[0]:.1f} s")
        ours = report(
            "re-provisioning, nothing to change", [timed_install(lab, {}) for _ in range(args.runs)]
        )
        for setting in args.compare or ["ANSIBLE_PIPELINING=0"]:
            key, _, value = setting.partition("=")
            other = report(
                f"the same with {setting}",
                [timed_install(lab, {key: value}) for _ in range(args.runs)],
            )
            print(f"  {setting}: {other / ours:.2f}x the time")
    finally:
        lab_command("down")
        del lock


if __name__ == "__main__":
    main()
