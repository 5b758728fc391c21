"""`presence-appliance recordings list|prune`: the Pi's answer is hostile input; the commands
run the recordings role's own program (rendered, on real files) through the same path as
over SSH (ansible_connection: local), and an unreachable Pi is one line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.recordings import RecordingsError, parse_answer, remote_command
from tests.cli_checks import assert_no_crash
from tests.roles.test_recordings import recording_vars, render

GOOD = {
    "path": "/srv/presence-recordings",
    "free_bytes": 5 * 1024**3,
    "truncated": False,
    "files": [
        {"camera": "nord", "path": "2026/11/30/2026-11-30-10.00-ab.mp4", "size": 10, "mtime": 1}
    ],
}


def test_a_good_answer_is_kept_field_by_field() -> None:
    answer = parse_answer("pi", json.dumps(GOOD), prune=False)
    (stored,) = answer.files
    assert (stored.camera, stored.path, stored.size, stored.mtime) == (
        "nord",
        "2026/11/30/2026-11-30-10.00-ab.mp4",
        10,
        1,
    )
    assert answer.free_bytes == 5 * 1024**3 and answer.skipped == 0


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"files": 3}', '{"deleted": []}', "\x1b[2J"]
)
def test_a_broken_answer_is_one_line(text: str) -> None:
    with pytest.raises(RecordingsError) as err:
        parse_answer("pi", text, prune=False)
    assert "\n" not in str(err.value) and str(err.value).startswith("pi: ")
    assert "\x1b" not in str(err.value)


@pytest.mark.parametrize(
    "entry",
    [
        {"camera": "../etc", "path": "a.mp4", "size": 1, "mtime": 1},
        {"camera": "nord\x1b[31m", "path": "a.mp4", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "/etc/shadow", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "../../etc/shadow", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "2026/../../x", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "a\nb.mp4", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "a\u202eb.mp4", "size": 1, "mtime": 1},
        {"camera": "nord", "path": "x" * 600, "size": 1, "mtime": 1},
        {"camera": "nord", "path": "a.mp4", "size": -1, "mtime": 1},
        {"camera": "nord", "path": "a.mp4", "size": True, "mtime": 1},
        {"camera": "nord", "path": "a.mp4", "size": "10", "mtime": 1},
        {"camera": "nord", "path": "a.mp4", "size": 1, "mtime": 10**20},
        {"camera": "nord", "path": "a.mp4", "size": 1},
        "nord/a.mp4",
        None,
    ],
)
def test_a_malformed_entry_is_skipped_and_counted(entry: Any) -> None:
    hostile = {**GOOD, "files": [entry, *GOOD["files"]]}
    answer = parse_answer("pi", json.dumps(hostile), prune=False)
    assert [f.path for f in answer.files] == [GOOD["files"][0]["path"]]
    assert answer.skipped == 1


def test_a_prune_reason_is_cleaned_and_bounded() -> None:
    deleted = [{**GOOD["files"][0], "reason": "older\x1b[2J than 30 days" + "!" * 200}]
    answer = parse_answer("pi", json.dumps({"dry_run": True, "deleted": deleted}), prune=True)
    (stored,) = answer.files
    assert stored.reason.startswith("older?[2J than 30 days") and len(stored.reason) == 80
    assert answer.dry_run is True


def test_the_remote_command_is_an_argument_list_run_with_sudo() -> None:
    assert remote_command({}, ["list", "--json"]) == [
        "sudo",
        "-n",
        "/usr/local/sbin/presence-recordings",
        "--config",
        "/etc/presence-appliance/recordings.json",
        "list",
        "--json",
    ]


# --- the commands, against the role's own program on real files -----------------------


def _site(tmp_path: Path, helper: str | None = None) -> tuple[Path, Path]:
    """An inventory whose Pi is this machine (local connection) with recordings of nord and
    sued in a folder here; the role's rendered program reads them."""
    storage = tmp_path / "storage"
    now = time.time()
    for camera, day, age_days, size in (
        ("nord", "2026/11/30", 1, 3000),
        ("nord", "2026/10/01", 40, 2000),
        ("sued", "2026/11/29", 2, 1000),
    ):
        path = storage / camera / day / f"{day.replace('/', '-')}-10.00-x.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    config = tmp_path / "recordings.json"
    config.write_text(
        json.dumps(
            {
                "path": str(storage),
                "require_mount": False,
                "retention_days": 30,
                "camera_quota_mb": 4096,
                "min_free_mb": 1,
            }
        )
    )
    program = helper or str(
        render(tmp_path, recording_vars()) / "usr/local/sbin/presence-recordings"
    )
    variables = recording_vars()
    variables.update(
        ansible_connection="local", recordings_helper=program, recordings_config=str(config)
    )
    inventory = tmp_path / "inventory.yml"
    doc = {"all": {"children": {"appliances": {"hosts": {"pi": {}}, "vars": variables}}}}
    inventory.write_text(yaml.safe_dump(doc))
    return inventory, storage


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert_no_crash(result)
    return result


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the local-connection path runs the program without sudo only as root")


