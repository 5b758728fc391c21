"""The dashboard in a real browser (Debian's chromium, headless): tiles, live video, controls, offline."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import available as browser_available
from tests.browser import chromium
from tests.web.site import REPO, WebSite, build_site

pytestmark = [pytest.mark.browser, pytest.mark.netns]

ARTIFACTS = REPO / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 760}


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None or not browser_available():
        pytest.fail("the browser tests need root, nginx and chromium (make deps)")
    root = Path(f"/tmp/paw-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=("nord", "garage"), evil=False)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def browser(site: WebSite, tmp_path: Path) -> Iterator[Any]:
    login = ("admin", site.users["admin"])
    with chromium(tmp_path / "profile", login=login, viewport=VIEWPORT) as context:
        yield context


def current_time(page: Any, camera: str) -> float:
    return float(page.locator(f'[data-camera="{camera}"] video').evaluate("v => v.currentTime"))


def wait_playing(page: Any, camera: str, timeout_ms: int = 30000) -> None:
    page.wait_for_function(
        f"""() => {{
            const v = document.querySelector('[data-camera="{camera}"] video');
            return v && v.currentTime > 0.5 && !v.paused;
        }}""",
        timeout=timeout_ms,
    )


def assert_advances(page: Any, camera: str, timeout_ms: int = 15000) -> None:
    """The video plays on: its time moves more than a second past where it is now."""
    first = current_time(page, camera)
    page.wait_for_function(
        f"""() => document.querySelector('[data-camera="{camera}"] video').currentTime
                  > {first + 1}""",
        timeout=timeout_ms,
    )


@pytest.mark.parametrize("player", ["auto", "hlsjs"])
def test_dashboard_plays_live_video(site: WebSite, browser: Any, player: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    query = "" if player == "auto" else f"?player={player}"
    page.goto(f"{site.base_url}/{query}")
    assert page.locator("[data-camera]").count() == len(site.cameras)
    for name in site.cameras:
        page.wait_for_selector(
            f'[data-camera="{name}"] [data-role="status"][data-state="online"]', timeout=15000
        )
    for name in site.cameras:
        wait_playing(page, name)
        assert_advances(page, name)
    used = page.locator('[data-camera="nord"]').get_attribute("data-player")
    assert used == ("native" if player == "auto" else "hlsjs")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-role=snapshot]')].every(i => i.naturalWidth > 0)"
    )
    # Into the git-ignored test-artifacts/ only: `make screenshot` copies dashboard-auto.png
    # to the README's docs/dashboard.png when someone means to update that picture.
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{player}.png"), full_page=True)
    # On a phone: one column, no sideways scrolling (once the layout has followed the resize).
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{player}-phone.png"), full_page=True)


def test_controls_change_the_camera(site: WebSite, browser: Any) -> None:
    nord = site.cameras["nord"]
    nord.reset()
    page = browser.new_page()
    page.goto(site.base_url)
    tile = page.locator('[data-camera="nord"]')
    page.wait_for_selector(
        '[data-camera="nord"] [data-role="status"][data-state="online"]', timeout=15000
    )
    # The floodlight shows the camera's mode, and changing it keeps the rest of its config.
    page.wait_for_function(
        """() => document.querySelector('[data-camera="nord"] input[value="auto"]').checked"""
    )
    tile.get_by_label("Floodlight off for nord").check()
    page.wait_for_function(
        """() => document.querySelector('[data-camera="nord"] [data-role=message]').textContent.includes('off')"""
    )
    state = httpx.get(f"{nord.control}/_emulator/state", timeout=5).json()
    assert state["floodlight"]["mode"] == "off"
    assert state["floodlight"]["intensity"] == 100 and "night" in state["floodlight"]
    tile.get_by_label("Turn monitoring off for nord").click()
    page.wait_for_function(
        """() => document.querySelector('[data-camera="nord"] [data-role=message]').textContent.includes('turned off')"""
    )
    assert httpx.get(f"{nord.control}/_emulator/state", timeout=5).json()["monitoring"] == "off"
    tile.get_by_label("Turn monitoring off for nord").click()
    page.wait_for_function(
        """() => document.querySelector('[data-camera="nord"] [data-role=message]').textContent.includes('already off')"""
    )


def test_offline_camera_shows_and_recovers(site: WebSite, browser: Any) -> None:
    garage = site.cameras["garage"]
    page = browser.new_page()
    page.goto(site.base_url)
    status = '[data-camera="garage"] [data-role="status"]'
    page.wait_for_selector(f'{status}[data-state="online"]', timeout=15000)
    wait_playing(page, "garage")
    garage.stop()
    try:
        page.wait_for_selector(f'{status}[data-state="offline"]', timeout=20000)
        assert page.locator(status).inner_text() == "offline"
        assert (
            "Last answer:"
            in page.locator('[data-camera="garage"] [data-role="last-ping"]').inner_text()
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard-offline.png"))
    finally:
        garage.start()
    page.wait_for_selector(f'{status}[data-state="online"]', timeout=20000)
    wait_playing(page, "garage")
    assert_advances(page, "garage")


def test_without_a_player_the_snapshot_refreshes_every_second(site: WebSite, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{site.base_url}/?player=snapshot")
    fallback = '[data-camera="nord"] img.fallback'
    page.wait_for_selector(fallback, timeout=15000)
    page.wait_for_function(f"() => document.querySelector('{fallback}').naturalWidth > 0")
    first = page.locator(fallback).get_attribute("src")
    page.wait_for_function(
        f"() => document.querySelector('{fallback}').getAttribute('src') !== {first!r}",
        timeout=5000,
    )
    second = page.locator(fallback).get_attribute("src")
    assert first and second and first != second
    assert second.startswith("cameras/nord/live/snapshot_720.jpg?t=")
    assert page.locator('[data-camera="nord"] video').is_hidden()
