"""The one inventory schema: every rule an appliance's variables must satisfy.

Used by `presence-appliance validate`, by the playbook's guard play (through the
`appliance_validate` action plugin) and mirrored by the roles' argument specs
(a test keeps them in step). Each problem names its exact place:
`garden-pi: cameras[1].mac: '70:ee:50:zz:00:01' is not a MAC address`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance.countries import ISO_3166_ALPHA2

NETATMO_OUI = "70:ee:50"
# Every pattern is anchored with \A...\Z (and used with fullmatch): a `$`-anchored match accepts a
# trailing newline, which is exactly what `echo pw | ansible-vault encrypt_string` adds (and it
# split config lines on the Pi). \Z keeps other modules' `.match()` calls exact too.
CAMERA_NAME = re.compile(r"\A(?:[a-z0-9-]{1,32})\Z")
MAC = re.compile(r"\A(?:[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5})\Z")
HEX = re.compile(r"\A(?:[0-9a-fA-F]+)\Z")
INTERFACE = re.compile(r"\A(?:[A-Za-z0-9_.-]{1,15})\Z")
HOSTNAME = re.compile(
    r"\A(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)
WEB_USER = re.compile(r"\A(?:[A-Za-z0-9._@-]{1,64})\Z")
# crypt(3) formats nginx accepts through libxcrypt: bcrypt and sha512-crypt.
PASSWORD_HASH = re.compile(
    r"\A(?:\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}|\$6\$(rounds=[0-9]+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86})\Z"
)
# No string in the inventory may be longer (a file path is the longest honest value).
MAX_STRING = 1024
# Web passwords are hashed with bcrypt, which takes at most 72 bytes.
BCRYPT_MAX_BYTES = 72
# A secure id is a path segment in the Pi's nginx config: hex, and bounded.
MAX_SECURE_ID = 128
CHANNELS = {
    "2.4": set(range(1, 14)),
    "5": {
        36,
        40,
        44,
        48,
        52,
        56,
        60,
        64,
        100,
        104,
        108,
        112,
        116,
        120,
        124,
        128,
        132,
        136,
        140,
        144,
        149,
        153,
        157,
        161,
        165,
    },
}
# Regulatory domains where 2.4 GHz stops at channel 11 (FCC rules: the US, its territories, Canada, Taiwan).
CHANNELS_1_TO_11 = frozenset({"US", "CA", "TW", "PR", "GU", "AS", "VI", "MP", "UM"})
ISOLATION = ("ap_isolate", "vlan_per_camera")
PEER_NAME = CAMERA_NAME  # remote_access peers: the same rule (names appear in file names)
# A WireGuard key: 32 bytes in base64 (43 characters and one "=").
WIREGUARD_KEY = re.compile(r"\A(?:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)\Z")
CLOUD = ("allow", "block")
# Recordings (issue 15): where they go by default, the FTP modes, the passive range and bounds.
RECORDINGS_PATH = "/srv/presence-recordings"
FTP_MODES = ("passive", "active")
PASSIVE_PORTS = (50000, 50019)
# The storage path is written into vsftpd's per-user files and systemd units: a plain path.
RECORDINGS_PATH_CHARS = re.compile(r"\A(?:/[A-Za-z0-9._-]+)+\Z")
# Never below these: the system itself lives there.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/tmp",
)
RETENTION_DAYS = (1, 3650)
CAMERA_QUOTA_MB = (16, 16 * 1024 * 1024)  # 16 MB .. 16 TB
MIN_FREE_MB = (
    64,
    16 * 1024 * 1024,
)  # some room always: a full disk stops the Pi's logs and services
# Printable ASCII without space, as typed into the Netatmo app; bounded for the camera's client.
FTP_PASSWORD = re.compile(r"\A(?:[!-~]{8,64})\Z")
# TCP/UDP ports at or above 1024 the Pi itself uses (the passive range must stay clear of them);
# the WireGuard port is added from the inventory.
PI_HIGH_PORTS = {4500: "Netatmo's VPN (NAT-T)"}


@dataclass(frozen=True)
class Problem:
    host: str
    path: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.host}: {prefix}{where}{self.message}"


# ---------------------------------------------------------------------------
# The declarative part: keys, types, required-ness, choices, defaults.
# `to_argument_spec()` turns it into Ansible's argument_spec form for the test
# that compares it with the roles' meta/argument_specs.yml.


@dataclass
class Field:
    type: str  # "str" | "int" | "bool" | "dict" | "list" | "raw"
    required: bool = False
    choices: tuple[Any, ...] | None = None
    default: Any = None
    options: dict[str, Field] | None = None  # for dict, or list elements of dict
    elements: str | None = None  # list element type
    nullable: bool = False
    description: str = ""
    check: Callable[[Any], str | None] | None = field(default=None, repr=False)


def _f(type_: str, description: str, **kw: Any) -> Field:
    return Field(type=type_, description=description, **kw)


SCHEMA: dict[str, Field] = {
    "wifi": _f(
        "dict",
        "The cameras' Wi-Fi access point.",
        required=True,
        options={
            "ssid": _f("str", "Network name, 1-32 bytes.", required=True),
            "passphrase": _f(
                "str", "WPA2 passphrase: 8-63 printable ASCII or 64 hex digits.", required=True
            ),
            "country": _f(
                "str", "ISO 3166-1 alpha-2 country code (regulatory domain).", required=True
            ),
            "channel": _f("int", "Wi-Fi channel, valid for the band.", required=True),
            "band": _f("str", "2.4 or 5 (GHz).", choices=("2.4", "5"), default="2.4"),
            "isolation": _f(
                "str", "How cameras are kept apart.", choices=ISOLATION, default="ap_isolate"
            ),
            "wpa3": _f(
                "bool",
                "Also offer WPA3-SAE (off: PMF trouble on the Pi's onboard chip).",
                default=False,
            ),
        },
    ),
    "camera_network": _f(
        "dict",
        "The Pi's side of the camera network.",
        required=True,
        options={
            "interface": _f("str", "The Wi-Fi interface cameras join.", required=True),
            "address": _f("str", "The Pi's address with prefix, e.g. 10.42.0.1/24.", required=True),
            "dhcp_range": _f(
                "list",
                "First and last address handed to unknown clients.",
                required=True,
                elements="str",
            ),
        },
    ),
    "uplink_interface": _f("str", "The Pi's interface to the home network.", required=True),
    "ntp_upstream": _f("list", "NTP servers the Pi syncs from.", required=True, elements="str"),
    "web": _f(
        "dict",
        "The HTTPS proxy and dashboard.",
        required=True,
        options={
            "server_name": _f("str", "Host name of the dashboard.", required=True),
            "users": _f(
                "list",
                "Web logins; each with password or password_hash.",
                required=True,
                elements="dict",
                options={
                    "name": _f("str", "Login name.", required=True),
                    "password": _f("str", "Password (hashed before it reaches the Pi)."),
                    "password_hash": _f("str", "bcrypt or sha512-crypt hash."),
                },
            ),
            "tls_cert": _f(
                "str", "Controller path of a certificate; null: self-signed.", nullable=True
            ),
            "tls_key": _f("str", "Controller path of its key; null: self-signed.", nullable=True),
            "listen": _f(
                "list",
                "More addresses nginx listens on (the uplink's and loopback always).",
                elements="str",
            ),
        },
    ),
    "firewall": _f(
        "dict",
        "The nftables firewall (optional).",
        options={
            "admin_sources": _f(
                "list",
                "CIDRs allowed SSH and direct camera access (empty: SSH from the LAN, no direct).",
                elements="str",
            ),
            "cloud_domains": _f(
                "list",
                "Netatmo domains a cloud: allow camera may reach on TCP 443 (resolved by dnsmasq).",
                elements="str",
                default=["netatmo.net", "netatmo.com"],
            ),
        },
    ),
    "cameras": _f(
        "list",
        "The cameras this Pi serves.",
        required=True,
        elements="dict",
        options={
            "name": _f(
                "str", "[a-z0-9-]{1,32}, unique; used in URLs and file names.", required=True
            ),
            "mac": _f("str", "The camera's MAC address (70:ee:50:...).", required=True),
            "ip": _f("str", "Reserved address: in the subnet, outside dhcp_range.", required=True),
            "secure_id": _f("str", "The camera's secret local API path segment.", required=True),
            "cloud": _f(
                "str", "Whether the camera may reach Netatmo's VPN.", choices=CLOUD, default="block"
            ),
            "vlan_id": _f("int", "VLAN for isolation: vlan_per_camera (default: derived)."),
            "passphrase": _f("str", "Per-camera WPA passphrase (vlan_per_camera only)."),
            "port": _f(
                "int",
                "The camera's HTTP port for `check --direct` (tests and benchmarks; cameras use 80).",
            ),
            "recordings": _f(
                "bool",
                "Whether the camera exports recordings to the Pi's FTP server (false: no FTP at all).",
                default=False,
            ),
            "ftp_password": _f(
                "str", "The camera's FTP password (required with recordings: true; a secret)."
            ),
        },
    ),
    "recordings": _f(
        "dict",
        "Recordings at home: the Pi as the cameras' FTP export target; off when absent.",
        options={
            "path": _f(
                "str",
                "Absolute path on the Pi; one folder per camera below it.",
                default=RECORDINGS_PATH,
            ),
            "require_mount": _f(
                "bool", "Install fails unless path is a mount point (a USB disk).", default=False
            ),
            "retention_days": _f("int", "Files older than this are deleted.", default=30),
            "camera_quota_mb": _f(
                "int", "Per camera; its oldest files go first when it is over.", default=4096
            ),
            "min_free_mb": _f(
                "int", "Keep at least this free on the file system (oldest first).", default=1024
            ),
            "ftp": _f(
                "dict",
                "The FTP server the cameras upload to.",
                options={
                    "mode": _f(
                        "str",
                        "passive or active (the camera's FTP client mode is not known).",
                        choices=FTP_MODES,
                        default="passive",
                    ),
                    "passive_ports": _f(
                        "list",
                        "[first, last]: the fixed passive port range, opened for recording cameras only.",
                        elements="int",
                        default=list(PASSIVE_PORTS),
                    ),
                },
            ),
        },
    ),
    "remote_access": _f(
        "dict",
        "Ways in from outside the home; off when absent.",
        options={
            "wireguard": _f(
                "dict",
                "A WireGuard endpoint on the Pi whose peers reach the dashboard only.",
                options={
                    "listen_port": _f("int", "UDP port the Pi listens on.", default=51820),
                    "subnet": _f(
                        "str",
                        "The tunnel's IPv4 subnet, e.g. 10.44.0.0/24 (the Pi takes the first address).",
                        required=True,
                    ),
                    "endpoint": _f(
                        "str",
                        "HOST:PORT the peers dial: the home router's public name or address.",
                        required=True,
                    ),
                    "peers": _f(
                        "list",
                        "Phones and laptops allowed in (written by `remote add`).",
                        elements="dict",
                        options={
                            "name": _f("str", "[a-z0-9-]{1,32}, unique.", required=True),
                            "public_key": _f(
                                "str", "The peer's WireGuard public key (base64).", required=True
                            ),
                            "address": _f(
                                "str", "The peer's tunnel address, in the subnet.", required=True
                            ),
                        },
                    ),
                },
            ),
        },
    ),
}

_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "bool": "true or false",
    "dict": "a mapping",
    "list": "a list",
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    return True


def _coerce(kind: str, value: Any) -> Any:
    # YAML gives `band: 2.4` as a float and `channel: "6"` as a string; accept the obvious.
    # Only plain ASCII digits: the template writes the string itself, so "6\n" or "٦" is no 6.
    if kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "int" and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


# Characters no inventory string may hold: C0 and C1 controls, DEL, and the Unicode line and
# paragraph separators. Each one splits or ends a line in some config file on the Pi.
_CONTROL_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


def string_problem(value: str) -> str | None:
    """What is wrong with any inventory string, whatever its key; never echoes the value (it
    may be a decrypted secret)."""
    bad = next((c for c in value if unicodedata.category(c) in _CONTROL_CATEGORIES), None)
    if bad is not None:
        hint = (
            " (a vaulted value made with `echo`? use `echo -n` or `printf`)"
            if value.endswith("\n")
            else ""
        )
        return f"contains a control character (U+{ord(bad):04X}){hint}"
    if len(value) > MAX_STRING:
        return f"is {len(value)} characters long; at most {MAX_STRING}"
    return None


def _key(key: Any) -> str:
    """An unknown key as it may appear in a one-line message (quoted when it is odd)."""
    if isinstance(key, str) and key.isidentifier() and len(key) <= 64:
        return key
    return _show(key)


def _strings_problems(host: str, path: str, value: Any, out: list[Problem]) -> bool:
    """Report every string under VALUE (any key, any depth) that string_problem refuses.
    True when VALUE is clean."""
    clean = True
    if isinstance(value, str):
        if msg := string_problem(value):
            out.append(Problem(host, path, msg))
            return False
    elif isinstance(value, dict):
        for key, item in value.items():
            clean &= _strings_problems(host, f"{path}.{_key(key)}", item, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            clean &= _strings_problems(host, f"{path}[{i}]", item, out)
    return clean


# Keys whose values are secrets: a message says what is wrong with them, never what they are.
SECRET_FIELDS = frozenset(
    {"passphrase", "secure_id", "password", "password_hash", "private_key", "ftp_password"}
)


def _what(path: str, value: Any) -> str:
    """VALUE for a message at PATH: shown, unless PATH holds a secret (then only its kind)."""
    if path.rsplit(".", 1)[-1].split("[")[0] in SECRET_FIELDS:
        return "a " + type(value).__name__.replace("str", "string").replace("NoneType", "null")
    return _show(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _walk(host: str, path: str, spec: Field, value: Any, out: list[Problem]) -> Any:
    """Type-check VALUE against SPEC; return the coerced value or None when unusable."""
    if value is None:
        if spec.nullable:
            return None
        out.append(
            Problem(host, path, f"must be {_TYPE_NAMES.get(spec.type, spec.type)}, not null")
        )
        return None
    if isinstance(value, str) and (msg := string_problem(value)):
        out.append(Problem(host, path, msg))
        return None  # unusable: the rules below would only repeat it
    value = _coerce(spec.type, value)
    if not _type_ok(spec.type, value):
        out.append(
            Problem(
                host,
                path,
                f"must be {_TYPE_NAMES.get(spec.type, spec.type)}, not {_what(path, value)}",
            )
        )
        return None
    if spec.choices is not None and value not in spec.choices:
        out.append(
            Problem(
                host,
                path,
                f"{_what(path, value)} is not one of {', '.join(map(str, spec.choices))}",
            )
        )
        return None
    if spec.type == "dict" and spec.options is not None:
        return _walk_dict(host, path, spec.options, value, out)
    if spec.type == "list":
        items = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if spec.elements == "dict":
                if not isinstance(item, dict):
                    out.append(Problem(host, item_path, f"must be a mapping, not {_show(item)}"))
                    items.append(None)
                    continue
                items.append(_walk_dict(host, item_path, spec.options or {}, item, out))
            elif spec.elements:
                items.append(_walk(host, item_path, Field(type=spec.elements), item, out))
            else:
                items.append(item)
        return items
    return value


def _walk_dict(
    host: str, path: str, options: dict[str, Field], value: dict[Any, Any], out: list[Problem]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, spec in options.items():
        sub = f"{path}.{key}" if path else key
        if key not in value:
            if spec.required:
                out.append(Problem(host, sub, "is required"))
            elif spec.default is not None:
                result[key] = spec.default
            continue
        result[key] = _walk(host, sub, spec, value[key], out)
    for key in value:
        if key not in options and path:  # top-level vars may be anything; nested typos are not
            where = f"{path}.{_key(key)}"
            out.append(Problem(host, where, "unknown key (a typo?)", "warning"))
            if _strings_problems(host, where, value[key], out):
                result[key] = value[key]
    return result


# ---------------------------------------------------------------------------
# The semantic part: rules that relate values to each other.


def validate_appliance(
    host: str, variables: dict[str, Any], unresolved: dict[str, str] | None = None
) -> list[Problem]:
    """Every problem with one appliance's merged variables."""
    out: list[Problem] = []
    unresolved = unresolved or {}
    present = dict(variables)
    for key, reason in unresolved.items():
        if key in SCHEMA:
            out.append(Problem(host, key, _unresolved_message(reason)))
            present.pop(key, None)
    missing_ok = {k for k in unresolved if k in SCHEMA}
    options = {k: v for k, v in SCHEMA.items() if k not in missing_ok}
    data = _walk_dict(host, "", options, present, out)

    wifi = data.get("wifi") or {}
    net = data.get("camera_network") or {}
    web = data.get("web") or {}
    cameras = [c for c in (data.get("cameras") or []) if c is not None]
    _check_wifi(host, wifi, out)
    subnet, pi, dhcp = _check_network(host, net, data.get("uplink_interface"), out)
    _check_ntp(host, data.get("ntp_upstream"), out)
    _check_web(host, web, out)
    _check_firewall(host, data.get("firewall") or {}, out)
    _check_cameras(host, data.get("cameras") or [], wifi, subnet, pi, dhcp, out)
    remote = data.get("remote_access") or {}
    _check_wireguard(host, remote.get("wireguard"), subnet, out)
    all_cameras = data.get("cameras") if isinstance(data.get("cameras"), list) else []
    _check_recordings(host, data.get("recordings"), all_cameras, remote.get("wireguard"), out)
    if "cameras" in data and isinstance(data.get("cameras"), list) and not cameras:
        out.append(
            Problem(host, "cameras", "no cameras: the Pi will serve an empty network", "warning")
        )
    return out


