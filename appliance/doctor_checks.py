"""`doctor`'s checks: plain functions from the facts gathered on a Pi to ok/warn/fail lines.

Each function takes the probe's sections (appliance.doctor_ssh.Section by name) and the
appliance's inventory variables and returns Check values; nothing here prints or connects.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.doctor_ssh import Section
from appliance.leases import NETATMO_OUI, parse_leases

OK, WARN, FAIL = "ok", "warn", "fail"
SERVICES = ("hostapd", "dnsmasq", "chrony", "nginx")
SUPPORTED_RELEASES = ("bookworm", "trixie")
PI_ARCHES = ("aarch64", "armv7l")
CERT_WARN_DAYS = 30
OFFSET_WARN_SECONDS = 0.5
DISK_FAIL_FREE = (0.05, 50 * 1024)  # fraction, KiB: below either -> fail
DISK_WARN_FREE = (0.15, 200 * 1024)
INODE_FAIL_FREE = 0.05


@dataclass(frozen=True)
class Check:
    name: str  # stable identifier: "ssh", "service:nginx", "camera:front", ...
    status: str  # ok | warn | fail
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix}


Sections = dict[str, Section]


def _first_line(text: str, default: str = "") -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), default)


def _sec(sections: Sections, name: str) -> Section:
    return sections.get(name) or Section("(not gathered)", 127)


# ---------------------------------------------------------------------------
# Access, OS


def check_sudo(sections: Sections, user: str) -> Check:
    sec = _sec(sections, "sudo")
    if sec.rc == 0:
        how = (
            "logged in as root" if sec.text == "root" else f"sudo works for {user} without a prompt"
        )
        return Check("sudo", OK, how)
    return Check(
        "sudo",
        FAIL,
        f"sudo -n fails for {user}: {_first_line(sec.text, 'no reason given')}",
        f"on the Pi: echo '{user} ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/010_{user}",
    )


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def check_os(sections: Sections, lab: bool) -> Check:
    release = parse_os_release(_sec(sections, "os").text)
    codename = release.get("VERSION_CODENAME", "")
    pretty = release.get("PRETTY_NAME", codename or "unknown")
    arch = _first_line(_sec(sections, "arch").text, "?")
    model_sec = _sec(sections, "model")
    model = _first_line(model_sec.text) if model_sec.rc == 0 else ""
    virt = _first_line(_sec(sections, "virt").text, "none")
    what = (
        f"{pretty}, {arch}"
        + (f", {model}" if model else "")
        + (f", {virt}" if virt != "none" else "")
    )
    if codename not in SUPPORTED_RELEASES:
        return Check(
            "os",
            FAIL,
            f"{what}: release {codename or '?'} is not supported",
            "install Raspberry Pi OS (Debian) bookworm or trixie",
        )
    if not lab and (arch not in PI_ARCHES or not model.startswith("Raspberry Pi")):
        return Check(
            "os",
            WARN,
            f"{what}: not a Raspberry Pi 3/4/5/Zero 2 W",
            "other machines may work but are not tested",
        )
    return Check("os", OK, what)


# ---------------------------------------------------------------------------
# Services and their configuration


def parse_services(text: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for line in text.splitlines():
        name, _, state = line.strip().partition(" ")
        if name:
            states[name] = state.strip() or "unknown"
    return states


def our_services(variables: dict[str, Any], firewall: bool = False) -> list[str]:
    """The services the roles run on this Pi (the firewall's once the role ships, WireGuard
    only when remote access is on, vsftpd only when a camera exports recordings)."""
    services = list(SERVICES)
    if firewall:
        services += ["presence-firewall", "ulogd2"]
    remote = variables.get("remote_access")
    if isinstance(remote, dict) and remote.get("wireguard"):
        services.append(f"wg-quick@{variables.get('wireguard_interface') or 'wg0'}")
    cameras = variables.get("cameras")
    if isinstance(variables.get("recordings"), dict) and any(
        isinstance(c, dict) and c.get("recordings") is True
        for c in (cameras if isinstance(cameras, list) else [])
    ):
        services.append("vsftpd")
    return services


def check_services(
    sections: Sections, variables: dict[str, Any], firewall: bool = False
) -> list[Check]:
    states = parse_services(_sec(sections, "services").text)
    checks = []
    for name in our_services(variables, firewall):
        state = states.get(name, "unknown")
        if state == "active":
            checks.append(Check(f"service:{name}", OK, "active"))
        elif name == "presence-firewall":
            # hostapd and dnsmasq require it: a restart would restart them too.
            checks.append(
                Check(
                    f"service:{name}",
                    FAIL,
                    state,
                    "journalctl -u presence-firewall -b; sudo systemctl start presence-firewall",
                )
            )
        else:
            checks.append(
                Check(
                    f"service:{name}",
                    FAIL,
                    f"{state}",
                    f"journalctl -u {name} -b; sudo systemctl restart {name} "
                    "(or run install again)",
                )
            )
    return checks


# Lines the config checkers print on success that are not problems.
_CHECKER_OK = re.compile(r"syntax check OK|^$", re.I)
_HOSTAPD_PARSE_ERROR = re.compile(r"^Line \d+:|errors found in configuration file")


def check_configs(sections: Sections) -> list[Check]:
    checks = []
    for name, tool in (
        ("nginx", "nginx -t"),
        ("dnsmasq", "dnsmasq --test"),
        ("chrony", "chronyd -p"),
    ):
        sec = _sec(sections, f"config:{name}")
        if sec.rc == 0:
            checks.append(Check(f"config:{name}", OK, f"{tool} accepts it"))
        else:
            problem = next(
                (ln.strip() for ln in sec.text.splitlines() if not _CHECKER_OK.search(ln.strip())),
                f"exit {sec.rc}",
            )
            checks.append(
                Check(
                    f"config:{name}",
                    FAIL,
                    f"{tool}: {problem}",
                    "run `presence-appliance install` to put the generated config back",
                )
            )
    sec = _sec(sections, "config:hostapd")
    errors = [ln.strip() for ln in sec.text.splitlines() if _HOSTAPD_PARSE_ERROR.search(ln)]
    if sec.rc == 2 and not errors:
        checks.append(
            Check(
                "config:hostapd",
                FAIL,
                _first_line(sec.text, "no hostapd.conf"),
                "run `presence-appliance install`",
            )
        )
    elif errors:
        checks.append(
            Check(
                "config:hostapd",
                FAIL,
                f"hostapd rejects it: {errors[0]}",
                "run `presence-appliance install` to put the generated config back",
            )
        )
    else:
        # hostapd has no check flag: it parses the copy, then fails at the (missing) radio.
        checks.append(Check("config:hostapd", OK, "hostapd parses it"))
    return checks


# hostapd's own journal lines that name a cause a user can act on.
HOSTAPD_PROBLEMS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "rfkill",
        re.compile(r"rfkill|RF-kill", re.I),
        "sudo rfkill unblock wifi (and check `rfkill list`)",
    ),
    (
        "country",
        re.compile(r"country|regulatory|\bregdom", re.I),
        "set wifi.country to where the Pi is (ISO code) and run install",
    ),
    (
        "channel",
        re.compile(r"channel|hw_mode|\bDFS\b|frequency", re.I),
        "choose another wifi.channel (1, 6 or 11 on 2.4 GHz) and run install",
    ),
    (
        "driver",
        re.compile(
            r"driver|nl80211|Could not (set|configure)|interface .* (not found|does not exist)",
            re.I,
        ),
        "check that camera_network.interface is the Wi-Fi adapter (`iw dev`) "
        "and that its driver supports AP mode (`iw list`)",
    ),
)
_HOSTAPD_ERRORISH = re.compile(
    r"fail|error|invalid|could not|cannot|not (allowed|supported|found|permitted)|unable"
    r"|blocked|disabled",
    re.I,
)
_UNIT_START = re.compile(r"^Starting .*hostapd", re.I)


def hostapd_problems(journal: str, lab: bool) -> list[tuple[str, str, str]]:
    """(kind, line, fix) for each problem hostapd logged since its last start this boot."""
    lines = journal.splitlines()
    starts = [i for i, line in enumerate(lines) if _UNIT_START.search(line)]
    recent = lines[starts[-1] :] if starts else lines
    found = []
    for line in recent:
        text = line.strip()
        # The lab has no radio: its stand-in says so on every start (appliance/lab/image).
        if lab and "lab hostapd stand-in" in text:
            continue
        # State transitions (`interface state COUNTRY_UPDATE->DISABLED`) follow a cause
        # logged on its own line; they name no cause themselves.
        if not _HOSTAPD_ERRORISH.search(text) or "interface state" in text:
            continue
        for kind, pattern, fix in HOSTAPD_PROBLEMS:
            if pattern.search(text):
                found.append((kind, text, fix))
                break
    return found


def check_hostapd_journal(sections: Sections, lab: bool) -> Check:
    sec = _sec(sections, "journal:hostapd")
    if sec.rc != 0:
        return Check(
            "hostapd:journal", WARN, f"cannot read the journal: {_first_line(sec.text, '?')}"
        )
    problems = hostapd_problems(sec.text, lab)
    if not problems:
        return Check("hostapd:journal", OK, "no driver, country, channel or rfkill errors")
    kinds = sorted({kind for kind, _, _ in problems})
    _, line, fix = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check("hostapd:journal", FAIL, f"{'/'.join(kinds)}: {line}{more}", fix)


# ---------------------------------------------------------------------------
# Cameras: leases against the inventory


def inventory_cameras(variables: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in variables.get("cameras") or [] if isinstance(c, dict)]


def check_leases(sections: Sections, variables: dict[str, Any]) -> list[Check]:
    sec = _sec(sections, "leases")
    cameras = inventory_cameras(variables)
    if sec.rc != 0:
        reason = _first_line(sec.text, "unreadable")
        return [
            Check(
                "leases",
                FAIL if cameras else WARN,
                f"no lease file: {reason}",
                "run install; the file appears with the first DHCP client",
            )
        ]
    leases = parse_leases(sec.text)
    by_mac = {lease.mac: lease for lease in leases}
    checks = []
    for cam in cameras:
        name = str(cam.get("name"))
        mac = str(cam.get("mac", "")).lower()
        want = str(cam.get("ip", ""))
        lease = by_mac.get(mac)
        if lease is None:
            checks.append(
                Check(
                    f"camera:{name}",
                    FAIL,
                    f"no DHCP lease for {mac} (expected at {want})",
                    "is the camera powered and on the Pi's Wi-Fi? See `presence-appliance leases`"
                    " and the README's guide to moving the cameras",
                )
            )
        elif lease.ip != want:
            checks.append(
                Check(
                    f"camera:{name}",
                    FAIL,
                    f"{mac} leased {lease.ip}, not its reserved {want}",
                    "run install (the reservation is not live), then power-cycle the camera",
                )
            )
        else:
            checks.append(Check(f"camera:{name}", OK, f"leased its reserved {want}"))
    known = {str(c.get("mac", "")).lower() for c in cameras}
    unknown = [
        lease for lease in leases if lease.mac.startswith(NETATMO_OUI) and lease.mac not in known
    ]
    if unknown:
        listed = ", ".join(f"{lease.mac} at {lease.ip}" for lease in unknown)
        checks.append(
            Check(
                "leases:unknown",
                WARN,
                f"Netatmo devices not in the inventory: {listed}",
                f"presence-appliance camera add --from-lease {unknown[0].mac}",
            )
        )
    else:
        checks.append(Check("leases:unknown", OK, "no unknown Netatmo devices on the Wi-Fi"))
    return checks


# ---------------------------------------------------------------------------
# Time


def parse_tracking(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def tracking_offset(value: str) -> float | None:
    """`0.000012345 seconds fast of NTP time` -> 1.2345e-05 (slow is negative)."""
    match = re.match(r"([0-9.]+) seconds (fast|slow)", value)
    if not match:
        return None
    seconds = float(match.group(1))
    return seconds if match.group(2) == "fast" else -seconds


def parse_clients(text: str) -> dict[str, int]:
    """`chronyc -c clients` CSV -> {address: NTP packets}."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 2:
            try:
                counts[fields[0].strip()] = int(fields[1])
            except ValueError:
                continue
    return counts


