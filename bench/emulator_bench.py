"""Benchmark: the emulated camera's start-up and small answers (figures the tests no longer time).

Prints, measured in the same run: a new process starting a camera from an existing media
cache, a fleet of cameras starting in this process, and N pings on one keep-alive
connection with Nagle off (the emulator) against Nagle on (what it would cost without).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from appliance.emulator import CameraFleet, EmulatedCamera, load_media
from appliance.emulator import server as emulator_server

SECURE_ID = "0123456789abcdef0123456789abcdef"
NEW_PROCESS = (
    "import sys; from pathlib import Path; from appliance.emulator import EmulatedCamera; "
    "EmulatedCamera('x', 'a' * 32, cache_dir=Path(sys.argv[1])).start().stop()"
)


def seconds_for_new_process(cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", NEW_PROCESS, str(cache)], check=True, timeout=120)
    return time.perf_counter() - started


def seconds_for_fleet(cache: Path, cameras: int) -> float:
    fleet = CameraFleet.on_loopback(cameras, first_address=40, cache_dir=cache)
    started = time.perf_counter()
    try:
        fleet.start()
        return time.perf_counter() - started
    finally:
        fleet.stop()


def seconds_for_pings(cache: Path, pings: int, nagle_off: bool) -> float:
    # The handler class attribute the emulator sets; flipped here for the comparison only.
    handler = emulator_server._Handler
    saved = handler.disable_nagle_algorithm
    handler.disable_nagle_algorithm = nagle_off
    camera = EmulatedCamera("bench", SECURE_ID, host="127.0.0.1", port=0, cache_dir=cache)
    camera.start()
    try:
        with httpx.Client(base_url=camera.base_url + "/", timeout=10) as client:
            client.get("command/ping")
            started = time.perf_counter()
            for _ in range(pings):
                client.get("command/ping").raise_for_status()
            return time.perf_counter() - started
    finally:
        camera.stop()
        handler.disable_nagle_algorithm = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--cameras", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        media = load_media(cache)
        print(f"media generated in {media.generated_in or 0:.2f} s (first use of a cache)")
        print(f"new process, camera from the cache: {seconds_for_new_process(cache):.2f} s")
        fleet = seconds_for_fleet(cache, args.cameras)
        print(f"{args.cameras} cameras started in this process: {fleet:.3f} s")
        off = seconds_for_pings(cache, args.pings, nagle_off=True)
        on = seconds_for_pings(cache, args.pings, nagle_off=False)
        print(f"{args.pings} pings, one keep-alive connection: {off:.3f} s Nagle off (emulator)")
        print(f"{args.pings} pings, one keep-alive connection: {on:.3f} s Nagle on")


if __name__ == "__main__":
    main()
