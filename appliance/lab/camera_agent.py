"""A lab camera's agent, run inside its namespace: a DHCP client like a real camera's, and the emulator.

It runs udhcpc as a daemon, which renews at half the lease time (a unicast REQUEST for the
same address) as a real client does, and it watches the camera's link: when the Pi
deauthenticates the camera (the lab's radio stand-in takes the link down), the camera
rejoins with a fresh DHCP exchange once the link is back, as a camera re-associating does.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.2  # how often the agent looks at its link and lease


def lease_path(lab: Path, name: str) -> Path:
    """Where the agent records camera NAME's current lease (JSON)."""
    return lab / "cameras" / f"{name}.lease.json"


def events_path(lab: Path, name: str) -> Path:
    """Camera NAME's DHCP and link events, one JSON object a line (for the tests)."""
    return lab / "cameras" / f"{name}.events.jsonl"


def read_lease(lab: Path, name: str) -> dict[str, Any] | None:
    """Camera NAME's last lease (ip, mask, router, ntpsrv, lease, time), None before the first."""
    try:
        return json.loads(lease_path(lab, name).read_text())
    except (OSError, ValueError):
        return None


def read_events(lab: Path, name: str) -> list[dict[str, Any]]:
    """Camera NAME's events so far: DHCP (bound, renew, deconfig, nak, leasefail) and link
    (link-down, link-up), each with `event` and `time` (wall clock, seconds)."""
    try:
        lines = events_path(lab, name).read_text().splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line being written right now
    return events


def _event_script(lab: Path) -> Path:
    # Package data may lose its mode bits on install: keep an executable copy under lab/.
    script = lab / "cameras" / "udhcpc-event.sh"
    source = resources.files("appliance.lab") / "scripts" / "udhcpc-event.sh"
    script.write_text(source.read_text())
    script.chmod(0o755)
    return script


def _emulator_cmd(name: str, ip: str, network: str | None = None) -> list[str]:
    # The secure id travels in the environment (PRESENCE_EMULATOR_SECURE_ID), never on the
    # command line, which every user can read in /proc.
    return [
        sys.executable,
        "-c",
        "from appliance.cli import main; main()",
        "emulate",
        "--name",
        name,
        "--listen",
        f"{ip}:80",
        # Its FTP export may reach its own network (the Pi), as a camera on that Wi-Fi would.
        *(["--ftp-allow", network] if network else []),
    ]


def _network(lease: dict[str, Any]) -> str | None:
    """The lease's network as CIDR (ip and mask), None when the lease does not say."""
    try:
        return str(ipaddress.ip_network(f"{lease['ip']}/{lease['mask']}", strict=False))
    except (KeyError, ValueError):
        return None


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Agent:
    """DHCP client daemon, link watcher, and the emulator serving on the leased address."""

    def __init__(self, lab: Path, name: str, interface: str) -> None:
        self.lab, self.name, self.interface = lab, name, interface
        secrets = json.loads((lab / "secrets.json").read_text())
        self.secure_id: str = secrets["secure_ids"][name]
        self.script = _event_script(lab)
        self.dhcp: subprocess.Popen[bytes] | None = None
        self.emulator: subprocess.Popen[bytes] | None = None
        self.serving_ip: str | None = None

    def record(self, event: str, **fields: Any) -> None:
        with events_path(self.lab, self.name).open("a") as handle:
            handle.write(json.dumps({"event": event, **fields, "time": time.time()}) + "\n")

    def carrier(self) -> bool:
        """True while the camera's link is up (the Pi's side of the veth is up)."""
        try:
            return Path(f"/sys/class/net/{self.interface}/carrier").read_text().strip() == "1"
        except OSError:  # reading carrier of a link that is down fails with EINVAL
            return False

    def start_dhcp(self, requested: str | None) -> None:
        """A fresh udhcpc daemon: DISCOVER (asking for REQUESTED), then renewals at T1."""
        _stop(self.dhcp)
        cmd = [
            "udhcpc",
            "-i",
            self.interface,
            "-f",  # stay in the foreground: this agent owns the process
            "-t",
            "5",
            "-T",
            "1",
            "-A",
            "2",  # after 5 unanswered DISCOVERs, try again in 2 s (not busybox's 20 s)
            "-O",
            "ntpsrv",
            "-s",
            str(self.script),
        ]
        if requested:
            cmd += ["-r", requested]
        env = {
            **os.environ,
            "LAB_LEASE_FILE": str(lease_path(self.lab, self.name)),
            "LAB_EVENTS_FILE": str(events_path(self.lab, self.name)),
        }
        self.dhcp = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )

    def ensure_emulator(self, ip: str, network: str | None = None) -> None:
        """(Re)start the emulator when the address changed or it exited."""
        if self.emulator and self.emulator.poll() is None and self.serving_ip == ip:
            return
        _stop(self.emulator)
        print(f"camera {self.name}: serving the emulator on {ip}:80", flush=True)
        self.emulator = subprocess.Popen(
            _emulator_cmd(self.name, ip, network),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PRESENCE_EMULATOR_SECURE_ID": self.secure_id},
        )
        self.serving_ip = ip

    def stop(self) -> None:
        _stop(self.dhcp)
        _stop(self.emulator)

    def loop(self) -> None:
        """Until killed: keep a DHCP client running, rejoin after a link drop, serve."""
        lease_path(self.lab, self.name).unlink(missing_ok=True)
        events_path(self.lab, self.name).unlink(missing_ok=True)
        link_up = self.carrier()
        self.start_dhcp(None)
        while True:
            now_up = self.carrier()
            if now_up != link_up:
                link_up = now_up
                self.record("link-up" if now_up else "link-down")
                print(f"camera {self.name}: link {'up' if now_up else 'down'}", flush=True)
                if now_up:
                    # Re-associated: a fresh exchange, asking for the address it had.
                    lease = read_lease(self.lab, self.name)
                    self.start_dhcp(lease["ip"] if lease else None)
            elif self.dhcp and self.dhcp.poll() is not None:
                self.start_dhcp(None)  # udhcpc ended (it should not): start over
            lease = read_lease(self.lab, self.name)
            if lease:
                self.ensure_emulator(lease["ip"], _network(lease))
            time.sleep(POLL_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--interface", default="wlan0")
    args = parser.parse_args()
    if shutil.which("udhcpc") is None:
        sys.exit("camera agent: udhcpc not found: install the Debian package udhcpc")
    agent = Agent(args.lab, args.name, args.interface)

    def _on_term(signum: int, frame: object) -> None:
        agent.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _on_term)
    agent.loop()


if __name__ == "__main__":
    main()
