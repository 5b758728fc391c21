"""A camera's FTP export to the Pi: the settings it needs, setting them over the local API, and the app's fallback.

Whether a Presence accepts `ftp_set_config` on its local API is not known (public clients
call it through the cloud; docs/netatmo-local-api.md). So `camera ftp` tries the local API
(read, merge, write, read back, like the floodlight) and, when the camera refuses or does not
know the command, says what to type into the Netatmo app instead.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from appliance.camera_api import CameraClient, CameraError, _error_text
from appliance.camera_bounds import shown

FTP_PORT = 21
FTP_PATH = "/"
# The FTP settings object goes back to the camera in a query string: keep it to what fits.
MAX_FTP_CONFIG_CHARS = 2048
# Keys this command sets; anything else the camera keeps in the object is written back as it was.
OWN_KEYS = ("on_off", "server", "port", "user", "password", "path")


class FtpSetupError(ValueError):
    """The inventory does not allow FTP export for this camera (one line, names the place)."""


class CameraRefused(Exception):
    """The camera did not take the settings: the reason, one printable line without secrets."""


@dataclass(frozen=True)
class FtpSettings:
    """What the camera needs to upload to the Pi (the password is a secret: never printed)."""

    server: str
    port: int
    user: str
    password: str
    path: str

    def config(self, on: bool) -> dict[str, Any]:
        """The ftp_set_config object (turning off sends only `on_off`, keeping the rest)."""
        if not on:
            return {"on_off": 0}
        return {
            "on_off": 1,
            "server": self.server,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "path": self.path,
        }

    def secrets(self) -> tuple[str, ...]:
        """The password as it may appear in a message: raw and URL-encoded."""
        if not self.password:
            return ()
        return (self.password, quote(self.password, safe=""), quote_plus(self.password))


def ftp_user(camera_name: str) -> str:
    """The FTP account of camera NAME on the Pi (the recordings role makes it)."""
    return f"cam-{camera_name}"


def settings_for(appliance_vars: dict[str, Any], cam: dict[str, Any], at: str) -> FtpSettings:
    """The camera's FTP settings from the inventory; FtpSetupError when it has no recordings."""
    name = str(cam.get("name"))
    if not isinstance(appliance_vars.get("recordings"), dict):
        raise FtpSetupError(f"{at}: the appliance has no `recordings` (no FTP server on the Pi)")
    if cam.get("recordings") is not True:
        raise FtpSetupError(
            f"{at}.recordings: camera {name} has no `recordings: true` (no FTP account on the Pi)"
        )
    password = cam.get("ftp_password")
    if not isinstance(password, str) or not password:
        raise FtpSetupError(f"{at}.ftp_password: missing (needed with recordings: true)")
    network = appliance_vars.get("camera_network")
    address = network.get("address") if isinstance(network, dict) else None
    try:
        server = str(ipaddress.ip_interface(str(address)).ip)
    except ValueError:
        raise FtpSetupError(
            "camera_network.address: not an address (the Pi's camera-side address)"
        ) from None
    return FtpSettings(server, FTP_PORT, ftp_user(name), password, FTP_PATH)


def merge(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The whole object to write: what the camera has, with our keys replaced."""
    merged = copy.deepcopy(current)
    merged.update(wanted)
    return merged


def kept(after: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the camera's object now holds what was written (numbers may come back as text)."""
    return all(str(after.get(key)) == str(value) for key, value in wanted.items())


async def apply_ftp(client: CameraClient, settings: FtpSettings, on: bool) -> None:
    """Read, merge, write, read back. CameraRefused when the camera does not take them;
    CameraError (unreachable and the like) passes through."""
    wanted = settings.config(on)
    current = await _read(client)
    payload = _json(merge(current, wanted))
    if len(payload) > MAX_FTP_CONFIG_CHARS:
        raise CameraRefused(
            f"its FTP settings are longer than {MAX_FTP_CONFIG_CHARS} characters; not written back"
        )
    try:
        status, data = await client.command("ftp_set_config", {"config": payload}, method="POST")
    except CameraError as err:
        if err.unreachable:
            raise
        raise CameraRefused(f"ftp_set_config: {_after_colon(err)}") from None
    if status != 200 or (isinstance(data, dict) and "error" in data):
        raise CameraRefused(f"ftp_set_config: {_error_text(status, data)}")
    if not kept(await _read(client), wanted):
        raise CameraRefused("the camera did not keep the new FTP settings")


async def _read(client: CameraClient) -> dict[str, Any]:
    try:
        status, data = await client.command("ftp_get_config")
    except CameraError as err:
        if err.unreachable:
            raise
        raise CameraRefused(f"ftp_get_config: {_after_colon(err)}") from None
    if status != 200 or not isinstance(data, dict):
        raise CameraRefused(f"ftp_get_config: {_error_text(status, data)}")
    return data


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def _after_colon(err: CameraError) -> str:
    # CameraClient's messages start with the command's name: say it once.
    text = str(err)
    head, sep, tail = text.partition(": ")
    return tail if sep and head.startswith("ftp_") else text


def app_instructions(
    settings: FtpSettings, name: str, show_password: bool, where: str
) -> list[str]:
    """What to type into the Netatmo app (camera settings, FTP export), one line each."""
    password = (
        settings.password
        if show_password
        else f"(not shown: it is {where}; add --show-password to print it)"
    )
    return [
        f"{name}: set the FTP export in the Netatmo app (camera settings) to:",
        f"  server:   {settings.server}",
        f"  port:     {settings.port}",
        f"  user:     {settings.user}",
        f"  password: {password}",
        f"  path:     {settings.path}",
        "  mode:     plain FTP (not FTPS), passive",
    ]


def refusal_line(name: str, reason: str, secrets: tuple[str, ...]) -> str:
    """The camera's refusal as one printable line, without the password in any form."""
    for secret in secrets:
        reason = reason.replace(secret, "<password>")
    return f"{name}: the camera did not take the FTP settings over its local API ({shown(reason, 160)})"
