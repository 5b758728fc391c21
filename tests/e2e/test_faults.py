"""Faults on the provisioned lab Pi: a killed service comes back by itself and `check` passes;
the SSH connection dropped in the middle of `install` leaves no half-written file."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.handle import CLI, Lab
from appliance.lab.plan import LAN_NS
from tests.e2e.test_safety import install, unit_state, write_inventory

pytestmark = pytest.mark.lab

# Every long-running service of the appliance (issue 12: nginx, dnsmasq, chrony, the log daemon,
# and the web role's login ban).
SERVICES = [
    "nginx.service",
    "dnsmasq.service",
    "chrony.service",
    "ulogd2.service",
    "fail2ban.service",
]


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lab, Path]:
    """The lab Pi provisioned once for the module (a re-run when another module did it)."""
    lab = lab_session.ensure_up()
    inventory = write_inventory(lab, tmp_path_factory.mktemp("faults") / "inventory.yml")
    result = install(lab, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return lab, inventory


def restarts(lab: Lab, unit: str) -> int:
    return int(lab.pi_exec("systemctl", "show", "-P", "NRestarts", unit).stdout.strip())


@pytest.mark.parametrize("unit", SERVICES)
def test_a_killed_service_comes_back_and_check_passes(
    installed: tuple[Lab, Path], unit: str
) -> None:
    lab, inventory = installed
    before = unit_state(lab, unit)
    assert before["ActiveState"] == "active" and before["MainPID"] != "0", before
    restarts_before = restarts(lab, unit)
    lab.pi_exec("kill", "-KILL", before["MainPID"])
    deadline = time.monotonic() + 30
    now = before
    while time.monotonic() < deadline:
        now = unit_state(lab, unit)
        if now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]):
            break
        time.sleep(0.5)
    assert now["ActiveState"] == "active" and now["MainPID"] != before["MainPID"], now
    # systemd brought it back (its Restart=), nobody else.
    assert restarts(lab, unit) == restarts_before + 1
    check = lab.cli("check", "-i", str(inventory), "--wait", "30")
    assert check.returncode == 0, check.stdout + check.stderr


# Where the roles write configuration: a file left here by a cut run (Ansible's
# `.ansible_tmp*` from its atomic move, a backup, a partial copy) would be read by a service.
CONFIG_DIRS = (
    "/etc/chrony",
    "/etc/dnsmasq.d",
    "/etc/hostapd",
    "/etc/nginx",
    "/etc/presence-appliance",
    "/etc/fail2ban",
    "/etc/systemd/system",
    "/etc/systemd/network",
)
# Every config the roles write, each with its service's own checker (the lab's hostapd parse).
CHECKERS = (
    ("chronyd", "-p"),
    ("dnsmasq", "--test"),
    ("nginx", "-t"),
    ("nft", "-c", "-f", "/etc/presence-appliance/firewall.nft"),
    ("/usr/local/sbin/lab-hostapd-stand-in", "check", "/etc/hostapd/hostapd.conf"),
)
CHRONY_CONF = "/etc/chrony/chrony.conf"
# The ntp role's template tasks: the drop is made while one of them runs.
WRITES_CHRONY = "ntp : Write chrony's configuration"
NTP_WRITES = (WRITES_CHRONY, "ntp : Have systemd restart chrony whenever it dies")


def config_files(lab: Lab) -> list[str]:
    found = lab.pi_exec("find", *CONFIG_DIRS, "-xdev", "-printf", "%p %y\\n").stdout
    return sorted(found.splitlines())


def assert_whole(lab: Lab, files: list[str]) -> None:
    """Every config accepted by its checker, no file added to or lost from the config
    directories, and every service running."""
    for checker in CHECKERS:
        result = lab.pi_exec(*checker, check=False)
        assert result.returncode == 0, f"{checker[0]}: {result.stdout}{result.stderr}"
    assert config_files(lab) == files
    units = ("hostapd.service", "presence-firewall.service", *SERVICES)
    states = lab.pi_exec("systemctl", "is-active", *units, check=False).stdout.split()
    assert states == ["active"] * len(units), dict(zip(units, states, strict=False))


def _lines(proc: subprocess.Popen[str], into: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.put(line)
    into.put(None)


def test_an_ssh_drop_in_the_middle_of_install_leaves_no_half_written_file(
    installed: tuple[Lab, Path], tmp_path: Path
) -> None:
    """The controller's SSH connection is cut from the home-network side while the ntp role
    writes chrony.conf: `ss -K` in pa-lan (the controller's namespace) destroys every TCP
    connection to the Pi's port 22, which resets both ends, as a laptop leaving the Wi-Fi does
    at its worst (the Pi's sshd ends the session and its command at once). It is repeated for
    a few seconds so whichever step of the task runs then (checksum, transfer, `validate`, the
    move into place) is the one cut."""
    lab, _ = installed
    pi = lab.plan.pi("pi")
    files = config_files(lab)
    before = lab.pi_exec("sha256sum", CHRONY_CONF).stdout.split()[0]
    # An edit that only chrony.conf sees, and that changes nothing in what chrony does.
    edited = write_inventory(
        lab, tmp_path / "edited" / "inventory.yml", ntp_test_inject_line="# faults: an edit"
    )
    argv = ["ip", "netns", "exec", LAN_NS, *CLI, "install", "-i", str(edited), "--no-check", "-v"]
    errors_file = tmp_path / "install.stderr"
    with errors_file.open("w") as stderr_sink:
        run = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_sink,
            text=True, env=lab.env(), start_new_session=True,
        )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(run, lines), daemon=True)
    reader.start()
    output: list[str] = []
    drops = 0
    try:
        deadline = time.monotonic() + 600
        cutting_until = None
        while True:
            timeout = 0.2 if cutting_until else max(0.1, deadline - time.monotonic())
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = ""
            if line is None:
                break
            output.append(line)
            if cutting_until is None and line.startswith(f"- {WRITES_CHRONY}"):
                cutting_until = time.monotonic() + 5
            if cutting_until is not None and time.monotonic() < cutting_until:
                killed = lab.run_in(LAN_NS, "ss", "-K", "-H", "-t", "dst", pi.address,
                                    "dport", "=", "22", check=False, timeout=10)  # fmt: skip
                drops += len(killed.stdout.splitlines())
            assert time.monotonic() < deadline, "".join(output)[-3000:]
        run.wait(60)
    finally:
        if run.poll() is None:  # the whole run: ansible-playbook and its ssh children too
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    stdout = "".join(output)
    stderr = errors_file.read_text()
    assert drops > 0, stdout[-3000:]
    assert run.returncode == 1, stdout[-3000:] + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {pi.host}: "), stderr
    assert any(task in errors[0] for task in NTP_WRITES), errors[0]
    assert "Traceback" not in stdout + stderr

    # The Pi as the cut left it: chrony.conf is the old or the new file, whole; nothing
    # stray in the config directories; every config accepted; every service running.
    assert_whole(lab, files)
    cut = lab.pi_exec("sha256sum", CHRONY_CONF).stdout.split()[0]

    rerun = install(lab, edited)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    after = lab.pi_exec("sha256sum", CHRONY_CONF).stdout.split()[0]
    assert after != before and cut in (before, after)
    assert "# faults: an edit" in lab.pi_exec("cat", CHRONY_CONF).stdout
    assert_whole(lab, files)
    # and chrony runs the file in place: it started after the file was last written.
    written = int(lab.pi_exec("stat", "-c", "%Y", CHRONY_CONF).stdout)
    started = lab.pi_exec("systemctl", "show", "--timestamp=unix", "-P",
                          "ExecMainStartTimestamp", "chrony.service").stdout  # fmt: skip
    assert int(started.strip().lstrip("@")) >= written, (started, written)
