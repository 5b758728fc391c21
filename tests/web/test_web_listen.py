"""Where nginx listens (issue 11 §4): loopback, the uplink and web.listen only, never the camera side."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appliance.schema import validate_appliance
from tests.web.site import WebSite, build_site, render_web

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    root = Path(f"/tmp/paw-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=("nord",), evil=False)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def curl(site: WebSite, address: str) -> str:
    """The HTTP status nginx answers on address:443 from inside the Pi's namespace ('000': none)."""
    result = site.ns(
        [
            "curl",
            "-s",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "5",
            f"https://{address}/",
        ],
        check=False,
    )
    return result.stdout


def test_nginx_listens_on_loopback_and_web_listen_only(site: WebSite) -> None:
    # The role's default (no web_listen_addresses override): loopback, the uplink's address
    # from the Pi's facts (none offline) and web.listen.
    data = site.inventory()
    variables = data["all"]["children"]["appliances"]["vars"]
    del variables["web_listen_addresses"]
    variables["web"]["listen"] = [site.pi_ip]
    inventory = site.root / "inventory-listen.yml"
    inventory.write_text(yaml.safe_dump(data))
    out = site.root / "rendered-listen"
    render_web(inventory, "paw-pi", out)
    conf = (out / str(site.conf).lstrip("/")).read_text()
    listens = sorted(set(re.findall(r"^\s*listen (\S+?):\d+", conf, re.M)))
    assert listens == sorted({"127.0.0.1", site.pi_ip}), listens
    assert "0.0.0.0" not in conf and "[::]" not in conf
    original = site.conf.read_text()
    site.conf.write_text(conf)
    try:
        site.reload_nginx()
        assert curl(site, "127.0.0.1") == "401"
        assert curl(site, site.pi_ip) == "401"
        # The Pi's address on the camera network: nothing listens there.
        assert curl(site, site.camera_ip(0)) == "000"
    finally:
        site.conf.write_text(original)
        site.reload_nginx()


def test_web_listen_takes_ip_addresses_only(site: WebSite) -> None:
    data = site.inventory()
    variables = data["all"]["children"]["appliances"]["vars"]
    variables["web"]["listen"] = ["192.0.2.7", "fd00::7", "cams.local", "10.0.0.300"]
    problems = [str(p) for p in validate_appliance("paw-pi", variables)]
    assert [p for p in problems if "web.listen" in p] == [
        "paw-pi: web.listen[2]: 'cams.local' is not an IP address",
        "paw-pi: web.listen[3]: '10.0.0.300' is not an IP address",
    ], problems


def test_with_remote_access_nginx_binds_the_tunnel_address_before_the_tunnel(
    site: WebSite,
) -> None:
    # As the role does with remote_access.wireguard: listen on the tunnel's first address,
    # which does not exist yet when nginx starts (wg-quick comes later), thanks to
    # net.ipv4.ip_nonlocal_bind (per namespace here, as on the Pi).
    data = site.inventory()
    variables = data["all"]["children"]["appliances"]["vars"]
    del variables["web_listen_addresses"]
    variables["web"]["listen"] = [site.pi_ip]
    variables["web_sysctl_file"] = str(site.root / "sysctl-web.conf")
    variables["remote_access"] = {
        "wireguard": {"subnet": "10.203.190.0/24", "endpoint": "home.example.net:51820"}
    }
    inventory = site.root / "inventory-tunnel.yml"
    inventory.write_text(yaml.safe_dump(data))
    out = site.root / "rendered-tunnel"
    render_web(inventory, "paw-pi", out)
    conf = out / str(site.conf).lstrip("/")
    assert re.search(r"^\s*listen 10\.203\.190\.1:443 ssl", conf.read_text(), re.M)
    assert (
        "net.ipv4.ip_nonlocal_bind = 1"
        in (out / str(site.root / "sysctl-web.conf").lstrip("/")).read_text()
    )
    sysctl = ["sysctl", "-n", "net.ipv4.ip_nonlocal_bind"]
    before = site.ns(sysctl).stdout.strip()
    try:
        site.ns(["sysctl", "-w", "net.ipv4.ip_nonlocal_bind=0"])
        refused = site.nginx_test(conf)
        assert refused.returncode != 0 and "10.203.190.1" in refused.stderr  # the control
        site.ns(["sysctl", "-w", "net.ipv4.ip_nonlocal_bind=1"])
        assert site.nginx_test(conf).returncode == 0, site.nginx_test(conf).stderr
    finally:
        site.ns(["sysctl", "-w", f"net.ipv4.ip_nonlocal_bind={before}"])
