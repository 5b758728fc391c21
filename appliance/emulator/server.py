"""The HTTP server of an emulated camera: routing, fault injection and the /_emulator/ control API."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from appliance.emulator import playlists
from appliance.emulator.commands import (
    DEFAULT_PRODUCT_NAME,
    HTML_TYPE,
    JSON_TYPE,
    Answer,
    CameraState,
    html_answer,
    json_answer,
    run_command,
)
from appliance.emulator.faults import Fault, FaultBook, FaultError
from appliance.emulator.ftp_export import CLIP_SEGMENTS, DEFAULT_ALLOWED, FtpExport, cut_mp4
from appliance.emulator.media import Media, load_media, snapshot
from appliance.emulator.stats import Stats

CONTROL_PREFIX = "_emulator"
# Idle keep-alive connections are closed after this long (nginx's upstream keepalive
# timeout is 60 s, so nginx normally closes first).
IDLE_TIMEOUT = 120.0
MAX_BODY = 1 << 20
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
JPEG_TYPE = "image/jpeg"
NO_CACHE = (("Cache-Control", "no-cache"),)

_QUALITY = "|".join(playlists.QUALITIES)
_VARIANT = re.compile(rf"live/files/({_QUALITY})/index\.m3u8")
_SEGMENT = re.compile(rf"live/files/({_QUALITY})/live(\d{{10}})\.ts")


def classify(path: str) -> tuple[str, str]:
    """(kind for the counters, content type of a normal answer) of a path after the secure id."""
    if path.startswith("command/"):
        return "commands", JSON_TYPE
    if path == "live/snapshot_720.jpg":
        return "snapshots", JPEG_TYPE
    if path == "live/index.m3u8" or _VARIANT.fullmatch(path):
        return "playlists", PLAYLIST_TYPE
    if _SEGMENT.fullmatch(path):
        return "segments", SEGMENT_TYPE
    return "other", HTML_TYPE


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], camera: EmulatedCamera) -> None:
        self.camera = camera
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall
        # for seconds in a network namespace without DNS; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on a connection so it ends now."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback; a client going away is normal for a camera.
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EmulatedPresence"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed
    # ACK then costs ~40 ms per small answer.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)
        self.server.camera.stats.connection_opened()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)
            self.server.camera.stats.connection_closed()

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines contain the secure id: never log them.
        pass

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_POST(self) -> None:
        self._discard_body()
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def _discard_body(self) -> None:
        # Bodies (access_token forms, JSON) are ignored, but must be read for keep-alive.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return
        try:
            remaining = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            remaining = 0
        if remaining > MAX_BODY:
            self.close_connection = True
            return
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)

    def _handle(self, send_body: bool) -> None:
        camera = self.server.camera
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        first, _, rest = url.path.lstrip("/").partition("/")
        if first == CONTROL_PREFIX:
            self._send(camera.control(rest, query, self.command), send_body)
            return
        if not hmac.compare_digest(first.encode(), camera.secure_id.encode()):
            camera.stats.count("forbidden", "(wrong secure id)")
            if self._apply_fault(camera.faults.match(rest), HTML_TYPE, send_body):
                self._send(html_answer(403, "403 Forbidden"), send_body)
            return
        kind, content_type = classify(rest)
        camera.stats.count(kind, rest)
        if self._apply_fault(camera.faults.match(rest), content_type, send_body):
            self._send(camera.answer(rest, query, self._local_url()), send_body)

    def _apply_fault(self, fault: Fault | None, content_type: str, send_body: bool) -> bool:
        """Act out the fault; True when the request should then be answered normally."""
        if fault is None:
            return True
        camera = self.server.camera
        camera.stats.count_fault(fault.mode)
        if fault.mode == "slow":
            if camera.stopping.wait(fault.delay):
                return self._drop()
            return True
        if fault.mode == "hang":
            deadline = time.monotonic() + fault.delay
            while not fault.cleared.wait(0.2):
                if camera.stopping.is_set() or time.monotonic() >= deadline:
                    return self._drop()
            return True
        if fault.mode == "down":
            return self._drop()
        if fault.mode == "garbage":
            # Right status and content type, wrong bytes: neither JSON, nor JPEG, nor MPEG-TS.
            body = b"\x00GARBAGE\x00" + os.urandom(256)
            self._send(Answer(200, content_type, body), send_body)
        elif fault.mode == "html200":
            self._send(html_answer(200, "Welcome"), send_body)
        return False

    def _drop(self) -> bool:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return False

    def _local_url(self) -> str:
        """http://<address the request arrived on>/<secure-id> (port only when not 80)."""
        host, port = self.connection.getsockname()[:2]
        if host.startswith("::ffff:"):
            host = host[len("::ffff:") :]
        if ":" in host:
            host = f"[{host}]"
        where = host if port == 80 else f"{host}:{port}"
        return f"http://{where}/{self.server.camera.secure_id}"

    def _send(self, answer: Answer, send_body: bool) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(answer.body)


