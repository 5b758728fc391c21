"""`doctor`'s recordings checks: what each camera did on the Pi's FTP server, and the storage.

Only for a Pi where a camera has `recordings: true`. The FTP lines come from the recordings
program's `activity` answer (vsftpd's log, last 24 h), parsed as `recordings activity` parses
it: hostile input, kept field by field. A camera that is refused FTP altogether (no
`recordings`) never reaches vsftpd: `presence-appliance firewall` shows it as a `pi` drop.
"""

from __future__ import annotations

from typing import Any

from appliance.doctor_checks import FAIL, OK, WARN, Check, Sections, _first_line, _sec, parse_df
from appliance.recordings import (
    RecordingsError,
    human_bytes,
    parse_activity,
    recording_cameras,
    when,
)

LOG = "/var/log/vsftpd.log"


def _camera_ips(variables: dict[str, Any]) -> dict[str, str]:
    cameras = variables.get("cameras")
    return {
        str(c["name"]): str(c.get("ip", ""))
        for c in (cameras if isinstance(cameras, list) else [])
        if isinstance(c, dict) and "name" in c
    }


def _camera_line(name: str, own_ip: str, seen: dict[str, Any] | None) -> Check:
    check = f"ftp:{name}"
    if seen is None:
        return Check(check, WARN, "not in the Pi's FTP settings", "presence-appliance install")
    did = (
        f"24 h: {seen['logins']} logins, {seen['uploads']} uploads "
        f"({human_bytes(seen['upload_bytes'])})"
    )
    if seen["failed_uploads"]:
        did += f", {seen['failed_uploads']} failed uploads"
    did += f", last seen {when(seen['last'])}" if seen["last"] else ""
    strangers = [ip for ip in seen["clients"] if ip != own_ip]
    if seen["failed_logins"]:
        where = ", ".join(seen["clients"]) or "?"
        return Check(
            check,
            WARN,
            f"{did}; {seen['failed_logins']} failed logins as cam-{name} (clients {where})",
            f"from {own_ip}: the camera has an old password, run `presence-appliance camera ftp"
            f" {name} on`; from another address: someone tries cam-{name}'s account ({LOG})",
        )
    if strangers:
        return Check(
            check,
            WARN,
            f"{did}; logged in from {', '.join(strangers)}, not {name}'s {own_ip}",
            f"another device knows cam-{name}'s password: change its ftp_password, install,"
            f" then `presence-appliance camera ftp {name} on`",
        )
    if seen["refused"]:
        return Check(
            check,
            WARN,
            f"{did}; {seen['refused']} refused actions (download, delete, a system folder name)",
            f"the camera tried what the Pi forbids it: the FAIL lines of cam-{name} in {LOG}",
        )
    if not seen["logins"]:
        return Check(check, OK, "no FTP login in the last 24 h (the camera uploads on events)")
    return Check(check, OK, did)


def check_ftp(sections: Sections, variables: dict[str, Any], host: str) -> list[Check]:
    """One `ftp:<camera>` line per recording camera, and `ftp:other` for logins as no
    camera's user; nothing when no camera records."""
    names = recording_cameras(variables)
    if not names or not isinstance(variables.get("recordings"), dict):
        return []
    sec = _sec(sections, "ftp:activity")
    if sec.rc != 0:
        return [
            Check(
                "ftp",
                WARN,
                f"FTP activity not read: {_first_line(sec.text, 'no answer')}",
                "presence-appliance install (it installs the recordings program)",
            )
        ]
    try:
        activity = parse_activity(host, sec.text)
    except RecordingsError as err:
        return [Check("ftp", WARN, f"FTP activity not read: {err}")]
    ips = _camera_ips(variables)
    checks = [_camera_line(name, ips.get(name, ""), activity.cameras.get(name)) for name in names]
    if activity.other_failed_logins:
        checks.append(
            Check(
                "ftp:other",
                WARN,
                f"24 h: {activity.other_failed_logins} failed logins as no camera's user"
                f" (from {', '.join(activity.other_clients) or '?'})",
                f"a device on the camera network guesses FTP users: see {LOG}",
            )
        )
    return checks


def check_storage(sections: Sections, variables: dict[str, Any]) -> list[Check]:
    """`recordings:storage`: mounted when it must be, and at least min_free_mb free."""
    settings = variables.get("recordings")
    if not isinstance(settings, dict) or not recording_cameras(variables):
        return []
    sec = _sec(sections, "recordings:storage")
    lines = sec.text.splitlines()
    state = lines[0].strip() if lines else ""
    if sec.rc != 0 or state not in ("mounted", "not-mounted"):
        return [
            Check(
                "recordings:storage",
                FAIL,
                f"cannot read it: {_first_line(sec.text, 'no answer')}",
                "presence-appliance install (it creates the folder)",
            )
        ]
    rows = parse_df("\n".join(lines[1:]))
    use = rows[0] if rows else None
    if settings.get("require_mount") is True and state != "mounted":
        return [
            Check(
                "recordings:storage",
                FAIL,
                "not a mount point (recordings.require_mount): vsftpd does not start,"
                " the cameras' uploads fail",
                "mount the USB disk there (and in /etc/fstab), then `sudo systemctl start vsftpd`",
            )
        ]
    if use is None or use.total == 0:
        return [Check("recordings:storage", WARN, "cannot read its free space")]
    min_free = settings.get("min_free_mb", 1024)
    min_free = min_free if isinstance(min_free, int) and not isinstance(min_free, bool) else 1024
    where = "its own file system" if use.mount != "/" else "the root file system (SD card)"
    text = (
        f"{human_bytes(use.free * 1024)} free of {human_bytes(use.total * 1024)} on {where}"
        f" ({use.mount}); the prune keeps {min_free} MB"
    )
    if use.free < min_free * 1024:
        return [
            Check(
                "recordings:storage",
                WARN,
                text,
                "the prune runs every 5 minutes (`journalctl -u presence-recordings-prune`);"
                " `presence-appliance recordings prune` frees it now",
            )
        ]
    return [Check("recordings:storage", OK, text)]
