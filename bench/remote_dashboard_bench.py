"""Benchmark the dashboard's data use: bytes per minute a 4-camera dashboard costs a phone.

Two setups, both with Debian's chromium (headless, driven by playwright, a phone-sized 390x844
window) as the viewer:

  namespaces (default)  the web role's rendered nginx in a namespace in front of 4 emulated
                        cameras (as in tests/web); chromium on the host. Bytes: the host end of
                        the veth to the "Pi" (TLS and TCP included).
  --lab                 the booted lab Pi provisioned by the real playbook (`lab up --cameras
                        4`, `install` with remote access, `remote add phone`), chromium inside
                        the lab's phone namespace (pa-phone) through the phone's WireGuard
                        tunnel. Bytes: the phone's eth0, its "mobile" link (WireGuard, UDP and
                        TLS included). The benchmark holds the lab's session lock like a test
                        session (it queues behind one), brings up its own lab and takes it down
                        at the end; a lab that is already up is refused, never taken over.

Counted over a window of --seconds after the page has settled, scaled to one minute.

Scenarios:
  before, idle           every tile autoplays its live stream (`?mode=full`: the old page)
  after, idle            data-saving mode (over the tunnel, on phones): snapshots every 5 s of
                         the tiles on screen only
  after, 1 camera live   the same with one tile tapped, at the remembered quality (low)
  after, 1 camera auto   the same at quality "auto" (the camera's master playlist)

The emulated camera serves the same segments for every quality variant, so the quality
rows differ by the player's behaviour only; on a real Presence, poor/low are much smaller
than medium/high (688 kbit/s for low, 1012 kbit/s for medium in captured playlists).

Usage (root): python bench/remote_dashboard_bench.py [--lab] [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, FLAGS  # noqa: E402
from tests.web.site import build_site  # noqa: E402

CAMERAS = ("front", "back", "garage", "drive")
SETTLE_SECONDS = 8
PHONE = {"width": 390, "height": 844}  # the viewer is a phone: one column, ~2 tiles on screen


SCENARIOS = (  # label, query, index of the tile tapped, remembered quality
    ("before, idle (autoplay all)", "?mode=full", None, "auto"),
    ("after, idle (snapshots)", "", None, "low"),
    ("after, 1 camera live (low)", "", 0, "low"),
    ("after, 1 camera live (auto)", "", 0, "auto"),
)


@dataclass
class Viewer:
    """Where the dashboard is, how to log in, how to start chromium, and the byte counter."""

    url: str
    login: tuple[str, str]
    executable: str
    flags: list[str]
    rx_bytes: Callable[[], int]
    cameras: list[str]


def measure(viewer: Viewer, context: Any, query: str, tap: str | None, seconds: float) -> float:
    """Bytes per minute for one page load, after SETTLE_SECONDS."""
    page = context.new_page()
    for attempt in range(3):  # chromium aborts a load when another test changes a link
        try:
            page.goto(f"{viewer.url}/{query}")
            break
        except Exception as err:
            if "ERR_NETWORK_CHANGED" not in str(err) or attempt == 2:
                raise
    page.wait_for_selector("body[data-mode]", timeout=15000)
    if tap:
        page.wait_for_selector(f'[data-camera="{tap}"] [data-role="play"]:not([hidden])')
        page.locator(f'[data-camera="{tap}"] [data-role="play"]').click()
    time.sleep(SETTLE_SECONDS)  # a benchmark window, not a wait for a condition
    start = viewer.rx_bytes()
    time.sleep(seconds)
    used = viewer.rx_bytes() - start
    page.close()
    return used * 60 / seconds


def run_scenarios(viewer: Viewer, profiles: Path, seconds: float) -> dict[str, float]:
    """Each scenario in a fresh browser profile (nothing cached from the one before)."""
    from playwright.sync_api import sync_playwright

    results: dict[str, float] = {}
    with sync_playwright() as playwright:
        for label, query, tap, quality in SCENARIOS:
            context = playwright.chromium.launch_persistent_context(
                str(profiles / f"profile-{len(results)}"),
                executable_path=viewer.executable,
                headless=True,
                args=viewer.flags,
                http_credentials={"username": viewer.login[0], "password": viewer.login[1]},
                ignore_https_errors=True,
                viewport=PHONE,
            )
            try:
                context.add_init_script(
                    f"localStorage.setItem('presence-appliance.quality', '{quality}')"
                )
                camera = None if tap is None else viewer.cameras[tap]
                results[label] = measure(viewer, context, query, camera, seconds)
            finally:
                context.close()
    return results


def in_namespaces(seconds: float) -> dict[str, float]:
    """The web role's nginx in namespaces, chromium on the host."""
    root = Path(f"/tmp/paw-remote-bench-{uuid.uuid4().hex[:6]}")
    site = build_site(root, cameras=CAMERAS, evil=False)
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
        rx = Path(f"/sys/class/net/pawu{site.tag}/statistics/rx_bytes")
        viewer = Viewer(
            site.base_url, ("admin", site.users["admin"]), CHROMIUM, FLAGS,
            lambda: int(rx.read_text()), list(CAMERAS),
        )  # fmt: skip
        return run_scenarios(viewer, root, seconds)
    finally:
        site.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def in_the_lab(seconds: float) -> dict[str, float]:
    """The lab Pi, chromium in the phone's namespace through its WireGuard tunnel."""
    from bench.remote_dashboard_lab import lab_phone

    with lab_phone() as phone, tempfile.TemporaryDirectory(prefix="paw-remote-bench-") as tmp:
        viewer = Viewer(
            phone.url, (phone.user, phone.password), str(phone.launcher),
            [*FLAGS, phone.resolver_flag], phone.rx_bytes, phone.cameras,
        )  # fmt: skip
        return run_scenarios(viewer, Path(tmp), seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--lab", action="store_true", help="on the booted lab Pi, via the tunnel")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.lab:
        from bench.remote_dashboard_lab import Refused

        try:
            results = in_the_lab(args.seconds)
        except Refused as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        results = in_namespaces(args.seconds)

    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}, indent=2))
        return 0
    where = "lab Pi, phone through WireGuard" if args.lab else "namespaces"
    print(
        f"4-camera dashboard ({where}), bytes per minute on the wire ({args.seconds:g} s windows):"
    )
    for label, value in results.items():
        print(f"  {label:<32} {value / 1e6:8.2f} MB/min")
    before = results["before, idle (autoplay all)"]
    idle = results["after, idle (snapshots)"]
    print(f"  idle: {before / max(idle, 1):.1f}x less than before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
