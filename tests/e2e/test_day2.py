"""Day-2 commands on the booted lab: check, camera control and leases through the real Pi.

`check` and `camera ...` run from pa-lan (the user's controller) through the Pi's
HTTPS proxy with the certificate pinned by install; the emulated camera's own state
(read in its namespace via /_emulator/state, which the proxy never forwards) proves
that the commands reached it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.lab.handle import Lab

pytestmark = pytest.mark.lab


@pytest.fixture
def installed(lab: Lab) -> Lab:
    """The lab Pi with every role applied; install itself ends with `check`."""
    result = lab.install()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "cameras pass (through the Pi's proxy" in result.stdout
    return lab


def _secure_ids(lab: Lab) -> list[str]:
    group = lab.inventory["all"]["children"]["appliances"]
    cameras = list(group.get("vars", {}).get("cameras") or [])
    for host in group["hosts"].values():
        cameras += host.get("cameras") or []
    return [c["secure_id"] for c in cameras]


def _camera_state(lab: Lab, name: str) -> dict[str, Any]:
    camera = lab.plan.camera(name)
    result = lab.run_in(
        camera.netns, "curl", "-s", "-m", "5", f"http://{camera.ip}/_emulator/state", timeout=15
    )
    return json.loads(result.stdout)


def _assert_no_secrets(lab: Lab, text: str) -> None:
    for secure_id in _secure_ids(lab):
        assert secure_id not in text


def test_check_passes_through_the_proxy(installed: Lab) -> None:
    lab = installed
    result = lab.cli("check", "-i", str(lab.inventory_path), "--json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["direct"] is False
    names = sorted(c["camera"] for c in report["cameras"])
    assert names == sorted(c.name for c in lab.plan.cameras)
    for camera in report["cameras"]:
        assert camera["verdict"] == "pass", camera
        assert camera["snapshot"]["ok"] and camera["stream"]["ok"]
    _assert_no_secrets(lab, result.stdout + result.stderr)


def test_floodlight_and_monitoring_reach_the_camera(installed: Lab) -> None:
    lab = installed
    name = lab.plan.cameras[0].name
    before = _camera_state(lab, name)
    inventory = str(lab.inventory_path)

    result = lab.cli(
        "camera",
        "floodlight",
        name,
        "on",
        "--intensity",
        "35",
        "--night",
        "animal=on",
        "-i",
        inventory,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    state = _camera_state(lab, name)
    assert state["floodlight"]["mode"] == "on" and state["floodlight"]["intensity"] == 35
    assert state["floodlight"]["night"] == {**before["floodlight"]["night"], "animal": True}

    wanted = "off" if before["monitoring"] == "on" else "on"
    result = lab.cli("camera", "monitoring", name, wanted, "-i", inventory, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"monitoring is now {wanted}" in result.stdout
    assert _camera_state(lab, name)["monitoring"] == wanted
    # Asking again: the camera's 409 ("already") is a success.
    result = lab.cli("camera", "monitoring", name, wanted, "-i", inventory, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"already {wanted}" in result.stdout
    _assert_no_secrets(lab, result.stdout + result.stderr)

    # Put the camera back as it was for the other tests.
    lab.cli("camera", "monitoring", name, before["monitoring"], "-i", inventory, timeout=60)
    floodlight = before["floodlight"]
    lab.cli(
        "camera",
        "floodlight",
        name,
        floodlight["mode"],
        "--intensity",
        str(floodlight["intensity"]),
        "-i",
        inventory,
        timeout=60,
    )


def test_snapshot_through_the_proxy(installed: Lab, tmp_path) -> None:
    lab = installed
    name = lab.plan.cameras[-1].name
    out = tmp_path / "snap.jpg"
    result = lab.cli(
        "camera", "snapshot", name, "-o", str(out), "-i", str(lab.inventory_path), timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


def test_leases_over_ssh(installed: Lab) -> None:
    lab = installed
    for camera in lab.plan.cameras:
        lab.wait_camera_lease(camera.name)
    result = lab.cli("leases", "-i", str(lab.inventory_path), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for camera in lab.plan.cameras:
        line = next(line for line in result.stdout.splitlines() if camera.mac.lower() in line)
        assert camera.ip in line and f"camera {camera.name} on" in line
