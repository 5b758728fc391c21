"""An address change reaches the camera at once, and leases renew like a real client's (lab)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.camera_agent import read_events
from appliance.lab.handle import Lab
from tests.e2e.test_safety import install, write_inventory

pytestmark = pytest.mark.lab

# Events after which a camera no longer held its lease: a link drop or a new DHCP exchange.
LEASE_LOST = {"link-down", "deconfig", "nak", "leasefail", "bound"}
# The dhcp role's lease time (dhcp_lease_time: 12h), in the seconds a camera is told.
LAB_LEASE = 12 * 3600


def events_since(lab: Lab, camera: str, since: float) -> list[dict[str, Any]]:
    return [e for e in read_events(lab.root, camera) if e["time"] >= since]


def wait_for_event(
    lab: Lab, camera: str, since: float, timeout: float, **match: Any
) -> dict[str, Any]:
    """The first event of CAMERA at or after SINCE with the MATCHing fields (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events_since(lab, camera, since):
            if all(event.get(k) == v for k, v in match.items()):
                return event
        time.sleep(0.5)
    raise AssertionError(
        f"{camera}: no event {match} within {timeout:.0f} s: {events_since(lab, camera, since)}"
    )


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lab, Path]:
    """Provisioned once per module: each test puts back what it changes."""
    lab = lab_session.ensure_up()
    inventory = write_inventory(lab, tmp_path_factory.mktemp("rejoin") / "good" / "inventory.yml")
    result = install(lab, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for camera in lab.plan.pis[0].cameras:
        assert lab.wait_camera_lease(camera.name, timeout=90)["ip"] == camera.ip
    return lab, inventory


def test_an_address_change_reaches_that_camera_at_once_and_no_other(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, good = installed
    cam1, cam2 = lab.plan.pis[0].cameras[:2]
    new_ip = cam2.ip.rsplit(".", 1)[0] + ".50"
    edited = write_inventory(lab, tmp_path / "edited" / "inventory.yml")
    edit = lab.cli("camera", "set", cam2.name, f"ip={new_ip}", "-i", str(edited), netns=None)
    assert edit.returncode == 0, edit.stdout + edit.stderr
    cam1_lease = lab.camera_lease(cam1.name)
    # The lab's leases last 12 h: without the rejoin, cam2 would ask again only in 6 h.
    assert cam1_lease and cam1_lease["lease"] >= 3600, cam1_lease
    started = time.time()
    try:
        # install ends with `check`, which waits at most 30 s for every camera.
        result = lab.cli("install", "-i", str(edited))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "Make each camera whose reserved address changed rejoin now" in result.stdout
        lease = lab.camera_lease(cam2.name)
        assert lease and lease["ip"] == new_ip, lease
        moved = events_since(lab, cam2.name, started)
        kinds = [e["event"] for e in moved]
        assert "link-down" in kinds, moved  # deauthenticated by the Pi, not a renewal
        assert any(e["event"] == "bound" and e["ip"] == new_ip for e in moved), moved
        # cam1 kept its link and its lease the whole time.
        lost = [e for e in events_since(lab, cam1.name, started) if e["event"] in LEASE_LOST]
        assert not lost, lost
        assert lab.camera_lease(cam1.name) == cam1_lease
    finally:
        back = lab.cli("install", "-i", str(good))
        assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-2000:]
    assert lab.camera_lease(cam2.name)["ip"] == cam2.ip


def test_a_camera_keeps_its_reserved_address_across_renewals(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    """With a 2-minute lease (dnsmasq's shortest) the camera renews after 1 minute, by a
    unicast REQUEST for the same address, and keeps it."""
    lab, good = installed
    cam1 = lab.plan.pis[0].cameras[0]
    short = write_inventory(lab, tmp_path / "short" / "inventory.yml", dhcp_lease_time="2m")
    try:
        result = install(lab, short, "--tags", "dhcp")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        # The camera holds a 12 h lease: make it rejoin to take a 2-minute one.
        since = time.time()
        deauth = lab.pi_exec(
            "hostapd_cli", "-p", "/run/hostapd", "-i", "wlan0", "deauthenticate", cam1.mac
        )
        assert deauth.stdout.strip() == "OK", deauth.stdout + deauth.stderr
        bound = wait_for_event(lab, cam1.name, since, 60, event="bound", lease=120)
        assert bound["ip"] == cam1.ip, bound
        renewed = wait_for_event(lab, cam1.name, bound["time"], 150, event="renew")
        assert renewed["ip"] == cam1.ip and renewed["lease"] == 120, renewed
        lost = [
            e
            for e in events_since(lab, cam1.name, bound["time"])
            if e["event"] in LEASE_LOST and bound["time"] < e["time"] <= renewed["time"]
        ]
        assert not lost, lost
        assert lab.camera_lease(cam1.name)["ip"] == cam1.ip
    finally:
        back = install(lab, good, "--tags", "dhcp")
        assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-2000:]
        # cam1 would otherwise keep renewing its 2-minute lease every minute, and a later
        # test that compares cam1's lease before and after a change would see a renewal
        # land in between. Make it rejoin now and take the lab's 12 h lease again.
        since = time.time()
        lab.pi_exec("hostapd_cli", "-p", "/run/hostapd", "-i", "wlan0", "deauthenticate", cam1.mac)
        wait_for_event(lab, cam1.name, since, 60, event="bound", lease=LAB_LEASE)


def test_a_rollback_of_an_address_change_moves_the_camera_back_at_once(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, good = installed
    cam1, cam2 = lab.plan.pis[0].cameras[:2]
    new_ip = cam2.ip.rsplit(".", 1)[0] + ".51"
    edited = write_inventory(lab, tmp_path / "edited" / "inventory.yml")
    edit = lab.cli("camera", "set", cam2.name, f"ip={new_ip}", "-i", str(edited), netns=None)
    assert edit.returncode == 0, edit.stdout + edit.stderr
    try:
        moved = install(lab, edited)
        assert moved.returncode == 0, moved.stdout[-4000:] + moved.stderr[-2000:]
        wait_for_event(lab, cam2.name, 0, 60, event="bound", ip=new_ip)
        cam1_lease = lab.camera_lease(cam1.name)
        since = time.time()
        rolled = lab.cli("rollback", "-i", str(edited))
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        back = wait_for_event(lab, cam2.name, since, 60, event="bound", ip=cam2.ip)
        assert back["ip"] == cam2.ip
        lost = [e for e in events_since(lab, cam1.name, since) if e["event"] in LEASE_LOST]
        assert not lost, lost
        assert lab.camera_lease(cam1.name) == cam1_lease
    finally:
        restore = install(lab, good)
        assert restore.returncode == 0, restore.stdout[-4000:] + restore.stderr[-2000:]
