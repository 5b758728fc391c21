"""Issue 9: wherever the tool loads an inventory, a file Ansible cannot parse gives the tool's
own single `error:` line naming the file, line and column; Ansible's `[WARNING]: Failed to
parse inventory with 'auto' plugin…` lines never reach the user (run as a real process: the
warnings went straight to stderr)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, REPO

BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
FIXTURES = REPO / "tests/day2/fixtures"

# A double-quoted surrogate escape: PyYAML reads it, libyaml (Ansible's reader) refuses it.
# This is what the old inventory editor wrote for "'Haus 🏠".
SURROGATE = EXAMPLE.read_text().replace(
    "name: nord", 'name: nord\n            note: "\\ud83c\\udfe0"'
)
COMMANDS = [
    ["validate"],
    ["render", "--out", "{tmp}/out"],
    ["install", "--check"],
    ["check"],
    ["camera", "list"],
    ["camera", "set", "nord", "cloud=allow"],
    ["camera", "add", "porch", "--mac", "70:ee:50:00:00:44", "--secure-id", "ab" * 16],
    ["discover", "--from", str(FIXTURES / "gethomedata.json"), "--write"],
    ["leases"],
    ["doctor"],
    ["firewall"],
    ["remote", "list"],
    ["rollback", "--list"],
    ["uninstall"],
    ["recordings", "list"],
    ["recordings", "prune", "--dry-run"],
]


def _run(args: list[str], inventory: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "presence-appliance"), *(a.format(tmp=tmp) for a in args)]
    return subprocess.run(
        [*argv, "-i", str(inventory)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        cwd=tmp,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_a_yaml_error_is_one_line_with_line_and_column(args: list[str], tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(SURROGATE)
    before = inventory.read_bytes()
    result = _run(args, inventory, tmp_path)
    lines = SURROGATE.splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "note:" in text)
    column = lines[line - 1].index("\\u") + 3  # libyaml points past the `\u`
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: {inventory}: line {line}, column {column}: YAML syntax error: "
        "While parsing a quoted scalar found invalid Unicode character escape code."
    ]
    assert inventory.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("all: {hosts: 5}", 'not an inventory Ansible can read: Invalid "hosts" entry'),
        ("[]\n", "not an inventory Ansible can read: Parsed empty YAML file"),
        ("k: \x7f\n", "line 1, column 4: YAML syntax error: unacceptable character #x007f"),
        ("", "not an Ansible inventory (no hosts, no groups)"),
    ],
)
def test_other_unreadable_inventories_are_one_line(text: str, says: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(text)
    result = _run(["validate"], inventory, tmp_path)
    assert result.returncode == 2
    assert "[WARNING]" not in result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {inventory}: {says}"), result.stderr
