"""Remote viewing peers: the schema's remote_access rules, key pairs, the peer config and its
QR code (decoded by a real QR reader), and the byte-exact inventory edits of `remote add|remove`."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance import remote as ra
from appliance.cli import main
from appliance.inventory_edit import EditError
from appliance.schema import validate_appliance
from tests.conftest import appliance_vars, example_data, write_inventory
from tests.qr import decode_modules, decode_terminal

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()

WG = {
    "subnet": "10.44.0.0/24",
    "endpoint": "home.example.net:51820",
    "peers": [{"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"}],
}


def _vars(wireguard: Any) -> dict[str, Any]:
    variables = appliance_vars(example_data())
    variables["remote_access"] = {"wireguard": wireguard}
    return variables


def _errors(wireguard: Any) -> list[str]:
    return [
        f"{p.path}: {p.message}"
        for p in validate_appliance("pi", _vars(wireguard))
        if p.severity == "error"
    ]


def test_valid_settings_and_absent_remote_access() -> None:
    assert _errors(WG) == []
    assert [p for p in validate_appliance("pi", appliance_vars(example_data()))
            if p.severity == "error"] == []  # fmt: skip


@pytest.mark.parametrize(
    ("change", "place", "words"),
    [
        ({"subnet": "10.44.0.5/24"}, "remote_access.wireguard.subnet", "not an IPv4 subnet"),
        ({"subnet": "10.44.0.0/31"}, "remote_access.wireguard.subnet", "at most /30"),
        ({"subnet": "10.42.0.0/16"}, "remote_access.wireguard.subnet", "overlaps the camera"),
        ({"endpoint": "home.example.net"}, "remote_access.wireguard.endpoint", "HOST:PORT"),
        ({"endpoint": "bad_host:51820"}, "remote_access.wireguard.endpoint", "not a host name"),
        ({"endpoint": "[::1]:51820"}, None, None),
        ({"listen_port": 70000}, "remote_access.wireguard.listen_port", "not a UDP port"),
        (
            {"peers": [{"name": "phone", "public_key": "abc", "address": "10.44.0.2"}]},
            "remote_access.wireguard.peers[0].public_key",
            "not a WireGuard key",
        ),
        (
            {"peers": [{"name": "Phone!", "public_key": KEY_A, "address": "10.44.0.2"}]},
            "remote_access.wireguard.peers[0].name",
            "a-z, 0-9",
        ),
        (
            {"peers": [{"name": "phone", "public_key": KEY_A, "address": "10.44.0.1"}]},
            "remote_access.wireguard.peers[0].address",
            "the Pi's own tunnel address",
        ),
        (
            {"peers": [{"name": "phone", "public_key": KEY_A, "address": "10.45.0.2"}]},
            "remote_access.wireguard.peers[0].address",
            "not a host of 10.44.0.0/24",
        ),
        (
            {
                "peers": [
                    {"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"},
                    {"name": "phone", "public_key": KEY_B, "address": "10.44.0.3"},
                ]
            },
            "remote_access.wireguard.peers[1].name",
            "already peers[0]",
        ),
        (
            {
                "peers": [
                    {"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"},
                    {"name": "laptop", "public_key": KEY_A, "address": "10.44.0.3"},
                ]
            },
            "remote_access.wireguard.peers[1].public_key",
            "already peers[0]",
        ),
        ({"subnet": None}, "remote_access.wireguard.subnet", "not null"),
    ],
)
def test_bad_settings_name_the_place(
    change: dict[str, Any], place: str | None, words: str | None
) -> None:
    errors = _errors({**WG, **change})
    if place is None:
        assert errors == []
        return
    assert any(e.startswith(f"{place}: ") and words in e for e in errors), errors


def test_missing_required_keys() -> None:
    errors = _errors({"peers": []})
    assert "remote_access.wireguard.subnet: is required" in errors
    assert "remote_access.wireguard.endpoint: is required" in errors


def test_keypair_matches_wg_pubkey() -> None:
    wg = shutil.which("wg")
    assert wg, "wireguard-tools (wg) is a declared test dependency (Makefile APT_PACKAGES)"
    private, public = ra.generate_keypair()
    derived = subprocess.run(
        [wg, "pubkey"], input=private, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    assert derived == public
    assert ra.generate_keypair()[0] != private


def _settings(**extra: Any) -> ra.WireGuard:
    return ra.wireguard_settings("pi", {"remote_access": {"wireguard": {**WG, **extra}}})


def test_peer_config_routes_only_the_pi_through_the_tunnel() -> None:
    wg = _settings()
    assert ra.next_peer_address(wg) == "10.44.0.3"
    text = ra.peer_config("PRIV=", "10.44.0.3", KEY_B, wg)
    assert ra.parse_config(text) == [
        ("Interface", {"PrivateKey": "PRIV=", "Address": "10.44.0.3/32"}),
        (
            "Peer",
            {
                "PublicKey": KEY_B,
                "Endpoint": "home.example.net:51820",
                "AllowedIPs": "10.44.0.1/32",
            },
        ),
    ]


def test_full_subnet_is_refused() -> None:
    wg = _settings(
        subnet="10.44.0.0/30",
        peers=[{"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"}],
    )
    with pytest.raises(ra.RemoteError, match="no free address"):
        ra.next_peer_address(wg)


def test_terminal_qr_decodes_to_the_config(tmp_path: Path) -> None:
    private, _ = ra.generate_keypair()
    config = ra.peer_config(private, "10.44.0.2", KEY_B, _settings())
    printed = ra.terminal_qr(config)
    # Colours are fixed in the output (white on black), so it scans on any terminal theme.
    assert all(line.startswith("\x1b[97;40m") for line in printed.splitlines())
    assert decode_modules(ra.qr_modules(printed), tmp_path) == config


def test_qr_reader_would_notice_a_different_config(tmp_path: Path) -> None:
    config = ra.peer_config("A" * 43 + "=", "10.44.0.2", KEY_B, _settings())
    other = config.replace("10.44.0.2", "10.44.0.9")
    assert decode_terminal(ra.terminal_qr(other), tmp_path) != config


DUMP = (
    "cHJpdmF0ZQ==\tcHVibGlj\t51820\toff\n"
    f"{KEY_A}\t(none)\t10.203.2.9:41000\t10.44.0.2/32\t1700000000\t1234\t5678\toff\n"
    f"{KEY_B}\t(none)\t(none)\t10.44.0.3/32\t0\t0\t0\toff\n"
)


def test_dump_rows_skip_the_interface_line() -> None:
    status = ra.parse_dump(DUMP)
    assert [s.public_key for s in status] == [KEY_A, KEY_B]
    assert status[0].endpoint == "10.203.2.9:41000" and status[0].rx_bytes == 1234
    assert status[1].endpoint == "" and status[1].latest_handshake == 0
    wg = _settings(
        peers=[
            {"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"},
            {"name": "laptop", "public_key": KEY_B, "address": "10.44.0.3"},
            {"name": "tablet", "public_key": "C" * 43 + "=", "address": "10.44.0.4"},
        ]
    )
    rows = list(ra.iter_rows(wg, status, now=1700000030))
    assert rows[0]["handshake"] == "30 s ago" and rows[0]["received"] == "1.2 KiB"
    assert rows[1]["handshake"] == "never"
    assert rows[2]["handshake"] == "not on the Pi"


INVENTORY = """\
# my cameras
all:
  children:
    appliances:
      hosts:
        pi:
          ansible_host: 10.42.9.9   # the Pi
      vars:
        wifi: {ssid: Cams, passphrase: "correct horse battery", country: FR, channel: 6}
        camera_network:
          interface: wlan0
          address: 10.42.0.1/24
          dhcp_range: [10.42.0.100, 10.42.0.200]
        uplink_interface: eth0
        ntp_upstream: [pool.ntp.org]
        web:
          server_name: pi.lan
          users: [{name: admin, password: "s3cret"}]
          tls_cert: null
          tls_key: null
        cameras: []
        remote_access:
          wireguard:
            subnet: 10.44.0.0/24     # keep this comment
            endpoint: "home.example.net:51820"
        # trailing comment
