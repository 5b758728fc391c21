"""`camera floodlight|monitoring|snapshot` against a hostile camera: one clear line, exit 1.

Wrong JSON types, huge or endless bodies, drips, garbage, terminal escapes in the camera's
strings: every one ends in exactly one printable `error: <camera>: ...` line and exit 1,
never a traceback, never a second line a camera chose, never a half-written snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.day2.conftest import inventory_text
from tests.day2.hostile_camera import (
    Behaviour,
    HostileCamera,
    Peer,
    Seen,
    answer,
    drip,
    endless,
    head,
    hostile_camera,
    json_answer,
    redirect,
)
from tests.day2.test_check_hostile import bounded

TIMEOUT = "2"


@pytest.fixture
def camera() -> Iterator[HostileCamera]:
    with hostile_camera(host="127.0.0.1") as server:
        yield server


def inventory_for(tmp_path: Path, camera: HostileCamera) -> Path:
    entry = {
        "name": camera.name,
        "mac": "70:ee:50:00:00:01",
        "ip": camera.host,
        "port": camera.port,
        "secure_id": camera.secure_id,
    }
    path = tmp_path / "inventory.yml"
    path.write_text(inventory_text([entry]))
    return path


def run(tmp_path: Path, camera: HostileCamera, *args: str) -> tuple[int, str]:
    inventory = inventory_for(tmp_path, camera)
    argv = ["camera", *args, "-i", str(inventory), "--direct", "--timeout", TIMEOUT]
    result = bounded(lambda: CliRunner().invoke(main, argv))
    return result.exit_code, result.output


def one_error_line(output: str, camera: HostileCamera) -> str:
    """The single line of a refused command; everything a hostile camera could abuse is absent."""
    assert "Traceback" not in output
    assert camera.secure_id not in output
    assert "\x1b" not in output and "\x07" not in output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: {camera.name}: "), output
    return lines[0][len(f"error: {camera.name}: ") :]


FLOODLIGHT = "command/floodlight_get_config"


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (json_answer([1, 2]), "floodlight_get_config: unexpected answer"),
        (json_answer("auto"), "floodlight_get_config: unexpected answer"),
        (json_answer(None), "floodlight_get_config: unexpected answer"),
        (
            answer(200, "application/json", "[" * 30_000 + "]" * 30_000),
            "floodlight_get_config: answer is not JSON (HTTP 200)",
        ),
        (
            answer(200, "application/json", '{"a":' * 20 + "1" + "}" * 20),
            "floodlight_get_config: answer: JSON nested deeper than 16 levels (HTTP 200)",
        ),
        (
            answer(200, "application/json", '{"mode": NaN}'),
            "floodlight_get_config: answer is not JSON (HTTP 200)",
        ),
        (
            answer(200, "application/json", b'{"mode": "\xff\xfe"}'),
            "floodlight_get_config: answer is not JSON (HTTP 200)",
        ),
        (
            endless("application/json", b" ", length=10**9),
            "command/floodlight_get_config: answer of 953 MB, more than 64 kB",
        ),
        (
            endless("application/json", b"[1,"),
            "command/floodlight_get_config: answer longer than 64 kB",
        ),
        (
            drip(head(200, {"Content-Type": "application/json"}) + b'{"mode"'),
            f"no answer within {TIMEOUT} s",
        ),
        (
            redirect("http://127.203.160.2/steal"),
            "command/floodlight_get_config: redirected (HTTP 302); redirects are not followed",
        ),
        (
            answer(200, "text/plain", '{"mode": "auto"}'),
            "floodlight_get_config: content type text/plain, not application/json",
        ),
        (
            answer(
                500, "application/json", '{"error": {"code": "\\u001b[2J", "message": "a\\nb"}}'
            ),
            "floodlight_get_config: HTTP 500, camera error ?[2J: a?b",
        ),
    ],
)
def test_floodlight_against_hostile_answers(behaviour, message, camera, tmp_path):
    camera.routes[FLOODLIGHT] = behaviour
    code, output = run(tmp_path, camera, "floodlight", camera.name, "on")
    assert code == 1, output
    assert one_error_line(output, camera) == message
    # Nothing was written to a camera whose configuration could not be read.
    assert [s for s in camera.requests if s.path.endswith("floodlight_set_config")] == []


def test_camera_strings_are_shown_cut_and_printable(camera, tmp_path):
    # A camera that keeps what it is told, but whose own fields carry escapes and newlines.
    config = {"mode": "on", "intensity": "\x1b]0;owned\x07\nsecond line", "night": {"\ud800": 1}}
    stored: dict[str, object] = {"config": config}

    def get(seen, peer):  # type: ignore[no-untyped-def]
        json_answer(stored["config"])(seen, peer)

    def put(seen, peer):  # type: ignore[no-untyped-def]
        import json
        from urllib.parse import parse_qs, urlsplit

        stored["config"] = json.loads(parse_qs(urlsplit(seen.target).query)["config"][0])
        json_answer({"status": "ok"})(seen, peer)

    camera.routes[FLOODLIGHT] = get
    camera.routes["command/floodlight_set_config"] = put
    code, output = run(tmp_path, camera, "floodlight", camera.name, "on")
    assert code == 0, output
    assert output == f"{camera.name}: floodlight mode=on intensity=?]0;owned??se... night ?=on\n"


def test_a_huge_configuration_is_not_written_back(camera, tmp_path):
    camera.routes[FLOODLIGHT] = json_answer({"mode": "auto", "junk": "x" * 30_000})
    code, output = run(tmp_path, camera, "floodlight", camera.name, "off")
    assert code == 1
    assert one_error_line(output, camera) == (
        "floodlight_set_config: the camera's configuration is longer than 2048 characters; "
        "not written back"
    )
    assert [s for s in camera.requests if s.path.endswith("floodlight_set_config")] == []


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            json_answer({"error": {"code": 9, "message": "\x1b[31mred\nfake: line"}}, 409),
            "changestatus: HTTP 409, camera error 9: ?[31mred?fake: line",
        ),
        (json_answer({"error": ["x"]}, 400), "changestatus: HTTP 400"),
        (answer(418, "text/plain", "\x1b[2J"), "changestatus: HTTP 418"),
        (answer(200, "application/json", ""), "changestatus: answer is not JSON (HTTP 200)"),
        (
            endless("application/json", b"{", status=409),
            "command/changestatus: answer longer than 64 kB",
        ),
    ],
)
def test_monitoring_against_hostile_answers(behaviour, message, camera, tmp_path):
    camera.routes["command/changestatus"] = behaviour
    code, output = run(tmp_path, camera, "monitoring", camera.name, "off")
    assert code == 1, output
    assert one_error_line(output, camera) == message


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (
            endless("image/jpeg", b"\xff", length=10**9),
            "live/snapshot_720.jpg: answer of 953 MB, more than 8 MB",
        ),
        (
            endless("image/jpeg", b"\xff\xd8\xff" * 1000),
            "live/snapshot_720.jpg: answer longer than 8 MB",
        ),
        (
            answer(200, "text/html", b"\xff\xd8\xff"),
            "snapshot: content type text/html, not image/jpeg",
        ),
        (answer(200, "image/jpeg", b"GIF89a"), "snapshot: body is not a JPEG image"),
    ],
)
def test_snapshot_against_hostile_answers(behaviour, message, camera, tmp_path):
    camera.routes["live/snapshot_720.jpg"] = behaviour
    out = tmp_path / "shot.jpg"
    code, output = run(tmp_path, camera, "snapshot", camera.name, "-o", str(out))
    assert code == 1, output
    assert one_error_line(output, camera) == message
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".shot")] == []


def test_a_command_is_cut_at_its_budget(camera, tmp_path, monkeypatch):
    # Each answer within the per-request timeout; the command as a whole is cut at its
    # budget (here 1 timeout; 4 normally), so three slow answers cannot add up.
    monkeypatch.setattr("appliance.cli.camera_cmds.COMMAND_BUDGET_TIMEOUTS", 1)
    for path in list(camera.routes):
        camera.routes[path] = _late(camera.routes[path], float(TIMEOUT) * 0.6)
    code, output = run(tmp_path, camera, "floodlight", camera.name, "on")
    assert code == 1, output
    assert one_error_line(output, camera) == f"no complete answer within {TIMEOUT} s"


def _late(behaviour: Behaviour, seconds: float) -> Behaviour:
    def behave(seen: Seen, peer: Peer) -> None:
        peer.pause(seconds)
        behaviour(seen, peer)

    return behave
