"""Recordings on the booted lab, end to end (one install, recordings on for cam1 only).

`camera ftp cam1 on` sets cam1's FTP export through the Pi's proxy; an event on cam1's
emulator uploads a real MP4 over passive FTP to the Pi; the file lands in cam1's folder,
`recordings list` lists it, and Chromium plays it through the dashboard. cam2 has no
`recordings`: it cannot reach the Pi's FTP server at all, not even with cam1's login.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from appliance.lab.handle import Lab
from tests.browser import available as browser_available
from tests.browser import chromium
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab

RECORDINGS = "/srv/presence-recordings"


class RecordingsLab:
    """The lab Pi installed with recordings for cam1, and the inventory that says so."""

    def __init__(self, lab: Lab, inventory: Path, password: str) -> None:
        self.lab = lab
        self.inventory = inventory
        self.ftp_password = password
        data = yaml.safe_load(inventory.read_text())
        self.web_password = data["all"]["children"]["appliances"]["vars"]["web"]["users"][0][
            "password"
        ]
        self.secure_ids = {c["name"]: c["secure_id"] for c in _cameras(data)}

    def cli(self, *args: str, timeout: float = 120) -> Any:
        return self.lab.cli(*args, "-i", str(self.inventory), timeout=timeout)

    def camera(self, name: str, path: str, method: str = "GET", timeout: float = 60) -> Any:
        """curl http://<camera>/PATH inside the camera's own namespace (JSON answer)."""
        camera = self.lab.plan.camera(name)
        result = self.lab.run_in(
            camera.netns,
            "curl", "-s", "-m", str(int(timeout)), "-X", method, f"http://{camera.ip}/{path}",
            timeout=timeout + 10,
        )  # fmt: skip
        return json.loads(result.stdout)


def _cameras(data: dict[str, Any]) -> list[dict[str, Any]]:
    group = data["all"]["children"]["appliances"]
    cameras = list(group.get("vars", {}).get("cameras") or [])
    for host in (group.get("hosts") or {}).values():
        cameras += (host or {}).get("cameras") or []
    return cameras


@pytest.fixture(scope="module")
def rec(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> RecordingsLab:
    """Every role applied once, with `recordings` on the Pi and `recordings: true` for cam1."""
    lab = lab_session.ensure_up()
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["appliances"].setdefault("vars", {})
    group.setdefault("web_hlsjs_src", str(fetch_hlsjs()))
    group["recordings"] = {"path": RECORDINGS}
    password = secrets.token_urlsafe(18)
    (cam1,) = [c for c in _cameras(data) if c["name"] == "cam1"]
    cam1.update(recordings=True, ftp_password=password)
    inventory = tmp_path_factory.mktemp("recordings") / "inventory.yml"
    inventory.touch(mode=0o600)  # it holds the lab's secrets
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    installed = RecordingsLab(lab, inventory, password)
    result = installed.cli("install", "--no-check", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for camera in lab.plan.pis[0].cameras:
        lab.wait_camera_lease(camera.name, timeout=90)
    return installed


def test_an_event_on_cam1_lands_on_the_pi_is_listed_and_plays(
    rec: RecordingsLab, tmp_path: Path
) -> None:
    lab = rec.lab
    pi = lab.plan.pis[0]
    # The FTP export, set through the Pi's proxy (read, merge, write, read back).
    result = rec.cli("camera", "ftp", "cam1", "on")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"to {pi.camera_gateway}:21 as cam-cam1" in result.stdout
    assert rec.ftp_password not in result.stdout + result.stderr

    event = rec.camera("cam1", "_emulator/event", "POST")
    assert event["result"] == "ftp-0", event
    stored = f"{RECORDINGS}/cam1/{event['file']}"
    size = lab.pi_exec("stat", "-c", "%s", stored).stdout.strip()
    assert int(size) == event["bytes"]

    listed = rec.cli("recordings", "list", "--camera", "cam1")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert Path(event["file"]).name in listed.stdout
    assert rec.ftp_password not in listed.stdout + listed.stderr

    if not browser_available():
        pytest.fail("chromium is missing (make deps)")
    login = ("admin", rec.web_password)
    with chromium(tmp_path / "profile", login=login) as browser:
        page = browser.new_page()
        page.goto(f"https://{pi.address}/")
        assert page.locator('[data-camera="cam2"] [data-role="recordings"]').count() == 0
        box = page.locator('[data-camera="cam1"] [data-role="recordings"]')
        box.locator("summary").click()
        clip = Path(event["file"]).name
        box.locator(f'li[data-clip="{clip}"] [data-role="rec-play"]').click(timeout=20000)
        player = '[data-camera="cam1"] [data-role="rec-player"]'
        page.wait_for_function(
            f"() => document.querySelector('{player}').currentTime > 0.5", timeout=20000
        )
        first = float(page.locator(player).evaluate("v => v.currentTime"))
        page.wait_for_function(
            f"() => document.querySelector('{player}').currentTime > {first + 1}", timeout=15000
        )


def test_cam2_without_recordings_cannot_reach_ftp_at_all(rec: RecordingsLab) -> None:
    lab = rec.lab
    pi = lab.plan.pis[0]
    cam2 = lab.plan.camera("cam2")
    # A TCP connection to the FTP port from cam2's namespace does not open.
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(('{pi.camera_gateway}', 21), timeout=3).close()\n"
        "except OSError as err:\n"
        "    sys.exit(f'refused: {err}')\n"
        "print('connected')\n"
    )
    result = lab.run_in(cam2.netns, sys.executable, "-c", probe, timeout=20, check=False)
    assert "connected" not in result.stdout and "refused" in result.stderr, result
    # Not even with cam1's login: cam2's emulator, told to upload as cam1, gets a network error.
    config = {
        "on_off": 1,
        "server": pi.camera_gateway,
        "port": 21,
        "user": "cam-cam1",
        "password": rec.ftp_password,
        "path": "/",
    }
    secure_id = rec.secure_ids["cam2"]
    query = quote(json.dumps(config), safe="")
    answer = rec.camera("cam2", f"{secure_id}/command/ftp_set_config?config={query}", "POST")
    assert answer == {"status": "ok"}
    event = rec.camera("cam2", "_emulator/event", "POST")
    assert event["result"] == "ftp-3" and event["stage"] == "connect", event
    found = lab.pi_exec("find", f"{RECORDINGS}", "-name", f"*{event['event']}*", check=False)
    assert found.stdout.strip() == ""