def check_time(
    sections: Sections, variables: dict[str, Any], services: dict[str, str]
) -> list[Check]:
    if services.get("chrony") != "active":
        return [Check("time", WARN, "not checked: chrony is not running (see service:chrony)")]
    sec = _sec(sections, "tracking")
    if sec.rc != 0:
        return [
            Check(
                "time",
                FAIL,
                f"chronyc tracking: {_first_line(sec.text, 'no answer')}",
                "sudo systemctl restart chrony",
            )
        ]
    tracking = parse_tracking(sec.text)
    stratum_text = tracking.get("Stratum", "0")
    stratum = int(stratum_text) if stratum_text.isdigit() else 0
    leap = tracking.get("Leap status", "")
    offset = tracking_offset(tracking.get("System time", ""))
    reference = tracking.get("Reference ID", "")
    local = int(variables.get("ntp_local_stratum", 10) or 10)
    offset_text = f", offset {offset * 1000:+.1f} ms" if offset is not None else ""
    checks = []
    if leap == "Not synchronised" or stratum == 0:
        checks.append(
            Check(
                "time",
                FAIL,
                "chrony is not synchronised and not serving its local clock",
                "check ntp_upstream and the Pi's uplink; `chronyc sources`",
            )
        )
    elif stratum >= local:
        checks.append(
            Check(
                "time",
                WARN,
                f"serving its own clock at local stratum {stratum} (no upstream reachable)"
                + offset_text,
                "check that the Pi reaches ntp_upstream (UDP 123): `chronyc sources`",
            )
        )
    elif offset is not None and abs(offset) > OFFSET_WARN_SECONDS:
        checks.append(
            Check(
                "time",
                WARN,
                f"synchronised (stratum {stratum}) but the clock is off by {offset:+.3f} s",
                "it corrects itself slowly; `sudo chronyc makestep` corrects it now",
            )
        )
    else:
        ref = re.sub(r"^[0-9A-F]{8} \((.*)\)$", r"\1", reference) or reference
        checks.append(Check("time", OK, f"synchronised to {ref} (stratum {stratum}){offset_text}"))
    clients = parse_clients(_sec(sections, "clients").text)
    cameras = inventory_cameras(variables)
    asking = [str(c.get("name")) for c in cameras if clients.get(str(c.get("ip")), 0) > 0]
    if not cameras:
        checks.append(Check("time:cameras", OK, "no cameras in the inventory"))
    elif asking:
        checks.append(
            Check(
                "time:cameras",
                OK,
                f"{len(asking)} of {len(cameras)} cameras asked for time: {', '.join(asking)}",
            )
        )
    else:
        checks.append(
            Check(
                "time:cameras",
                WARN,
                "no camera has asked the Pi for time since chrony started",
                "cameras ask at boot and every few hours; power-cycle one to see it here",
            )
        )
    return checks


