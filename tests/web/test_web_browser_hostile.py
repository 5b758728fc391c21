"""A hostile camera against a real browser (issue 11 §3): no script in the dashboard's origin, no POST.

The hostile camera answers its snapshot with an HTML page whose scripts (one inline, one
loaded from the camera's own floodlight_get_config path) read another camera's snapshot and
POST changestatus=off to every camera. Before the gate, one click on the thumbnail ran it
in Chromium and switched the cameras off.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import available as browser_available
from tests.browser import chromium
from tests.web.site import WebSite, build_site

pytestmark = [pytest.mark.browser, pytest.mark.netns]

PWNED = "() => [window.__pwned === true, window.__pwned_inline === true, window.__stolen]"


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None or not browser_available():
        pytest.fail("the browser tests need root, nginx and chromium (make deps)")
    root = Path(f"/tmp/paw-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=("nord", "garage"), evil=True)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def browser(site: WebSite, tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile", login=("admin", site.users["admin"])) as context:
        yield context


def commands_reached(site: WebSite) -> dict[str, int]:
    """changestatus requests each camera received (GET or POST: the proxy sends a GET)."""
    counts = {
        name: int(site.cameras[name].stats()["paths"].get("command/changestatus", 0))
        for name in ("nord", "garage")
    }
    double = site.cameras["evil"].double
    assert double is not None
    counts["evil"] = len([r for r in double.requests if "changestatus" in r[1]])
    return counts


def test_a_hostile_snapshot_and_thumbnail_click_run_nothing(site: WebSite, browser: Any) -> None:
    double = site.cameras["evil"].double
    assert double is not None
    double.set_mode("attack")
    for name in ("nord", "garage"):
        site.cameras[name].reset()
    before = commands_reached(site)
    page = browser.new_page()
    page.goto(site.base_url)
    tile = '[data-camera="evil"]'
    page.wait_for_selector(f'{tile} [data-role="status"][data-state="online"]', timeout=20000)
    # The tile asked for the hostile snapshot (and got our 502, not the page).
    page.wait_for_function(
        f"() => document.querySelector('{tile} [data-role=snapshot]').getAttribute('src')"
    )
    # The thumbnail opens the camera's snapshot on its own: what does the browser do with it?
    with page.expect_popup(timeout=15000) as opened:
        page.locator(f"{tile} a.snapshot-link").click()
    popup = opened.value
    popup.wait_for_load_state("load", timeout=15000)
    # And straight to the path, as a page in the dashboard's own tab.
    direct = browser.new_page()
    answer = direct.goto(f"{site.base_url}/cameras/evil/live/snapshot_720.jpg")
    # Whatever the hostile page started has finished (its fetches are immediate).
    popup.wait_for_load_state("networkidle", timeout=15000)
    direct.wait_for_load_state("networkidle", timeout=15000)
    for where in (page, popup, direct):
        assert where.evaluate(PWNED) == [False, False, None], where.url
    assert page.evaluate("() => document.body.dataset.pingInterval") is not None  # page intact
    assert commands_reached(site) == before
    assert answer is not None and answer.status == 502
    assert "sandbox" in answer.headers["content-security-policy"]
