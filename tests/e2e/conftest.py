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

A lab the user brought up (`make demo`, `lab up`) is in the way of the session's lab (one per
machine): the session takes it down first, saying so, and at its end brings it back up, and
provisions it again when it was provisioned, so `make demo` then `make test` leaves the
user's lab as it was. Nothing else stays up after the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from appliance.lab.handle import CLI, Lab
from appliance.lab.lab import SESSION_LOCK, hold_within, is_up, running_lab
from appliance.lab.state import LabState

REPO = Path(__file__).resolve().parents[2]
# Logs and state of the test lab stay here after the run (git-ignored) for debugging.
LAB_DIR = Path(os.environ.get("PA_LAB_TEST_DIR", REPO / "test-artifacts" / "lab"))
UP_TIMEOUT = 1200  # a cold image build included
# One lab per machine (its namespace names are global): concurrent test sessions queue on
# SESSION_LOCK, and `lab up`/`lab down` from outside the holding session refuse to run.
SESSION_WAIT = int(os.environ.get("PA_LAB_SESSION_WAIT", "1800"))  # longer when many share it
# Set for a session run inside a test of another session that holds the lab and lends it
# (LabSession.lent): that session must not wait for the lock its parent holds.
LENT = "PA_LAB_SESSION_LENT"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab_lifecycle: takes the shared lab down/up itself (run after other tests)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lab tests after all others, so a session holds the machine's one lab only as long as
    it needs it; among them, those that take the shared lab down last, so the others keep
    one provisioned Pi."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("lab") is not None,
            item.get_closest_marker("lab_lifecycle") is not None,
        )
    )


# What the session did to the user's own lab, repeated in the summary at the end of the run.
_TOLD: list[str] = []


