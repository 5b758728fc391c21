"""firewall role, the way home: the rendered ruleset's tunnel rows, loaded in namespaces.

A WireGuard peer reaches the Pi's web (80/443) and ping only: SSH only when
firewall.admin_sources names it, never a camera or the home network, every drop counted
(remote_drop_pi, remote_drop_forward); the WireGuard port is open on the uplink. The tunnel
interface here is a veth named wg0 in the Pi's namespace: the rows match the interface name,
and the peer's packets arrive on it exactly as decrypted WireGuard packets do.

Addresses: this test family's 10.203.240.0/20; namespaces: remt-.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.roles.conftest import (
    ANSWER_WAIT,
    DROP_WAIT,
    Netns,
    load_scenario,
    render_inventory,
    run,
    write_inventory,
)

pytestmark = pytest.mark.netns

RULESET = "etc/presence-appliance/firewall.nft"
PROBE = Path(__file__).resolve().parent / "fw_probe.py"
PI_CAM, CAMERA = "10.203.243.1", "10.203.243.11"
PI_LAN, LAN = "10.203.244.2", "10.203.244.1"
PI_TUNNEL, PHONE = "10.203.245.1", "10.203.245.2"
TUNNEL = "10.203.245.0/24"
PORT = 51820


class TunnelLab:
    """Namespaces pi, lan, camera and phone (behind wg0); listeners; the ruleset loaded."""

    def __init__(self, netns: Netns, tmp: Path) -> None:
        self.netns, self.tmp = netns, tmp
        self.ns: dict[str, str] = {}

    def add(self, role: str) -> str:
        name = f"remt-{role}-{self.netns.tag}"
        run(["ip", "netns", "add", name])
        self.netns.namespaces.append(name)
        self.netns.exec(name, ["ip", "link", "set", "lo", "up"])
        self.ns[role] = name
        return name

    def sh(self, role: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.netns.exec(self.ns[role], list(argv), check=check)

    def build(self) -> None:
        for role in ("pi", "lan", "camera", "phone"):
            self.add(role)
        pi = self.ns["pi"]
        self.sh("pi", "ip", "link", "add", "wlan0", "type", "bridge")
        self.sh("pi", "ip", "addr", "add", f"{PI_CAM}/24", "dev", "wlan0")
        self.sh("pi", "ip", "link", "set", "wlan0", "up")
        self.netns.veth(pi, "wl0", self.ns["camera"], "wlan0")
        self.sh("pi", "ip", "link", "set", "wl0", "master", "wlan0")
        self.sh("camera", "ip", "addr", "add", f"{CAMERA}/24", "dev", "wlan0")
        self.sh("camera", "ip", "route", "add", "default", "via", PI_CAM)
        self.netns.veth(pi, "eth0", self.ns["lan"], "eth0")
        self.sh("pi", "ip", "addr", "add", f"{PI_LAN}/24", "dev", "eth0")
        self.sh("lan", "ip", "addr", "add", f"{LAN}/24", "dev", "eth0")
        self.sh("lan", "ip", "route", "add", TUNNEL, "via", PI_LAN)  # replies could come back
        self.sh("pi", "ip", "route", "add", "default", "via", LAN)
        self.netns.veth(pi, "wg0", self.ns["phone"], "wg0")
        self.sh("pi", "ip", "addr", "add", f"{PI_TUNNEL}/24", "dev", "wg0")
        self.sh("phone", "ip", "addr", "add", f"{PHONE}/24", "dev", "wg0")
        # A peer that widened its own AllowedIPs: it sends everything into the tunnel.
        self.sh("phone", "ip", "route", "add", "default", "via", PI_TUNNEL)
        self.sh("pi", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.listen("pi", tcp=[22, 80, 443], udp=[PORT])
        self.listen("lan", tcp=[8080], udp=[])
        self.listen("camera", tcp=[80], udp=[])

    def listen(self, role: str, tcp: list[int], udp: list[int]) -> None:
        log = self.tmp / f"listen-{role}.log"
        argv = [sys.executable, str(PROBE), "listen", "--tcp", *map(str, tcp)]
        argv += ["--udp", *map(str, udp)]
        self.netns.start(self.ns[role], argv, log)
        deadline = time.monotonic() + 10
        while "listening" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"listener in {role} did not start"
            time.sleep(0.05)

    def probe(self, role: str, kind: str, host: str, port: int, wait: float = ANSWER_WAIT) -> str:
        """The listener's answer, or '' when nothing came within WAIT seconds."""
        argv = [sys.executable, str(PROBE), "probe", kind, host, str(port), "--timeout", str(wait)]
        result = self.sh(role, *argv, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def counters(self) -> dict[str, int]:
        out = self.sh("pi", "nft", "-j", "list", "counters", "table", "inet", "presence_appliance")
        return {
            item["counter"]["name"]: item["counter"]["packets"]
            for item in json.loads(out.stdout)["nftables"]
            if "counter" in item
        }

    def load(self, admin_sources: list[str]) -> Path:
        variables: dict[str, Any] = load_scenario("ap_isolate")
        variables["camera_network"] = {
            "interface": "wlan0",
            "address": f"{PI_CAM}/24",
            "dhcp_range": ["10.203.243.100", "10.203.243.200"],
        }
        variables["cameras"] = [dict(variables["cameras"][0], ip=CAMERA)]
        variables["uplink_interface"] = "eth0"
        variables["firewall"] = {"admin_sources": admin_sources}
        variables["remote_access"] = {
            "wireguard": {"listen_port": PORT, "subnet": TUNNEL, "endpoint": "h.example:51820"}
        }
        for key, name in (
            ("firewall_log_file", "log/fw.json"),
            ("firewall_cameras_file", "cams.json"),
            ("firewall_state_dir", "state"),
        ):
            variables[key] = str(self.tmp / name)
        out = self.tmp / f"out-{len(admin_sources)}"
        inventory = write_inventory(variables, self.tmp / f"inventory-{len(admin_sources)}.yml")
        render_inventory(inventory, out, roles=("firewall",))
        self.sh("pi", "nft", "-f", str(out / RULESET))
        return out

    def log_drops(self, out: Path) -> None:
        """ulogd2 with the rendered config in the Pi's namespace: the drop log (NFLOG)."""
        (self.tmp / "log").mkdir(exist_ok=True)
        cams_file = self.tmp / "cams.json"  # the helper's camera list, at its test path
        cams_file.write_text((out / str(cams_file).lstrip("/")).read_text())
        self.netns.start_ulogd(self.ns["pi"], out / "etc/ulogd.conf", self.tmp / "ulogd.log")

    def view(self, out: Path, wanted: int) -> dict[str, Any]:
        """The helper's `show` (what `presence-appliance firewall` prints), once the log
        holds WANTED tunnel drops (ulogd writes a moment after the packet)."""
        helper = [sys.executable, str(out / "usr/local/sbin/presence-firewall")]
        deadline = time.monotonic() + 10
        while True:
            view = json.loads(self.sh("pi", *helper, "show", "--limit", "10").stdout)
            if len(view["tunnel"]["recent"]) >= wanted or time.monotonic() > deadline:
                return view
            time.sleep(0.2)


@pytest.fixture
def tunnel(netns: Netns, tmp_path: Path) -> TunnelLab:
    lab = TunnelLab(netns, tmp_path)
    lab.build()
    return lab


def test_peers_reach_the_dashboard_and_nothing_else(tunnel: TunnelLab) -> None:
    out = tunnel.load(admin_sources=[f"{LAN}/32"])
    tunnel.log_drops(out)

    def blocked(host: str, port: int, counter: str) -> None:
        before = tunnel.counters()[counter]
        assert tunnel.probe("phone", "tcp", host, port, wait=DROP_WAIT) == "", (
            f"the peer reached {host}:{port}"
        )
        assert tunnel.counters()[counter] > before, f"{counter} did not count {host}:{port}"

    for port in (443, 80):
        assert tunnel.probe("phone", "tcp", PI_TUNNEL, port) == f"from {PHONE}"
    assert tunnel.sh("phone", "ping", "-c", "1", "-W", "5", PI_TUNNEL, check=False).returncode == 0
    blocked(PI_TUNNEL, 22, "remote_drop_pi")
    blocked(PI_LAN, 22, "remote_drop_pi")  # the Pi's other address, through the tunnel
    blocked(CAMERA, 80, "remote_drop_forward")
    blocked(LAN, 8080, "remote_drop_forward")
    # The tunnel's own port is open on the uplink (from the internet, via the home router).
    assert tunnel.probe("lan", "udp", PI_LAN, PORT) == f"from {LAN}"

    # The helper's view: the tunnel's drops counted, each attempt logged with who and where.
    counted = tunnel.counters()
    view = tunnel.view(out, wanted=4)
    assert view["tunnel"]["drops"] == {
        "pi": counted["remote_drop_pi"],
        "forward": counted["remote_drop_forward"],
    }
    attempts = {(e["kind"], e["destination"], e["port"]) for e in view["tunnel"]["recent"]}
    assert {
        ("pi", PI_TUNNEL, 22), ("pi", PI_LAN, 22), ("forward", CAMERA, 80), ("forward", LAN, 8080)
    } <= attempts, attempts  # fmt: skip
    assert {e["source"] for e in view["tunnel"]["recent"]} == {PHONE}
    # Not a camera's: the cameras' own attempts stay theirs.
    assert all(not c["recent"] for c in view["cameras"])


def test_ssh_through_the_tunnel_only_for_admin_sources(tunnel: TunnelLab) -> None:
    tunnel.load(admin_sources=[f"{LAN}/32", f"{PHONE}/32"])
    assert tunnel.probe("phone", "tcp", PI_TUNNEL, 22) == f"from {PHONE}"
    # Still nothing behind the Pi.
    assert tunnel.probe("phone", "tcp", CAMERA, 80, wait=DROP_WAIT) == ""
    assert tunnel.probe("phone", "tcp", LAN, 8080, wait=DROP_WAIT) == ""
