"""Assertions on a CliRunner result that a crash cannot pass: no traceback, no "internal error"
line, no exit 70, and exit 2 only with an ordinary `error: <place>: ...` line."""

from __future__ import annotations

from typing import Any

from appliance.cli.common import EXIT_BUG


def assert_no_crash(result: Any, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    """RESULT (click.testing.Result) ended as the tool means to end: one of ALLOWED exit codes
    and never through `no_traceback`'s last line of defence."""
    output = result.output
    exception = result.exception
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    assert result.exit_code != EXIT_BUG, output
    assert result.exit_code in allowed, (result.exit_code, output)
    if result.exit_code == 2:
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert errors, f"exit 2 without an error line: {output!r}"
