"""Stand-in for Netatmo's VPN endpoint in pa-wan: count UDP datagrams per port into a JSON file."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
from pathlib import Path


def serve(address: str, ports: list[int], out: Path) -> None:
    """Count datagrams to ADDRESS:PORT for each port, rewriting OUT after every one."""
    counts = {str(port): 0 for port in ports}
    selector = selectors.DefaultSelector()
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, port))
        selector.register(sock, selectors.EVENT_READ, str(port))
    _write(out, counts)
    while True:
        for key, _ in selector.select():
            key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
            counts[key.data] += 1
            _write(out, counts)


def _write(out: Path, counts: dict[str, int]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(counts))
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--ports", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    serve(args.address, args.ports, args.out)


if __name__ == "__main__":
    main()
