"""The snapshot tool the snapshot role installs on the Pi: keep, settle, list, restore (local files)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.roles.conftest import REPO, render_scenario, write_inventory

TOOL = REPO / "roles" / "snapshot" / "files" / "presence_snapshot.py"
ROLE_VARS = REPO / "roles" / "snapshot" / "vars" / "main.yml"


def tool(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(TOOL), "--spec", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def pi(tmp_path: Path) -> tuple[Path, Path]:
    """A fake Pi's files under tmp_path/etc and a spec for them (dnsmasq's real checker)."""
    etc = tmp_path / "etc"
    (etc / "network").mkdir(parents=True)
    (etc / "cameras.conf").write_text("dhcp-range=10.203.230.100,10.203.230.199,12h\n")
    (etc / "secret.conf").write_text("wpa_passphrase=correct-horse\n")
    (etc / "secret.conf").chmod(0o600)
    (etc / "network" / "61-presence-vlan-nord.network").write_text("[Match]\n")
    spec = {
        "dir": str(tmp_path / "backups"),
        "keep": 3,
        "files": [
            {
                "path": str(etc / "cameras.conf"),
                "check": ["dnsmasq", "--test", "--conf-file={}"],
                "services": ["dnsmasq"],
                "required": True,
            },
            {"path": str(etc / "secret.conf"), "services": ["hostapd"], "required": True},
        ],
        "patterns": [
            {
                "pattern": str(etc / "network" / "61-presence-vlan-*.network"),
                "services": ["networkd"],
            }
        ],
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return etc, path


def test_a_run_that_replaced_nothing_keeps_no_snapshot(pi: tuple[Path, Path]) -> None:
    _, spec = pi
    stamp = report(tool(spec, "take", "--stamp", "20260101T000000Z"))["stamp"]
    settled = report(tool(spec, "settle", "--stamp", stamp))
    assert settled["kept"] is False
    assert report(tool(spec, "list")) == []


def test_snapshots_are_root_only_bounded_and_restore_only_what_changed(
    pi: tuple[Path, Path],
) -> None:
    etc, spec = pi
    backups = Path(json.loads(spec.read_text())["dir"])
    original = (etc / "cameras.conf").read_text()
    for n in range(5):
        stamp = report(tool(spec, "take", "--stamp", f"20260101T00000{n}Z"))["stamp"]
        (etc / "cameras.conf").write_text(original.replace("12h", f"{n + 1}h"))
        assert report(tool(spec, "settle", "--stamp", stamp))["kept"] is True
    listed = report(tool(spec, "list"))
    assert [s["stamp"] for s in listed] == [f"20260101T00000{n}Z" for n in (4, 3, 2)]  # keep: 3
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    kept_secret = backups / listed[0]["stamp"] / "files" / str(etc / "secret.conf").lstrip("/")
    assert stat.S_IMODE(kept_secret.stat().st_mode) == 0o600
    assert listed[0]["differs"] == [str(etc / "cameras.conf")]

    (etc / "network" / "61-presence-vlan-sued.network").write_text("[Match]\n")  # a new camera
    done = report(tool(spec, "restore"))
    assert done["stamp"] == "20260101T000004Z"
    assert (etc / "cameras.conf").read_text() == original.replace("12h", "4h")
    assert done["restored"] == [str(etc / "cameras.conf")]
    assert done["removed"] == [str(etc / "network" / "61-presence-vlan-sued.network")]
    assert done["services"] == ["dnsmasq", "networkd"]  # not hostapd: its file is unchanged
    # The rollback kept what it replaced: rolling back again undoes it.
    again = report(tool(spec, "restore"))
    assert again["stamp"] == done["undo"]
    assert (etc / "cameras.conf").read_text() == original.replace("12h", "5h")
    assert (etc / "network" / "61-presence-vlan-sued.network").exists()


def test_a_kept_file_its_checker_rejects_is_never_restored(pi: tuple[Path, Path]) -> None:
    etc, spec = pi
    (etc / "cameras.conf").write_text("dhcp-range=bogus\n")
    stamp = report(tool(spec, "take", "--stamp", "20260101T000000Z"))["stamp"]
    good = "dhcp-range=10.203.230.100,10.203.230.199,2h\n"
    (etc / "cameras.conf").write_text(good)
    report(tool(spec, "settle", "--stamp", stamp))
    refused = tool(spec, "restore", "--to", stamp)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "cameras.conf rejected by its checker, nothing restored: dnsmasq: bad dhcp-range" in (
        refused.stderr
    )
    assert (etc / "cameras.conf").read_text() == good
    assert len(report(tool(spec, "list"))) == 1  # no undo snapshot either: nothing happened


def test_a_snapshot_from_before_the_first_install_is_refused(pi: tuple[Path, Path]) -> None:
    etc, spec = pi
    (etc / "secret.conf").unlink()
    stamp = report(tool(spec, "take", "--stamp", "20260101T000000Z"))["stamp"]
    (etc / "secret.conf").write_text("wpa_passphrase=correct-horse\n")
    report(tool(spec, "settle", "--stamp", stamp))
    refused = tool(spec, "restore")
    assert refused.returncode == 1
    assert "has no " in refused.stderr and "before the first install" in refused.stderr
    assert (etc / "secret.conf").exists()


@pytest.mark.parametrize("args", [["restore", "--to", "../../etc"], ["restore"]])
def test_bad_or_missing_snapshots_are_one_line(pi: tuple[Path, Path], args: list[str]) -> None:
    _, spec = pi
    result = tool(spec, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("presence-snapshot: ") and result.stderr.count("\n") == 1


def test_the_spec_covers_every_file_the_roles_write(tmp_path: Path) -> None:
    spec = yaml.safe_load(ROLE_VARS.read_text())
    fixed = {entry["path"] for entry in spec["snapshot_files"]}
    patterns = [entry["pattern"] for entry in spec["snapshot_patterns"]]
    import fnmatch

    written: set[str] = set()
    for scenario in ("ap_isolate", "vlan_per_camera"):
        out = tmp_path / scenario
        render_scenario(scenario, out)
        written |= {"/" + str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    # The web role's files come from the example inventory (the scenarios are network-only).
    from appliance.inventory import load_inventory
    from appliance.render import render_appliance

    inventory = load_inventory(str(REPO / "inventory.example.yml"))
    web = render_appliance(inventory, inventory.appliances[0].name, tmp_path / "web")
    written |= {f.path for f in web}
    # The recordings role's files exist only with recordings on.
    from tests.roles.test_recordings import recording_vars

    recorded = write_inventory(recording_vars(), tmp_path / "recordings.yml")
    rec = render_appliance(load_inventory(str(recorded)), "pi", tmp_path / "rec", ["recordings"])
    assert rec, "the recordings role rendered nothing"
    written |= {f.path for f in rec}
    uncovered = [
        path
        for path in sorted(written)
        if path not in fixed and not any(fnmatch.fnmatch(path, p) for p in patterns)
    ]
    assert not uncovered, f"roles/snapshot/vars/main.yml misses {uncovered}"
    # Every checker the spec names is one a role's `validate:` uses.
    checked = {e["path"]: e["check"][0] for e in spec["snapshot_files"] if "check" in e}
    assert set(checked) == {
        "/etc/hostapd/hostapd.conf",
        "/etc/hostapd/hostapd.vlan",
        "/etc/hostapd/hostapd.wpa_psk",
        "/etc/dnsmasq.d/cameras.conf",
        "/etc/chrony/chrony.conf",
        "/etc/nginx/nginx.conf",
        "/etc/presence-appliance/firewall-cameras.json",
        "/etc/presence-appliance/firewall.nft",
        "/usr/local/sbin/presence-firewall",
        "/etc/wireguard/wg0.conf",
        "/usr/local/sbin/presence-wg-syncconf",
        "/usr/local/sbin/presence-vsftpd-check",
        "/etc/vsftpd.conf",
        "/etc/presence-appliance/recordings.json",
        "/usr/local/sbin/presence-recordings",
    }
    assert os.path.basename(checked["/etc/hostapd/hostapd.conf"]) == "presence-hostapd-check"


def test_a_rollback_names_the_cameras_whose_reservation_it_changes(tmp_path: Path) -> None:
    conf = tmp_path / "cameras.conf"
    line = "dhcp-host=70:ee:50:00:01:{n:02x},10.203.230.{ip},cam{n},12h\n"
    conf.write_text(line.format(n=1, ip=11) + line.format(n=2, ip=12))
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "dir": str(tmp_path / "backups"),
                "keep": 3,
                "files": [{"path": str(conf), "services": ["dnsmasq"], "reservations": True}],
            }
        )
    )
    stamp = report(tool(spec, "take", "--stamp", "20260101T000000Z"))["stamp"]
    conf.write_text(line.format(n=1, ip=11) + line.format(n=2, ip=50))  # cam2 moved
    report(tool(spec, "settle", "--stamp", stamp))
    done = report(tool(spec, "restore"))
    assert done["rejoin"] == ["70:ee:50:00:01:02"]  # cam2 only, back to .12


def test_a_run_that_never_settled_leaves_its_services_pending_until_a_run_completes(
    pi: tuple[Path, Path],
) -> None:
    """A run cut off (or failed) after it replaced cameras.conf never ran dnsmasq's handler:
    the next run's `take` names dnsmasq (and only it), until a run settles."""
    etc, spec = pi
    first = report(tool(spec, "take", "--stamp", "20260101T000000Z"))
    assert first["pending"] == []
    (etc / "cameras.conf").write_text("dhcp-range=10.203.230.100,10.203.230.199,6h\n")
    # ... the run ends here: no settle. The next one finds dnsmasq pending, and so does a
    # third if the second is cut off too (its own snapshot already has the new file).
    assert report(tool(spec, "pending")) == {"pending": ["dnsmasq"]}  # what doctor reads
    second = report(tool(spec, "take", "--stamp", "20260101T000100Z"))
    assert second["pending"] == ["dnsmasq"]
    third = report(tool(spec, "take", "--stamp", "20260101T000200Z"))
    assert third["pending"] == ["dnsmasq"]
    # A run that gets to its end settles the earlier ones too.
    report(tool(spec, "settle", "--stamp", third["stamp"]))
    assert report(tool(spec, "pending")) == {"pending": []}
    fourth = report(tool(spec, "take", "--stamp", "20260101T000300Z"))
    assert fourth["pending"] == []
    report(tool(spec, "settle", "--stamp", fourth["stamp"]))
    # A rollback restarts what it restores itself: its own snapshot is not a run.
    undone = report(tool(spec, "restore", "--to", "20260101T000000Z"))
    assert undone["services"] == ["dnsmasq"] and undone["undo"]
    assert report(tool(spec, "take", "--stamp", "20260101T000500Z"))["pending"] == []
