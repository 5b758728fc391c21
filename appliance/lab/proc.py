"""Start lab daemons detached (recorded by PID) and stop them again, only by recorded PID."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from appliance.lab.run import run
from appliance.lab.state import process_start_time


def spawn(
    cmd: Sequence[str | os.PathLike[str]], log: Path, env: dict[str, str] | None = None
) -> int:
    """Start CMD in its own session, detached from the caller (double fork), output to LOG.

    The daemon is re-parented away from us, so neither `lab up` nor a test process leaves
    zombies behind; the returned PID is the daemon's own.
    """
    args = [str(c) for c in cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(read_end)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(write_end, str(grandchild).encode())
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDONLY)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, 1024)
            os.execvpe(args[0], args, env if env is not None else os.environ)
        finally:
            os._exit(127)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        pid = int(pipe.read() or 0)
    os.waitpid(child, 0)
    if not pid:
        raise OSError(f"could not start {args[0]}")
    return pid


def is_running(pid: int) -> bool:
    """True when PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_pids(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM PIDS, wait up to TIMEOUT, then SIGKILL whatever still runs."""
    pids = [p for p in pids if is_running(p)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_running(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if is_running(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(is_running(p) for p in pids):
        time.sleep(0.05)


def stop_recorded(proc: dict, timeout: float = 5.0) -> None:
    """Stop a recorded process, but only if its PID still belongs to it (same start time)."""
    if proc.get("start") is not None and process_start_time(proc["pid"]) == proc["start"]:
        stop_pids([proc["pid"]], timeout)


def netns_pids(netns: str) -> list[int]:
    """Processes whose network namespace is NETNS (`ip netns pids`)."""
    result = run(["ip", "netns", "pids", netns], check=False, timeout=15)
    return [int(p) for p in result.stdout.split() if p.isdigit() and int(p) != os.getpid()]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
