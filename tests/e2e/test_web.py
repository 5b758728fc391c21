"""The web role on the booted lab Pi: HTTPS proxy with login, whitelist, pinned certificate, no secret leaks."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.handle import Lab
from tests.certs import make_self_signed
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab

LAN = "pa-lan"  # where the user's browser and controller sit


def _inventory(lab: Lab, tmp_path: Path, **extra: Any) -> Path:
    """The lab's inventory plus a local hls.js (the lab Pi has no route to a download site)."""
    data = copy.deepcopy(lab.inventory)
    variables = data["all"]["children"]["appliances"]["vars"]
    variables["web_hlsjs_src"] = str(fetch_hlsjs())
    variables.update(extra)
    path = tmp_path / "inventory.yml"
    path.touch(mode=0o600)  # it holds the lab's secrets
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _install(
    lab: Lab, inventory: Path, *extra: str, tags: str | None = "web"
) -> subprocess.CompletedProcess[str]:
    return lab.cli(
        "install", "-i", str(inventory), "--no-check", *(["--tags", tags] if tags else []), *extra
    )


def _changed(result: subprocess.CompletedProcess[str]) -> int:
    counts = [int(n) for n in re.findall(r"ok=\d+ changed=(\d+)", result.stdout)]
    assert counts, result.stdout + result.stderr
    return sum(counts)


class Browser:
    """curl from the home network (pa-lan), verifying the Pi against the pinned certificate."""

    def __init__(self, lab: Lab, cert: Path) -> None:
        self.lab = lab
        self.cert = cert
        self.pi = lab.plan.pis[0].address
        self.password = lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["users"][0][
            "password"
        ]

    def get(
        self, path: str, *args: str, auth: bool = True, scheme: str = "https"
    ) -> tuple[int, dict[str, str], bytes, float]:
        argv = ["curl", "-s", "-m", "15", "-D", "-", "--cacert", str(self.cert)]
        if auth:
            argv += ["-u", f"admin:{self.password}"]
        # The time the Pi took to answer: from the request sent (connection and TLS set up)
        # to the last byte, as curl measures it; not the process start or the handshake,
        # which a busy test machine can stretch by seconds.
        argv += ["-w", "\n%{time_pretransfer} %{time_total}", *args,
                 f"{scheme}://{self.pi}{path}"]  # fmt: skip
        # Bytes, not lab.run_in's text: bodies are video and JPEG, headers end in CRLF.
        result = subprocess.run(
            ["ip", "netns", "exec", LAN, *argv], capture_output=True, timeout=30, check=False
        )
        raw, _, timing = result.stdout.rpartition(b"\n")
        pretransfer, total = (float(value) for value in timing.split())
        took = total - pretransfer
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/"), (path, result.returncode, result.stderr)
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        return status, headers, body, took