def _unresolved_message(reason: str) -> str:
    if "vault" in reason.lower():
        return "cannot decrypt a vault value (give --vault-password-file or set ANSIBLE_VAULT_PASSWORD_FILE)"
    return f"cannot resolve: {reason}"


def passphrase_problem(value: str) -> str | None:
    if len(value) == 64 and HEX.fullmatch(value):
        return None
    if not 8 <= len(value) <= 63:
        return f"must be 8-63 characters (or 64 hex digits), not {len(value)}"
    if not all(0x20 <= ord(c) <= 0x7E for c in value):
        return "must be printable ASCII only"
    return None


def _check_wifi(host: str, wifi: dict[str, Any], out: list[Problem]) -> None:
    ssid = wifi.get("ssid")
    if isinstance(ssid, str) and not 1 <= len(ssid.encode()) <= 32:
        out.append(Problem(host, "wifi.ssid", f"must be 1-32 bytes, not {len(ssid.encode())}"))
    passphrase = wifi.get("passphrase")
    if isinstance(passphrase, str) and (msg := passphrase_problem(passphrase)):
        out.append(Problem(host, "wifi.passphrase", msg))  # never echo the value
    country = wifi.get("country")
    if isinstance(country, str) and country not in ISO_3166_ALPHA2:
        out.append(
            Problem(
                host,
                "wifi.country",
                f"{country!r} is not an ISO 3166-1 alpha-2 code (e.g. DE, FR, GB, US)",
            )
        )
    channel, band = wifi.get("channel"), wifi.get("band") or "2.4"
    if isinstance(channel, int) and band in CHANNELS and channel not in CHANNELS[band]:
        hint = "1-13" if band == "2.4" else "36-48, 52-64, 100-144, 149-165"
        out.append(Problem(host, "wifi.channel", f"{channel} is not a {band} GHz channel ({hint})"))
    elif (
        isinstance(channel, int) and band == "2.4" and country in CHANNELS_1_TO_11 and channel > 11
    ):
        # hostapd would accept the file and only fail on the Pi when the radio refuses it.
        out.append(
            Problem(host, "wifi.channel", f"{channel} is not allowed in {country} (2.4 GHz: 1-11)")
        )


