"""The main job on the lab, as `make demo` runs it: install (ending with check), every service up, a second run changes nothing, `--diff` never shows a secret."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from appliance.lab.handle import Lab

pytestmark = pytest.mark.lab

SERVICES = ("hostapd", "dnsmasq", "chrony", "nginx", "systemd-networkd")


def _recap_changed(result: subprocess.CompletedProcess[str]) -> int:
    counts = re.findall(r"^\s+\S+\s+\S+\s+ok=\d+ changed=(\d+)", result.stdout, re.M)
    assert counts, result.stdout[-3000:] + result.stderr[-2000:]
    return sum(int(n) for n in counts)


@pytest.fixture(scope="module")
def installed(lab_session) -> Lab:  # type: ignore[no-untyped-def]
    lab = lab_session.ensure_up()
    result = lab.install()  # exactly the README's main job: install, then check
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"2/2 cameras pass", result.stdout), result.stdout[-2000:]
    return lab


def test_every_managed_service_is_active(installed: Lab) -> None:
    for unit in SERVICES:
        state = installed.pi_exec("systemctl", "is-active", unit).stdout.strip()
        assert state == "active", f"{unit}: {state}"


def test_second_install_changes_nothing(installed: Lab) -> None:
    result = installed.install("--no-check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = [
        line.strip() for line in result.stdout.splitlines() if line.strip().startswith("changed")
    ]
    assert _recap_changed(result) == 0, "tasks that changed on the second run:\n" + "\n".join(
        changed
    )


def test_diff_shows_the_change_but_never_a_secret(installed: Lab, tmp_path: Path) -> None:
    original = yaml.safe_load(installed.inventory_path.read_text())
    group = original["all"]["children"]["appliances"]["vars"]
    old_id = group["cameras"][0]["secure_id"]
    new_id = "5" * 32
    group["cameras"][0]["secure_id"] = new_id
    edited = tmp_path / "inventory.yml"
    edited.write_text(yaml.safe_dump(original, sort_keys=False))
    edited.chmod(0o600)
    try:
        result = installed.cli(
            "install", "-i", str(edited), "--diff", "--tags", "web", "--no-check"
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "nginx.conf" in output and "********" in output  # the diff is there, masked
        assert re.search(r"^[-+].*\*{8}", output, re.M), output[-3000:]
        assert old_id not in output and new_id not in output
        assert group["wifi"]["passphrase"] not in output
    finally:
        restore = installed.install("--tags", "web", "--no-check")
        assert restore.returncode == 0, restore.stdout[-2000:]
