"""A plain `pip install .` (a real wheel, not editable) works from any directory."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, REPO


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy so the checkout's build/ and egg-info are untouched.
    source = root / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "lab",
            "test-artifacts",
            "build",
            "*.egg-info",
            "__pycache__",
            ".hypothesis",
        ),
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(source)],
        check=True,
        timeout=600,
        cwd=root,
    )
    shutil.rmtree(source)  # the installed command must not depend on the source tree
    return venv


def test_console_command_renders_from_elsewhere(installed_venv: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    inventory = workdir / "my-inventory.yml"
    shutil.copy(EXAMPLE, inventory)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = installed_venv / "bin" / "presence-appliance"
    result = subprocess.run(
        [str(command), "render", "-i", str(inventory), "--out", "out"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rendered = [p for p in (workdir / "out").rglob("*") if p.is_file()]
    assert rendered, "render wrote nothing"
    # the content came from the installed package, not from this checkout
    location = subprocess.run(
        [
            str(installed_venv / "bin" / "python"),
            "-c",
            "import appliance; print(appliance.__file__)",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert str(installed_venv) in location
    assert str(REPO) not in location
    for path in rendered:
        assert not (path.stat().st_mode & stat.S_IWOTH)


def test_wheel_help_lists_commands_without_loading_ansible(installed_venv: Path) -> None:
    """What keeps the installed `--help` quick, asserted without a stopwatch: it never
    imports Ansible (~0.4 s). The time itself: bench/cli_startup.py."""
    result = subprocess.run(
        [str(installed_venv / "bin" / "presence-appliance"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for command in ("validate", "render", "install"):
        assert command in result.stdout
    code = (
        "import sys; from appliance.cli import main; sys.argv = ['presence-appliance', '--help']\n"
        "try:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
        "print('ansible' in sys.modules, file=sys.stderr)"
    )
    loaded = subprocess.run(
        [str(installed_venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=installed_venv,  # never the source tree: the wheel's own package
    )
    assert loaded.stderr.strip().splitlines()[-1:] == ["False"], loaded.stderr
