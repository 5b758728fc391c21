"""Run one small shell script on a Pi over SSH (as Ansible would connect) and split its output.

`doctor` and `init` each gather everything they need in ONE ssh call: the script prints
named sections (`@@pa:NAME@@` ... `@@rc:N@@`), parsed here into {name: Section}.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from appliance.leases import ssh_command

SSH_TIMEOUT = 60.0
# The probe prints a few kB (the journal section is the largest, 400 lines at most).
MAX_ANSWER = 4 * 1024 * 1024
_MARK = re.compile(r"^@@pa:([a-z0-9_:.-]+)@@$")
_RC = re.compile(r"^@@rc:(-?\d+)@@$")

# Run the body as root: directly when already root, else through `sudo -n` (never a
# prompt: a password prompt would hang a batch ssh call). Without sudo the body still
# runs as the user and the `sudo` section says why, so the caller can report it.
WRAPPER = r"""
body=$1; shift
printf '\n@@pa:sudo@@\n'
if [ "$(id -u)" = 0 ]; then echo root; rc=0; runner=""
elif out=$(sudo -n true 2>&1); then echo sudo; rc=0; runner="sudo -n"
else printf '%s\n' "$out"; rc=1; runner=""
fi
printf '\n@@rc:%s@@\n' "$rc"
$runner sh -c "$body" sh "$@"
"""


class RemoteError(Exception):
    """The Pi could not be reached or the script could not run; one line."""


@dataclass(frozen=True)
class Section:
    text: str
    rc: int


@dataclass(frozen=True)
class RemoteResult:
    sections: dict[str, Section]
    seconds: float


def split_sections(output: str) -> dict[str, Section]:
    """`@@pa:NAME@@` lines open a section, `@@rc:N@@` closes it; anything else is its text."""
    sections: dict[str, Section] = {}
    name: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if (mark := _MARK.match(line)) is not None:
            name, lines = mark.group(1), []
        elif (rc := _RC.match(line)) is not None and name is not None:
            sections[name] = Section("\n".join(lines).strip("\n"), int(rc.group(1)))
            name = None
        elif name is not None:
            lines.append(line)
    return sections


def _bounded_run(cmd: list[str], timeout: float, limit: int) -> tuple[int, str, str]:
    """Run CMD; (exit code, stdout, stderr). The Pi is not trusted: more than LIMIT bytes on
    either stream, or no end within TIMEOUT, kills it (RemoteError)."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    too_big = threading.Event()

    def drain(name: str, stream: Any) -> None:
        size = 0
        while block := stream.read1(65536):
            size += len(block)
            if size > limit:
                too_big.set()
                proc.kill()
                return
            chunks[name].append(block)

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RemoteError(f"no answer over SSH within {timeout:g} s") from None
    finally:
        for reader in readers:
            reader.join(5)
    if too_big.is_set():
        raise RemoteError(f"the answer was larger than {limit // 1024 // 1024} MiB; not read")
    out, err = (b"".join(chunks[k]).decode("utf-8", "replace") for k in ("out", "err"))
    return code, out, err


def run_script(
    host_name: str,
    variables: dict[str, Any],
    body: str,
    args: list[str] | None = None,
    timeout: float = SSH_TIMEOUT,
) -> RemoteResult:
    """Run BODY (sh) on the Pi as root where possible, with ARGS as $1...; sections back."""
    remote = ["sh", "-c", WRAPPER, "sh", body, *(args or [])]
    local = variables.get("ansible_connection") == "local"
    cmd = remote if local else ssh_command(host_name, variables, remote)
    started = time.monotonic()
    try:
        code, stdout, stderr = _bounded_run(cmd, timeout, MAX_ANSWER)
    except FileNotFoundError:
        raise RemoteError(f"`{cmd[0]}` is not installed on this machine") from None
    seconds = time.monotonic() - started
    sections = split_sections(stdout)
    if "sudo" not in sections:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        # ssh's own complaints come last; warnings about host keys come first.
        reason = lines[-1] if lines else f"exit {code}"
        raise RemoteError(reason[:300])
    return RemoteResult(sections, seconds)