class EmulatedCamera:
    """One emulated Netatmo Presence: an HTTP server thread on (host, port).

    The secure id is the first path segment of every camera URL; `/_emulator/...` is the
    control API (see the package docstring). Port 0 picks a free port: read `.port`.
    """

    def __init__(
        self,
        name: str,
        secure_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        product_name: str = DEFAULT_PRODUCT_NAME,
        unknown_command_status: int = 404,
        clock: Callable[[], float] = time.time,
        cache_dir: Path | None = None,
        media: Media | None = None,
        ftp_allow: Sequence[str] = DEFAULT_ALLOWED,
    ) -> None:
        if not secure_id or secure_id == CONTROL_PREFIX or re.search(r"[/\s?#]", secure_id):
            raise ValueError("secure id must be a non-empty path segment")
        if unknown_command_status not in (200, 404):
            raise ValueError(
                f"unknown_command_status must be 200 or 404, not {unknown_command_status}"
            )
        self.name = name
        self.secure_id = secure_id
        self.host = host
        self.product_name = product_name
        self.unknown_command_status = unknown_command_status
        self.clock = clock
        # Where its FTP export may connect (a test's own server; the camera network in the lab).
        self.state = CameraState(ftp=FtpExport.allowing(ftp_allow))
        self.faults = FaultBook()
        self.stats = Stats()
        self.stopping = threading.Event()
        self._requested_port = port
        self._cache_dir = cache_dir
        self._media = media
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        # Never the secure id: reprs end up in logs and test reports.
        return f"EmulatedCamera(name={self.name!r}, host={self.host!r}, port={self.port})"

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """http://host:port/<secure-id>: what a client puts in front of `/command/ping`."""
        return f"{self.origin}/{self.secure_id}"

    @property
    def control_url(self) -> str:
        return f"{self.origin}/{CONTROL_PREFIX}"

    @property
    def media(self) -> Media:
        if self._media is None:
            self._media = load_media(self._cache_dir)
        return self._media

    def start(self) -> EmulatedCamera:
        """Load the media (generating them on first use), bind, and serve in a thread."""
        if self._server is not None:
            return self
        _ = self.media
        server_class = _Server6 if ":" in self.host else _Server
        self.stopping.clear()
        self._server = server_class((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"emulated-camera-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging/slow requests and close every connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._requested_port = int(server.server_address[1])
        self._server = self._thread = None

    def __enter__(self) -> EmulatedCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str, query: dict[str, list[str]], local_url: str) -> Answer:
        """The camera's answer to `/<secure-id>/<path>?<query>` (no faults applied)."""
        now = self.clock()
        if path.startswith("command/"):
            return run_command(
                path[len("command/") :],
                query,
                self.state,
                local_url=local_url,
                product_name=self.product_name,
                unknown_status=self.unknown_command_status,
            )
        if path == "live/snapshot_720.jpg":
            return Answer(200, JPEG_TYPE, snapshot(self.media, self.name, now), NO_CACHE)
        if path == "live/index.m3u8":
            return Answer(200, PLAYLIST_TYPE, playlists.master_playlist().encode(), NO_CACHE)
        if _VARIANT.fullmatch(path):
            return Answer(200, PLAYLIST_TYPE, playlists.variant_playlist(now).encode(), NO_CACHE)
        match = _SEGMENT.fullmatch(path)
        if match and playlists.is_available(int(match[2]), now):
            body = self.media.stream.segment(int(match[2]))
            return Answer(200, SEGMENT_TYPE, body, (("Cache-Control", "max-age=60"),))
        return html_answer(404, "404 Not Found")

    def control(self, path: str, query: dict[str, list[str]], method: str) -> Answer:
        """The /_emulator/<path> control API."""
        try:
            if path == "stats":
                return json_answer({"camera": self.name, **self.stats.report()})
            if path == "reset":
                if method != "POST":
                    return json_answer({"error": "POST /_emulator/reset"}, 405)
                scope = query.get("scope", ["counters"])[-1]
                if scope not in ("counters", "all"):
                    return json_answer({"error": "scope must be counters or all"}, 400)
                self.stats.reset()
                if scope == "all":
                    self.faults.clear()
                    self.state.reset()
                return json_answer({"status": "ok", "scope": scope})
            if path == "fault":
                if "mode" in query:
                    self.faults.set(
                        query["mode"][-1],
                        query.get("delay", [None])[-1],
                        query.get("path", [""])[-1],
                    )
                return json_answer({"faults": self.faults.describe()})
            if path == "state":
                return self._control_state(query)
            if path == "event":
                if method != "POST":
                    return json_answer({"error": "POST /_emulator/event"}, 405)
                return json_answer(self.trigger_event())
        except FaultError as err:
            return json_answer({"error": str(err)}, 400)
        return json_answer({"error": f"no such control endpoint: /{CONTROL_PREFIX}/{path}"}, 404)

    def trigger_event(self) -> dict[str, Any]:
        """An event: when FTP export is on, the newest seconds of video go to the FTP server."""
        now = self.clock()
        newest = playlists.newest_segment(now)
        segments = [
            self.media.stream.segment(n)
            for n in range(max(0, newest - CLIP_SEGMENTS + 1), newest + 1)
        ]
        return self.state.ftp.upload_event(lambda out: cut_mp4(segments, out), now)

    def _control_state(self, query: dict[str, list[str]]) -> Answer:
        if "monitoring" in query:
            status = query["monitoring"][-1]
            if status not in ("on", "off"):
                return json_answer({"error": "monitoring must be on or off"}, 400)
            self.state.change_status(status)
        if "floodlight" in query:
            try:
                config = json.loads(query["floodlight"][-1])
            except ValueError:
                config = None
            if not isinstance(config, dict):
                return json_answer({"error": "floodlight must be a JSON object"}, 400)
            self.state.set_floodlight(config)
        return json_answer(self.state.snapshot())


class CameraFleet:
    """Many emulated cameras started and stopped together (media loaded once)."""

    def __init__(self, cameras: Iterable[EmulatedCamera]) -> None:
        self.cameras = list(cameras)

    @classmethod
    def on_loopback(
        cls,
        count: int,
        *,
        port: int = 0,
        first_address: int = 2,
        name_prefix: str = "camera",
        **options: Any,
    ) -> CameraFleet:
        """`count` cameras on 127.0.0.<first_address + i>, each with a random 32-hex secure id."""
        if count < 1 or first_address < 1 or first_address + count - 1 > 254:
            raise ValueError(f"cannot place {count} cameras from 127.0.0.{first_address}")
        return cls(
            EmulatedCamera(
                f"{name_prefix}-{index + 1}",
                secrets.token_hex(16),
                f"127.0.0.{first_address + index}",
                port,
                **options,
            )
            for index in range(count)
        )

    def start(self) -> CameraFleet:
        try:
            for camera in self.cameras:
                camera.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # In parallel: each server takes up to one poll interval to notice its shutdown.
        stoppers = [threading.Thread(target=camera.stop, daemon=True) for camera in self.cameras]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=10)

    def __enter__(self) -> CameraFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[EmulatedCamera]:
        return iter(self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, index: int) -> EmulatedCamera:
        return self.cameras[index]
