"""Run one small shell script on a Pi over SSH (as Ansible would connect) and split its output.

`doctor` and `init` each gather everything they need in ONE ssh call: the script prints
named sections (`@@pa:NAME@@` ... `@@rc:N@@`), parsed here into {name: Section}.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from appliance import pi_shell

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

# How every probe script starts (doctor's and init's): `sec NAME` ... `end RC` print the
# markers split_sections reads; output in the C locale and a fixed PATH whoever the SSH user
# is; then the os, arch, model and virt sections that check_os (and init) read.
PROLOGUE = r"""
sec() { printf '\n@@pa:%s@@\n' "$1"; }
end() { printf '\n@@rc:%s@@\n' "$1"; }
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
sec os; cat /etc/os-release 2>&1; end $?
sec arch; uname -m; end $?
sec model; tr -d '\000' < /proc/device-tree/model 2>&1; end $?
sec virt; systemd-detect-virt 2>&1; end $?
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


def run_script(
    host_name: str,
    variables: dict[str, Any],
    body: str,
    args: list[str] | None = None,
    timeout: float = SSH_TIMEOUT,
) -> RemoteResult:
    """Run BODY (sh) on the Pi as root where possible, with ARGS as $1...; sections back."""
    remote = ["sh", "-c", WRAPPER, "sh", body, *(args or [])]
    started = time.monotonic()
    try:
        answer = pi_shell.run(host_name, variables, remote, timeout, MAX_ANSWER)
    except pi_shell.PiShellError as err:
        # The caller names the Pi ("cannot reach pi@HOST: ..."): only the reason here.
        suffix = " on this machine" if err.kind == "missing" else ""
        raise RemoteError(err.reason + suffix) from None
    seconds = time.monotonic() - started
    sections = split_sections(answer.stdout)
    if "sudo" not in sections:
        # ssh's own complaints come last; warnings about host keys come first.
        raise RemoteError(pi_shell.last_line(answer.stderr, answer.returncode))
    return RemoteResult(sections, seconds)