def _check_network(
    host: str, net: dict[str, Any], uplink: Any, out: list[Problem]
) -> tuple[Any, Any, tuple[Any, Any] | None]:
    iface = net.get("interface")
    if isinstance(iface, str) and not INTERFACE.fullmatch(iface):
        out.append(Problem(host, "camera_network.interface", f"{iface!r} is not an interface name"))
    if isinstance(uplink, str):
        if not INTERFACE.fullmatch(uplink):
            out.append(Problem(host, "uplink_interface", f"{uplink!r} is not an interface name"))
        elif uplink == iface:
            out.append(
                Problem(host, "uplink_interface", "must differ from camera_network.interface")
            )
    subnet = pi = None
    address = net.get("address")
    if isinstance(address, str):
        try:
            iface_addr = ipaddress.IPv4Interface(address)
        except ValueError:
            out.append(
                Problem(
                    host,
                    "camera_network.address",
                    f"{address!r} is not an IPv4 address with prefix (10.42.0.1/24)",
                )
            )
        else:
            if "/" not in address:
                out.append(
                    Problem(
                        host,
                        "camera_network.address",
                        f"{address!r} needs a prefix length (e.g. {address}/24)",
                    )
                )
            elif iface_addr.network.prefixlen > 29:
                out.append(
                    Problem(
                        host,
                        "camera_network.address",
                        "the subnet is too small for cameras (at most /29)",
                    )
                )
            elif iface_addr.ip in (
                iface_addr.network.network_address,
                iface_addr.network.broadcast_address,
            ):
                out.append(
                    Problem(
                        host,
                        "camera_network.address",
                        f"{iface_addr.ip} is the subnet's network or broadcast address",
                    )
                )
            else:
                subnet, pi = iface_addr.network, iface_addr.ip
    dhcp = None
    rng = net.get("dhcp_range")
    if isinstance(rng, list):
        if len(rng) != 2:
            out.append(
                Problem(
                    host,
                    "camera_network.dhcp_range",
                    f"must be [first, last], not {len(rng)} items",
                )
            )
        else:
            ends = []
            for i, item in enumerate(rng):
                ip = _ip(host, f"camera_network.dhcp_range[{i}]", item, out)
                if ip is not None and subnet is not None:
                    if ip not in subnet:
                        out.append(
                            Problem(
                                host,
                                f"camera_network.dhcp_range[{i}]",
                                f"{ip} is outside the camera subnet {subnet}",
                            )
                        )
                        ip = None
                    elif ip in (subnet.network_address, subnet.broadcast_address):
                        out.append(
                            Problem(
                                host,
                                f"camera_network.dhcp_range[{i}]",
                                f"{ip} is the subnet's network or broadcast address",
                            )
                        )
                        ip = None
                ends.append(ip)
            first, last = ends
            if first is not None and last is not None:
                if first > last:
                    out.append(
                        Problem(
                            host, "camera_network.dhcp_range", f"first {first} is after last {last}"
                        )
                    )
                elif pi is not None and first <= pi <= last:
                    out.append(
                        Problem(
                            host, "camera_network.dhcp_range", f"contains the Pi's own address {pi}"
                        )
                    )
                else:
                    dhcp = (first, last)
    return subnet, pi, dhcp


