"""The emulated camera's FTP export against a real FTP server (pyftpdlib) on loopback, hostile settings included."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.emulator import EmulatedCamera, ftp_export, load_media
from appliance.emulator.ftp_export import clip_name
from tests.ftp_server import PASSWORD, USER, as_config, files_under, ftp_server

SECURE_ID = "0123456789abcdef0123456789abcdef"
TIMEOUT = httpx.Timeout(30.0)
# 2026-11-18 11:06:40 UTC.
T0 = 1_795_000_000.0
# An address of this test's sub-range where nothing listens (never routed: nothing is sent).
NOWHERE = "10.203.160.99"


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("emulator-cache")
    load_media(cache)
    return cache


@pytest.fixture
def make_camera(media_cache: Path) -> Iterator[Callable[..., EmulatedCamera]]:
    started: list[EmulatedCamera] = []

    def make(**options: Any) -> EmulatedCamera:
        options.setdefault("ftp_allow", ("127.0.0.1/32",))
        camera = EmulatedCamera(
            "front", SECURE_ID, "127.0.0.1", 0, cache_dir=media_cache, clock=lambda: T0, **options
        )
        started.append(camera)
        return camera.start()

    try:
        yield make
    finally:
        for camera in started:
            camera.stop()


def command(camera: EmulatedCamera, name: str, **params: str) -> httpx.Response:
    return httpx.post(f"{camera.base_url}/command/{name}", params=params, timeout=TIMEOUT)


def set_config(camera: EmulatedCamera, config: dict[str, Any]) -> httpx.Response:
    return command(camera, "ftp_set_config", config=json.dumps(config))


def event(camera: EmulatedCamera) -> dict[str, Any]:
    response = httpx.post(f"{camera.control_url}/event", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def state(camera: EmulatedCamera) -> httpx.Response:
    return httpx.get(f"{camera.control_url}/state", timeout=TIMEOUT)


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_name",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


# --- settings -------------------------------------------------------------------------------


def test_ftp_config_is_kept_merged_and_returned(make_camera: Callable[..., EmulatedCamera]) -> None:
    camera = make_camera()
    assert command(camera, "ftp_get_config").json()["on_off"] == 0
    wanted = {"server": "127.0.0.1", "port": 2121, "user": USER, "password": PASSWORD, "path": "/x"}
    assert set_config(camera, wanted).json() == {"status": "ok"}
    # The one object seen in public clients: a partial update keeps the rest.
    assert set_config(camera, {"on_off": 1}).json() == {"status": "ok"}
    assert command(camera, "ftp_get_config").json() == {**wanted, "on_off": 1}
    # Under the secure id only.
    other = httpx.get(f"{camera.origin}/{'f' * 32}/command/ftp_get_config", timeout=TIMEOUT)
    assert other.status_code == 403 and PASSWORD not in other.text


def test_state_says_the_password_is_set_never_what_it_is(
    make_camera: Callable[..., EmulatedCamera],
) -> None:
    camera = make_camera()
    set_config(camera, {"password": PASSWORD, "user": USER})
    answer = state(camera)
    assert answer.json()["ftp"]["config"]["password_set"] is True
    assert PASSWORD not in answer.text


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "/../../etc"},
        {"path": "up/../../out"},
        {"path": "/a/./b"},
        {"path": "/.."},
        {"path": "/a\\..\\b"},
        {"path": ["/"]},
        {"port": 0},
        {"port": 70000},
        {"port": "21; rm"},
        {"port": True},
        {"on_off": 2},
        {"user": "cam\r\nDELE x"},
        {"password": "pass\tword"},
        {"user": "cam front"},
        {"server": "127.0.0.1\r\nUSER root"},
        {"server": 12},
    ],
)
def test_a_hostile_setting_is_refused_and_nothing_changes(
    make_camera: Callable[..., EmulatedCamera], bad: dict[str, Any]
) -> None:
    camera = make_camera()
    before = command(camera, "ftp_get_config").json()
    answer = set_config(camera, {"on_off": 1, **bad})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 21
    assert command(camera, "ftp_get_config").json() == before


def test_set_config_without_a_json_object_is_refused(
    make_camera: Callable[..., EmulatedCamera],
) -> None:
    camera = make_camera()
    for raw in ("", "not json", "[1]", '"x"'):
        assert command(camera, "ftp_set_config", config=raw).status_code == 400


# --- uploads --------------------------------------------------------------------------------


def test_an_event_uploads_a_real_mp4_named_by_day(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera()
    with ftp_server(tmp_path / "root") as server:
        assert set_config(camera, as_config(server, path="/clips")).status_code == 200
        result = event(camera)
        assert server.logins == [USER]
    assert result["result"] == "ftp-0", result
    assert result["file"].startswith("2026/11/18/2026-11-18-11.06-")
    assert result["file"] == clip_name(T0, result["event"])
    assert files_under(tmp_path / "root") == [f"clips/{result['file']}"]
    clip = tmp_path / "root" / "clips" / result["file"]
    assert clip.stat().st_size == result["bytes"] > 10_000
    probe = ffprobe(clip)
    assert "mp4" in probe["format"]["format_name"]
    assert {s["codec_name"] for s in probe["streams"]} == {"h264", "aac"}
    assert 5.0 <= float(probe["format"]["duration"]) <= 7.0  # three 2 s segments
    last = state(camera).json()["ftp"]["last"]
    assert last["result"] == "ftp-0" and last["file"] == result["file"]


def test_two_events_the_same_minute_make_two_files(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera()
    with ftp_server(tmp_path / "root") as server:
        set_config(camera, as_config(server))
        first, second = event(camera), event(camera)
    assert first["result"] == second["result"] == "ftp-0"
    assert first["file"] != second["file"]
    assert len(files_under(tmp_path / "root")) == 2


def test_export_off_uploads_nothing(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera()
    with ftp_server(tmp_path / "root") as server:
        set_config(camera, as_config(server, on_off=0))
        assert event(camera)["result"] == "off"
        assert server.connections == []
    assert files_under(tmp_path / "root") == []


def test_event_takes_post_only(make_camera: Callable[..., EmulatedCamera]) -> None:
    camera = make_camera()
    assert httpx.get(f"{camera.control_url}/event", timeout=TIMEOUT).status_code == 405


def test_no_server_is_a_network_error(make_camera: Callable[..., EmulatedCamera]) -> None:
    camera = make_camera()
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    set_config(camera, {"on_off": 1, "server": "127.0.0.1", "port": port, "user": USER})
    result = event(camera)
    assert result["result"] == "ftp-3" and result["stage"] == "connect"


def test_a_wrong_password_is_reported_without_the_password(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera()
    wrong = "Wrong-Pass-0815"
    with ftp_server(tmp_path / "root") as server:
        set_config(camera, as_config(server, password=wrong))
        result = event(camera)
        assert server.logins == []
    assert result["result"] == "ftp-3" and result["stage"] == "login"
    assert wrong not in json.dumps(result) and wrong not in state(camera).text
    assert files_under(tmp_path / "root") == []


# --- the hostile peer: where the camera may connect and write ---------------------------------


def test_a_server_outside_the_allowed_networks_is_never_contacted(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    # The FTP server is real and reachable; the camera may only reach 127.0.0.2.
    camera = make_camera(ftp_allow=("127.0.0.2/32",))
    with ftp_server(tmp_path / "root") as server:
        set_config(camera, as_config(server))
        result = event(camera)
        assert server.connections == []
    assert result["result"] == "ftp-3" and "outside" in result["error"]
    assert files_under(tmp_path / "root") == []


@pytest.mark.parametrize("server", ["localhost", NOWHERE, "0.0.0.0", "::1"])
def test_a_server_name_or_foreign_address_is_refused_without_connecting(
    make_camera: Callable[..., EmulatedCamera], server: str
) -> None:
    camera = make_camera()
    set_config(camera, {"on_off": 1, "server": server, "port": 21, "user": USER})
    started = time.monotonic()
    result = event(camera)
    assert result["result"] == "ftp-3" and result["stage"] == "connect"
    # Refused before any connection attempt: no 10 s connect timeout was waited out.
    assert "not an IP address" in result["error"] or "outside" in result["error"]
    assert time.monotonic() - started < 8


def test_a_pasv_answer_naming_another_host_is_not_followed(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    # A lying server names NOWHERE in its PASV answer; the data channel still goes to the
    # control connection's peer, so the upload succeeds and nothing is sent to NOWHERE.
    camera = make_camera()
    with ftp_server(tmp_path / "root", masquerade=NOWHERE) as server:
        set_config(camera, as_config(server))
        result = event(camera)
    assert result["result"] == "ftp-0", result
    assert len(files_under(tmp_path / "root")) == 1


def test_nothing_lands_outside_the_users_folder(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera()
    with ftp_server(tmp_path / "ftp" / "root") as server:
        assert set_config(camera, as_config(server, path="/../../escape")).status_code == 400
        # The refused path did not stick: the upload goes to the user's own folder.
        set_config(camera, as_config(server, path="/deep/er"))
        assert event(camera)["result"] == "ftp-0"
    outside = [
        p for p in (tmp_path / "ftp").rglob("*") if not p.is_relative_to(tmp_path / "ftp" / "root")
    ]
    assert outside == []
    assert files_under(tmp_path / "ftp" / "root")[0].startswith("deep/er/2026/11/18/")


def test_emulate_refuses_a_bad_ftp_allow_in_one_line() -> None:
    from click.testing import CliRunner

    from appliance.cli import main

    result = CliRunner().invoke(
        main, ["emulate", "--name", "x", "--secure-id", SECURE_ID, "--ftp-allow", "10.0.0.0/33"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --ftp-allow '10.0.0.0/33': not a network (CIDR)"
    ]


def test_a_lab_camera_may_reach_its_own_network() -> None:
    from appliance.lab.camera_agent import _emulator_cmd, _network

    network = _network({"ip": "10.203.1.23", "mask": 24})
    assert network == "10.203.1.0/24"
    assert _emulator_cmd("cam1", "10.203.1.23", network)[-2:] == ["--ftp-allow", "10.203.1.0/24"]
    assert _network({"ip": "10.203.1.23"}) is None


@pytest.mark.parametrize("timer_lingers", [False, True], ids=["timer-ends", "timer-lingers"])
def test_a_server_that_talks_forever_is_cut_off_at_the_deadline(
    make_camera: Callable[..., EmulatedCamera], monkeypatch: pytest.MonkeyPatch, timer_lingers: bool
) -> None:
    # An endless multi-line greeting: every line arrives in time, the reply never ends.
    monkeypatch.setattr(ftp_export, "UPLOAD_DEADLINE", 2.0)
    if timer_lingers:
        # A loaded machine (CI failed this way once): the cut read fails while the timer's
        # thread has not finished yet. It is still the deadline, not a plain EOF.
        cut = ftp_export._cut

        def cut_then_linger(*args: Any) -> None:
            cut(*args)
            time.sleep(1.0)

        monkeypatch.setattr(ftp_export, "_cut", cut_then_linger)
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def talk() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"220-still greeting you\r\n")
                except OSError:
                    return
                time.sleep(0.001)

    thread = threading.Thread(target=talk, daemon=True)
    thread.start()
    try:
        camera = make_camera()
        port = listener.getsockname()[1]
        set_config(camera, {"on_off": 1, "server": "127.0.0.1", "port": port, "user": USER})
        result = event(camera)
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)
    assert result["result"] == "ftp-3" and "within 2 s" in result["error"], result