# ---------------------------------------------------------------------------
# TLS


def pem_fingerprint(pem: str) -> str | None:
    """sha256 of the first certificate's DER bytes, or None when there is none."""
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem, re.DOTALL)
    if not match:
        return None
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except ValueError:
        return None
    return hashlib.sha256(der).hexdigest()


def parse_enddate(text: str) -> datetime | None:
    """`notAfter=Nov 30 14:00:00 2036 GMT` -> an aware datetime."""
    match = re.search(r"notAfter=(.+?)\s*$", text, re.M)
    if not match:
        return None
    value = re.sub(r"\s+", " ", match.group(1).strip())
    try:
        return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    except ValueError:
        return None


def check_tls(sections: Sections, variables: dict[str, Any], pin: Path | None) -> list[Check]:
    end_sec = _sec(sections, "cert:enddate")
    enddate = parse_enddate(end_sec.text) if end_sec.rc == 0 else None
    now_text = _first_line(_sec(sections, "now").text)
    now = float(now_text) if now_text.isdigit() else time.time()
    checks = []
    if enddate is None:
        checks.append(
            Check(
                "tls:expiry",
                FAIL,
                f"no readable certificate: {_first_line(end_sec.text, '?')}",
                "run `presence-appliance install` (it makes or copies the certificate)",
            )
        )
    else:
        days = (enddate.timestamp() - now) / 86400
        when = enddate.strftime("%Y-%m-%d")
        own = bool((variables.get("web") or {}).get("tls_cert"))
        renew = (
            "renew your certificate (web.tls_cert/tls_key) and run install"
            if own
            else "delete /etc/nginx/presence-appliance-tls/server.crt on the Pi and run install "
            "(a new self-signed one is made and pinned)"
        )
        if days < 0:
            checks.append(Check("tls:expiry", FAIL, f"certificate expired on {when}", renew))
        elif days < CERT_WARN_DAYS:
            checks.append(
                Check("tls:expiry", WARN, f"certificate expires in {days:.0f} days ({when})", renew)
            )
        else:
            checks.append(Check("tls:expiry", OK, f"valid until {when} ({days:.0f} days)"))
    pem_sec = _sec(sections, "cert:pem")
    on_pi = pem_fingerprint(pem_sec.text) if pem_sec.rc == 0 else None
    if (variables.get("web") or {}).get("tls_cert"):
        checks.append(Check("tls:pin", OK, "your own certificate: verified by its CA, no pin"))
    elif pin is None or not pin.is_file():
        checks.append(
            Check(
                "tls:pin",
                WARN,
                f"no pinned certificate on this machine ({pin})",
                "run `presence-appliance install` from here to pin it",
            )
        )
    else:
        pinned = pem_fingerprint(pin.read_text(errors="replace"))
        if on_pi is None or pinned is None:
            checks.append(
                Check("tls:pin", FAIL, "cannot compare: a certificate is unreadable", "run install")
            )
        elif pinned != on_pi:
            checks.append(
                Check(
                    "tls:pin",
                    FAIL,
                    f"the Pi's certificate is not the one pinned in {pin}",
                    "if you renewed it yourself, run `presence-appliance install` to pin the new "
                    "one; otherwise find out who changed it",
                )
            )
        else:
            checks.append(Check("tls:pin", OK, f"matches {pin.name} (sha256 {on_pi[:16]}…)"))
    return checks


