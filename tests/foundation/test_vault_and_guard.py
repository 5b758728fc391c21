"""Vault values work wherever a secret goes; the playbook's guard play rejects a bad inventory by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.content import roles_dir, site_playbook
from tests.conftest import appliance_vars, example_data, write_inventory

BIN = Path(sys.executable).parent


def _encrypt(value: str, password_file: Path) -> str:
    result = subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(password_file),
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


class _Vault(str):
    pass


def _vault_dumper() -> type[yaml.SafeDumper]:
    class Dumper(yaml.SafeDumper):
        pass

    def represent(dumper: yaml.SafeDumper, data: _Vault) -> yaml.Node:
        body = data.split("\n", 1)[1]  # drop the "!vault |" line
        text = "\n".join(line.strip() for line in body.splitlines()) + "\n"
        return dumper.represent_scalar("!vault", text, style="|")

    Dumper.add_representer(_Vault, represent)
    return Dumper


def _vaulted_inventory(tmp_path: Path, passphrase: str, secure_id: str) -> tuple[Path, Path]:
    password_file = tmp_path / "vault-pass"
    password_file.write_text("correct horse battery staple\n")
    data = example_data()
    variables = appliance_vars(data)
    variables["wifi"]["passphrase"] = _Vault(_encrypt(passphrase, password_file))
    variables["cameras"][0]["secure_id"] = _Vault(_encrypt(secure_id, password_file))
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.dump(data, Dumper=_vault_dumper(), sort_keys=False))
    return path, password_file


def test_vault_values_validate_with_the_password(tmp_path: Path) -> None:
    inventory, password_file = _vaulted_inventory(
        tmp_path, "a-vaulted-passphrase", "00112233445566778899aabbccddeeff"
    )
    result = CliRunner().invoke(
        main, ["validate", "-i", str(inventory), "--vault-password-file", str(password_file)]
    )
    assert result.exit_code == 0, result.output


def test_vault_values_are_checked_after_decryption(tmp_path: Path) -> None:
    inventory, password_file = _vaulted_inventory(
        tmp_path, "short", "00112233445566778899aabbccddeeff"
    )
    result = CliRunner().invoke(
        main, ["validate", "-i", str(inventory), "--vault-password-file", str(password_file)]
    )
    assert result.exit_code == 1
    assert "garden-pi: wifi.passphrase: must be 8-63 characters" in result.output
    assert "short" not in result.output.replace("must be", "")


def test_vault_password_from_the_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    inventory, password_file = _vaulted_inventory(
        tmp_path, "a-vaulted-passphrase", "00112233445566778899aabbccddeeff"
    )
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password_file))
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory)])
    assert result.exit_code == 0, result.output


def test_missing_vault_password_is_named(tmp_path: Path) -> None:
    inventory, _ = _vaulted_inventory(
        tmp_path, "a-vaulted-passphrase", "00112233445566778899aabbccddeeff"
    )
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "validate", "-i", str(inventory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        "garden-pi: wifi: cannot decrypt a vault value (give --vault-password-file" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_vault_values_render_decrypted_into_private_files(tmp_path: Path) -> None:
    inventory, password_file = _vaulted_inventory(
        tmp_path, "a-vaulted-passphrase", "00112233445566778899aabbccddeeff"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "render",
            "-i",
            str(inventory),
            "--vault-password-file",
            str(password_file),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    hostapd = out / "etc/hostapd/hostapd.conf"
    assert "wpa_passphrase=a-vaulted-passphrase" in hostapd.read_text()
    assert hostapd.stat().st_mode & 0o077 == 0
    nginx = out / "etc/nginx/nginx.conf"
    assert "00112233445566778899aabbccddeeff" in nginx.read_text()
    assert nginx.stat().st_mode & 0o077 == 0
    assert "$ANSIBLE_VAULT" not in hostapd.read_text() + nginx.read_text()
    for path in out.rglob("*"):  # no rendered file holding a secret is world-readable
        if path.is_file() and (
            "a-vaulted-passphrase" in path.read_text()
            or "00112233445566778899aabbccddeeff" in path.read_text()
        ):
            assert path.stat().st_mode & 0o007 == 0, path


def test_guard_play_rejects_a_bad_inventory_when_run_by_hand(tmp_path: Path) -> None:
    data = example_data()
    appliance_vars(data)["cameras"][1]["mac"] = "70:ee:50:zz:00:01"
    appliance_vars(data)["wifi"]["country"] = "XX"
    inventory = write_inventory(tmp_path / "inventory.yml", data)
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(roles_dir()), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(site_playbook())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "garden-pi: cameras[1].mac: '70:ee:50:zz:00:01' is not a MAC address" in output
    assert "garden-pi: wifi.country: 'XX' is not an ISO 3166-1 alpha-2 code" in output
    # it stopped in the guard: no role task ran
    assert "Gathering Facts" not in output and "access_point :" not in output


def test_guard_play_requires_appliances(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    other: {ansible_host: 127.0.0.1}\n")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(roles_dir()), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(site_playbook())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "No host in group 'appliances'" in result.stdout + result.stderr
