"""The login ban and nginx's listening addresses on the booted lab Pi (issue 11 §4).

fail2ban runs on the Pi with the role's jail only (Debian's sshd jail would stop it on a
journald-only system); nginx listens on the uplink and loopback, not on the camera Wi-Fi;
a brute-forcer on the home network ends up in the firewall's ban set. Until the firewall
role creates table `inet presence_appliance` and its sets, this test creates a stand-in of
the same shape (and removes only what it created).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab.handle import Lab
from tests.e2e.test_web import web  # noqa: F401 - the provisioned lab Pi

pytestmark = pytest.mark.lab

LAN = "pa-lan"
TABLE = ["inet", "presence_appliance"]


def test_fail2ban_runs_cleanly_with_only_the_login_jail(web: tuple[Lab, Path]) -> None:  # noqa: F811
    lab, _ = web
    assert lab.pi_exec("systemctl", "is-active", "fail2ban", check=False).stdout.strip() == "active"
    status = lab.pi_exec("fail2ban-client", "status").stdout
    assert re.search(r"Jail list:\s+presence-appliance-login\s*$", status, re.M), status


def test_nginx_listens_on_the_uplink_and_loopback_only(web: tuple[Lab, Path]) -> None:  # noqa: F811
    lab, _ = web
    pi = lab.plan.pis[0]
    listening = lab.pi_exec("ss", "-Hltn").stdout
    addresses = {m.group(1) for m in re.finditer(r"\s(\S+):(?:80|443)\s", listening)}
    assert addresses == {pi.address, "127.0.0.1"}, listening
    # From a camera, the Pi's Wi-Fi side offers no dashboard at all.
    camera = pi.cameras[0].name
    answer = lab.run_in(
        f"cam-{camera}",
        "curl", "-s", "-k", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
        f"https://{pi.camera_gateway}/",
        check=False,
    )  # fmt: skip
    assert answer.stdout == "000", answer


def _set(lab: Lab) -> str:
    return lab.pi_exec("nft", "list", "set", *TABLE, "login_ban_v4").stdout


def test_a_brute_forcer_on_the_lan_is_banned(web: tuple[Lab, Path]) -> None:  # noqa: F811
    lab, _ = web
    pi = lab.plan.pis[0]
    made_table = lab.pi_exec("nft", "list", "table", *TABLE, check=False).returncode != 0
    if made_table:  # the firewall role's table, as its stand-in
        lab.pi_exec("nft", "add", "table", *TABLE)
        for family, name in (("ipv4_addr", "login_ban_v4"), ("ipv6_addr", "login_ban_v6")):
            lab.pi_exec("nft", "add", "set", *TABLE, name, f"{{ type {family}; flags timeout; }}")
        lab.pi_exec(
            "nft", "add", "chain", *TABLE, "input",
            "{ type filter hook input priority 0; policy accept; }",
        )  # fmt: skip
        lab.pi_exec(
            "nft", "add", "rule", *TABLE, "input",
            "ip", "saddr", "@login_ban_v4", "tcp", "dport", "{ 80, 443 }", "counter", "drop",
        )  # fmt: skip
    url = f"https://{pi.address}/"
    curl = ["curl", "-s", "-k", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"]
    try:
        tries = [
            subprocess.Popen(
                ["ip", "netns", "exec", LAN, *curl, "-u", f"admin:guess{i}", url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(16)
        ]
        codes = [proc.communicate(timeout=30)[0] for proc in tries]
        assert "429" in codes and set(codes) <= {"401", "429", "000"}, codes
        deadline = time.monotonic() + 60
        while "elements" not in _set(lab):
            assert time.monotonic() < deadline, lab.pi_exec("fail2ban-client", "status").stdout
            time.sleep(1)
        assert re.search(r"timeout (1h|3600s)", _set(lab)), _set(lab)
        banned = lab.run_in(LAN, *curl, "-m", "3", url, check=False)
        assert banned.stdout == "000", banned
    finally:
        lab.pi_exec("nft", "flush", "set", *TABLE, "login_ban_v4", check=False)
        lab.pi_exec("fail2ban-client", "unban", "--all", check=False)
        if made_table:
            lab.pi_exec("nft", "delete", "table", *TABLE, check=False)
