"""A lab camera's agent, run inside its namespace: get a DHCP lease from the Pi, serve the emulator."""

from __future__ import annotations

import argparse
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

RETRY_SECONDS = 2
MAX_RENEW_SECONDS = 120


def lease_path(lab: Path, name: str) -> Path:
    """Where the agent records camera NAME's current lease (JSON)."""
    return lab / "cameras" / f"{name}.lease.json"


def read_lease(lab: Path, name: str) -> dict[str, Any] | None:
    """Camera NAME's last lease (ip, mask, router, ntpsrv, lease, time), None before the first."""
    try:
        return json.loads(lease_path(lab, name).read_text())
    except (OSError, ValueError):
        return None


def _event_script(lab: Path) -> Path:
    # Package data may lose its mode bits on install: keep an executable copy under lab/.
    script = lab / "cameras" / "udhcpc-event.sh"
    source = resources.files("appliance.lab") / "scripts" / "udhcpc-event.sh"
    script.write_text(source.read_text())
    script.chmod(0o755)
    return script


def _emulator_cmd(name: str, ip: str) -> list[str]:
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
    ]


class Agent:
    """DHCP client loop plus the emulator process serving on the leased address."""

    def __init__(self, lab: Path, name: str, interface: str) -> None:
        self.lab, self.name, self.interface = lab, name, interface
        secrets = json.loads((lab / "secrets.json").read_text())
        self.secure_id: str = secrets["secure_ids"][name]
        self.script = _event_script(lab)
        self.emulator: subprocess.Popen[bytes] | None = None
        self.serving_ip: str | None = None

    def dhcp_once(self, requested: str | None) -> dict[str, Any] | None:
        """One bounded udhcpc run (5 tries, 1 s apart); the new lease or None."""
        cmd = [
            "udhcpc",
            "-i",
            self.interface,
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-O",
            "ntpsrv",
            "-s",
            str(self.script),
        ]
        if requested:
            cmd += ["-r", requested]
        env = {**os.environ, "LAB_LEASE_FILE": str(lease_path(self.lab, self.name))}
        before = read_lease(self.lab, self.name)
        try:
            subprocess.run(cmd, env=env, timeout=30, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        after = read_lease(self.lab, self.name)
        return after if after and after != before else None

    def ensure_emulator(self, ip: str) -> None:
        """(Re)start the emulator when the address changed or it exited."""
        if self.emulator and self.emulator.poll() is None and self.serving_ip == ip:
            return
        self.stop_emulator()
        print(f"camera {self.name}: serving the emulator on {ip}:80", flush=True)
        self.emulator = subprocess.Popen(
            _emulator_cmd(self.name, ip),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PRESENCE_EMULATOR_SECURE_ID": self.secure_id},
        )
        self.serving_ip = ip

    def stop_emulator(self) -> None:
        if self.emulator and self.emulator.poll() is None:
            self.emulator.terminate()
            try:
                self.emulator.wait(5)
            except subprocess.TimeoutExpired:
                self.emulator.kill()
                self.emulator.wait(5)
        self.emulator = None

    def loop(self) -> None:
        """Until killed: lease, serve, renew at half the lease time (at most every 2 min)."""
        lease_path(self.lab, self.name).unlink(missing_ok=True)
        current: dict[str, Any] | None = None
        while True:
            lease = self.dhcp_once(current["ip"] if current else None)
            if lease:
                if not current or lease["ip"] != current["ip"]:
                    print(f"camera {self.name}: lease {lease['ip']}", flush=True)
                current = lease
            if current:
                self.ensure_emulator(current["ip"])
                wait = min(max(int(current.get("lease") or 0) // 2, 10), MAX_RENEW_SECONDS)
                time.sleep(wait if lease else RETRY_SECONDS)
            else:
                time.sleep(RETRY_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--interface", default="wlan0")
    args = parser.parse_args()
    if shutil.which("udhcpc") is None:
        sys.exit("camera agent: udhcpc not found: install the Debian package udhcpc")
    agent = Agent(args.lab, args.name, args.interface)

    def _stop(signum: int, frame: object) -> None:
        agent.stop_emulator()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    agent.loop()


if __name__ == "__main__":
    main()
