"""Two lab Pis provisioned by one `install` (Ansible's forks): a failure on one neither stops
nor harms the other, the summary names it in one line, and the healthy Pi's cameras are checked."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab

# The two-Pi shape of tests/e2e/test_lab.py's own two-Pi test: run with the other tests that
# take the lab down and up, so the one-Pi modules keep their lab.
pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]

# A value the inventory checks let through but chrony's own parser rejects (the ntp role's
# test-only knob, as in tests/e2e/test_safety.py), for lab-pi2 only.
REJECTED_LINE = "allow 999.1.1.0/24"
SERVICES = ("hostapd", "dnsmasq", "chrony", "nginx", "presence-firewall")


def pi2_broken_inventory(lab: Lab, path: Path) -> Path:
    data = copy.deepcopy(lab.inventory)
    hosts = data["all"]["children"]["appliances"]["hosts"]
    hosts["lab-pi2"]["ntp_test_inject_line"] = REJECTED_LINE
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_one_install_provisions_two_pis_and_a_failure_on_one_spares_the_other(
    lab_session: Any, tmp_path: Path
) -> None:
    lab = lab_session.ensure_up(pis=2, cameras=1)
    inventory = pi2_broken_inventory(lab, tmp_path / "inventory.yml")
    pi1, pi2 = lab.plan.pis
    assert [pi1.host, pi2.host] == ["lab-pi1", "lab-pi2"]
    chrony_conf = "/etc/chrony/chrony.conf"
    pi2_before = lab.pi_exec("sha256sum", chrony_conf, pi="pi2", check=False).stdout

    result = lab.cli("install", "-i", str(inventory), timeout=1500)  # with its camera check

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert "Traceback" not in output
    recap = dict(re.findall(r"^  (lab-pi\d)\s+(ok|FAILED)\s+ok=\d+", result.stdout, re.M))
    assert recap == {"lab-pi1": "ok", "lab-pi2": "FAILED"}, result.stdout[-3000:]
    assert re.search(
        r"^  lab-pi1\s+ok\s+ok=\d+ changed=\d+ failed=0 unreachable=0", result.stdout, re.M
    )
    # One line per failure, last: the Pi, the task, the file and chrony's own reason.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: lab-pi2: ntp : "), errors[0]
    assert f"{chrony_conf} rejected by its checker, the live file is unchanged: " in errors[0]
    assert "Could not parse allow directive" in errors[0], errors[0]
    assert result.stderr.rstrip().endswith(errors[0]), result.stderr[-2000:]
    # The healthy Pi's cameras were checked through its proxy, and passed; pi2's were not.
    assert "Checking the cameras of lab-pi1 (provisioned; not of lab-pi2, which failed):" in (
        result.stdout
    ), result.stdout[-3000:]
    checked = result.stdout.split("Checking the cameras of", 1)[1]
    for cam in pi1.cameras:
        assert re.search(rf"^\W*{cam.name}\W+lab-pi1\W.*\bpass\b", checked, re.M), checked
    for cam in pi2.cameras:
        assert not re.search(rf"\b{cam.name}\b", checked), checked
    count = len(pi1.cameras)
    assert re.search(rf"^{count}/{count} cameras pass \(through the Pi's proxy", checked, re.M)

    # pi1 is whole: every service running, on configs their checkers accept.
    states = lab.pi_exec("systemctl", "is-active", *SERVICES, pi="pi1", check=False).stdout
    assert states.split() == ["active"] * len(SERVICES), states
    for checker in (("chronyd", "-p"), ("dnsmasq", "--test"), ("nginx", "-t")):
        accepted = lab.pi_exec(*checker, pi="pi1", check=False)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # And later, on its own: `check --limit` tests the healthy Pi's cameras, and they pass.
    alone = lab.cli("check", "-i", str(inventory), "--limit", pi1.host, "--json", timeout=300)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    report = json.loads(alone.stdout)
    assert [(c["camera"], c["verdict"]) for c in report["cameras"]] == [
        (cam.name, "pass") for cam in pi1.cameras
    ], report
    # pi2: the rejected file never went live.
    assert REJECTED_LINE not in lab.pi_exec("cat", chrony_conf, pi="pi2").stdout
    assert lab.pi_exec("sha256sum", chrony_conf, pi="pi2", check=False).stdout == pi2_before
