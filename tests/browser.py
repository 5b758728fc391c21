"""Debian's chromium, headless, driven by playwright: the one place the tests launch a browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# As root in a container: no sandbox, no GPU; nothing that phones home on its own (the tests'
# networks reach only their own namespaces), and video may start without a click.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def available() -> bool:
    """Debian's chromium is installed (`make deps`); never a downloaded browser."""
    return Path(CHROMIUM).exists()


@contextmanager
def chromium(
    profile: Path, *, login: tuple[str, str] | None = None, **options: Any
) -> Iterator[Any]:
    """A persistent browser context with its profile in PROFILE, closed on the way out.

    LOGIN (user, password) answers the dashboard's basic auth; self-signed certificates are
    accepted (the tests' Pis make their own). OPTIONS go to playwright as they are
    (`viewport`, `is_mobile`, ...).
    """
    from playwright.sync_api import sync_playwright

    if login is not None:
        options["http_credentials"] = {"username": login[0], "password": login[1]}
    options.setdefault("ignore_https_errors", True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, **options
        )
        try:
            yield context
        finally:
            context.close()


def goto(page: Any, url: str | None = None) -> None:
    """Load URL (or reload the page). Other tests on this machine add and remove interfaces all
    the time, and chromium aborts a navigation with ERR_NETWORK_CHANGED when one changes."""
    for attempt in range(3):
        try:
            page.goto(url) if url else page.reload()
            return
        except Exception as err:  # playwright's Error
            if "ERR_NETWORK_CHANGED" not in str(err) or attempt == 2:
                raise
