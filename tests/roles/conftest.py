"""Shared helpers for the network-role tests: render scenarios, run real checkers, namespaces."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
NETWORK_ROLES = ("access_point", "dhcp", "ntp")
# How long the firewall tests' probes wait: an answer that must come gets long enough for a
# loaded machine (the probe returns as soon as it comes); a drop is shown by silence over a
# short wait.
ANSWER_WAIT = 5.0
DROP_WAIT = 1.5


def scenario_path(name: str) -> Path:
    return SCENARIOS / f"{name}.yml"


def load_scenario(name: str) -> dict[str, Any]:
    """The scenario's appliance variables (for building variants of it)."""
    data = yaml.safe_load(scenario_path(name).read_text())
    return data["all"]["children"]["appliances"]["vars"]


def write_inventory(variables: dict[str, Any], path: Path) -> Path:
    """An inventory file with one appliance `pi` carrying VARIABLES."""
    inventory = {"all": {"children": {"appliances": {"hosts": {"pi": {}}, "vars": variables}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def render_inventory(
    inventory_file: Path, out: Path, roles: tuple[str, ...] = NETWORK_ROLES
) -> Path:
    """Render the roles' tasks/files.yml templates for appliance `pi` into OUT through the
    project's one rendering path (appliance.render, as `presence-appliance render` does)."""
    from appliance.inventory import load_inventory
    from appliance.render import render_appliance

    render_appliance(load_inventory(str(inventory_file)), "pi", out, roles=list(roles))
    return out


def render_scenario(name: str, out: Path, roles: tuple[str, ...] = NETWORK_ROLES) -> Path:
    return render_inventory(scenario_path(name), out, roles)


@dataclass
class HostapdResult:
    """What hostapd printed when asked to start on a configuration file."""

    output: str

    @property
    def accepted(self) -> bool:
        # No config-check flag: a valid file gets as far as driver init (no nl80211 here).
        return (
            "errors found in configuration file" not in self.output
            and "Failed to initialize driver 'nl80211'" in self.output
        )


def hostapd_parse(rendered: Path) -> HostapdResult:
    """Run the real hostapd on the rendered /etc/hostapd/hostapd.conf, with the rendered
    /etc/hostapd bind-mounted over the real one (private mount namespace) so the file's own
    absolute paths (vlan_file, wpa_psk_file) resolve to the rendered files."""
    hostapd_dir = rendered / "etc/hostapd"
    script = (
        f"mount --bind {hostapd_dir} /etc/hostapd && "
        "exec timeout 10 hostapd /etc/hostapd/hostapd.conf"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return HostapdResult(proc.stdout + proc.stderr)


def run(
    argv: list[str], timeout: float = 20, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command with a bounded wait; on failure show what it printed."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


@dataclass
class Netns:
    """Network namespaces, veths and processes of one test; everything goes at teardown."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add(self, role: str) -> str:
        # pan- prefix (this test family's namespace names) + a random tag: parallel-safe.
        name = f"pan-{role}-{self.tag}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.exec(name, ["ip", "link", "set", "lo", "up"])
        return name

    def exec(
        self, ns: str, argv: list[str], timeout: float = 20, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        # Create with temporary names in the root namespace (two namespaces may want the same
        # interface name), move each end, then rename it inside its namespace.
        tmp_a, tmp_b = (
            f"pa{self.tag}{len(self.namespaces)}a",
            f"pa{self.tag}{len(self.namespaces)}b",
        )
        run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
        run(["ip", "link", "set", tmp_a, "netns", ns_a])
        run(["ip", "link", "set", tmp_b, "netns", ns_b])
        self.exec(ns_a, ["ip", "link", "set", tmp_a, "name", if_a])
        self.exec(ns_b, ["ip", "link", "set", tmp_b, "name", if_b])
        self.exec(ns_a, ["ip", "link", "set", if_a, "up"])
        self.exec(ns_b, ["ip", "link", "set", if_b, "up"])

    def start(self, ns: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def start_ulogd(self, ns: str, conf: Path, log: Path) -> subprocess.Popen[bytes]:
        """ulogd2 on CONF in NS, returning once it listens on its NFLOG group: a drop logged
        before that would be lost (a loaded machine starts ulogd slowly)."""
        match = re.search(r"^group=(\d+)$", conf.read_text(), re.M)
        assert match, f"no NFLOG group in {conf}"
        proc = self.start(ns, ["ulogd", "-c", str(conf)], log)
        deadline = time.monotonic() + 15
        while True:
            # Bound groups of this namespace's nfnetlink_log, one per line, the group first.
            bound = self.exec(ns, ["cat", "/proc/net/netfilter/nfnetlink_log"]).stdout
            if match[1] in (line.split()[0] for line in bound.splitlines() if line.strip()):
                return proc
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"ulogd not on group {match[1]}: {log.read_text()}"
            time.sleep(0.05)

    def cleanup(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        for name in reversed(self.namespaces):
            # Deleting the namespace removes its veths (and their peers).
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("namespace tests need root and iproute2")
    spaces = Netns()
    try:
        yield spaces
    finally:
        spaces.cleanup()