def _ip(host: str, path: str, value: Any, out: list[Problem]) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        out.append(Problem(host, path, f"{value!r} is not an IPv4 address"))
        return None


def _check_ntp(host: str, upstream: Any, out: list[Problem]) -> None:
    if not isinstance(upstream, list):
        return
    if not upstream:
        out.append(Problem(host, "ntp_upstream", "needs at least one server"))
    for i, server in enumerate(upstream):
        if isinstance(server, str) and not (HOSTNAME.fullmatch(server) or _is_ip(server)):
            out.append(
                Problem(host, f"ntp_upstream[{i}]", f"{server!r} is not a host name or address")
            )


def _is_ip(text: str) -> bool:
    # No IPv6 scope (`fe80::1%eth0`): Python reads anything after `%` as the scope, spaces too.
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ip_address(text: str) -> bool:
    if "%" in text:  # an IPv6 scope: Python takes anything after `%`, spaces too
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_web(host: str, web: dict[str, Any], out: list[Problem]) -> None:
    server_name = web.get("server_name")
    if isinstance(server_name, str) and not HOSTNAME.fullmatch(server_name):
        out.append(Problem(host, "web.server_name", f"{server_name!r} is not a host name"))
    users = web.get("users")
    if isinstance(users, list):
        if not users:
            out.append(Problem(host, "web.users", "needs at least one user"))
        seen: set[str] = set()
        for i, user in enumerate(users):
            if not isinstance(user, dict):
                continue
            name = user.get("name")
            if isinstance(name, str):
                if not WEB_USER.fullmatch(name):
                    out.append(
                        Problem(
                            host,
                            f"web.users[{i}].name",
                            f"{name!r} may use only letters, digits and ._@-",
                        )
                    )
                elif name in seen:
                    out.append(Problem(host, f"web.users[{i}].name", f"{name!r} appears twice"))
                seen.add(name)
            password, hashed = user.get("password"), user.get("password_hash")
            if password is None and hashed is None:
                out.append(Problem(host, f"web.users[{i}]", "needs a password or a password_hash"))
            elif password is not None and hashed is not None:
                out.append(
                    Problem(
                        host, f"web.users[{i}]", "give either password or password_hash, not both"
                    )
                )
            elif isinstance(password, str) and not password:
                out.append(Problem(host, f"web.users[{i}].password", "must not be empty"))
            elif isinstance(password, str) and len(password.encode()) > BCRYPT_MAX_BYTES:
                # bcrypt reads 72 bytes; libxcrypt refuses more (hashing it failed the install).
                out.append(
                    Problem(
                        host,
                        f"web.users[{i}].password",
                        f"must be at most {BCRYPT_MAX_BYTES} bytes (bcrypt's limit)",
                    )
                )
            elif isinstance(hashed, str) and not PASSWORD_HASH.fullmatch(hashed):
                out.append(
                    Problem(
                        host,
                        f"web.users[{i}].password_hash",
                        "is not a bcrypt ($2y$) or sha512-crypt ($6$) hash",
                    )
                )
    listen = web.get("listen")
    if isinstance(listen, list):
        for i, address in enumerate(listen):
            if not isinstance(address, str) or not _is_ip_address(address):
                out.append(Problem(host, f"web.listen[{i}]", f"{address!r} is not an IP address"))
    cert, key = web.get("tls_cert"), web.get("tls_key")
    if (cert is None) != (key is None):
        which = "tls_key" if cert is not None else "tls_cert"
        out.append(
            Problem(
                host,
                f"web.{which}",
                "tls_cert and tls_key go together: give both, or neither for a self-signed certificate",
            )
        )


