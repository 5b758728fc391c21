"""`presence-appliance camera floodlight|monitoring|snapshot` against emulated cameras (direct)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from appliance.cli import main
from appliance.cli.camera_cmds import merge_floodlight, parse_night
from tests.day2.conftest import camera_entry, write_inventory


def camera_cli(inventory: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["camera", *args, "-i", str(inventory), "--direct", "--timeout", "2"]
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_floodlight_changes_only_what_was_asked(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    before = camera.state.snapshot()["floodlight"]
    code, output = camera_cli(inventory, "floodlight", camera.name, "on", "--intensity", "40")
    assert code == 0, output
    after = camera.state.snapshot()["floodlight"]
    assert after["mode"] == "on" and after["intensity"] == 40
    assert after["night"] == before["night"]  # the camera replaces the object: we sent it whole
    assert "mode=on intensity=40" in output

    code, output = camera_cli(
        inventory, "floodlight", camera.name, "auto", "--night", "person=off,animal=on"
    )
    assert code == 0, output
    after = camera.state.snapshot()["floodlight"]
    assert after["mode"] == "auto" and after["intensity"] == 40
    assert after["night"] == {**before["night"], "person": False, "animal": True}
    assert camera.secure_id not in output


def test_floodlight_bad_night_option_is_a_usage_error(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    code, output = camera_cli(inventory, "floodlight", camera.name, "on", "--night", "cat=on")
    assert code == 2
    assert "--night" in output
    assert camera.stats.report()["requests"] == 0


def test_merge_keeps_unknown_fields_and_string_values():
    current = {"mode": "auto", "intensity": "80", "night": {"person": True}, "extra": 1}
    merged = merge_floodlight(current, "off", None, {"vehicle": False})
    assert merged == {
        "mode": "off",
        "intensity": "80",
        "night": {"person": True, "vehicle": False},
        "extra": 1,
    }
    assert current["mode"] == "auto"  # not modified in place
    assert parse_night("always=yes, movement=false") == {"always": True, "movement": False}


def test_monitoring_on_off_and_already(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    assert camera.state.snapshot()["monitoring"] == "on"
    code, output = camera_cli(inventory, "monitoring", camera.name, "on")
    # The camera answers 409 code 7 ("Already on"): that is success.
    assert code == 0, output
    assert "already on" in output
    code, output = camera_cli(inventory, "monitoring", camera.name, "off")
    assert code == 0, output
    assert "now off" in output
    assert camera.state.snapshot()["monitoring"] == "off"
    # POST with status=... reached the camera each time.
    assert camera.stats.report()["paths"]["command/changestatus"] == 2


def test_monitoring_html_answer_is_an_error(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("html200", path="command/changestatus")
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    code, output = camera_cli(inventory, "monitoring", camera.name, "off")
    assert code == 1
    assert "HTML page instead of JSON (HTTP 200)" in output
    assert camera.state.snapshot()["monitoring"] == "on"


def test_snapshot_written_atomically(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    out = tmp_path / "shot.jpg"
    code, output = camera_cli(inventory, "snapshot", camera.name, "-o", str(out))
    assert code == 0, output
    assert out.read_bytes().startswith(b"\xff\xd8\xff")
    assert len(out.read_bytes()) > 10_000

    # A garbage answer is refused and the existing file stays as it was.
    camera.faults.set("garbage", path="live/snapshot_720.jpg")
    previous = out.read_bytes()
    code, output = camera_cli(inventory, "snapshot", camera.name, "-o", str(out))
    assert code == 1
    assert "not a JPEG" in output
    assert out.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".shot")] == []


def test_unknown_camera_lists_known_names(make_cameras, tmp_path):
    first, second = make_cameras(2)
    inventory = write_inventory(tmp_path, [camera_entry(first), camera_entry(second)])
    code, output = camera_cli(inventory, "monitoring", "garage", "on")
    assert code == 2
    assert output.strip() == f"error: {inventory}: no camera 'garage' (cameras: cam-1, cam-2)"


def test_unreachable_camera_is_one_line(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.stop()
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    code, output = camera_cli(inventory, "floodlight", camera.name, "off")
    assert code == 1
    assert output.strip() == f"error: {camera.name}: connection refused"


def test_hanging_camera_times_out(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("hang")
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    result = CliRunner().invoke(
        main,
        [
            "camera",
            "monitoring",
            camera.name,
            "off",
            "-i",
            str(inventory),
            "--direct",
            "--timeout",
            "0.5",
        ],
    )
    assert result.exit_code == 1
    assert "no answer within 0.5 s" in result.output
    assert camera.secure_id not in result.output
