"""The network roles on the booted lab Pi: leases, NTP without internet, idempotence, restart scope."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab

pytestmark = pytest.mark.lab

ROLE_TAGS = "access_point,dhcp,ntp"
UNITS = ("hostapd", "dnsmasq", "chrony")


def _install(
    lab: Lab, inventory: Path | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Provision only the network roles (the web role has its own tests), without `check`."""
    return lab.cli(
        "install",
        "-i",
        str(inventory or lab.inventory_path),
        "--no-check",
        "--tags",
        ROLE_TAGS,
        *extra,
    )


def _changed(result: subprocess.CompletedProcess[str]) -> tuple[int, list[str]]:
    """The Pi's changed count from the recap, and the tasks install listed as changed."""
    counts = [
        int(n) for n in re.findall(r"^\s+\S+\s+\S+\s+ok=\d+ changed=(\d+)", result.stdout, re.M)
    ]
    tasks = [
        line.strip() for line in result.stdout.splitlines() if line.strip().startswith("changed")
    ]
    assert counts, result.stdout + result.stderr
    return sum(counts), tasks


def _units(lab: Lab) -> dict[str, tuple[str, str]]:
    """Per unit: (InvocationID, ActiveEnterTimestampMonotonic) — both change on every start."""
    found = {}
    for unit in UNITS:
        out = lab.pi_exec(
            "systemctl",
            "show",
            "-p",
            "InvocationID",
            "-p",
            "ActiveEnterTimestampMonotonic",
            "-p",
            "ActiveState",
            f"{unit}.service",
        ).stdout
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        assert props.get("ActiveState") == "active", f"{unit}: {props}"
        found[unit] = (props["InvocationID"], props["ActiveEnterTimestampMonotonic"])
    return found


def _stratum(lab: Lab, netns: str, server: str) -> int | None:
    result = lab.run_in(netns, "ntpdig", "-j", "-t", "2", server, timeout=15, check=False)
    if result.returncode != 0:
        return None
    return int(json.loads(result.stdout)["stratum"])


@pytest.fixture(scope="module")
def provisioned(lab_session: Any) -> Lab:
    """Provisioned once per module: each test puts back what it changes."""
    lab = lab_session.ensure_up()
    result = _install(lab)
    assert result.returncode == 0, result.stdout + result.stderr
    return lab


def test_cameras_hold_reserved_addresses_and_the_pi_as_ntp_server(provisioned: Lab) -> None:
    lab = provisioned
    pi = lab.plan.pis[0]
    for camera in pi.cameras:
        lease = lab.wait_camera_lease(camera.name, timeout=90)
        assert lease["ip"] == camera.ip, lease
        assert lease["ntpsrv"] == [pi.camera_gateway], lease
        assert lease["router"] == pi.camera_gateway, lease
    for unit in UNITS:
        state = lab.pi_exec("systemctl", "is-active", f"{unit}.service", check=False)
        assert state.stdout.strip() == "active", f"{unit}: {state.stdout}{state.stderr}"
    # The hostapd stand-in ran the real hostapd parse on the provisioned file and passed.
    log = lab.pi_exec("journalctl", "-u", "hostapd.service", "-o", "cat", "--no-pager").stdout
    assert "hostapd accepts /etc/hostapd/hostapd.conf" in log, log


def _wait_stratum(lab: Lab, netns: str, server: str, want: int, seconds: float) -> int | None:
    """Ask SERVER until it serves stratum WANT (bounded); the last stratum seen."""
    deadline = time.monotonic() + seconds
    seen = _stratum(lab, netns, server)
    while seen != want and time.monotonic() < deadline:
        time.sleep(1)
        seen = _stratum(lab, netns, server)
    return seen


def _tracking(lab: Lab) -> str:
    return lab.pi_exec("chronyc", "-n", "tracking", check=False).stdout


# chrony's reference ID for its own clock (`local stratum N`): 127.127.1.1.
LOCAL_REFERENCE = re.compile(r"^Reference ID\s*:\s*7F7F0101\b", re.M)


