"""The access_point role's hostapd checker (its `validate:`): the real hostapd parse, no radio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.roles.conftest import REPO, load_scenario, render_inventory, write_inventory

CHECKER = REPO / "roles" / "access_point" / "files" / "hostapd_check.py"
SCENARIOS = ("ap_isolate", "vlan_per_camera", "band5_wpa3")


def check(kind: str, path: Path, rendered: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the checker as `validate:` does. With RENDERED, its etc/hostapd is bind-mounted over
    /etc/hostapd in a private mount namespace, so the file's absolute vlan_file path resolves."""
    argv = ["python3", str(CHECKER), kind, str(path)]
    if rendered is not None:
        script = f'mount --bind "{rendered}/etc/hostapd" /etc/hostapd && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def render(tmp_path: Path, scenario: str, **extra: object) -> Path:
    variables = load_scenario(scenario)
    variables.update(extra)
    inventory = write_inventory(variables, tmp_path / "inventory.yml")
    return render_inventory(inventory, tmp_path / "out", roles=("access_point",))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_checker_accepts_every_rendered_file(scenario: str, tmp_path: Path) -> None:
    out = render(tmp_path, scenario)
    conf = out / "etc/hostapd/hostapd.conf"
    result = check("conf", conf, rendered=out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hostapd accepts hostapd.conf" in result.stdout
    if scenario == "vlan_per_camera":
        for kind, name in (("vlan", "hostapd.vlan"), ("wpa_psk", "hostapd.wpa_psk")):
            result = check(kind, out / "etc/hostapd" / name)
            assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("wpa_passphrase=short", "invalid WPA passphrase length 5"),
        ("hw_mode=q", "unknown hw_mode 'q'"),
        ("rsn_pairwise=WEP", "invalid cipher 'WEP'"),
        ("no_such_setting=1", "unknown configuration item 'no_such_setting'"),
    ],
)
def test_checker_rejects_what_hostapd_rejects_in_one_line(
    tmp_path: Path, line: str, message: str
) -> None:
    # The role's test-only knob injects the line: it passes the inventory checks.
    out = render(tmp_path, "ap_isolate", access_point_test_inject_line=line)
    result = check("conf", out / "etc/hostapd/hostapd.conf", rendered=out)
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("hostapd rejects hostapd.conf: Line "), first
    assert message in first
    assert "errors found" in first  # hostapd's own count, on the same line


def test_checker_never_prints_the_passphrase(tmp_path: Path) -> None:
    variables = load_scenario("ap_isolate")
    passphrase = variables["wifi"]["passphrase"]
    # hostapd echoes an invalid PSK back ("Invalid PSK '...'"): the checker masks it.
    bad_psk = "0123456789abcdefXYZ"
    out = render(
        tmp_path,
        "ap_isolate",
        access_point_test_inject_line=f"wpa_psk={bad_psk}",
    )
    result = check("conf", out / "etc/hostapd/hostapd.conf", rendered=out)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Invalid PSK" in output
    assert bad_psk not in output and passphrase not in output


def test_checker_reads_the_vlan_file_with_hostapd(tmp_path: Path) -> None:
    vlan = tmp_path / "hostapd.vlan"
    vlan.write_text("* \n")
    result = check("vlan", vlan)
    assert result.returncode == 1
    assert "hostapd rejects the VLAN file: Invalid VLAN ifname at line 1" in result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("vlanid=111 70:ee:50:00:00:01 short", "line 2: the passphrase must be 8-63"),
        ("vlanid=111 70:ee:50:00:00 correct-horse", "line 2: invalid MAC address"),
        ("vlan=111 70:ee:50:00:00:01 correct-horse", "line 2: unrecognised 'vlan'"),
        ("vlanid=x 70:ee:50:00:00:01 correct-horse", "line 2: vlanid must be a number"),
        ("vlanid=111 70:ee:50:00:00:01", "line 2: no passphrase after the MAC address"),
    ],
)
def test_checker_applies_hostapds_wpa_psk_rules(tmp_path: Path, line: str, message: str) -> None:
    psk = tmp_path / "hostapd.wpa_psk"
    psk.write_text(f"# header\n{line}\n")
    result = check("wpa_psk", psk)
    assert result.returncode == 1
    assert message in result.stderr
    assert "correct-horse" not in result.stderr


def test_checker_usage_and_unreadable_file(tmp_path: Path) -> None:
    usage = subprocess.run(
        ["python3", str(CHECKER), "nonsense"], capture_output=True, text=True, timeout=10
    )
    assert usage.returncode == 2 and "usage:" in usage.stderr
    missing = check("conf", tmp_path / "missing.conf")
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_every_hostapd_template_task_validates_with_the_checker() -> None:
    tasks = yaml.safe_load((REPO / "roles/access_point/tasks/files.yml").read_text())
    hostapd = [t for t in tasks if "/hostapd." in t["ansible.builtin.template"]["dest"]]
    assert len(hostapd) == 3
    for task in hostapd:
        validate = task["ansible.builtin.template"].get("validate", "")
        assert validate.startswith("{{ access_point_check_command }} "), task["name"]
