"""`doctor`: the checks on recorded Pi output, the probe script run for real on this host,
and the command end to end with `ssh` replaced by a stand-in that replays a recording.

The recording (fixtures/doctor/lab-pi.probe.txt) is the probe's output on the lab's
provisioned Pi (tests/e2e/test_doctor.py writes a fresh one to test-artifacts/doctor/).
The host has no sshd: the stand-in `ssh` is the one test double, and it is thin.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.doctor import diagnose, render_lines
from appliance.doctor_checks import (
    FAIL,
    OK,
    WARN,
    check_configs,
    check_disk,
    check_firewall,
    check_leases,
    check_time,
    drop_counters,
    hostapd_problems,
    parse_df,
    parse_enddate,
    parse_tracking,
    pem_fingerprint,
    tracking_offset,
)
from appliance.doctor_probe import SCRIPT, probe_args
from appliance.doctor_ssh import Section, run_script, split_sections
from tests.certs import make_self_signed

FIXTURES = Path(__file__).parent / "fixtures" / "doctor"
RECORDED = (FIXTURES / "lab-pi.probe.txt").read_text()
SECURE_IDS = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]


def lab_vars(**extra: Any) -> dict[str, Any]:
    """The lab Pi's variables as the recording saw them (two cameras, .11 and .12)."""
    return {
        "ansible_host": "10.203.1.2",
        "ansible_user": "pi",
        "appliance_lab": True,
        "wifi": {"ssid": "presence-lab", "passphrase": "lab-passphrase-123", "country": "DE"},
        "camera_network": {"interface": "wlan0", "address": "10.203.16.1/24"},
        "web": {"server_name": "cams.lab.home.arpa", "users": [], "tls_cert": None},
        "cameras": [
            {
                "name": f"cam{i}",
                "mac": f"70:ee:50:00:01:0{i}",
                "ip": f"10.203.16.1{i}",
                "secure_id": SECURE_IDS[i - 1],
            }
            for i in (1, 2)
        ],
        **extra,
    }


def recorded(**replace: Section) -> dict[str, Section]:
    sections = split_sections(RECORDED)
    sections.update(replace)
    return sections


def pem_of(sections: dict[str, Section]) -> str:
    return sections["cert:pem"].text + "\n"


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


@pytest.fixture
def pin(tmp_path: Path) -> Path:
    path = tmp_path / "lab-pi.crt"
    path.write_text(pem_of(recorded()))
    return path


# ---------------------------------------------------------------------------
# The recorded healthy lab Pi


def test_recording_has_every_section() -> None:
    sections = split_sections(RECORDED)
    for name in (
        "sudo",
        "os",
        "services",
        "config:nginx",
        "config:dnsmasq",
        "config:chrony",
        "config:hostapd",
        "journal:hostapd",
        "leases",
        "tracking",
        "clients",
        "cert:enddate",
        "cert:pem",
        "df",
        "dfi",
        "firewall",
    ):
        assert name in sections, name


def test_healthy_recording_fails_nothing(pin: Path) -> None:
    checks = by_name(diagnose("lab-pi", lab_vars(), recorded(), 0.4, pin, firewall=False))
    assert [c for c in checks.values() if c.status == FAIL] == []
    assert checks["os"].message.startswith("Debian GNU/Linux 12 (bookworm), x86_64")
    assert checks["sudo"].message == "sudo works for pi without a prompt"
    assert checks["camera:cam1"].message == "leased its reserved 10.203.16.11"
    assert checks["config:hostapd"].status == OK  # parsed; the missing radio is not an error
    assert checks["time"].message == "synchronised to 10.203.2.123 (stratum 9), offset -0.0 ms"
    assert checks["time:cameras"].message == "1 of 2 cameras asked for time: cam1"
    assert checks["tls:expiry"].message.startswith("valid until 2036-")
    assert checks["tls:pin"].status == OK
    assert checks["firewall"].status == OK and "not expected" in checks["firewall"].message


def test_firewall_table_missing_fails_once_the_role_ships(pin: Path) -> None:
    checks = by_name(diagnose("lab-pi", lab_vars(), recorded(), 0.4, pin, firewall=True))
    assert checks["config:firewall"].status == FAIL
    assert checks["firewall"].status == FAIL
    assert "not loaded" in checks["firewall"].message