def test_cameras_get_time_from_the_pi_while_the_internet_ntp_is_down(provisioned: Lab) -> None:
    """The `local stratum 10` fallback itself, not a stratum that passes while still synced:
    synced, the Pi serves stratum 9 (pa-wan's server is stratum 8). The Pi then starts while
    the internet's NTP is down (after a power cut, say): its chrony's reference is its own
    clock, it serves stratum 10, and the cameras still get time. (A running chrony keeps a
    silent upstream selected for minutes: its reach register empties over 8 polls of >= 64 s.)"""
    lab = provisioned
    pi = lab.plan.pis[0]
    first = pi.cameras[0]
    synced = _wait_stratum(lab, first.netns, pi.camera_gateway, 9, 90)
    assert synced == 9, f"the Pi never synced to pa-wan: serves stratum {synced}\n{_tracking(lab)}"
    assert not LOCAL_REFERENCE.search(_tracking(lab))
    lab.wan_ntp_stop()
    try:
        lab.pi_exec("systemctl", "restart", "chrony")
        deadline = time.monotonic() + 60
        while not LOCAL_REFERENCE.search(tracking := _tracking(lab)):
            assert time.monotonic() < deadline, f"chrony never fell back to its clock:\n{tracking}"
            time.sleep(1)
        assert re.search(r"^Stratum\s*:\s*10$", tracking, re.M), tracking
        sources = lab.pi_exec("chronyc", "-n", "sources").stdout
        assert not re.search(r"^\^\*", sources, re.M), sources  # no upstream selected
        for camera in pi.cameras:
            stratum = _wait_stratum(lab, camera.netns, pi.camera_gateway, 10, 30)
            assert stratum == 10, f"{camera.name}: stratum {stratum}"
    finally:
        lab.wan_ntp_start()
        # Back to synced for the tests after this one (iburst on start: seconds, not minutes).
        lab.pi_exec("systemctl", "restart", "chrony")
    assert _wait_stratum(lab, first.netns, pi.camera_gateway, 9, 90) == 9


def test_second_install_changes_nothing(provisioned: Lab) -> None:
    result = _install(provisioned)
    assert result.returncode == 0, result.stdout + result.stderr
    changed, tasks = _changed(result)
    assert changed == 0, "changed on the second run:\n" + "\n".join(tasks)
    # A dry run with diffs on a provisioned Pi works and has nothing to report either.
    dry = _install(provisioned, None, "--check", "--diff")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    changed, tasks = _changed(dry)
    assert changed == 0, "check mode reports changes:\n" + "\n".join(tasks)


def _edit_cameras(data: dict[str, Any]) -> None:
    group = data["all"]["children"]["appliances"]["vars"]
    prefix = group["camera_network"]["address"].rsplit(".", 1)[0]
    group["cameras"].append(
        {
            "name": "extra",
            "mac": "70:ee:50:00:64:01",
            "ip": f"{prefix}.95",
            "secure_id": "0123456789abcdef0123456789abcdef",
            "cloud": "block",
        }
    )


def _edit_ntp(data: dict[str, Any]) -> None:
    # An address from this test family's block: nothing answers there, chrony just tries.
    data["all"]["children"]["appliances"]["vars"]["ntp_upstream"].append("10.203.64.123")


def _edit_ssid(data: dict[str, Any]) -> None:
    data["all"]["children"]["appliances"]["vars"]["wifi"]["ssid"] = "presence-lab-renamed"


@pytest.mark.parametrize(
    ("edit", "restarted"),
    [(_edit_cameras, {"dnsmasq"}), (_edit_ntp, {"chrony"}), (_edit_ssid, {"hostapd"})],
    ids=["camera-list", "ntp-upstream", "wifi-ssid"],
)
def test_an_edit_restarts_only_its_service(
    provisioned: Lab, tmp_path: Path, edit: Callable[[dict[str, Any]], None], restarted: set[str]
) -> None:
    lab = provisioned
    data = copy.deepcopy(lab.inventory)
    edit(data)
    edited = tmp_path / "inventory.yml"
    edited.touch(mode=0o600)  # it holds the lab's secrets
    edited.write_text(yaml.safe_dump(data, sort_keys=False))
    before = _units(lab)
    try:
        result = _install(lab, edited)
        assert result.returncode == 0, result.stdout + result.stderr
        after = _units(lab)
        actual = {unit for unit in UNITS if before[unit] != after[unit]}
        assert actual == restarted, f"restarted {sorted(actual)}, expected {sorted(restarted)}"
    finally:
        restore = _install(lab)
        assert restore.returncode == 0, restore.stdout + restore.stderr


