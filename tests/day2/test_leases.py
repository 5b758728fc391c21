"""`presence-appliance leases`: parsing dnsmasq's lease file and the ssh call made for each Pi.

The host has no sshd, so `ssh` here is a stand-in script on PATH that records its
arguments; tests/e2e/test_day2.py reads the leases of the lab's Pi over real SSH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.leases import Lease, parse_leases
from appliance.pi_shell import ssh_command

FIXTURES = Path(__file__).parent / "fixtures"

FAKE_SSH = """#!{python}
import json, sys, os
with open({record!r}, "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
mode = os.environ.get("FAKE_SSH_MODE", "ok")
if mode == "refused":
    sys.stderr.write("ssh: connect to host 10.203.60.2 port 2222: Connection refused\\n")
    sys.exit(255)
if mode == "nofile":
    sys.stderr.write("cat: /var/lib/misc/dnsmasq.leases: No such file or directory\\n")
    sys.exit(1)
sys.stdout.write(open({leases!r}).read())
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-calls.jsonl"
    script = bin_dir / "ssh"
    script.write_text(
        FAKE_SSH.format(
            python=sys.executable, record=str(record), leases=str(FIXTURES / "dnsmasq.leases")
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_parse_leases():
    leases = parse_leases((FIXTURES / "dnsmasq.leases").read_text())
    assert leases == [
        Lease(
            1764100000,
            "70:ee:50:00:00:01",
            "10.42.0.10",
            "Netatmo-Presence",
            "01:70:ee:50:00:00:01",
        ),
        Lease(1764100500, "70:ee:50:00:00:09", "10.42.0.101", "", "01:70:ee:50:00:00:09"),
        Lease(0, "de:ad:be:ef:00:01", "10.42.0.102", "laptop", ""),
    ]
    assert [lease.is_netatmo for lease in leases] == [True, True, False]


def test_ssh_command_uses_the_inventory_connection_vars():
    cmd = ssh_command(
        "garden-pi",
        {
            "ansible_host": "10.203.60.2",
            "ansible_user": "pi",
            "ansible_port": 2222,
            "ansible_ssh_private_key_file": "/keys/id ed25519",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o 'UserKnownHostsFile=/dev/null'",
        },
        ["cat", "/var/lib/misc/dnsmasq.leases"],
    )
    assert cmd == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
        "2222",
        "-i",
        "/keys/id ed25519",
        "-l",
        "pi",
        "--",
        "10.203.60.2",
        "cat /var/lib/misc/dnsmasq.leases",
    ]


def inventory_with_connection(tmp_path: Path) -> Path:
    text = (FIXTURES / "inventory.yml").read_text()
    text = text.replace(
        "          ansible_user: 'pi'\n",
        "          ansible_user: 'pi'\n          ansible_port: 2222\n",
    )
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    shutil.copy(FIXTURES / "vault-password", tmp_path / "vault-password")
    return path


def run_leases(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    inventory = inventory_with_connection(tmp_path)
    result = CliRunner().invoke(
        main,
        ["leases", "-i", str(inventory), "--vault-password-file", str(tmp_path / "vault-password")],
        env=env,
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_leases_marks_unknown_netatmo_cameras(tmp_path, fake_ssh):
    code, output = run_leases(tmp_path)
    assert code == 0, output
    lines = {re.split(r"\s{2,}", line)[1]: line for line in output.splitlines()[1:]}
    assert lines["70:ee:50:00:00:01"].endswith("camera drive on garden-pi")
    assert lines["70:ee:50:00:00:09"].endswith("NETATMO, not in the inventory")
    assert "never" in lines["de:ad:be:ef:00:01"] and "laptop" in lines["de:ad:be:ef:00:01"]
    assert "fd00::5" not in output
    (call,) = [json.loads(line) for line in fake_ssh.read_text().splitlines()]
    assert call[-2:] == ["10.203.60.2", "cat /var/lib/misc/dnsmasq.leases"]
    assert call[call.index("-p") + 1] == "2222" and call[call.index("-l") + 1] == "pi"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "refused",
            "error: garden-pi: SSH failed: ssh: connect to host 10.203.60.2 port 2222: "
            "Connection refused",
        ),
        (
            "nofile",
            "error: garden-pi: no /var/lib/misc/dnsmasq.leases yet (run install; no client yet?)",
        ),
    ],
)
def test_leases_failures_are_one_line(tmp_path, fake_ssh, mode, message):
    code, output = run_leases(tmp_path, env={"FAKE_SSH_MODE": mode})
    assert code == 1
    assert output.strip().splitlines()[-1] == message