def test_list_shows_every_recording_and_filters(tmp_path: Path, root: None) -> None:
    inventory, _ = _site(tmp_path)
    result = _run("recordings", "list", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["appliance", "camera", "uploaded", "size", "file"]
    assert len([line for line in lines if line.startswith("pi ")]) == 3
    assert "2026/11/30/2026-11-30-10.00-x.mp4" in result.output
    assert lines[-1].startswith("pi: 3 recordings, 5.9 KB;")
    only = _run("recordings", "list", "-i", str(inventory), "--camera", "sued", "--json")
    files = json.loads(only.output)["appliances"][0]["files"]
    assert [(f["camera"], f["size"]) for f in files] == [("sued", 1000)]
    since = (time.time() - 5 * 86400) // 86400 * 86400
    day = time.strftime("%Y-%m-%d", time.gmtime(since))
    recent = _run("recordings", "list", "-i", str(inventory), "--since", day, "--json")
    sizes = sorted(f["size"] for f in json.loads(recent.output)["appliances"][0]["files"])
    assert sizes == [1000, 3000]  # the 40-day-old one is before --since


def test_prune_dry_run_changes_nothing_then_prune_deletes(tmp_path: Path, root: None) -> None:
    inventory, storage = _site(tmp_path)
    before = sorted(p for p in storage.rglob("*") if p.is_file())
    dry = _run("recordings", "prune", "--dry-run", "-i", str(inventory))
    assert dry.exit_code == 0, dry.output
    assert "pi: would delete nord/2026/10/01/2026-10-01-10.00-x.mp4 (2.0 KB): older than 30" in (
        dry.output
    )
    assert sorted(p for p in storage.rglob("*") if p.is_file()) == before
    real = _run("recordings", "prune", "-i", str(inventory))
    assert "pi: deleted 1 files, 2.0 KB;" in real.output
    assert len([p for p in storage.rglob("*") if p.is_file()]) == 2


def test_hostile_program_output_is_never_printed_raw(tmp_path: Path, root: None) -> None:
    """A stand-in for a compromised Pi's program: whatever it prints, the table stays clean."""
    fake = tmp_path / "fake-helper"
    answer = {
        "free_bytes": -1,
        "files": [
            {"camera": "nord", "path": "ok.mp4", "size": 1, "mtime": 1},
            {"camera": "nord", "path": "\x1b]0;pwned\x07.mp4", "size": 1, "mtime": 1},
            {"camera": "x\x1b[2J", "path": "a.mp4", "size": 1, "mtime": 1},
        ],
    }
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(answer)}\nEOF\n")
    fake.chmod(0o755)
    inventory, _ = _site(tmp_path, helper=str(fake))
    result = _run("recordings", "list", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "pwned" not in result.output
    assert "ok.mp4" in result.output and "2 malformed entries ignored" in result.output


def test_an_unknown_camera_and_an_unreachable_pi_are_one_line(tmp_path: Path) -> None:
    inventory, _ = _site(tmp_path)
    result = _run("recordings", "list", "-i", str(inventory), "--camera", "ghost")
    assert result.exit_code == 1
    assert result.output == "error: --camera: 'ghost' is not a camera of this inventory\n"
    unreachable = tmp_path / "far.yml"
    doc = yaml.safe_load(inventory.read_text())
    pi_vars = doc["all"]["children"]["appliances"]["vars"]
    del pi_vars["ansible_connection"]
    doc["all"]["children"]["appliances"]["hosts"]["pi"] = {
        "ansible_host": "127.0.0.1",
        "ansible_port": 1,
    }
    unreachable.write_text(yaml.safe_dump(doc))
    for args in (["list"], ["prune", "--dry-run"]):
        result = _run("recordings", *args, "-i", str(unreachable))
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: pi: SSH failed"), result.output


def test_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    inventory, _ = _site(tmp_path)
    for value in ("2026-13-01", "yesterday", "2026-1-1", "2026-01-01\n"):
        result = _run("recordings", "list", "-i", str(inventory), "--since", value)
        assert result.exit_code == 2 and "is not a date (YYYY-MM-DD)" in result.output


# --- activity: what each camera did on the FTP server ----------------------------------

# Lines as vsftpd writes them (tests/roles/test_recordings.py runs the real one).
LOG = """\
{day} [pid 2] CONNECT: Client "10.42.0.11"
{day} [pid 1] [cam-nord] OK LOGIN: Client "10.42.0.11"
{day} [pid 3] [cam-nord] OK MKDIR: Client "10.42.0.11", "/2026"
{day} [pid 3] [cam-nord] OK UPLOAD: Client "10.42.0.11", "/2026/a.mp4", 5000 bytes, 9.1Kbyte/sec
{day} [pid 4] [cam-nord] FAIL LOGIN: Client "10.42.0.12"
{day} [pid 5] [cam-nord] FAIL MKDIR: Client "10.42.0.11", "/etc"
{day} [pid 6] [cam-ghost] FAIL LOGIN: Client "10.42.0.99"
Mon Jan  5 10:00:00 2026 [pid 7] [cam-nord] OK LOGIN: Client "10.42.0.11"
{day} [pid 8] [cam-nord] OK LOGIN: Client "10.42.0.11\x1b[2J"
garbage \x1b]0;pwned\x07
"""


def _site_with_log(tmp_path: Path) -> Path:
    """The site whose recordings program reads LOG (dated today) for camera nord."""
    inventory, _ = _site(tmp_path)
    log = tmp_path / "vsftpd.log"
    log.write_text(LOG.format(day=time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime())))
    config = tmp_path / "recordings.json"
    config.write_text(
        json.dumps({**json.loads(config.read_text()), "ftp_log": str(log), "cameras": ["nord"]})
    )
    return inventory


