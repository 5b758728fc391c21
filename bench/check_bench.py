"""Benchmark `check`: 50 emulated cameras on loopback, 10 of them hanging; concurrent vs one by one.

The cameras run in a child process (so the checker does not share a GIL with 50 servers)
on 127.0.0.2..51 with ephemeral ports. The inventory is generated on the fly with each
camera's `port` (a test/bench-only camera key) and checked with `--direct`.

Measured in the same run:
- `run_check` (concurrent, what `presence-appliance check --direct` does);
- the hand-written way: a loop of `curl -m T` per camera (ping, then snapshot and live
  playlist when the ping answered), and the same loop with sequential httpx calls.

Pass: the concurrent check takes at most 1.5 x the per-request timeout.
Usage: python bench/check_bench.py [--cameras 50] [--hanging 10] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.check import render_check_table, run_check  # noqa: E402
from appliance.inventory import load_inventory  # noqa: E402

SERVE_TIMEOUT = 600.0  # the child serves at most this long, even if the parent vanished


def serve(count: int, hanging: int) -> None:
    """Child process: run the fleet, print it as JSON, serve until stdin closes."""
    import threading

    from appliance.emulator import CameraFleet

    fleet = CameraFleet.on_loopback(count, first_address=2, name_prefix="bench")
    with fleet:
        for camera in fleet.cameras[:hanging]:
            camera.faults.set("hang")
        cameras = [
            {"name": c.name, "ip": c.host, "port": c.port, "secure_id": c.secure_id} for c in fleet
        ]
        print(json.dumps(cameras), flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait(SERVE_TIMEOUT)


def write_inventory(directory: Path, cameras: list[dict[str, object]]) -> Path:
    entries = [
        {
            "name": c["name"],
            "mac": f"70:ee:50:00:01:{index:02x}",
            "ip": c["ip"],
            "port": c["port"],
            "secure_id": c["secure_id"],
            "cloud": "block",
        }
        for index, c in enumerate(cameras)
    ]
    doc = {
        "all": {
            "children": {
                "appliances": {
                    "hosts": {"bench-pi": {"ansible_host": "127.0.0.1"}},
                    "vars": {"cameras": entries},
                }
            }
        }
    }
    path = directory / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def curl_loop(cameras: list[dict[str, object]], timeout: float) -> tuple[float, int]:
    """The hand-written way: one camera after the other with `curl -m T`. Returns (s, passed)."""
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed")
    started = time.perf_counter()
    passed = 0
    for c in cameras:
        base = f"http://{c['ip']}:{c['port']}/{c['secure_id']}"
        ok = True
        for path in ("command/ping", "live/snapshot_720.jpg", "live/index.m3u8"):
            proc = subprocess.run(
                [curl, "-s", "-f", "-o", "/dev/null", "-m", f"{timeout:g}", f"{base}/{path}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout + 5,
                check=False,
            )
            if proc.returncode != 0:
                ok = False
                break
        passed += ok
    return time.perf_counter() - started, passed


def httpx_loop(cameras: list[dict[str, object]], timeout: float) -> tuple[float, int]:
    """The same loop with sequential httpx calls in one process (no curl start-up cost)."""
    import httpx

    started = time.perf_counter()
    passed = 0
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for c in cameras:
            base = f"http://{c['ip']}:{c['port']}/{c['secure_id']}"
            try:
                for path in ("command/ping", "live/snapshot_720.jpg", "live/index.m3u8"):
                    client.get(f"{base}/{path}").raise_for_status()
            except httpx.HTTPError:
                continue
            passed += 1
    return time.perf_counter() - started, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--hanging", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--table", action="store_true", help="Also print check's table.")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.cameras, args.hanging)
        return 0

    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--cameras",
            str(args.cameras),
            "--hanging",
            str(args.hanging),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise SystemExit("the emulated cameras did not start")
        cameras = json.loads(line)
        with tempfile.TemporaryDirectory() as tmp:
            inventory = load_inventory(write_inventory(Path(tmp), cameras))
            report = run_check(inventory, direct=True, timeout=args.timeout)
        if args.table:
            render_check_table(report)
        healthy = args.cameras - args.hanging
        passed = sum(c.passed for c in report.cameras)
        sequential_s, sequential_passed = curl_loop(cameras, args.timeout)
        httpx_s, httpx_passed = httpx_loop(cameras, args.timeout)
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)

    bound = 1.5 * args.timeout
    print(
        f"cameras: {args.cameras} ({args.hanging} hanging), timeout per request {args.timeout:g} s"
    )
    print(
        f"check (concurrent):     {report.elapsed_s:6.2f} s = "
        f"{report.elapsed_s / args.timeout:4.2f} x "
        f"timeout, {passed}/{args.cameras} pass (expected {healthy})"
    )
    print(
        f"curl loop (one by one): {sequential_s:6.2f} s = {sequential_s / args.timeout:4.2f} x "
        f"timeout, {sequential_passed}/{args.cameras} pass"
    )
    print(
        f"httpx loop (one by one): {httpx_s:5.2f} s = {httpx_s / args.timeout:4.2f} x "
        f"timeout, {httpx_passed}/{args.cameras} pass"
    )
    print(f"speed-up: {sequential_s / report.elapsed_s:.1f}x over the curl loop")
    ok = report.elapsed_s <= bound and passed == healthy and sequential_passed == healthy
    print(f"{'PASS' if ok else 'FAIL'}: concurrent check within 1.5 x timeout ({bound:g} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