def _check_firewall(host: str, firewall: dict[str, Any], out: list[Problem]) -> None:
    sources = firewall.get("admin_sources")
    if isinstance(sources, list):
        for i, source in enumerate(sources):
            if not isinstance(source, str):
                continue
            try:
                if "%" in source:  # an IPv6 scope: Python takes anything after `%`, spaces too
                    raise ValueError("no IPv6 scope (%) here")
                ipaddress.ip_network(source, strict=True)
            except ValueError as err:
                out.append(
                    Problem(
                        host,
                        f"firewall.admin_sources[{i}]",
                        f"{source!r} is not an address or network ({err})",
                    )
                )
    domains = firewall.get("cloud_domains")
    if isinstance(domains, list):
        if not domains:
            out.append(Problem(host, "firewall.cloud_domains", "needs at least one domain"))
        for i, domain in enumerate(domains):
            if isinstance(domain, str) and not (
                HOSTNAME.fullmatch(domain) and "." in domain.strip(".") and domain[-1] != "."
            ):
                out.append(
                    Problem(host, f"firewall.cloud_domains[{i}]", f"{domain!r} is not a domain")
                )


def _check_cameras(
    host: str,
    cameras: list[Any],
    wifi: dict[str, Any],
    subnet: Any,
    pi: Any,
    dhcp: tuple[Any, Any] | None,
    out: list[Problem],
) -> None:
    names: dict[str, int] = {}
    macs: dict[str, int] = {}
    ips: dict[Any, int] = {}
    vlans: dict[int, int] = {}
    for i, cam in enumerate(cameras):
        if not isinstance(cam, dict):
            continue
        at = f"cameras[{i}]"
        name = cam.get("name")
        if isinstance(name, str):
            if not CAMERA_NAME.fullmatch(name):
                out.append(
                    Problem(
                        host,
                        f"{at}.name",
                        f"{name!r} must be 1-32 of a-z, 0-9 and '-' (it is used in URLs)",
                    )
                )
            elif name in names:
                out.append(
                    Problem(host, f"{at}.name", f"{name!r} is already cameras[{names[name]}]")
                )
            else:
                names[name] = i
        mac = cam.get("mac")
        if isinstance(mac, str):
            if not MAC.fullmatch(mac):
                out.append(Problem(host, f"{at}.mac", f"{mac!r} is not a MAC address"))
            else:
                norm = mac.lower()
                if norm in macs:
                    out.append(
                        Problem(host, f"{at}.mac", f"{mac} is already cameras[{macs[norm]}]")
                    )
                else:
                    macs[norm] = i
                if not norm.startswith(NETATMO_OUI):
                    out.append(
                        Problem(
                            host,
                            f"{at}.mac",
                            f"{mac} is not a Netatmo address ({NETATMO_OUI}:..)",
                            "warning",
                        )
                    )
        ip = _ip(host, f"{at}.ip", cam.get("ip"), out)
        if ip is not None:
            if subnet is not None and ip not in subnet:
                out.append(Problem(host, f"{at}.ip", f"{ip} is outside the camera subnet {subnet}"))
            elif subnet is not None and ip in (subnet.network_address, subnet.broadcast_address):
                out.append(
                    Problem(host, f"{at}.ip", f"{ip} is the subnet's network or broadcast address")
                )
            elif ip == pi:
                out.append(Problem(host, f"{at}.ip", f"{ip} is the Pi's own address"))
            elif dhcp is not None and dhcp[0] <= ip <= dhcp[1]:
                out.append(
                    Problem(
                        host,
                        f"{at}.ip",
                        f"{ip} is inside dhcp_range {dhcp[0]}-{dhcp[1]}; reservations go outside it",
                    )
                )
            elif ip in ips:
                out.append(Problem(host, f"{at}.ip", f"{ip} is already cameras[{ips[ip]}]"))
            else:
                ips[ip] = i
        secure_id = cam.get("secure_id")
        if isinstance(secure_id, str):
            if not secure_id:
                out.append(Problem(host, f"{at}.secure_id", "must not be empty"))
            elif not HEX.fullmatch(secure_id):
                out.append(
                    Problem(host, f"{at}.secure_id", "must be hexadecimal (0-9, a-f)")
                )  # never echo it
            elif len(secure_id) > MAX_SECURE_ID:
                out.append(
                    Problem(
                        host,
                        f"{at}.secure_id",
                        f"is {len(secure_id)} characters; at most {MAX_SECURE_ID}",
                    )
                )
            elif len(secure_id) != 32:
                out.append(
                    Problem(
                        host,
                        f"{at}.secure_id",
                        f"is {len(secure_id)} characters; Netatmo's are usually 32",
                        "warning",
                    )
                )
        vlan = cam.get("vlan_id")
        if isinstance(vlan, int) and not isinstance(vlan, bool):
            if not 1 <= vlan <= 4094:
                out.append(Problem(host, f"{at}.vlan_id", f"{vlan} is not a VLAN id (1-4094)"))
            elif vlan in vlans:
                out.append(
                    Problem(host, f"{at}.vlan_id", f"{vlan} is already cameras[{vlans[vlan]}]")
                )
            else:
                vlans[vlan] = i
        port = cam.get("port")
        if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
            out.append(Problem(host, f"{at}.port", f"{port} is not a TCP port (1-65535)"))
        own = cam.get("passphrase")
        if isinstance(own, str):
            if wifi.get("isolation") != "vlan_per_camera":
                out.append(
                    Problem(
                        host,
                        f"{at}.passphrase",
                        "per-camera passphrases need wifi.isolation: vlan_per_camera",
                        "warning",
                    )
                )
            if msg := passphrase_problem(own):
                out.append(Problem(host, f"{at}.passphrase", msg))


