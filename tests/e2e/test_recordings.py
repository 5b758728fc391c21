"""Recordings on the booted lab, end to end (one install, recordings on for cam1 only).

The recordings live on a file system of their own: a 96 MB tmpfs mounted on the Pi before the
install (`require_mount: true`, a 16 MB quota, 64 MB kept free), so the disk can be filled.

`camera ftp cam1 on` sets cam1's FTP export through the Pi's proxy; an event on cam1's
emulator uploads a real MP4 over passive FTP to the Pi; the file lands in cam1's folder,
`recordings list` lists it, Chromium plays it through the dashboard, and `doctor` shows what
cam1 did on the FTP server. cam2 has no `recordings`: it cannot reach the Pi's FTP server at
all, not even with cam1's login. 100 uploads, then the prune timer's own service: the quota
holds, oldest first, each deletion in the journal. A full recordings disk: the upload is
refused, the Pi's other services run on, `check` passes, the dashboard serves, and the prune
frees the space. Last, the disk unmounted under a running vsftpd: vsftpd stops, nothing lands
on the root file system, doctor says why, and install refuses the unmounted path.

The loads come from a real FTP client (Python's ftplib, passive, as the export) in cam1's
namespace with cam1's login: 100 emulator events would take longer for the same uploads.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
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
STORAGE_MB = 96  # the tmpfs the recordings live on in this module
QUOTA_MB, MIN_FREE_MB = 16, 64  # the schema's smallest values
MB = 1024 * 1024
FTP_CLIENT = Path(__file__).resolve().parents[1] / "roles" / "ftp_client.py"


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

    def ftp(self, *action: str) -> dict[str, Any]:
        """The FTP client in cam1's namespace, logged in as cam1 (passive, as an export)."""
        lab = self.lab
        gateway = lab.plan.pis[0].camera_gateway
        argv = [sys.executable, str(FTP_CLIENT), gateway, "cam-cam1", self.ftp_password, *action]
        result = lab.run_in(lab.plan.camera("cam1").netns, *argv, timeout=300)
        return json.loads(result.stdout)

    def stored(self) -> list[tuple[float, int, str]]:
        """cam1's files on the Pi as (upload time, size, path), oldest first."""
        listing = self.lab.pi_exec(
            "find", f"{RECORDINGS}/cam1", "-type", "f", "-printf", "%T@ %s %P\\n"
        ).stdout
        rows = [line.split(" ", 2) for line in listing.splitlines() if line.strip()]
        return sorted((float(t), int(size), path) for t, size, path in rows)

    def free_mb(self) -> float:
        free = self.lab.pi_exec("df", "-k", "--output=avail", RECORDINGS).stdout
        return int(free.split()[-1]) / 1024

    def doctor(self) -> dict[str, dict[str, str]]:
        result = self.cli("doctor", "--json")
        (pi,) = json.loads(result.stdout)["appliances"]
        return {c["name"]: c for c in pi["checks"]}

    def pruned(self, since: int) -> list[str]:
        """The prune service's journal lines since SINCE (unix time)."""
        # The service may have ended before journald stored its last lines: wait for them.
        self.lab.pi_exec("journalctl", "--sync")
        return self.lab.pi_exec(
            "journalctl", "-u", "presence-recordings-prune.service", "--since", f"@{since}",
            "-o", "cat", "--no-pager",
        ).stdout.splitlines()  # fmt: skip


