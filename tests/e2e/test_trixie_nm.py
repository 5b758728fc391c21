"""The core end-to-end run on a stock-like Raspberry Pi OS trixie: a Debian trixie lab Pi whose
NetworkManager manages wlan0 (`lab up --release trixie --network-manager`). install (ending
with check) passes, every service is active, a second install changes nothing; NetworkManager
really lets go of wlan0 for the access point, and gets it back after `uninstall`.

One lab, one install for the module (the bookworm pass is tests/e2e/test_install.py)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from appliance.lab.handle import Lab
from tests.e2e.test_install import SERVICES, _recap_changed

# Its own lab shape (another release and image): it runs with the tests that take the shared
# lab down and up themselves, after the others.
pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]

NM_CONF = "/etc/NetworkManager/conf.d/60-presence-appliance.conf"


def nm_device(lab: Lab, interface: str = "wlan0") -> tuple[str, str]:
    """NetworkManager's (state, connection) for INTERFACE, as `nmcli device` shows them."""
    out = lab.pi_exec("nmcli", "-t", "-f", "DEVICE,STATE,CONNECTION", "device").stdout
    for line in out.splitlines():
        device, _, rest = line.partition(":")
        if device == interface:
            state, _, connection = rest.partition(":")
            return state, connection
    return "absent", ""


def wait_nm_device(lab: Lab, wanted: tuple[str, str], timeout: float = 30) -> tuple[str, str]:
    """Poll until NetworkManager shows WANTED for wlan0 (bounded); return the last state."""
    deadline = time.monotonic() + timeout
    seen = nm_device(lab)
    while seen != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = nm_device(lab)
    return seen


def camera_addresses(lab: Lab) -> list[str]:
    out = lab.pi_exec("ip", "-4", "-o", "addr", "show", "dev", "wlan0").stdout
    return re.findall(r"inet (\S+)", out)


@pytest.fixture(scope="module")
def trixie(lab_session: Any) -> dict[str, Any]:
    """The trixie + NetworkManager lab Pi, what NetworkManager did with wlan0 before install,
    and the install's result (install, then check)."""
    started = time.monotonic()
    lab = lab_session.ensure_up(release="trixie", network_manager=True)
    print(f"\n[lab] trixie + NetworkManager up in {time.monotonic() - started:.0f} s")
    before = wait_nm_device(lab, ("connected", "lab-radio"))
    started = time.monotonic()
    result = lab.install()
    print(f"[lab] trixie install (and check) in {time.monotonic() - started:.0f} s")
    return {"lab": lab, "nm_before": before, "install": result}


def test_the_pi_runs_trixie_and_networkmanager_manages_wlan0(trixie: dict[str, Any]) -> None:
    lab: Lab = trixie["lab"]
    os_release = lab.pi_exec("cat", "/etc/os-release").stdout
    assert "VERSION_CODENAME=trixie" in os_release, os_release
    # Before install, as on a stock Pi: NetworkManager holds the radio with its profile.
    assert trixie["nm_before"] == ("connected", "lab-radio")


def test_install_takes_wlan0_from_networkmanager_and_every_camera_passes(
    trixie: dict[str, Any],
) -> None:
    lab: Lab = trixie["lab"]
    result = trixie["install"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"2/2 cameras pass", result.stdout), result.stdout[-2000:]
    assert nm_device(lab) == ("unmanaged", "")
    # NetworkManager let go before systemd-networkd and hostapd took wlan0: the address
    # stays (NetworkManager clears an interface it lets go of).
    assert camera_addresses(lab) == [lab.plan.pis[0].camera_network["address"]]
    for unit in SERVICES:
        state = lab.pi_exec("systemctl", "is-active", unit, check=False).stdout.strip()
        assert state == "active", f"{unit}: {state}"
    # And NetworkManager itself still runs (the uplink may be its own on a real Pi).
    assert lab.pi_exec("systemctl", "is-active", "NetworkManager").stdout.strip() == "active"


def test_second_install_changes_nothing(trixie: dict[str, Any]) -> None:
    lab: Lab = trixie["lab"]
    assert trixie["install"].returncode == 0
    result = lab.install("--no-check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = [line.strip() for line in result.stdout.splitlines() if "changed" in line]
    assert _recap_changed(result) == 0, "\n".join(changed)


def test_uninstall_gives_wlan0_back_to_networkmanager(trixie: dict[str, Any]) -> None:
    lab: Lab = trixie["lab"]
    assert trixie["install"].returncode == 0
    result = lab.cli("uninstall", "-i", str(lab.inventory_path), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.pi_exec("test", "-e", NM_CONF, check=False).returncode == 1
    assert wait_nm_device(lab, ("connected", "lab-radio")) == ("connected", "lab-radio")
    assert camera_addresses(lab) == []