# ---------------------------------------------------------------------------
# Disk


@dataclass(frozen=True)
class DiskUse:
    mount: str
    total: int  # KiB or inodes
    free: int


def parse_df(text: str) -> list[DiskUse | None]:
    """`df -P` rows in argument order (None for a row df could not read)."""
    rows: list[DiskUse | None] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and fields[3].isdigit():
            rows.append(DiskUse(fields[5], int(fields[1]), int(fields[3])))
    return rows


def _size(kib: int) -> str:
    return f"{kib / 1024 / 1024:.1f} GiB" if kib >= 1024 * 1024 else f"{kib / 1024:.1f} MiB"


def check_disk(sections: Sections, probe_args: list[str]) -> list[Check]:
    blocks = parse_df(_sec(sections, "df").text)
    inodes = parse_df(_sec(sections, "dfi").text)
    places = [("disk:root", "/"), ("disk:cache", probe_args[1]), ("disk:log", probe_args[2])]
    checks = []
    for index, (name, path) in enumerate(places):
        use = blocks[index] if index < len(blocks) else None
        nodes = inodes[index] if index < len(inodes) else None
        if use is None or use.total == 0:
            checks.append(Check(name, WARN, f"{path}: cannot read its free space"))
            continue
        share = use.free / use.total
        node_share = nodes.free / nodes.total if nodes and nodes.total else 1.0
        text = f"{path} ({use.mount}): {_size(use.free)} free ({share:.0%})"
        if nodes and nodes.total:
            text += f", {node_share:.0%} inodes free"
        fix = f"free space on {use.mount}: `sudo du -xsh {path}/*`, `sudo journalctl --vacuum-size=50M`"
        if (
            share < DISK_FAIL_FREE[0]
            or use.free < DISK_FAIL_FREE[1]
            or node_share < INODE_FAIL_FREE
        ):
            checks.append(Check(name, FAIL, text, fix))
        elif share < DISK_WARN_FREE[0] or use.free < DISK_WARN_FREE[1]:
            checks.append(Check(name, WARN, text, fix))
        else:
            checks.append(Check(name, OK, text))
    return checks


