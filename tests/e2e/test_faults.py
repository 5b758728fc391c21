"""Faults on the provisioned lab Pi: a killed service comes back by itself and `check` passes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.handle import Lab
from tests.e2e.test_safety import install, unit_state, write_inventory

pytestmark = pytest.mark.lab

# Every long-running service of the appliance (issue 12: nginx, dnsmasq, chrony, the log daemon,
# and the web role's login ban).
SERVICES = [
    "nginx.service",
    "dnsmasq.service",
    "chrony.service",
    "ulogd2.service",
    "fail2ban.service",
]


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lab, Path]:
    """The lab Pi provisioned once for the module (a re-run when another module did it)."""
    lab = lab_session.ensure_up()
    inventory = write_inventory(lab, tmp_path_factory.mktemp("faults") / "inventory.yml")
    result = install(lab, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return lab, inventory


def restarts(lab: Lab, unit: str) -> int:
    return int(lab.pi_exec("systemctl", "show", "-P", "NRestarts", unit).stdout.strip())


@pytest.mark.parametrize("unit", SERVICES)
def test_a_killed_service_comes_back_and_check_passes(
    installed: tuple[Lab, Path], unit: str
) -> None:
    lab, inventory = installed
    before = unit_state(lab, unit)
    assert before["ActiveState"] == "active" and before["MainPID"] != "0", before
    restarts_before = restarts(lab, unit)
    lab.pi_exec("kill", "-KILL", before["MainPID"])
    deadline = time.monotonic() + 30
    now = before
    while time.monotonic() < deadline:
        now = unit_state(lab, unit)
        if now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]):
            break
        time.sleep(0.5)
    assert now["ActiveState"] == "active" and now["MainPID"] != before["MainPID"], now
    # systemd brought it back (its Restart=), nobody else.
    assert restarts(lab, unit) == restarts_before + 1
    check = lab.cli("check", "-i", str(inventory), "--wait", "30")
    assert check.returncode == 0, check.stdout + check.stderr
