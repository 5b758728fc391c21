"""The lab side of bench/remote_dashboard_bench.py --lab: a booted lab Pi with 4 cameras, the
phone's WireGuard tunnel, and Chromium run inside the phone's namespace.

The benchmark holds the machine's lab the way a test session does (the session lock, waited
for within a bound), brings up a lab of its own and always takes it down again. A lab that is
already up belongs to someone else (a `make demo`): the benchmark says so and refuses.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from appliance.lab import plan as topo
from appliance.lab.handle import CLI, Lab
from appliance.lab.lab import SESSION_LOCK, hold_within, running_lab

CAMERAS = 4
PI_TUNNEL = "10.203.8.1"  # the tunnel subnet's first address (the Pi), as in tests/e2e
ENDPOINT = f"{topo.ROUTER_PUBLIC}:{topo.WIREGUARD_PORT}"
LOCK_WAIT = int(os.environ.get("PA_LAB_SESSION_WAIT", "3600"))


class Refused(Exception):
    """The benchmark cannot have the lab (one line)."""


@dataclass
class PhoneView:
    """What Chromium in the phone needs: the URL, the login, how to launch it, the bytes."""

    lab: Lab
    url: str
    user: str
    password: str
    launcher: Path  # runs /usr/bin/chromium inside pa-phone
    resolver_flag: str  # the dashboard's name -> the Pi's tunnel address
    cameras: list[str]

    def rx_bytes(self) -> int:
        """Bytes the phone's "mobile" link (eth0) has received: WireGuard-wrapped, on the wire."""
        out = self.lab.run_in(topo.PHONE_NS, "cat", "/sys/class/net/eth0/statistics/rx_bytes")
        return int(out.stdout)


def _lock(seconds: int) -> IO[str]:
    """Hold the session lock as a test session does, waiting at most SECONDS."""
    handle = open(SESSION_LOCK, "w")  # noqa: SIM115 - held for the whole run

    def waiting() -> None:
        print(f"[bench] waiting (up to {seconds} s) for a test session's lab", file=sys.stderr)

    if not hold_within(handle, seconds, waiting):
        handle.close()
        raise Refused(f"another session held the lab for {seconds} s")
    return handle


def _lab_cli(root: Path, *args: str, timeout: float) -> None:
    env = {**os.environ, "PA_LAB_DIR": str(root), "PA_LAB_TEST_SESSION": "1"}
    result = subprocess.run(
        [*CLI, "lab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"lab {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _provision(lab: Lab, work: Path) -> tuple[Path, str]:
    """Install with remote access on and add the phone; its config (private key) in memory."""
    data: dict[str, Any] = copy.deepcopy(lab.inventory)
    group = data["all"]["children"]["appliances"]["vars"]
    group["remote_access"] = {
        "wireguard": {"subnet": topo.WIREGUARD_TUNNEL, "endpoint": ENDPOINT, "peers": []}
    }
    inventory = work / "inventory.yml"
    inventory.touch(mode=0o600)  # the lab's secrets
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    print("[bench] install (remote access on) ...", file=sys.stderr)
    installed = lab.cli("install", "-i", str(inventory), "--no-check")
    if installed.returncode != 0:
        raise RuntimeError(f"install failed:\n{installed.stdout[-3000:]}{installed.stderr[-2000:]}")
    conf = work / "phone.conf"
    added = lab.cli("remote", "add", "phone", "--conf", str(conf), "-i", str(inventory))
    if added.returncode != 0:
        raise RuntimeError(f"remote add failed:\n{added.stdout}{added.stderr}")
    config = conf.read_text()
    conf.unlink()
    return inventory, config


@contextmanager
def lab_phone() -> Iterator[PhoneView]:
    """A lab of our own with 4 cameras, provisioned, the phone's tunnel up; all gone after."""
    if os.geteuid() != 0:
        raise Refused("--lab needs root (namespaces, systemd-nspawn)")
    lock = _lock(LOCK_WAIT)
    work = Path(tempfile.mkdtemp(prefix="paw-remote-bench-lab-"))
    root = work / "lab"
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    up = False
    try:
        found = running_lab()
        if found is not None:
            raise Refused(
                f"a lab from {found[0]} is up (someone's `make demo` or `lab up`): "
                "not taking it over; run the benchmark once it is down"
            )
        signal.signal(signal.SIGTERM, terminate)
        print(f"[bench] lab up --cameras {CAMERAS} in {root} ...", file=sys.stderr)
        up = True  # a failed `up` leaves parts behind: `down` cleans them too
        _lab_cli(root, "up", "--cameras", str(CAMERAS), timeout=1200)
        lab = Lab(root)
        _, config = _provision(lab, work)
        lab.phone_tunnel_up(config)
        web = lab.inventory["all"]["children"]["appliances"]["vars"]["web"]
        launcher = work / "chromium-in-phone"
        launcher.write_text(
            f'#!/bin/sh\nexec ip netns exec {topo.PHONE_NS} /usr/bin/chromium "$@"\n'
        )
        launcher.chmod(0o700)
        yield PhoneView(
            lab=lab,
            url=f"https://{web['server_name']}",
            user=str(web["users"][0]["name"]),
            password=str(web["users"][0]["password"]),
            launcher=launcher,
            resolver_flag=f"--host-resolver-rules=MAP {web['server_name']} {PI_TUNNEL}",
            cameras=[camera.name for camera in lab.plan.cameras],
        )
    finally:
        try:
            if up:
                print("[bench] lab down ...", file=sys.stderr)
                _lab_cli(root, "down", timeout=180)
        finally:
            signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(work, ignore_errors=True)
            lock.close()
