"""No secure id reaches a browser or a log: every byte served and every nginx log, scanned.

Normal use, refused requests, cameras that hang, are slow, go down, answer garbage or
HTML, and a badly behaved camera that echoes its path (secure id) in its pages and headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.site import WebSite, run
from tests.web.test_web_proxy import CAMERA_PATHS, NOT_MAPPED, variant_segments

pytestmark = pytest.mark.netns


class Recorder:
    """Clients whose every answer (status line, headers, body) is kept for the scan."""

    def __init__(self, site: WebSite) -> None:
        self.site = site
        self.seen: list[tuple[str, bytes]] = []

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        head = f"HTTP {response.status_code} {response.reason_phrase}\n".encode()
        head += b"".join(k + b": " + v + b"\n" for k, v in response.headers.raw)
        self.seen.append((str(response.request.url), head + b"\n" + response.content))

    def client(self, **kw: object) -> httpx.Client:
        # Longer than nginx's own timeouts (10 s for segments): nginx must answer first.
        return self.site.client(event_hooks={"response": [self._keep]}, timeout=20, **kw)  # type: ignore[arg-type]


def leaks(data: bytes, secrets: list[str]) -> list[str]:
    text = data.decode("latin-1").lower()
    # The whole id, and either half of it (a cut-off echo is a leak too).
    return [s for s in secrets for part in (s, s[:16], s[16:]) if part.lower() in text]


@pytest.fixture
def recorder(fresh: WebSite) -> Iterator[Recorder]:
    yield Recorder(fresh)


def test_no_secure_id_in_anything_served_or_logged(fresh: WebSite, recorder: Recorder) -> None:
    site = fresh
    nord, garage, evil = site.cameras["nord"], site.cameras["garage"], site.cameras["evil"]
    with recorder.client() as client:
        # Normal use of every camera path and of the dashboard.
        for name in ("nord", "garage"):
            for path in CAMERA_PATHS:
                path = path.replace("/nord/", f"/{name}/")
                client.request("POST" if "set" in path or "changestatus" in path else "GET", path)
            for segment in variant_segments(client, name):
                assert client.get(f"/cameras/{name}/live/files/high/{segment}").status_code == 200
        for path in ("/", "/app.js", "/style.css"):
            assert client.get(path).status_code == 200
        # Refused requests.
        for path in NOT_MAPPED:
            client.get(path)
        client.get("/cameras/nord/command/changestatus?status=on")
        client.post("/cameras/nord/command/ping")
        client.post(
            "/cameras/nord/command/changestatus?status=on", headers={"Origin": "https://x.example"}
        )
        with recorder.client(auth=None) as stranger:
            stranger.get("/cameras/nord/live/index.m3u8")
        with httpx.Client(event_hooks={"response": [recorder._keep]}, timeout=5) as plain:
            plain.get(f"http://{site.pi_ip}/cameras/nord/command/ping")

        # A camera that hangs (504), is slow but within nginx's read timeout (answered),
        # closes (502), answers garbage or an HTML page.
        expected = {"hang": 504, "slow": 200, "down": 502}
        for mode, delay in (
            ("hang", 30.0),
            ("slow", 1.5),
            ("down", None),
            ("garbage", None),
            ("html200", None),
        ):
            for prefix, path in (
                ("command/floodlight_get_config", "/cameras/nord/command/floodlight_get_config"),
                ("live/snapshot", "/cameras/nord/live/snapshot_720.jpg"),
                ("live/files/medium/index", "/cameras/nord/live/files/medium/index.m3u8"),
            ):
                nord.fault(mode, prefix, delay=delay)
                try:
                    answer = client.get(path)
                finally:
                    nord.fault("none", prefix)
                if mode in expected:
                    assert answer.status_code == expected[mode], (mode, path)
                time.sleep(1.1)  # a wait on time itself: the cached entries expire
        # Every mode, "slow" included, really reached the camera (nginx may retry a closed
        # kept-alive connection once, so "down" can count more than once per request).
        faults = nord.stats()["faults"]
        assert sorted(faults) == sorted([*expected, "garbage", "html200"]), faults
        assert all(count >= 3 for count in faults.values()), faults
        segment = variant_segments(client, "nord", "poor")[-1]
        nord.fault("hang", "live/files/poor/live", delay=30)
        assert client.get(f"/cameras/nord/live/files/poor/{segment}").status_code == 504
        nord.fault("none")

        # A camera that is off, then out of reach.
        garage.stop()
        try:
            time.sleep(2.1)  # a wait on time itself: cached answers expire
            for path in ("/cameras/garage/command/ping", "/cameras/garage/live/index.m3u8"):
                assert client.get(path).status_code == 502
            run(["ip", "addr", "del", f"{garage.ip}/29", "dev", f"pawc{site.tag}"])
            try:
                assert client.get("/cameras/garage/command/floodlight_get_config").status_code in (
                    502,
                    504,
                )
            finally:
                run(["ip", "addr", "add", f"{garage.ip}/29", "dev", f"pawc{site.tag}"])
        finally:
            garage.start()

        # A camera echoing its path (secure id) in pages, redirects and headers.
        assert evil.double is not None
        for number, mode in enumerate(
            ("e404", "e403", "e401", "e500", "html200", "redirect", "escaped")
        ):
            evil.double.set_mode(mode)
            time.sleep(2.1)  # cached answers of the previous mode expire
            for path in (
                "/cameras/evil/command/ping",
                "/cameras/evil/command/floodlight_get_config",
                "/cameras/evil/live/index.m3u8",
                "/cameras/evil/live/snapshot_720.jpg",
                f"/cameras/evil/live/files/low/live000000000{number}.ts",
            ):
                answer = client.get(path)
                if mode == "redirect" and not path.endswith(("ping", "index.m3u8")):
                    assert answer.status_code == 502, path
            client.post("/cameras/evil/command/changestatus?status=on")

    assert len(recorder.seen) > 100
    served = [(url, data) for url, data in recorder.seen if leaks(data, site.secrets())]
    assert not served, [f"{url}: {data[:300]!r}" for url, data in served]
    _wait_until_logged(site)
    logs = {p.name: p.read_bytes() for p in (site.root / "log").glob("*.log")}
    assert logs["access.log"].count(b"\n") > 100
    for name, data in logs.items():
        assert not leaks(data, site.secrets()), (
            name,
            [line for line in data.splitlines() if leaks(line, site.secrets())][:3],
        )
    for page in (site.root / "www").glob("*"):
        if page.is_file():
            assert not leaks(page.read_bytes(), site.secrets()), page


def _wait_until_logged(site: WebSite, timeout: float = 10) -> None:
    """nginx logs a request after answering it: one last request, then wait (bounded) until
    its line is in the access log, so the requests before it are logged too."""
    # The log line names the user sent ($remote_user), refused or not: a unique one marks it
    # (a path would not do: nginx logs the error page's path for a 404).
    marker = f"log-marker-{uuid.uuid4().hex}"
    with site.client(auth=(marker, "not-a-password")) as client:
        assert client.get("/").status_code == 401
    log = site.root / "log" / "access.log"
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{marker} not logged within {timeout:.0f} s"
        time.sleep(0.05)


def test_the_scan_would_see_nginx_default_error_log(fresh: WebSite, tmp_path: Path) -> None:
    """Control: without the role's `error_log ... emerg` in camera locations, nginx's error
    log names the upstream URL, secure id included, for the very failures scanned above."""
    site = fresh
    assert site.nginx is not None
    original = site.conf.read_text()
    control_log = tmp_path / "control-error.log"
    quiet = f"error_log {site.root}/log/error.log emerg;"
    assert original.count(quiet) > 6
    site.conf.write_text(original.replace(quiet, f"error_log {control_log} warn;"))
    try:
        assert site.nginx_test().returncode == 0
        site.reload_nginx()
        nord = site.cameras["nord"]
        nord.fault("hang", "command/", delay=30)
        with site.client() as client:
            assert client.get("/cameras/nord/command/floodlight_get_config").status_code == 504
        nord.fault("none")
        logged = control_log.read_bytes()
        assert b"upstream timed out" in logged
        assert leaks(logged, [nord.secure_id]) == [nord.secure_id] * 3
    finally:
        site.conf.write_text(original)
        site.reload_nginx()
