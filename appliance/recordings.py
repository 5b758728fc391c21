"""Read and prune each Pi's recordings over SSH (the recordings role's presence-recordings)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any

from appliance import pi_shell, pi_text
from appliance.pi_text import clean
from appliance.schema import CAMERA_NAME

HELPER = "/usr/local/sbin/presence-recordings"
CONFIG = "/etc/presence-appliance/recordings.json"
SSH_TIMEOUT = 60.0
# A prune walks the whole disk and deletes: give it longer.
PRUNE_TIMEOUT = 300.0
# What one Pi may answer at most (the helper lists at most 20000 files).
MAX_ANSWER = 16 * 1024 * 1024
MAX_PATH = 512
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: any later "upload time" is nonsense


class RecordingsError(Exception):
    """The recordings of one Pi could not be read or pruned; one line."""


@dataclass(frozen=True)
class StoredFile:
    camera: str
    path: str  # below the camera's folder, e.g. 2026/11/30/2026-11-30-10.00-ab.mp4
    size: int
    mtime: int  # unix time (upload time)
    reason: str = ""  # prune: why it goes

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "camera": self.camera,
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class PiAnswer:
    """One Pi's files (list) or deletions (prune), or the reason there are none."""

    appliance: str
    files: list[StoredFile] = field(default_factory=list)
    free_bytes: int = 0
    truncated: bool = False
    dry_run: bool = False
    skipped: int = 0  # entries of the answer that were not well-formed
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "appliance": self.appliance,
            "files": [f.to_dict() for f in self.files],
            "free_bytes": self.free_bytes,
            "truncated": self.truncated,
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "error": self.error,
        }


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    return value if ok else None


def _relative_path(value: Any) -> str | None:
    """A path below a camera's folder as the Pi names it, or None when it is anything odd."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATH:
        return None
    if pi_text.UNSAFE.search(value) or value.startswith("/") or "\\" in value:
        return None
    if any(part in ("", ".", "..") for part in value.split("/")):
        return None
    return value


def _file(raw: Any, with_reason: bool) -> StoredFile | None:
    if not isinstance(raw, dict):
        return None
    camera, path = raw.get("camera"), _relative_path(raw.get("path"))
    size, mtime = _count(raw.get("size")), _count(raw.get("mtime"))
    if not isinstance(camera, str) or not CAMERA_NAME.fullmatch(camera):
        return None
    if path is None or size is None or mtime is None or mtime > MAX_TIME:
        return None
    reason = clean(raw.get("reason", "")) if with_reason else ""
    return StoredFile(camera, path, size, mtime, reason)


def parse_answer(appliance: str, text: str, prune: bool) -> PiAnswer:
    """The helper's `list` or `prune --json` answer, treated as hostile input."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RecordingsError(
            f"{appliance}: the recordings program answered something not JSON"
        ) from None
    key = "deleted" if prune else "files"
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise RecordingsError(f"{appliance}: the recordings program's answer has no {key} list")
    files = [_file(raw, prune) for raw in data[key]]
    kept = [f for f in files if f is not None]
    return PiAnswer(
        appliance=appliance,
        files=kept,
        free_bytes=_count(data.get("free_bytes")) or 0,
        truncated=data.get("truncated") is True,
        dry_run=data.get("dry_run") is True,
        skipped=len(files) - len(kept),
    )


def remote_command(variables: dict[str, Any], args: list[str]) -> list[str]:
    """The helper's argument list on the Pi, as root (sudo, as Ansible's become)."""
    helper = str(variables.get("recordings_helper") or HELPER)
    config = str(variables.get("recordings_config") or CONFIG)
    command = [helper, "--config", config, *args]
    if pi_shell.is_local(variables) and os.geteuid() == 0:
        return command  # already root on this machine
    return ["sudo", "-n", *command]


def _run(appliance: str, variables: dict[str, Any], args: list[str], timeout: float) -> str:
    try:
        return pi_shell.output(
            appliance,
            variables,
            remote_command(variables, args),
            timeout,
            absent="no recordings on this Pi (recordings off, or run install)",
            limit=MAX_ANSWER,
        )
    except pi_shell.PiShellError as err:
        if err.kind == "too_big":
            raise RecordingsError(
                f"{appliance}: the answer is larger than {MAX_ANSWER} bytes"
            ) from None
        raise RecordingsError(str(err)) from None


def recording_cameras(variables: dict[str, Any]) -> list[str]:
    """Names of the cameras of one appliance that have recordings: true."""
    cameras = variables.get("cameras")
    return [
        str(cam["name"])
        for cam in (cameras if isinstance(cameras, list) else [])
        if isinstance(cam, dict) and cam.get("recordings") is True and "name" in cam
    ]


