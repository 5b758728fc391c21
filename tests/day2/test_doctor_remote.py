"""`doctor` with remote viewing on: the WireGuard port open on the Pi, the peers' handshakes,
and the hint for the one step the tool cannot take (the home router's port forward).

The namespace test runs doctor's real probe script inside a "Pi" namespace whose WireGuard
interface (wireguard-go: the host has no kernel module) has a phone peer in another namespace,
with the firewall role's real ruleset loaded. Addresses: this test family's 10.203.240.0/20;
namespaces: remt-.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import remote as ra
from appliance.doctor import diagnose
from appliance.doctor_checks import FAIL, OK, WARN, Check
from appliance.doctor_probe import SCRIPT, probe_args
from appliance.doctor_remote import check_remote
from appliance.doctor_ssh import WRAPPER, Section, split_sections
from tests.roles.conftest import Netns, load_scenario, render_inventory, run, write_inventory
from tests.wg_userspace import bring_up_peer, stop_recorded

PI_UNDERLAY, PHONE_UNDERLAY = "10.203.246.1", "10.203.246.2"
TUNNEL, PI_TUNNEL = "10.203.247.0/24", "10.203.247.1"
PORT = 51822
KEY_A, KEY_B, KEY_C = ("A" * 43 + "=", "B" * 43 + "=", "C" * 43 + "=")


def variables(peers: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "ansible_host": "192.168.1.20",
        "remote_access": {
            "wireguard": {
                "listen_port": PORT,
                "subnet": TUNNEL,
                "endpoint": "home.example.net:443",  # the router maps its 443 to the Pi
                "peers": peers,
            }
        },
        **extra,
    }


PHONE = {"name": "phone", "public_key": KEY_A, "address": "10.203.247.2"}
LAPTOP = {"name": "laptop", "public_key": KEY_B, "address": "10.203.247.3"}


def dump_line(key: str, endpoint: str, handshake: int) -> str:
    return "\t".join(
        [key, "(none)", endpoint, "10.203.247.2/32", str(handshake), "10", "20", "off"]
    )


def sections(port: str = str(PORT), peers: str = "", now: int = 1700000100) -> dict[str, Section]:
    return {
        "wireguard:port": Section(port, 0),
        "wireguard:peers": Section(peers, 0),
        "now": Section(str(now), 0),
        "firewall": Section("Error: No such file or directory", 1),
    }


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# ---------------------------------------------------------------------------
# The checks, on the probe's sections


def test_nothing_is_said_without_remote_access() -> None:
    assert check_remote(sections(), {"ansible_host": "pi"}, "pi") == []
    assert check_remote(sections(), {"remote_access": {}}, "pi") == []


def test_a_peer_that_never_got_in_gets_the_port_forward_and_outside_test_hint() -> None:
    peers = dump_line(KEY_A, "(none)", 0) + "\n" + dump_line(KEY_B, "(none)", 0)
    checks = by_name(check_remote(sections(peers=peers), variables([PHONE, LAPTOP]), "pi"))
    port = checks["remote:port"]
    assert port.status == OK
    assert f"wg0 listens on UDP {PORT}" in port.message
    assert f"forward UDP 443 to 192.168.1.20 port {PORT}" in port.message
    peers_check = checks["remote:peers"]
    assert peers_check.status == WARN
    assert "phone: handshake never; laptop: handshake never" in peers_check.message
    fix = peers_check.fix
    assert f"forward UDP 443 to 192.168.1.20 port {PORT}" in fix
    assert "mobile data" in fix and f"https://{PI_TUNNEL}/" in fix
    assert "`presence-appliance remote list`" in fix


def test_handshake_ages_and_where_the_phone_came_from() -> None:
    peers = dump_line(KEY_A, "203.0.113.7:41000", 1700000070) + "\n" + dump_line(KEY_B, "(none)", 0)
    checks = by_name(check_remote(sections(peers=peers), variables([PHONE, LAPTOP]), "pi"))
    assert checks["remote:peers"] == Check(
        "remote:peers",
        OK,
        "phone: handshake 30 s ago from 203.0.113.7:41000; laptop: handshake never",
    )


def test_a_peer_the_inventory_no_longer_names_fails() -> None:
    peers = dump_line(KEY_A, "(none)", 0) + "\n" + dump_line(KEY_C, "203.0.113.9:1", 1700000000)
    check = by_name(check_remote(sections(peers=peers), variables([PHONE]), "pi"))["remote:peers"]
    assert check.status == FAIL and "1 peer(s) the inventory does not name: CCCCCCCCCC…" in (
        check.message
    )
    assert "install --tags wireguard" in check.fix


def test_a_peer_not_yet_on_the_pi_is_a_warning() -> None:
    peers = dump_line(KEY_A, "(none)", 0)
    check = by_name(check_remote(sections(peers=peers), variables([PHONE, LAPTOP]), "pi"))[
        "remote:peers"
    ]
    assert check.status == WARN and check.message == "in the inventory but not on the Pi: laptop"


def test_no_peers_yet_says_how_to_add_one() -> None:
    check = by_name(check_remote(sections(), variables([]), "pi"))["remote:peers"]
    assert check.status == OK and "remote add NAME" in check.message


def test_interface_down_or_on_another_port_fails() -> None:
    down = sections()
    down["wireguard:port"] = Section("Unable to access interface: No such device", 1)
    checks = by_name(check_remote(down, variables([PHONE]), "pi"))
    assert checks["remote:port"].status == FAIL
    assert "No such device" in checks["remote:port"].message
    assert "systemctl restart wg-quick@wg0" in checks["remote:port"].fix
    assert "remote:peers" not in checks  # one line says the tunnel is down
    other = by_name(check_remote(sections(port="51820"), variables([]), "pi"))["remote:port"]
    assert other.status == FAIL
    assert other.message == f"wg0 listens on UDP 51820, the inventory says {PORT}"


def test_doctor_runs_the_remote_checks_only_with_remote_access() -> None:
    def names(variables: dict[str, Any]) -> list[str]:
        found = {**sections(), "sudo": Section("root", 0)}
        checks = diagnose("pi", variables, found, 0.1, None, firewall=False)
        return [c.name for c in checks if c.name.startswith("remote:")]

    assert names({"ansible_host": "pi"}) == []
    assert names(variables([])) == ["remote:port", "remote:peers"]


# ---------------------------------------------------------------------------
# The probe, for real, in a Pi namespace with a live tunnel and the role's firewall


class RemoteNetns(Netns):
    """Netns with this test family's prefix (remt-)."""

    def add(self, role: str) -> str:
        name = f"remt-{role}-{self.tag}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.exec(name, ["ip", "link", "set", "lo", "up"])
        return name