def _check_wireguard(host: str, wg: Any, camera_subnet: Any, out: list[Problem]) -> None:
    if not isinstance(wg, dict):
        return
    at = "remote_access.wireguard"
    port = wg.get("listen_port")
    if isinstance(port, int) and not 1 <= port <= 65535:
        out.append(Problem(host, f"{at}.listen_port", f"{port} is not a UDP port (1-65535)"))
    tunnel = pi = None
    subnet = wg.get("subnet")
    if isinstance(subnet, str):
        try:
            tunnel = ipaddress.IPv4Network(subnet)
        except ValueError:
            out.append(
                Problem(host, f"{at}.subnet", f"{subnet!r} is not an IPv4 subnet (10.44.0.0/24)")
            )
        else:
            if "/" not in subnet or tunnel.prefixlen > 30:
                out.append(Problem(host, f"{at}.subnet", "needs a prefix of at most /30"))
                tunnel = None
            elif camera_subnet is not None and tunnel.overlaps(camera_subnet):
                out.append(
                    Problem(host, f"{at}.subnet", f"overlaps the camera subnet {camera_subnet}")
                )
                tunnel = None
            else:
                pi = next(tunnel.hosts())
    endpoint = wg.get("endpoint")
    if isinstance(endpoint, str) and (msg := endpoint_problem(endpoint)):
        out.append(Problem(host, f"{at}.endpoint", msg))
    names: dict[str, int] = {}
    keys: dict[str, int] = {}
    addresses: dict[Any, int] = {}
    for i, peer in enumerate(wg.get("peers") or []):
        if not isinstance(peer, dict):
            continue
        where = f"{at}.peers[{i}]"
        name = peer.get("name")
        if isinstance(name, str):
            if not PEER_NAME.fullmatch(name):
                out.append(
                    Problem(host, f"{where}.name", f"{name!r} must be 1-32 of a-z, 0-9 and '-'")
                )
            elif name in names:
                out.append(
                    Problem(host, f"{where}.name", f"{name!r} is already peers[{names[name]}]")
                )
            else:
                names[name] = i
        key = peer.get("public_key")
        if isinstance(key, str):
            if not WIREGUARD_KEY.fullmatch(key):
                out.append(
                    Problem(
                        host, f"{where}.public_key", "is not a WireGuard key (44 base64 characters)"
                    )
                )
            elif key in keys:
                out.append(Problem(host, f"{where}.public_key", f"is already peers[{keys[key]}]'s"))
            else:
                keys[key] = i
        ip = _ip(host, f"{where}.address", peer.get("address"), out)
        if ip is None or tunnel is None:
            continue
        if ip not in tunnel or ip in (tunnel.network_address, tunnel.broadcast_address):
            out.append(Problem(host, f"{where}.address", f"{ip} is not a host of {tunnel}"))
        elif ip == pi:
            out.append(Problem(host, f"{where}.address", f"{ip} is the Pi's own tunnel address"))
        elif ip in addresses:
            out.append(
                Problem(host, f"{where}.address", f"{ip} is already peers[{addresses[ip]}]'s")
            )
        else:
            addresses[ip] = i


