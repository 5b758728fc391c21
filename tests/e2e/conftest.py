"""Fixtures for end-to-end tests on the booted lab: `lab` (a running lab) and its helpers.

Use in any test file under tests/e2e/::

    @pytest.mark.lab
    def test_something(lab):               # lab: appliance.lab.handle.Lab
        result = lab.install()             # presence-appliance install -i lab/inventory.yml
        assert result.returncode == 0, result.stdout
        lab.pi_exec("systemctl", "is-active", "dnsmasq")   # inside the Pi, via its systemd
        lab.run_in("cam-cam1", "ip", "-4", "addr")          # in a camera's namespace
        lab.wait_camera_lease("cam1")["ntpsrv"]             # DHCP lease incl. option 42
        lab.counters()["by_destination"]                    # what reached the "internet"

One lab serves the whole session (brought up on first use, warm in ~2 s once the image is
cached) and is always taken down at the end, also when tests fail or the run is interrupted.
Tests marked `lab_lifecycle` take the lab down and up themselves; they run last.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from appliance.lab.handle import CLI, Lab
from appliance.lab.lab import SESSION_LOCK, is_up
from appliance.lab.state import LabState

REPO = Path(__file__).resolve().parents[2]
# Logs and state of the test lab stay here after the run (git-ignored) for debugging.
LAB_DIR = Path(os.environ.get("PA_LAB_TEST_DIR", REPO / "test-artifacts" / "lab"))
UP_TIMEOUT = 1200  # a cold image build included
# One lab per machine (its namespace names are global): concurrent test sessions queue on
# SESSION_LOCK, and `lab up`/`lab down` from outside the holding session refuse to run.
SESSION_WAIT = 1800


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab_lifecycle: takes the shared lab down/up itself (run after other tests)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests that take the shared lab down last, so others keep one provisioned Pi."""
    items.sort(key=lambda item: item.get_closest_marker("lab_lifecycle") is not None)


class LabSession:
    """Brings the shared lab up on demand and down at the end of the session."""

    def __init__(self, root: Path = LAB_DIR) -> None:
        self.root = root
        self.handle = Lab(root)
        self.up_seconds: float | None = None

    def env(self) -> dict[str, str]:
        """Environment for `lab` commands of this session (it holds the session lock)."""
        return {**self.handle.env(), "PA_LAB_TEST_SESSION": "1"}

    def command(self, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `presence-appliance lab ARGS` for this lab's directory; output captured."""
        return subprocess.run(
            [*CLI, "lab", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ensure_up(self, pis: int = 1, cameras: int = 2, isolation: str = "ap_isolate") -> Lab:
        """The lab with this shape, brought up (or rebuilt) when it is not already running."""
        state = LabState.load(self.root)
        wanted = {"pis": pis, "cameras": cameras, "isolation": isolation}
        current = {k: state.data.get("plan", {}).get(k) for k in wanted}
        if not is_up(state) or current != wanted:
            started = time.monotonic()
            if is_up(state):
                self.ensure_down()
            result = self.command(
                "up", "--pis", str(pis), "--cameras", str(cameras), "--isolation", isolation
            )
            self.up_seconds = time.monotonic() - started
            if result.returncode != 0:
                pytest.fail(f"lab up failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
            print(f"\n[lab] up in {self.up_seconds:.1f} s", file=sys.stderr)
        return self.handle

    def ensure_down(self) -> float:
        started = time.monotonic()
        result = self.command("down", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return time.monotonic() - started


@pytest.fixture(scope="session")
def lab_session() -> Iterator[LabSession]:
    """The session's lab manager; its finalizer always runs `lab down`."""
    if os.geteuid() != 0:
        reason = "lab tests need root (namespaces, mounts, systemd-nspawn)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI runs as root, so this is a broken CI setup", pytrace=False)
        pytest.skip(reason)
    lock = _wait_for_session_lock()
    session = LabSession()
    # SIGTERM (CI cancelling the job) becomes an exception, so the finalizer below runs.
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield session
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            session.ensure_down()
        finally:
            lock.close()


def _wait_for_session_lock() -> IO[str]:
    """Hold the machine's lab for this session, waiting (bounded) for another session."""
    handle = open(SESSION_LOCK, "w")  # noqa: SIM115 - held for the whole session
    deadline = time.monotonic() + SESSION_WAIT
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                pytest.fail(
                    f"another test session held the lab for {SESSION_WAIT} s", pytrace=False
                )
            if not told:
                print("\n[lab] waiting for another test session's lab", file=sys.stderr)
                told = True
            time.sleep(2)


@pytest.fixture
def lab(lab_session: LabSession) -> Lab:
    """A running lab (appliance.lab.handle.Lab): `.inventory_path`, `.run_in(ns, *cmd)`,
    `.pi_exec(*cmd)`, `.install(*args)`, `.camera_lease(name)`, `.wait_camera_lease(name)`,
    `.counters()`, `.wan_ntp_stop()`, `.wan_ntp_start()`, `.plan` (names and addresses)."""
    return lab_session.ensure_up()
