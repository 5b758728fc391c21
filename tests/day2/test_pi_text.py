"""appliance.pi_text: text from a Pi is printable and bounded; byte counts read as before."""

from __future__ import annotations

import pytest

from appliance import pi_text, recordings


def test_clean_replaces_control_characters_and_bounds():
    assert pi_text.clean("ok\x1b[2Jé\n") == "ok?[2J??"
    assert pi_text.clean("x" * 500) == "x" * 80
    assert pi_text.clean("x" * 500, 200) == "x" * 200


@pytest.mark.parametrize(
    ("count", "iec", "recordings_units"),
    [
        (0, "0 B", "0 B"),
        (1023, "1023 B", "1023 B"),
        (1536, "1.5 KiB", "1.5 KB"),
        (5 * 1024**3, "5.0 GiB", "5.0 GB"),
        (3 * 1024**4, "3072.0 GiB", "3072.0 GB"),
    ],
)
def test_human_bytes(count, iec, recordings_units):
    assert pi_text.human_bytes(count) == iec
    assert recordings.human_bytes(count) == recordings_units
