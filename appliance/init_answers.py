"""`init`'s answers (what only the user knows) and its proposals for everything else.

Answers come from a YAML file (`--answers`), flags or prompts; `load_answers` checks the
file's shape and names the bad key. `propose` turns answers and the Pi's facts into the
inventory's variables, generating the secrets.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance.countries import ISO_3166_ALPHA2

CAMERA_SOURCES = ("token", "file", "manual", "later")
DEFAULT_SSID = "presence-cameras"
DEFAULT_WEB_USER = "admin"
DEFAULT_SERVER_NAME = "cameras.home.arpa"
DEFAULT_NTP = ["pool.ntp.org"]
DEFAULT_CHANNEL = 6  # allowed in every regulatory domain, no overlap with 1 and 11
# Camera subnets to propose, in order: the first that overlaps none of the Pi's networks.
# (10.44.0.0/24 is left out: the docs propose it for remote_access.wireguard.)
CANDIDATE_NETWORKS = ("10.42.0.0/24", "10.43.0.0/24", "10.45.0.0/24", "192.168.242.0/24")
FIRST_CAMERA_HOST = 11  # .11 upwards for reservations, .100-.199 for the DHCP range
DHCP_RANGE = (100, 199)
# No look-alike characters (0/O, 1/l/I): the Wi-Fi passphrase is typed into the Netatmo app.
PASSPHRASE_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
PASSPHRASE_LENGTH = 24  # ~140 bits
WEB_PASSWORD_LENGTH = 20


class AnswersError(Exception):
    """The answers cannot be used; one line naming the key."""


@dataclass
class Answers:
    pi_address: str | None = None
    ssh_user: str | None = None
    ssh_key: str | None = None
    ssh_port: int | None = None
    country: str | None = None
    cameras_from: str | None = None
    netatmo_token: str | None = None
    gethomedata: str | None = None
    cameras: list[dict[str, str]] = field(default_factory=list)
    # Proposals the user may override.
    host_name: str = "pi"
    ssid: str | None = None
    channel: int | None = None
    camera_network: str | None = None
    camera_interface: str | None = None
    uplink_interface: str | None = None
    web_user: str | None = None
    server_name: str | None = None
    ntp_upstream: list[str] | None = None
    # Anything else, written as given (e.g. the lab's appliance_lab, ssh options).
    host_vars: dict[str, Any] = field(default_factory=dict)
    group_vars: dict[str, Any] = field(default_factory=dict)


_STR_KEYS = {
    "pi_address",
    "ssh_user",
    "ssh_key",
    "country",
    "cameras_from",
    "netatmo_token",
    "gethomedata",
    "host_name",
    "ssid",
    "camera_network",
    "camera_interface",
    "uplink_interface",
    "web_user",
    "server_name",
}
_INT_KEYS = {"ssh_port", "channel"}


def load_answers(path: str) -> Answers:
    """Read an answers YAML file; every key is checked, unknown ones refused."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise AnswersError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise AnswersError(f"{path}: not YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AnswersError(f"{path}: expected a mapping of answers")
    answers = Answers()
    for key, value in data.items():
        where = f"{path}: {key}"
        if key in _STR_KEYS:
            if value is not None and not isinstance(value, str | int):
                raise AnswersError(f"{where}: expected text")
            setattr(answers, key, None if value is None else str(value))
        elif key in _INT_KEYS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise AnswersError(f"{where}: expected a whole number")
            setattr(answers, key, value)
        elif key == "ntp_upstream":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise AnswersError(f"{where}: expected a list of host names")
            answers.ntp_upstream = list(value)
        elif key == "cameras":
            answers.cameras = _cameras(value, where)
        elif key in ("host_vars", "group_vars"):
            if not isinstance(value, dict):
                raise AnswersError(f"{where}: expected a mapping")
            setattr(answers, key, dict(value))
        else:
            raise AnswersError(f"{where}: unknown answer (known: {', '.join(sorted(KNOWN))})")
    return answers


KNOWN = _STR_KEYS | _INT_KEYS | {"ntp_upstream", "cameras", "host_vars", "group_vars"}