def test_a_real_pi_off_the_lab_is_a_warning_not_a_failure(pin: Path) -> None:
    checks = by_name(
        diagnose("pi", lab_vars(appliance_lab=False), recorded(), 0.4, pin, firewall=False)
    )
    assert checks["os"].status == WARN and "not a Raspberry Pi" in checks["os"].message
    assert checks["os"].fix


def test_unsupported_release_fails_os() -> None:
    os_release = 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_CODENAME=bullseye\n'
    checks = by_name(
        diagnose("pi", lab_vars(), recorded(os=Section(os_release, 0)), 0.4, None, False)
    )
    assert checks["os"].status == FAIL
    assert "bullseye is not supported" in checks["os"].message


def test_sudo_failure_stops_after_the_basics() -> None:
    sections = recorded(sudo=Section("sudo: a password is required", 1))
    checks = diagnose("pi", lab_vars(), sections, 0.4, None, False)
    assert [c.name for c in checks] == ["ssh", "sudo", "os"]
    assert checks[1].status == FAIL and "a password is required" in checks[1].message
    assert "NOPASSWD" in checks[1].fix


def test_stopped_service_fails_it_and_time_becomes_a_warning(pin: Path) -> None:
    services = split_sections(RECORDED)["services"].text.replace("chrony active", "chrony failed")
    checks = by_name(
        diagnose("p", lab_vars(), recorded(services=Section(services, 0)), 0.4, pin, False)
    )
    failing = {c.name for c in checks.values() if c.status == FAIL}
    assert failing == {"service:chrony"}
    assert checks["service:chrony"].message == "failed"
    assert checks["time"].status == WARN


# ---------------------------------------------------------------------------
# Leases


def test_leases_against_the_inventory() -> None:
    leases = (
        "1796093419 70:ee:50:00:01:01 10.203.16.150 cam1 *\n"
        "1796093419 70:ee:50:aa:bb:cc 10.203.16.151 * *\n"
        "1796093419 b8:27:eb:00:00:01 10.203.16.152 laptop *\n"
    )
    checks = by_name(check_leases({"leases": Section(leases, 0)}, lab_vars()))
    assert checks["camera:cam1"].status == FAIL
    assert checks["camera:cam1"].message == (
        "70:ee:50:00:01:01 leased 10.203.16.150, not its reserved 10.203.16.11"
    )
    assert checks["camera:cam2"].status == FAIL
    assert checks["camera:cam2"].message.startswith("no DHCP lease for 70:ee:50:00:01:02")
    unknown = checks["leases:unknown"]
    assert unknown.status == WARN and "70:ee:50:aa:bb:cc at 10.203.16.151" in unknown.message
    assert "b8:27:eb" not in unknown.message  # not a Netatmo device
    assert unknown.fix == "presence-appliance camera add --from-lease 70:ee:50:aa:bb:cc"


def test_no_lease_file_fails_when_cameras_are_expected() -> None:
    missing = Section("cat: /var/lib/misc/dnsmasq.leases: No such file or directory", 1)
    (check,) = check_leases({"leases": missing}, lab_vars())
    assert check.status == FAIL and "No such file" in check.message
    (check,) = check_leases({"leases": missing}, lab_vars(cameras=[]))
    assert check.status == WARN


# ---------------------------------------------------------------------------
# Time

UNSYNCED = """Reference ID    : 00000000 ()
Stratum         : 0
Ref time (UTC)  : Thu Jan 01 00:00:00 1970
System time     : 0.000000000 seconds fast of NTP time
Leap status     : Not synchronised
"""
SYNCED = """Reference ID    : 0ACB027B (10.203.2.123)
Stratum         : 2
System time     : 0.812345678 seconds slow of NTP time
Leap status     : Normal
"""


# chrony on the lab Pi right after install, before the first upstream answer (recorded).
LOCAL_STRATUM = """Reference ID    : 7F7F0101 ()
Stratum         : 10
Ref time (UTC)  : Mon Nov 30 14:50:19 2026
System time     : 0.000000000 seconds fast of NTP time
Last offset     : +0.000000000 seconds
RMS offset      : 0.000000000 seconds
Frequency       : 0.000 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.000 ppm
Root delay      : 0.000000000 seconds
Root dispersion : 0.000000000 seconds
Update interval : 0.0 seconds
Leap status     : Normal
"""