def test_activity_counts_per_camera_from_the_log(tmp_path: Path, root: None) -> None:
    inventory = _site_with_log(tmp_path)
    result = _run("recordings", "activity", "-i", str(inventory), "--json")
    assert result.exit_code == 0, result.output
    (pi,) = json.loads(result.output)["appliances"]
    nord = pi["cameras"]["nord"]
    # The January login is older than 24 h; the line with a control character is no line.
    assert (nord["logins"], nord["failed_logins"], nord["uploads"]) == (1, 1, 1)
    assert nord["upload_bytes"] == 5000 and nord["refused"] == 1
    assert nord["clients"] == ["10.42.0.11", "10.42.0.12"]
    assert pi["other"] == {"failed_logins": 1, "clients": ["10.42.0.99"]}
    table = _run("recordings", "activity", "-i", str(inventory))
    assert table.output.splitlines()[0].split() == [
        "appliance", "camera", "logins", "failed", "uploads", "bytes", "refused", "last",
    ]  # fmt: skip
    assert "pi: nord: clients 10.42.0.11, 10.42.0.12" in table.output
    assert "pi: 1 failed logins as no camera's user (from 10.42.0.99)" in table.output
    assert "\x1b" not in table.output
    for hours in ("0", "745", "x", "\uff11"):  # the last: a fullwidth 1
        bad = _run("recordings", "activity", "-i", str(inventory), "--hours", hours)
        assert bad.exit_code == 2 and "is not a number of hours from 1 to 744" in bad.output


def test_the_firewall_view_shows_what_each_camera_did_on_ftp(tmp_path: Path, root: None) -> None:
    """`firewall` adds the FTP table next to its drops (this host has no firewall helper:
    that part is its one error line; the FTP part comes from the recordings program)."""
    inventory = _site_with_log(tmp_path)
    table = _run("firewall", "-i", str(inventory), "--limit", "0")
    lines = table.output.splitlines()
    start = lines.index("FTP, last 24 h (recording cameras; `recordings activity --hours N`):")
    assert lines[start + 1].split() == [
        "appliance", "camera", "logins", "failed", "uploads", "bytes", "refused", "last",
    ]  # fmt: skip
    assert lines[start + 2].split()[:7] == ["pi", "nord", "1", "1", "1", "4.9", "KB"]
    assert "pi: nord: clients 10.42.0.11, 10.42.0.12" in table.output
    assert "pi: 1 failed logins as no camera's user (from 10.42.0.99)" in table.output
    assert "\x1b" not in table.output
    as_json = _run("firewall", "-i", str(inventory), "--json")
    (ftp,) = json.loads(as_json.output[: as_json.output.rindex("}") + 1])["ftp"]
    assert ftp["cameras"]["nord"]["uploads"] == 1 and ftp["other"]["failed_logins"] == 1


def test_a_hostile_activity_answer_is_neutralised() -> None:
    from appliance.recordings import parse_activity

    answer = {
        "cameras": {
            "nord": {"logins": -3, "uploads": "many", "last": 10**20, "clients": ["1.2.3.4",
                     "1.2.3.4\x1b", "fe80::1%eth0", 5, "x" * 100]},
            "../x": {"logins": 1},
            "sued": "not a mapping",
        },
        "other": {"failed_logins": True, "clients": "10.0.0.1"},
    }  # fmt: skip
    seen = parse_activity("pi", json.dumps(answer))
    assert list(seen.cameras) == ["nord"]
    nord = seen.cameras["nord"]
    assert nord["logins"] == 0 and nord["uploads"] == 0 and nord["last"] == 0
    assert nord["clients"] == ["1.2.3.4"]
    assert seen.other_failed_logins == 0 and seen.other_clients == []
    with pytest.raises(RecordingsError):
        parse_activity("pi", '{"cameras": []}')