def _say(config: pytest.Config, line: str) -> None:
    """Tell the user now (past output capture) and again in the run's summary."""
    _TOLD.append(line)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(line, file=sys.stderr)
        return
    reporter.ensure_newline()
    reporter.write_line(line, yellow=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TOLD:
        terminalreporter.section("the user's lab")
        for line in _TOLD:
            terminalreporter.write_line(line)


@dataclass
class UserLab:
    """A lab someone brought up outside the test session (`make demo`), to bring back later."""

    root: Path
    shape: dict[str, str]  # pis, cameras, release, isolation as `lab up` options
    provisioned: bool

    def env(self) -> dict[str, str]:
        # Our session holds the session lock, so its `lab` calls carry PA_LAB_TEST_SESSION.
        return {**os.environ, "PA_LAB_DIR": str(self.root), "PA_LAB_TEST_SESSION": "1"}

    def run(self, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )


def take_down_user_lab(own_root: Path, say: Callable[[str], None]) -> UserLab | None:
    """Take down a lab that is up from another directory than the session's; None if none."""
    found = running_lab()
    if found is None or found[0].resolve() == own_root.resolve():
        return None
    root, state = found
    plan = state.data["plan"]
    shape = {k: str(plan[k]) for k in ("pis", "cameras", "release", "isolation")}
    if plan.get("network_manager"):
        shape["network-manager"] = ""  # a flag: `--network-manager`
    # "Provisioned" = `install` ran: the web role's nginx is what `make demo` leaves running.
    nginx = Lab(root).pi_exec("systemctl", "is-active", "nginx", check=False, timeout=30)
    user = UserLab(root, shape, provisioned=nginx.stdout.strip() == "active")
    say(
        f"[lab] a lab from {root} is up (`make demo` or `lab up`): taking it down for the "
        "test session (one lab per machine); it is brought back up"
        + (" and provisioned again" if user.provisioned else "")
        + " when the tests end"
    )
    result = user.run("lab", "down", timeout=120)
    if result.returncode != 0:
        pytest.fail(f"could not take down the lab in {root}:\n{result.stdout}{result.stderr}")
    return user


def bring_back_user_lab(user: UserLab, say: Callable[[str], None]) -> None:
    """`lab up` (same shape) and, if it was provisioned, `install` the user's lab again."""
    started = time.monotonic()
    options = [f"--{key}={value}" if value else f"--{key}" for key, value in user.shape.items()]
    steps = [("lab", "up", *options)]
    if user.provisioned:
        steps.append(("install", "-i", str(user.root / "inventory.yml")))
    for step in steps:
        result = user.run(*step)
        if result.returncode != 0:
            say(f"[lab] bringing your lab back failed at `{' '.join(step[:2])}`")
            pytest.fail(
                f"bringing back the lab in {user.root} failed at `{' '.join(step[:2])}`:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}",
                pytrace=False,
            )
    say(
        f"[lab] your lab from {user.root} is up again"
        + (" and provisioned" if user.provisioned else "")
        + f" ({time.monotonic() - started:.0f} s); `presence-appliance lab down` removes it"
    )


class LabSession:
    """Brings the shared lab up on demand and down at the end of the session."""

    def __init__(self, root: Path = LAB_DIR) -> None:
        self.root = root
        self.handle = Lab(root)
        self.up_seconds: float | None = None

    @contextmanager
    def lent(self) -> Iterator[dict[str, str]]:
        """Take the session's lab down and lend the machine's lab to commands run with the
        returned environment (a user's `lab up`, another test session), for a test that plays
        the user. This session keeps holding the lab, so no other session slips in between."""
        self.ensure_down()
        try:
            yield {LENT: "1", "PA_LAB_TEST_SESSION": "1"}
        finally:
            self.ensure_down()

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

    def ensure_up(
        self,
        pis: int = 1,
        cameras: int = 2,
        isolation: str = "ap_isolate",
        release: str = "bookworm",
        network_manager: bool = False,
    ) -> Lab:
        """The lab with this shape, brought up (or rebuilt) when it is not already running."""
        state = LabState.load(self.root)
        wanted = {
            "pis": pis,
            "cameras": cameras,
            "isolation": isolation,
            "release": release,
            "network_manager": network_manager,
        }
        plan = state.data.get("plan", {})
        current = {k: plan.get(k, False if k == "network_manager" else None) for k in wanted}
        if not is_up(state) or current != wanted:
            started = time.monotonic()
            if is_up(state):
                self.ensure_down()
            result = self.command(
                "up",
                "--pis",
                str(pis),
                "--cameras",
                str(cameras),
                "--isolation",
                isolation,
                "--release",
                release,
                *(["--network-manager"] if network_manager else []),
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
def lab_session(request: pytest.FixtureRequest) -> Iterator[LabSession]:
    """The session's lab manager; its finalizer always runs `lab down` (and brings back a
    user's lab that it took down at the start)."""
    if os.geteuid() != 0:
        reason = "lab tests need root (namespaces, mounts, systemd-nspawn)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI runs as root, so this is a broken CI setup", pytrace=False)
        pytest.skip(reason)
    waiting = time.monotonic()
    lock = _wait_for_session_lock()
    waited = time.monotonic() - waiting
    session = LabSession()

    def say(line: str) -> None:
        _say(request.config, line)

    if waited > 5:
        say(f"[lab] waited {waited:.0f} s for another test session to finish with the lab")
    try:
        user = take_down_user_lab(session.root, say)
    except BaseException:
        lock.close()
        raise
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
            if user is not None:
                bring_back_user_lab(user, say)
        finally:
            lock.close()


def _wait_for_session_lock() -> IO[str]:
    """Hold the machine's lab for this session, waiting (bounded) for another session."""
    handle = open(SESSION_LOCK, "w")  # noqa: SIM115 - held for the whole session
    if os.environ.get(LENT):
        return handle
    try:
        _lock_within(handle, SESSION_WAIT)
    except BaseException:
        handle.close()
        raise
    return handle


def _lock_within(handle: IO[str], seconds: float) -> None:
    """flock HANDLE exclusively, waiting at most SECONDS for whoever holds it."""

    def waiting() -> None:
        print("\n[lab] waiting for another test session's lab", file=sys.stderr)

    if not hold_within(handle, seconds, waiting):
        pytest.fail(f"another test session held the lab for {seconds:.0f} s", pytrace=False)


@pytest.fixture
def lab(lab_session: LabSession) -> Lab:
    """A running lab (appliance.lab.handle.Lab): `.inventory_path`, `.run_in(ns, *cmd)`,
    `.pi_exec(*cmd)`, `.install(*args)`, `.camera_lease(name)`, `.wait_camera_lease(name)`,
    `.counters()`, `.wan_ntp_stop()`, `.wan_ntp_start()`, `.plan` (names and addresses)."""
    return lab_session.ensure_up()
