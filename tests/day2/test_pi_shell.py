"""appliance.pi_shell: each way a command on a Pi can fail is one PiShellError naming the Pi.

Real processes: `ansible_connection: local` runs the command here, and a real ssh to a closed
loopback port is the unreachable Pi (ssh's own exit 255).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from appliance import pi_shell

LOCAL = {"ansible_connection": "local"}


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound then released: refused on connect)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fail(variables: dict, remote: list[str], **kwargs) -> pi_shell.PiShellError:
    with pytest.raises(pi_shell.PiShellError) as caught:
        pi_shell.output("garden-pi", variables, remote, kwargs.pop("timeout", 10), **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


def test_stdout_comes_back_and_stdin_is_closed():
    # `cat` with no file reads stdin: closed, it ends at once with nothing.
    assert pi_shell.output("garden-pi", LOCAL, ["sh", "-c", "echo hi; cat"], 10) == "hi\n"


def test_non_zero_exit_names_the_pi_what_and_the_last_line():
    err = fail(LOCAL, ["sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 3"], what="reading X")
    assert (err.kind, str(err)) == ("exit", "garden-pi: reading X failed: it broke")
    err = fail(LOCAL, ["sh", "-c", "exit 4"])
    assert str(err) == "garden-pi: exit 4"


def test_exit_255_run_here_is_the_commands_own_not_ssh():
    err = fail(LOCAL, ["sh", "-c", "echo nope >&2; exit 255"], what="x")
    assert (err.kind, str(err)) == ("exit", "garden-pi: x failed: nope")


@pytest.mark.parametrize(
    "remote",
    [
        ["cat", "/no/such/file/xyz"],
        # sudo's words when the helper is not installed (sudo may not be here: same line).
        ["sh", "-c", "echo 'sudo: /usr/local/sbin/presence-x: command not found' >&2; exit 1"],
    ],
)
def test_a_command_or_file_missing_on_the_pi_gets_the_callers_words(remote):
    err = fail(LOCAL, remote, what="x", absent="not installed yet")
    assert (err.kind, str(err)) == ("exit", "garden-pi: not installed yet")


def test_hostile_error_text_is_one_short_printable_line():
    err = fail(LOCAL, ["sh", "-c", r"printf 'bad\033[31m%0300d\r\n' 0 >&2; exit 1"])
    message = str(err)
    assert message.startswith("garden-pi: bad?[31m000") and "\033" not in message
    assert len(err.reason) == pi_shell.MAX_LINE


def test_a_missing_program_here():
    err = fail(LOCAL, ["no-such-program-xyz"])
    assert (err.kind, str(err)) == ("missing", "garden-pi: `no-such-program-xyz` is not installed")


def test_no_answer_within_the_timeout_kills_it():
    err = fail(LOCAL, ["sleep", "30"], timeout=0.3)
    assert (err.kind, str(err)) == ("timeout", "garden-pi: no answer over SSH within 0.3 s")


def ended(pid: int) -> bool:
    """PID is gone, or a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("start", [0.0, 0.7], ids=["shell-starts-at-once", "shell-starts-late"])
def test_a_timeout_also_ends_what_the_command_started(tmp_path, start):
    pidfile, written = tmp_path / "child.pid", tmp_path / "child.pid.done"
    # The child lets go of the pipes: only ending its process group ends it. START: a shell
    # slow to get going (a loaded machine) has not started the child when a short timeout
    # hits; then the timeout is doubled until it has (bounded).
    script = f"sleep {start}; sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}; touch {written}; wait"
    timeout = 0.5
    while True:
        err = fail(LOCAL, ["sh", "-c", script], timeout=timeout)
        assert err.kind == "timeout"
        if written.exists() or timeout > 10:
            break
        timeout *= 2
    child = int(pidfile.read_text())
    try:
        deadline = time.monotonic() + 10
        while not ended(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ended(child), f"the command's child {child} outlived the timeout"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_an_answer_over_the_cap_is_not_read():
    err = fail(LOCAL, ["sh", "-c", "head -c 3000000 /dev/zero"], limit=2 * 1024 * 1024)
    assert (err.kind, err.reason) == ("too_big", "the answer was larger than 2 MiB; not read")


def test_unreachable_pi_is_ssh_failed():
    port = closed_loopback_port()
    variables = {"ansible_host": "127.0.0.1", "ansible_port": port}
    err = fail(variables, ["true"], what="x", absent="not there")
    assert err.kind == "ssh"
    assert str(err).startswith("garden-pi: SSH failed: ssh: connect to host 127.0.0.1 port ")
    assert str(err).endswith("Connection refused")


def test_run_returns_the_exit_code_and_both_streams():
    answer = pi_shell.run("garden-pi", LOCAL, ["sh", "-c", "echo o; echo e >&2; exit 7"], 10)
    assert answer == pi_shell.Answer(7, "o\n", "e\n")
