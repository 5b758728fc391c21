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


TUNNEL = {
    "drops": {"pi": 3, "forward": 2},
    "recent": [
        {"time": 1, "kind": "pi", "source": "10.44.0.2", "destination": "10.44.0.1",
         "protocol": "tcp", "port": 22},
        {"time": 2, "kind": "forward", "source": "10.44.0.9", "destination": "10.42.0.11",
         "protocol": "tcp", "port": 80},
    ],
}  # fmt: skip


def test_the_tunnels_drops_are_kept_and_absent_without_remote_access() -> None:
    view = parse_view("pi", json.dumps({**GOOD, "tunnel": TUNNEL}))
    assert view.tunnel == TUNNEL
    assert parse_view("pi", json.dumps({**GOOD, "tunnel": None})).tunnel is None
    assert parse_view("pi", json.dumps(GOOD)).tunnel is None  # an older helper
    hostile = {"drops": {"pi": -1, "forward": "x"}, "recent": [{"source": "a\x1b" * 60}, 7]}
    view = parse_view("pi", json.dumps({**GOOD, "tunnel": hostile}))
    assert view.tunnel is not None and view.tunnel["drops"] == {"pi": 0, "forward": 0}
    (event,) = view.tunnel["recent"]
    assert len(event["source"]) == 80 and "\x1b" not in event["source"]


def test_the_table_shows_the_tunnels_drops_and_names_the_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SSH round trip is the lab test's (tests/e2e/test_remote.py); here the helper's
    # answer is given, to show how the command prints it.
    import appliance.firewall

    answer = {**GOOD, "tunnel": TUNNEL}
    monkeypatch.setattr(
        appliance.firewall,
        "collect",
        lambda inventory, limit: [parse_view("pi", json.dumps(answer))],
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    appliances:\n      hosts:\n        pi:\n"
        "          remote_access:\n            wireguard:\n              peers:\n"
        "                - {name: phone, public_key: k, address: 10.44.0.2}\n"
    )
    result = CliRunner().invoke(main, ["firewall", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines.index("WireGuard peers, blocked (the dashboard is all they may reach):")
    assert lines[header + 1].split() == ["appliance", "to", "pi", "past", "the", "pi"]
    assert lines[header + 2].split() == ["pi", "3", "2"]
    attempts = lines[lines.index("latest blocked attempts through the tunnel:") + 2 :]
    assert attempts[0].split()[:2] == ["pi", "phone"]  # named from the inventory
    assert attempts[0].split()[-1] == "10.44.0.1:22"
    assert attempts[1].split()[:2] == ["pi", "10.44.0.9"]  # not a peer of the inventory
    empty = {**GOOD, "tunnel": None}
    monkeypatch.setattr(
        appliance.firewall,
        "collect",
        lambda inventory, limit: [parse_view("pi", json.dumps(empty))],
    )
    result = CliRunner().invoke(main, ["firewall", "-i", str(inventory)])
    assert "WireGuard" not in result.output and "tunnel" not in result.output