def _in_pi_mounts(lab: Lab, *cmd: str) -> subprocess.CompletedProcess[str]:
    """CMD in the Pi's mount namespace with the host's capabilities (mounting a tmpfs)."""
    return subprocess.run(
        ["nsenter", "-t", str(lab.pi_leader()), "-m", "--", *cmd],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _cameras(data: dict[str, Any]) -> list[dict[str, Any]]:
    group = data["all"]["children"]["appliances"]
    cameras = list(group.get("vars", {}).get("cameras") or [])
    for host in (group.get("hosts") or {}).values():
        cameras += (host or {}).get("cameras") or []
    return cameras


@pytest.fixture(scope="module")
def rec(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingsLab]:
    """Every role applied once, with `recordings` on the Pi (on a 96 MB tmpfs of its own) and
    `recordings: true` for cam1. The tmpfs goes at the end (vsftpd and the timer stopped)."""
    lab = lab_session.ensure_up()
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["appliances"].setdefault("vars", {})
    group.setdefault("web_hlsjs_src", str(fetch_hlsjs()))
    group["recordings"] = {
        "path": RECORDINGS,
        "require_mount": True,
        "camera_quota_mb": QUOTA_MB,
        "min_free_mb": MIN_FREE_MB,
    }
    password = secrets.token_urlsafe(18)
    (cam1,) = [c for c in _cameras(data) if c["name"] == "cam1"]
    cam1.update(recordings=True, ftp_password=password)
    inventory = tmp_path_factory.mktemp("recordings") / "inventory.yml"
    inventory.touch(mode=0o600)  # it holds the lab's secrets
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    installed = RecordingsLab(lab, inventory, password)
    options = f"size={STORAGE_MB}m,mode=0751"
    mounted = _in_pi_mounts(
        lab, "sh", "-c", f"mkdir -p {RECORDINGS} && mount -t tmpfs -o {options} tmpfs {RECORDINGS}"
    )
    assert mounted.returncode == 0, mounted.stderr
    try:
        result = installed.cli("install", "--no-check", timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        for camera in lab.plan.pis[0].cameras:
            lab.wait_camera_lease(camera.name, timeout=90)
        yield installed
    finally:
        lab.pi_exec(
            "systemctl", "stop", "vsftpd.service", "presence-recordings-prune.timer", check=False
        )
        if _in_pi_mounts(lab, "mountpoint", "-q", RECORDINGS).returncode == 0:
            unmounted = _in_pi_mounts(lab, "umount", RECORDINGS)
            assert unmounted.returncode == 0, unmounted.stderr


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

    # What cam1 did, in doctor: its login and upload (cam2 records nothing: no line).
    checks = rec.doctor()
    assert re.match(r"24 h: [1-9][0-9]* logins, [1-9][0-9]* uploads", checks["ftp:cam1"]["message"])
    assert "ftp:cam2" not in checks
    storage = checks["recordings:storage"]
    assert storage["status"] == "ok" and "on its own file system" in storage["message"], storage

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
    # What each camera did, in `firewall`: cam2's tries are drops to the Pi; cam1 is in the
    # FTP table (its upload above), cam2 is not (it never reached the FTP server).
    view = rec.cli("firewall", "--json", "--limit", "0")
    assert view.returncode == 0, view.stdout + view.stderr
    data = json.loads(view.stdout)
    (fw,) = data["appliances"]
    drops = {c["name"]: c["drops"]["pi"] for c in fw["cameras"]}
    assert drops["cam2"] >= 1, drops
    (ftp,) = data["ftp"]
    assert list(ftp["cameras"]) == ["cam1"], ftp


def test_the_prune_keeps_the_quota_after_100_uploads(rec: RecordingsLab) -> None:
    since = int(time.time()) - 1
    # 100 uploads of 256 KB (25 MB) from cam1 against its 16 MB quota, as cam1 would export.
    up = rec.ftp("upload", "2026/11/29", "load", str(256 * 1024), "100")
    assert up.get("ok") and up["uploaded"] == 100, up
    loads = [f"2026/11/29/load-{i}.mp4" for i in range(100)]
    before = rec.stored()
    assert sum(size for _, size, _ in before) > QUOTA_MB * MB
    # The timer's own service, run now (the timer may also have run meanwhile: same service).
    rec.lab.pi_exec("systemctl", "start", "presence-recordings-prune.service", timeout=120)
    after = rec.stored()
    kept = sum(size for _, size, _ in after)
    assert kept <= QUOTA_MB * MB < kept + 256 * 1024
    # Oldest first: what is left is the newest uploads, in upload order.
    assert [path for _, _, path in after] == loads[len(loads) - len(after) :]
    deleted = {path for _, _, path in before} - {path for _, _, path in after}
    lines = [line for line in rec.pruned(since) if line.startswith("deleted cam1/")]
    logged = {line.split(" ", 2)[1].removeprefix("cam1/") for line in lines}
    assert deleted <= logged and not logged & {path for _, _, path in after}
    assert all(line.endswith(f"camera over its {QUOTA_MB} MB quota") for line in lines), lines


def test_a_full_recordings_disk_stops_nothing_else(rec: RecordingsLab) -> None:
    lab = rec.lab
    pi = lab.plan.pis[0]
    since = int(time.time()) - 1
    # Fill the disk through FTP: 4 MB uploads until one is refused, then 256 KB ones.
    for name, size in (("fill", 4 * MB), ("top", 256 * 1024)):
        full = rec.ftp("upload", "2026/11/30", name, str(size), "40")
        assert full["logged_in"] and not full["ok"], full
        assert full["error"][:3] in ("451", "452"), full  # refused with a reply, not a hang
        # The refused upload left nothing behind (delete_failed_uploads).
        cut = f"2026/11/30/{name}-{full['uploaded']}.mp4"
        assert cut not in {path for _, _, path in rec.stored()}
    assert rec.free_mb() < 1  # full
    # Every other service runs on; vsftpd too; check passes through the proxy.
    checks = rec.doctor()
    services = {n: c for n, c in checks.items() if n.startswith("service:")}
    assert {"service:dnsmasq", "service:chrony", "service:nginx", "service:hostapd",
            "service:vsftpd"} <= set(services)  # fmt: skip
    assert all(c["status"] == "ok" for c in services.values()), services
    assert checks["disk:root"]["status"] != "fail", checks["disk:root"]
    assert checks["recordings:storage"]["status"] == "warn", checks["recordings:storage"]
    assert "failed uploads" in checks["ftp:cam1"]["message"], checks["ftp:cam1"]
    check = rec.cli("check", "--wait", "30", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    # The dashboard serves, recordings box included.
    page = lab.run_in(
        "lan", "curl", "-sk", "-m", "15", "-o", "/dev/null", "-w", "%{http_code}",
        "-u", f"admin:{rec.web_password}", f"https://{pi.address}/recordings/cam1/2026/11/30/",
    )  # fmt: skip
    assert page.stdout == "200", page
    # The prune (the timer's service) frees the space: back under the quota, min_free_mb free.
    rec.lab.pi_exec("systemctl", "start", "presence-recordings-prune.service", timeout=120)
    assert rec.free_mb() >= MIN_FREE_MB
    assert sum(size for _, size, _ in rec.stored()) <= QUOTA_MB * MB
    assert any(line.startswith("deleted cam1/2026/11/30/fill-0.mp4") for line in rec.pruned(since))
    # And the next upload lands.
    again = rec.ftp("upload", "2026/11/30", "after", str(MB), "1")
    assert again.get("ok"), again


def test_an_unmounted_disk_stops_the_ftp_server(rec: RecordingsLab) -> None:
    """Last in this module: it takes the recordings' file system away."""
    lab = rec.lab
    assert lab.pi_exec("systemctl", "is-active", "vsftpd.service").stdout.strip() == "active"
    unmounted = _in_pi_mounts(lab, "umount", RECORDINGS)
    assert unmounted.returncode == 0, unmounted.stderr
    deadline = time.monotonic() + 30
    while (state := _unit_state(lab, "vsftpd.service")) in ("active", "deactivating"):
        assert time.monotonic() < deadline, f"vsftpd still {state} 30 s after the umount"
        time.sleep(0.5)
    attempt = rec.ftp("upload", "2026/12/01", "lost", "1000", "1")
    assert attempt["connected"] is False, attempt
    left = lab.pi_exec("find", RECORDINGS, "-mindepth", "1").stdout
    assert left.strip() == "", left  # nothing landed on the root file system
    storage = rec.doctor()["recordings:storage"]
    assert storage["status"] == "fail" and "not a mount point" in storage["message"], storage
    # And install refuses to set up recordings there (before touching anything).
    again = rec.cli("install", "--no-check", "--tags", "recordings", timeout=300)
    assert again.returncode != 0 and "is not a mount point" in again.stdout + again.stderr, again
    assert _unit_state(lab, "vsftpd.service") != "active"


def _unit_state(lab: Lab, unit: str) -> str:
    return lab.pi_exec("systemctl", "is-active", unit, check=False).stdout.strip()
