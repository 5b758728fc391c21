"""`presence-appliance check` against emulated cameras on loopback: verdicts, reasons, exits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from appliance import check
from appliance.camera_api import CameraClient, CameraError, CameraTarget
from appliance.check import render_check_table, run_check
from appliance.cli import main
from appliance.inventory import load_inventory
from tests.day2.conftest import camera_entry, inventory_text, write_inventory
from tests.day2.hostile_camera import Behaviour, Peer, Seen, head, hostile_camera, json_answer

# Long enough for a healthy camera on a loaded machine (answers come at once; only the
# tests of a slow camera wait): the slow-camera test sets its own short one.
TIMEOUT = "5"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def check_json(
    inventory: Path, *extra: str, timeout: str = TIMEOUT
) -> tuple[int, dict[str, Any], str]:
    code, output = run_cli(
        "check", "-i", str(inventory), "--direct", "--json", "--timeout", timeout, *extra
    )
    return code, json.loads(output), output


def only_camera(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["cameras"]) == 1
    return report["cameras"][0]


def test_healthy_camera_passes(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    code, report, output = check_json(write_inventory(tmp_path, [camera_entry(camera)]))
    result = only_camera(report)
    assert code == 0
    assert report["ok"] is True
    assert result["verdict"] == "pass", result
    assert result["ping"]["ok"] and result["snapshot"]["ok"] and result["stream"]["ok"]
    assert result["ping_ms"] > 0
    # It really fetched a snapshot and a segment.
    kinds = camera.stats.report()["kinds"]
    assert kinds["snapshots"] == 1 and kinds["segments"] == 1 and kinds["playlists"] == 2
    assert camera.secure_id not in output


def test_table_output_and_exit_code(make_cameras, tmp_path):
    good, bad = make_cameras(2)
    bad.stop()
    inventory = write_inventory(tmp_path, [camera_entry(good), camera_entry(bad)])
    code, output = run_cli("check", "-i", str(inventory), "--direct", "--timeout", TIMEOUT)
    assert code == 1
    assert "cam-1" in output and "cam-2" in output
    assert "connection refused" in output
    assert "1/2 cameras pass" in output
    for camera in (good, bad):
        assert camera.secure_id not in output


def test_slow_camera_fails_within_the_timeout(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("slow", 3)
    code, report, _ = check_json(write_inventory(tmp_path, [camera_entry(camera)]), timeout="1")
    result = only_camera(report)
    assert code == 1
    assert result["verdict"] == "fail"
    assert result["reason"] == "ping: no answer within 1 s"
    # Unreachable after the ping: the other requests are not even tried.
    assert result["snapshot"]["ok"] is None


def test_down_camera_is_connection_refused(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.stop()
    code, report, _ = check_json(write_inventory(tmp_path, [camera_entry(camera)]))
    assert code == 1
    assert only_camera(report)["reason"] == "ping: connection refused"


def test_connection_closed_without_answer(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("down")
    code, report, output = check_json(write_inventory(tmp_path, [camera_entry(camera)]))
    result = only_camera(report)
    assert code == 1
    assert result["reason"] == "ping: command/ping: no HTTP answer (connection closed or not HTTP)"
    assert result["snapshot"]["ok"] is None  # nothing answers: not asked again
    assert camera.secure_id not in output


def test_wrong_secure_id_gets_html_403(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    wrong = "0" * 32
    code, report, output = check_json(
        write_inventory(tmp_path, [camera_entry(camera, secure_id=wrong)])
    )
    result = only_camera(report)
    assert code == 1
    assert result["ping"]["detail"] == "ping: HTML page instead of JSON (HTTP 403)"
    assert result["snapshot"]["ok"] is False and result["stream"]["ok"] is False
    assert wrong not in output and camera.secure_id not in output


def test_html_with_status_200_is_a_failure(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("html200", path="command/ping")
    code, report, _ = check_json(write_inventory(tmp_path, [camera_entry(camera)]))
    result = only_camera(report)
    assert code == 1
    assert result["ping"]["detail"] == "ping: HTML page instead of JSON (HTTP 200)"
    # Only the ping was broken: the media still pass.
    assert result["snapshot"]["ok"] is True and result["stream"]["ok"] is True


def test_unknown_command_answered_with_html_200(make_cameras):
    (camera,) = make_cameras(1, unknown_command_status=200)
    target = CameraTarget("cam", "pi", camera.base_url, camera.secure_id, camera.host)

    async def call() -> str:
        async with httpx.AsyncClient() as client:
            try:
                await CameraClient(target, client, timeout=2).command("getsetting")
            except CameraError as err:
                return str(err)
        return "no error"

    assert asyncio.run(call()) == "getsetting: HTML page instead of JSON (HTTP 200)"


def test_garbage_answers(make_cameras, tmp_path):
    ping, snap, segment = make_cameras(3)
    ping.faults.set("garbage", path="command/ping")
    snap.faults.set("garbage", path="live/snapshot_720.jpg")
    segment.faults.set("garbage", path="live/files/")
    inventory = write_inventory(tmp_path, [camera_entry(c) for c in (ping, snap, segment)])
    code, report, _ = check_json(inventory)
    reasons = {c["camera"]: c["reason"] for c in report["cameras"]}
    assert code == 1
    assert reasons[ping.name] == "ping: answer is not JSON (HTTP 200)"
    assert reasons[snap.name] == "snapshot: body is not a JPEG image"
    assert reasons[segment.name] == "stream: variant playlist: not an HLS playlist"


def test_garbage_segment(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("garbage", path="live/files/poor/live")
    code, report, _ = check_json(write_inventory(tmp_path, [camera_entry(camera)]))
    assert code == 1
    assert only_camera(report)["reason"] == "stream: segment: not an MPEG-TS segment"


def test_proxy_mode_without_pinned_certificate(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    code, output = run_cli("check", "-i", str(inventory), "--timeout", TIMEOUT)
    assert code == 1
    assert "no pinned certificate for 127.0.0.1; run install first" in output


def test_proxy_mode_needs_a_web_password(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    (tmp_path / ".presence-appliance" / "tls").mkdir(parents=True)
    inventory = write_inventory(
        tmp_path,
        [camera_entry(camera)],
        web={
            "server_name": "pi.lan",
            "users": [{"name": "admin", "password_hash": "$2y$..."}],
            "tls_cert": "/etc/ssl/x.crt",
            "tls_key": "/etc/ssl/x.key",
        },
    )
    report = run_check(load_inventory(inventory), direct=False, timeout=1)
    assert not report.ok
    assert "only a password_hash" in report.cameras[0].reason


def test_unreadable_inventory_exits_2(tmp_path):
    code, output = run_cli("check", "-i", str(tmp_path / "missing.yml"), "--direct")
    assert code == 2
    assert "no such inventory file" in output
    assert "Traceback" not in output


def test_no_cameras_is_not_a_pass(tmp_path):
    code, output = run_cli("check", "-i", str(write_inventory(tmp_path, [])), "--direct")
    assert code == 1
    assert "nothing to check" in output


def test_renderer_without_cameras(capsys):
    from appliance.check import CheckReport

    render_check_table(CheckReport())
    assert "nothing to check" in capsys.readouterr().out


def test_cameras_are_checked_concurrently(tmp_path):
    # No stopwatch (a busy 2-core machine makes any threshold flaky; bench/check_bench.py
    # measures the time): the two good cameras answer only once all eight pings have
    # arrived at once. Checked one by one, the first hanging camera would hold the rest.
    arrived = threading.Barrier(8)

    def gated(good: bool) -> Behaviour:
        def behave(seen: Seen, peer: Peer) -> None:
            try:
                arrived.wait(timeout=20)
            except threading.BrokenBarrierError:
                peer.send(head(500, {"Content-Length": "0"}))
                return
            if not good:
                peer.pause(30)  # hang until the checker gives up (the server stops at teardown)
            json_answer({"local_url": f"http://{peer.sock.getsockname()[0]}/{seen.path[1:33]}"})(
                seen, peer
            )

        return behave

    with contextlib.ExitStack() as stack:
        cameras = [
            stack.enter_context(hostile_camera(host=f"127.0.0.{160 + i}", name=f"cam-{i}"))
            for i in range(8)
        ]
        for index, camera in enumerate(cameras):
            camera.routes["command/ping"] = gated(good=index >= 6)
        entries = [
            {
                "name": c.name,
                "mac": f"70:ee:50:00:00:{i:02x}",
                "ip": c.host,
                "port": c.port,
                "secure_id": c.secure_id,
            }
            for i, c in enumerate(cameras)
        ]
        inventory = load_inventory(write_inventory(tmp_path, entries))
        report = run_check(inventory, direct=True, timeout=3)
    assert [c.passed for c in report.cameras] == [False] * 6 + [True] * 2, [
        c.reason for c in report.cameras
    ]
    assert {c.reason for c in report.cameras[:6]} == {"ping: no answer within 3 s"}


@pytest.mark.parametrize("starts_late", [False, True], ids=["check-starts-at-once", "starts-late"])
def test_wait_retries_failing_cameras_until_they_pass(
    make_cameras, tmp_path, monkeypatch, starts_late
):
    good, late = make_cameras(2)
    late.faults.set("html200", path="command/ping")
    inventory = load_inventory(write_inventory(tmp_path, [camera_entry(good), camera_entry(late)]))
    if starts_late:
        # A loaded machine: the first round asks well over a second after the call (a
        # timer clearing the fault 1 s in let the late camera pass its first ask).
        first_round = check._check_all
        rounds: list[int] = []

        async def slow_first_round(*args: Any) -> Any:
            if not rounds:
                await asyncio.sleep(1.5)
            rounds.append(1)
            return await first_round(*args)

        monkeypatch.setattr(check, "_check_all", slow_first_round)
    stop = threading.Event()

    def come_right_after_the_first_ask() -> None:
        # The late camera comes right once it has refused one ping: an order, not a clock.
        while not stop.wait(0.05):
            if late.stats.report()["faults"].get("html200"):
                late.faults.set("none")
                return

    helper = threading.Thread(target=come_right_after_the_first_ask, daemon=True)
    helper.start()
    try:
        report = run_check(inventory, direct=True, timeout=5, wait=10)
    finally:
        stop.set()
        helper.join(timeout=5)
    assert report.ok, [c.reason for c in report.cameras]
    assert good.stats.report()["paths"]["command/ping"] == 1  # passing cameras are not re-asked
    assert late.stats.report()["paths"]["command/ping"] >= 2


def test_wait_gives_up(make_cameras, tmp_path):
    (camera,) = make_cameras(1)
    camera.faults.set("html200", path="command/ping")
    inventory = load_inventory(write_inventory(tmp_path, [camera_entry(camera)]))
    report = run_check(inventory, direct=True, timeout=1, wait=3)
    assert not report.ok
    # It asked again (every RETRY_PAUSE s) before giving up at the end of `wait`.
    assert camera.stats.report()["paths"]["command/ping"] >= 2
    assert report.elapsed_s >= 3


def test_vaulted_cameras_without_the_password_exit_2():
    fixture = Path(__file__).parent / "fixtures" / "inventory.yml"
    code, output = run_cli("check", "-i", str(fixture), "--direct")
    assert code == 2
    assert output.startswith("error: garden-pi: cameras: ")
    assert len(output.strip().splitlines()) == 1


def test_limit_checks_only_the_named_appliances_cameras(make_cameras, tmp_path):
    """After an install where one Pi failed: `check --limit` tests the healthy Pi's cameras."""
    good, bad = make_cameras(2)
    bad.stop()
    doc = yaml.safe_load(inventory_text([]))
    doc["all"]["children"]["appliances"]["hosts"] = {
        "pi-a": {"ansible_host": "127.0.0.1", "cameras": [camera_entry(good)]},
        "pi-b": {"ansible_host": "127.0.0.2", "cameras": [camera_entry(bad)]},
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(doc))
    code, report, _ = check_json(inventory, "--limit", "pi-a")
    assert code == 0 and [c["camera"] for c in report["cameras"]] == [good.name], report
    code, report, _ = check_json(inventory)
    assert code == 1 and len(report["cameras"]) == 2
    code, output = run_cli("check", "-i", str(inventory), "--direct", "--limit", "pi-a,pi-c")
    assert code == 2 and output.strip().splitlines()[-1] == (
        "error: --limit: no appliance 'pi-c' (appliances: pi-a, pi-b)"
    ), output
    assert "Traceback" not in output
