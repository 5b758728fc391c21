"""`doctor` with recordings: what each camera did on the FTP server, and the storage.

The real probe script runs on this host (as `ansible_connection: local`) with the recordings
role's own rendered program reading a vsftpd log in the format vsftpd writes (the namespace
test tests/roles/test_recordings.py runs the real vsftpd), and `df`/`mountpoint` on a real
folder or a real small tmpfs (in a private mount namespace of the test's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.doctor import diagnose
from appliance.doctor_checks import FAIL, OK, WARN
from appliance.doctor_ftp import check_ftp, check_storage
from appliance.doctor_probe import SCRIPT, probe_args
from appliance.doctor_ssh import WRAPPER, Section, run_script, split_sections
from tests.roles.test_recordings import NORD, SUED, recording_vars, render

# vsftpd's lines: nord logs in and uploads; someone at .99 tries nord's account; sued is
# refused a download; a name that is no camera's fails. The January line is older than 24 h.
LOG = """\
{day} [pid 1] [cam-nord] OK LOGIN: Client "{nord}"
{day} [pid 3] [cam-nord] OK UPLOAD: Client "{nord}", "/2026/a.mp4", 5000 bytes, 9.1Kbyte/sec
{day} [pid 4] [cam-nord] FAIL LOGIN: Client "10.203.144.99"
{day} [pid 5] [cam-sued] OK LOGIN: Client "{sued}"
{day} [pid 5] [cam-sued] FAIL DOWNLOAD: Client "{sued}", "/2026/a.mp4", 0.00Kbyte/sec
{day} [pid 6] [admin] FAIL LOGIN: Client "10.203.144.98"
Mon Jan  5 10:00:00 2026 [pid 7] [cam-nord] FAIL LOGIN: Client "10.203.144.97"
"""


def _pi(tmp_path: Path, log: str | None, **recordings: Any) -> dict[str, Any]:
    """Variables of a Pi that is this machine: the rendered program, its settings, a log."""
    storage = tmp_path / "storage"
    (storage / "nord").mkdir(parents=True)
    program = render(tmp_path, recording_vars()) / "usr/local/sbin/presence-recordings"
    ftp_log = tmp_path / "vsftpd.log"
    if log is not None:
        ftp_log.write_text(log)
    config = tmp_path / "recordings.json"
    settings = {"path": str(storage), "require_mount": False, "retention_days": 30,
                "camera_quota_mb": 16, "min_free_mb": 64, "ftp_log": str(ftp_log),
                "cameras": ["nord", "sued"]}  # fmt: skip
    config.write_text(json.dumps(settings))
    variables = recording_vars(path=str(storage), **recordings)
    variables.update(
        ansible_connection="local", recordings_helper=str(program), recordings_config=str(config)
    )
    return variables


def _today() -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime())


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the probe runs the recordings program without sudo only as root")


def test_each_camera_gets_a_line_of_what_it_did_on_ftp(tmp_path: Path, root: None) -> None:
    variables = _pi(tmp_path, LOG.format(day=_today(), nord=NORD, sued=SUED))
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    assert result.sections["ftp:activity"].rc == 0, result.sections["ftp:activity"].text
    checks = by_name(check_ftp(result.sections, variables, "pi"))
    nord, sued, other = checks["ftp:nord"], checks["ftp:sued"], checks["ftp:other"]
    assert nord.status == WARN
    assert nord.message.startswith("24 h: 1 logins, 1 uploads (4.9 KB), last seen ")
    assert "1 failed logins as cam-nord (clients 10.203.144.11, 10.203.144.99)" in nord.message
    assert "camera ftp nord on" in nord.fix
    assert sued.status == WARN and "1 refused actions" in sued.message
    assert other.status == WARN and "1 failed logins as no camera's user" in other.message
    assert "10.203.144.98" in other.message and "10.203.144.97" not in other.message
    # The same lines through the whole doctor, after its other checks.
    every = diagnose("pi", variables, result.sections, 0.1, None, firewall=False)
    names = [c.name for c in every]
    assert names[-3:] == ["ftp:nord", "ftp:sued", "ftp:other"]
    assert "recordings:storage" in names


def test_a_quiet_camera_is_ok_and_a_camera_seen_elsewhere_is_a_warning(
    tmp_path: Path, root: None
) -> None:
    day = _today()
    log = (
        f'{day} [pid 1] [cam-sued] OK LOGIN: Client "{SUED}"\n'
        f'{day} [pid 2] [cam-sued] OK LOGIN: Client "10.203.144.50"\n'
    )
    variables = _pi(tmp_path, log)
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    checks = by_name(check_ftp(result.sections, variables, "pi"))
    assert checks["ftp:nord"].status == OK
    assert checks["ftp:nord"].message.startswith("no FTP login in the last 24 h")
    assert checks["ftp:sued"].status == WARN
    assert "logged in from 10.203.144.50, not sued's 10.203.144.12" in checks["ftp:sued"].message
    assert "ftp:other" not in checks


def test_no_recordings_no_lines_and_a_missing_program_is_one_warning(
    tmp_path: Path, root: None
) -> None:
    variables = _pi(tmp_path, None)
    for camera in variables["cameras"]:
        camera["recordings"] = False
    assert probe_args(variables)[11] == ""  # $12: the recordings' storage path
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    assert "ftp:activity" not in result.sections
    assert check_ftp(result.sections, variables, "pi") == []
    assert check_storage(result.sections, variables) == []
    variables = _pi(tmp_path / "second", None)
    variables["recordings_helper"] = str(tmp_path / "nowhere")
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    (only,) = check_ftp(result.sections, variables, "pi")
    assert only.name == "ftp" and only.status == WARN and "not read" in only.message


def test_a_hostile_answer_is_one_warning_and_never_printed_raw() -> None:
    variables = recording_vars()
    answer = {"cameras": {"nord": {"logins": "\x1b[2J", "clients": ["\x1b]0;x\x07"]}}}
    sections = {"ftp:activity": Section(json.dumps(answer), 0)}
    checks = by_name(check_ftp(sections, variables, "pi"))
    assert checks["ftp:nord"].status == OK and "\x1b" not in checks["ftp:nord"].message
    assert checks["ftp:sued"].status == WARN  # absent from the answer
    sections = {"ftp:activity": Section("\x1b]0;owned\x07 not json", 0)}
    (only,) = check_ftp(sections, variables, "pi")
    assert only.status == WARN and "\x1b" not in only.message


def _probe_on_tmpfs(variables: dict[str, Any], folder: Path, fill_mb: int) -> dict[str, Section]:
    """The probe in a private mount namespace where FOLDER is an 8 MB tmpfs holding FILL_MB."""
    mount = (
        'mount -t tmpfs -o size=8m tmpfs "$0" && '
        'dd if=/dev/zero of="$0/fill" bs=1M count="$1" status=none && shift && exec "$@"'
    )
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount]
    argv += [str(folder), str(fill_mb), "sh", "-c", WRAPPER, "sh", SCRIPT, *probe_args(variables)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return split_sections(result.stdout)


def test_storage_mounted_unmounted_and_short_of_space(tmp_path: Path, root: None) -> None:
    variables = _pi(tmp_path, None, require_mount=True, min_free_mb=4)
    storage = Path(variables["recordings"]["path"])
    # Not a mount point while one is required: vsftpd does not start there.
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    (check,) = check_storage(result.sections, variables)
    assert check.status == FAIL and "not a mount point" in check.message
    # A mounted small file system, then the same one with less than min_free_mb free.
    (check,) = check_storage(_probe_on_tmpfs(variables, storage, 1), variables)
    assert check.status == OK, check
    assert check.message.startswith("7.0 MB free of 8.0 MB on its own file system")
    (check,) = check_storage(_probe_on_tmpfs(variables, storage, 6), variables)
    assert check.status == WARN and "the prune keeps 4 MB" in check.message
    assert "recordings prune" in check.fix
    # On the root file system without require_mount: said so.
    variables["recordings"]["require_mount"] = False
    sections = {
        "recordings:storage": Section(
            "not-mounted\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
            "/dev/root 30000000 1000000 29000000 4% /",
            0,
        )
    }
    (check,) = check_storage(sections, variables)
    assert check.status == OK and "on the root file system (SD card)" in check.message
