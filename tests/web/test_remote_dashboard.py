"""The dashboard over the WireGuard tunnel and on phones (Debian's chromium, headless): tiles show
snapshots and play live only on tap, one camera at a time; the quality choice is remembered.

nginx learns "tunnel client" from the client's address (remote_access.wireguard.subnet): here
the subnet is set to the test host's own link, so the browser on the host is the tunnel client.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import available as browser_available
from tests.browser import chromium, goto
from tests.web.site import WebSite, build_site
from tests.web.test_web_browser import VIEWPORT, wait_playing

pytestmark = [pytest.mark.browser, pytest.mark.netns]

CAMERAS = ("nord", "garage")


def _remote(site: WebSite) -> dict[str, Any]:
    subnet = ipaddress.ip_interface(f"{site.host_ip}/30").network
    return {
        "remote_access": {
            "wireguard": {"subnet": str(subnet), "endpoint": "home.example.net:51820"}
        },
        # With remote access nginx also listens on the Pi's tunnel address (here the host's
        # own, so the namespace allows binding it) and the role writes a sysctl file.
        "web_sysctl_file": str(site.root / "etc/sysctl.d/60-presence-appliance-web.conf"),
    }


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None or not browser_available():
        pytest.fail("the browser tests need root, nginx and chromium (make deps)")
    root = Path(f"/tmp/paw-remote-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=CAMERAS, evil=False)
    try:
        built.ns(["sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"])
        built.render(**_remote(built))
        built.reload_nginx()
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def context(site: WebSite, tmp_path: Path) -> Iterator[Any]:
    login = ("admin", site.users["admin"])
    with chromium(tmp_path / "profile", login=login, viewport=VIEWPORT) as browser_context:
        yield browser_context


def _media_requests(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if ".m3u8" in r.url or ".ts" in r.url else None)
    return seen


def _snapshots_refresh(page: Any, camera: str) -> None:
    """Wait (bounded) until the tile's snapshot has been replaced by a newer one."""
    img = f'[data-camera="{camera}"] img.fallback'
    page.wait_for_function(
        f"() => document.querySelector('{img}')?.naturalWidth > 0", timeout=15000
    )
    first = page.locator(img).get_attribute("src")
    page.wait_for_function(
        f"src => document.querySelector('{img}').src.split('/').pop() !== src.split('/').pop()"
        f" && document.querySelector('{img}').naturalWidth > 0",
        arg=first,
        timeout=15000,
    )


def test_tunnel_client_gets_snapshots_and_plays_only_on_tap(site: WebSite, context: Any) -> None:
    with site.client() as client:
        assert client.get("/client.json").json() == {"remote": 1}
    page = context.new_page()
    requests = _media_requests(page)
    goto(page, site.base_url)
    page.wait_for_selector('body[data-mode="saver"]', timeout=15000)
    for name in CAMERAS:
        page.wait_for_selector(f'[data-camera="{name}"][data-player="preview"]', timeout=15000)
        _snapshots_refresh(page, name)
    assert requests == [], "a tile fetched video before it was tapped"
    assert page.locator('[data-role="quality"]').input_value() == "low"

    page.locator('[data-camera="nord"] [data-role="play"]').click()
    wait_playing(page, "nord")
    assert any("/cameras/nord/live/files/low/index.m3u8" in url for url in requests), requests
    assert not any("/cameras/garage/" in url for url in requests), requests

    # Tapping another tile stops the first: one live stream at a time.
    page.locator('[data-camera="garage"] [data-role="play"]').click()
    wait_playing(page, "garage")
    page.wait_for_selector('[data-camera="nord"][data-player="preview"]', timeout=10000)
    assert page.locator('[data-camera="nord"] video').evaluate("v => !v.getAttribute('src')")


def test_quality_choice_is_remembered_per_browser(site: WebSite, context: Any) -> None:
    page = context.new_page()
    requests = _media_requests(page)
    goto(page, site.base_url)
    page.wait_for_selector('[data-camera="nord"][data-player="preview"]', timeout=15000)
    page.locator('[data-role="quality"]').select_option("medium")
    page.locator('[data-camera="nord"] [data-role="play"]').click()
    wait_playing(page, "nord")
    assert any("/cameras/nord/live/files/medium/index.m3u8" in url for url in requests), requests
    goto(page)
    page.wait_for_selector('[data-camera="nord"][data-player="preview"]', timeout=15000)
    assert page.locator('[data-role="quality"]').input_value() == "medium"
    assert page.evaluate("() => localStorage.getItem('presence-appliance.quality')") == "medium"


def test_home_network_wide_screen_autoplays_and_phone_size_saves(
    site: WebSite, context: Any
) -> None:
    site.render()  # no remote_access: nobody is a tunnel client
    site.reload_nginx()
    try:
        with site.client() as client:
            assert client.get("/client.json").json() == {"remote": 0}
        page = context.new_page()
        goto(page, site.base_url)
        page.wait_for_selector('body[data-mode="full"]', timeout=15000)
        for name in CAMERAS:
            wait_playing(page, name)
        phone = context.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        requests = _media_requests(phone)
        goto(phone, site.base_url)
        phone.wait_for_selector('body[data-mode="saver"]', timeout=15000)
        _snapshots_refresh(phone, "nord")
        assert requests == []
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        site.render(**_remote(site))
        site.reload_nginx()
