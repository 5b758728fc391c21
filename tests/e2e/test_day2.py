"""Day-2 commands on the booted lab: check, camera control and leases through the real Pi.

`check` and `camera ...` run from pa-lan (the user's controller) through the Pi's
HTTPS proxy with the certificate pinned by install; the emulated camera's own state
(read in its namespace via /_emulator/state, which the proxy never forwards) proves
that the commands reached it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab


class Day2Lab:
    """The lab plus the inventory the day-2 commands use (the lab's, with hls.js local)."""

    def __init__(self, lab: Lab, inventory: Path) -> None:
        self.lab = lab
        self.inventory = inventory

    def cli(self, *args: str, timeout: float = 120) -> Any:
        return self.lab.cli(*args, "-i", str(self.inventory), timeout=timeout)


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Day2Lab:
    """The lab Pi with every role applied; install itself ends with `check`.

    The Pi has no route to a download site: unless the lab's inventory already says
    where hls.js is, a copy of it points the web role at the pinned file on the
    controller. The certificate pin then lives next to that copy.
    """
    lab = lab_session.ensure_up()
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["appliances"].setdefault("vars", {})
    group.setdefault("web_hlsjs_src", str(fetch_hlsjs()))
    inventory = tmp_path_factory.mktemp("day2") / "inventory.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    inventory.chmod(0o600)
    day2 = Day2Lab(lab, inventory)
    result = day2.cli("install", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "cameras pass (through the Pi's proxy" in result.stdout
    return day2


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


def test_check_passes_through_the_proxy(installed: Day2Lab) -> None:
    lab = installed.lab
    result = installed.cli("check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["direct"] is False
    names = sorted(c["camera"] for c in report["cameras"])
    assert names == sorted(c.name for c in lab.plan.cameras)
    for camera in report["cameras"]:
        assert camera["verdict"] == "pass", camera
        assert camera["snapshot"]["ok"] and camera["stream"]["ok"]
    _assert_no_secrets(lab, result.stdout + result.stderr)


def test_floodlight_and_monitoring_reach_the_camera(installed: Day2Lab) -> None:
    lab = installed.lab
    name = lab.plan.cameras[0].name
    before = _camera_state(lab, name)

    result = installed.cli(
        "camera", "floodlight", name, "on", "--intensity", "35", "--night", "animal=on"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    state = _camera_state(lab, name)
    assert state["floodlight"]["mode"] == "on" and state["floodlight"]["intensity"] == 35
    assert state["floodlight"]["night"] == {**before["floodlight"]["night"], "animal": True}

    wanted = "off" if before["monitoring"] == "on" else "on"
    result = installed.cli("camera", "monitoring", name, wanted)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"monitoring is now {wanted}" in result.stdout
    assert _camera_state(lab, name)["monitoring"] == wanted
    # Asking again: "already" (the camera's 409, through nginx's own 409 page) is a success.
    result = installed.cli("camera", "monitoring", name, wanted)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"already {wanted}" in result.stdout
    _assert_no_secrets(lab, result.stdout + result.stderr)

    # Put the camera back as it was for the other tests.
    installed.cli("camera", "monitoring", name, before["monitoring"])
    floodlight = before["floodlight"]
    installed.cli(
        "camera",
        "floodlight",
        name,
        floodlight["mode"],
        "--intensity",
        str(floodlight["intensity"]),
        "--night",
        ",".join(f"{k}={'on' if v else 'off'}" for k, v in floodlight["night"].items()),
    )
    assert _camera_state(lab, name) == before


def test_snapshot_through_the_proxy(installed: Day2Lab, tmp_path: Path) -> None:
    name = installed.lab.plan.cameras[-1].name
    out = tmp_path / "snap.jpg"
    result = installed.cli("camera", "snapshot", name, "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


def test_leases_over_ssh(installed: Day2Lab) -> None:
    lab = installed.lab
    for camera in lab.plan.cameras:
        lab.wait_camera_lease(camera.name)
    result = installed.cli("leases")
    assert result.returncode == 0, result.stdout + result.stderr
    for camera in lab.plan.cameras:
        line = next(line for line in result.stdout.splitlines() if camera.mac.lower() in line)
        assert camera.ip in line and f"camera {camera.name} on" in line
