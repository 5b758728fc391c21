"""The emulated camera's FTP export: its settings, and one event's MP4 cut and uploaded over passive FTP.

What a real Presence does is only partly known (docs/netatmo-local-api.md): the commands
`ftp_get_config` / `ftp_set_config?config=JSON` (`{"on_off":1}` seen), MP4 files under
`<root>/YYYY/MM/DD/YYYY-MM-DD-HH.MM-<id>.mp4`, and results reported to the cloud as
`ftp-0` (ok) and `ftp-3` (network error). The other keys (server, port, user, password,
path) and the merge of a partial object are this emulator's guess.

The emulator is a peer the tests drive with hostile settings, so it is strict: the server
must be an IP address inside the networks it was told it may reach (no DNS, no other
host), the path is plain segments (no `..`), and no text it reports carries the password.
"""

from __future__ import annotations

import contextlib
import copy
import ftplib
import ipaddress
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FTP_CONFIG: dict[str, Any] = {
    "on_off": 0,
    "server": "",
    "port": 21,
    "user": "",
    "password": "",
    "path": "/",
}
# Only loopback unless the emulator is told otherwise (`emulate --ftp-allow CIDR`).
DEFAULT_ALLOWED = ("127.0.0.0/8",)
FTP_TIMEOUT = 10.0  # seconds per FTP socket operation
# The whole upload, whatever the server does (an endless multi-line reply never trips the
# per-operation timeout): then the connection is cut.
UPLOAD_DEADLINE = 60.0
FFMPEG_TIMEOUT = 30.0
CLIP_SEGMENTS = 3  # a clip is the newest 3 segments of the live stream (6 s)
MAX_TEXT = 128
MAX_PATH = 255
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# FTP is line-based: no control characters anywhere; a password may hold spaces (the rest of
# the PASS line is the password), a user name or server may not.
_PRINTABLE = re.compile(r"[\x21-\x7e]*")
_PASSWORD = re.compile(r"[\x20-\x7e]*")


class FtpConfigError(ValueError):
    """A config the emulated camera refuses; the message names the key, never its value."""


def validate_config(update: dict[str, Any]) -> dict[str, Any]:
    """The known keys of UPDATE, checked and normalised; unknown keys are dropped."""
    clean: dict[str, Any] = {}
    for key, value in update.items():
        if key == "on_off":
            if value not in (0, 1, True, False, "0", "1"):
                raise FtpConfigError("on_off must be 0 or 1")
            clean[key] = int(value)
        elif key == "port":
            text = str(value)
            if isinstance(value, bool) or not text.isascii() or not text.isdigit():
                raise FtpConfigError("port must be a number")
            if not 1 <= int(text) <= 65535:
                raise FtpConfigError("port must be 1-65535")
            clean[key] = int(text)
        elif key in ("server", "user", "password"):
            pattern = _PASSWORD if key == "password" else _PRINTABLE
            if not isinstance(value, str) or len(value) > MAX_TEXT or not pattern.fullmatch(value):
                raise FtpConfigError(f"{key} must be printable text")
            clean[key] = value
        elif key == "path":
            clean[key] = "/" + "/".join(path_segments(value))
    return clean


def path_segments(path: Any) -> list[str]:
    """The folders of an upload path ('/' -> []); FtpConfigError for '..', '.' or odd names."""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        raise FtpConfigError("path must be text")
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or set(segment) == {"."}:
            raise FtpConfigError("path must be plain folder names (no '..')")
    return segments


def clip_name(now: float, event_id: str) -> str:
    """`YYYY/MM/DD/YYYY-MM-DD-HH.MM-<id>.mp4` for an event at unix time NOW (UTC)."""
    t = time.gmtime(now)
    day = time.strftime("%Y/%m/%d", t)
    return f"{day}/{time.strftime('%Y-%m-%d-%H.%M', t)}-{event_id}.mp4"


