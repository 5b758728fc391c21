"""Every long-running service of the appliance gets a drop-in that makes systemd restart it."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from appliance.inventory import load_inventory
from appliance.render import render_appliance
from tests.roles.conftest import REPO

# The services `install` starts and keeps running (issue 12: kill any, it comes back).
SERVICES = ["nginx", "fail2ban", "dnsmasq", "chrony", "ulogd2"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inventory = load_inventory(str(REPO / "inventory.example.yml"))
    out = tmp_path_factory.mktemp("dropins")
    render_appliance(inventory, inventory.appliances[0].name, out)
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_systemd_restarts_the_service_whenever_it_dies(rendered: Path, service: str) -> None:
    drop_in = rendered / f"etc/systemd/system/{service}.service.d/presence-appliance.conf"
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(drop_in.read_text())
    assert parser["Service"]["Restart"] == "always"
    # A crash loop stops after a bounded number of tries instead of spinning forever.
    assert int(parser["Unit"]["StartLimitBurst"]) > 0
    assert int(parser["Unit"]["StartLimitIntervalSec"]) > 0


def test_nginx_clears_its_stale_gate_socket_before_it_starts(rendered: Path) -> None:
    """Found in the lab: after `kill -KILL` nginx's gate socket stays and every restart failed
    to bind it; the drop-in removes it before nginx starts (the path nginx.conf listens on)."""
    drop_in = (rendered / "etc/systemd/system/nginx.service.d/presence-appliance.conf").read_text()
    nginx_conf = (rendered / "etc/nginx/nginx.conf").read_text()
    removed = next(
        line.split()[-1] for line in drop_in.splitlines() if line.startswith("ExecStartPre=-")
    )
    assert f"listen unix:{removed};" in nginx_conf
