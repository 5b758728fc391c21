"""The project's hostile camera (a test double): every way a camera's answer could attack the proxy.

It echoes its path (secure id included) in pages and headers, answers with wrong, missing or
compressed types, error pages of every kind, endless bodies, and an HTML snapshot whose script
tries to act on other cameras from the dashboard's origin. Modes (`set_mode`):

- e404, e403, e401, e500, e418, e451: that status with an HTML page echoing the path;
- html200: 200 with that page, on every path; redirect: 302 to its own path;
- escaped: ping with JSON-escaped slashes (the secure id as `\\/`);
- wrongtype: 200 with the right body but a type a browser could run or sniff
  (HTML snapshot, octet-stream playlist, text/plain segment, JavaScript commands);
- notype: 200 with no Content-Type at all;
- gzip: the right type, gzip-compressed although the proxy asks for no coding;
- endless: the right type, no length, a body that never ends (until the reader goes);
- headers: the right type and body, plus every header that could carry or steer something;
- attack: the snapshot is an HTML page that loads a script from this camera's
  floodlight_get_config path; that script reads another camera's snapshot and POSTs
  changestatus=off to every camera (what issue 11 reproduced in Chromium).

Every request is recorded (method and path, secure id included: the test holds it anyway).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SNAPSHOT = bytes.fromhex("ffd8ffe000104a464946000101") + b"\x00" * 64 + b"\xff\xd9"
SEGMENT = b"\x47" + b"\x00" * 187  # one MPEG-TS packet
PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nlive0000000001.ts\n"

# The script an `attack` snapshot loads: run in the dashboard's origin it could act on any camera.
ATTACK_SCRIPT = """
window.__pwned = true;
fetch('/cameras/nord/live/snapshot_720.jpg').then(r => r.blob()).then(b => { window.__stolen = b.size; });
for (const name of ['nord', 'garage', 'evil']) {
  fetch('/cameras/' + name + '/command/changestatus?status=off', {method: 'POST'});
}
"""
ATTACK_PAGE = (
    "<html><body><h1>snapshot</h1>"
    "<script src='../command/floodlight_get_config'></script>"
    "<script>window.__pwned_inline = true; fetch('../command/changestatus?status=off', "
    "{method: 'POST'});</script></body></html>"
)


def _kind(path: str) -> str:
    if path.endswith(".m3u8"):
        return "playlist"
    if path.endswith(".ts"):
        return "segment"
    if path.endswith(".jpg"):
        return "snapshot"
    return "command"


RIGHT_TYPES = {
    "playlist": "application/vnd.apple.mpegurl",
    "segment": "video/mp2t",
    "snapshot": "image/jpeg",
    "command": "application/json",
}
WRONG_TYPES = {
    "playlist": "application/octet-stream",
    "segment": "text/plain",
    "snapshot": "text/html",
    "command": "application/javascript",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        ctype: str | None,
        body: bytes,
        headers: dict[str, str],
        length: bool = True,
    ) -> None:
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _endless(self, ctype: str) -> None:
        # No length and no end: only the reader going away (or 60 s) stops it.
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.wfile.write(b"\x47" * 65536)
                self.server.endless_bytes += 65536
        except OSError:
            pass

    def _body(self, kind: str, secure_id: str) -> bytes:
        if kind == "playlist":
            return PLAYLIST.encode()
        if kind == "segment":
            return SEGMENT
        if kind == "snapshot":
            return SNAPSHOT
        me = f"http://{self.server.server_address[0]}/{secure_id}"
        return json.dumps({"local_url": me, "product_name": "Evil", "mode": "auto"}).encode()

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path))
        me = f"http://{self.server.server_address[0]}{self.path}"
        echo = {
            "Location": me,
            "Content-Location": me,
            "Link": f"<{me}>; rel=self",
            "Refresh": f"0; url={me}",
            "Set-Cookie": f"where={self.path}; Path={self.path}",
            "WWW-Authenticate": f'Basic realm="{self.path}"',
        }
        path = self.path.split("?", 1)[0]
        secure_id = path.split("/")[1] if path.count("/") > 1 else ""
        kind = _kind(path)
        mode = self.server.mode
        page = f"<html><body><h1>Not here: {self.path}</h1><a href='{me}'>{me}</a></body></html>"
        if mode == "wrongtype":
            body = ATTACK_PAGE.encode() if kind == "snapshot" else self._body(kind, secure_id)
            self._send(200, WRONG_TYPES[kind], body, {})
        elif mode == "notype":
            self._send(200, None, self._body(kind, secure_id), {})
        elif mode == "gzip":
            body = gzip.compress(self._body(kind, secure_id))
            self._send(200, RIGHT_TYPES[kind], body, {"Content-Encoding": "gzip"})
        elif mode == "endless":
            self._endless(RIGHT_TYPES[kind])
        elif mode == "headers":
            extra = {
                **echo,
                "X-Debug-Path": path,
                "X-Powered-By": f"evil {path}",
                "Content-Disposition": f'attachment; filename="{secure_id}.html"',
                "Cache-Control": "public, max-age=31536000",
                "Expires": "Thu, 01 Jan 2099 00:00:00 GMT",
                "Last-Modified": "Thu, 01 Jan 2015 00:00:00 GMT",
                "ETag": f'"{secure_id}"',
                "Accept-Ranges": "bytes",
                "Access-Control-Allow-Origin": "*",
                "X-Accel-Redirect": f"/{secure_id}/command/changestatus",
                "X-Accel-Expires": "99999",
                "Server": f"evil/{secure_id}",
            }
            self._send(200, RIGHT_TYPES[kind], self._body(kind, secure_id), extra)
        elif mode == "attack":
            if kind == "snapshot":
                self._send(200, "text/html", ATTACK_PAGE.encode(), {})
            elif path.endswith("/command/floodlight_get_config"):
                self._send(200, "application/javascript", ATTACK_SCRIPT.encode(), {})
            else:
                self._send(200, RIGHT_TYPES[kind], self._body(kind, secure_id), {})
        elif path.endswith("/command/ping"):
            body = json.dumps(
                {
                    "local_url": f"http://{self.server.server_address[0]}/{secure_id}",
                    "product_name": "Evil",
                }
            )
            body = body.replace("/", "\\/") if mode == "escaped" else body
            self._send(200, "application/json", body.encode(), echo)
        elif path.endswith("/live/index.m3u8"):
            playlist = f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{me.rsplit('/', 1)[0]}/files/poor/index.m3u8\n"
            self._send(200, "application/vnd.apple.mpegurl", playlist.encode(), echo)
        elif mode == "redirect":
            self._send(302, "text/html", page.encode(), echo)
        elif mode == "html200":
            self._send(200, "text/html", page.encode(), echo)
        else:
            status = {"e404": 404, "e500": 500, "e403": 403, "e401": 401, "e418": 418}
            status["e451"] = 451
            self._send(status.get(mode, 404), "text/html", page.encode(), echo)

    do_POST = do_GET
    do_HEAD = do_GET


class EvilCamera:
    """An HTTP server on (host, port) whose every answer is hostile in the chosen way."""

    def __init__(self, host: str, port: int = 80) -> None:
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        # nginx closes a connection after the headers it needed: not worth a traceback.
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._server.mode = "e404"  # type: ignore[attr-defined]
        self._server.requests = []  # type: ignore[attr-defined]
        self._server.lock = threading.Lock()  # type: ignore[attr-defined]
        self._server.stopping = threading.Event()  # type: ignore[attr-defined]
        self._server.endless_bytes = 0  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def set_mode(self, mode: str) -> None:
        """One of the modes in the module docstring."""
        self._server.mode = mode  # type: ignore[attr-defined]

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far."""
        with self._server.lock:  # type: ignore[attr-defined]
            return list(self._server.requests)  # type: ignore[attr-defined]

    @property
    def endless_bytes(self) -> int:
        """Bytes of endless bodies written so far (what a reader took before it went away)."""
        return int(self._server.endless_bytes)  # type: ignore[attr-defined]

    def start(self) -> EvilCamera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()  # type: ignore[attr-defined]
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
