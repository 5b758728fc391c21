"""Benchmark the dashboard's data use: bytes per minute a 4-camera dashboard costs a phone.

The web role's rendered nginx in a namespace in front of 4 emulated cameras (as in tests/web),
and Debian's chromium (headless, driven by playwright, a phone-sized 390x844 window) on the
host as the viewer. Bytes are
counted on the wire: the host end of the veth to the "Pi" (TLS and TCP included), over a
window of --seconds after the page has settled, and scaled to one minute.

Scenarios:
  before, idle           every tile autoplays its live stream (`?mode=full`: the old page)
  after, idle            data-saving mode (over the tunnel, on phones): snapshots every 5 s of
                         the tiles on screen only
  after, 1 camera live   the same with one tile tapped, at the remembered quality (low)
  after, 1 camera auto   the same at quality "auto" (the camera's master playlist)

The emulated camera serves the same segments for every quality variant, so the quality
rows differ by the player's behaviour only; on a real Presence, poor/low are much smaller
than medium/high (688 kbit/s for low, 1012 kbit/s for medium in captured playlists).

Usage (root): python bench/remote_dashboard_bench.py [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.site import WebSite, build_site  # noqa: E402
from tests.web.test_web_browser import CHROMIUM, FLAGS  # noqa: E402

CAMERAS = ("front", "back", "garage", "drive")
SETTLE_SECONDS = 8
PHONE = {"width": 390, "height": 844}  # the viewer is a phone: one column, ~2 tiles on screen


def rx_bytes(site: WebSite) -> int:
    """Bytes the host (the viewer) has received from the Pi's namespace so far."""
    return int(Path(f"/sys/class/net/pawu{site.tag}/statistics/rx_bytes").read_text())


def measure(site: WebSite, context: Any, query: str, tap: str | None, seconds: float) -> float:
    """Bytes per minute for one page load, after SETTLE_SECONDS."""
    page = context.new_page()
    for attempt in range(3):  # chromium aborts a load when another test changes a link
        try:
            page.goto(f"{site.base_url}/{query}")
            break
        except Exception as err:
            if "ERR_NETWORK_CHANGED" not in str(err) or attempt == 2:
                raise
    page.wait_for_selector("body[data-mode]", timeout=15000)
    if tap:
        page.wait_for_selector(f'[data-camera="{tap}"] [data-role="play"]:not([hidden])')
        page.locator(f'[data-camera="{tap}"] [data-role="play"]').click()
    time.sleep(SETTLE_SECONDS)  # a benchmark window, not a wait for a condition
    start = rx_bytes(site)
    time.sleep(seconds)
    used = rx_bytes(site) - start
    page.close()
    return used * 60 / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    root = Path(f"/tmp/paw-remote-bench-{uuid.uuid4().hex[:6]}")
    site = build_site(root, cameras=CAMERAS, evil=False)
    results: dict[str, float] = {}
    try:
        subnet = ipaddress.ip_interface(f"{site.host_ip}/30").network
        # nginx also listens on the tunnel's first address (here the host's own): let it bind.
        site.ns(["sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"])
        site.render(
            remote_access={
                "wireguard": {"subnet": str(subnet), "endpoint": "home.example.net:51820"}
            },
            web_sysctl_file=str(root / "etc/sysctl.d/60-presence-appliance-web.conf"),
        )
        site.reload_nginx()
        with sync_playwright() as playwright:
            for label, query, tap, quality in (
                ("before, idle (autoplay all)", "?mode=full", None, "auto"),
                ("after, idle (snapshots)", "", None, "low"),
                ("after, 1 camera live (low)", "", CAMERAS[0], "low"),
                ("after, 1 camera live (auto)", "", CAMERAS[0], "auto"),
            ):
                profile = root / f"profile-{len(results)}"
                context = playwright.chromium.launch_persistent_context(
                    str(profile),
                    executable_path=CHROMIUM,
                    headless=True,
                    args=FLAGS,
                    http_credentials={"username": "admin", "password": site.users["admin"]},
                    ignore_https_errors=True,
                    viewport=PHONE,
                )
                try:
                    context.add_init_script(
                        f"localStorage.setItem('presence-appliance.quality', '{quality}')"
                    )
                    results[label] = measure(site, context, query, tap, args.seconds)
                finally:
                    context.close()
    finally:
        site.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}, indent=2))
        return 0
    print(f"4-camera dashboard, bytes per minute on the wire ({args.seconds:g} s windows):")
    for label, value in results.items():
        print(f"  {label:<32} {value / 1e6:8.2f} MB/min")
    before = results["before, idle (autoplay all)"]
    idle = results["after, idle (snapshots)"]
    print(f"  idle: {before / max(idle, 1):.1f}x less than before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
