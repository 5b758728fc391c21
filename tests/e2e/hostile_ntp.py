"""A TEST DOUBLE for a misbehaving internet NTP server: answers every NTP client request with
the host's time shifted by --offset seconds (the host's clock itself is never touched).

From the Pi's side a server whose answers jump by hours and a Pi clock that jumps by hours
are the same event: the offset between the two changes at once. Run it in the lab's pa-wan
at the upstream's address: `python3 hostile_ntp.py --address 10.203.2.123 --offset 10800`.
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

NTP_EPOCH = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
STRATUM = 2  # a plausible internet server: nothing in the answer itself looks wrong


def ntp_timestamp(seconds: float) -> bytes:
    whole = int(seconds) + NTP_EPOCH
    fraction = int((seconds % 1) * 2**32)
    return struct.pack("!II", whole & 0xFFFFFFFF, fraction)


def answer(request: bytes, offset: float) -> bytes | None:
    """A server-mode (4) reply to a client-mode (3) request, None for anything else."""
    if len(request) < 48 or request[0] & 0x07 != 3:
        return None
    version = (request[0] >> 3) & 0x07
    received = time.time() + offset
    header = struct.pack(
        "!BBbbII4s",
        (0 << 6) | (version << 3) | 4,  # leap 0: synchronised; server mode
        STRATUM,
        request[2],  # echo the client's poll
        -20,  # precision ~1 us
        0x00000100,  # root delay 1/256 s
        0x00000100,  # root dispersion 1/256 s
        b"HOST",
    )
    reference = ntp_timestamp(received - 16)
    origin = request[40:48]  # the client's transmit timestamp, echoed as NTP requires
    return (
        header + reference + origin + ntp_timestamp(received) + ntp_timestamp(time.time() + offset)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=123)
    parser.add_argument("--offset", type=float, required=True, help="seconds added to the time")
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((args.address, args.port))
    print(f"hostile NTP server on {args.address}:{args.port}, {args.offset:+.0f} s", flush=True)
    while True:
        request, client = server.recvfrom(512)
        reply = answer(request, args.offset)
        if reply is not None:
            server.sendto(reply, client)


if __name__ == "__main__":
    main()
