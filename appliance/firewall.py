"""Read each Pi's firewall view over SSH (cloud policy, VPN traffic, drops, latest attempts)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from appliance import pi_shell
from appliance.pi_text import clean

HELPER = "/usr/local/sbin/presence-firewall"
SSH_TIMEOUT = 30.0
DROP_KINDS = ("pi", "camera", "lan", "internet", "ntp")
# A WireGuard peer's drops: to the Pi (anything but the dashboard), or beyond it (forward).
TUNNEL_KINDS = ("pi", "forward")


class FirewallError(Exception):
    """The firewall view of one Pi could not be read; one line."""


@dataclass
class PiView:
    """One Pi's answer, or the reason there is none."""

    appliance: str
    cameras: list[dict[str, Any]] = field(default_factory=list)
    revert_pending: bool = False
    loaded: bool = False
    error: str | None = None
    tunnel: dict[str, Any] | None = None  # None: remote access off (no tunnel rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "appliance": self.appliance,
            "loaded": self.loaded,
            "revert_pending": self.revert_pending,
            "cameras": self.cameras,
            "tunnel": self.tunnel,
            "error": self.error,
        }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _events(raw: Any, source: bool = False) -> list[dict[str, Any]]:
    """Blocked attempts of the helper's JSON (SOURCE: keep who sent them, a tunnel peer)."""
    events = []
    for event in raw if isinstance(raw, list) else []:
        if isinstance(event, dict):
            events.append(
                {
                    "time": _count(event.get("time")),
                    "kind": clean(event.get("kind", "")),
                    **({"source": clean(event.get("source") or "-")} if source else {}),
                    "destination": clean(event.get("destination") or "-"),
                    "protocol": clean(event.get("protocol") or "-"),
                    "port": _count(event.get("port")) or None,
                }
            )
    return events


def _tunnel(raw: Any) -> dict[str, Any] | None:
    """The WireGuard peers' drops and latest attempts; None when the Pi has no tunnel rows."""
    if not isinstance(raw, dict):
        return None
    drops = raw.get("drops") if isinstance(raw.get("drops"), dict) else {}
    return {
        "drops": {kind: _count(drops.get(kind)) for kind in TUNNEL_KINDS},
        "recent": _events(raw.get("recent"), source=True),
    }


def _camera(raw: Any) -> dict[str, Any] | None:
    """One camera of the helper's JSON, keeping only the expected fields and types."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    drops = raw.get("drops") if isinstance(raw.get("drops"), dict) else {}
    vpn = raw.get("vpn") if isinstance(raw.get("vpn"), dict) else {}
    recent = _events(raw.get("recent") or [])
    return {
        "name": clean(raw["name"]),
        "cloud": clean(raw.get("cloud", "")),
        "vpn": {"packets": _count(vpn.get("packets")), "bytes": _count(vpn.get("bytes"))},
        "drops": {kind: _count(drops.get(kind)) for kind in DROP_KINDS},
        "blocked_24h": _count(raw.get("blocked_24h")),
        "recent": recent,
    }


def parse_view(appliance: str, text: str) -> PiView:
    """The helper's `show` JSON, treated as hostile input."""
    try:
        data = json.loads(text)
    except ValueError:
        raise FirewallError(
            f"{appliance}: the firewall helper answered something not JSON"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise FirewallError(f"{appliance}: the firewall helper's answer has no camera list")
    cameras = [c for c in map(_camera, data["cameras"]) if c is not None]
    return PiView(
        appliance=appliance,
        cameras=cameras,
        revert_pending=data.get("revert_pending") is True,
        loaded=data.get("loaded") is True,
        tunnel=_tunnel(data.get("tunnel")),
    )


def read_view(
    appliance: str, variables: dict[str, Any], limit: int, timeout: float = SSH_TIMEOUT
) -> PiView:
    """Ask one Pi's firewall helper (sudo, as Ansible's become) for its view."""
    remote = ["sudo", "-n", HELPER, "show", "--limit", str(limit)]
    try:
        text = pi_shell.output(
            appliance,
            variables,
            remote,
            timeout,
            what="reading the firewall",
            absent="no firewall on this Pi yet (run install)",
        )
    except pi_shell.PiShellError as err:
        raise FirewallError(str(err)) from None
    return parse_view(appliance, text)


def collect(inventory: Any, limit: int) -> list[PiView]:
    """Every Pi's view, in inventory order; a Pi that cannot be read carries its error."""
    views = []
    for appliance in inventory.appliances:
        try:
            views.append(read_view(appliance.name, appliance.vars, limit))
        except FirewallError as err:
            views.append(PiView(appliance=appliance.name, error=str(err)))
    return views


def when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"
