"""Fixtures of the web tests: a running site (see tests/web/site.py) per module, reset per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.site import Camera, WebSite, build_site, run

__all__ = ["Camera", "WebSite", "run"]


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None:
        pytest.fail("the web tests need root and nginx (make deps)")
    root = Path(f"/tmp/paw-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh(site: WebSite) -> Iterator[WebSite]:
    """The module's site with every emulated camera reset (counters, faults, state) and
    running, and nginx's cache empty (no answer cached by an earlier test)."""
    for camera in site.cameras.values():
        if camera.emulated:
            if camera.process is None:
                camera.start()
            camera.reset()
    site.restart_nginx_with_an_empty_cache()
    yield site
    for camera in site.cameras.values():
        if camera.emulated and camera.process is None:
            camera.start()
