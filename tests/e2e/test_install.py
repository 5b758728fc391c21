"""The main job on the lab, as `make demo` runs it: install (ending with check), every service up, a second run changes nothing, `--diff` never shows a secret."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab

pytestmark = pytest.mark.lab

SERVICES = ("hostapd", "dnsmasq", "chrony", "nginx", "systemd-networkd")


def _recap_changed(result: subprocess.CompletedProcess[str]) -> int:
    counts = re.findall(r"^\s+\S+\s+\S+\s+ok=\d+ changed=(\d+)", result.stdout, re.M)
    assert counts, result.stdout[-3000:] + result.stderr[-2000:]
    return sum(int(n) for n in counts)


def _secrets(inventory: dict[str, Any]) -> list[str]:
    """Every secret value of a lab inventory: Wi-Fi passphrase, web passwords, secure ids."""
    group = inventory["all"]["children"]["appliances"]["vars"]
    found = [group["wifi"]["passphrase"]]
    found += [user["password"] for user in group["web"]["users"] if "password" in user]
    found += [camera["secure_id"] for camera in group["cameras"]]
    assert all(len(value) >= 8 for value in found)  # long enough not to appear by chance
    return found


def _leaked(result: subprocess.CompletedProcess[str], secrets: list[str]) -> list[str]:
    """The secrets (shown by position, never by value) that appear in the output."""
    output = result.stdout + result.stderr
    return [f"secret #{i}" for i, value in enumerate(secrets) if value in output]


@pytest.fixture(scope="module")
def installed(lab_session) -> Lab:  # type: ignore[no-untyped-def]
    lab = lab_session.ensure_up()
    result = lab.install()  # exactly the README's main job: install, then check
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"2/2 cameras pass", result.stdout), result.stdout[-2000:]
    assert _leaked(result, _secrets(lab.inventory)) == []
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


def test_install_and_install_v_print_no_secret_when_secrets_change(
    installed: Lab, tmp_path: Path
) -> None:
    """A full run in which the tasks that carry the passphrase and the web password do
    change (new values), with and without -v: neither the old nor the new values show."""
    original = installed.inventory
    old = _secrets(original)
    edited = yaml.safe_load(installed.inventory_path.read_text())
    group = edited["all"]["children"]["appliances"]["vars"]
    group["wifi"]["passphrase"] = "fresh-passphrase-" + "7" * 12
    group["web"]["users"][0]["password"] = "fresh-password-" + "8" * 12
    new = _secrets(edited)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    path.chmod(0o600)
    try:
        for flags in ((), ("-v",)):
            result = installed.cli("install", "-i", str(path), *flags)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
            assert _recap_changed(result) > 0  # the secret-bearing tasks really ran
            assert _leaked(result, old + new) == [], flags
            # the values went live without being shown: the new passphrase is on the Pi
            conf = installed.pi_exec("cat", "/etc/hostapd/hostapd.conf").stdout
            assert f"wpa_passphrase={group['wifi']['passphrase']}" in conf
            # the next run (-v) changes it back, so it too carries the secrets
            group["wifi"]["passphrase"] = original["all"]["children"]["appliances"]["vars"]["wifi"][
                "passphrase"
            ]
            path.write_text(yaml.safe_dump(edited, sort_keys=False))
    finally:
        restore = installed.install("-v")
        assert restore.returncode == 0, restore.stdout[-2000:]
        assert _leaked(restore, old + new) == []