def _pi_network_report(lab: Lab) -> str:
    """What the Pi's network looks like, for a failure message."""
    parts = []
    for cmd in (
        ("networkctl", "list", "--no-pager"),
        ("ip", "-4", "addr"),
        ("ip", "-4", "route"),
        ("ss", "-lnup"),
        (
            "journalctl",
            "-u",
            "dnsmasq",
            "-u",
            "systemd-networkd",
            "-o",
            "cat",
            "--no-pager",
            "-n",
            "40",
        ),
    ):
        result = lab.pi_exec(*cmd, check=False)
        parts.append(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return "\n".join(parts)


@pytest.mark.lab_lifecycle
def test_vlan_per_camera_on_the_lab(lab_session: Any) -> None:
    """vlan_per_camera on a real systemd: networkd puts the Pi's /32 and each camera's route
    on the camera's VLAN bridge; cameras keep their reserved addresses and cannot reach
    each other."""
    lab = lab_session.ensure_up(isolation="vlan_per_camera")
    result = _install(lab)
    assert result.returncode == 0, result.stdout + result.stderr
    pi = lab.plan.pis[0]
    for camera in pi.cameras:
        try:
            lease = lab.wait_camera_lease(camera.name, timeout=60)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{_pi_network_report(lab)}") from None
        assert lease["ip"] == camera.ip, lease
        assert lease["ntpsrv"] == [pi.camera_gateway], lease
        route = lab.run_in(pi.netns, "ip", "-4", "route", "show", f"{camera.ip}/32").stdout
        assert f"dev {camera.bridge}" in route, route
        lab.run_in(camera.netns, "ping", "-c", "1", "-W", "2", pi.camera_gateway)
    first, second = pi.cameras[0], pi.cameras[1]
    blocked = lab.run_in(first.netns, "ping", "-c", "1", "-W", "2", second.ip, check=False)
    assert blocked.returncode != 0, "a camera reached another camera directly"
    again = _install(lab)
    changed, tasks = _changed(again)
    assert changed == 0, "changed on the second run:\n" + "\n".join(tasks)


@pytest.mark.lab_lifecycle
def test_vlan_per_camera_camera_edit_keeps_hostapd_running(
    lab_session: Any, tmp_path: Path
) -> None:
    """Adding a camera writes its passphrase line and network file and restarts dnsmasq,
    never hostapd; removing it again deletes its network file."""
    lab = lab_session.ensure_up(isolation="vlan_per_camera")
    assert _install(lab).returncode == 0
    data = copy.deepcopy(lab.inventory)
    _edit_cameras(data)
    edited = tmp_path / "inventory.yml"
    edited.touch(mode=0o600)
    edited.write_text(yaml.safe_dump(data, sort_keys=False))
    extra_file = "/etc/systemd/network/61-presence-vlan-extra.network"
    before = _units(lab)
    try:
        result = _install(lab, edited)
        assert result.returncode == 0, result.stdout + result.stderr
        after = _units(lab)
        actual = {unit for unit in UNITS if before[unit] != after[unit]}
        assert actual == {"dnsmasq"}, f"restarted {sorted(actual)}"
        assert lab.pi_exec("test", "-f", extra_file, check=False).returncode == 0
        psk = lab.pi_exec("grep", "-c", "70:ee:50:00:64:01", "/etc/hostapd/hostapd.wpa_psk").stdout
        assert psk.strip() == "1"
    finally:
        restore = _install(lab)
        assert restore.returncode == 0, restore.stdout + restore.stderr
    assert lab.pi_exec("test", "-e", extra_file, check=False).returncode != 0
