"""Faults on the provisioned lab Pi: a killed service comes back by itself and `check` passes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.lab.handle import Lab
from tests.e2e.test_safety import install, unit_state, write_inventory

pytestmark = pytest.mark.lab


@pytest.fixture
def installed(lab: Lab, tmp_path: Path) -> tuple[Lab, Path]:
    inventory = write_inventory(lab, tmp_path / "inventory.yml")
    result = install(lab, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return lab, inventory


@pytest.mark.parametrize("unit", ["dnsmasq.service", "chrony.service"])
def test_a_killed_service_comes_back_and_check_passes(
    installed: tuple[Lab, Path], unit: str
) -> None:
    lab, inventory = installed
    before = unit_state(lab, unit)
    assert before["ActiveState"] == "active" and before["MainPID"] != "0", before
    lab.pi_exec("kill", "-KILL", before["MainPID"])
    deadline = time.monotonic() + 30
    now = before
    while time.monotonic() < deadline:
        now = unit_state(lab, unit)
        if now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]):
            break
        time.sleep(0.5)
    assert now["ActiveState"] == "active" and now["MainPID"] != before["MainPID"], now
    restarts = lab.pi_exec("systemctl", "show", "-p", "NRestarts", unit).stdout.strip()
    assert restarts != "NRestarts=0", restarts  # systemd brought it back, nobody else
    check = lab.cli("check", "-i", str(inventory), "--wait", "30")
    assert check.returncode == 0, check.stdout + check.stderr
