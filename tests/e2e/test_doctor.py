"""`doctor` on the booted lab: a healthy Pi passes, then one thing at a time is broken and
doctor must fail exactly that check (and nothing else).

Each test restores what it broke in a `finally`, so the next one starts from a healthy Pi.
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.doctor import firewall_expected
from appliance.doctor_checks import parse_tracking
from appliance.doctor_probe import SCRIPT, probe_args
from appliance.doctor_ssh import WRAPPER
from appliance.lab.handle import Lab
from appliance.lab.plan import LAN_NS
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "doctor"
TLS_DIR = "/etc/nginx/presence-appliance-tls"
CACHE_DIR = "/var/cache/nginx/presence-appliance"


class _Shown(dict):  # type: ignore[type-arg]
    """The checks by name; shown as `name: status: message` lines when an assert fails."""

    def __repr__(self) -> str:
        return "\n" + "\n".join(f"{n}: {c['status']}: {c['message']}" for n, c in self.items())


class DoctorLab:
    def __init__(self, lab: Lab, inventory: Path) -> None:
        self.lab = lab
        self.inventory = inventory

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.lab.cli(*args, "-i", str(self.inventory), timeout=timeout)

    def doctor(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("doctor", "--json")
        assert result.returncode in (0, 1), result.stdout + result.stderr
        self.assert_no_secrets(result.stdout + result.stderr)
        return result.returncode, json.loads(result.stdout)

    def checks(self, report: dict[str, Any]) -> dict[str, dict[str, str]]:
        (appliance,) = report["appliances"]
        return {c["name"]: c for c in appliance["checks"]}

    def failing(self) -> tuple[int, set[str], dict[str, dict[str, str]]]:
        """Exit code, the failing checks' names, and every check as `status: message`."""
        code, report = self.doctor()
        checks = self.checks(report)
        failing = {n for n, c in checks.items() if c["status"] == "fail"}
        return code, failing, _Shown(checks)

    def assert_no_secrets(self, text: str) -> None:
        group = self.lab.inventory["all"]["children"]["appliances"]["vars"]
        secrets = [c["secure_id"] for c in group["cameras"]]
        secrets += [group["wifi"]["passphrase"], group["web"]["users"][0]["password"]]
        for secret in secrets:
            assert secret not in text

    def pi(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.pi_exec(*cmd, check=check, timeout=60)

    def pi_mount_ns(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """CMD in the Pi's mount namespace with the host's capabilities (mounting a tmpfs)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.lab.pi_leader()), "-m", "--", *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def installed(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> DoctorLab:
    """The lab Pi with every role applied (install ends with a passing `check`)."""
    lab = lab_session.ensure_up()
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["appliances"].setdefault("vars", {})
    group.setdefault("web_hlsjs_src", str(fetch_hlsjs()))
    inventory = tmp_path_factory.mktemp("doctor") / "inventory.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    inventory.chmod(0o600)
    doctor_lab = DoctorLab(lab, inventory)
    result = doctor_lab.cli("install", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for camera in lab.plan.cameras:
        lab.wait_camera_lease(camera.name)
    return doctor_lab


def _record_probe(installed: DoctorLab) -> None:
    """Keep the raw probe output of the lab Pi (the unit tests' recorded outputs come from it)."""
    lab = installed.lab
    pi = lab.plan.pis[0]
    host = lab.inventory["all"]["children"]["appliances"]["hosts"][pi.host]
    remote = shlex.join(["sh", "-c", WRAPPER, "sh", SCRIPT, *probe_args(host)])
    cmd = ["ip", "netns", "exec", LAN_NS, "ssh", "-o", "BatchMode=yes", "-i", str(lab.ssh_key)]
    cmd += shlex.split(host["ansible_ssh_common_args"])
    cmd += ["-l", "pi", "--", pi.address, remote]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lab-pi.probe.txt").write_text(result.stdout)


def _wait_synchronised(installed: DoctorLab, timeout: float = 90) -> None:
    """chrony was just restarted by install: wait (bounded) until it follows the wan server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = installed.pi("chronyc", "-n", "tracking", check=False).stdout
        stratum = parse_tracking(out).get("Stratum", "0")
        if stratum.isdigit() and 0 < int(stratum) < 10:
            return
        time.sleep(1)
    raise TimeoutError(f"chrony did not synchronise within {timeout:.0f} s")


def test_healthy_pi_passes_and_a_camera_asking_for_time_shows(installed: DoctorLab) -> None:
    lab = installed.lab
    camera = lab.plan.cameras[0]
    pi = lab.plan.pis[0]
    # The emulated cameras never ask for time by themselves: ask once from camera 1.
    asked = lab.run_in(camera.netns, "ntpdig", "-t", "3", pi.camera_gateway, check=False)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    _wait_synchronised(installed)
    _record_probe(installed)

    code, failing, checks = installed.failing()
    assert code == 0 and failing == set(), checks
    names = ("ssh", "sudo", "os", "leases:unknown", "time", "tls:expiry", "tls:pin",
             "install:pending")  # fmt: skip
    for name in names:
        assert checks[name]["status"] == "ok", checks[name]
    for service in ("hostapd", "dnsmasq", "chrony", "nginx"):
        assert checks[f"service:{service}"]["status"] == "ok"
        assert checks[f"config:{service}"]["status"] == "ok"
    for cam in lab.plan.cameras:
        assert checks[f"camera:{cam.name}"]["message"] == f"leased its reserved {cam.ip}"
    assert checks["time:cameras"]["status"] == "ok"
    assert camera.name in checks["time:cameras"]["message"]
    assert "bookworm" in checks["os"]["message"] or "trixie" in checks["os"]["message"]

    text = installed.cli("doctor")
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.startswith(f"{pi.host}: 0 failed")


def test_stopped_service_fails_that_service_only(installed: DoctorLab) -> None:
    installed.pi("systemctl", "stop", "dnsmasq.service")
    try:
        code, failing, checks = installed.failing()
        assert code == 1
        assert failing == {"service:dnsmasq"}, checks
        assert "systemctl restart dnsmasq" in checks["service:dnsmasq"]["fix"]
        text = installed.cli("doctor")
        assert text.returncode == 1
        line = next(ln for ln in text.stdout.splitlines() if "service:dnsmasq" in ln)
        assert line.split()[0] == "FAIL" and "->" in line
    finally:
        installed.pi("systemctl", "start", "dnsmasq.service")


def test_removed_lease_fails_that_camera_only(installed: DoctorLab) -> None:
    lab = installed.lab
    camera = lab.plan.cameras[-1]
    leases = "/var/lib/misc/dnsmasq.leases"
    # Take the camera off the "Wi-Fi" first, so it cannot renew the lease behind our back.
    lab.run_in(camera.netns, "ip", "link", "set", "wlan0", "down")
    installed.pi("cp", "-a", leases, f"{leases}.doctor-test")
    try:
        installed.pi("systemctl", "stop", "dnsmasq.service")
        installed.pi("sed", "-i", f"/ {camera.mac} /d", leases)
        installed.pi("systemctl", "start", "dnsmasq.service")
        code, failing, checks = installed.failing()
        assert code == 1
        assert failing == {f"camera:{camera.name}"}, checks
        assert "no DHCP lease" in checks[f"camera:{camera.name}"]["message"]
    finally:
        # Put the lease back as it was (the camera would only renew within 2 minutes).
        installed.pi("systemctl", "stop", "dnsmasq.service")
        installed.pi("mv", f"{leases}.doctor-test", leases)
        installed.pi("systemctl", "start", "dnsmasq.service")
        lab.run_in(camera.netns, "ip", "link", "set", "wlan0", "up")
    code, failing, checks = installed.failing()
    assert failing == set(), checks


def _expired_certificate(server_name: str) -> tuple[str, str]:
    """A self-signed certificate (PEM) that expired yesterday, and its key (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _put(installed: DoctorLab, path: str, text: str, mode: str) -> None:
    installed.pi(
        "sh", "-c", 'umask 077; printf "%s" "$1" > "$2"; chmod "$3" "$2"', "sh", text, path, mode
    )


def test_expired_certificate_fails_expiry_only(installed: DoctorLab) -> None:
    """The Pi's certificate expired (and is the pinned one): only tls:expiry fails."""
    pin = installed.inventory.parent / ".presence-appliance" / "tls" / "lab-pi.crt"
    pinned = pin.read_text()
    cert, key = _expired_certificate("cams.lab.home.arpa")
    installed.pi("cp", "-a", f"{TLS_DIR}/server.crt", f"{TLS_DIR}/server.crt.doctor-test")
    installed.pi("cp", "-a", f"{TLS_DIR}/server.key", f"{TLS_DIR}/server.key.doctor-test")
    try:
        _put(installed, f"{TLS_DIR}/server.key", key, "600")
        _put(installed, f"{TLS_DIR}/server.crt", cert, "644")
        pin.write_text(cert)
        code, failing, checks = installed.failing()
        assert code == 1
        assert failing == {"tls:expiry"}, checks
        assert "expired on" in checks["tls:expiry"]["message"]
        assert checks["tls:pin"]["status"] == "ok"
    finally:
        installed.pi("mv", f"{TLS_DIR}/server.crt.doctor-test", f"{TLS_DIR}/server.crt")
        installed.pi("mv", f"{TLS_DIR}/server.key.doctor-test", f"{TLS_DIR}/server.key")
        pin.write_text(pinned)
    code, failing, _ = installed.failing()
    assert failing == set()


def test_changed_certificate_fails_the_pin_only(installed: DoctorLab) -> None:
    pin = installed.inventory.parent / ".presence-appliance" / "tls" / "lab-pi.crt"
    pinned = pin.read_text()
    other, _ = _expired_certificate("someone-else.example")
    try:
        # Same Pi certificate, different pin: as if the Pi's certificate had been swapped.
        pin.write_text(other)
        code, failing, checks = installed.failing()
        assert code == 1 and failing == {"tls:pin"}, checks
    finally:
        pin.write_text(pinned)


@pytest.fixture
def small_cache(installed: DoctorLab) -> Iterator[None]:
    """An 80 MiB tmpfs over the Pi's nginx cache directory, removed afterwards."""
    mounted = installed.pi_mount_ns("mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", CACHE_DIR)
    assert mounted.returncode == 0, mounted.stderr
    try:
        yield
    finally:
        result = installed.pi_mount_ns("umount", CACHE_DIR)
        assert result.returncode == 0, result.stderr


def test_full_cache_directory_fails_disk_cache_only(
    installed: DoctorLab, small_cache: None
) -> None:
    code, failing, checks = installed.failing()
    assert failing == set(), checks
    assert checks["disk:cache"]["status"] == "warn"  # 80 MiB free: little, not yet full
    fill = installed.pi_mount_ns(
        "dd", "if=/dev/zero", f"of={CACHE_DIR}/filler", "bs=1M", "count=200"
    )
    assert "No space left" in fill.stderr
    code, failing, checks = installed.failing()
    assert code == 1
    assert failing == {"disk:cache"}, checks
    assert checks["disk:root"]["status"] == "ok" and checks["disk:log"]["status"] == "ok"


FIREWALL_STAND_IN = """
table inet presence_appliance {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9 counter drop
  }
}
"""


def test_firewall_table_and_drop_counters(installed: DoctorLab) -> None:
    """Unload the table: doctor fails `firewall` once the role ships (only the table's
    presence is checked before that). With the role absent from this version, a stand-in
    table (one counting drop rule) shows that drop counters are read and summed."""
    lab = installed.lab
    pi = lab.plan.pis[0]
    expected = firewall_expected()
    if not expected:
        installed.pi("sh", "-c", 'printf "%s" "$1" | nft -f -', "sh", FIREWALL_STAND_IN)
    try:
        for _ in range(3):
            lab.run_in(
                LAN_NS,
                sys.executable,
                "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                f"s.sendto(b'x', ('{pi.address}', 9))",
            )
        code, failing, checks = installed.failing()
        assert failing == set(), checks
        message = checks["firewall"]["message"]
        assert "table inet presence_appliance loaded" in message
        if not expected:
            assert "1 dropping, 3 packets dropped" in message
        installed.pi("nft", "delete", "table", "inet", "presence_appliance")
        code, failing, checks = installed.failing()
        if expected:
            assert code == 1 and failing == {"firewall"}, checks
            assert "reload presence-firewall" in checks["firewall"]["fix"]
        else:
            assert code == 0 and checks["firewall"]["status"] == "ok", checks
            assert "not expected" in checks["firewall"]["message"]
    finally:
        if expected:
            # doctor's own fix hint: reload the confirmed table (never restart the unit).
            installed.pi("systemctl", "reload", "presence-firewall.service")
        else:
            installed.pi("nft", "delete", "table", "inet", "presence_appliance", check=False)
    if expected:
        code, failing, checks = installed.failing()
        assert failing == set() and checks["firewall"]["status"] == "ok", checks
