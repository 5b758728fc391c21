"""`install` on the controller side: refuses bad input before Ansible, and reports an unreachable Pi in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import appliance_vars, example_data, write_inventory

CLI = [sys.executable, "-m", "appliance.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_invalid_inventory_changes_nothing(tmp_path: Path) -> None:
    data = example_data()
    appliance_vars(data)["cameras"][0]["mac"] = "nope"
    inventory = write_inventory(tmp_path / "inventory.yml", data)
    result = _run("install", "-i", str(inventory), cwd=tmp_path)
    assert result.returncode == 1
    assert "garden-pi: cameras[0].mac: 'nope' is not a MAC address" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Provisioning" not in result.stdout  # Ansible never started


def test_unreachable_pi_is_one_clear_line(tmp_path: Path) -> None:
    data = example_data()
    # Loopback port 1: nothing listens there, so SSH fails at once (no traffic leaves the machine).
    data["all"]["children"]["appliances"]["hosts"]["garden-pi"] = {
        "ansible_host": "127.0.0.1",
        "ansible_port": 1,
        "ansible_user": "pi",
        "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }
    inventory = write_inventory(tmp_path / "inventory.yml", data)
    result = _run("install", "-i", str(inventory), "--no-check", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "UNREACHABLE" in output
    assert "garden-pi" in output and "unreachable=1" in output
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("error: garden-pi:")
    ]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in output
    secrets = [
        appliance_vars(data)["wifi"]["passphrase"],
        appliance_vars(data)["web"]["users"][0]["password"],
    ]
    secrets += [c["secure_id"] for c in appliance_vars(data)["cameras"]]
    for secret in secrets:
        assert secret not in output


def test_module_entry_point_exists() -> None:
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "presence-appliance" in result.stdout


def test_help_does_not_import_ansible() -> None:
    # --help must stay fast: Ansible (~0.4 s to import) is loaded only by commands that run it.
    code = (
        "import sys; from click.testing import CliRunner; from appliance.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "print('ansible' in sys.modules, 'install' in r.output and 'check' in r.output)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"], result.stdout + result.stderr
