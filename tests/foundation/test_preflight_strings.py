"""The roles' own string checks (their preflight asserts, which guard a hand-run ansible-playbook)
agree with the schema: a trailing newline or a control character is refused by both."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from appliance.schema import errors, validate_appliance
from tests.conftest import REPO, appliance_vars, example_data

BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
# The files holding the roles' preflight asserts on inventory values (not on registered results).
ASSERT_FILES = (
    "access_point/tasks/preflight.yml",
    "dhcp/tasks/main.yml",
    "ntp/tasks/main.yml",
    "web/tasks/main.yml",
)
ROLES = ("access_point", "dhcp", "ntp", "web")


def _asserts(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for task in tasks:
        if "block" in task:
            inner = _asserts(task["block"])
            found += [
                {**t, "when": [task["when"], *_when(t)]} if "when" in task else t for t in inner
            ]
        elif "ansible.builtin.assert" in task:
            found.append(task)
    return found


def _when(task: dict[str, Any]) -> list[Any]:
    when = task.get("when", [])
    return when if isinstance(when, list) else [when]


def _cases() -> dict[str, tuple[str, Any]]:
    """host -> (inventory path, bad value); the value goes in as written (no YAML stripping)."""
    long_ssid = "\u00e9" * 17  # 17 characters, 34 bytes
    return {
        "good": ("", None),
        "ssid-newline": ("wifi.ssid", "cams\nhome"),
        "ssid-trailing-newline": ("wifi.ssid", "cams\n"),
        "ssid-34-bytes": ("wifi.ssid", long_ssid),
        "ssid-nul": ("wifi.ssid", "cams\x00"),
        "country-newline": ("wifi.country", "DE\n"),
        "passphrase-newline": ("wifi.passphrase", "a-long-passphrase\n"),
        "address-newline": ("camera_network.address", "10.42.0.1/24\n"),
        "camera-name-newline": ("cameras.0.name", "nord\n"),
        "secure-id-newline": ("cameras.0.secure_id", "0123456789abcdef0123456789abcdef\n"),
        "camera-ip-newline": ("cameras.0.ip", "10.42.0.11\n"),
    }


def _set(variables: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = variables
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def test_role_asserts_refuse_what_the_schema_refuses(tmp_path: Path) -> None:
    base = appliance_vars(example_data())
    hosts: dict[str, Any] = {}
    schema_says: dict[str, bool] = {}
    for host, (path, value) in _cases().items():
        variables = copy.deepcopy(base)
        if path:
            _set(variables, path, value)
        schema_says[host] = not errors(validate_appliance(host, variables))
        hosts[host] = {**variables, "ansible_connection": "local"}
    tasks = []
    for relative in ASSERT_FILES:
        tasks += _asserts(yaml.safe_load((REPO / "roles" / relative).read_text()))
    role_vars = []
    for role in ROLES:
        for kind in ("defaults", "vars"):
            if (REPO / "roles" / role / kind / "main.yml").exists():
                role_vars.append(str(REPO / "roles" / role / kind / "main.yml"))
    play = [
        {
            "hosts": "all",
            "gather_facts": False,
            "vars_files": role_vars,
            "tasks": [{k: v for k, v in t.items() if k != "no_log"} for t in tasks],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump({"all": {"hosts": hosts}}, allow_unicode=True)
    )
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": str(BIN / "python"),
    }
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), "play.yml"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+ .*failed=(\d+)", result.stdout, re.M))
    assert set(recap) == set(hosts), result.stdout[-3000:] + result.stderr[-3000:]
    roles_say = {host: recap[host] == "0" for host in hosts}
    assert roles_say["good"] and schema_says["good"], result.stdout[-2000:]
    assert roles_say == schema_says
    assert sum(roles_say.values()) == 1  # every bad value refused