# ---------------------------------------------------------------------------
# Firewall


def drop_counters(nft_json: Any) -> tuple[int, int, int, list[tuple[str, int]]]:
    """(rules, dropping rules, packets dropped, the named drop counters by packets) of
    `nft -j list table` output. Drops are counted by inline counters on dropping rules and
    by named counters whose name says `drop` (the firewall role's `cam_<name>_drop_<kind>`);
    a rule that uses a named counter refers to it by name, so nothing is counted twice."""
    rules = dropping = packets = 0
    named: list[tuple[str, int]] = []
    items = nft_json.get("nftables", []) if isinstance(nft_json, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        counter = item.get("counter")
        if isinstance(counter, dict) and "drop" in str(counter.get("name", "")):
            count = counter.get("packets")
            if isinstance(count, int):
                named.append((str(counter["name"]), count))
                packets += count
            continue
        rule = item.get("rule")
        if not isinstance(rule, dict):
            continue
        rules += 1
        exprs = rule.get("expr") or []
        if not any(isinstance(e, dict) and "drop" in e for e in exprs):
            continue
        dropping += 1
        for expr in exprs:
            inline = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(inline, dict) and isinstance(inline.get("packets"), int):
                packets += inline["packets"]
    named.sort(key=lambda pair: (-pair[1], pair[0]))
    return rules, dropping, packets, named


def check_firewall(sections: Sections, expected: bool) -> list[Check]:
    import json

    checks = []
    conf = _sec(sections, "config:firewall")
    if conf.rc == 0:
        checks.append(Check("config:firewall", OK, "nft -c accepts the ruleset file"))
    elif conf.rc != 3 or expected:
        checks.append(
            Check(
                "config:firewall",
                FAIL,
                f"nft -c: {_first_line(conf.text, 'no answer')}",
                "run `presence-appliance install` to put the generated ruleset back",
            )
        )
    sec = _sec(sections, "firewall")
    if sec.rc != 0:
        if not expected:
            checks.append(
                Check(
                    "firewall",
                    OK,
                    "no firewall role in this version of presence-appliance (table not expected)",
                )
            )
        else:
            checks.append(
                Check(
                    "firewall",
                    FAIL,
                    "table inet presence_appliance is not loaded",
                    "sudo systemctl reload presence-firewall (or run `presence-appliance install`)",
                )
            )
        return checks
    try:
        data = json.loads(sec.text)
    except ValueError:
        checks.append(Check("firewall", WARN, "table loaded, but nft's JSON output is unreadable"))
        return checks
    rules, dropping, packets, named = drop_counters(data)
    top = ", ".join(f"{name} {count}" for name, count in named[:3] if count)
    checks.append(
        Check(
            "firewall",
            OK,
            f"table inet presence_appliance loaded: {rules} rules, {dropping} dropping, "
            f"{packets} packets dropped" + (f" (most: {top})" if top else ""),
        )
    )
    return checks
