"""check and camera commands through the web role's own nginx, rendered from its templates.

tests/web/site.py renders the role's nginx.conf, logins and certificate exactly as the role
writes them and runs nginx in a namespace in front of emulated cameras; these tests point the
day-2 commands at it: certificate pinning, the web login, 502 for a camera that is down, and
the role's JSON error pages (409 "already on"). tests/e2e/test_day2.py runs the same commands
against the role on the booted lab Pi.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.certs import make_self_signed
from tests.day2.conftest import write_inventory
from tests.web.site import WebSite, build_site

pytestmark = pytest.mark.netns

HOST = "pi"  # the inventory's host name: the pin is .presence-appliance/tls/pi.crt


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    if os.geteuid() != 0 or shutil.which("nginx") is None:
        pytest.fail("the proxy-mode tests need root and nginx (make deps)")
    root = Path(f"/tmp/pad-proxy-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=("front", "back"), evil=False)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def proxied(site: WebSite, tmp_path: Path) -> Iterator[tuple[WebSite, Path]]:
    """The site with its cameras reset and running and nginx's cache empty, and an inventory
    for the commands with the site's certificate pinned where `install` pins it."""
    for camera in site.cameras.values():
        if camera.process is None:
            camera.start()
        camera.reset()
    site.restart_nginx_with_an_empty_cache()
    cameras = [
        {
            "name": camera.name,
            "mac": f"70:ee:50:00:01:{index:02x}",
            "ip": camera.ip,
            "secure_id": camera.secure_id,
            "cloud": "block",
        }
        for index, camera in enumerate(site.cameras.values(), start=1)
    ]
    web = {
        "server_name": site.server_name,
        "users": [{"name": "admin", "password": site.users["admin"]}],
        "tls_cert": None,
        "tls_key": None,
    }
    inventory = write_inventory(tmp_path, cameras, web=web)
    inventory.write_text(
        inventory.read_text().replace("ansible_host: 127.0.0.1", f"ansible_host: {site.pi_ip}")
    )
    pins = tmp_path / ".presence-appliance" / "tls"
    pins.mkdir(parents=True)
    shutil.copy(site.cert, pins / f"{HOST}.crt")
    try:
        yield site, inventory
    finally:
        for camera in site.cameras.values():
            if camera.process is None:
                camera.start()


def requests(site: WebSite, name: str) -> int:
    """Requests that reached camera NAME (its emulator's own counter)."""
    return int(site.cameras[name].stats()["requests"])


def camera_state(site: WebSite, name: str) -> dict[str, Any]:
    return httpx.get(f"{site.cameras[name].control}/_emulator/state", timeout=5).json()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_check_through_the_proxy(proxied: tuple[WebSite, Path]) -> None:
    site, inventory = proxied
    site.cameras["back"].stop()
    code, output = cli("check", "-i", str(inventory), "--timeout", "5")
    assert code == 1
    assert "1/2 cameras pass (through the Pi's proxy" in output
    lines = {line.split()[1]: line for line in output.splitlines() if line.startswith("│")}
    assert "pass" in lines["front"]
    assert "the Pi could not reach the camera (HTTP 502)" in lines["back"]
    kinds = site.cameras["front"].stats()["kinds"]
    assert kinds["snapshots"] == 1 and kinds["segments"] == 1
    for secret in [*site.secrets(), site.users["admin"]]:
        assert secret not in output


def test_wrong_password_is_reported_once(proxied: tuple[WebSite, Path]) -> None:
    site, inventory = proxied
    inventory.write_text(inventory.read_text().replace(site.users["admin"], "wrong-password"))
    code, output = cli("check", "-i", str(inventory), "--json")
    assert code == 1
    assert "the Pi refused the web login (HTTP 401)" in output
    assert requests(site, "front") == requests(site, "back") == 0
    assert "wrong-password" not in output


def test_a_different_certificate_is_refused(proxied: tuple[WebSite, Path], tmp_path: Path) -> None:
    site, inventory = proxied
    # Same names as the Pi's own: only the pin tells them apart.
    other = make_self_signed(
        tmp_path / "other.key",
        tmp_path / "other.crt",
        site.server_name,
        f"DNS:{site.server_name},IP:{site.pi_ip}",
        days=2,
    )
    shutil.copy(other, tmp_path / ".presence-appliance" / "tls" / f"{HOST}.crt")
    code, output = cli("check", "-i", str(inventory))
    assert code == 1
    assert "TLS failure: the Pi's certificate is not the pinned/trusted one" in output
    assert requests(site, "front") == 0


def test_certificate_must_name_the_server(proxied: tuple[WebSite, Path]) -> None:
    site, inventory = proxied
    inventory.write_text(
        inventory.read_text().replace(f"server_name: {site.server_name}", "server_name: other.lan")
    )
    code, output = cli("check", "-i", str(inventory))
    assert code == 1
    assert "TLS failure: the Pi's certificate does not name other.lan" in output
    assert requests(site, "front") == 0


def test_users_certificate_is_checked_against_system_cas(
    proxied: tuple[WebSite, Path], tmp_path: Path
) -> None:
    site, inventory = proxied
    text = inventory.read_text().replace("tls_cert: null", f"tls_cert: {tmp_path}/user.crt")
    inventory.write_text(text)
    code, output = cli("check", "-i", str(inventory))
    # The role's self-signed certificate is in no system CA store.
    assert code == 1
    assert "TLS failure: the Pi's certificate is not the pinned/trusted one" in output
    assert requests(site, "front") == 0


def test_camera_commands_through_the_proxy(proxied: tuple[WebSite, Path], tmp_path: Path) -> None:
    site, inventory = proxied
    code, output = cli("camera", "monitoring", "front", "on", "-i", str(inventory))
    assert code == 0, output
    assert "already on" in output  # the role's error page replaced the camera's 409 body
    code, output = cli("camera", "monitoring", "front", "off", "-i", str(inventory))
    assert code == 0, output
    assert camera_state(site, "front")["monitoring"] == "off"
    code, output = cli(
        "camera", "floodlight", "front", "on", "--intensity", "30", "-i", str(inventory)
    )
    assert code == 0, output
    state = camera_state(site, "front")["floodlight"]
    assert state["mode"] == "on" and state["intensity"] == 30 and state["night"]["person"]
    out = tmp_path / "shot.jpg"
    code, output = cli("camera", "snapshot", "front", "-o", str(out), "-i", str(inventory))
    assert code == 0, output
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    assert os.stat(out).st_size > 10_000