@pytest.fixture
def remt(tmp_path: Path) -> Iterator[RemoteNetns]:
    if os.geteuid() != 0:
        pytest.fail("namespace tests need root")
    spaces = RemoteNetns()
    try:
        yield spaces
    finally:
        stop_recorded(tmp_path)  # every wireguard-go, by the PID it recorded
        spaces.cleanup()


def load_firewall(pi: str, tmp: Path, remote: dict[str, Any] | None, interface: str) -> None:
    """The firewall role's ruleset for this Pi (eth0 its uplink), loaded in its namespace."""
    fw: dict[str, Any] = load_scenario("ap_isolate")
    fw["uplink_interface"] = "eth0"
    fw["firewall_wireguard_interface"] = interface
    fw.pop("remote_access", None)
    if remote:
        fw["remote_access"] = remote
    for key, name in (
        ("firewall_log_file", "log/fw.json"),
        ("firewall_cameras_file", "cams.json"),
        ("firewall_state_dir", "state"),
    ):
        fw[key] = str(tmp / name)
    out = tmp / f"fw-{'on' if remote else 'off'}"
    render_inventory(write_inventory(fw, tmp / "fw-inventory.yml"), out, roles=("firewall",))
    run(["ip", "netns", "exec", pi, "nft", "-f", str(out / "etc/presence-appliance/firewall.nft")])