@dataclass
class FtpExport:
    """The FTP settings and the last upload's result; thread-safe."""

    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in DEFAULT_ALLOWED)
    )
    config: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_FTP_CONFIG))
    last: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def allowing(cls, networks: Sequence[str]) -> FtpExport:
        return cls(allowed=tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def get(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.config)

    def set(self, update: dict[str, Any]) -> None:
        """Merge UPDATE into the settings (a partial object, like `{"on_off":1}`, keeps the rest)."""
        clean = validate_config(update)
        with self._lock:
            self.config.update(clean)

    def reset(self) -> None:
        with self._lock:
            self.config = copy.deepcopy(DEFAULT_FTP_CONFIG)
            self.last = None

    def public(self) -> dict[str, Any]:
        """Settings and last result for /_emulator/state: the password only said to be set."""
        with self._lock:
            shown = {k: v for k, v in self.config.items() if k != "password"}
            shown["password_set"] = bool(self.config["password"])
            return {"config": shown, "last": copy.deepcopy(self.last)}

    def upload_event(self, cut_clip: Callable[[Path], None], now: float) -> dict[str, Any]:
        """Cut one clip and upload it; the result (also kept as `last`) is `ftp-0` or `ftp-3`."""
        config = self.get()
        event_id = secrets.token_hex(12)
        name = clip_name(now, event_id)
        if not config["on_off"]:
            result: dict[str, Any] = {"result": "off", "event": event_id}
        else:
            result = {
                "event": event_id,
                "file": name,
                **_upload(config, self.allowed, cut_clip, name),
            }
        result["time"] = now
        with self._lock:
            self.last = result
        return copy.deepcopy(result)


def _upload(
    config: dict[str, Any],
    allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    cut_clip: Callable[[Path], None],
    name: str,
) -> dict[str, Any]:
    password = str(config["password"])

    def failed(stage: str, err: BaseException | str) -> dict[str, Any]:
        text = str(err) or type(err).__name__
        if password:
            text = text.replace(password, "<password>")
        text = re.sub(r"[^\x20-\x7e]", "?", text)[:120]
        return {"result": "ftp-3", "stage": stage, "error": text}

    try:
        server = ipaddress.ip_address(str(config["server"]))
    except ValueError:
        return failed("connect", "server is not an IP address")
    if not any(server in network for network in allowed):
        return failed("connect", "server is outside the networks this camera may reach")
    folders = path_segments(config["path"]) + name.split("/")[:-1]
    with tempfile.TemporaryDirectory(prefix="emulator-clip-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        try:
            cut_clip(clip)
        except (OSError, subprocess.SubprocessError, RuntimeError) as err:
            return failed("clip", err)
        stage = "connect"
        # ftplib's default (trust_server_pasv_ipv4_address = False) connects the data channel
        # to the control connection's peer, whatever address a PASV answer names.
        ftp = ftplib.FTP(timeout=FTP_TIMEOUT)
        # The flag is set before the socket is cut: the blocked read can fail while the timer's
        # thread is still alive, so "is the timer alive" would misname a deadline as a plain error.
        timed_out = threading.Event()
        watchdog = threading.Timer(UPLOAD_DEADLINE, _cut, (ftp, timed_out))
        watchdog.daemon = True
        watchdog.start()
        try:
            ftp.connect(str(server), int(config["port"]))
            stage = "login"
            ftp.login(str(config["user"]), password)
            ftp.set_pasv(True)
            stage = "upload"
            for folder in folders:
                try:
                    ftp.cwd(folder)
                except ftplib.error_perm:
                    ftp.mkd(folder)
                    ftp.cwd(folder)
            with clip.open("rb") as handle:
                ftp.storbinary(f"STOR {name.rsplit('/', 1)[-1]}", handle)
            size = clip.stat().st_size
            # Stored already; a rude goodbye changes nothing.
            with contextlib.suppress(OSError, EOFError, ftplib.Error):
                ftp.quit()
            return {"result": "ftp-0", "bytes": size}
        except (OSError, EOFError, ftplib.Error) as err:
            if timed_out.is_set():
                return failed(stage, f"no complete upload within {UPLOAD_DEADLINE:g} s")
            return failed(stage, err)
        finally:
            watchdog.cancel()
            ftp.close()


def _cut(ftp: ftplib.FTP, timed_out: threading.Event) -> None:
    """End a connection that outlived the upload's deadline (the blocked read then fails)."""
    timed_out.set()
    sock = ftp.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def cut_mp4(segments: Sequence[bytes], out: Path) -> None:
    """Remux MPEG-TS segments (H.264 + AAC) into one MP4 file, without re-encoding."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg not found")
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "mpegts", "-i", "pipe:0", "-c", "copy", "-movflags", "+faststart",
        "-f", "mp4", str(out),
    ]  # fmt: skip
    result = subprocess.run(
        command, input=b"".join(segments), capture_output=True, timeout=FFMPEG_TIMEOUT, check=False
    )
    if result.returncode != 0 or not out.exists():
        last = (result.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"ffmpeg could not make the clip: {last}")