def list_recordings(
    inventory: Any, camera: str | None = None, since: datetime.date | None = None
) -> list[PiAnswer]:
    """Every Pi's stored recordings (only the Pis serving CAMERA when it is given)."""
    args = ["list", "--json"]
    if camera:
        if not CAMERA_NAME.fullmatch(camera):
            raise RecordingsError(f"--camera: {clean(camera)!r} is not a camera name")
        args += ["--camera", camera]
    if since:
        args += ["--since", since.isoformat()]
    answers = []
    for appliance in inventory.appliances:
        names = [c.get("name") for c in appliance.vars.get("cameras") or [] if isinstance(c, dict)]
        if camera and camera not in names:
            continue
        try:
            text = _run(appliance.name, appliance.vars, args, SSH_TIMEOUT)
            answers.append(parse_answer(appliance.name, text, prune=False))
        except RecordingsError as err:
            answers.append(PiAnswer(appliance=appliance.name, error=str(err)))
    return answers


def prune(inventory: Any, dry_run: bool) -> list[PiAnswer]:
    """Prune every Pi that has recordings on, as its timer would (or only say what would go)."""
    args = ["prune", "--json", *(["--dry-run"] if dry_run else [])]
    answers = []
    for appliance in inventory.appliances:
        if not recording_cameras(appliance.vars):
            continue
        try:
            text = _run(appliance.name, appliance.vars, args, PRUNE_TIMEOUT)
            answers.append(parse_answer(appliance.name, text, prune=True))
        except RecordingsError as err:
            answers.append(PiAnswer(appliance=appliance.name, error=str(err), dry_run=dry_run))
    return answers


ACTIVITY_COUNTS = (
    "logins",
    "failed_logins",
    "uploads",
    "upload_bytes",
    "failed_uploads",
    "refused",
)


@dataclass
class PiActivity:
    """One Pi's FTP activity per camera (from vsftpd's log), or the reason there is none."""

    appliance: str
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_failed_logins: int = 0
    other_clients: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "appliance": self.appliance,
            "cameras": self.cameras,
            "other": {"failed_logins": self.other_failed_logins, "clients": self.other_clients},
            "error": self.error,
        }


def _clients(value: Any) -> list[str]:
    """Client addresses as the Pi reports them: IP addresses only, at most 10."""
    found = []
    for item in value if isinstance(value, list) else []:
        try:
            if isinstance(item, str) and "%" not in item:
                found.append(str(ipaddress.ip_address(item)))
        except ValueError:
            continue
    return found[:10]


def parse_activity(appliance: str, text: str) -> PiActivity:
    """The helper's `activity` answer, treated as hostile input."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RecordingsError(
            f"{appliance}: the recordings program answered something not JSON"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict):
        raise RecordingsError(f"{appliance}: the recordings program's answer has no cameras")
    cameras: dict[str, dict[str, Any]] = {}
    for name, raw in data["cameras"].items():
        if (
            not isinstance(name, str)
            or not CAMERA_NAME.fullmatch(name)
            or not isinstance(raw, dict)
        ):
            continue
        entry: dict[str, Any] = {key: _count(raw.get(key)) or 0 for key in ACTIVITY_COUNTS}
        last = _count(raw.get("last")) or 0
        entry["last"] = last if last <= MAX_TIME else 0
        entry["clients"] = _clients(raw.get("clients"))
        cameras[name] = entry
    other = data.get("other") if isinstance(data.get("other"), dict) else {}
    return PiActivity(
        appliance=appliance,
        cameras=cameras,
        other_failed_logins=_count(other.get("failed_logins")) or 0,
        other_clients=_clients(other.get("clients")),
    )


def activity(inventory: Any, hours: int) -> list[PiActivity]:
    """Every recording Pi's FTP logins, refusals and uploads per camera in the last HOURS."""
    answers = []
    for appliance in inventory.appliances:
        if not recording_cameras(appliance.vars):
            continue
        try:
            args = ["activity", "--json", "--hours", str(hours)]
            text = _run(appliance.name, appliance.vars, args, SSH_TIMEOUT)
            answers.append(parse_activity(appliance.name, text))
        except RecordingsError as err:
            answers.append(PiActivity(appliance=appliance.name, error=str(err)))
    return answers


def human_bytes(count: int) -> str:
    """Sizes as the recordings commands print them (1024-based, named KB/MB/GB)."""
    return pi_text.human_bytes(count, ("B", "KB", "MB", "GB"))


def when(epoch: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")
