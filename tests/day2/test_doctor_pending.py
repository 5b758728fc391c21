"""doctor's `install:pending`: the services an unfinished install left on their old files, read
by the real probe script from the real snapshot tool on a stand-in Pi (this machine, local)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.doctor_checks import FAIL, OK, WARN
from appliance.doctor_pending import PENDING_CHECK, check_pending
from appliance.doctor_probe import SCRIPT, probe_args
from appliance.doctor_ssh import Section, run_script
from tests.roles.test_snapshot import TOOL, report, tool


def _executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def pi(tmp_path: Path) -> dict[str, Any]:
    """A stand-in Pi: one managed file (chrony's, restarting chrony), and the snapshot tool and
    its spec where the probe looks for them."""
    conf = tmp_path / "chrony.conf"
    conf.write_text("server 10.203.2.123 iburst\n")
    spec = tmp_path / "snapshot.json"
    spec.write_text(json.dumps({
        "dir": str(tmp_path / "backups"), "keep": 3,
        "files": [{"path": str(conf), "services": ["chrony"], "required": True}],
    }))  # fmt: skip
    tool = _executable(tmp_path / "presence-snapshot", f'exec python3 {TOOL} "$@"\n')
    return {
        "ansible_connection": "local",
        "snapshot_command": str(tool),
        "snapshot_spec_file": str(spec),
        "conf": conf,
    }


def doctor_says(variables: dict[str, Any]) -> list[Any]:
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    return check_pending(result.sections)


def snapshot(variables: dict[str, Any], *args: str) -> Any:
    return report(tool(Path(variables["snapshot_spec_file"]), *args))


def test_a_cut_install_shows_until_an_install_completes(pi: dict[str, Any]) -> None:
    (check,) = doctor_says(pi)
    assert check.status == OK, check
    snapshot(pi, "take", "--stamp", "20261201T000000Z")
    pi["conf"].write_text("server 10.203.2.124 iburst\n")  # ... and the run is cut here
    (check,) = doctor_says(pi)
    assert (check.name, check.status) == (PENDING_CHECK, FAIL), check
    assert check.message == "an unfinished install left chrony running on the old configuration"
    assert "presence-appliance install" in check.fix
    (again,) = doctor_says(pi)
    assert again == check  # doctor only reads: asking twice changes nothing
    # The next install restarts chrony first and gets to its end.
    snapshot(pi, "take", "--stamp", "20261201T000100Z")
    snapshot(pi, "settle", "--stamp", "20261201T000100Z")
    (check,) = doctor_says(pi)
    assert check.status == OK, check


def test_no_snapshot_tool_yet_is_no_check(pi: dict[str, Any], tmp_path: Path) -> None:
    pi["snapshot_command"] = str(tmp_path / "not-installed")
    assert doctor_says(pi) == []


@pytest.mark.parametrize(
    ("answer", "status", "shown"),
    [
        ('echo \'{"pending": ["nginx", "\\u001b]0;owned\\u0007"]}\'', FAIL,
         "nginx, (unreadable name) running"),
        ("echo 'not json'", WARN, "not understood"),
        ('echo \'{"pending": "chrony"}\'', WARN, "not understood"),
        ("echo 'presence-snapshot: /x: Permission denied' >&2; exit 1", WARN,
         "cannot read the snapshots: presence-snapshot: /x: Permission denied"),
        ("yes chrony | head -c 300000 | tr -d '\\n'; exit 1", WARN, "cannot read the snapshots"),
    ],
    ids=["escape-in-a-name", "garbage", "wrong-shape", "refused", "long-line"],
)  # fmt: skip
def test_a_hostile_answer_is_shown_safely(
    pi: dict[str, Any], tmp_path: Path, answer: str, status: str, shown: str
) -> None:
    """The Pi's answer is hostile: nothing but plain unit names reaches the terminal."""
    pi["snapshot_command"] = str(_executable(tmp_path / "hostile-snapshot", answer + "\n"))
    (check,) = doctor_says(pi)
    assert check.status == status and shown in check.message, check
    assert "\x1b" not in check.message and "\x07" not in check.message
    assert len(check.message) < 300


def test_a_section_not_gathered_is_no_check() -> None:
    assert check_pending({}) == []
    assert check_pending({PENDING_CHECK: Section("", 0)})[0].status == WARN
