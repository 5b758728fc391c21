"""Run one command on a Pi as Ansible would connect (ssh, or here when ansible_connection=local).

Every call is bounded (a timeout, a cap on what the Pi may answer, stdin closed) and every
failure is one PiShellError whose message is one line naming the Pi. Callers that word a
failure their own way look at its `kind`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Literal

from appliance.pi_text import clean

# What a Pi may answer by default, per stream: far more than any helper prints, so the cap
# only stops a hostile or broken Pi from filling the controller's memory.
MAX_ANSWER = 16 * 1024 * 1024
# An error line from the Pi is hostile text: printable ASCII only (pi_text.clean), and short.
MAX_LINE = 200
# What a shell or a program prints when the thing it was asked to run is not there.
_ABSENT = ("command not found", "No such file")

Kind = Literal["missing", "timeout", "too_big", "ssh", "exit"]


class PiShellError(Exception):
    """One command on one Pi did not run or failed; `str()` is one line naming the Pi.

    kind: "missing" (the program to start is not on this machine), "timeout", "too_big"
    (the answer passed the cap), "ssh" (ssh itself failed: exit 255), "exit" (the command
    exited non-zero). `reason` is the message without the Pi's name.
    """

    def __init__(self, host: str, kind: Kind, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    """What the command left: its exit code and both streams (decoded, bad bytes replaced)."""

    returncode: int
    stdout: str
    stderr: str


def is_local(variables: dict[str, Any]) -> bool:
    return variables.get("ansible_connection") == "local"


def _first(variables: dict[str, Any], *names: str) -> Any:
    for name in names:
        if variables.get(name) not in (None, ""):
            return variables[name]
    return None


def ssh_command(host_name: str, variables: dict[str, Any], remote: list[str]) -> list[str]:
    """The ssh argument list Ansible's ssh connection would use for this host (no shell)."""
    host = _first(variables, "ansible_host", "ansible_ssh_host") or host_name
    user = _first(variables, "ansible_user", "ansible_ssh_user")
    port = _first(variables, "ansible_port", "ansible_ssh_port")
    key = _first(variables, "ansible_ssh_private_key_file", "ansible_private_key_file")
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    for extra in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if variables.get(extra):
            cmd += shlex.split(str(variables[extra]))
    if port:
        cmd += ["-p", str(port)]
    if key:
        cmd += ["-i", str(key)]
    if user:
        cmd += ["-l", str(user)]
    return [*cmd, "--", str(host), shlex.join(remote)]


def last_line(stderr: str, returncode: int) -> str:
    """The last non-blank stderr line, safe to print (ssh's own complaint comes last)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return clean(lines[-1], MAX_LINE) if lines else f"exit {returncode}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End CMD and everything it started (a local `sh -c` leaves children holding the pipes)."""
    with contextlib.suppress(ProcessLookupError):  # the group has already ended
        os.killpg(proc.pid, signal.SIGKILL)


def _bounded(host: str, cmd: list[str], timeout: float, limit: int) -> Answer:
    """Run CMD; more than LIMIT bytes on either stream, or no end within TIMEOUT, kills it."""
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # its own group, so that _kill reaches its children too
        )
    except FileNotFoundError:
        raise PiShellError(host, "missing", f"`{cmd[0]}` is not installed") from None
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    too_big = threading.Event()

    def drain(name: str, stream: Any) -> None:
        size = 0
        while block := stream.read1(65536):
            size += len(block)
            if size > limit:
                too_big.set()
                _kill(proc)
                return
            chunks[name].append(block)

    # Both streams at once: a Pi that fills one pipe while we wait on the other would hang.
    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        raise PiShellError(host, "timeout", f"no answer over SSH within {timeout:g} s") from None
    except BaseException:
        # Ctrl-C reaches only the terminal's process group, not this one: end it here.
        _kill(proc)
        proc.wait()
        raise
    finally:
        for reader in readers:
            reader.join(5)
        # A stream still being read is left open: closing it would wait for that read.
        for reader, stream in zip(readers, (proc.stdout, proc.stderr), strict=True):
            if stream is not None and not reader.is_alive():
                stream.close()
    if too_big.is_set():
        reason = f"the answer was larger than {limit // 1024 // 1024} MiB; not read"
        raise PiShellError(host, "too_big", reason)
    out, err = (b"".join(chunks[k]).decode("utf-8", "replace") for k in ("out", "err"))
    return Answer(code, out, err)


def run(
    host_name: str,
    variables: dict[str, Any],
    remote: list[str],
    timeout: float,
    limit: int = MAX_ANSWER,
) -> Answer:
    """Run REMOTE on the Pi whatever its exit code; raises only when it could not run
    (missing, timeout, too_big)."""
    cmd = remote if is_local(variables) else ssh_command(host_name, variables, remote)
    return _bounded(host_name, cmd, timeout, limit)


def output(
    host_name: str,
    variables: dict[str, Any],
    remote: list[str],
    timeout: float,
    *,
    what: str | None = None,
    absent: str | None = None,
    limit: int = MAX_ANSWER,
) -> str:
    """REMOTE's stdout when it exits 0, else PiShellError: "SSH failed: LINE" when ssh itself
    failed; ABSENT when the command is not on the Pi; else "WHAT failed: LINE" (or "LINE")."""
    answer = run(host_name, variables, remote, timeout, limit)
    if answer.returncode == 0:
        return answer.stdout
    last = last_line(answer.stderr, answer.returncode)
    # Only ssh's own 255 means the Pi was not reached; run here, 255 is the command's own.
    if answer.returncode == 255 and not is_local(variables):
        raise PiShellError(host_name, "ssh", f"SSH failed: {last}")
    if absent is not None and any(sign in last for sign in _ABSENT):
        raise PiShellError(host_name, "exit", absent)
    raise PiShellError(host_name, "exit", f"{what} failed: {last}" if what else last)
