"""Recordings in the dashboard: the web role's nginx (real, in a namespace) serves each recording
camera's folder read-only behind the login, and real Chromium lists and plays an MP4.

Addresses from 10.203.160.0/20, names prefixed ftct-. The MP4 is the one the emulated camera
uploads (its own H.264 stream, remuxed by the emulator's export code).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import uuid
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.emulator import load_media
from appliance.emulator.ftp_export import CLIP_SEGMENTS, cut_mp4
from tests.browser import available as browser_available
from tests.browser import chromium
from tests.web.site import WebSite, build_site

pytestmark = [pytest.mark.browser, pytest.mark.netns]

DAY = "2026/11/30"
CLIP = "2026-11-30-10.15-5f1e2d3c4b5a69788796a5b4.mp4"
OTHER_CLIP = "2026-11-30-10.16-000000000000000000000000.mp4"
FTP_PASSWORD = "ftct-Secret-Ftp-42"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _recordings(root: Path) -> Path:
    """The recordings folder as the FTP server leaves it, with a few hostile extras."""
    media = load_media()
    clip = root / "clip.mp4"
    cut_mp4([media.stream.segment(n) for n in range(100, 100 + CLIP_SEGMENTS)], clip)
    rec = root / "rec"
    _write(rec / "nord" / DAY / CLIP, clip.read_bytes())
    # The other camera has recordings on disk, but no `recordings: true`: never served.
    _write(rec / "garage" / DAY / OTHER_CLIP, clip.read_bytes())
    # What a camera might upload besides clips: a page, a symlink out, a file above the folders.
    _write(rec / "nord" / DAY / "page.html", b"<script>alert(1)</script>")
    (rec / "nord" / DAY / "link.mp4").symlink_to(rec / "garage" / DAY / OTHER_CLIP)
    _write(rec / "outside.mp4", b"OUTSIDE-THE-CAMERA-FOLDERS")
    for path in [rec, *rec.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return rec


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None or not browser_available():
        pytest.fail("the recordings tests need root, nginx and chromium (make deps)")
    root = Path(f"/tmp/ftct-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=("nord", "garage"), evil=False, octet=160, names="ftct")
    try:
        rec = _recordings(root)
        cameras = built.inventory()["all"]["children"]["appliances"]["vars"]["cameras"]
        cameras[0].update(recordings=True, ftp_password=FTP_PASSWORD)
        built.render(cameras=cameras, recordings={"path": str(rec)})
        built.reload_nginx()
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def raw_get(site: WebSite, path: str, auth: bool = True) -> tuple[int, bytes]:
    """GET PATH exactly as written (no client-side normalising of '..' or '%2e')."""
    connection = http.client.HTTPSConnection(
        site.pi_ip, 443, context=site.tls_context(), timeout=10
    )
    headers = {"Host": site.pi_ip}
    if auth:
        token = b64encode(f"admin:{site.users['admin']}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_recording_cameras_folder_is_listed_as_json(site: WebSite) -> None:
    with site.client() as client:
        top = client.get("/recordings/nord/")
        assert top.status_code == 200
        assert top.headers["content-type"].startswith("application/json")
        assert [e["name"] for e in top.json()] == ["2026"]
        day = client.get(f"/recordings/nord/{DAY}/").json()
        clip = next(e for e in day if e["name"] == CLIP)
        size = (site.root / "rec" / "nord" / DAY / CLIP).stat().st_size
        assert clip["type"] == "file" and clip["size"] == size


def test_an_mp4_is_served_whole_and_in_ranges(site: WebSite) -> None:
    data = (site.root / "rec" / "nord" / DAY / CLIP).read_bytes()
    with site.client() as client:
        whole = client.get(f"/recordings/nord/{DAY}/{CLIP}")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["x-content-type-options"] == "nosniff"
        part = client.get(f"/recordings/nord/{DAY}/{CLIP}", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        assert part.content == data[100:200]
        tail = client.get(f"/recordings/nord/{DAY}/{CLIP}", headers={"Range": "bytes=-64"})
        assert tail.status_code == 206 and tail.content == data[-64:]
        # Read-only.
        assert client.post(f"/recordings/nord/{DAY}/{CLIP}").status_code == 405
        assert client.put(f"/recordings/nord/{DAY}/x.mp4", content=b"x").status_code == 405
        assert client.delete(f"/recordings/nord/{DAY}/{CLIP}").status_code == 405
    assert (site.root / "rec" / "nord" / DAY / CLIP).read_bytes() == data


@pytest.mark.parametrize(
    "path",
    ["/recordings/nord/", f"/recordings/nord/{DAY}/", f"/recordings/nord/{DAY}/{CLIP}"],
)
def test_without_the_login_nothing_is_served(site: WebSite, path: str) -> None:
    with site.client(auth=None) as client:
        answer = client.get(path, headers={"Range": "bytes=0-99"})
        assert answer.status_code == 401 and b"ftyp" not in answer.content
    with site.client(auth=("admin", "wrong-password")) as client:
        assert client.get(path).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/garage/",
        f"/recordings/garage/{DAY}/{OTHER_CLIP}",
        f"/recordings/nord/../garage/{DAY}/{OTHER_CLIP}",
        f"/recordings/nord/%2e%2e/garage/{DAY}/{OTHER_CLIP}",
        f"/recordings/nord/..%2fgarage/{DAY}/{OTHER_CLIP}",
        f"/recordings/nord%2f..%2fgarage/{DAY}/{OTHER_CLIP}",
        f"/recordings/nord/{DAY}/../../../../garage/{DAY}/{OTHER_CLIP}",
        "/recordings/nord/../outside.mp4",
        "/recordings/nord/2026/../../outside.mp4",
        "/recordings/outside.mp4",
        "/recordings/nord/%2e%2e%2foutside.mp4",
        f"/recordings/nord/{DAY}/link.mp4",
        f"/recordings/nord/{DAY}/page.html",
        "/recordings/NORD/",
        "/recordings/nord/etc/passwd",
    ],
)
def test_nothing_outside_the_cameras_own_clips_is_served(site: WebSite, path: str) -> None:
    garage = (site.root / "rec" / "garage" / DAY / OTHER_CLIP).read_bytes()
    status, body = raw_get(site, path)
    assert status in (400, 403, 404), (path, status)
    assert b"OUTSIDE-THE-CAMERA-FOLDERS" not in body and b"<script>" not in body
    assert garage[:4096] not in body and b"ftyp" not in body


def test_the_page_shows_recordings_only_where_they_are_on_and_no_secret(site: WebSite) -> None:
    with site.client() as client:
        page = client.get("/").text
        script = client.get("/app.js").text
        listing = client.get(f"/recordings/nord/{DAY}/").text
    assert page.count("data-recordings=") == 1 and 'data-recordings="nord"' in page
    for text in (page, script, listing):
        assert FTP_PASSWORD not in text
        for secret in site.secrets():
            assert secret not in text
    assert FTP_PASSWORD not in site.logs()


def test_the_cameras_ftp_settings_pass_the_proxy_and_the_password_is_never_logged(
    site: WebSite,
) -> None:
    config = {"on_off": 1, "server": "10.42.0.1", "port": 21, "user": "cam-nord"}
    config["password"] = FTP_PASSWORD
    with site.client() as client:
        origin = {"Origin": site.base_url}
        answer = client.post(
            "/cameras/nord/command/ftp_set_config",
            params={"config": json.dumps(config)},
            headers=origin,
        )
        assert answer.status_code == 200, answer.text
        got = client.get("/cameras/nord/command/ftp_get_config")
        assert got.status_code == 200 and got.json() == {**config, "path": "/"}
        # Written only with POST, from the dashboard's own origin.
        assert client.get("/cameras/nord/command/ftp_set_config").status_code == 405
        foreign = {"Origin": "https://evil.example"}
        assert (
            client.post("/cameras/nord/command/ftp_set_config", headers=foreign).status_code == 403
        )
    assert FTP_PASSWORD not in site.logs()
    assert "ftp_set_config" in site.logs()  # the request was logged, without its query


@pytest.fixture
def browser(site: WebSite, tmp_path: Path) -> Iterator[Any]:
    login = ("admin", site.users["admin"])
    with chromium(
        tmp_path / "profile", login=login, viewport={"width": 1280, "height": 900}
    ) as context:
        yield context


def test_chromium_lists_and_plays_a_recording(site: WebSite, browser: Any) -> None:
    page = browser.new_page()
    page.goto(site.base_url)
    assert page.locator('[data-camera="garage"] [data-role="recordings"]').count() == 0
    box = page.locator('[data-camera="nord"] [data-role="recordings"]')
    box.locator("summary").click()
    item = box.locator(f'li[data-clip="{CLIP}"]')
    item.wait_for(timeout=15000)
    # Only the clip: not the page, and the symlink is listed by nginx but never served.
    assert box.locator("li").evaluate_all("items => items.map(i => i.dataset.clip)") == sorted(
        [CLIP, "link.mp4"], reverse=True
    )
    assert box.locator('[data-role="rec-day"]').input_value() == DAY
    download = item.locator('[data-role="rec-download"]')
    assert download.get_attribute("href") == f"recordings/nord/{DAY}/{CLIP}"
    assert download.get_attribute("download") == CLIP
    item.locator('[data-role="rec-play"]').click()
    player = '[data-camera="nord"] [data-role="rec-player"]'
    page.wait_for_function(
        f"() => document.querySelector('{player}').currentTime > 0.5", timeout=20000
    )
    first = float(page.locator(player).evaluate("v => v.currentTime"))
    page.wait_for_function(
        f"() => document.querySelector('{player}').currentTime > {first + 1}", timeout=15000
    )
    played = page.locator(player).evaluate("v => [v.duration, v.videoWidth, v.error]")
    assert 5.0 <= played[0] <= 7.0 and played[1] == 640 and played[2] is None
