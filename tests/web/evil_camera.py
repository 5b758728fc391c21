"""A badly behaved camera for the leak tests: it echoes its path (secure id included) everywhere it can."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
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
        mode = self.server.mode
        page = f"<html><body><h1>Not here: {self.path}</h1><a href='{me}'>{me}</a></body></html>"
        if path.endswith("/command/ping"):
            secure_id = path.split("/")[1]
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
            status = {"e404": 404, "e500": 500, "e403": 403, "e401": 401}.get(mode, 404)
            self._send(status, "text/html", page.encode(), echo)

    do_POST = do_GET
    do_HEAD = do_GET


class EvilCamera:
    """An HTTP server on (host, port) whose every answer carries the requested path."""

    def __init__(self, host: str, port: int = 80) -> None:
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        # nginx closes a connection after the headers it needed: not worth a traceback.
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._server.mode = "e404"  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def set_mode(self, mode: str) -> None:
        """e404, e403, e401, e500, html200, redirect or escaped (ping with escaped slashes)."""
        self._server.mode = mode  # type: ignore[attr-defined]

    def start(self) -> EvilCamera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