def test_time_states() -> None:
    (check, _) = check_time(
        {"tracking": Section(LOCAL_STRATUM, 0)}, lab_vars(), {"chrony": "active"}
    )
    assert check.status == WARN and "local stratum 10" in check.message
    active = {"chrony": "active"}
    (check, cams) = check_time({"tracking": Section(UNSYNCED, 0)}, lab_vars(), active)
    assert check.status == FAIL and "not synchronised" in check.message
    assert cams.status == WARN  # no clients section: nobody asked
    (check, _) = check_time({"tracking": Section(SYNCED, 0)}, lab_vars(), active)
    assert check.status == WARN and "-0.812 s" in check.message
    assert tracking_offset("0.000012 seconds fast of NTP time") == pytest.approx(1.2e-05)
    assert parse_tracking(SYNCED)["Reference ID"] == "0ACB027B (10.203.2.123)"
    synced_small = SYNCED.replace("0.812345678", "0.000123000")
    (check, _) = check_time({"tracking": Section(synced_small, 0)}, lab_vars(), active)
    assert check.status == OK and check.message.startswith("synchronised to 10.203.2.123")


# ---------------------------------------------------------------------------
# TLS


def test_certificate_expiry_and_pin(tmp_path: Path) -> None:
    sections = recorded()
    assert parse_enddate("notAfter=Nov 27 14:50:01 2036 GMT").year == 2036
    soon = recorded(
        now=Section(
            str(int(parse_enddate(sections["cert:enddate"].text).timestamp()) - 86400 * 10), 0
        )
    )  # type: ignore[union-attr]
    checks = by_name(diagnose("p", lab_vars(), soon, 0.1, None, False))
    assert (
        checks["tls:expiry"].status == WARN and "expires in 10 days" in checks["tls:expiry"].message
    )
    assert checks["tls:pin"].status == WARN  # no pin on this machine yet
    late = recorded(now=Section("2200000000", 0))
    checks = by_name(diagnose("p", lab_vars(), late, 0.1, None, False))
    assert (
        checks["tls:expiry"].status == FAIL
        and "expired on 2036-11-27" in checks["tls:expiry"].message
    )

    other = make_self_signed(
        tmp_path / "other.key", tmp_path / "other.crt", "other.example", "DNS:other.example"
    )
    checks = by_name(diagnose("p", lab_vars(), recorded(), 0.1, other, False))
    assert checks["tls:pin"].status == FAIL
    assert pem_fingerprint(pem_of(sections)) != pem_fingerprint(other.read_text())


# ---------------------------------------------------------------------------
# Disk, firewall

