"""Tests of the emulated Presence camera: API answers, media, playlists, counters, faults, CLI."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.emulator import (
    DEFAULT_FLOODLIGHT,
    CameraFleet,
    EmulatedCamera,
    load_media,
)
from appliance.emulator.media import media_key
from tests.browser import available as browser_available
from tests.browser import chromium

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SECURE_ID = "0123456789abcdef0123456789abcdef"
OTHER_ID = "fedcba9876543210fedcba9876543210"
TIMEOUT = httpx.Timeout(10.0)
# 2026-11-25 at an even second: newest segment = T0 / 2 - 1.
T0 = 1_795_000_000.0

MASTER_PLAYLIST = """#EXTM3U
#EXT-X-ALLOW-CACHE:NO
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=144000,CODECS="avc1.42001f,mp4a.40.2",NAME="640x360"
files/poor/index.m3u8
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=688000,CODECS="avc1.42001f,mp4a.40.2",NAME="640x360"
files/low/index.m3u8
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=1012000,CODECS="avc1.42001f,mp4a.40.2",NAME="1280x720"
files/medium/index.m3u8
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=2000000,CODECS="avc1.42001f,mp4a.40.2",NAME="1920x1080"
files/high/index.m3u8
"""


class FakeClock:
    """A unix clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh media cache for the session, so every run also exercises generation."""
    cache = tmp_path_factory.mktemp("emulator-cache")
    media = load_media(cache)
    assert media.generated_in is not None
    print(f"media generated in {media.generated_in:.2f} s")
    return cache


@pytest.fixture
def make_camera(media_cache: Path) -> Iterator[Callable[..., EmulatedCamera]]:
    """Start cameras on 127.0.0.1 ephemeral ports; every one is stopped at teardown."""
    started: list[EmulatedCamera] = []

    def make(name: str = "front", secure_id: str = SECURE_ID, **options: Any) -> EmulatedCamera:
        options.setdefault("host", "127.0.0.1")
        camera = EmulatedCamera(name, secure_id, port=0, cache_dir=media_cache, **options)
        started.append(camera)
        return camera.start()

    try:
        yield make
    finally:
        for camera in started:
            camera.stop()


@pytest.fixture
def camera(make_camera: Callable[..., EmulatedCamera]) -> EmulatedCamera:
    return make_camera()


@pytest.fixture
def client(camera: EmulatedCamera) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=camera.base_url + "/", timeout=TIMEOUT) as http:
        yield http


def control(camera: EmulatedCamera, endpoint: str, method: str = "GET", **params: Any) -> Any:
    response = httpx.request(
        method, f"{camera.control_url}/{endpoint}", params=params, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Wait (bounded) until CONDITION holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.05)


def assert_html(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<html")


def ffprobe(path: Path, entries: str) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


# --- commands -------------------------------------------------------------------------------


def test_ping_answers_json_with_local_url_and_product_name(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    response = client.get("command/ping")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "local_url": f"http://127.0.0.1:{camera.port}/{SECURE_ID}",
        "product_name": "Welcome Netatmo",
    }


def test_ping_local_url_is_the_address_the_request_arrived_on(
    make_camera: Callable[..., EmulatedCamera],
) -> None:
    camera = make_camera(host="0.0.0.0", product_name="noc")
    for address in ("127.0.0.1", "127.0.0.3"):
        url = f"http://{address}:{camera.port}/{SECURE_ID}/command/ping"
        answer = httpx.get(url, timeout=TIMEOUT).json()
        assert answer == {
            "local_url": f"http://{address}:{camera.port}/{SECURE_ID}",
            "product_name": "noc",
        }


def test_post_with_auth_and_body_is_answered_like_get(client: httpx.Client) -> None:
    get = client.get("command/floodlight_get_config")
    post = client.post(
        "command/floodlight_get_config",
        headers={"Authorization": "Bearer not-a-token"},
        data={"access_token": "not-a-token"},
    )
    # A second request on the same connection proves the body was consumed.
    again = client.post("command/ping", content=b"x" * 5000)
    assert get.status_code == post.status_code == again.status_code == 200
    assert get.content == post.content
    assert again.json()["product_name"] == "Welcome Netatmo"


def test_head_has_headers_and_no_body(client: httpx.Client) -> None:
    response = client.head("live/snapshot_720.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert int(response.headers["content-length"]) > 10_000
    assert response.content == b""


def test_floodlight_get_config_default(client: httpx.Client) -> None:
    response = client.get("command/floodlight_get_config")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "intensity": 100,
        "mode": "auto",
        "night": {
            "always": False,
            "person": True,
            "vehicle": True,
            "animal": False,
            "movement": False,
        },
    }
    assert response.json() == DEFAULT_FLOODLIGHT


def test_floodlight_set_config_replaces_the_whole_object(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    answer = client.get("command/floodlight_set_config", params={"config": '{"mode":"on"}'})
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert client.get("command/floodlight_get_config").json() == {"mode": "on"}
    # Numbers sent as strings are accepted (and kept as sent).
    answer = client.post("command/floodlight_set_config", params={"config": '{"intensity":"80"}'})
    assert answer.json() == {"status": "ok"}
    assert client.get("command/floodlight_get_config").json() == {"intensity": "80"}
    assert control(camera, "state")["floodlight"] == {"intensity": "80"}


@pytest.mark.parametrize("config", ["{not json", "[1, 2]", ""])
def test_floodlight_set_config_rejects_invalid_json(
    camera: EmulatedCamera, client: httpx.Client, config: str
) -> None:
    answer = client.get("command/floodlight_set_config", params={"config": config})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert "error" in answer.json()
    assert control(camera, "state")["floodlight"] == DEFAULT_FLOODLIGHT


def test_changestatus_switches_and_409_when_already_in_that_state(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    already_on = client.get("command/changestatus", params={"status": "on"})
    assert already_on.status_code == 409
    assert already_on.json() == {"error": {"code": 7, "message": "Already on"}}

    off = client.get("command/changestatus", params={"status": "off", "pin": "1234"})
    assert off.status_code == 200
    assert off.json() == {"status": "ok"}
    assert control(camera, "state")["monitoring"] == "off"

    already_off = client.post("command/changestatus?status=off&pin=1234")
    assert already_off.status_code == 409
    assert already_off.json() == {"error": {"code": 7, "message": "Already off"}}

    on = client.get("command/changestatus", params={"status": "on"})
    assert on.json() == {"status": "ok"}
    assert control(camera, "state")["monitoring"] == "on"


def test_changestatus_without_status_does_not_route(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    assert_html(client.get("command/changestatus"), 404)
    assert_html(client.get("command/changestatus", params={"pin": "1234"}), 404)
    assert control(camera, "state")["monitoring"] == "on"


def test_unknown_command_is_an_html_404(client: httpx.Client) -> None:
    assert_html(client.get("command/smart_zone_get_config"), 404)


def test_unknown_command_status_can_be_200(make_camera: Callable[..., EmulatedCamera]) -> None:
    camera = make_camera(unknown_command_status=200)
    response = httpx.get(f"{camera.base_url}/command/getsetting", timeout=TIMEOUT)
    assert_html(response, 200)


def test_wrong_secure_id_is_an_html_403(camera: EmulatedCamera) -> None:
    for path in (f"/{OTHER_ID}/command/ping", f"/{OTHER_ID}/live/snapshot_720.jpg", "/"):
        assert_html(httpx.get(camera.origin + path, timeout=TIMEOUT), 403)


def test_vod_and_other_paths_are_404(client: httpx.Client) -> None:
    for path in ("vod/1234/index.m3u8", "live/index_local.m3u8", "nothing"):
        assert_html(client.get(path), 404)


# --- snapshot ------------------------------------------------------------------------------


def test_snapshot_is_a_jpeg_that_differs_per_camera_and_over_time(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    clock = FakeClock()
    front = make_camera("front", clock=clock)
    garden = make_camera("garden", OTHER_ID, clock=clock)

    def fetch(camera: EmulatedCamera) -> bytes:
        response = httpx.get(f"{camera.base_url}/live/snapshot_720.jpg", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8" and response.content[-2:] == b"\xff\xd9"
        return response.content

    first = fetch(front)
    assert b"camera=front" in first[:200]
    assert fetch(garden) != first
    clock.now += 1
    assert fetch(front) != first

    (tmp_path / "snapshot.jpg").write_bytes(first)
    stream = ffprobe(tmp_path / "snapshot.jpg", "stream=codec_name,width,height")["streams"][0]
    assert stream == {"codec_name": "mjpeg", "width": 1280, "height": 720}


def test_snapshots_differ_even_within_one_second(client: httpx.Client) -> None:
    first = client.get("live/snapshot_720.jpg").content
    second = client.get("live/snapshot_720.jpg").content
    assert first != second


# --- playlists and segments ----------------------------------------------------------------


def test_master_playlist_has_the_captured_shape(client: httpx.Client) -> None:
    response = client.get("live/index.m3u8")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.text == MASTER_PLAYLIST


def expected_variant(first: int) -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-TARGETDURATION:2",
    ]
    for sequence in range(first, first + 3):
        lines += ["#EXTINF:2.000000,", f"live{sequence:010d}.ts"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("quality", ["poor", "low", "medium", "high"])
def test_variant_playlist_window_advances_with_time(
    make_camera: Callable[..., EmulatedCamera], quality: str
) -> None:
    clock = FakeClock(T0)
    camera = make_camera(clock=clock)
    url = f"{camera.base_url}/live/files/{quality}/index.m3u8"
    newest = int(T0) // 2 - 1
    first = httpx.get(url, timeout=TIMEOUT)
    assert first.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert first.text == expected_variant(newest - 2)
    assert "#EXT-X-ENDLIST" not in first.text
    clock.now += 1.9
    assert httpx.get(url, timeout=TIMEOUT).text == expected_variant(newest - 2)
    clock.now += 0.1
    assert httpx.get(url, timeout=TIMEOUT).text == expected_variant(newest - 1)
    clock.now += 20
    assert httpx.get(url, timeout=TIMEOUT).text == expected_variant(newest + 9)


def test_variant_playlist_follows_the_wall_clock(client: httpx.Client) -> None:
    # Bracketed by the clock before and after the request, however long it took.
    before = time.time()
    text = client.get("live/files/low/index.m3u8").text
    after = time.time()
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)[1])
    assert before // 2 - 3 <= sequence <= after // 2 - 3


def test_segments_in_the_window_are_h264_aac_mpegts(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    camera = make_camera(clock=FakeClock(T0))
    base = f"{camera.base_url}/live/files/medium/"
    playlist = httpx.get(base + "index.m3u8", timeout=TIMEOUT).text
    names = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(names) == 3
    for name in names:
        response = httpx.get(base + name, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp2t"
        data = response.content
        assert len(data) > 10_000 and len(data) % 188 == 0
        assert all(data[i] == 0x47 for i in range(0, len(data), 188))
        (tmp_path / name).write_bytes(data)
        streams = ffprobe(tmp_path / name, "stream=codec_type,codec_name")["streams"]
        assert {(s["codec_type"], s["codec_name"]) for s in streams} == {
            ("video", "h264"),
            ("audio", "aac"),
        }


def test_segments_near_the_window_only(make_camera: Callable[..., EmulatedCamera]) -> None:
    camera = make_camera(clock=FakeClock(T0))
    newest = int(T0) // 2 - 1

    def status(sequence: int) -> int:
        url = f"{camera.base_url}/live/files/low/live{sequence:010d}.ts"
        return httpx.get(url, timeout=TIMEOUT).status_code

    assert status(newest) == 200
    assert status(newest - 20) == 200  # a slow player a little behind
    assert status(newest + 1) == 200  # a little clock skew
    assert status(newest - 1000) == 404
    assert status(newest + 1000) == 404
    assert status(0) == 404


def test_stream_is_continuous_across_the_cycle_wrap(
    make_camera: Callable[..., EmulatedCamera], tmp_path: Path
) -> None:
    """Timestamps and continuity counters run on where the cached cycle starts again."""
    clock = FakeClock(T0)
    camera = make_camera(clock=clock)
    cycle = len(camera.media.stream)
    newest = int(T0) // 2 - 1
    start = newest - newest % cycle - 3  # three segments before a wrap
    clock.now = (start + cycle + 6) * 2.0  # so that start .. start+cycle+3 are all available
    data = b"".join(
        httpx.get(f"{camera.base_url}/live/files/low/live{n:010d}.ts", timeout=TIMEOUT).content
        for n in range(start, start + cycle + 4)
    )
    joined = tmp_path / "joined.ts"
    joined.write_bytes(data)

    packets = ffprobe(joined, "packet=stream_index,pts")["packets"]
    by_stream: dict[int, list[int]] = {}
    for packet in packets:
        by_stream.setdefault(packet["stream_index"], []).append(packet["pts"])
    steps = {index: {b - a for a, b in itertools.pairwise(pts)} for index, pts in by_stream.items()}
    # 25 fps video (3600 ticks) and 48 kHz AAC (1920 ticks): one constant step, no jump back.
    assert sorted(steps.values(), key=min) == [{1920}, {3600}]

    counters: dict[int, int] = {}
    for offset in range(0, len(data), 188):
        pid = ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]
        if data[offset + 3] & 0x10:  # packets with payload count up
            counter = data[offset + 3] & 0x0F
            if pid in counters:
                assert counter == (counters[pid] + 1) % 16, f"pid {pid} at {offset}"
            counters[pid] = counter


def test_all_qualities_serve_segments(camera: EmulatedCamera) -> None:
    newest = int(time.time()) // 2 - 2
    for quality in ("poor", "low", "medium", "high"):
        url = f"{camera.base_url}/live/files/{quality}/live{newest:010d}.ts"
        response = httpx.get(url, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.content[0] == 0x47


# --- counters ------------------------------------------------------------------------------


def test_counters_per_path_and_kind_and_reset(camera: EmulatedCamera, client: httpx.Client) -> None:
    client.get("command/ping")
    client.post("command/ping")
    client.get("live/snapshot_720.jpg")
    client.get("live/index.m3u8")
    client.get("live/files/low/index.m3u8")
    newest = int(time.time()) // 2 - 2
    client.get(f"live/files/low/live{newest:010d}.ts")
    client.get("vod/abc/index.m3u8")
    httpx.get(f"{camera.origin}/{OTHER_ID}/command/ping", timeout=TIMEOUT)

    stats = control(camera, "stats")
    assert stats["camera"] == "front"
    assert stats["kinds"] == {
        "commands": 2,
        "snapshots": 1,
        "playlists": 2,
        "segments": 1,
        "other": 1,
        "forbidden": 1,
    }
    assert stats["requests"] == 8
    assert stats["paths"]["command/ping"] == 2
    assert stats["paths"][f"live/files/low/live{newest:010d}.ts"] == 1
    assert SECURE_ID not in json.dumps(stats) and OTHER_ID not in json.dumps(stats)
    # The httpx client kept one connection for its seven requests.
    assert stats["connections"]["total"] <= 3

    assert httpx.get(f"{camera.control_url}/reset", timeout=TIMEOUT).status_code == 405
    assert control(camera, "reset", "POST") == {"status": "ok", "scope": "counters"}
    stats = control(camera, "stats")
    assert stats["requests"] == 0 and stats["paths"] == {}


def test_reset_all_restores_state_and_clears_faults(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    client.get("command/changestatus", params={"status": "off"})
    client.get("command/floodlight_set_config", params={"config": '{"mode":"off"}'})
    client.get("command/ftp_set_config", params={"config": '{"on_off":1,"user":"u"}'})
    control(camera, "fault", mode="html200", path="live/")
    control(camera, "reset", "POST", scope="all")
    state = control(camera, "state")
    ftp = state.pop("ftp")
    assert state == {"floodlight": DEFAULT_FLOODLIGHT, "monitoring": "on"}
    assert ftp["config"]["on_off"] == 0 and ftp["config"]["user"] == ""
    assert control(camera, "fault") == {"faults": []}


def test_state_endpoint_can_set_state(camera: EmulatedCamera, client: httpx.Client) -> None:
    state = control(camera, "state", monitoring="off", floodlight='{"mode":"on"}')
    state.pop("ftp")
    assert state == {"floodlight": {"mode": "on"}, "monitoring": "off"}
    assert client.get("command/changestatus", params={"status": "off"}).status_code == 409


# --- faults --------------------------------------------------------------------------------


def test_fault_slow_delays_only_matching_paths(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    answer = control(camera, "fault", "POST", mode="slow", delay="1", path="live/")
    assert answer == {"faults": [{"mode": "slow", "path": "live/", "delay": 1.0}]}
    assert client.get("command/ping").status_code == 200
    started = time.monotonic()
    response = client.get("live/snapshot_720.jpg")
    delayed = time.monotonic() - started
    # A lower bound (the delay was served), no upper bound nor a comparison with the ping's
    # time on a busy machine: the fault counter, not the clock, says the ping was not slowed.
    assert delayed >= 1.0
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
    assert control(camera, "stats")["faults"] == {"slow": 1}


def test_fault_hang_holds_the_request_until_cleared(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    control(camera, "fault", mode="hang", path="command/ping")
    result: dict[str, Any] = {}

    def request() -> None:
        try:
            result["response"] = client.get("command/ping")
        except httpx.HTTPError as err:
            result["error"] = err

    worker = threading.Thread(target=request)
    worker.start()
    worker.join(timeout=1.5)
    assert worker.is_alive(), "a hanging camera answered"
    control(camera, "fault", mode="none", path="command/ping")
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert result["response"].status_code == 200
    assert result["response"].json()["product_name"] == "Welcome Netatmo"


def test_fault_hang_gives_up_after_its_bound(camera: EmulatedCamera) -> None:
    control(camera, "fault", mode="hang", delay="1")
    started = time.monotonic()
    # Gave up: the camera closes the connection (a ReadTimeout after TIMEOUT would mean it
    # held on), and not before its bound.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT)
    assert time.monotonic() - started >= 1.0


def test_fault_garbage_keeps_status_and_type_but_not_the_body(
    camera: EmulatedCamera, client: httpx.Client
) -> None:
    control(camera, "fault", mode="garbage")
    ping = client.get("command/ping")
    assert ping.status_code == 200
    assert ping.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(ping.content)
    snapshot = client.get("live/snapshot_720.jpg")
    assert snapshot.status_code == 200
    assert snapshot.headers["content-type"] == "image/jpeg"
    assert snapshot.content[:2] != b"\xff\xd8"


def test_fault_html200(camera: EmulatedCamera, client: httpx.Client) -> None:
    control(camera, "fault", mode="html200", path="command/")
    assert_html(client.get("command/ping"), 200)
    assert client.get("live/index.m3u8").text.startswith("#EXTM3U")


def test_fault_down_closes_the_connection(camera: EmulatedCamera) -> None:
    control(camera, "fault", mode="down")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT)
    # The control API is never faulted, and clearing restores the camera.
    assert control(camera, "fault", mode="none") == {"faults": []}
    assert httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT).status_code == 200


def test_longest_fault_prefix_wins(camera: EmulatedCamera, client: httpx.Client) -> None:
    control(camera, "fault", mode="down")
    control(camera, "fault", mode="html200", path="/command/ping")
    assert_html(client.get("command/ping"), 200)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{camera.base_url}/live/index.m3u8", timeout=TIMEOUT)


@pytest.mark.parametrize(
    "params",
    [{"mode": "explode"}, {"mode": "slow", "delay": "soon"}, {"mode": "slow", "delay": "-1"}],
)
def test_bad_fault_requests_are_refused(camera: EmulatedCamera, params: dict[str, str]) -> None:
    response = httpx.get(f"{camera.control_url}/fault", params=params, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "error" in response.json()
    assert control(camera, "fault") == {"faults": []}


# --- concurrency, fleets, generation --------------------------------------------------------


def test_serves_sixty_concurrent_connections(camera: EmulatedCamera) -> None:
    # Every request hangs until the fault is cleared: all 60 are held open at once, which
    # no clock on a busy machine can blur (a 1 s "slow" fault could finish early ones first).
    control(camera, "fault", mode="hang", path="command/")
    statuses: list[int] = []
    lock = threading.Lock()

    def request() -> None:
        with httpx.Client(timeout=httpx.Timeout(60.0)) as http:
            status = http.get(f"{camera.base_url}/command/ping").status_code
        with lock:
            statuses.append(status)

    workers = [threading.Thread(target=request) for _ in range(60)]
    for worker in workers:
        worker.start()
    try:
        wait_for(
            lambda: control(camera, "stats")["faults"].get("hang") == 60,
            "60 requests held at once",
            timeout=30,
        )
        assert control(camera, "stats")["connections"]["open"] >= 60
    finally:
        control(camera, "fault", mode="none", path="command/")
        for worker in workers:
            worker.join(timeout=30)
    assert statuses == [200] * 60


def test_fleet_on_loopback_addresses(media_cache: Path) -> None:
    fleet = CameraFleet.on_loopback(3, first_address=20, cache_dir=media_cache)
    try:
        fleet.start()
        # One set of media for the whole fleet, not one per camera (start-up time itself:
        # bench/emulator_bench.py).
        assert all(camera.media is fleet[0].media for camera in fleet)
        ids = {camera.secure_id for camera in fleet}
        assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
        for index, camera in enumerate(fleet):
            assert camera.host == f"127.0.0.{20 + index}"
            ping = httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT).json()
            assert ping["local_url"] == camera.base_url
            assert camera.secure_id not in repr(camera)
    finally:
        fleet.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fleet[0].base_url}/command/ping", timeout=TIMEOUT)


def test_stop_ends_hanging_requests_and_frees_the_port(
    make_camera: Callable[..., EmulatedCamera],
) -> None:
    camera = make_camera()
    control(camera, "fault", mode="hang")
    errors: list[Exception] = []

    def request() -> None:
        try:
            httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT)
        except httpx.HTTPError as err:
            errors.append(err)

    worker = threading.Thread(target=request)
    worker.start()
    wait_for(lambda: control(camera, "stats")["faults"].get("hang") == 1, "the request to hang")
    camera.stop()
    worker.join(timeout=10)  # without stop() ending it, the request would hang on for TIMEOUT
    assert not worker.is_alive()
    assert len(errors) == 1
    # Nothing listens any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{camera.base_url}/command/ping", timeout=TIMEOUT)


def test_two_processes_generating_the_cache_at_once(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from appliance.emulator import load_media; "
        "m = load_media(Path(sys.argv[1])); print(len(m.stream), len(m.snapshots))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert out.split() == ["8", "12"]
    assert [p.name for p in tmp_path.iterdir()] == [media_key()]
    media = load_media(tmp_path)
    assert len(media.stream) == 8


def test_a_new_process_loads_an_existing_cache_without_generating(media_cache: Path) -> None:
    """How long that takes: bench/emulator_bench.py."""
    script = (
        "import sys; from pathlib import Path; "
        "from appliance.emulator import EmulatedCamera; "
        "c = EmulatedCamera('x', 'a' * 32, cache_dir=Path(sys.argv[1])).start(); "
        "print(c.media.generated_in, len(c.media.stream)); c.stop()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(media_cache)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    generated_in, segments = result.stdout.split()
    assert generated_in == "None" and segments == "8"


# --- command line --------------------------------------------------------------------------


def run_cli(media_cache: Path, *args: str, module: bool = False) -> subprocess.Popen[str]:
    command = (
        [sys.executable, "-m", "appliance.emulator"]
        if module
        else [str(VENV_BIN / "presence-appliance"), "emulate"]
    )
    return subprocess.Popen(
        [*command, "--cache-dir", str(media_cache), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def read_line(process: subprocess.Popen[str], timeout: float = 20) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, "no line printed in time"
    return lines[0]


@pytest.mark.parametrize(
    ("stop_signal", "module"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
)
def test_cli_serves_then_stops_cleanly(
    media_cache: Path, stop_signal: signal.Signals, module: bool
) -> None:
    process = run_cli(
        media_cache,
        "--name",
        "porch",
        "--secure-id",
        SECURE_ID,
        "--listen",
        "127.0.0.1:0",
        "--product-name",
        "noc",
        module=module,
    )
    try:
        line = read_line(process)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        ping = httpx.get(f"{match[1]}/{SECURE_ID}/command/ping", timeout=TIMEOUT).json()
        assert ping["product_name"] == "noc"
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert SECURE_ID not in line + out + err


def test_cli_secure_id_from_the_environment(media_cache: Path) -> None:
    env = {**os.environ, "PRESENCE_EMULATOR_SECURE_ID": OTHER_ID}
    process = subprocess.Popen(
        [
            str(VENV_BIN / "presence-appliance"),
            "emulate",
            "--name",
            "yard",
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            str(media_cache),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        origin = re.search(r"(http://127\.0\.0\.1:\d+)/", read_line(process))[1]
        assert httpx.get(f"{origin}/{OTHER_ID}/command/ping", timeout=TIMEOUT).status_code == 200
        process.terminate()
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0
    assert OTHER_ID not in out + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost"], "--listen 'localhost': expected ADDR:PORT"),
        (["--listen", "127.0.0.1:99999"], "port 99999 is above 65535"),
        (["--listen", "192.0.2.1:8080"], "--listen 192.0.2.1:8080:"),
        (["--secure-id", "a/b"], "--secure-id: secure id must be"),
    ],
)
def test_cli_bad_input_is_one_clear_line(media_cache: Path, args: list[str], message: str) -> None:
    base = {"--name": "porch", "--secure-id": SECURE_ID, "--listen": "127.0.0.1:0"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    flat = [item for pair in base.items() for item in pair]
    process = run_cli(media_cache, *flat)
    try:
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode != 0
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and SECURE_ID not in out + err


def test_cli_needs_ffmpeg_for_a_new_cache(tmp_path: Path) -> None:
    # A PATH with python but without ffmpeg, and an empty cache: a one-line error.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.emulator",
            "--name",
            "x",
            "--secure-id",
            SECURE_ID,
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO,
    )
    assert process.returncode == 1
    assert process.stderr.strip() == (
        "Error: ffmpeg not found: the camera emulator needs it to make its video"
    )


# --- a real browser ------------------------------------------------------------------------


@pytest.mark.browser
def test_chromium_plays_the_live_stream_across_the_cycle_wrap(
    camera: EmulatedCamera,
) -> None:
    """Debian's chromium (native HLS) plays > 1 cycle (16 s) without waiting after start."""
    assert browser_available(), "Debian's chromium is needed for this test"
    with tempfile.TemporaryDirectory() as profile, chromium(Path(profile)) as browser:
        page = browser.new_page()
        page.goto(f"{camera.control_url}/stats")
        page.evaluate(
            """src => {
                document.body.innerHTML = '';
                const video = document.createElement('video');
                video.id = 'v'; video.muted = true; video.autoplay = true;
                window.waits = 0;
                video.addEventListener('waiting', () => { window.waits++; });
                video.src = src;
                document.body.appendChild(video);
                video.play();
            }""",
            f"{camera.base_url}/live/index.m3u8",
        )
        state = "() => ({t: v.currentTime, waits: window.waits, w: v.videoWidth})"
        page.wait_for_function("() => v.currentTime > 1", timeout=20_000)
        before = page.evaluate(state)
        shot = page.screenshot()
        # More than one 16 s cycle played, however slowly the machine runs it (bounded).
        page.wait_for_function(f"() => v.currentTime > {before['t'] + 17}", timeout=90_000)
        after = page.evaluate(state)
        assert after["waits"] == before["waits"], "playback stalled"
        assert after["w"] == 640
        assert page.screenshot() != shot


def test_kept_alive_connections_have_nagle_off(camera: EmulatedCamera) -> None:
    """Headers and body go out in two writes: with Nagle on, a keep-alive client's delayed
    ACK costs ~40 ms per small answer (measured by bench/emulator_bench.py)."""
    with socket.create_connection((camera.host, camera.port), timeout=10) as client:
        request = f"GET /{SECURE_ID}/command/ping HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        client.sendall(request)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        server_side = camera._server._connections  # the accepted sockets (white-box)
        assert len(server_side) == 1
        (accepted,) = server_side
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