def probe_in(netns: str, probe_vars: dict[str, Any]) -> tuple[str, dict[str, Section]]:
    """doctor's probe script, as `doctor` runs it on a Pi, inside NETNS."""
    argv = ["sh", "-c", WRAPPER, "sh", SCRIPT, *probe_args(probe_vars)]
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=120
    )
    return proc.stdout, split_sections(proc.stdout)


@pytest.mark.netns
def test_the_probe_sees_the_port_the_handshake_and_never_the_pis_key(
    remt: RemoteNetns, tmp_path: Path
) -> None:
    tag = remt.tag
    pi_if, phone_if = f"remt{tag}", f"remtd{tag}"
    pi, phone = remt.add("dpi"), remt.add("dphone")
    remt.veth(pi, "eth0", phone, "eth0")
    run(["ip", "-n", pi, "addr", "add", f"{PI_UNDERLAY}/30", "dev", "eth0"])
    run(["ip", "-n", phone, "addr", "add", f"{PHONE_UNDERLAY}/30", "dev", "eth0"])

    pi_key, pi_pub = ra.generate_keypair()
    phone_key, phone_pub = ra.generate_keypair()
    _, laptop_pub = ra.generate_keypair()
    phone_peer = {"name": "phone", "public_key": phone_pub, "address": "10.203.247.2"}
    laptop_peer = {"name": "laptop", "public_key": laptop_pub, "address": "10.203.247.3"}
    pi_config = (
        f"[Interface]\nPrivateKey = {pi_key}\nListenPort = {PORT}\nAddress = {PI_TUNNEL}/24\n"
        f"[Peer]\nPublicKey = {phone_pub}\nAllowedIPs = 10.203.247.2/32\n"
        f"[Peer]\nPublicKey = {laptop_pub}\nAllowedIPs = 10.203.247.3/32\n"
    )
    bring_up_peer(pi, pi_if, pi_config, tmp_path)
    pi_vars = variables(
        [phone_peer, laptop_peer], ansible_connection="local", wireguard_interface=pi_if
    )
    pi_vars["remote_access"]["wireguard"]["endpoint"] = f"{PI_UNDERLAY}:{PORT}"
    load_firewall(pi, tmp_path, pi_vars["remote_access"], pi_if)

    def doctor() -> dict[str, Check]:
        output, found = probe_in(pi, pi_vars)
        assert pi_key not in output  # the dump's interface line stays on the Pi
        return by_name(check_remote(found, pi_vars, "pi"))

    before = doctor()
    assert before["remote:port"].status == OK, before["remote:port"]
    assert f"{pi_if} listens on UDP {PORT}, open on the Pi" in before["remote:port"].message
    assert before["remote:peers"].status == WARN, before["remote:peers"]
    assert "mobile data" in before["remote:peers"].fix

    wg = ra.wireguard_settings("pi", pi_vars)
    bring_up_peer(phone, phone_if, ra.peer_config(phone_key, "10.203.247.2", pi_pub, wg), tmp_path)
    ping = ["ip", "netns", "exec", phone, "ping", "-c", "1", "-W", "1", PI_TUNNEL]
    assert any(run(ping, check=False).returncode == 0 for _ in range(10)), "no tunnel"
    after = doctor()["remote:peers"]
    assert after.status == OK, after
    assert after.message.startswith("phone: handshake ")
    assert f" s ago from {PHONE_UNDERLAY}:" in after.message
    assert after.message.endswith("; laptop: handshake never")

    # `remote remove laptop` edited the inventory, but the Pi was not told.
    pi_vars["remote_access"]["wireguard"]["peers"] = [phone_peer]
    stray = doctor()["remote:peers"]
    assert stray.status == FAIL and laptop_pub[:10] in stray.message

    # A firewall from before remote access: the port is not open on the Pi.
    load_firewall(pi, tmp_path, None, pi_if)
    closed = doctor()["remote:port"]
    assert closed.status == FAIL and "the firewall does not let it in" in closed.message