def recordings_path_problem(path: str) -> str | None:
    """Why PATH cannot hold the recordings, or None."""
    if not path.startswith("/"):
        return f"{path!r} is not an absolute path"
    clean = path.rstrip("/")
    if not clean:
        return "'/' is the root folder; give a folder of its own (e.g. /srv/presence-recordings)"
    if not RECORDINGS_PATH_CHARS.fullmatch(clean):
        return f"{path!r} must be letters, digits and ._- between single slashes (no spaces)"
    parts = clean.split("/")[1:]
    if any(part in (".", "..") for part in parts):
        return f"{path!r} has a . or .. component"
    for system in SYSTEM_DIRS:
        if clean == system or clean.startswith(system + "/"):
            return f"{path!r} is inside the system folder {system}"
    if len(parts) < 2 and parts[0] not in ("srv", "mnt", "media", "data"):
        # Any other top-level folder is the system's, or too broad (/home, /var).
        return f"{path!r} is too close to / (use e.g. {RECORDINGS_PATH} or /mnt/usb/recordings)"
    return None


def _check_recordings(
    host: str, rec: Any, cameras: list[dict[str, Any]], wireguard: Any, out: list[Problem]
) -> None:
    recording = [
        (i, cam)
        for i, cam in enumerate(cameras)
        if isinstance(cam, dict) and cam.get("recordings") is True
    ]
    passwords: dict[str, int] = {}
    for i, cam in enumerate(cameras):
        if not isinstance(cam, dict):
            continue
        password = cam.get("ftp_password")
        if isinstance(password, str) and password:
            if password in passwords:
                # One camera's password would open another's folder.
                out.append(
                    Problem(
                        host,
                        f"cameras[{i}].ftp_password",
                        f"is the same as cameras[{passwords[password]}].ftp_password;"
                        " give each camera its own",
                    )
                )
            passwords.setdefault(password, i)
        if cam.get("recordings") is True:
            if rec is None:
                out.append(
                    Problem(
                        host,
                        f"cameras[{i}].recordings",
                        "true needs the appliance's `recordings` settings (path, retention...)",
                    )
                )
            if "ftp_password" not in cam:
                out.append(
                    Problem(host, f"cameras[{i}].ftp_password", "is required with recordings: true")
                )
        if isinstance(password, str) and not FTP_PASSWORD.fullmatch(password):
            # Never echo it: say only what kind of value is wrong.
            if all("!" <= c <= "~" for c in password):
                msg = f"must be 8-64 characters, not {len(password)}"
            else:
                msg = "must be printable ASCII without spaces (it is typed into the Netatmo app)"
            out.append(Problem(host, f"cameras[{i}].ftp_password", msg))
    if not isinstance(rec, dict):
        return
    if not recording:
        out.append(
            Problem(
                host,
                "recordings",
                "no camera has recordings: true: the FTP server stays off",
                "warning",
            )
        )
    path = rec.get("path")
    if isinstance(path, str) and (msg := recordings_path_problem(path)):
        out.append(Problem(host, "recordings.path", msg))
    for key, (low, high), unit in (
        ("retention_days", RETENTION_DAYS, "days"),
        ("camera_quota_mb", CAMERA_QUOTA_MB, "MB"),
        ("min_free_mb", MIN_FREE_MB, "MB"),
    ):
        value = rec.get(key)
        if isinstance(value, int) and not low <= value <= high:
            out.append(
                Problem(host, f"recordings.{key}", f"{value} is outside {low}-{high} ({unit})")
            )
    ftp = rec.get("ftp")
    if not isinstance(ftp, dict):
        return
    ports = ftp.get("passive_ports")
    if not isinstance(ports, list) or any(p is None for p in ports):
        return
    at = "recordings.ftp.passive_ports"
    if len(ports) != 2:
        out.append(Problem(host, at, f"must be [first, last], not {len(ports)} items"))
        return
    first, last = ports
    if not (1024 <= first <= 65535 and 1024 <= last <= 65535):
        out.append(Problem(host, at, f"[{first}, {last}] must lie inside 1024-65535"))
        return
    if first > last:
        out.append(Problem(host, at, f"first {first} is after last {last}"))
        return
    if last - first + 1 < len(recording):
        out.append(
            Problem(
                host,
                at,
                f"{last - first + 1} ports for {len(recording)} recording cameras;"
                " give at least one per camera",
            )
        )
    taken = dict(PI_HIGH_PORTS)
    if isinstance(wireguard, dict):
        wg_port = wireguard.get("listen_port")
        taken[wg_port if isinstance(wg_port, int) else 51820] = "remote_access.wireguard"
    for port, owner in sorted(taken.items()):
        if first <= port <= last:
            out.append(Problem(host, at, f"[{first}, {last}] contains port {port} ({owner})"))


