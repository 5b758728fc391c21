"""A hostile camera behind the real nginx (issue 11 §3): nothing it sends reaches a browser but checked media.

Each test fails on the proxy before the gate: wrong types passed through, camera headers
and error pages reached the browser, gzip passed, ping answers were cached with their
secure id.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator

import pytest

from tests.web.evil_camera import EvilCamera
from tests.web.site import WebSite
from tests.web.test_web_proxy import CAMERA_PATHS, variant_segments

pytestmark = pytest.mark.netns

# What a browser may see in a camera answer: nginx's own framing and our headers, nothing else.
ALLOWED_HEADERS = {
    "server",
    "date",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "expires",
    "cache-control",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "content-security-policy",
}
SANDBOX = "sandbox; default-src 'none'"
EXPECTED_TYPES = {
    "playlist": "application/vnd.apple.mpegurl",
    "segment": "video/mp2t",
    "snapshot": "image/jpeg",
    "command": "application/json",
}


def evil_paths(tag: str) -> dict[str, str]:
    """One path of each kind; segments named per test (they are cached for a minute)."""
    number = zlib.crc32(tag.encode()) % 10**9
    return {
        "playlist": "/cameras/evil/live/files/low/index.m3u8",
        "segment": f"/cameras/evil/live/files/low/live{number:010d}.ts",
        "snapshot": "/cameras/evil/live/snapshot_720.jpg",
        "command": "/cameras/evil/command/floodlight_get_config",
    }


@pytest.fixture
def evil(fresh: WebSite) -> Iterator[EvilCamera]:
    double = fresh.cameras["evil"].double
    assert double is not None
    time.sleep(1.1)  # answers cached by an earlier test (1 s) expire
    yield double
    double.set_mode("e404")


def assert_ours(answer, status: int) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, (answer.url, answer.status_code, answer.text[:200])
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.json() == {"error": answer.json()["error"], "status": status}
    assert SANDBOX in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("mode", ["wrongtype", "notype", "gzip"])
def test_an_answer_of_the_wrong_type_or_coding_becomes_our_502(
    fresh: WebSite, evil: EvilCamera, mode: str
) -> None:
    evil.set_mode(mode)
    with fresh.client() as client:
        for kind, path in evil_paths(mode).items():
            answer = client.get(path)
            assert_ours(answer, 502)
            assert b"<script" not in answer.content and b"<html" not in answer.content, kind
        for path in ("/cameras/evil/command/changestatus?status=on",):
            assert_ours(client.post(path), 502)


def test_an_endless_body_is_refused_at_once(fresh: WebSite, evil: EvilCamera) -> None:
    evil.set_mode("endless")
    with fresh.client(timeout=20) as client:
        for path in evil_paths("endless").values():
            started = time.monotonic()
            assert_ours(client.get(path), 502)
            # Refused on its headers (no declared length), not after a read timeout.
            assert time.monotonic() - started < 3, path
    # nginx went away after the headers: nothing near a whole cache's worth was read.
    assert evil.endless_bytes < 16 * 2**20


@pytest.mark.parametrize("mode", ["e401", "e403", "e404", "e418", "e451", "e500", "redirect"])
def test_every_camera_error_becomes_our_own_page(
    fresh: WebSite, evil: EvilCamera, mode: str
) -> None:
    evil.set_mode(mode)
    with fresh.client() as client:
        for path in evil_paths(mode).values():
            answer = client.get(path)
            # A camera's 404 stays a 404 (a segment that rolled off), as our own page.
            assert_ours(answer, 404 if mode == "e404" else 502)
            assert "Not here" not in answer.text
            assert not (set(answer.headers) - ALLOWED_HEADERS), answer.headers
        # A camera's 401 is not the login prompt: no WWW-Authenticate, the login stays.
        assert "www-authenticate" not in client.get("/cameras/evil/live/snapshot_720.jpg").headers


def test_only_our_headers_reach_the_browser(fresh: WebSite, evil: EvilCamera) -> None:
    evil.set_mode("headers")
    before = len(evil.requests)
    with fresh.client() as client:
        for kind, path in evil_paths("headers").items():
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text[:200])
            assert set(answer.headers) <= ALLOWED_HEADERS, set(answer.headers) - ALLOWED_HEADERS
            assert answer.headers["content-type"] == EXPECTED_TYPES[kind]
            assert SANDBOX in answer.headers["content-security-policy"]
            assert "public" not in answer.headers.get("cache-control", "")
            for value in answer.headers.values():
                assert fresh.cameras["evil"].secure_id not in value
        # The camera's X-Accel-Redirect steered nothing: no command reached it.
        assert not [r for r in evil.requests[before:] if "changestatus" in r[1]]


def test_camera_paths_are_sandboxed_and_typed(fresh: WebSite) -> None:
    # An honest camera's answers too: a sandboxed document, never sniffed into a page.
    with fresh.client() as client:
        segment = variant_segments(client)[-1]
        for path in (*CAMERA_PATHS, f"/cameras/nord/live/files/high/{segment}"):
            post = "set_config" in path or "changestatus" in path
            answer = client.request("POST" if post else "GET", path)
            assert answer.status_code in (200, 404, 409), (path, answer.status_code)
            assert answer.headers["content-type"] in (*EXPECTED_TYPES.values(), "application/json")
            assert SANDBOX in answer.headers["content-security-policy"], path
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert set(answer.headers) <= ALLOWED_HEADERS, path
        client.post("/cameras/nord/command/changestatus?status=on")


def test_the_dashboard_runs_only_its_own_scripts(fresh: WebSite) -> None:
    with fresh.client() as client:
        first = client.get("/")
        second = client.get("/")
    policy = first.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if " " in d.strip())
    nonce = directives["script-src"].strip()
    # One nonce and nothing else: not 'self' (camera paths are 'self'), not 'unsafe-inline'.
    assert nonce.startswith("'nonce-") and " " not in nonce, policy
    assert f'nonce="{nonce[7:-1]}"' in first.text
    assert second.headers["content-security-policy"] != policy  # fresh per page
    assert "__PRESENCE_CSP_NONCE__" not in first.text


def test_the_cache_holds_no_secure_id(fresh: WebSite) -> None:
    # ping answers hold the secure id (local_url): never cached; nor anything else with it.
    honest = [fresh.cameras[name] for name in ("nord", "garage")]
    with fresh.client() as client:
        for camera in honest:
            for path in CAMERA_PATHS:
                path = path.replace("/nord/", f"/{camera.name}/")
                post = "set_config" in path or "changestatus" in path
                assert client.request("POST" if post else "GET", path).status_code in (
                    200,
                    404,
                    409,
                )
            for segment in variant_segments(client, camera.name):
                client.get(f"/cameras/{camera.name}/live/files/high/{segment}")
            ping = client.get(f"/cameras/{camera.name}/command/ping")
            assert ping.json()["local_url"] == f"/cameras/{camera.name}"
            client.post(f"/cameras/{camera.name}/command/changestatus?status=on")
    files = [p for p in (fresh.root / "cache").rglob("*") if p.is_file()]
    assert len(files) > 10
    cached = b"".join(p.read_bytes() for p in files).lower()
    for camera in honest:
        for part in (camera.secure_id, camera.secure_id[:16], camera.secure_id[16:]):
            assert part.lower().encode() not in cached, camera.name


def test_every_dynamic_answer_needs_the_login(fresh: WebSite) -> None:
    # `return` answers before nginx's login check: none may be reachable by a stranger.
    with fresh.client(auth=None) as stranger:
        assert stranger.get("/client.json").status_code == 401
    with fresh.client() as client:
        assert client.get("/client.json").json() == {"remote": 0}