@pytest.fixture(scope="module")
def web(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lab, Path]:
    """The lab Pi provisioned with every role (the proxy needs the camera network), once per
    module: a full install is most of a lab test's time, and the tests leave it as they found
    it (the one that changes the certificate runs last)."""
    lab = lab_session.ensure_up()
    inventory = _inventory(lab, tmp_path_factory.mktemp("web"))
    result = _install(lab, inventory, tags=None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for camera in lab.plan.pis[0].cameras:
        lab.wait_camera_lease(camera.name, timeout=90)
    return lab, inventory


def test_install_pins_the_certificate_and_is_idempotent(web: tuple[Lab, Path]) -> None:
    lab, inventory = web
    pinned = inventory.parent / ".presence-appliance" / "tls" / f"{lab.plan.pis[0].host}.crt"
    assert pinned.exists()
    names = subprocess.run(
        ["openssl", "x509", "-in", str(pinned), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "DNS:cams.lab.home.arpa" in names and f"IP Address:{lab.plan.pis[0].address}" in names
    before = pinned.read_bytes()
    again = _install(lab, inventory)
    assert again.returncode == 0, again.stdout[-3000:]
    assert _changed(again) == 0, [
        ln for ln in again.stdout.splitlines() if ln.strip().startswith("changed")
    ]
    assert pinned.read_bytes() == before  # the self-signed certificate survives re-provisioning


def test_files_on_the_pi_are_private(web: tuple[Lab, Path]) -> None:
    lab, _ = web
    out = lab.pi_exec(
        "stat",
        "-c",
        "%n %a %U %G",
        "/etc/nginx/nginx.conf",
        "/etc/nginx/presence-appliance.htpasswd",
        "/etc/nginx/presence-appliance-tls/server.key",
        "/var/cache/nginx/presence-appliance",
    ).stdout.split("\n")
    modes = {line.split()[0]: line.split()[1:] for line in out if line.strip()}
    assert modes["/etc/nginx/nginx.conf"] == ["600", "root", "root"]
    assert modes["/etc/nginx/presence-appliance.htpasswd"] == ["640", "root", "www-data"]
    assert modes["/etc/nginx/presence-appliance-tls/server.key"] == ["600", "root", "root"]
    assert modes["/var/cache/nginx/presence-appliance"] == ["700", "www-data", "www-data"]
    password = lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["users"][0]["password"]
    assert password not in lab.pi_exec("cat", "/etc/nginx/presence-appliance.htpasswd").stdout


def test_proxy_from_the_home_network(web: tuple[Lab, Path]) -> None:
    lab, inventory = web
    cert = inventory.parent / ".presence-appliance" / "tls" / f"{lab.plan.pis[0].host}.crt"
    browser = Browser(lab, cert)
    cameras = [c.name for c in lab.plan.pis[0].cameras]
    secure_ids = [
        c["secure_id"] for c in lab.inventory["all"]["children"]["appliances"]["vars"]["cameras"]
    ]

    served: list[bytes] = []

    def get(path: str, *args: str, **kw: Any) -> tuple[int, dict[str, str], bytes, float]:
        answer = browser.get(path, *args, **kw)
        served.append(json.dumps(answer[1]).encode() + answer[2])
        return answer

    assert get("/", auth=False)[0] == 401
    assert get(f"/cameras/{cameras[0]}/live/index.m3u8", auth=False)[0] == 401
    status, _, page, _ = get("/")
    assert status == 200
    assert re.findall(rb'data-camera="([^"]+)"', page) == [c.encode() for c in cameras]
    for name in cameras:
        status, headers, body, _ = get(f"/cameras/{name}/live/files/high/index.m3u8")
        assert status == 200, body
        segment = re.findall(rb"^(live\d+\.ts)$", body, re.M)[-1].decode()
        status, headers, body, _ = get(f"/cameras/{name}/live/files/high/{segment}")
        assert status == 200 and headers["content-type"] == "video/mp2t"
        status, headers, body, _ = get(f"/cameras/{name}/live/snapshot_720.jpg")
        assert status == 200 and body[:3] == b"\xff\xd8\xff"
        status, _, body, _ = get(f"/cameras/{name}/command/ping")
        assert status == 200 and json.loads(body)["local_url"] == f"/cameras/{name}"
        for path in ("vod/x/index.m3u8", "command/changesetting", "_emulator/stats"):
            assert get(f"/cameras/{name}/{path}")[0] == 404
        assert get(f"/cameras/{name}/command/changestatus?status=on")[0] == 405
    assert get("/_emulator/stats")[0] == 404
    status, headers, _, _ = get("/", auth=False, scheme="http")
    assert status == 301 and headers["location"].startswith("https://")

    # TLS 1.1 is refused by the Pi for its protocol version (alert 70), while the same client
    # offering TLS 1.2 gets in: the refusal is about the protocol, not a broken connection.
    def handshake(*options: str) -> subprocess.CompletedProcess[str]:
        return lab.run_in(
            LAN,
            "openssl",
            "s_client",
            "-connect",
            f"{browser.pi}:443",
            *options,
            timeout=20,
            check=False,
        )

    old = handshake("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0
    assert "alert protocol version" in old.stderr, old.stderr
    current = handshake("-tls1_2")
    assert current.returncode == 0 and "Protocol  : TLSv1.2" in current.stdout, current.stderr

    # A camera that hangs: 504 within 5 s; nothing of it leaks.
    camera = lab.plan.pis[0].cameras[0]
    lab.run_in(
        camera.netns,
        "curl",
        "-s",
        "-X",
        "POST",
        f"http://{camera.ip}/_emulator/fault?mode=hang&delay=30",
    )
    try:
        status, _, _, took = get(f"/cameras/{camera.name}/command/floodlight_get_config")
        # 504 at the read timeout (4 s; below 7 s: slack for a busy machine), not the camera's 30 s
        assert status == 504 and 4 <= took < 7, (status, took)
    finally:
        lab.run_in(
            camera.netns,
            "curl",
            "-s",
            "-X",
            "POST",
            f"http://{camera.ip}/_emulator/fault?mode=none",
        )

    for data in served:
        for secret in secure_ids:
            assert secret.encode() not in data
    logs = lab.pi_exec("sh", "-c", "cat /var/log/nginx/*.log").stdout
    assert "/cameras/" in logs
    for secret in secure_ids:
        assert secret not in logs
    assert not any(
        s in lab.pi_exec("sh", "-c", "cat /var/www/presence-appliance/*.*").stdout
        for s in secure_ids
    )


def test_a_config_nginx_rejects_never_goes_live(web: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, _ = web
    live = lab.pi_exec("sha256sum", "/etc/nginx/nginx.conf").stdout
    (tmp_path / "broken").mkdir()
    # An upstream port nginx cannot accept: `nginx -t` refuses the file, so it is not written.
    broken = _inventory(lab, tmp_path / "broken", web_camera_port=99999)
    result = _install(lab, broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # The cause: the nginx.conf task's `validate:` (nginx -t) refused it, not anything earlier.
    assert re.search(
        r"^error: lab-pi: web : Write the nginx configuration .*: /etc/nginx/nginx\.conf rejected "
        r"by its checker, the live file is unchanged: .*invalid port in upstream",
        output,
        re.M,
    ), output[-3000:]
    assert lab.pi_exec("sha256sum", "/etc/nginx/nginx.conf").stdout == live
    assert lab.pi_exec("systemctl", "is-active", "nginx").stdout.strip() == "active"


def _names(cert: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout


def test_certificate_follows_the_inventory(web: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, _ = web
    host = lab.plan.pis[0].host
    # A new server name: the self-signed certificate is made again, and pinned again.
    (tmp_path / "renamed").mkdir()
    renamed = _inventory(lab, tmp_path / "renamed")
    text = renamed.read_text().replace("cams.lab.home.arpa", "cams2.lab.home.arpa")
    renamed.write_text(text)
    result = _install(lab, renamed)
    assert result.returncode == 0, result.stdout[-3000:]
    pinned = renamed.parent / ".presence-appliance" / "tls" / f"{host}.crt"
    assert "DNS:cams2.lab.home.arpa" in _names(pinned)
    # The user's own certificate and key: copied (key 0600) and pinned as they are.
    own = tmp_path / "own"
    own.mkdir()
    make_self_signed(own / "key.pem", own / "cert.pem", "own.example", "DNS:own.example")
    inventory = _inventory(lab, own)
    text = yaml.safe_load(inventory.read_text())
    text["all"]["children"]["appliances"]["vars"]["web"].update(
        tls_cert=str(own / "cert.pem"), tls_key=str(own / "key.pem")
    )
    inventory.write_text(yaml.safe_dump(text, sort_keys=False))
    result = _install(lab, inventory)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (own / ".presence-appliance" / "tls" / f"{host}.crt").read_bytes() == (
        own / "cert.pem"
    ).read_bytes()
    mode = lab.pi_exec(
        "stat", "-c", "%a %U", "/etc/nginx/presence-appliance-tls/server.key"
    ).stdout.split()
    assert mode == ["600", "root"]
    served = lab.run_in(
        LAN,
        "openssl",
        "s_client",
        "-connect",
        f"{lab.plan.pis[0].address}:443",
        "-CAfile",
        str(own / "cert.pem"),
        timeout=20,
        check=False,
    ).stdout
    assert "own.example" in served