def endpoint_problem(endpoint: str) -> str | None:
    """Why ENDPOINT is not HOST:PORT (a host name, an IPv4 address or [IPv6]), or None."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return f"{endpoint!r} is not HOST:PORT (e.g. home.example.net:51820)"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            if "%" in host:  # a scope: Python takes anything after `%`, spaces too
                raise ValueError(host)
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{endpoint!r}: {host!r} is not an IPv6 address"
        return None
    if not (HOSTNAME.fullmatch(host) or _is_ip(host)) or ":" in host:
        return f"{endpoint!r}: {host!r} is not a host name or address"
    return None


def validate_across(appliances: Iterable[tuple[str, dict[str, Any]]]) -> list[Problem]:
    """Camera names, MACs and IPs are unique across all the Pis of one inventory."""
    out: list[Problem] = []
    owners: dict[tuple[str, str], tuple[str, int]] = {}
    for host, variables in appliances:
        cameras = variables.get("cameras")
        if not isinstance(cameras, list):
            continue
        for i, cam in enumerate(cameras):
            if not isinstance(cam, dict):
                continue
            for key in ("name", "mac", "ip"):
                value = cam.get(key)
                if not isinstance(value, str):
                    continue
                ident = (key, value.lower())
                if ident in owners and owners[ident][0] != host:
                    other, j = owners[ident]
                    out.append(
                        Problem(
                            host,
                            f"cameras[{i}].{key}",
                            f"{value} is also cameras[{j}] of appliance {other}",
                        )
                    )
                else:
                    owners.setdefault(ident, (host, i))
    return out


def validate(inventory: Any) -> list[Problem]:
    """Every problem in an inventory (appliance.inventory.Inventory), errors and warnings."""
    if not inventory.appliances:
        return [Problem(str(inventory.path), "appliances", "no hosts in group 'appliances'")]
    out: list[Problem] = []
    for appliance in inventory.appliances:
        out += validate_appliance(appliance.name, appliance.vars, appliance.unresolved)
    out += validate_across((a.name, a.vars) for a in inventory.appliances)
    return out


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def to_argument_spec(spec: dict[str, Field] | None = None) -> dict[str, Any]:
    """The schema in Ansible's argument_spec form (type, required, choices, elements, options)."""
    result: dict[str, Any] = {}
    for key, f in (spec if spec is not None else SCHEMA).items():
        entry: dict[str, Any] = {"type": f.type}
        if f.required:
            entry["required"] = True
        if f.choices:
            entry["choices"] = list(f.choices)
        if f.elements:
            entry["elements"] = f.elements
        if f.options:
            entry["options"] = to_argument_spec(f.options)
        result[key] = entry
    return result
