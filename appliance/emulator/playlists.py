"""The live HLS playlists of an emulated camera, in the shape captured from a real Presence."""

from __future__ import annotations

import math

SEGMENT_SECONDS = 2
WINDOW = 3
# Segments this far behind the window (or ahead of it) are still served, so that slow
# players and a little clock skew do not see 404s; anything further away is gone.
KEEP_BEHIND = 30
KEEP_AHEAD = 2

# quality -> (BANDWIDTH, NAME) as captured; "high" was not captured and is a guess.
QUALITIES: dict[str, tuple[int, str]] = {
    "poor": (144000, "640x360"),
    "low": (688000, "640x360"),
    "medium": (1012000, "1280x720"),
    "high": (2000000, "1920x1080"),
}
CODECS = "avc1.42001f,mp4a.40.2"
SEGMENT_NAME = "live{:010d}.ts"


def newest_segment(now: float) -> int:
    """Sequence number of the newest complete segment at unix time `now`."""
    return math.floor(now / SEGMENT_SECONDS) - 1


def is_available(sequence: int, now: float) -> bool:
    """Whether segment `sequence` can still (or already) be fetched at `now`."""
    newest = newest_segment(now)
    return newest - WINDOW + 1 - KEEP_BEHIND <= sequence <= newest + KEEP_AHEAD


def master_playlist() -> str:
    lines = ["#EXTM3U", "#EXT-X-ALLOW-CACHE:NO"]
    for quality, (bandwidth, name) in QUALITIES.items():
        lines.append(
            f'#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH={bandwidth},CODECS="{CODECS}",NAME="{name}"'
        )
        lines.append(f"files/{quality}/index.m3u8")
    return "\n".join(lines) + "\n"


def variant_playlist(now: float) -> str:
    """A sliding window of the WINDOW newest segments; live, so no EXT-X-ENDLIST."""
    first = newest_segment(now) - WINDOW + 1
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
    ]
    for sequence in range(first, first + WINDOW):
        lines += [f"#EXTINF:{SEGMENT_SECONDS:.6f},", SEGMENT_NAME.format(sequence)]
    return "\n".join(lines) + "\n"