DF_FULL = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/mmcblk0p2    29000000 12000000  16000000      43% /
tmpfs                81920    81920         0     100% /var/cache/nginx/presence-appliance
/dev/mmcblk0p2    29000000 12000000  16000000      43% /
"""


def test_disk_checks_each_directory() -> None:
    rows = parse_df(DF_FULL)
    assert rows[1] is not None and rows[1].free == 0
    args = probe_args({})
    checks = by_name(check_disk({"df": Section(DF_FULL, 0)}, args))
    assert checks["disk:cache"].status == FAIL
    assert checks["disk:cache"].message.startswith("/var/cache/nginx/presence-appliance (")
    assert checks["disk:root"].status == OK and checks["disk:log"].status == OK


def _nft(ns: str, *args: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


RULESET = """table inet presence_appliance {
  counter cam_front_drop_lan { packets 5 bytes 300 }
  counter cam_front_drop_pi { }
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9 counter packets 2 bytes 60 drop
    udp dport 10 counter name "cam_front_drop_lan" drop
    tcp dport 22 counter accept
  }
}
"""


@pytest.mark.netns
def test_firewall_from_real_nft(tmp_path: Path) -> None:
    """nft's own JSON and its own -c complaints, in a namespace of ours."""
    if shutil.which("nft") is None:
        pytest.fail("nft is a declared dependency (Makefile APT_PACKAGES)")
    ns = "doct-fw"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        good = tmp_path / "firewall.nft"
        good.write_text(RULESET)
        checked = _nft(ns, "-c", "-f", str(good))
        bad = tmp_path / "bad.nft"
        bad.write_text(RULESET.replace("tcp dport 22", "tcp dprt 22"))
        refused = _nft(ns, "-c", "-f", str(bad))
        assert _nft(ns, "-f", "-", text=RULESET).returncode == 0
        listed = _nft(ns, "-j", "list", "table", "inet", "presence_appliance")
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=10)
    assert checked.returncode == 0 and refused.returncode != 0 and listed.returncode == 0
    rules, dropping, packets, named = drop_counters(json.loads(listed.stdout))
    assert (rules, dropping, packets) == (3, 2, 7)
    assert named == [("cam_front_drop_lan", 5), ("cam_front_drop_pi", 0)]
    sections = {
        "config:firewall": Section(checked.stdout + checked.stderr, checked.returncode),
        "firewall": Section(listed.stdout, 0),
    }
    conf, table = check_firewall(sections, expected=True)
    assert conf.status == OK and table.status == OK
    assert table.message.endswith(
        "3 rules, 2 dropping, 7 packets dropped (most: cam_front_drop_lan 5)"
    )
    sections["config:firewall"] = Section(refused.stderr, refused.returncode)
    conf, _ = check_firewall(sections, expected=True)
    assert conf.status == FAIL and "Error" in conf.message
    # No ruleset file and no role: nothing to say about it; with the role: a failure.
    sections = {"config:firewall": Section("no file", 3), "firewall": Section("Error", 1)}
    assert [c.name for c in check_firewall(sections, expected=False)] == ["firewall"]
    assert {c.status for c in check_firewall(sections, expected=True)} == {FAIL}


# ---------------------------------------------------------------------------
# hostapd's journal

JOURNAL = """Starting hostapd.service - Access point and authentication server...
wlan0: interface state UNINITIALIZED->COUNTRY_UPDATE
Could not select hw_mode and channel. (-3)
wlan0: interface state COUNTRY_UPDATE->DISABLED
Started hostapd.service - Access point and authentication server...
"""


def test_hostapd_journal_names_the_cause() -> None:
    assert [k for k, _, _ in hostapd_problems(JOURNAL, lab=False)] == ["channel"]
    rfkill = "Starting hostapd\nrfkill: WLAN soft blocked\nwlan0: Could not set interface up\n"
    assert next(k for k, _, _ in hostapd_problems(rfkill, lab=False)) == "rfkill"
    earlier = JOURNAL + "Stopping hostapd\nStarting hostapd.service\nwlan0: AP-ENABLED\n"
    assert hostapd_problems(earlier, lab=False) == []  # only since the last start counts


# ---------------------------------------------------------------------------
# The probe script, run for real on this machine against broken configs


def _broken_configs(tmp_path: Path) -> dict[str, Any]:
    nginx = tmp_path / "nginx.conf"
    nginx.write_text("events {}\nhttp { no_such_directive on; }\n")
    hostapd_dir = tmp_path / "hostapd"
    hostapd_dir.mkdir()
    (hostapd_dir / "hostapd.conf").write_text(
        "interface=wlan0\ndriver=nl80211\nssid=x\nhw_mode=g\nchannel=6\nwpa=2\n"
        "wpa_passphrase=short\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\n"
    )
    return {
        "ansible_connection": "local",
        "web_nginx_conf": str(nginx),
        "access_point_hostapd_dir": str(hostapd_dir),
        "web_tls_dir": str(tmp_path / "no-tls"),
        "web_cache_dir": str(tmp_path),
        "web_log_dir": str(tmp_path),
        "dhcp_lease_file": str(tmp_path / "no-leases"),
    }


