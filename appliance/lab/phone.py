"""The lab's phone (pa-phone, on the internet side): bring a WireGuard tunnel up from the config
`presence-appliance remote add` printed, as the WireGuard app does on a phone.

The host kernel has no WireGuard module, so wireguard-go (Debian's userspace WireGuard) runs
the phone's interface; `wg setconf` gives it the config's keys and peer, `ip` its address and
a route per AllowedIPs. The process is recorded in the lab's state, so `lab down` ends it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from appliance.lab.plan import PHONE_NS
from appliance.lab.proc import spawn, stop_recorded
from appliance.lab.run import LabError, in_netns, run
from appliance.lab.state import LabState
from appliance.remote import parse_config

INTERFACE = "wg-phone"
ROLE = "phone-wireguard"
SOCKET = Path("/var/run/wireguard") / f"{INTERFACE}.sock"
# wg-quick's own keys, which `wg setconf` does not take (what `wg-quick strip` removes).
WG_QUICK_KEYS = {"Address", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown"}


def tunnel_up(lab: Path, config: str, timeout: float = 10) -> None:
    """Bring the phone's tunnel up from CONFIG (a wg-quick config with a private key)."""
    tunnel_down(lab)
    state = LabState.load(lab)
    wg_lines: list[str] = []
    addresses: list[str] = []
    routes: list[str] = []
    for section, values in parse_config(config):
        wg_lines.append(f"[{section}]")
        for key, value in values.items():
            if key == "Address":
                addresses += [a.strip() for a in value.split(",")]
            elif key not in WG_QUICK_KEYS:
                wg_lines.append(f"{key} = {value}")
            if section == "Peer" and key == "AllowedIPs":
                routes += [a.strip() for a in value.split(",")]
    directory = lab / "phone"
    directory.mkdir(mode=0o700, exist_ok=True)
    setconf = directory / f"{INTERFACE}.conf"
    fd = os.open(setconf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a private key
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(wg_lines) + "\n")
    # A socket left by a wireguard-go that was killed would pass the wait below before the new
    # one is listening; the lab's phone is its only user.
    SOCKET.unlink(missing_ok=True)
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
    pid = spawn(
        in_netns(PHONE_NS, "wireguard-go", "-f", INTERFACE), lab / "logs" / "phone-wg.log", env
    )
    state.add_process(ROLE, pid, PHONE_NS)
    deadline = time.monotonic() + timeout
    while not SOCKET.is_socket():
        if time.monotonic() > deadline:
            raise LabError(f"wireguard-go made no {SOCKET} within {timeout:.0f} s")
        time.sleep(0.05)
    run(in_netns(PHONE_NS, "wg", "setconf", INTERFACE, str(setconf)), timeout=15)
    setconf.unlink()
    for address in addresses:
        run(in_netns(PHONE_NS, "ip", "address", "add", address, "dev", INTERFACE), timeout=15)
    run(in_netns(PHONE_NS, "ip", "link", "set", INTERFACE, "up"), timeout=15)
    for route in routes:
        run(in_netns(PHONE_NS, "ip", "route", "replace", route, "dev", INTERFACE), timeout=15)


def tunnel_down(lab: Path) -> None:
    """End the phone's tunnel (its interface goes with wireguard-go); no-op when down."""
    state = LabState.load(lab)
    proc = state.process(ROLE)
    if proc is None:
        return
    stop_recorded(proc)
    state.data["processes"].remove(proc)
    state.save()


def latest_handshake(timeout: float = 15) -> int:
    """Unix time of the phone's last handshake with the Pi (0: none)."""
    out = run(in_netns(PHONE_NS, "wg", "show", INTERFACE, "latest-handshakes"), timeout=timeout)
    times = [int(line.split()[1]) for line in out.stdout.splitlines() if len(line.split()) == 2]
    return max(times, default=0)
