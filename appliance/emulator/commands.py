"""The `command/...` answers of an emulated camera, and the state those commands change."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from appliance.emulator.ftp_export import FtpConfigError, FtpExport

DEFAULT_FLOODLIGHT: dict[str, Any] = {
    "intensity": 100,
    "mode": "auto",
    "night": {"always": False, "person": True, "vehicle": True, "animal": False, "movement": False},
}
DEFAULT_PRODUCT_NAME = "Welcome Netatmo"
JSON_TYPE = "application/json"
HTML_TYPE = "text/html"


@dataclass(frozen=True)
class Answer:
    """What the server sends back: status, content type and body."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(value: Any, status: int = 200) -> Answer:
    return Answer(status, JSON_TYPE, json.dumps(value, separators=(",", ":")).encode())


def html_answer(status: int, title: str) -> Answer:
    """An HTML error page like the camera's web server sends (clients must not parse it)."""
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n"
        f"<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return Answer(status, HTML_TYPE, page.encode())


def command_error(code: int, message: str, status: int) -> Answer:
    return json_answer({"error": {"code": code, "message": message}}, status)


@dataclass
class CameraState:
    """Floodlight config, monitoring status and FTP export settings; thread-safe."""

    floodlight: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_FLOODLIGHT))
    monitoring: str = "on"
    ftp: FtpExport = field(default_factory=FtpExport)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            state = {"floodlight": copy.deepcopy(self.floodlight), "monitoring": self.monitoring}
        return {**state, "ftp": self.ftp.public()}

    def reset(self) -> None:
        with self._lock:
            self.floodlight = copy.deepcopy(DEFAULT_FLOODLIGHT)
            self.monitoring = "on"
        self.ftp.reset()

    def set_floodlight(self, config: dict[str, Any]) -> None:
        with self._lock:
            self.floodlight = copy.deepcopy(config)

    def get_floodlight(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.floodlight)

    def change_status(self, status: str) -> bool:
        """Set monitoring on/off; False when it already was in that state."""
        with self._lock:
            if self.monitoring == status:
                return False
            self.monitoring = status
            return True


def run_command(
    name: str,
    query: dict[str, list[str]],
    state: CameraState,
    *,
    local_url: str,
    product_name: str,
    unknown_status: int,
) -> Answer:
    """The answer of command `name` with the given query parameters."""
    if name == "ping":
        return json_answer({"local_url": local_url, "product_name": product_name})
    if name == "floodlight_get_config":
        return json_answer(state.get_floodlight())
    if name == "floodlight_set_config":
        return _set_floodlight(query, state)
    if name == "changestatus":
        return _change_status(query, state)
    if name == "ftp_get_config":
        return json_answer(state.ftp.get())
    if name == "ftp_set_config":
        return _set_ftp(query, state)
    return html_answer(unknown_status, "404 Not Found")


def _set_floodlight(query: dict[str, list[str]], state: CameraState) -> Answer:
    raw = query.get("config", [""])[-1]
    if not raw:
        return command_error(21, "Missing config", 400)
    try:
        config = json.loads(raw)
    except ValueError:
        return command_error(21, "Invalid config", 400)
    if not isinstance(config, dict):
        return command_error(21, "Invalid config", 400)
    # A reported camera replaces the whole object with what was sent (partial, strings and all).
    state.set_floodlight(config)
    return json_answer({"status": "ok"})


def _set_ftp(query: dict[str, list[str]], state: CameraState) -> Answer:
    raw = query.get("config", [""])[-1]
    try:
        config = json.loads(raw) if raw else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        return command_error(21, "Invalid config", 400)
    try:
        state.ftp.set(config)
    except FtpConfigError as err:
        # The message names the key, never the value (it may be the password).
        return command_error(21, f"Invalid config: {err}", 400)
    return json_answer({"status": "ok"})


def _change_status(query: dict[str, list[str]], state: CameraState) -> Answer:
    if "status" not in query:
        # Seen on a camera: without `status` the command does not route at all.
        return html_answer(404, "404 Not Found")
    status = query["status"][-1]
    if status not in ("on", "off"):
        return command_error(21, "Invalid status", 400)
    if not state.change_status(status):
        return command_error(7, f"Already {status}", 409)
    return json_answer({"status": "ok"})
