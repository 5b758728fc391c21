"""`check` against a hostile camera and a hostile Pi: it requests nothing outside the camera's
scope, sends the web login nowhere else, and reads bounded amounts in bounded time.

The peers are real HTTP(S) servers on loopback (tests/day2/hostile_camera.py). The "Pi" here is
the hostile server itself speaking TLS on port 443 with a pinned certificate: what a camera
puts into a playlist reaches `check` unchanged through the real proxy too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from appliance.check import CheckReport, run_check
from appliance.inventory import load_inventory
from tests.certs import make_self_signed
from tests.day2.conftest import inventory_text
from tests.day2.hostile_camera import (
    MASTER,
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
    playlist,
    redirect,
)

# Loopback addresses of this file's peers (127/8 is all loopback; nobody else uses these).
PI_ADDRESS = "127.203.160.1"
ELSEWHERE_ADDRESS = "127.203.160.2"
SERVER_NAME = "pi.lan"
PASSWORD = "s3cret-web"
TIMEOUT = 2.0
# Every call here is bounded by the code under test; this only keeps a regression from
# hanging the suite.
WATCHDOG = 60.0
T = TypeVar("T")


def bounded(call: Callable[[], T]) -> T:
    """Run CALL in a thread; fail the test if it has not returned within WATCHDOG seconds."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as err:  # handed to the test thread below
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    assert not thread.is_alive(), f"still running after {WATCHDOG:g} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def direct_inventory(tmp_path: Path, camera: HostileCamera) -> Path:
    entry = {
        "name": camera.name,
        "mac": "70:ee:50:00:00:01",
        "ip": camera.host,
        "port": camera.port,
        "secure_id": camera.secure_id,
        "cloud": "block",
    }
    path = tmp_path / "inventory.yml"
    path.write_text(inventory_text([entry]))
    return path


def proxy_inventory(tmp_path: Path, pi: HostileCamera, cert: Path) -> Path:
    entry = {
        "name": pi.name,
        "mac": "70:ee:50:00:00:01",
        "ip": "10.42.0.10",
        "secure_id": "ab" * 16,
        "cloud": "block",
    }
    text = inventory_text([entry]).replace("127.0.0.1", pi.host)
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    pin = tmp_path / ".presence-appliance" / "tls" / "pi.crt"
    pin.parent.mkdir(parents=True)
    pin.write_bytes(cert.read_bytes())
    return path


def check(inventory: Path, direct: bool) -> dict[str, Any]:
    """run_check on INVENTORY; the one camera's result as --json prints it."""
    loaded = load_inventory(inventory)
    report: CheckReport = bounded(lambda: run_check(loaded, direct=direct, timeout=TIMEOUT))
    (camera,) = report.to_dict()["cameras"]
    return camera


@pytest.fixture
def elsewhere() -> Iterator[HostileCamera]:
    """Where a hostile playlist points: it must never be contacted."""
    with hostile_camera(host=ELSEWHERE_ADDRESS) as server:
        yield server


