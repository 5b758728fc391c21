"""`doctor`'s remote-viewing checks: the WireGuard port open on the Pi, and who got in.

Only with `remote_access.wireguard`. The one step the tool cannot take, forwarding the UDP port
on the home router, cannot be seen from the Pi either: these checks say what to forward, and
how to prove it from outside (a peer's handshake is that proof).
"""

from __future__ import annotations

import json
from typing import Any

from appliance.doctor_checks import FAIL, OK, WARN, Check, Sections, _first_line, _sec
from appliance.remote import (
    DEFAULT_PORT,
    INTERFACE,
    RemoteError,
    describe_age,
    parse_peer_lines,
    wireguard_settings,
)

PORT_CHECK, PEERS_CHECK = "remote:port", "remote:peers"


def _firewall_lets_in(sections: Sections, port: int) -> bool | None:
    """Whether the loaded firewall table accepts UDP PORT (None: no table to judge by)."""
    sec = _sec(sections, "firewall")
    if sec.rc != 0:
        return None
    try:
        items = json.loads(sec.text).get("nftables", [])
    except (ValueError, AttributeError):
        return None
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        exprs = rule.get("expr") if isinstance(rule, dict) else None
        if not isinstance(exprs, list) or not any(
            isinstance(e, dict) and "accept" in e for e in exprs
        ):
            continue
        for expr in exprs:
            match = expr.get("match") if isinstance(expr, dict) else None
            if not isinstance(match, dict) or match.get("op") not in ("==", "in"):
                continue
            left = match.get("left")
            if not (
                isinstance(left, dict)
                and left.get("payload")
                == {
                    "protocol": "udp",
                    "field": "dport",
                }
            ):
                continue
            right = match.get("right")
            ports = right.get("set", []) if isinstance(right, dict) else [right]
            if port in ports:
                return True
    return False


def outside_test(pi: str, port: int, forwarded: str, pi_tunnel: str) -> str:
    return (
        f"on the home router, forward UDP {forwarded} to {pi} port {port} (the one step "
        "presence-appliance cannot take); then test from outside: the phone on mobile data "
        f"(Wi-Fi off), its tunnel on, open https://{pi_tunnel}/; `presence-appliance remote "
        "list` then shows a handshake seconds old (from inside the home it proves nothing)"
    )


def check_remote(sections: Sections, variables: dict[str, Any], host: str) -> list[Check]:
    """remote:port and remote:peers; nothing when remote access is off."""
    remote = variables.get("remote_access")
    if not (isinstance(remote, dict) and remote.get("wireguard")):
        return []
    try:
        wg = wireguard_settings(host, variables)
    except (RemoteError, KeyError, TypeError, ValueError):
        return []  # the schema reports a broken remote_access; install refuses it
    interface = str(variables.get("wireguard_interface") or INTERFACE)
    pi = str(variables.get("ansible_host") or host)
    forwarded = wg.endpoint.rpartition(":")[2] or str(DEFAULT_PORT)
    hint = outside_test(pi, wg.listen_port, forwarded, str(wg.pi_address))
    restart = (
        f"journalctl -u wg-quick@{interface} -b; sudo systemctl restart wg-quick@{interface} "
        "(or run install again)"
    )

    checks = []
    port_sec = _sec(sections, "wireguard:port")
    listening = _first_line(port_sec.text)
    if port_sec.rc != 0 or not listening.isdigit():
        checks.append(
            Check(
                PORT_CHECK,
                FAIL,
                f"`wg show {interface} listen-port`: {_first_line(port_sec.text, 'no answer')}",
                restart,
            )
        )
        return checks
    if int(listening) != wg.listen_port:
        checks.append(
            Check(
                PORT_CHECK,
                FAIL,
                f"{interface} listens on UDP {listening}, the inventory says {wg.listen_port}",
                "presence-appliance install --tags wireguard",
            )
        )
    elif _firewall_lets_in(sections, wg.listen_port) is False:
        checks.append(
            Check(
                PORT_CHECK,
                FAIL,
                f"{interface} listens on UDP {listening}, but the firewall does not let it in",
                "presence-appliance install (the firewall role opens the port)",
            )
        )
    else:
        checks.append(
            Check(
                PORT_CHECK,
                OK,
                f"{interface} listens on UDP {listening}, open on the Pi; your home router must "
                f"forward UDP {forwarded} to {pi} port {listening} (the tool cannot check that)",
            )
        )

    checks.append(_check_peers(sections, wg.peers, hint, interface))
    return checks


def _check_peers(
    sections: Sections, peers: list[dict[str, Any]], hint: str, interface: str
) -> Check:
    sec = _sec(sections, "wireguard:peers")
    if sec.rc != 0:
        return Check(
            PEERS_CHECK, WARN, f"not read: {_first_line(sec.text, 'no answer')} (see remote:port)"
        )
    live = {p.public_key: p for p in parse_peer_lines(sec.text)}
    known = {str(p.get("public_key")): str(p.get("name")) for p in peers}
    stray = [key for key in live if key not in known]
    if stray:
        # A peer the inventory no longer names (removed) still gets in: revoke it now.
        keys = ", ".join(f"{key[:10]}…" for key in stray)
        return Check(
            PEERS_CHECK,
            FAIL,
            f"{interface} lets in {len(stray)} peer(s) the inventory does not name: {keys}",
            "presence-appliance install --tags wireguard (it leaves only the inventory's peers)",
        )
    missing = [name for key, name in known.items() if key not in live]
    if missing:
        return Check(
            PEERS_CHECK,
            WARN,
            f"in the inventory but not on the Pi: {', '.join(missing)}",
            "presence-appliance install --tags wireguard",
        )
    if not peers:
        return Check(
            PEERS_CHECK, OK, "no peers yet: `presence-appliance remote add NAME` adds a phone"
        )
    now_text = _first_line(_sec(sections, "now").text)
    now = float(now_text) if now_text.isdigit() else None
    rows = []
    for key, name in known.items():
        state = live[key]
        seen = describe_age(state.latest_handshake, now)
        rows.append(
            f"{name}: handshake {seen}"
            + (f" from {state.endpoint}" if seen != "never" and state.endpoint else "")
        )
    if all(live[key].latest_handshake == 0 for key in known):
        return Check(
            PEERS_CHECK, WARN, "no peer has reached the Pi yet (" + "; ".join(rows) + ")", hint
        )
    return Check(PEERS_CHECK, OK, "; ".join(rows))
