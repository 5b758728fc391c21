"""check and camera commands through a real nginx (TLS, basic auth, proxy) on loopback.

The nginx here is a small stand-in for the web role's (same paths, error pages as JSON,
local_url rewritten), so the proxy-mode code paths run without the lab: certificate
pinning, the web login, 502 for a camera that is down, 409 replaced by nginx's page.
tests/e2e/test_day2.py runs the same commands against the real role in the lab.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.certs import make_self_signed
from tests.day2.conftest import camera_entry, write_inventory

PI_ADDRESS = "127.0.0.148"
SERVER_NAME = "pi.lan"
WEB_USER, WEB_PASSWORD = "admin", "s3cret-web"


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen {address}:443 ssl;
        server_name {server_name};
        ssl_certificate {dir}/server.crt;
        ssl_certificate_key {dir}/server.key;
        auth_basic "Presence cameras";
        auth_basic_user_file {dir}/htpasswd;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "";
        proxy_set_header Accept-Encoding "";
        proxy_connect_timeout 2s;
        proxy_read_timeout 3s;
        proxy_intercept_errors on;
        sub_filter_types application/json;
        sub_filter_once off;
        error_page 403 /_errors/403;
        error_page 404 /_errors/404;
        error_page 409 /_errors/409;
        error_page 502 /_errors/502;
        error_page 504 /_errors/504;
        location ~ "^/_errors/(?<code>[0-9]+)$" {{
            internal;
            auth_basic off;
            default_type application/json;
            return 200 '{{"error": "proxy error", "status": $code}}';
        }}
{locations}
    }}
}}
"""

LOCATION = """
        location /cameras/{name}/ {{
            proxy_pass http://{ip}:{port}/{secure_id}/;
            sub_filter "http://{ip}:{port}/{secure_id}" "/cameras/{name}";
        }}
"""


def _wait_for_port(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nginx did not start listening within 10 s")


def make_cert(directory: Path, stem: str, san: str) -> Path:
    return make_self_signed(
        directory / f"{stem}.key", directory / f"{stem}.crt", SERVER_NAME, san, days=2
    )


class Proxy:
    def __init__(self, directory: Path, cameras: list[Any]) -> None:
        self.dir = directory
        self.dir.mkdir()
        self.cert = make_cert(directory, "server", f"DNS:{SERVER_NAME},IP:{PI_ADDRESS}")
        hashed = subprocess.run(
            ["openssl", "passwd", "-apr1", WEB_PASSWORD],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        (directory / "htpasswd").write_text(f"{WEB_USER}:{hashed}\n")
        locations = "".join(
            LOCATION.format(name=c.name, ip=c.host, port=c.port, secure_id=c.secure_id)
            for c in cameras
        )
        conf = directory / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=directory, address=PI_ADDRESS, server_name=SERVER_NAME, locations=locations
            )
        )
        self.proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(PI_ADDRESS, 443, self.proc, directory / "error.log")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def proxied(make_cameras, tmp_path) -> Iterator[Any]:
    """Start cameras, nginx in front of them, and write an inventory with the pin in place."""
    proxies: list[Proxy] = []

    def make(count: int = 1, **web: Any) -> tuple[list[Any], Path]:
        cameras = make_cameras(count)
        proxy = Proxy(tmp_path / "nginx", cameras)
        proxies.append(proxy)
        pin_dir = tmp_path / ".presence-appliance" / "tls"
        pin_dir.mkdir(parents=True)
        shutil.copy(proxy.cert, pin_dir / "pi.crt")
        web_vars = {
            "server_name": SERVER_NAME,
            "users": [{"name": WEB_USER, "password": WEB_PASSWORD}],
            "tls_cert": None,
            "tls_key": None,
            **web,
        }
        inventory = write_inventory(tmp_path, [camera_entry(c) for c in cameras], web=web_vars)
        text = inventory.read_text().replace(
            "ansible_host: 127.0.0.1", f"ansible_host: {PI_ADDRESS}"
        )
        inventory.write_text(text)
        return cameras, inventory

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_check_through_the_proxy(proxied):
    (good, down), inventory = proxied(2)
    down.stop()
    code, output = cli("check", "-i", str(inventory), "--timeout", "5")
    assert code == 1
    assert "1/2 cameras pass (through the Pi's proxy" in output
    lines = {line.split()[1]: line for line in output.splitlines() if line.startswith("│")}
    assert "pass" in lines[good.name]
    assert "the Pi could not reach the camera (HTTP 502)" in lines[down.name]
    kinds = good.stats.report()["kinds"]
    assert kinds["snapshots"] == 1 and kinds["segments"] == 1
    for secret in (good.secure_id, down.secure_id, WEB_PASSWORD):
        assert secret not in output


def test_wrong_password_is_reported_once(proxied):
    (camera,), inventory = proxied(1)
    inventory.write_text(inventory.read_text().replace(WEB_PASSWORD, "wrong-password"))
    code, output = cli("check", "-i", str(inventory), "--json")
    assert code == 1
    assert "the Pi refused the web login (HTTP 401)" in output
    assert camera.stats.report()["requests"] == 0
    assert "wrong-password" not in output


def test_a_different_certificate_is_refused(proxied, tmp_path):
    (camera,), inventory = proxied(1)
    other = make_cert(tmp_path, "other", f"DNS:{SERVER_NAME},IP:{PI_ADDRESS}")
    shutil.copy(other, tmp_path / ".presence-appliance" / "tls" / "pi.crt")
    code, output = cli("check", "-i", str(inventory))
    assert code == 1
    assert "TLS failure: the Pi's certificate is not the pinned/trusted one" in output
    assert camera.stats.report()["requests"] == 0


def test_certificate_must_name_the_server(proxied):
    (camera,), inventory = proxied(1)
    inventory.write_text(
        inventory.read_text().replace("server_name: pi.lan", "server_name: other.lan")
    )
    code, output = cli("check", "-i", str(inventory))
    assert code == 1
    assert "TLS failure: the Pi's certificate does not name other.lan" in output
    assert camera.stats.report()["requests"] == 0


def test_users_certificate_is_checked_against_system_cas(proxied, tmp_path):
    (camera,), inventory = proxied(1)
    text = inventory.read_text().replace("tls_cert: null", f"tls_cert: {tmp_path}/user.crt")
    inventory.write_text(text)
    code, output = cli("check", "-i", str(inventory))
    # Our self-signed test certificate is in no system CA store.
    assert code == 1
    assert "TLS failure: the Pi's certificate is not the pinned/trusted one" in output
    assert camera.stats.report()["requests"] == 0


def test_camera_commands_through_the_proxy(proxied, tmp_path):
    (camera,), inventory = proxied(1)
    code, output = cli("camera", "monitoring", camera.name, "on", "-i", str(inventory))
    assert code == 0, output
    assert "already on" in output  # nginx replaced the camera's 409 body with its own
    code, output = cli("camera", "monitoring", camera.name, "off", "-i", str(inventory))
    assert code == 0, output
    assert camera.state.snapshot()["monitoring"] == "off"
    code, output = cli(
        "camera", "floodlight", camera.name, "on", "--intensity", "30", "-i", str(inventory)
    )
    assert code == 0, output
    state = camera.state.snapshot()["floodlight"]
    assert state["mode"] == "on" and state["intensity"] == 30 and state["night"]["person"]
    out = tmp_path / "shot.jpg"
    code, output = cli("camera", "snapshot", camera.name, "-o", str(out), "-i", str(inventory))
    assert code == 0, output
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    assert os.stat(out).st_size > 10_000
