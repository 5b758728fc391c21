"""Re-time a cycle of cached MPEG-TS segments so that looping it plays as one endless live stream."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

TS_PACKET_SIZE = 188
TS_SYNC_BYTE = 0x47
NULL_PID = 0x1FFF
# PTS, DTS and the PCR base are 33-bit counters of a 90 kHz clock.
CLOCK_WRAP = 1 << 33
CLOCK_HZ = 90_000


@dataclass(frozen=True)
class _Layout:
    """Where the clock fields and continuity counters of one segment sit."""

    data: bytes
    # (byte offset of a 5-byte PTS/DTS field, its original value)
    stamps: tuple[tuple[int, int], ...]
    # (byte offset of a 6-byte PCR field, original base, original extension)
    pcrs: tuple[tuple[int, int, int], ...]
    # (byte offset of header byte 3, pid, index of this packet among the pid's payload packets)
    counters: tuple[tuple[int, int, int], ...]
    payload_packets: dict[int, int]


def _read_stamp(data: bytes, pos: int) -> int:
    return (
        ((data[pos] >> 1) & 0x07) << 30
        | data[pos + 1] << 22
        | (data[pos + 2] >> 1) << 15
        | data[pos + 3] << 7
        | data[pos + 4] >> 1
    )


def _write_stamp(buf: bytearray, pos: int, value: int) -> None:
    # Keep the 4-bit prefix ('0010', '0011' or '0001') and set the marker bits.
    buf[pos] = (buf[pos] & 0xF0) | ((value >> 29) & 0x0E) | 0x01
    buf[pos + 1] = (value >> 22) & 0xFF
    buf[pos + 2] = ((value >> 14) & 0xFE) | 0x01
    buf[pos + 3] = (value >> 7) & 0xFF
    buf[pos + 4] = ((value << 1) & 0xFE) | 0x01


def _write_pcr(buf: bytearray, pos: int, base: int, ext: int) -> None:
    buf[pos] = (base >> 25) & 0xFF
    buf[pos + 1] = (base >> 17) & 0xFF
    buf[pos + 2] = (base >> 9) & 0xFF
    buf[pos + 3] = (base >> 1) & 0xFF
    buf[pos + 4] = ((base & 0x01) << 7) | 0x7E | ((ext >> 8) & 0x01)
    buf[pos + 5] = ext & 0xFF


def _parse(data: bytes) -> _Layout:
    """Find every PTS, DTS, PCR and continuity counter of a transport stream."""
    if not data or len(data) % TS_PACKET_SIZE:
        raise ValueError(f"not an MPEG-TS file: {len(data)} bytes is not a multiple of 188")
    stamps: list[tuple[int, int]] = []
    pcrs: list[tuple[int, int, int]] = []
    counters: list[tuple[int, int, int]] = []
    seen: dict[int, int] = {}
    for start in range(0, len(data), TS_PACKET_SIZE):
        if data[start] != TS_SYNC_BYTE:
            raise ValueError(f"not an MPEG-TS file: no sync byte at offset {start}")
        pid = ((data[start + 1] & 0x1F) << 8) | data[start + 2]
        if pid == NULL_PID:
            continue
        control = (data[start + 3] >> 4) & 0x03
        has_payload = bool(control & 0x01)
        payload = start + 4
        if control & 0x02:
            af_length = data[start + 4]
            if af_length and data[start + 5] & 0x10:
                pcr = start + 6
                base = (
                    data[pcr] << 25
                    | data[pcr + 1] << 17
                    | data[pcr + 2] << 9
                    | data[pcr + 3] << 1
                    | data[pcr + 4] >> 7
                )
                pcrs.append((pcr, base, ((data[pcr + 4] & 0x01) << 8) | data[pcr + 5]))
            payload = start + 5 + af_length
        # A packet without payload repeats the counter of the pid's previous packet.
        index = seen.get(pid, 0)
        counters.append((start + 3, pid, index if has_payload else index - 1))
        if not has_payload:
            continue
        seen[pid] = index + 1
        unit_start = bool(data[start + 1] & 0x40)
        end = start + TS_PACKET_SIZE
        if unit_start and data[payload : payload + 3] == b"\x00\x00\x01" and payload + 9 <= end:
            stream_id = data[payload + 3]
            if stream_id == 0xBD or 0xC0 <= stream_id <= 0xEF:
                flags = data[payload + 7] >> 6
                if flags in (2, 3) and payload + 14 <= end:
                    stamps.append((payload + 9, _read_stamp(data, payload + 9)))
                if flags == 3 and payload + 19 <= end:
                    stamps.append((payload + 14, _read_stamp(data, payload + 14)))
    return _Layout(data, tuple(stamps), tuple(pcrs), tuple(counters), seen)


class LoopedStream:
    """A cycle of K segments served as segment n -> cycle[n % K], with clocks that never jump.

    Each pass through the cycle shifts every PTS/DTS/PCR by the cycle's length and
    continues every continuity counter, so players see one continuous stream and need
    no EXT-X-DISCONTINUITY at the wrap. The cycle must be exactly K segment durations
    long in every elementary stream (media.py makes it so).
    """

    def __init__(self, segments: Sequence[bytes], segment_seconds: float, cache_size: int = 16):
        if not segments:
            raise ValueError("a looped stream needs at least one segment")
        self._layouts = [_parse(segment) for segment in segments]
        self.segment_seconds = segment_seconds
        self.cycle_ticks = round(len(segments) * segment_seconds * CLOCK_HZ)
        # prefix[i][pid]: payload packets of pid in segments 0..i-1 of the cycle.
        self._prefix: list[dict[int, int]] = []
        running: dict[int, int] = {}
        for layout in self._layouts:
            self._prefix.append(dict(running))
            for pid, count in layout.payload_packets.items():
                running[pid] = running.get(pid, 0) + count
        self._cycle_packets = running
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._layouts)

    def segment(self, sequence: int) -> bytes:
        """The bytes of live segment number `sequence` (any integer >= 0)."""
        with self._lock:
            cached = self._cache.get(sequence)
            if cached is not None:
                self._cache.move_to_end(sequence)
                return cached
        data = self._render(sequence)
        with self._lock:
            self._cache[sequence] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data

    def _render(self, sequence: int) -> bytes:
        passes, index = divmod(sequence, len(self._layouts))
        layout = self._layouts[index]
        shift = passes * self.cycle_ticks
        buf = bytearray(layout.data)
        for pos, value in layout.stamps:
            _write_stamp(buf, pos, (value + shift) % CLOCK_WRAP)
        for pos, base, ext in layout.pcrs:
            _write_pcr(buf, pos, (base + shift) % CLOCK_WRAP, ext)
        prefix = self._prefix[index]
        for pos, pid, nth in layout.counters:
            counter = passes * self._cycle_packets.get(pid, 0) + prefix.get(pid, 0) + nth
            buf[pos] = (buf[pos] & 0xF0) | (counter & 0x0F)
        return bytes(buf)
