"""Small subprocess helpers for the lab: argument lists only, every call bounded by a timeout."""

from __future__ import annotations

import os
import shutil
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
) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell) and return it; raise LabError naming it when it fails."""
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(
            args,
            input=input_text,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        raise LabError(f"`{' '.join(args[:4])}` did not finish within {timeout:.0f} s") from err
    except FileNotFoundError as err:
        raise LabError(f"`{args[0]}` is not installed") from err
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise LabError(f"`{' '.join(args[:6])}` failed: {last}")
    return proc


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
