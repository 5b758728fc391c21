"""WireGuard in a network namespace for tests: wireguard-go (the host has no kernel module)
driven by the real wg and wg-quick, with every process recorded so a test ends it by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from appliance.remote import parse_config

# wg-quick's own keys, which `wg setconf` does not know (what `wg-quick strip` removes).
WG_QUICK_KEYS = {"Address", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown"}


def stand_in_script(directory: Path) -> Path:
    """A WG_QUICK_USERSPACE_IMPLEMENTATION for wg-quick that runs wireguard-go in the
    foreground in the background, records its PID and returns once its control socket
    exists, up to 15 s (a loaded machine starts wireguard-go slowly; its callers wait 20 s
    or more): what wireguard-go's own daemon mode does, minus the unknown PID."""
    script = directory / "wg-userspace"
    script.write_text(
        "#!/bin/sh\n"
        f'WG_PROCESS_FOREGROUND=1 setsid wireguard-go -f "$1" >>"{directory}/wg-$1.log" 2>&1 &\n'
        f'echo $! >>"{directory}/wg-pids"\n'
        "i=0\n"
        'while [ ! -S "/var/run/wireguard/$1.sock" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done\n'
        '[ -S "/var/run/wireguard/$1.sock" ]\n'
    )
    script.chmod(0o755)
    return script


def recorded_pids(directory: Path) -> list[int]:
    pids = directory / "wg-pids"
    if not pids.exists():
        return []
    return [int(p) for p in pids.read_text().split()]


def stop_recorded(directory: Path) -> None:
    """End every wireguard-go these helpers started (by PID), waiting a bounded time."""
    for pid in recorded_pids(directory):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def bring_up_peer(netns: str, interface: str, config: str, directory: Path) -> None:
    """What a phone's WireGuard app does with a wg-quick config: the interface, `wg setconf`
    with the WireGuard keys, the Address, and a route for each AllowedIPs."""
    sections = parse_config(config)
    wg_lines: list[str] = []
    addresses: list[str] = []
    routes: list[str] = []
    for name, values in sections:
        wg_lines.append(f"[{name}]")
        for key, value in values.items():
            if key == "Address":
                addresses += [a.strip() for a in value.split(",")]
            elif key not in WG_QUICK_KEYS:
                wg_lines.append(f"{key} = {value}")
            if name == "Peer" and key == "AllowedIPs":
                routes += [a.strip() for a in value.split(",")]
    setconf = directory / f"{interface}.setconf"
    fd = os.open(setconf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(wg_lines) + "\n")
    script = stand_in_script(directory)
    _run(["ip", "netns", "exec", netns, str(script), interface])
    _run(["ip", "netns", "exec", netns, "wg", "setconf", interface, str(setconf)])
    for address in addresses:
        _run(["ip", "-n", netns, "address", "add", address, "dev", interface])
    _run(["ip", "-n", netns, "link", "set", interface, "up"])
    for route in routes:
        _run(["ip", "-n", netns, "route", "replace", route, "dev", interface])


def _run(argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc
