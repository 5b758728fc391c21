"""Re-provisioning that cannot break the appliance, on the booted lab Pi: a file its service's
checker rejects never goes live, and the service keeps running on the old one."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab


def write_inventory(lab: Lab, path: Path, **extra: Any) -> Path:
    """The lab's inventory plus EXTRA group variables, written private (it holds secrets)."""
    data = copy.deepcopy(lab.inventory)
    variables = data["all"]["children"]["appliances"]["vars"]
    variables["web_hlsjs_src"] = str(fetch_hlsjs())  # the lab Pi has no route to a download
    variables.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def install(lab: Lab, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return lab.cli("install", "-i", str(inventory), "--no-check", *extra)


def unit_state(lab: Lab, unit: str) -> dict[str, str]:
    """MainPID, InvocationID and ActiveState: a restart changes the first two."""
    out = lab.pi_exec(
        "systemctl", "show", "-p", "MainPID", "-p", "InvocationID", "-p", "ActiveState", unit
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def live_digest(lab: Lab, path: str) -> str:
    return lab.pi_exec("sha256sum", path).stdout.split()[0]


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lab, Path]:
    """The lab Pi provisioned with every role from the lab's inventory, once per module (each
    test puts back what it changes: a full install is most of a lab test's time)."""
    lab = lab_session.ensure_up()
    inventory = write_inventory(lab, tmp_path_factory.mktemp("safety") / "good" / "inventory.yml")
    result = install(lab, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return lab, inventory


# Per service: the knob that feeds it a value the inventory checks let through, the live
# file, the unit, and what the service's own checker says about it.
REJECTED = {
    "hostapd": (
        {"access_point_test_inject_line": "wpa_passphrase=short"},
        "access_point",
        "/etc/hostapd/hostapd.conf",
        "hostapd.service",
        "hostapd rejects hostapd.conf: Line ",
        "invalid WPA passphrase length 5",
    ),
    "dnsmasq": (
        {"dhcp_test_inject_line": "dhcp-range=bogus"},
        "dhcp",
        "/etc/dnsmasq.d/cameras.conf",
        "dnsmasq.service",
        "dnsmasq: bad dhcp-range at line ",
        "of /etc/dnsmasq.d/cameras.conf",
    ),
    "chrony": (
        {"ntp_test_inject_line": "allow 999.1.1.0/24"},
        "ntp",
        "/etc/chrony/chrony.conf",
        "chrony.service",
        "Fatal error : Could not parse allow directive at line ",
        "in file /etc/chrony/chrony.conf",
    ),
    "nft": (
        {"firewall_test_inject_line": "bogus-statement"},
        "firewall",
        "/etc/presence-appliance/firewall.nft",
        "presence-firewall.service",
        "Error: syntax error",
        "/etc/presence-appliance/firewall.nft:",
    ),
    "nginx": (
        # A port nginx cannot use: the schema has no say over this role knob.
        {"web_camera_port": 99999},
        "web",
        "/etc/nginx/nginx.conf",
        "nginx.service",
        "[emerg] ",
        'invalid port in upstream "',
    ),
}


@pytest.mark.parametrize("service", sorted(REJECTED))
def test_a_file_its_checker_rejects_never_goes_live(
    installed: tuple[Lab, Path], tmp_path: Path, service: str
) -> None:
    lab, _ = installed
    knob, role, path, unit, reason, detail = REJECTED[service]
    before_file = live_digest(lab, path)
    before_unit = unit_state(lab, unit)
    assert before_unit["ActiveState"] == "active", before_unit
    broken = write_inventory(lab, tmp_path / "broken" / "inventory.yml", **knob)

    result = install(lab, broken, "--tags", role)

    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    # One line: the Pi, the task, the live file, the checker's own reason.
    assert errors[0].startswith(f"error: {lab.plan.pis[0].host}: {role} : "), errors[0]
    assert f"{path} rejected by its checker, the live file is unchanged: " in errors[0]
    assert reason in errors[0] and detail in errors[0], errors[0]
    assert "ansible-tmp" not in errors[0]
    secrets = lab.inventory["all"]["children"]["appliances"]["vars"]
    assert secrets["wifi"]["passphrase"] not in result.stdout + result.stderr
    assert live_digest(lab, path) == before_file
    assert unit_state(lab, unit) == before_unit  # same process, never restarted


def test_dnsmasq_handler_retests_the_whole_configuration(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    """cameras.conf passes its own check, but another drop-in breaks dnsmasq's whole
    configuration: the handler's test stops the restart, dnsmasq keeps running."""
    lab, good = installed
    drop_in = "/etc/dnsmasq.d/zz-lab-test-broken.conf"
    before = unit_state(lab, "dnsmasq.service")
    data = copy.deepcopy(lab.inventory)
    group = data["all"]["children"]["appliances"]["vars"]
    prefix = group["camera_network"]["address"].rsplit(".", 1)[0]
    extra = {
        "name": "extra",
        "mac": "70:ee:50:00:64:01",
        "ip": f"{prefix}.95",
        "secure_id": "0123456789abcdef0123456789abcdef",
        "cloud": "block",
    }
    edited = write_inventory(
        lab, tmp_path / "edited" / "inventory.yml", cameras=[*group["cameras"], extra]
    )
    lab.pi_exec("sh", "-c", f"echo 'dhcp-range=bogus' > {drop_in}")
    try:
        result = install(lab, edited, "--tags", "dhcp")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "dhcp : Test dnsmasq's configuration" in result.stderr, result.stderr
        assert "bad dhcp-range" in result.stderr, result.stderr
        assert unit_state(lab, "dnsmasq.service") == before
    finally:
        lab.pi_exec("rm", "-f", drop_in)
        restore = install(lab, good, "--tags", "dhcp")
        assert restore.returncode == 0, restore.stdout + restore.stderr


def test_rollback_restores_the_previous_files_and_restarts_only_what_changed(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, good = installed
    chrony_conf = "/etc/chrony/chrony.conf"
    before = live_digest(lab, chrony_conf)
    upstreams = lab.inventory["all"]["children"]["appliances"]["vars"]["ntp_upstream"]
    # An address from this test file's block: nothing answers there, chrony just tries.
    edited = write_inventory(
        lab, tmp_path / "edited" / "inventory.yml", ntp_upstream=[*upstreams, "10.203.224.123"]
    )
    try:
        result = install(lab, edited, "--tags", "ntp")
        assert result.returncode == 0, result.stdout + result.stderr
        assert live_digest(lab, chrony_conf) != before
        units = ("hostapd.service", "dnsmasq.service", "chrony.service", "nginx.service")
        after_edit = {unit: unit_state(lab, unit) for unit in units}

        listing = lab.cli("rollback", "--list", "-i", str(edited))
        assert listing.returncode == 0, listing.stdout + listing.stderr
        newest = listing.stdout.splitlines()[1].split()
        assert newest[0][:8].isdigit() and "differ" in listing.stdout, listing.stdout
        backups = lab.pi_exec("stat", "-c", "%a %U", "/var/backups/presence-appliance").stdout
        assert backups.split() == ["700", "root"]

        rolled = lab.cli("rollback", "-i", str(edited))
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert f"restored {chrony_conf} from {newest[0]}" in rolled.stdout, rolled.stdout
        assert live_digest(lab, chrony_conf) == before
        after_rollback = {unit: unit_state(lab, unit) for unit in units}
        restarted = {u for u in units if after_rollback[u] != after_edit[u]}
        assert restarted == {"chrony.service"}, restarted
        assert after_rollback["chrony.service"]["ActiveState"] == "active"
        # The rollback kept what it replaced: `rollback` again undoes it.
        undo = lab.cli("rollback", "-i", str(edited))
        assert undo.returncode == 0, undo.stdout + undo.stderr
        assert live_digest(lab, chrony_conf) != before
    finally:
        restore = install(lab, good, "--tags", "ntp")
        assert restore.returncode == 0, restore.stdout + restore.stderr
    assert live_digest(lab, chrony_conf) == before
