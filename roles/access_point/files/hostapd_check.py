#!/usr/bin/python3
"""Check a hostapd file before it replaces the live one (installed as presence-hostapd-check).

hostapd has no configuration-check flag, but it parses its whole configuration before it
touches the driver. So `conf` and `vlan` run the real hostapd on a private copy whose
`interface=` names an interface that does not exist: a file hostapd accepts gets as far as
driver initialisation, which then fails on that interface (on a Pi) or on the missing
nl80211 (in a container), and no radio is ever touched. A file hostapd rejects stops at its
`Line N: ...` messages. `wpa_psk` files are read by hostapd only once the radio is up, so
their lines are checked here against hostapd's own rules (ap_config.c,
hostapd_config_read_wpa_psk). Exit 0: accepted; 1: rejected, with one line saying why
first; 2: usage. Passphrases are never printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

# An interface name no system has (at most 15 characters): hostapd's driver init fails on it.
PROBE_INTERFACE = "presence-chk0"
PARSE_ERROR = re.compile(r"^Line \d+: |\d+ errors? found in configuration file| at line \d+ in '")
# What hostapd prints once the file is parsed and it turns to the driver: in a container
# (no nl80211) "Failed to initialize driver 'nl80211'"; on a Pi, the probe interface makes
# "nl80211 driver initialization failed." (hostapd/main.c, hostapd_driver_init).
DRIVER_REACHED = re.compile(r"Failed to initialize driver|driver initialization failed")
SECRET_KEYS = ("wpa_passphrase", "wpa_psk", "sae_password")
MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
HEX64 = re.compile(r"^[0-9A-Fa-f]{64}$")
TIMEOUT = 20


def secrets_in(text: str) -> list[str]:
    """The passphrases and PSKs a hostapd.conf holds (masked in anything printed)."""
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SECRET_KEYS and value:
            found.append(value)
    return sorted(found, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def probe_copy(text: str) -> str:
    """TEXT with the probe interface and no control socket; line numbers unchanged."""
    lines = []
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if key == "interface":
            line = f"interface={PROBE_INTERFACE}"
        elif key in ("ctrl_interface", "ctrl_interface_group", "bridge"):
            line = "# (not needed for the check)"
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_hostapd(text: str, label: str, secrets: list[str]) -> tuple[bool, str]:
    """Run the real hostapd on TEXT (a private copy); (accepted, one-line reason + details)."""
    with tempfile.TemporaryDirectory(prefix="presence-hostapd-check-") as tmp:
        path = os.path.join(tmp, "hostapd.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(probe_copy(text))
        try:
            result = subprocess.run(
                ["hostapd", path],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            output = result.stdout + result.stderr
        except subprocess.TimeoutExpired:
            return False, f"hostapd did not finish checking {label} within {TIMEOUT} s"
        except FileNotFoundError:
            return False, "hostapd is not installed"
    output = mask(output.replace(path, label), secrets)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if PARSE_ERROR.search(line)]
    if errors:
        count = next((e for e in errors if "found in configuration file" in e), "")
        first = next((e for e in errors if e != count), count)
        summary = f"hostapd rejects {label}: {first}"
        if count and count != first:
            summary += f" ({count.split(' in configuration file')[0]})"
        return False, summary + "\n" + "\n".join(lines)
    if any(DRIVER_REACHED.search(line) for line in lines):
        return True, f"hostapd accepts {label} (checked without touching the radio)"
    return False, f"hostapd gave an unexpected answer for {label}: {lines[0] if lines else ''}"


def check_conf(path: str) -> tuple[bool, str]:
    text = _read(path)
    return run_hostapd(text, "hostapd.conf", secrets_in(text))


def check_vlan(path: str) -> tuple[bool, str]:
    """The VLAN file, read by hostapd's parser through a minimal configuration naming it."""
    conf = (
        f"interface={PROBE_INTERFACE}\ndriver=nl80211\nssid=presence-check\nhw_mode=g\n"
        f"channel=6\ndynamic_vlan=1\nvlan_file={os.path.abspath(path)}\n"
    )
    ok, message = run_hostapd(conf, "hostapd.conf", [])
    return ok, message.replace("hostapd.conf", "the VLAN file", 1)


def check_wpa_psk(path: str) -> tuple[bool, str]:
    """hostapd's wpa_psk_file rules: [keyid=..] [vlanid=N] [wps=0|1] MAC PASSPHRASE-or-PSK."""
    for number, raw in enumerate(_read(path).split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        rest = line
        while True:
            token, _, after = rest.partition(" ")
            key = token.partition("=")[0]
            if "=" not in token:
                break
            if key not in ("keyid", "vlanid", "wps"):
                return False, f"wpa_psk file line {number}: unrecognised {key!r}"
            if key == "vlanid" and not token[len("vlanid=") :].isdigit():
                return False, f"wpa_psk file line {number}: vlanid must be a number"
            rest = after
        mac, sep, psk = rest[:17], rest[17:18], rest[18:]
        if not MAC.match(mac):
            return False, f"wpa_psk file line {number}: invalid MAC address"
        if sep not in (" ", "\t"):
            return False, f"wpa_psk file line {number}: no passphrase after the MAC address"
        if not (HEX64.match(psk) or 8 <= len(psk) <= 63):
            return False, (
                f"wpa_psk file line {number}: the passphrase must be 8-63 characters "
                "or 64 hex digits"
            )
    return True, "wpa_psk file accepted"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


CHECKS = {"conf": check_conf, "vlan": check_vlan, "wpa_psk": check_wpa_psk}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} conf|vlan|wpa_psk FILE", file=sys.stderr)
        return 2
    try:
        ok, message = CHECKS[argv[1]](argv[2])
    except OSError as err:
        ok, message = False, f"cannot read {argv[2]}: {err.strerror}"
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
