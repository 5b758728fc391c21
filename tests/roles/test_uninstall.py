"""The uninstall tool (roles/uninstall): the record of the Pi before the first install, the plan
that returns it there, and that its lists cover what the roles change (local files, no systemd:
the lab's tests/e2e/test_uninstall.py runs it on a booted Pi)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.roles.conftest import REPO

TOOL = REPO / "roles" / "uninstall" / "files" / "presence_uninstall.py"
ROLE_VARS = yaml.safe_load((REPO / "roles" / "uninstall" / "vars" / "main.yml").read_text())


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("presence_uninstall", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["presence_uninstall"] = module
    spec.loader.exec_module(module)
    return module


tool_module = _load()


def tool(spec: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(TOOL), args[0], "--spec", json.dumps(spec), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry under ROOT: kind, mode and content (or link target)."""
    found: dict[str, tuple[str, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        mode = path.lstat().st_mode & 0o7777
        if path.is_symlink():
            found[name] = ("link", mode, os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", mode, "")
        else:
            found[name] = ("file", mode, path.read_bytes())
    return found


@pytest.fixture
def pi(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A fake Pi's files under tmp_path/root (a stock config, a symlink, a foreign dir) and a
    spec naming them the way roles/uninstall/vars/main.yml names the real ones."""
    root = tmp_path / "root"
    (root / "etc/dnsmasq.d").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True)
    (root / "etc/default").mkdir()
    (root / "etc/default/dnsmasq").write_text("# Debian's stock file\n")
    (root / "etc/default/dnsmasq").chmod(0o644)
    (root / "etc/shared").mkdir()  # someone else's directory, also used by us
    (root / "etc/shared/theirs.conf").write_text("theirs\n")
    (root / "etc/alias.conf").symlink_to("default/dnsmasq")
    spec = {
        "dir": str(root / "var/lib/presence-appliance"),
        "files": [
            str(root / "etc/default/dnsmasq"),
            str(root / "etc/dnsmasq.d/cameras.conf"),
            str(root / "etc/alias.conf"),
            str(root / "etc/shared/ours.conf"),
        ],
        "patterns": [str(root / "etc/vlan-*.network")],
        "dirs": [
            str(root / "etc/presence-appliance"),
            str(root / "var/lib/presence-appliance"),
            str(root / "etc/unit.d"),
            str(root / "etc/shared"),
        ],
        "trees": [str(root / "etc/presence-appliance"), str(root / "var/lib/presence-appliance")],
        "units": [],
        "packages": [],
        "sysctls": [],
        "earlier_install_signs": [str(root / "etc/presence-appliance/snapshot.json")],
    }
    return root, spec


def provision(root: Path) -> None:
    """What an install does to the fake Pi: replace, add, create directories, retarget."""
    (root / "etc/default/dnsmasq").write_text("DNSMASQ_EXCEPT=lo\n")
    (root / "etc/default/dnsmasq").chmod(0o600)
    (root / "etc/dnsmasq.d/cameras.conf").write_text("dhcp-host=70:ee:50:00:00:01,10.0.0.1\n")
    (root / "etc/presence-appliance/fw").mkdir(parents=True)
    (root / "etc/presence-appliance/fw/firewall.nft").write_text("table inet x {}\n")
    (root / "etc/presence-appliance/snapshot.json").write_text("{}\n")
    (root / "etc/unit.d").mkdir()
    (root / "etc/shared/ours.conf").write_text("ours\n")
    (root / "etc/vlan-cam1.network").write_text("[Match]\n")
    (root / "etc/alias.conf").unlink()
    (root / "etc/alias.conf").symlink_to("dnsmasq.d/cameras.conf")


def test_uninstall_returns_every_file_and_directory_to_the_record(
    pi: tuple[Path, dict[str, Any]],
) -> None:
    root, spec = pi
    before = tree(root)
    assert report(tool(spec, "record")) == {
        "recorded": True,
        "record": spec["dir"] + "/before.json",
    }
    record = Path(spec["dir"]) / "before.json"
    assert record.stat().st_mode & 0o777 == 0o600  # copies of config files may hold secrets
    assert (Path(spec["dir"]) / "before").stat().st_mode & 0o777 == 0o700
    provision(root)
    assert tree(root) != before

    done = report(tool(spec, "uninstall"))

    assert tree(root) == before
    etc = str(root / "etc")
    assert sorted(done["restored"]) == [f"{etc}/alias.conf", f"{etc}/default/dnsmasq"]
    assert f"{etc}/presence-appliance" in done["removed"]
    assert f"{etc}/vlan-cam1.network" in done["removed"]
    assert f"{etc}/shared/ours.conf" in done["removed"]
    assert f"{etc}/shared" not in done["removed"]  # it existed before: it stays
    assert done["units"] == [] and done["purged"] == []


def test_the_record_is_written_once_and_never_overwritten(
    pi: tuple[Path, dict[str, Any]],
) -> None:
    root, spec = pi
    report(tool(spec, "record"))
    record = (Path(spec["dir"]) / "before.json").read_bytes()
    provision(root)  # the first install ran; the second one records again
    assert report(tool(spec, "record"))["recorded"] is False
    assert (Path(spec["dir"]) / "before.json").read_bytes() == record
    report(tool(spec, "uninstall"))
    assert not (root / "etc/dnsmasq.d/cameras.conf").exists()


def test_a_directory_with_someone_elses_file_in_it_stays(pi: tuple[Path, dict[str, Any]]) -> None:
    root, spec = pi
    report(tool(spec, "record"))
    provision(root)
    (root / "etc/unit.d/theirs.conf").write_text("not ours\n")
    report(tool(spec, "uninstall"))
    assert (root / "etc/unit.d/theirs.conf").read_text() == "not ours\n"


def test_without_a_record_uninstall_refuses_in_one_line(pi: tuple[Path, dict[str, Any]]) -> None:
    root, spec = pi
    provision(root)
    provisioned = tree(root)
    result = tool(spec, "uninstall")
    assert result.returncode == 1
    assert result.stderr.startswith("presence-uninstall: no record of this Pi before install")
    assert result.stderr.count("\n") == 1
    assert tree(root) == provisioned


def test_a_pi_provisioned_before_records_existed_is_refused(
    pi: tuple[Path, dict[str, Any]],
) -> None:
    root, spec = pi
    provision(root)  # an older version installed it; this version records "before" now
    report(tool(spec, "record"))
    provisioned = tree(root)
    result = tool(spec, "uninstall")
    assert result.returncode == 1
    assert "provisioned before presence-appliance recorded how it was" in result.stderr
    assert result.stderr.count("\n") == 1
    assert tree(root) == provisioned


@pytest.mark.parametrize("spec_text", ["{not json", "[]"])
def test_a_bad_spec_is_one_line(spec_text: str) -> None:
    result = subprocess.run(
        ["python3", str(TOOL), "record", "--spec", spec_text],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (1, 2)
    assert result.stderr.startswith("presence-uninstall: ") and result.stderr.count("\n") == 1


def unit(load: str = "loaded", file: str = "enabled", active: str = "active") -> dict[str, str]:
    return {"load": load, "file": file, "active": active}


def test_units_go_back_to_their_recorded_state() -> None:
    before = {
        # Raspberry Pi OS ships hostapd masked; install unmasked, enabled and started it.
        "hostapd.service": unit(load="masked", file="masked", active="inactive"),
        "dnsmasq.service": unit(),
        "chrony.service": unit(file="disabled", active="inactive"),
        "presence-firewall.service": unit(load="not-found", file="", active="inactive"),
        "presence-firewall-report.service": unit(load="not-found", file="", active="inactive"),
        "systemd-networkd-wait-online.service": unit(active="inactive"),
        "NetworkManager.service": unit(),
        "nftables.service": unit(file="disabled", active="inactive"),
        # Enabled but failing before install (say, a jail without its log): it gets its try.
        "fail2ban.service": unit(active="failed"),
    }
    now = {
        "hostapd.service": unit(),
        "dnsmasq.service": unit(),
        "chrony.service": unit(),
        "presence-firewall.service": unit(),
        "presence-firewall-report.service": unit(file="static", active="inactive"),
        "systemd-networkd-wait-online.service": unit(file="disabled", active="inactive"),
        "NetworkManager.service": unit(),
        "nftables.service": unit(file="disabled", active="failed"),
        "fail2ban.service": unit(),
    }
    first, then = tool_module.unit_plan(before, now, frozenset({"NetworkManager.service"}))
    assert first == [
        ["stop", "chrony.service"],
        ["disable", "chrony.service"],
        ["stop", "fail2ban.service"],
        ["stop", "hostapd.service"],
        ["mask", "hostapd.service"],
        ["stop", "presence-firewall.service"],
        ["disable", "presence-firewall.service"],
    ]
    assert then == [
        ["reload-or-restart", "NetworkManager.service"],  # it may carry the SSH connection
        ["restart", "dnsmasq.service"],  # reads its restored configuration
        ["restart", "fail2ban.service"],
        ["reset-failed", "nftables.service"],
        ["enable", "systemd-networkd-wait-online.service"],
    ]


def test_units_already_as_recorded_only_restart_what_ran() -> None:
    same = {"dnsmasq.service": unit(), "hostapd.service": unit(file="masked", active="inactive")}
    assert tool_module.unit_plan(same, same) == ([], [["restart", "dnsmasq.service"]])


def test_purge_removes_only_packages_that_were_not_there_before() -> None:
    before = {"hostapd": False, "dnsmasq": True, "nginx": False, "iw": False}
    now = {"hostapd": True, "dnsmasq": True, "nginx": True, "iw": False}
    assert tool_module.purge_plan(before, now) == ["hostapd", "nginx"]


def test_only_accounts_the_roles_created_are_deleted() -> None:
    before = {
        "presence-ftp": {"user": False, "group": False},
        "www-data": {"user": True, "group": True},
    }
    now = {"presence-ftp": {"user": True, "group": True}, "www-data": {"user": True, "group": True}}
    assert tool_module.account_plan(before, now) == [
        ["userdel", "presence-ftp"],
        ["groupdel", "presence-ftp"],
    ]
    # An account the record does not know about is never deleted.
    assert tool_module.account_plan({}, now) == []


def _tasks(path: Path) -> list[dict[str, Any]]:
    """Every task of a tasks file, those inside blocks included."""
    found: list[dict[str, Any]] = []
    pending = list(yaml.safe_load(path.read_text()) or [])
    while pending:
        task = pending.pop(0)
        if isinstance(task, dict):
            found.append(task)
            for key in ("block", "rescue", "always"):
                pending += task.get(key) or []
    return found


def _role_packages() -> set[str]:
    """Every package an `ansible.builtin.apt` task of a site role installs."""
    found: set[str] = set()
    for tasks in (REPO / "roles").glob("*/tasks/*.yml"):
        role = tasks.parts[-3]
        defaults_file = REPO / "roles" / role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        for task in _tasks(tasks):
            apt = task.get("ansible.builtin.apt")
            if not apt:
                continue
            name = apt["name"]
            if isinstance(name, str) and name.startswith("{{"):
                name = defaults[name.strip("{} ")]
            found |= {name} if isinstance(name, str) else set(name)
    return found


def test_the_lists_cover_every_package_and_file_the_roles_bring() -> None:
    assert _role_packages() <= set(ROLE_VARS["uninstall_packages"])
    snapshot = yaml.safe_load((REPO / "roles" / "snapshot" / "vars" / "main.yml").read_text())
    files = set(ROLE_VARS["uninstall_files"])
    missing = [e["path"] for e in snapshot["snapshot_files"] if e["path"] not in files]
    assert not missing, f"roles/uninstall/vars/main.yml misses {missing}"
    patterns = {p["pattern"] for p in snapshot["snapshot_patterns"]}
    assert patterns <= set(ROLE_VARS["uninstall_patterns"])
    # The record lives in a tree uninstall removes last (the record's copies are in it).
    spec = ROLE_VARS["uninstall_spec"]
    assert "uninstall_dir" in spec["trees"] and spec["dir"] == "{{ uninstall_dir }}"


def test_every_unit_the_roles_start_or_enable_is_recorded() -> None:
    units = set(ROLE_VARS["uninstall_units"])
    named: set[str] = set()
    for tasks in (REPO / "roles").glob("*/tasks/*.yml"):
        for task in _tasks(tasks):
            module = task.get("ansible.builtin.systemd_service") or task.get(
                "ansible.builtin.service"
            )
            if isinstance(module, dict) and isinstance(module.get("name"), str):
                named.add(module["name"])
    resolved = {
        "{{ firewall_ulogd_service }}": "ulogd2.service",
        "{{ wireguard_unit }}": "wg-quick@wg0.service",
        "{{ web_started }}": None,  # nginx and fail2ban, a loop
        "{{ found.unit_file | basename }}": None,  # recordings: vsftpd and its timer, named
    }
    expected = {resolved.get(n, n) for n in named} - {None}
    expected |= {"nginx.service", "fail2ban.service"}
    expected = {n if n.endswith((".service", ".timer")) else f"{n}.service" for n in expected}
    assert expected <= units, sorted(expected - units)


def test_the_cli_reads_the_pis_report_and_ignores_anything_else() -> None:
    from appliance.uninstall import parse_report

    done = parse_report(
        json.dumps(
            {
                "restored": ["/etc/default/dnsmasq"],
                "removed": ["/etc/presence-appliance"],
                "units": ["stop hostapd.service", "mask hostapd.service"],
                "purged": [],
            }
        )
    )
    assert done is not None
    assert done.restored == ["/etc/default/dnsmasq"] and done.units[1] == "mask hostapd.service"
    assert parse_report("not json") is None and parse_report("[1]") is None
    assert parse_report('{"restored": 5}') == parse_report("{}")  # a wrong type counts as none


def fake_rfkill(root: Path, radios: dict[str, tuple[str, str]]) -> Path:
    """A stand-in for the kernel's /sys/class/rfkill (the test machines have no radio):
    rfkillN/{type,name,soft} as the kernel lays them out; `soft` takes 1 to block."""
    base = root / "sys/class/rfkill"
    for number, (name, (kind, soft)) in enumerate(radios.items()):
        device = base / f"rfkill{number}"
        device.mkdir(parents=True)
        (device / "type").write_text(f"{kind}\n")
        (device / "name").write_text(f"{name}\n")
        (device / "soft").write_text(f"{soft}\n")
    return base


def soft_state(base: Path) -> dict[str, str]:
    return {
        (d / "name").read_text().strip(): (d / "soft").read_text().strip()
        for d in sorted(base.iterdir())
    }


def test_uninstall_soft_blocks_again_the_wifi_the_install_unblocked(
    pi: tuple[Path, dict[str, Any]],
) -> None:
    # Stock Raspberry Pi OS: the onboard radio (phy0) soft-blocked until a country is set; a
    # USB adapter (phy1) that was never blocked; Bluetooth blocked, which is not ours.
    root, spec = pi
    rfkill = fake_rfkill(
        root, {"phy0": ("wlan", "1"), "hci0": ("bluetooth", "1"), "phy1": ("wlan", "0")}
    )
    spec["rfkill_dir"] = str(rfkill)
    report(tool(spec, "record"))
    before = json.loads((Path(spec["dir"]) / "before.json").read_text())
    assert before["wifi_soft_blocked"] == {"phy0": True, "phy1": False}
    # What the access_point role's `rfkill unblock wifi` does: every Wi-Fi radio unblocked.
    for device in rfkill.iterdir():
        if (device / "type").read_text().strip() == "wlan":
            (device / "soft").write_text("0\n")

    done = report(tool(spec, "uninstall"))

    assert soft_state(rfkill) == {"phy0": "1", "hci0": "1", "phy1": "0"}
    assert done["rfkill_soft_blocked"] == ["phy0"]


def test_a_radio_left_blocked_or_unknown_is_not_touched(pi: tuple[Path, dict[str, Any]]) -> None:
    root, spec = pi
    rfkill = fake_rfkill(root, {"phy0": ("wlan", "1")})
    spec["rfkill_dir"] = str(rfkill)
    report(tool(spec, "record"))
    # Still blocked (the install ran on a Pi without /dev/rfkill), and a new adapter.
    fake_rfkill(root / "new", {"phy2": ("wlan", "0")})
    (root / "new/sys/class/rfkill/rfkill0").rename(rfkill / "rfkill7")
    done = report(tool(spec, "uninstall"))
    assert soft_state(rfkill) == {"phy0": "1", "phy2": "0"}
    assert "rfkill_soft_blocked" not in done


def test_the_cli_names_the_radios_blocked_again_and_the_hand_back() -> None:
    from appliance.uninstall import parse_report

    done = parse_report(
        json.dumps({"rfkill_soft_blocked": ["phy0"], "network_manager": "manages wlan0 again"})
    )
    assert done is not None
    assert done.also == [
        "Wi-Fi phy0 soft-blocked again (rfkill)",
        "NetworkManager manages wlan0 again",
    ]
