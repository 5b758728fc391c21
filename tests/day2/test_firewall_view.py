"""`presence-appliance firewall`: the helper's JSON is hostile input; an unreachable Pi is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.firewall import FirewallError, parse_view

GOOD = {
    "loaded": True,
    "revert_pending": False,
    "cameras": [
        {
            "name": "nord",
            "cloud": "allow",
            "vpn": {"packets": 12, "bytes": 3400},
            "drops": {"pi": 1, "camera": 0, "lan": 2, "internet": 3, "ntp": 4},
            "blocked_24h": 10,
            "recent": [
                {"time": 1, "kind": "lan", "destination": "10.0.0.1", "protocol": "tcp", "port": 80}
            ],
        }
    ],
}


def test_a_good_answer_is_kept_field_by_field() -> None:
    view = parse_view("pi", json.dumps(GOOD))
    (cam,) = view.cameras
    assert view.loaded and cam["name"] == "nord" and cam["vpn"] == {"packets": 12, "bytes": 3400}
    assert cam["drops"] == {"pi": 1, "camera": 0, "lan": 2, "internet": 3, "ntp": 4}
    assert cam["recent"][0]["destination"] == "10.0.0.1" and cam["recent"][0]["port"] == 80


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"cameras": 3}'])
def test_a_broken_answer_is_one_line(text: str) -> None:
    with pytest.raises(FirewallError) as err:
        parse_view("pi", text)
    assert "\n" not in str(err.value) and str(err.value).startswith("pi: ")


def test_hostile_fields_are_neutralised() -> None:
    bad = json.loads(json.dumps(GOOD))
    cam = bad["cameras"][0]
    cam["name"] = "nord\x1b[31m"
    cam["drops"]["lan"] = -5
    cam["vpn"]["packets"] = "many"
    cam["recent"][0]["destination"] = "x" * 500 + "\n"
    bad["cameras"].append("not a camera")
    view = parse_view("pi", json.dumps(bad))
    (cam,) = view.cameras
    assert cam["name"] == "nord?[31m"
    assert cam["drops"]["lan"] == 0 and cam["vpn"]["packets"] == 0
    assert (
        len(cam["recent"][0]["destination"]) == 80 and "\n" not in cam["recent"][0]["destination"]
    )


def test_an_unreachable_pi_is_one_line_and_exit_1(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    appliances:\n      hosts:\n        pi:\n"
        "          ansible_host: 127.0.0.1\n          ansible_port: 1\n"
    )
    result = CliRunner().invoke(main, ["firewall", "-i", str(inventory)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith("error: pi: SSH failed"), result.output
    assert "Traceback" not in result.output
