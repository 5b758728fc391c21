"""`init`'s camera list: from Netatmo (a token or a saved /gethomedata answer), typed in, or none.

Cloud answers go through appliance.discover (the same parsing and merge as `discover`):
new cameras get a unique name, the next free reservation and `cloud: block`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from appliance.discover import DiscoveredCamera, DiscoverError, fetch, load_saved, plan_merge
from appliance.init_answers import FIRST_CAMERA_HOST, Answers, AnswersError, generate_passphrase


@dataclass
class CameraPlan:
    entries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discovered_cameras(answers: Answers, api_url: str | None = None) -> list[DiscoveredCamera]:
    try:
        if answers.cameras_from == "token":
            if not answers.netatmo_token:
                raise AnswersError("netatmo_token: needed for cameras_from: token")
            if api_url:
                return fetch(answers.netatmo_token, api_url)
            return fetch(answers.netatmo_token)
        if answers.cameras_from == "file":
            if not answers.gethomedata:
                raise AnswersError("gethomedata: needed for cameras_from: file")
            return load_saved(answers.gethomedata)
    except DiscoverError as err:
        message = str(err)
        if answers.netatmo_token:
            message = message.replace(answers.netatmo_token, "<token>")
        raise AnswersError(message) from None
    return []


def reservations(group_vars: dict[str, Any], count: int) -> list[str]:
    """COUNT fixed addresses from .11 up: clear of the Pi, the DHCP range and the low
    addresses people give routers and printers."""
    net = group_vars["camera_network"]
    iface = ipaddress.IPv4Interface(net["address"])
    first, last = (ipaddress.IPv4Address(a) for a in net["dhcp_range"])
    free = [
        str(a)
        for a in iface.network.hosts()
        if int(a) - int(iface.network.network_address) >= FIRST_CAMERA_HOST
        and a != iface.ip
        and not first <= a <= last
    ]
    if len(free) < count:
        raise AnswersError(f"camera_network: {iface.network} has room for {len(free)} cameras")
    return free[:count]


def plan_cameras(
    answers: Answers, group_vars: dict[str, Any], api_url: str | None = None
) -> CameraPlan:
    """The camera entries for the new inventory (reservations in group_vars' network)."""
    from appliance.inventory_edit import slugify

    plan = CameraPlan()
    if answers.cameras_from in ("token", "file"):
        merge = plan_merge(discovered_cameras(answers, api_url), {**group_vars, "cameras": []})
        plan.entries = [entry for _, entry in merge.added]
        for camera, reason in merge.skipped:
            plan.notes.append(f"skipped {camera.name} ({camera.mac}): {reason}")
    elif answers.cameras_from == "manual":
        names: set[str] = set()
        for camera in answers.cameras:
            name = slugify(camera["name"], names)
            names.add(name)
            plan.entries.append(
                {
                    "name": name,
                    "mac": camera["mac"].strip().lower(),
                    "ip": "",
                    "secure_id": camera["secure_id"].strip(),
                    "cloud": "block",
                }
            )
    for entry, ip in zip(plan.entries, reservations(group_vars, len(plan.entries)), strict=True):
        entry["ip"] = ip
        # Ready for recordings (off until `recordings: true`): each camera its own FTP password.
        entry["ftp_password"] = generate_passphrase()
    return plan


class LeaseCameraError(Exception):
    """The leased camera cannot be taken into the inventory; one line."""


def camera_from_lease(
    appliance_name: str,
    appliance_vars: dict[str, Any],
    mac: str,
    name: str | None,
) -> tuple[str, str, str]:
    """(name, mac, leased ip) of the DHCP client MAC of this Pi, read over SSH now.

    NAME defaults to the client's host name (made a valid camera name), unique
    among the Pi's cameras. A MAC the inventory already has is refused.
    """
    from appliance.inventory_edit import slugify
    from appliance.leases import LeaseError, read_leases

    wanted = mac.strip().lower().replace("-", ":")
    cameras = [c for c in appliance_vars.get("cameras") or [] if isinstance(c, dict)]
    for cam in cameras:
        if str(cam.get("mac", "")).lower() == wanted:
            raise LeaseCameraError(f"{wanted} is already camera {cam.get('name')!r}")
    try:
        leases = read_leases(appliance_name, appliance_vars)
    except LeaseError as err:
        raise LeaseCameraError(str(err)) from None
    lease = next((item for item in leases if item.mac == wanted), None)
    if lease is None:
        raise LeaseCameraError(
            f"{appliance_name}: no DHCP lease for {wanted} (see `presence-appliance leases`)"
        )
    taken = {str(c.get("name")) for c in cameras}
    fallback = "camera-" + wanted.replace(":", "")[-4:]
    return name or slugify(lease.hostname or fallback, taken), wanted, lease.ip
