"""A small real FTP server (pyftpdlib) on loopback for the tests: one user chrooted to a folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

USER = "cam-front"
PASSWORD = "ftp-Secret-4711"


@dataclass
class RunningFtp:
    """Where it listens, its user's folder, and who connected (peer addresses, in order)."""

    host: str
    port: int
    root: Path
    connections: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@contextmanager
def ftp_server(
    root: Path, host: str = "127.0.0.1", *, masquerade: str | None = None
) -> Iterator[RunningFtp]:
    """Serve ROOT to USER/PASSWORD (may list, make folders, store) until the block ends.

    masquerade: the address its PASV answers name instead of its own (a lying server).
    """
    root.mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elmw")
    seen = RunningFtp(host, 0, root)

    class Handler(FTPHandler):
        def on_connect(self) -> None:
            seen.connections.append(self.remote_ip)

        def on_login(self, username: str) -> None:
            seen.logins.append(username)

    Handler.authorizer = authorizer
    Handler.timeout = 30
    if masquerade:
        Handler.masquerade_address = masquerade
    server = FTPServer((host, 0), Handler)
    seen.port = int(server.address[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.1, blocking=False)

    thread = threading.Thread(target=serve, name="test-ftp", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close_all()


def files_under(root: Path) -> list[str]:
    """Every file below ROOT, as paths relative to it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def as_config(server: RunningFtp, **overrides: Any) -> dict[str, Any]:
    """The ftp_set_config object that points a camera at SERVER."""
    return {
        "on_off": 1,
        "server": server.host,
        "port": server.port,
        "user": USER,
        "password": PASSWORD,
        "path": "/",
        **overrides,
    }
