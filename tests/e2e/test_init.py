"""`init --answers` against the lab Pi, then `install` with what it wrote (no vault flag
anywhere: the commands find init's vault password file), then a camera that joined the
Wi-Fi taken in with `camera add --from-lease`.
"""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.doctor_ssh import WRAPPER
from appliance.init_preflight import SCRIPT as PREFLIGHT
from appliance.lab.handle import Lab
from appliance.lab.plan import LAN_NS, WAN_NTP
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "doctor"


def _secure_ids(lab: Lab) -> dict[str, str]:
    group = lab.inventory["all"]["children"]["appliances"]["vars"]
    return {c["name"]: c["secure_id"] for c in group["cameras"]}


def _gethomedata(lab: Lab, names: list[str]) -> dict[str, Any]:
    """A saved /api/gethomedata answer naming the lab's cameras (secure ids in vpn_url)."""
    ids = _secure_ids(lab)
    cameras = [
        {
            "id": lab.plan.camera(name).mac,
            "type": "NOC",
            "name": f"Lab {name}",
            "status": "on",
            "vpn_url": f"https://vpn.example.net/restricted/10.255.1.{i}/{ids[name]}/tok,,",
        }
        for i, name in enumerate(names, start=2)
    ]
    return {"body": {"homes": [{"id": "h1", "name": "Lab", "cameras": cameras}]}}


def _record_preflight(lab: Lab, host: dict[str, Any]) -> None:
    pi = lab.plan.pis[0]
    remote = shlex.join(["sh", "-c", WRAPPER, "sh", PREFLIGHT])
    cmd = ["ip", "netns", "exec", LAN_NS, "ssh", "-o", "BatchMode=yes", "-i", str(lab.ssh_key)]
    cmd += shlex.split(host["ansible_ssh_common_args"])
    cmd += ["-l", "pi", "--", pi.address, remote]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lab-pi.preflight.txt").write_text(result.stdout)


def _wait_lease_ip(lab: Lab, name: str, ip: str, timeout: float = 200) -> None:
    """The lab camera renews at most every 2 min: wait (bounded) until it holds IP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = lab.camera_lease(name)
        if lease and lease.get("ip") == ip:
            return
        time.sleep(1)
    raise TimeoutError(f"camera {name}: not at {ip} within {timeout:.0f} s")


def test_init_then_install_then_camera_from_lease(lab: Lab, tmp_path: Path) -> None:
    pi = lab.plan.pis[0]
    first, second = lab.plan.cameras[0], lab.plan.cameras[1]
    host = dict(lab.inventory["all"]["children"]["appliances"]["hosts"][pi.host])
    _record_preflight(lab, host)
    saved = tmp_path / "gethomedata.json"
    saved.write_text(json.dumps(_gethomedata(lab, [first.name])))
    answers = {
        "pi_address": pi.address,
        "ssh_user": "pi",
        "ssh_key": str(lab.ssh_key),
        "country": "de",
        "cameras_from": "file",
        "gethomedata": str(saved),
        # The lab's addresses (10.203.0.0/16 only) and its Pi without internet access.
        "camera_network": f"{pi.camera_gateway}/24",
        "ntp_upstream": [WAN_NTP],
        "host_vars": {
            k: host[k]
            for k in ("ansible_ssh_common_args", "ansible_python_interpreter")
            if k in host
        },
        "group_vars": {
            "appliance_lab": True,
            "appliance_apt_update": False,
            "web_hlsjs_src": str(fetch_hlsjs()),
        },
    }
    answers_file = tmp_path / "answers.yml"
    answers_file.write_text(yaml.safe_dump(answers))
    inventory = tmp_path / "site" / "inventory.yml"

    result = lab.cli("init", "--answers", str(answers_file), "--yes", "-i", str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for line in ("ok    ssh", "ok    sudo", "ok    os", "ok    wifi"):
        assert line in result.stdout, result.stdout
    vault_file = inventory.parent / ".presence-appliance" / "vault-password"
    assert stat.S_IMODE(inventory.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault_file.stat().st_mode) == 0o600
    assert str(vault_file) in result.stdout
    text = inventory.read_text()
    secret = _secure_ids(lab)[first.name]
    assert secret not in text and secret not in result.stdout
    passphrase = result.stdout.split("passphrase: ", 1)[1].split()[0]
    # Vaulted: the Wi-Fi passphrase, the web password, the camera's secure id and FTP password.
    assert passphrase not in text and text.count("!vault |") == 4
    assert f'mac: "{first.mac}"' in text and f"ip: {first.ip}" in text

    # Again without --force: refused, nothing changed.
    again = lab.cli("init", "--answers", str(answers_file), "--yes", "-i", str(inventory))
    assert again.returncode != 0 and "--force" in again.stderr
    assert inventory.read_text() == text

    valid = lab.cli("validate", "-i", str(inventory))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    installed = lab.cli("install", "-i", str(inventory), timeout=900)
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-2000:]
    assert "cameras pass" in installed.stdout

    # The second camera is on the Wi-Fi (a dynamic lease) but not in the inventory.
    lab.wait_camera_lease(second.name)
    doctor = lab.cli("doctor", "--json", "-i", str(inventory))
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["appliances"][0]["checks"]}
    assert checks["leases:unknown"]["status"] == "warn", checks
    assert f"--from-lease {second.mac}" in checks["leases:unknown"]["fix"]

    added = lab.cli(
        "camera",
        "add",
        "--from-lease",
        second.mac,
        "--ip",
        second.ip,
        "--secure-id",
        _secure_ids(lab)[second.name],
        "-i",
        str(inventory),
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"added camera {second.name}" in added.stdout  # its DHCP host name
    assert _secure_ids(lab)[second.name] not in inventory.read_text()
    assert inventory.read_text().count("!vault |") == 5  # + the new camera's secure id

    again = lab.cli("install", "-i", str(inventory), "--no-check", timeout=900)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    _wait_lease_ip(lab, second.name, second.ip)
    check = lab.cli("check", "--json", "-i", str(inventory))
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(c["camera"] for c in json.loads(check.stdout)["cameras"]) == sorted(
        [f"lab-{first.name}", second.name]
    )