@pytest.fixture
def camera() -> Iterator[HostileCamera]:
    with hostile_camera(host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def pi_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("pi-tls")
    key = directory / "server.key"
    cert = make_self_signed(
        key, directory / "server.crt", SERVER_NAME, f"DNS:{SERVER_NAME},IP:{PI_ADDRESS}", days=2
    )
    return cert, key


@pytest.fixture
def pi(pi_cert: tuple[Path, Path]) -> Iterator[HostileCamera]:
    """A hostile Pi: TLS on 443 with the pinned certificate, camera paths under /cameras/evil/."""
    with hostile_camera(host=PI_ADDRESS, port=443, pi=True, tls=pi_cert) as server:
        yield server


def test_the_hostile_peers_pass_when_healthy(camera, pi, pi_cert, tmp_path):
    # The baseline: every test below changes one answer of a camera that otherwise passes.
    result = check(direct_inventory(_mk(tmp_path / "d"), camera), direct=True)
    assert result["verdict"] == "pass", result
    result = check(proxy_inventory(_mk(tmp_path / "p"), pi, pi_cert[0]), direct=False)
    assert result["verdict"] == "pass", result
    logins = {s.headers.get("authorization") for s in pi.requests}
    assert len(pi.requests) == 5 and len(logins) == 1 and None not in logins


def _mk(directory: Path) -> Path:
    directory.mkdir()
    return directory


# ---------------------------------------------------------------------------
# Scope: nothing outside the camera's origin and prefix, the login nowhere else


def test_foreign_absolute_url_gets_no_request_and_no_login(pi, pi_cert, elsewhere, tmp_path):
    # The finding: this playlist received `Authorization: Basic ...` in plain HTTP.
    foreign = f"http://{ELSEWHERE_ADDRESS}:{elsewhere.port}/x.m3u8"
    pi.routes["live/index.m3u8"] = playlist(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{foreign}\n")
    result = check(proxy_inventory(tmp_path, pi, pi_cert[0]), direct=False)
    assert result["verdict"] == "fail"
    assert result["reason"] == (
        "stream: live playlist: names a URL with another scheme (http); not followed"
    )
    assert elsewhere.connections == 0
    assert pi.outside() == []
    assert PASSWORD not in json.dumps(result)


def test_foreign_https_url_on_another_port_is_not_followed(pi, pi_cert, tmp_path):
    # Same scheme and address, another port: another origin.
    pi.routes["live/files/poor/index.m3u8"] = playlist(
        f"#EXTM3U\n#EXTINF:2,\nhttps://{PI_ADDRESS}:8443/cameras/evil/live/x.ts\n"
    )
    result = check(proxy_inventory(tmp_path, pi, pi_cert[0]), direct=False)
    assert result["reason"] == (
        "stream: variant playlist: names a URL on another host; not followed"
    )


def test_scheme_relative_url_is_not_followed(camera, elsewhere, tmp_path):
    camera.routes["live/files/poor/index.m3u8"] = playlist(
        f"#EXTM3U\n#EXTINF:2,\n//{ELSEWHERE_ADDRESS}:{elsewhere.port}/{camera.secure_id}/x.ts\n"
    )
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == (
        "stream: variant playlist: names a URL on another host; not followed"
    )
    assert elsewhere.connections == 0


@pytest.mark.parametrize(
    "reference",
    [
        "../../../other/live/files/poor/index.m3u8",  # resolved by the client: /cameras/other/
        "%2e%2e/%2e%2e/%2e%2e/other/live/index.m3u8",  # resolved by nginx after decoding
        "files%2f..%2f..%2f..%2fother/index.m3u8",  # an encoded slash hides the segments
        "/cameras/other/live/files/poor/index.m3u8",  # absolute path, same origin
        f"https://{PI_ADDRESS}/cameras/other/live/index.m3u8",  # absolute URL, same origin
    ],
)
def test_escapes_out_of_the_camera_prefix_are_not_followed(reference, pi, pi_cert, tmp_path):
    pi.routes["live/index.m3u8"] = playlist(
        f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{reference}\n"
    )
    result = check(proxy_inventory(tmp_path, pi, pi_cert[0]), direct=False)
    assert result["verdict"] == "fail"
    assert result["reason"].startswith("stream: live playlist: names a URL "), result
    assert result["reason"].endswith("; not followed")
    assert pi.outside() == []
    # Only the ping, the snapshot and the master playlist were asked for.
    assert sorted(s.path.rsplit("/", 1)[-1] for s in pi.requests) == [
        "index.m3u8",
        "ping",
        "snapshot_720.jpg",
    ]


def test_direct_mode_keeps_to_the_secure_id_prefix(camera, tmp_path):
    camera.routes["live/index.m3u8"] = playlist(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n../../0123/live/files/poor/index.m3u8\n"
    )
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == (
        "stream: live playlist: names a URL outside the camera's path; not followed"
    )
    assert camera.outside() == []


def test_redirect_to_elsewhere_is_not_followed(pi, pi_cert, elsewhere, tmp_path):
    pi.routes["live/index.m3u8"] = redirect(f"http://{ELSEWHERE_ADDRESS}:{elsewhere.port}/x")
    pi.routes["live/snapshot_720.jpg"] = redirect("/cameras/other/live/snapshot_720.jpg", 307)
    result = check(proxy_inventory(tmp_path, pi, pi_cert[0]), direct=False)
    assert result["snapshot"]["detail"] == (
        "live/snapshot_720.jpg: redirected (HTTP 307); redirects are not followed"
    )
    assert result["stream"]["detail"] == (
        "live/index.m3u8: redirected (HTTP 302); redirects are not followed"
    )
    assert elsewhere.connections == 0
    assert pi.outside() == []


# ---------------------------------------------------------------------------
# Bounds: size, lines, time


def test_endless_playlist_is_cut_at_the_size_bound(camera, tmp_path):
    camera.routes["live/index.m3u8"] = endless(
        "application/vnd.apple.mpegurl", b"#EXTM3U\n#EXTINF:2,\nx.ts\n"
    )
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == "stream: live/index.m3u8: answer longer than 64 kB"
    # Read and dropped: a few socket buffers, not the seconds of loopback speed until a timeout.
    assert camera.sent < 64 * 1024 * 1024


def test_one_gigabyte_content_length_is_refused_before_reading(camera, tmp_path):
    camera.routes["live/snapshot_720.jpg"] = endless("image/jpeg", b"\xff", length=10**9)
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == ("snapshot: live/snapshot_720.jpg: answer of 953 MB, more than 8 MB")
    assert camera.sent < 64 * 1024 * 1024


def test_endless_segment_is_probed_not_downloaded(camera, tmp_path):
    camera.routes["live/files/poor/live0000000001.ts"] = endless(
        "video/mp2t", bytes([0x47]) + b"\x00" * 187
    )
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["verdict"] == "pass", result
    assert camera.sent < 64 * 1024 * 1024


def test_too_many_playlist_lines(camera, tmp_path):
    lines = "#EXTINF:2,\nx.ts\n" * 1000
    camera.routes["live/files/poor/index.m3u8"] = playlist("#EXTM3U\n" + lines)
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == "stream: variant playlist: more than 1000 lines"


def test_slowloris_drip_ends_at_the_timeout(camera, tmp_path):
    whole = head(200, {"Content-Type": "application/json", "Content-Length": "100"}) + b"{"
    camera.routes["command/ping"] = drip(whole, interval=0.05)
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == f"ping: no answer within {TIMEOUT:g} s"
    assert result["snapshot"]["ok"] is None  # unreachable: nothing else asked


def test_a_camera_is_cut_at_its_budget(camera, tmp_path, monkeypatch):
    # Each answer comes within the per-request timeout, but the camera as a whole is
    # cut at its budget (here 2 timeouts; 4 normally) instead of adding them all up. Four
    # answers one after another (ping, playlist, variant, segment) at 0.6 timeouts each:
    # 0.8 s to spare both ways on a loaded machine (each answer within its timeout; the
    # four past the budget).
    monkeypatch.setattr("appliance.check.CAMERA_BUDGET_TIMEOUTS", 2)
    for path in list(camera.routes):
        camera.routes[path] = _late(camera.routes[path], TIMEOUT * 0.6)
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["verdict"] == "fail"
    assert result["ping"]["detail"] == f"no complete answer within {TIMEOUT * 2:g} s"


def _late(behaviour: Behaviour, seconds: float) -> Behaviour:
    def behave(seen: Seen, peer: Peer) -> None:
        peer.pause(seconds)
        behaviour(seen, peer)

    return behave


# ---------------------------------------------------------------------------
# What the answers are


def test_non_utf8_playlist(camera, tmp_path):
    camera.routes["live/files/poor/index.m3u8"] = answer(
        200, "application/vnd.apple.mpegurl", b"#EXTM3U\n#EXTINF:2,\nlive\xff\xfe.ts\n"
    )
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == "stream: variant playlist: not UTF-8 text"


@pytest.mark.parametrize(
    ("path", "behaviour", "reason"),
    [
        (
            "live/index.m3u8",
            answer(200, "application/json", MASTER),
            "stream: live playlist: content type application/json, not an HLS playlist type",
        ),
        (
            "live/files/poor/live0000000001.ts",
            answer(200, "text/plain", b"G" * 188),
            "stream: segment: content type text/plain, not video/mp2t",
        ),
        (
            "command/ping",
            answer(200, "text/plain", '{"local_url": "x"}'),
            "ping: content type text/plain, not application/json",
        ),
        (
            "live/snapshot_720.jpg",
            answer(200, None, b"\xff\xd8\xff\xe0"),
            "snapshot: content type missing, not image/jpeg",
        ),
        (
            "live/index.m3u8",
            answer(200, "application/vnd.apple.mpegurl", MASTER, {"Content-Encoding": "gzip"}),
            "stream: live/index.m3u8: compressed answer refused (we asked for none)",
        ),
    ],
)
def test_wrong_content_types(path, behaviour, reason, camera, tmp_path):
    camera.routes[path] = behaviour
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"] == reason


@pytest.mark.parametrize(
    ("local_url", "reason"),
    [
        ("http://[", "ping: local_url is not a URL"),
        (
            "http://evil\x1b\x07host/x",
            "ping: the camera answering says its address is evil??host, the inventory",
        ),
        (None, "ping: answer has no local_url"),
    ],
)
def test_odd_ping_answers_are_clear_failures(local_url, reason, camera, tmp_path):
    camera.routes["command/ping"] = json_answer({"local_url": local_url})
    result = check(direct_inventory(tmp_path, camera), direct=True)
    assert result["reason"].startswith(reason), result
    assert "unexpected error" not in result["reason"]


def test_ping_identity_checks(camera, tmp_path):
    inventory = direct_inventory(tmp_path, camera)
    other = "b" * 32
    camera.routes["command/ping"] = json_answer({"local_url": f"http://{camera.host}/{other}"})
    result = check(inventory, direct=True)
    assert result["reason"] == "ping: the camera answering has a different secure id"
    camera.routes["command/ping"] = json_answer(
        {"local_url": f"http://10.42.0.11/{camera.secure_id}"}
    )
    result = check(inventory, direct=True)
    assert result["reason"] == (
        "ping: the camera answering says its address is 10.42.0.11, the inventory says 127.0.0.1"
    )


def test_the_cli_says_one_line_per_camera_and_exits_1(pi, pi_cert, elsewhere, tmp_path):
    # The real command, as `install` ends: a hostile Pi and camera give a table row, exit 1.
    pi.routes["live/index.m3u8"] = playlist(
        f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://{ELSEWHERE_ADDRESS}:{elsewhere.port}/x\n"
    )
    inventory = proxy_inventory(tmp_path, pi, pi_cert[0])
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check", "-i", str(inventory), "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=WATCHDOG,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "names a URL with another scheme (http); not followed" in done.stdout
    assert "0/1 cameras pass" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert elsewhere.connections == 0


def test_an_unusable_inventory_address_is_one_cameras_failure(camera, tmp_path):
    # Not from a camera, but the same rule: one camera's line, the others still checked.
    good = direct_inventory(tmp_path, camera)
    odd = {"name": "odd", "mac": "70:ee:50:00:00:02", "ip": "[::1", "secure_id": "ab" * 16}
    data = yaml.safe_load(good.read_text())
    data["all"]["children"]["appliances"]["vars"]["cameras"].insert(0, odd)
    good.write_text(yaml.safe_dump(data))
    report = bounded(lambda: run_check(load_inventory(good), direct=True, timeout=TIMEOUT))
    reasons = {c.camera: c.reason for c in report.cameras}
    assert reasons == {
        "odd": "ping: the inventory's address for this camera is not usable",
        camera.name: "",
    }
