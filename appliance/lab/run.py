"""Small subprocess helpers for the lab: argument lists only, every call bounded by a timeout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class LabError(Exception):
    """A lab step failed; the message is one line a user can act on."""


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 60,
    check: bool = True,
    capture: bool = True,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    record: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell) and return it; raise LabError naming it when it fails.

    With RECORD, the command runs in its own process group whose id is written to RECORD
    (`PID START`), so a later `lab down` can stop it and its children if we are killed.
    """
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            env=env,
            start_new_session=record is not None,
        )
    except FileNotFoundError as err:
        raise LabError(f"`{args[0]}` is not installed") from err
    if record is not None:
        record.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        _kill(proc, group=record is not None)
        raise LabError(f"`{' '.join(args[:4])}` did not finish within {timeout:.0f} s") from err
    except BaseException:
        _kill(proc, group=record is not None)
        raise
    finally:
        if record is not None:
            record.unlink(missing_ok=True)
    result = subprocess.CompletedProcess(args, proc.returncode, stdout or "", stderr or "")
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        last = detail[-1] if detail else f"exit {result.returncode}"
        raise LabError(f"`{' '.join(args[:6])}` failed: {last}")
    return result


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return "0"


def _kill(proc: subprocess.Popen[str], group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    proc.wait()


def stop_recorded_group(record: Path) -> None:
    """Kill the process group written to RECORD by `run(record=...)` if it still is the same."""
    try:
        pid, start = record.read_text().split()
    except (OSError, ValueError):
        return
    if _start_time(int(pid)) == start:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGKILL)
    record.unlink(missing_ok=True)


def ip(
    *args: str, netns: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `ip` (optionally `ip -n NETNS`)."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return run(cmd, timeout=15, check=check)


def in_netns(netns: str, *cmd: str) -> list[str]:
    """The argument list that runs CMD inside network namespace NETNS."""
    return ["ip", "netns", "exec", netns, *cmd]


def require_tools(tools: dict[str, str]) -> None:
    """Fail with one line naming the Debian package when a tool is missing (tool -> package)."""
    for tool, package in tools.items():
        if shutil.which(tool) is None and not Path(tool).exists():
            raise LabError(f"`{tool}` not found: install the Debian package {package}")


def require_root() -> None:
    """The lab creates namespaces and mounts: it needs root."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, systemd-nspawn): run it with sudo")
