"""A hostile camera (or hostile Pi) for check and the camera commands: a real HTTP(S) server.

Each test scripts what every path answers, down to the bytes on the socket: wrong types,
endless or 1 GB bodies, a byte at a time, redirects, playlists naming foreign hosts. It
records every connection and request, so a test can show where requests (and the web login)
went. The server closes each connection after one answer; every writer stops at teardown.
"""

from __future__ import annotations

import json
import secrets
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

# A writer that the client never stops (endless body, drip) gives up after this long.
MAX_SERVE_SECONDS = 60.0
MAX_HEAD_BYTES = 64 * 1024
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000 + b"\xff\xd9"
TS = bytes([0x47]) + b"\x00" * 187


class Gone(Exception):
    """The client went away, or the server is stopping: stop writing."""


@dataclass
class Seen:
    """One request as it reached the server."""

    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-case names

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class Peer:
    """The socket of one connection, with writes that stop when the server stops."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping
        self.started = time.monotonic()
        self.sent = 0

    def send(self, data: bytes) -> None:
        if self.stopping.is_set() or time.monotonic() - self.started > MAX_SERVE_SECONDS:
            raise Gone
        try:
            self.sock.sendall(data)
        except (OSError, ValueError):
            raise Gone from None
        self.sent += len(data)

    def pause(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Gone


Behaviour = Callable[[Seen, Peer], None]


def head(status: int, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(
    status: int = 200,
    ctype: str | None = "application/json",
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """A complete answer with a correct Content-Length."""
    data = body.encode() if isinstance(body, str) else body

    def behave(seen: Seen, peer: Peer) -> None:
        fields = {"Content-Length": str(len(data)), "Connection": "close"}
        if ctype is not None:
            fields["Content-Type"] = ctype
        peer.send(head(status, {**fields, **(headers or {})}) + data)

    return behave


def json_answer(value: object, status: int = 200) -> Behaviour:
    return answer(status, "application/json", json.dumps(value))


def endless(ctype: str, chunk: bytes, length: int | None = None, status: int = 200) -> Behaviour:
    """Headers (with LENGTH as Content-Length when given), then CHUNK forever."""

    def behave(seen: Seen, peer: Peer) -> None:
        fields = {"Content-Type": ctype, "Connection": "close"}
        if length is not None:
            fields["Content-Length"] = str(length)
        peer.send(head(status, fields))
        block = chunk * max(1, 65536 // len(chunk))
        while True:
            peer.send(block)

    return behave


def drip(data: bytes, interval: float = 0.05) -> Behaviour:
    """The whole answer (head included), one byte every INTERVAL seconds, then forever more."""

    def behave(seen: Seen, peer: Peer) -> None:
        for byte in data:
            peer.send(bytes([byte]))
            peer.pause(interval)
        while True:
            peer.send(b" ")
            peer.pause(interval)

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    return answer(status, "text/plain", b"moved", {"Location": location})


def playlist(text: str, ctype: str = "application/vnd.apple.mpegurl") -> Behaviour:
    return answer(200, ctype, text)


MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=144000\nfiles/poor/index.m3u8\n"
VARIANT = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nlive0000000001.ts\n"


@dataclass
class HostileCamera:
    """A camera at http(s)://HOST:PORT/<secure-id>/ (or a Pi at /cameras/<name>/ with `pi=True`).

    `routes` maps a path after the prefix ("command/ping") to its behaviour; it starts as a
    healthy camera, and a test replaces what it wants to be hostile.
    """

    host: str = "127.0.0.1"
    port: int = 0
    name: str = "evil"
    secure_id: str = field(default_factory=lambda: secrets.token_hex(16))
    pi: bool = False
    tls: tuple[Path, Path] | None = None  # (certificate, key)
    routes: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    sent: int = 0  # body and head bytes written, all connections

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((self.host, self.port))
        self.port = self._listener.getsockname()[1]
        self._context: ssl.SSLContext | None = None
        if self.tls:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
        self.healthy()

    # -- what it answers

    @property
    def prefix(self) -> str:
        return f"/cameras/{self.name}/" if self.pi else f"/{self.secure_id}/"

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def healthy(self) -> None:
        """Answer as a healthy camera on every path check and the commands use."""
        local_url = f"/cameras/{self.name}" if self.pi else f"http://{self.host}/{self.secure_id}"
        self.routes = {
            "command/ping": json_answer({"local_url": local_url, "product_name": "Evil"}),
            "command/floodlight_get_config": json_answer(
                {"mode": "auto", "intensity": 100, "night": {"person": True}}
            ),
            "command/floodlight_set_config": json_answer({"status": "ok"}),
            "command/changestatus": json_answer({"status": "ok"}),
            "live/snapshot_720.jpg": answer(200, "image/jpeg", JPEG),
            "live/index.m3u8": playlist(MASTER),
            "live/files/poor/index.m3u8": playlist(VARIANT),
            "live/files/poor/live0000000001.ts": answer(200, "video/mp2t", TS * 8),
        }

    def outside(self) -> list[Seen]:
        """Requests that reached this server outside the camera's prefix."""
        return [s for s in self.requests if not s.path.startswith(self.prefix)]

    # -- serving

    def start(self) -> HostileCamera:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for sock in list(self._open):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        sock: socket.socket = conn
        peer: Peer | None = None
        try:
            conn.settimeout(5)
            if self._context is not None:
                sock = self._context.wrap_socket(conn, server_side=True)
            seen = self._read_request(sock)
            if seen is None:
                return
            with self._lock:
                self.requests.append(seen)
            path = seen.path
            behaviour = (
                self.routes.get(path[len(self.prefix) :]) if path.startswith(self.prefix) else None
            )
            peer = Peer(sock, self._stopping)
            (behaviour or answer(404, "text/plain", b"no"))(seen, peer)
        except (Gone, OSError, ssl.SSLError, ValueError):
            pass
        finally:
            if peer is not None:
                with self._lock:
                    self.sent += peer.sent
            with self._lock:
                self._open.discard(conn)
            with suppress(OSError):
                sock.close()

    @staticmethod
    def _read_request(sock: socket.socket) -> Seen | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk or len(data) > MAX_HEAD_BYTES:
                return None
            data += chunk
        text = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        request_line, *header_lines = text.split("\r\n")
        method, target, _ = [*request_line.split(" "), "", ""][:3]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Seen(method, target, headers)


@contextmanager
def hostile_camera(**options: object) -> Iterator[HostileCamera]:
    camera = HostileCamera(**options).start()  # type: ignore[arg-type]
    try:
        yield camera
    finally:
        camera.stop()
