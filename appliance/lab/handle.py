"""A Python handle on a running lab, for tests and scripts: run commands in it, read its state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.lab import phone, wan
from appliance.lab.camera_agent import read_lease
from appliance.lab.lab import plan_from_state
from appliance.lab.plan import LAN_NS, LabPlan
from appliance.lab.state import LabState

# How to run the project's own CLI from any namespace: the interpreter of this process.
CLI = [sys.executable, "-c", "from appliance.cli import main; main()"]


@dataclass
class Lab:
    """A running lab whose runtime directory is `root` (what `lab up` wrote there).

    Every method bounds its wait with a timeout; none of them starts a process that
    outlives it, except `wan_ntp_start`, whose process `lab down` stops.
    """

    root: Path

    # -- what the lab is ------------------------------------------------------------------
    @property
    def state(self) -> LabState:
        return LabState.load(self.root)

    @property
    def plan(self) -> LabPlan:
        """Names and addresses of every Pi and camera (see appliance.lab.plan)."""
        plan = plan_from_state(self.state)
        if plan is None:
            raise RuntimeError(f"{self.root}: no lab is up")
        return plan

    @property
    def inventory_path(self) -> Path:
        """lab/inventory.yml: pass it to `install -i`."""
        return self.root / "inventory.yml"

    @property
    def inventory(self) -> dict[str, Any]:
        """The inventory as data (contains the lab's demo secrets: do not print it)."""
        return yaml.safe_load(self.inventory_path.read_text())

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    def env(self) -> dict[str, str]:
        """Environment for lab CLI calls that must find this lab's runtime directory."""
        return {**os.environ, "PA_LAB_DIR": str(self.root)}

    # -- running things -------------------------------------------------------------------
    def run_in(
        self, netns: str, *cmd: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run CMD in a lab network namespace: `pa-lan`, `lan`, `wan`, `pi`, `cam-cam1` ...

        For the Pi this is only its network namespace (host tools, host file system); use
        `pi_exec` to run something inside the booted container.
        """
        name = netns if netns.startswith("pa-") else f"pa-{netns}"
        return _run(["ip", "netns", "exec", name, *cmd], timeout, check)

    def pi_leader(self, pi: str = "pi") -> int:
        """Host PID of the container's systemd (PID 1 inside) for `pi`, `pi2` ..."""
        host = self.plan.pi(pi).host
        return int(self.state.data["leaders"][host])

    def pi_exec(
        self, *cmd: str, pi: str = "pi", timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run CMD inside the Pi as a transient unit of its own systemd.

        It then has the container's capabilities (no CAP_SYS_TIME, CAP_NET_ADMIN in its
        namespace), unlike `nsenter -a` alone; stdout/stderr and the exit code come back.
        """
        argv = [
            "nsenter",
            "-t",
            str(self.pi_leader(pi)),
            "-a",
            "systemd-run",
            "--quiet",
            "--wait",
            "--pipe",
            "--collect",
            *cmd,
        ]
        return _run(["timeout", str(int(timeout)), *argv], timeout + 5, check)

    def cli(
        self, *args: str, netns: str | None = LAN_NS, timeout: float = 900, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `presence-appliance ARGS` (from pa-lan by default, as the user's controller)."""
        cmd = [*CLI, *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        return _run(cmd, timeout, check, env=self.env())

    def install(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`presence-appliance install -i lab/inventory.yml ARGS` from pa-lan (not checked)."""
        return self.cli("install", "-i", str(self.inventory_path), *args, timeout=timeout)

    def ansible(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Ad-hoc `ansible all -i lab/inventory.yml ARGS` from pa-lan (not checked)."""
        binary = Path(sys.executable).with_name("ansible")
        cmd = [
            "ip",
            "netns",
            "exec",
            LAN_NS,
            str(binary),
            "all",
            "-i",
            str(self.inventory_path),
            *args,
        ]
        return _run(cmd, timeout, False, env=self.env())

    # -- cameras ----------------------------------------------------------------------------
    def camera_lease(self, name: str) -> dict[str, Any] | None:
        """Camera NAME's last DHCP lease: ip, mask, router, ntpsrv (option 42), lease, time."""
        return read_lease(self.root, name)

    def wait_camera_lease(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """Wait for camera NAME to hold a lease (its agent retries udhcpc every few seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lease = self.camera_lease(name)
            if lease:
                return lease
            time.sleep(0.5)
        raise TimeoutError(f"camera {name}: no DHCP lease within {timeout:.0f} s")

    # -- the "internet" ---------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """Packets that reached pa-wan: `by_destination` {"ADDR/PROTO/PORT": packets},
        `icmp` packets, and `vpn` {500: datagrams, 4500: datagrams} at the VPN stand-in."""
        return wan.counters(self.root)

    def wan_ntp_stop(self) -> None:
        """Stop the wan NTP server (10.203.2.123), the Pi's upstream."""
        wan.ntp_stop(self.state)

    def wan_ntp_start(self) -> None:
        """Start the wan NTP server again (waits until it listens)."""
        wan.ntp_start(self.root, self.state)

    # -- the phone on the internet side (remote viewing) -------------------------------------
    def phone_tunnel_up(self, config: str) -> None:
        """Bring pa-phone's WireGuard tunnel up from a peer config (`remote add`'s)."""
        phone.tunnel_up(self.root, config)

    def phone_tunnel_down(self) -> None:
        phone.tunnel_down(self.root)

    def phone_handshake(self) -> int:
        """Unix time of the phone's last handshake with the Pi (0: none yet)."""
        return phone.latest_handshake()


def _run(
    cmd: list[str], timeout: float, check: bool, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        env=env,
        stdin=subprocess.DEVNULL,
    )
