"""Listener and probe for the firewall namespace tests: does a TCP/UDP packet get through?

`listen PORTS...` answers every TCP connection and UDP datagram on those ports with the
peer's address (so a test sees source NAT). `probe tcp|udp HOST PORT [--source A]` prints the
answer and exits 0, or exits 1 when nothing answers within --timeout seconds.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys


def listen(tcp: list[int], udp: list[int]) -> None:
    selector = selectors.DefaultSelector()
    for port in tcp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(16)
        selector.register(sock, selectors.EVENT_READ, "tcp")
    for port in udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
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
                answer = sock.recv(256)
            else:
                sock.sendto(b"probe", (host, port))
                answer = sock.recv(256)
        except OSError as err:
            print(f"no answer: {err}")
            return 1
    print(answer.decode().strip())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("--tcp", type=int, nargs="*", default=[])
    lp.add_argument("--udp", type=int, nargs="*", default=[])
    pp = sub.add_parser("probe")
    pp.add_argument("kind", choices=["tcp", "udp"])
    pp.add_argument("host")
    pp.add_argument("port", type=int)
    pp.add_argument("--source")
    pp.add_argument("--timeout", type=float, default=1.5)
    args = parser.parse_args()
    if args.cmd == "listen":
        listen(args.tcp, args.udp)
    else:
        sys.exit(probe(args.kind, args.host, args.port, args.source, args.timeout))


if __name__ == "__main__":
    main()
