"""The README's two commands on one machine: `make demo` then `make test` pass back to back
(and in the reverse order), and the user's demo lab is as they left it afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.lab.handle import CLI

if TYPE_CHECKING:
    from conftest import LabSession

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
# One quick lab test stands for `make test`'s e2e part: what matters here is the session's
# start (a user's lab in the way) and its end (that lab back, nothing else left up).
SESSION_TEST = "tests/e2e/test_lab.py::test_pi_boots_under_systemd"


def _as_user(
    lent: dict[str, str], lab_dir: Path, *args: str, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """`presence-appliance ARGS` as `make demo` runs it: from the host, in its own lab directory
    (with the lab lent by this session, which keeps other sessions out meanwhile)."""
    env = {**os.environ, **lent, "PA_LAB_DIR": str(lab_dir)}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _test_session(lent: dict[str, str], artifacts: Path) -> subprocess.CompletedProcess[str]:
    """Another pytest session using the lab, as `make test` starts one."""
    env = {**os.environ, **lent, "PA_LAB_TEST_DIR": str(artifacts)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", SESSION_TEST],
        capture_output=True,
        text=True,
        timeout=2400,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.lab_lifecycle
def test_demo_then_a_test_session_then_the_demo_lab_is_back(
    lab_session: LabSession, tmp_path: Path
) -> None:
    # The user's checkout's ./lab; short, as a checkout's path is (SSH control sockets).
    demo = Path(tempfile.mkdtemp(prefix="pa-demo-"))
    inventory = str(demo / "inventory.yml")
    with lab_session.lent() as lent:
        try:
            # `make demo` (right after this session's own lab went down: test, then demo)
            up = _as_user(lent, demo, "lab", "up")
            assert up.returncode == 0, up.stdout + up.stderr
            install = _as_user(lent, demo, "install", "-i", inventory)
            assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-2000:]
            assert "2/2 cameras pass" in install.stdout, install.stdout[-2000:]

            # `make test`: its session takes the demo lab down, saying so, and brings it back
            first = _test_session(lent, tmp_path / "session1")
            report = first.stdout[-5000:] + first.stderr[-2000:]
            assert first.returncode == 0, report
            assert "1 passed" in first.stdout, report
            assert f"a lab from {demo} is up" in first.stdout, report
            assert f"your lab from {demo} is up again and provisioned" in first.stdout, report

            # the user's lab is as they left it: up, provisioned, and every camera passes
            status = _as_user(lent, demo, "lab", "status", timeout=60)
            assert f"lab: up ({demo})" in status.stdout, status.stdout + status.stderr
            check = _as_user(lent, demo, "check", "-i", inventory, "--wait", "60", timeout=300)
            assert check.returncode == 0, check.stdout + check.stderr
            assert "2/2 cameras pass" in check.stdout, check.stdout

            # `make test` with no lab of the user's up: afterwards nothing runs
            down = _as_user(lent, demo, "lab", "down", timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr
            second = _test_session(lent, tmp_path / "session2")
            report = second.stdout[-5000:] + second.stderr[-2000:]
            assert second.returncode == 0, report
            assert "a lab from" not in second.stdout, report
            after = _as_user(lent, tmp_path / "session2", "lab", "status", timeout=60)
            assert "lab: down" in after.stdout, after.stdout + after.stderr
            assert "namespaces: -" in after.stdout, after.stdout
        finally:
            _as_user(lent, demo, "lab", "down", timeout=120)
            shutil.rmtree(demo, ignore_errors=True)