"""


def test_add_and_remove_touch_only_the_peer_lines(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    ra.add_peer(path, "pi", {"name": "phone", "public_key": KEY_A, "address": "10.44.0.2"})
    text = path.read_text()
    assert text == INVENTORY.replace(
        '            endpoint: "home.example.net:51820"\n',
        '            endpoint: "home.example.net:51820"\n'
        "            peers:\n"
        "              - name: phone\n"
        f"                public_key: {KEY_A}\n"
        "                address: 10.44.0.2\n",
    )
    ra.add_peer(path, "pi", {"name": "laptop", "public_key": KEY_B, "address": "10.44.0.3"})
    ra.remove_peer(path, "pi", "phone")
    ra.remove_peer(path, "pi", "laptop")
    assert path.read_text() == INVENTORY.replace(
        '            endpoint: "home.example.net:51820"\n',
        '            endpoint: "home.example.net:51820"\n            peers: []\n',
    )


def test_an_invalid_peer_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    with pytest.raises(EditError, match=r"not changed: .*peers\[0\]\.address"):
        ra.add_peer(path, "pi", {"name": "phone", "public_key": KEY_A, "address": "10.44.0.1"})
    assert path.read_text() == INVENTORY
    with pytest.raises(EditError, match="no peer 'tablet'"):
        ra.remove_peer(path, "pi", "tablet")


def test_add_without_wireguard_settings_is_one_line(tmp_path: Path) -> None:
    data = example_data()
    path = write_inventory(tmp_path / "inventory.yml", data)
    result = CliRunner().invoke(main, ["remote", "add", "phone", "-i", str(path)])
    assert result.exit_code == 1
    assert "remote_access.wireguard is not set" in result.output
    assert "Traceback" not in result.output


def test_add_before_install_names_the_missing_pi_key(tmp_path: Path) -> None:
    data = example_data()
    appliance_vars(data)["remote_access"] = {"wireguard": dict(WG, peers=[])}
    path = write_inventory(tmp_path / "inventory.yml", data)
    before = path.read_text()
    conf = tmp_path / "phone.conf"
    result = CliRunner().invoke(
        main, ["remote", "add", "phone", "-i", str(path), "--conf", str(conf)]
    )
    assert result.exit_code == 1, result.output
    assert "public key is not here (run `presence-appliance install` first)" in result.output
    assert path.read_text() == before and not conf.exists()


@pytest.mark.parametrize("name", ["Phone", "a" * 33, "../x"])
def test_bad_peer_name_is_a_usage_error(name: str, tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inventory.yml", example_data())
    result = CliRunner().invoke(main, ["remote", "add", name, "-i", str(path)])
    assert result.exit_code == 2 and "peer name" in result.output


def test_a_failed_apply_puts_the_inventory_back_byte_for_byte(tmp_path: Path) -> None:
    # The "Pi" is a closed port on loopback: Ansible cannot reach it, the run fails.
    text = INVENTORY.replace(
        "          ansible_host: 10.42.9.9   # the Pi\n",
        "          ansible_host: 127.0.0.1   # the Pi\n"
        "          ansible_port: 9\n"
        "          ansible_ssh_common_args: -o ConnectTimeout=3\n",
    )
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    pub = tmp_path / ".presence-appliance" / "wireguard" / "pi.pub"
    pub.parent.mkdir(parents=True)
    pub.write_text(KEY_B + "\n")
    conf = tmp_path / "phone.conf"
    result = CliRunner().invoke(
        main, ["remote", "add", "phone", "-i", str(path), "--conf", str(conf)]
    )
    assert result.exit_code == 1, result.output
    assert "pi: not applied" in result.output and "the inventory is unchanged" in result.output
    assert path.read_text() == text
    assert not conf.exists()
    assert "Traceback" not in result.output