def test_probe_script_reports_the_real_checkers_complaints(tmp_path: Path) -> None:
    variables = _broken_configs(tmp_path)
    result = run_script("local", variables, SCRIPT, probe_args(variables), timeout=60)
    checks = by_name(check_configs(result.sections))
    assert checks["config:nginx"].status == FAIL
    assert 'unknown directive "no_such_directive"' in checks["config:nginx"].message
    assert checks["config:hostapd"].status == FAIL
    assert "invalid WPA passphrase length 5" in checks["config:hostapd"].message
    assert result.sections["leases"].rc != 0
    assert result.sections["df"].rc == 0 and len(parse_df(result.sections["df"].text)) == 3


# ---------------------------------------------------------------------------
# The command, with a stand-in ssh replaying the recording

FAKE_SSH = """#!{python}
import json, os, sys, time
host = sys.argv[sys.argv.index("--") + 1]
if host == os.environ.get("FAKE_SSH_LATE"):
    time.sleep(1.5)  # a process slow to start on a loaded machine
with open({record!r}, "a") as out:
    out.write(json.dumps({{"host": host, "start": time.time()}}) + "\\n")
if host == "10.203.208.99":
    sys.stderr.write("ssh: connect to host 10.203.208.99 port 22: No route to host\\n")
    sys.exit(255)
# Answer only once GATHER calls have started (bounded): called one after another, the first
# waits out the bound and answers before the next starts.
gather, deadline = int(os.environ.get("FAKE_SSH_GATHER", "0")), time.monotonic() + 20
while time.monotonic() < deadline and open({record!r}).read().count('"start"') < gather:
    time.sleep(0.05)
mode = os.environ.get("FAKE_SSH_MODE", "")
text = open({recording!r}).read()
if mode == "escape":
    text = text.replace("PRETTY_NAME=", "PRETTY_NAME=\x1b]0;owned\x07\x1b[2J")
if mode == "huge":
    text += "x" * (5 * 1024 * 1024)
sys.stdout.write(text)
with open({record!r}, "a") as out:
    out.write(json.dumps({{"host": host, "end": time.time()}}) + "\\n")
"""


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The recording predates the firewall role on that Pi: judge it as such a version would.
    monkeypatch.setattr("appliance.doctor.firewall_expected", lambda: False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-calls.jsonl"
    script = bin_dir / "ssh"
    script.write_text(
        FAKE_SSH.format(
            python=sys.executable, record=str(record), recording=str(FIXTURES / "lab-pi.probe.txt")
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def _inventory(tmp_path: Path, hosts: list[str]) -> Path:
    group = lab_vars()
    for key in ("ansible_host", "ansible_user"):
        group.pop(key)
    data = {
        "all": {
            "children": {
                "appliances": {
                    "hosts": {
                        f"pi{i}": {"ansible_host": h, "ansible_user": "pi"}
                        for i, h in enumerate(hosts, 1)
                    },
                    "vars": group,
                }
            }
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    tls = tmp_path / ".presence-appliance" / "tls"
    tls.mkdir(parents=True)
    for i in range(1, len(hosts) + 1):
        (tls / f"pi{i}.crt").write_text(pem_of(recorded()))
    return path


@pytest.mark.parametrize("late", [None, "10.203.208.3"], ids=["all-start-at-once", "one-late"])
def test_doctor_runs_every_pi_at_once(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str | None
) -> None:
    # Every call waits for all three to have started: an order, not a 1 s race against
    # process start-up (LATE: one ssh slow to start, as on a loaded machine).
    monkeypatch.setenv("FAKE_SSH_GATHER", "3")
    if late:
        monkeypatch.setenv("FAKE_SSH_LATE", late)
    inventory = _inventory(tmp_path, ["10.203.208.1", "10.203.208.2", "10.203.208.3"])
    result = CliRunner().invoke(main, ["doctor", "-i", str(inventory), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [a["name"] for a in report["appliances"]] == ["pi1", "pi2", "pi3"]
    events = [json.loads(line) for line in fake_ssh.read_text().splitlines()]
    starts = [e["start"] for e in events if "start" in e]
    ends = [e["end"] for e in events if "end" in e]
    # Side by side: every Pi was asked before the first one answered.
    assert len(starts) == 3 and max(starts) < min(ends)
    for secret in [*SECURE_IDS, "lab-passphrase-123"]:
        assert secret not in result.output


def test_unreachable_pi_fails_ssh_and_exits_1(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, ["10.203.208.1", "10.203.208.99"])
    result = CliRunner().invoke(main, ["doctor", "-i", str(inventory)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("pi1: 0 failed")
    at = lines.index("pi2: 1 failed, 0 warnings")
    assert lines[at + 1].split()[:2] == ["FAIL", "ssh"]
    assert "No route to host" in lines[at + 1] and "->" in lines[at + 1]
    assert len(lines) == at + 2  # nothing else is claimed about an unreachable Pi


def test_render_lines_shape(pin: Path) -> None:
    from appliance.doctor import ApplianceReport, DoctorReport

    checks = diagnose("lab-pi", lab_vars(), recorded(), 0.4, pin, firewall=True)
    lines = render_lines(DoctorReport([ApplianceReport("lab-pi", checks)]))
    # The role ships but none of it is on the (recorded, older) Pi.
    assert lines[0] == "lab-pi: 4 failed, 0 warnings"
    failing = [line.split()[1] for line in lines if line.split()[0] == "FAIL"]
    assert failing == [
        "service:presence-firewall",
        "service:ulogd2",
        "config:firewall",
        "firewall",
    ]
    assert "systemctl start presence-firewall" in next(ln for ln in lines if "presence-fire" in ln)
    assert all("->" in line for line in lines if line.split()[0] == "FAIL")


def test_bad_inventory_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["doctor", "-i", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no such inventory" in result.output


def test_wireguard_is_ours_only_with_remote_access(pin: Path) -> None:
    remote = {"remote_access": {"wireguard": {"subnet": "10.44.0.0/24", "endpoint": "h:51820"}}}
    checks = by_name(diagnose("p", lab_vars(), recorded(), 0.1, pin, False))
    assert not any(name.startswith("service:wg-quick") for name in checks)
    services = split_sections(RECORDED)["services"].text + "\nwg-quick@wg0 inactive"
    sections = recorded(services=Section(services, 0))
    checks = by_name(diagnose("p", lab_vars(**remote), sections, 0.1, pin, False))
    assert checks["service:wg-quick@wg0"].status == FAIL
    assert checks["service:wg-quick@wg0"].message == "inactive"
    sections = recorded(services=Section(services.replace("wg0 inactive", "wg0 active"), 0))
    checks = by_name(diagnose("p", lab_vars(**remote), sections, 0.1, pin, False))
    assert checks["service:wg-quick@wg0"].status == OK


def test_vsftpd_is_ours_only_with_a_recording_camera(pin: Path) -> None:
    variables = lab_vars()
    assert not any(
        n.startswith("service:vsftpd")
        for n in by_name(diagnose("p", variables, recorded(), 0.1, pin, False))
    )
    variables["recordings"] = {}
    variables["cameras"] = [{**variables["cameras"][0], "recordings": True}]
    services = split_sections(RECORDED)["services"].text + "\nvsftpd failed"
    checks = by_name(
        diagnose("p", variables, recorded(services=Section(services, 0)), 0.1, pin, False)
    )
    assert checks["service:vsftpd"].status == FAIL and checks["service:vsftpd"].message == "failed"
    assert "journalctl -u vsftpd -b" in checks["service:vsftpd"].fix
    services = services.replace("vsftpd failed", "vsftpd active")
    checks = by_name(
        diagnose("p", variables, recorded(services=Section(services, 0)), 0.1, pin, False)
    )
    assert checks["service:vsftpd"].status == OK


def test_a_hostile_pi_cannot_write_to_the_terminal(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_MODE", "escape")
    inventory = _inventory(tmp_path, ["10.203.208.1"])
    result = CliRunner().invoke(main, ["doctor", "-i", str(inventory)])
    os_line = next(line for line in result.output.splitlines() if line.split()[1:2] == ["os"])
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "?]0;owned??[2J" in os_line


def test_a_flood_from_the_pi_is_cut_off(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_MODE", "huge")
    inventory = _inventory(tmp_path, ["10.203.208.1"])
    result = CliRunner().invoke(main, ["doctor", "-i", str(inventory), "--json"])
    assert result.exit_code == 1
    (check,) = json.loads(result.output)["appliances"][0]["checks"]
    assert check["name"] == "ssh" and "larger than 4 MiB" in check["message"]
