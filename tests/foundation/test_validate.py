"""`presence-appliance validate`: a table of broken inventories, each with its exit code and place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.cli_checks import assert_no_crash
from tests.conftest import appliance_vars, example_data, write_inventory

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path inside the appliances' group vars (cameras.1.mac)."""

    def mutate(data: dict[str, Any]) -> None:
        node: Any = appliance_vars(data)
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = appliance_vars(data)
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[keys[-1]]

    return mutate


def _second_pi_with_camera(camera: dict[str, Any]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        group = data["all"]["children"]["appliances"]
        group["hosts"]["shed-pi"] = {"ansible_host": "192.168.1.51", "cameras": [camera]}

    return mutate


CAM = {
    "name": "extra",
    "mac": "70:ee:50:00:00:99",
    "ip": "10.42.0.20",
    "secure_id": "ab" * 16,
    "cloud": "block",
}

# (id, mutation, expected exit code, expected "path:" in the output)
BROKEN: list[tuple[str, Mutation, int, str]] = [
    ("no-wifi", _delete("wifi"), 1, "wifi: is required"),
    ("wifi-not-mapping", _set("wifi", "open"), 1, "wifi: must be a mapping"),
    ("ssid-missing", _delete("wifi.ssid"), 1, "wifi.ssid: is required"),
    ("ssid-empty", _set("wifi.ssid", ""), 1, "wifi.ssid: must be 1-32 bytes"),
    ("ssid-too-long", _set("wifi.ssid", "x" * 33), 1, "wifi.ssid: must be 1-32 bytes"),
    ("ssid-utf8-too-long", _set("wifi.ssid", "é" * 17), 1, "wifi.ssid: must be 1-32 bytes"),
    ("passphrase-short", _set("wifi.passphrase", "1234567"), 1, "wifi.passphrase: must be 8-63"),
    ("passphrase-long", _set("wifi.passphrase", "x" * 64), 1, "wifi.passphrase: must be 8-63"),
    (
        "passphrase-nonascii",
        _set("wifi.passphrase", "pässwort-lang"),
        1,
        "wifi.passphrase: must be printable ASCII",
    ),
    ("passphrase-list", _set("wifi.passphrase", ["x"]), 1, "wifi.passphrase: must be a string"),
    ("country-unknown", _set("wifi.country", "XX"), 1, "wifi.country: 'XX' is not an ISO"),
    ("country-lowercase", _set("wifi.country", "de"), 1, "wifi.country"),
    ("channel-2g-out", _set("wifi.channel", 14), 1, "wifi.channel: 14 is not a 2.4 GHz channel"),
    (
        "channel-not-in-country",
        lambda d: (_set("wifi.country", "US")(d), _set("wifi.channel", 13)(d)),
        1,
        "wifi.channel: 13 is not allowed in US",
    ),
    ("channel-5g-mismatch", _set("wifi.band", "5"), 1, "wifi.channel: 6 is not a 5 GHz channel"),
    ("channel-text", _set("wifi.channel", "six"), 1, "wifi.channel: must be an integer"),
    ("isolation-bad", _set("wifi.isolation", "none"), 1, "wifi.isolation: 'none' is not one of"),
    ("band-bad", _set("wifi.band", "6"), 1, "wifi.band"),
    (
        "address-no-prefix",
        _set("camera_network.address", "10.42.0.1"),
        1,
        "camera_network.address: '10.42.0.1' needs a prefix",
    ),
    ("address-garbage", _set("camera_network.address", "10.42.0/24"), 1, "camera_network.address"),
    (
        "address-network",
        _set("camera_network.address", "10.42.0.0/24"),
        1,
        "camera_network.address",
    ),
    ("interface-bad", _set("camera_network.interface", "wlan 0"), 1, "camera_network.interface"),
    ("uplink-same", _set("uplink_interface", "wlan0"), 1, "uplink_interface: must differ"),
    (
        "range-one-item",
        _set("camera_network.dhcp_range", ["10.42.0.100"]),
        1,
        "camera_network.dhcp_range: must be [first, last]",
    ),
    (
        "range-outside",
        _set("camera_network.dhcp_range", ["10.42.1.100", "10.42.1.199"]),
        1,
        "camera_network.dhcp_range[0]: 10.42.1.100 is outside",
    ),
    (
        "range-reversed",
        _set("camera_network.dhcp_range", ["10.42.0.199", "10.42.0.100"]),
        1,
        "camera_network.dhcp_range: first",
    ),
    (
        "range-has-pi",
        _set("camera_network.dhcp_range", ["10.42.0.1", "10.42.0.99"]),
        1,
        "contains the Pi's own address",
    ),
    (
        "range-not-ip",
        _set("camera_network.dhcp_range", ["a", "b"]),
        1,
        "camera_network.dhcp_range[0]: 'a' is not an IPv4 address",
    ),
    ("ntp-empty", _set("ntp_upstream", []), 1, "ntp_upstream: needs at least one server"),
    ("ntp-not-list", _set("ntp_upstream", "pool.ntp.org"), 1, "ntp_upstream: must be a list"),
    ("ntp-bad-host", _set("ntp_upstream", ["bad host"]), 1, "ntp_upstream[0]"),
    ("web-missing", _delete("web"), 1, "web: is required"),
    ("server-name-bad", _set("web.server_name", "cams_home!"), 1, "web.server_name"),
    ("users-empty", _set("web.users", []), 1, "web.users: needs at least one user"),
    (
        "user-no-password",
        _set("web.users", [{"name": "admin"}]),
        1,
        "web.users[0]: needs a password or a password_hash",
    ),
    (
        "user-both",
        _set(
            "web.users",
            [{"name": "a", "password": "x" * 10, "password_hash": "$6$abc$" + "x" * 86}],
        ),
        1,
        "web.users[0]: give either",
    ),
    (
        "user-bad-hash",
        _set("web.users", [{"name": "a", "password_hash": "md5:abc"}]),
        1,
        "web.users[0].password_hash",
    ),
    (
        "user-dup",
        _set(
            "web.users",
            [{"name": "a", "password": "secret-1"}, {"name": "a", "password": "secret-2"}],
        ),
        1,
        "web.users[1].name: 'a' appears twice",
    ),
    (
        "user-colon",
        _set("web.users", [{"name": "a:b", "password": "secret-1"}]),
        1,
        "web.users[0].name",
    ),
    (
        "tls-half",
        _set("web.tls_cert", "/etc/ssl/cert.pem"),
        1,
        "web.tls_key: tls_cert and tls_key go together",
    ),
    ("cameras-missing", _delete("cameras"), 1, "cameras: is required"),
    ("cameras-not-list", _set("cameras", {"nord": {}}), 1, "cameras: must be a list"),
    ("camera-not-mapping", _set("cameras.0", "nord"), 1, "cameras[0]: must be a mapping"),
    (
        "camera-name-upper",
        _set("cameras.0.name", "Nord"),
        1,
        "cameras[0].name: 'Nord' must be 1-32",
    ),
    ("camera-name-slash", _set("cameras.0.name", "../etc"), 1, "cameras[0].name"),
    ("camera-name-long", _set("cameras.0.name", "a" * 33), 1, "cameras[0].name"),
    (
        "camera-name-dup",
        _set("cameras.1.name", "nord"),
        1,
        "cameras[1].name: 'nord' is already cameras[0]",
    ),
    (
        "camera-mac-bad",
        _set("cameras.1.mac", "70:ee:50:zz:00:01"),
        1,
        "cameras[1].mac: '70:ee:50:zz:00:01' is not a MAC address",
    ),
    (
        "camera-mac-dup",
        _set("cameras.1.mac", "70:EE:50:12:34:56"),
        1,
        "cameras[1].mac: 70:EE:50:12:34:56 is already cameras[0]",
    ),
    ("camera-mac-missing", _delete("cameras.0.mac"), 1, "cameras[0].mac: is required"),
    (
        "camera-ip-outside",
        _set("cameras.0.ip", "192.168.1.7"),
        1,
        "cameras[0].ip: 192.168.1.7 is outside the camera subnet",
    ),
    (
        "camera-ip-in-range",
        _set("cameras.0.ip", "10.42.0.150"),
        1,
        "cameras[0].ip: 10.42.0.150 is inside dhcp_range",
    ),
    (
        "camera-ip-is-pi",
        _set("cameras.0.ip", "10.42.0.1"),
        1,
        "cameras[0].ip: 10.42.0.1 is the Pi's own address",
    ),
    (
        "camera-ip-dup",
        _set("cameras.1.ip", "10.42.0.11"),
        1,
        "cameras[1].ip: 10.42.0.11 is already cameras[0]",
    ),
    ("camera-ip-broadcast", _set("cameras.0.ip", "10.42.0.255"), 1, "cameras[0].ip"),
    (
        "secure-id-empty",
        _set("cameras.0.secure_id", ""),
        1,
        "cameras[0].secure_id: must not be empty",
    ),
    (
        "secure-id-not-hex",
        _set("cameras.0.secure_id", "not-hex-at-all"),
        1,
        "cameras[0].secure_id: must be hexadecimal",
    ),
    (
        "cloud-bad",
        _set("cameras.0.cloud", "maybe"),
        1,
        "cameras[0].cloud: 'maybe' is not one of allow, block",
    ),
    ("vlan-bad", _set("cameras.0.vlan_id", 5000), 1, "cameras[0].vlan_id"),
    (
        "across-pis-name",
        _second_pi_with_camera({**CAM, "name": "nord"}),
        1,
        "is also cameras[0] of appliance",
    ),
    (
        "across-pis-mac",
        _second_pi_with_camera({**CAM, "mac": "70:ee:50:ab:cd:ef"}),
        1,
        "cameras[0].mac",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "code", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_inventory_names_the_place(
    tmp_path: Path, mutation: Mutation, code: int, expected: str
) -> None:
    data = example_data()
    mutation(data)
    inventory = write_inventory(tmp_path / "inventory.yml", data)
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory)])
    assert result.exit_code == code, result.output
    assert expected in result.output
    assert_no_crash(result)
    # every error line has the HOST: path: message shape
    for line in result.output.splitlines():
        if line.startswith("garden-pi: ") and "warning" not in line:
            assert line.count(": ") >= 2, line


