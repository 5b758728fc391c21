"""ntp role: the rendered chrony.conf parses and serves the camera side, with and without upstream."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.roles.conftest import Netns, render_scenario, run

SCENARIOS = ("ap_isolate", "vlan_per_camera", "band5_wpa3")
PI = "10.203.64.1"
UPSTREAM = "10.203.66.1"  # the scenarios' first ntp_upstream
PI_UPLINK = "10.203.66.2"


def _directives(out: Path) -> list[str]:
    text = (out / "etc/chrony/chrony.conf").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chronyd_parses_rendered_config(scenario: str, tmp_path: Path) -> None:
    out = render_scenario(scenario, tmp_path, roles=("ntp",))
    conf = out / "etc/chrony/chrony.conf"
    printed = run(["chronyd", "-p", "-f", str(conf)]).stdout
    assert "local stratum 10" in printed


def test_chronyd_rejects_a_broken_directive(tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path, roles=("ntp",))
    conf = out / "etc/chrony/chrony.conf"
    conf.write_text(conf.read_text().replace("local stratum 10", "lokal stratum 10"))
    result = run(["chronyd", "-p", "-f", str(conf)], check=False)
    assert result.returncode != 0
    assert "Invalid directive" in result.stderr


def test_upstreams_camera_subnet_and_local_stratum(tmp_path: Path) -> None:
    lines = _directives(render_scenario("ap_isolate", tmp_path, roles=("ntp",)))
    assert "server 10.203.66.1 iburst" in lines
    assert "pool 0.debian.pool.ntp.org iburst" in lines
    assert "allow 10.203.64.0/24" in lines
    assert "bindaddress 10.203.64.1" in lines
    assert "local stratum 10" in lines
    # DHCP-learned servers from the uplink would bypass ntp_upstream.
    assert not [line for line in lines if line.startswith("sourcedir")]
    wide = _directives(render_scenario("band5_wpa3", tmp_path / "wide", roles=("ntp",)))
    assert "allow 10.203.72.0/21" in wide


# --- chrony serving between namespaces ----------------------------------------------------


def _start_chronyd(netns: Netns, ns: str, conf: Path, state: Path) -> None:
    """Run chronyd on CONF unchanged, in a private mount namespace whose state, log, run and
    conf.d directories are test directories; -x: never touch the host's clock."""
    binds = []
    for target in ("/var/lib/chrony", "/var/log/chrony", "/run/chrony", "/etc/chrony/conf.d"):
        source = state / target.strip("/").replace("/", "_")
        source.mkdir(parents=True)
        binds.append(f"mkdir -p {target} && mount --bind {source} {target}")
    script = " && ".join([*binds, f"exec chronyd -d -x -u root -f {conf}"])
    netns.start(
        ns,
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        state / "chronyd.log",
    )


def _start_upstream(netns: Netns, ns: str, state: Path) -> None:
    state.mkdir(parents=True)
    conf = state / "upstream.conf"
    conf.write_text(
        "local stratum 3\n"
        "allow 10.203.66.0/24\n"
        f"pidfile {state / 'chronyd.pid'}\n"
        f"bindcmdaddress {state / 'chronyd.sock'}\n"
        "cmdport 0\n"
    )
    netns.start(ns, ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)], state / "chronyd.log")


def _stratum(netns: Netns, ns: str, server: str) -> int | None:
    result = netns.exec(ns, ["ntpdig", "-j", "-t", "2", server], timeout=10, check=False)
    if result.returncode != 0:
        return None
    return int(json.loads(result.stdout)["stratum"])


def _wait_stratum(netns: Netns, ns: str, server: str, want: int, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    seen = None
    while time.monotonic() < deadline:
        seen = _stratum(netns, ns, server)
        if seen == want:
            return seen
        time.sleep(0.5)
    return seen


def _pi_with_camera(netns: Netns) -> tuple[str, str]:
    pi = netns.add("pi")
    camera = netns.add("cam")
    netns.veth(pi, "pan-wl0", camera, "wlan0")
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    netns.exec(camera, ["ip", "addr", "add", "10.203.64.11/24", "dev", "wlan0"])
    return pi, camera


@pytest.mark.netns
def test_serves_cameras_at_local_stratum_without_upstream(netns: Netns, tmp_path: Path) -> None:
    out = render_scenario("vlan_per_camera", tmp_path / "out", roles=("ntp",))
    pi, camera = _pi_with_camera(netns)
    _start_chronyd(netns, pi, out / "etc/chrony/chrony.conf", tmp_path / "pi")
    stratum = _wait_stratum(netns, camera, PI, 10, 15)
    assert stratum is not None and stratum <= 10, (tmp_path / "pi/chronyd.log").read_text()


@pytest.mark.netns
def test_syncs_from_upstream_over_the_uplink_and_serves_only_the_camera_side(
    netns: Netns, tmp_path: Path
) -> None:
    """bindaddress pins the server socket to the camera address; the upstream queries must
    still leave through the uplink (the Pi then serves stratum upstream + 1)."""
    out = render_scenario("vlan_per_camera", tmp_path / "out", roles=("ntp",))
    pi, camera = _pi_with_camera(netns)
    wan = netns.add("wan")
    netns.veth(pi, "eth0", wan, "pan-up")
    netns.exec(pi, ["ip", "addr", "add", f"{PI_UPLINK}/24", "dev", "eth0"])
    netns.exec(wan, ["ip", "addr", "add", f"{UPSTREAM}/24", "dev", "pan-up"])
    _start_upstream(netns, wan, tmp_path / "upstream")
    assert _wait_stratum(netns, pi, UPSTREAM, 3, 10) == 3, "the stand-in upstream is not serving"

    _start_chronyd(netns, pi, out / "etc/chrony/chrony.conf", tmp_path / "pi")
    stratum = _wait_stratum(netns, camera, PI, 4, 40)
    assert stratum == 4, (tmp_path / "pi/chronyd.log").read_text()
    # Nothing answers NTP on the uplink address.
    assert _stratum(netns, wan, PI_UPLINK) is None


@pytest.mark.netns
def test_serves_when_the_camera_address_appears_after_chrony_started(
    netns: Netns, tmp_path: Path
) -> None:
    """At boot chrony may start before systemd-networkd gave the camera interface its address:
    the bindaddress socket must still serve once the address is there (no restart)."""
    out = render_scenario("vlan_per_camera", tmp_path / "out", roles=("ntp",))
    pi = netns.add("pi")
    camera = netns.add("cam")
    netns.veth(pi, "pan-wl0", camera, "wlan0")
    netns.exec(camera, ["ip", "addr", "add", "10.203.64.11/24", "dev", "wlan0"])
    _start_chronyd(netns, pi, out / "etc/chrony/chrony.conf", tmp_path / "pi")
    # Started for sure (not a sleep a loaded machine outlasts): its NTP socket is open, on
    # an address the Pi does not have yet.
    deadline = time.monotonic() + 10
    while f"{PI}:123" not in netns.exec(pi, ["ss", "-Hlun", "sport", "= :123"]).stdout:
        assert time.monotonic() < deadline, (tmp_path / "pi/chronyd.log").read_text()
        time.sleep(0.05)
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    stratum = _wait_stratum(netns, camera, PI, 10, 15)
    assert stratum == 10, (tmp_path / "pi/chronyd.log").read_text()
