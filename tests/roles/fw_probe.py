"""Listener and probe for the firewall namespace tests: does a TCP/UDP packet get through?

`listen PORTS...` answers every TCP connection and UDP datagram on those ports with the
peer's address (so a test sees source NAT). `probe tcp|udp HOST PORT [--source A]` prints the
answer and exits 0, or exits 1 when nothing answers within --timeout seconds.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import struct
import sys


def listen(tcp: list[int], udp: list[int], address: str = "0.0.0.0") -> None:
    selector = selectors.DefaultSelector()
    for port in tcp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(16)
        selector.register(sock, selectors.EVENT_READ, "tcp")
    for port in udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, port))
        selector.register(sock, selectors.EVENT_READ, "udp")
    print("listening", flush=True)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "tcp":
                conn, peer = sock.accept()
                with conn:
                    conn.sendall(f"from {peer[0]}\n".encode())
            else:
                _, peer = sock.recvfrom(2048)
                sock.sendto(f"from {peer[0]}\n".encode(), peer)


def probe(kind: str, host: str, port: int, source: str | None, timeout: float) -> int:
    family = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, family) as sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        try:
            if kind == "tcp":
                sock.connect((host, port))
                try:
                    answer = sock.recv(256)
                except TimeoutError:
                    answer = b"connected"  # a server that waits for the client (TLS)
            else:
                sock.sendto(b"probe", (host, port))
                answer = sock.recv(256)
        except OSError as err:
            print(f"no answer: {err}")
            return 1
    print(answer.decode().strip())
    return 0


def dns(server: str, name: str, timeout: float) -> int:
    """Ask SERVER for NAME's A records over UDP; print them (exit 1: no answer)."""
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (server, 53))
            answer = sock.recv(2048)
        except OSError as err:
            print(f"no answer: {err}")
            return 1
    count = struct.unpack(">H", answer[6:8])[0]
    at = len(query)
    found = []
    for _ in range(count):
        at += 2 if answer[at] & 0xC0 == 0xC0 else answer.index(b"\0", at) + 1 - at
        rtype, _, _, length = struct.unpack(">HHIH", answer[at : at + 10])
        at += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(answer[at : at + 4]))
        at += length
    print(" ".join(found))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("--tcp", type=int, nargs="*", default=[])
    lp.add_argument("--udp", type=int, nargs="*", default=[])
    lp.add_argument("--address", default="0.0.0.0")
    pp = sub.add_parser("probe")
    pp.add_argument("kind", choices=["tcp", "udp"])
    pp.add_argument("host")
    pp.add_argument("port", type=int)
    pp.add_argument("--source")
    pp.add_argument("--timeout", type=float, default=1.5)
    dp = sub.add_parser("dns")
    dp.add_argument("server")
    dp.add_argument("name")
    dp.add_argument("--timeout", type=float, default=3)
    args = parser.parse_args()
    if args.cmd == "dns":
        sys.exit(dns(args.server, args.name, args.timeout))
    if args.cmd == "listen":
        listen(args.tcp, args.udp, args.address)
    else:
        sys.exit(probe(args.kind, args.host, args.port, args.source, args.timeout))


if __name__ == "__main__":
    main()