def _cameras(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise AnswersError(f"{where}: expected a list of {{name, mac, secure_id}}")
    cameras = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not {"name", "mac", "secure_id"} <= set(item):
            raise AnswersError(f"{where}[{index}]: expected name, mac and secure_id")
        cameras.append({k: str(item[k]) for k in ("name", "mac", "secure_id")})
    return cameras


def check_answers(answers: Answers) -> None:
    """What can be checked before asking the Pi anything (one line per problem, first one)."""
    if answers.country is not None:
        answers.country = answers.country.strip().upper()
        if answers.country not in ISO_3166_ALPHA2:
            raise AnswersError(
                f"country: {answers.country!r} is not an ISO 3166-1 alpha-2 code "
                "(DE, FR, GB, US...)"
            )
    if answers.cameras_from is not None and answers.cameras_from not in CAMERA_SOURCES:
        raise AnswersError(
            f"cameras_from: {answers.cameras_from!r}: choose {', '.join(CAMERA_SOURCES)}"
        )
    if answers.camera_network is not None:
        try:
            ipaddress.IPv4Interface(answers.camera_network)
        except ValueError:
            raise AnswersError(
                f"camera_network: {answers.camera_network!r} is not an address/prefix "
                "like 10.42.0.1/24"
            ) from None


# ---------------------------------------------------------------------------
# Proposals


def generate_passphrase(length: int = PASSPHRASE_LENGTH) -> str:
    return "".join(secrets.choice(PASSPHRASE_ALPHABET) for _ in range(length))


def propose_network(taken: list[ipaddress.IPv4Network]) -> str:
    """The Pi's camera address: the first candidate subnet none of the Pi's networks overlaps."""
    for candidate in CANDIDATE_NETWORKS:
        net = ipaddress.IPv4Network(candidate)
        if not any(net.overlaps(other) for other in taken):
            return f"{net.network_address + 1}/{net.prefixlen}"
    raise AnswersError(
        "every proposed camera subnet overlaps a network of the Pi: give camera_network"
    )


def camera_network_vars(address: str, interface: str) -> dict[str, Any]:
    iface = ipaddress.IPv4Interface(address)
    hosts = list(iface.network.hosts())
    first, last = DHCP_RANGE
    if len(hosts) < last:
        # A small subnet: the upper half for DHCP, the lower half for reservations.
        first, last = len(hosts) // 2 + 1, len(hosts)
    base = iface.network.network_address
    return {
        "interface": interface,
        "address": str(iface),
        "dhcp_range": [str(base + first), str(base + last)],
    }


@dataclass
class Proposal:
    """The inventory's variables: host vars, group vars, and the generated secrets to show."""

    host_name: str
    host_vars: dict[str, Any]
    group_vars: dict[str, Any]
    web_password: str
    wifi_passphrase: str


def propose(
    answers: Answers,
    wifi_interfaces: list[str],
    uplink: str,
    pi_networks: list[ipaddress.IPv4Network],
) -> Proposal:
    """Everything init writes, from the answers and the Pi's facts (cameras come later)."""
    interface = answers.camera_interface or (
        "wlan0" if "wlan0" in wifi_interfaces else (wifi_interfaces or ["wlan0"])[0]
    )
    address = answers.camera_network or propose_network(pi_networks)
    passphrase = generate_passphrase()
    web_password = generate_passphrase(WEB_PASSWORD_LENGTH)
    group: dict[str, Any] = {
        "wifi": {
            "ssid": answers.ssid or DEFAULT_SSID,
            "passphrase": passphrase,
            "country": answers.country,
            "channel": answers.channel or DEFAULT_CHANNEL,
            "isolation": "ap_isolate",
        },
        "camera_network": camera_network_vars(address, interface),
        "uplink_interface": answers.uplink_interface or uplink or "eth0",
        "ntp_upstream": answers.ntp_upstream or list(DEFAULT_NTP),
        "web": {
            "server_name": answers.server_name or DEFAULT_SERVER_NAME,
            "users": [{"name": answers.web_user or DEFAULT_WEB_USER, "password": web_password}],
            "tls_cert": None,
            "tls_key": None,
        },
        "cameras": [],
    }
    return Proposal(answers.host_name, host_vars(answers), group, web_password, passphrase)


def host_vars(answers: Answers) -> dict[str, Any]:
    """How Ansible (and init's own checks) reach the Pi over SSH."""
    found: dict[str, Any] = {"ansible_host": answers.pi_address}
    if answers.ssh_user:
        found["ansible_user"] = answers.ssh_user
    found["ansible_become"] = True
    if answers.ssh_port:
        found["ansible_port"] = answers.ssh_port
    if answers.ssh_key:
        key = answers.ssh_key
        # A relative path would break once the inventory is used from another directory.
        found["ansible_ssh_private_key_file"] = (
            key if key.startswith("~") else str(Path(key).resolve())
        )
    found.update(answers.host_vars)
    return found