def test_table_is_large() -> None:
    assert len(BROKEN) >= 30


def test_example_inventory_is_valid() -> None:
    from tests.conftest import EXAMPLE

    result = CliRunner().invoke(main, ["validate", "-i", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "valid (1 appliance(s): garden-pi; 2 camera(s))" in result.output


def test_every_problem_at_once(tmp_path: Path) -> None:
    data = example_data()
    for mutate in (
        _set("wifi.country", "XX"),
        _set("cameras.1.mac", "nope"),
        _set("web.users", []),
    ):
        mutate(data)
    result = CliRunner().invoke(
        main, ["validate", "-i", str(write_inventory(tmp_path / "i.yml", data))]
    )
    assert result.exit_code == 1
    assert (
        "wifi.country" in result.output
        and "cameras[1].mac" in result.output
        and "web.users" in result.output
    )
    assert "3 problem(s)" in result.output


def test_short_secure_id_is_a_warning_not_an_error(tmp_path: Path) -> None:
    data = example_data()
    _set("cameras.0.secure_id", "abcdef0123")(data)
    result = CliRunner().invoke(
        main, ["validate", "-i", str(write_inventory(tmp_path / "i.yml", data))]
    )
    assert result.exit_code == 0, result.output
    assert "garden-pi: warning: cameras[0].secure_id: is 10 characters" in result.output
    assert "abcdef0123" not in result.output  # a secure id is never echoed


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    data = example_data()
    _set("wifi.passphrase", "tiny")(data)
    _set("cameras.0.secure_id", "zzzz-secret-zzzz")(data)
    result = CliRunner().invoke(
        main, ["validate", "-i", str(write_inventory(tmp_path / "i.yml", data))]
    )
    assert result.exit_code == 1
    assert "tiny" not in result.output and "zzzz-secret-zzzz" not in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all:\n  children:\n    appliances: [\n", "line 4, column 1: YAML syntax error"),
        ("all:\n  hosts:\n    a: {ansible_host: 1.2.3.4\n", "YAML syntax error"),
        ("\tall: 1\n", "YAML syntax error"),
    ],
)
def test_yaml_syntax_error_is_usage_error_with_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", "-i", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert_no_crash(result)


def test_missing_file_is_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "-i", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "no such inventory file" in result.output


def test_no_appliances_group(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    lonely: {ansible_host: 10.0.0.1}\n")
    result = CliRunner().invoke(main, ["validate", "-i", str(path)])
    assert result.exit_code == 1
    assert "no hosts in group 'appliances'" in result.output


def test_environment_default_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import EXAMPLE

    monkeypatch.setenv("PRESENCE_INVENTORY", str(EXAMPLE))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output


def test_group_vars_and_host_vars_are_merged(tmp_path: Path) -> None:
    data = example_data()
    group_vars = appliance_vars(data)
    data["all"]["children"]["appliances"]["vars"] = {}
    cameras = group_vars.pop("cameras")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    write_inventory(tmp_path / "group_vars" / "appliances.yml", group_vars)
    cameras[1]["mac"] = "bad-mac"
    write_inventory(tmp_path / "host_vars" / "garden-pi.yml", {"cameras": cameras})
    result = CliRunner().invoke(
        main, ["validate", "-i", str(write_inventory(tmp_path / "inventory.yml", data))]
    )
    assert result.exit_code == 1, result.output
    assert "garden-pi: cameras[1].mac: 'bad-mac' is not a MAC address" in result.output


def test_broken_group_vars_file_is_usage_error(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "appliances.yml").write_text("wifi: [\n")
    result = CliRunner().invoke(
        main, ["validate", "-i", str(write_inventory(tmp_path / "inventory.yml", example_data()))]
    )
    assert result.exit_code == 2
    assert "group_vars/appliances.yml: line 2" in result.output
