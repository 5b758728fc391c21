"""Render an appliance's files and run the services' own checkers on them (hostapd's parse,
`dnsmasq --test`, `chronyd -p`, `nginx -t`, `nft -c`), for the property tests over hostile
inventories.

The web role's path knobs point into a prepared folder (certificate, cache, logs) so `nginx -t`
can run as it does on the Pi; it runs in a private network namespace (`unshare --net`) with
only loopback (offline, the role listens on 127.0.0.1 and web.listen), so it binds nothing
outside this test.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.certs import make_self_signed
from tests.roles.conftest import hostapd_parse

WEB_USER = "www-data"


def prepare_web_root(root: Path) -> dict[str, Any]:
    """The folders and self-signed certificate nginx -t needs; returns the web role's knobs."""
    for sub in ("etc/nginx", "www", "tls", "log", "run", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "cache").mkdir(mode=0o700, exist_ok=True)
    shutil.chown(root / "cache", WEB_USER, WEB_USER)
    # The login gate's socket folder (web_gate_dir), as tests/web/site.py makes it.
    (root / "tmp/presence-gate").mkdir(mode=0o750, exist_ok=True)
    shutil.chown(root / "tmp/presence-gate", "root", WEB_USER)
    make_self_signed(root / "tls/server.key", root / "tls/server.crt", "cams.test", "DNS:cams.test")
    return {
        "web_nginx_conf": str(root / "etc/nginx/nginx.conf"),
        "web_htpasswd_file": str(root / "etc/nginx/presence-appliance.htpasswd"),
        "web_tls_dir": str(root / "tls"),
        "web_root": str(root / "www"),
        "web_cache_dir": str(root / "cache"),
        "web_temp_dir": str(root / "tmp"),
        "web_log_dir": str(root / "log"),
        "web_pid_file": str(root / "run/nginx.pid"),
    }


@dataclass
class Verdict:
    checker: str
    accepted: bool
    output: str


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


CHECKERS = ("hostapd", "dnsmasq --test", "chronyd -p", "nginx -t", "nft -c")
FIREWALL_RULESET = "/etc/presence-appliance/firewall.nft"  # firewall_ruleset's default


def check_rendered(
    out: Path, nginx_conf: str, wanted: set[str] | frozenset[str] = frozenset(CHECKERS)
) -> list[Verdict]:
    """The verdict of each WANTED checker on the files rendered under OUT."""
    verdicts = []
    if "hostapd" in wanted:
        hostapd = hostapd_parse(out)
        verdicts.append(Verdict("hostapd", hostapd.accepted, hostapd.output))
    if "dnsmasq --test" in wanted:
        conf = out / "etc/dnsmasq.d/cameras.conf"
        dnsmasq = _run(["dnsmasq", "--test", f"--conf-file={conf}"])
        verdicts.append(
            Verdict("dnsmasq --test", dnsmasq.returncode == 0, dnsmasq.stdout + dnsmasq.stderr)
        )
    if "chronyd -p" in wanted:
        chrony = _run(["chronyd", "-p", "-f", str(out / "etc/chrony/chrony.conf")])
        verdicts.append(
            Verdict("chronyd -p", chrony.returncode == 0, chrony.stdout + chrony.stderr)
        )
    if "nginx -t" in wanted:
        conf = out / nginx_conf.lstrip("/")
        nginx = _run(
            ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec nginx -t -q -c {conf}"]
        )
        verdicts.append(Verdict("nginx -t", nginx.returncode == 0, nginx.stdout + nginx.stderr))
    if "nft -c" in wanted:
        # -c checks without loading; in a private namespace all the same.
        ruleset = out / FIREWALL_RULESET.lstrip("/")
        nft = _run(["unshare", "--net", "nft", "-c", "-f", str(ruleset)])
        verdicts.append(Verdict("nft -c", nft.returncode == 0, nft.stdout + nft.stderr))
    return verdicts
