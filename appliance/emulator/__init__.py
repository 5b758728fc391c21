"""An emulated Netatmo Presence camera (local HTTP API, snapshots, live HLS) for the lab, tests and benchmarks.

Camera API, as in docs/netatmo-local-api.md: everything lives under `/<secure-id>/`; GET,
POST and HEAD are answered alike; auth headers and bodies are ignored.

- `command/ping`, `command/floodlight_get_config`, `command/floodlight_set_config?config=JSON`
  (replaces the stored object), `command/changestatus?status=on|off` (409, code 7, when
  already in that state; 404 without `status`); any other command: an HTML error page
  (status 404, or 200 when so configured).
- `live/snapshot_720.jpg` (image/jpeg), `live/index.m3u8` (master playlist with the
  variants poor/low/medium/high), `live/files/<quality>/index.m3u8` (a 3-segment sliding
  window, newest segment = floor(unix_time / 2) - 1), `live/files/<quality>/live%010d.ts`
  (MPEG-TS H.264 + AAC, for sequence numbers near the window; 404 otherwise). All
  qualities serve the same 640x360 stream: an 8-segment cycle made once by ffmpeg and
  re-timed on the fly so that it plays as one endless stream.
- Anything else under the secure id (`vod/...` included): HTML 404. A wrong secure id: HTML 403.

Control API, only on the emulator (a real camera has none, and the appliance's proxy never
forwards it): `/_emulator/...`, GET or POST unless stated, answers are JSON.

- `GET /_emulator/stats`: `{"camera", "requests", "kinds": {"commands", "snapshots",
  "playlists", "segments", "other", "forbidden"}, "paths": {"<path after the secure id>": n},
  "faults": {"<mode>": n}, "connections": {"open", "peak", "total"}}`.
- `POST /_emulator/reset[?scope=counters|all]`: zero the counters; `all` also clears every
  fault and restores the default floodlight config and monitoring "on".
- `/_emulator/fault?mode=none|slow|hang|garbage|html200|down[&delay=S][&path=PREFIX]`:
  make requests whose path after `/<secure-id>/` starts with PREFIX (all when absent)
  misbehave. slow: answer after `delay` s (default 5). hang: never answer until the fault
  is cleared (then answer normally) or `delay` s pass (default 300; then close). garbage:
  status 200, the usual content type, random non-JSON/non-JPEG bytes. html200: an HTML page
  with status 200. down: close the connection without answering. One fault per prefix, the
  longest matching prefix wins; `mode=none` clears the given prefix, or every fault when no
  path is given. Without `mode`: lists the active faults. Answer: `{"faults": [...]}`.
- `/_emulator/state[?monitoring=on|off][&floodlight=JSON]`: the floodlight config,
  monitoring status (after applying the given changes) and FTP export (`ftp`: its config
  without the password, and the last upload's result).
- `POST /_emulator/event`: an event. With FTP export on, the newest 6 s of the live stream
  become an MP4 (remuxed by ffmpeg) uploaded over passive FTP as
  `<path>/YYYY/MM/DD/YYYY-MM-DD-HH.MM-<id>.mp4` (UTC). Answer and `state.ftp.last`:
  `{"result": "ftp-0"|"ftp-3"|"off", "event", "file", "time", ["bytes"] | ["stage", "error"]}`.
  The server must be an IP address inside the networks given by `ftp_allow`
  (`emulate --ftp-allow CIDR`; loopback only by default), else `ftp-3` without connecting.

FTP export (guessed shape, see ftp_export.py): `command/ftp_get_config` answers the settings
`{"on_off", "server", "port", "user", "password", "path"}`; `command/ftp_set_config?config=JSON`
merges the given keys (a path with `..`, a port out of range, text with spaces or control
characters: 400, code 21, nothing changed).

Python: `EmulatedCamera(name, secure_id, host, port).start()` / `.stop()`, or
`CameraFleet.on_loopback(count)`. Command line: `presence-appliance emulate`.
"""

from appliance.emulator.commands import DEFAULT_FLOODLIGHT, DEFAULT_PRODUCT_NAME, CameraState
from appliance.emulator.faults import MODES as FAULT_MODES
from appliance.emulator.media import Media, MediaError, default_cache_dir, load_media
from appliance.emulator.server import CONTROL_PREFIX, CameraFleet, EmulatedCamera

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_FLOODLIGHT",
    "DEFAULT_PRODUCT_NAME",
    "FAULT_MODES",
    "CameraFleet",
    "CameraState",
    "EmulatedCamera",
    "Media",
    "MediaError",
    "default_cache_dir",
    "load_media",
]
