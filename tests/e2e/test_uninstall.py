"""`uninstall` on the booted lab Pi: its file tree (under /etc, /var/www, the unit directories
and /usr/local/sbin), its unit states, packages, sysctls and nft tables after install and
uninstall are what they were before the first install."""

from __future__ import annotations

import difflib
import time
from typing import Any

import pytest

from appliance.lab.handle import Lab
from tests.e2e.test_safety import install, write_inventory

# Needs a Pi that was never installed: it runs after the other lab tests (lab_lifecycle) and
# takes the lab down and up only when one of them provisioned it.
pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]

TREES = "/etc /var/www /lib/systemd/system /usr/lib/systemd/system /usr/local/sbin"
# Kind, mode, owner and (files) content digest of everything under TREES; one line each.
FILES = (
    f"find {TREES} -xdev \\( -type f -o -type l -o -type d \\) "
    "-printf '%y %m %u:%g %p -> %l\\n' | sort; "
    f"find {TREES} -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
)
# Transient units: every `pi_exec` is one (systemd-run), and ssh sessions come and go.
TRANSIENT = ("run-", "session-", "user@", "user-runtime-dir@", "ssh@")


def pi_state(lab: Lab) -> dict[str, Any]:
    """What `uninstall` must give back, read inside the Pi."""
    files = lab.pi_exec("sh", "-c", FILES, timeout=120).stdout.splitlines()
    unit_files = lab.pi_exec("systemctl", "list-unit-files", "--no-legend", "--no-pager").stdout
    units = lab.pi_exec(
        "systemctl", "list-units", "--all", "--no-legend", "--no-pager", "--plain"
    ).stdout
    active = {}
    for line in units.splitlines():
        fields = line.split()
        kinds = (".service", ".timer", ".socket", ".path")
        if len(fields) >= 4 and fields[0].endswith(kinds) and not fields[0].startswith(TRANSIENT):
            active[fields[0]] = f"{fields[1]} {fields[2]}"  # load, active
    # A service its timer starts (Debian's daily logrotate, man-db, dpkg-db-backup ...) may be
    # running at one reading and not the other, whatever we did: its timer's state counts.
    for timer in [unit for unit in active if unit.endswith(".timer")]:
        active.pop(timer.removesuffix(".timer") + ".service", None)
    return {
        "files": files,
        "unit_files": sorted(
            " ".join(line.split()[:2])
            for line in unit_files.splitlines()
            if not line.startswith(TRANSIENT) and "transient" not in line.split()[1:2]
        ),
        "active": active,
        "packages": lab.pi_exec(
            "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"
        ).stdout.splitlines(),
        "sysctls": lab.pi_exec(
            "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_nonlocal_bind"
        ).stdout.split(),
        "nft_tables": sorted(lab.pi_exec("nft", "list", "tables").stdout.splitlines()),
        "camera_interface": lab.pi_exec("ip", "-4", "-o", "addr", "show", "dev", "wlan0").stdout,
    }


def never_installed(lab: Lab) -> bool:
    return all(
        lab.pi_exec("test", "-e", path, check=False).returncode != 0
        for path in ("/var/lib/presence-appliance", "/etc/presence-appliance")
    )


@pytest.fixture(scope="module")
def fresh(lab_session: Any) -> Lab:
    """A lab Pi no install has touched (the lab is brought up again when one has)."""
    lab = lab_session.ensure_up()
    if not never_installed(lab):
        started = time.monotonic()
        lab_session.ensure_down()
        lab = lab_session.ensure_up()
        print(
            f"\n[lab] a fresh Pi for uninstall: down and up in {time.monotonic() - started:.0f} s"
        )
    assert never_installed(lab)
    return lab


def diff(before: list[str], after: list[str]) -> str:
    return "\n".join(difflib.unified_diff(before, after, "before install", "after uninstall", n=0))


def test_uninstall_returns_the_pi_to_how_it_was_before_the_first_install(
    fresh: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lab = fresh
    before = pi_state(lab)
    inventory = write_inventory(lab, tmp_path_factory.mktemp("uninstall") / "inventory.yml")
    installed = install(lab, inventory)
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-2000:]
    during = pi_state(lab)
    # The install did change every part compared below, so the comparison can fail.
    for part in ("files", "unit_files", "active", "sysctls", "nft_tables", "camera_interface"):
        assert during[part] != before[part], part
    record = lab.pi_exec("stat", "-c", "%a %U", "/var/lib/presence-appliance/before.json")
    assert record.stdout.split() == ["600", "root"]

    result = lab.cli("uninstall", "--purge", "-i", str(inventory), timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "purged    nothing (all were there before)" in result.stdout, result.stdout
    after = pi_state(lab)
    assert after["files"] == before["files"], diff(before["files"], after["files"])
    assert after["unit_files"] == before["unit_files"], diff(
        before["unit_files"], after["unit_files"]
    )
    changed = {
        unit: (before["active"].get(unit), after["active"].get(unit))
        for unit in set(before["active"]) | set(after["active"])
        if before["active"].get(unit) != after["active"].get(unit)
    }
    assert not changed, changed
    for part in ("packages", "sysctls", "nft_tables", "camera_interface"):
        assert after[part] == before[part], (part, before[part], after[part])
    # Nothing left to uninstall: a second run refuses in one line and changes nothing.
    again = lab.cli("uninstall", "-i", str(inventory), timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    errors = [line for line in again.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no record of this Pi before install" in errors[0], again.stderr
    assert pi_state(lab)["files"] == before["files"]
