"""The emulator's video and snapshot frames: made once with ffmpeg, cached on disk, shared in-process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from appliance.emulator.mpegts import LoopedStream
from appliance.emulator.playlists import SEGMENT_SECONDS

# Bump when the layout of the cache changes; the ffmpeg arguments are hashed in as well.
MEDIA_VERSION = "1"
# 8 segments of 2 s: 16 s hold exactly 400 video frames at 25 fps and exactly 750 AAC
# frames at 48 kHz, so the looped cycle has no gap or overlap in either stream.
CYCLE_SEGMENTS = 8
SNAPSHOT_FRAMES = 12
FFMPEG_TIMEOUT = 120.0
# Temp directories of a generator that died are removed after this long.
STALE_TEMP_SECONDS = 3600.0

_CYCLE_SECONDS = CYCLE_SEGMENTS * SEGMENT_SECONDS
# The AAC encoder prepends 1024 priming samples; trim them off the end so that the
# cycle holds exactly _CYCLE_SECONDS of audio frames.
_AUDIO_SAMPLES = _CYCLE_SECONDS * 48_000 - 1024

_SEGMENT_ARGS = [
    "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
    "-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000",
    "-af", f"atrim=end_sample={_AUDIO_SAMPLES}",
    "-t", str(_CYCLE_SECONDS),
    "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-level", "3.1",
    "-pix_fmt", "yuv420p", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
    "-c:a", "aac", "-b:a", "64k", "-ac", "1",
    "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0",
]  # fmt: skip
# Noise makes the JPEGs about as large as a real camera's (~240 kB).
_SNAPSHOT_ARGS = [
    "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=1",
    "-vf", "noise=alls=8:allf=t", "-frames:v", str(SNAPSHOT_FRAMES), "-q:v", "3",
]  # fmt: skip


class MediaError(RuntimeError):
    """The media cache could not be made or read."""


@dataclass(frozen=True)
class Media:
    """Everything the emulated cameras serve that is not JSON."""

    stream: LoopedStream
    snapshots: tuple[bytes, ...]
    directory: Path
    # Seconds spent running ffmpeg, or None when the cache already existed.
    generated_in: float | None


def media_key() -> str:
    """The cache directory name: changes whenever the way media are made changes."""
    recipe = json.dumps([MEDIA_VERSION, CYCLE_SEGMENTS, _SEGMENT_ARGS, _SNAPSHOT_ARGS])
    return f"media-v{MEDIA_VERSION}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/presence-appliance/emulator, or ~/.cache/presence-appliance/emulator."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "presence-appliance" / "emulator"


_loaded: dict[Path, Media] = {}
_load_lock = threading.Lock()


def load_media(cache_dir: Path | None = None) -> Media:
    """The media in cache_dir, generated first if missing; loaded once per process."""
    directory = ((cache_dir or default_cache_dir()) / media_key()).absolute()
    with _load_lock:
        if directory not in _loaded:
            generated_in = None
            if not _is_complete(directory):
                generated_in = _generate(directory)
            _loaded[directory] = _read(directory, generated_in)
        return _loaded[directory]


def snapshot(media: Media, camera_name: str, now: float) -> bytes:
    """A JPEG for this camera at this time: a frame picked by name and second, tagged in a comment.

    The JPEG comment (COM segment) carries the camera name and the exact time, so two
    snapshots never have the same bytes even within one second.
    """
    frames = media.snapshots
    frame = frames[(zlib.crc32(camera_name.encode()) + int(now)) % len(frames)]
    comment = f"presence-appliance emulator; camera={camera_name}; time={now:.6f}".encode()[:65000]
    return frame[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + frame[2:]


def _is_complete(directory: Path) -> bool:
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        names = manifest["segments"] + manifest["snapshots"]
        return all((directory / name).stat().st_size > 0 for name in names)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _read(directory: Path, generated_in: float | None) -> Media:
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        segments = [(directory / name).read_bytes() for name in manifest["segments"]]
        snapshots = tuple((directory / name).read_bytes() for name in manifest["snapshots"])
        stream = LoopedStream(segments, float(manifest["segment_seconds"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MediaError(f"media cache {directory}: unreadable ({err})") from err
    return Media(stream, snapshots, directory, generated_in)


def _generate(directory: Path) -> float | None:
    """Make the media into a temp dir next to `directory`, then rename it into place.

    The rename is atomic, so two processes starting at once both end with one complete
    directory: the loser of the race throws its copy away.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MediaError("ffmpeg not found: the camera emulator needs it to make its video")
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(parent)
        if _is_complete(directory):
            return None  # another process finished it since we looked
        if directory.exists():
            # Incomplete leftovers (a disk that filled up, files removed by hand).
            _discard(directory)
        temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    except OSError as err:
        raise MediaError(f"media cache {parent}: {err.strerror or err}") from err
    started = time.monotonic()
    try:
        _run_ffmpeg(
            ffmpeg,
            [*_SEGMENT_ARGS, "-hls_segment_filename", str(temp / "segment%02d.ts")],
            temp / "cycle.m3u8",
        )
        _run_ffmpeg(ffmpeg, _SNAPSHOT_ARGS, temp / "snapshot%02d.jpg")
        segments = sorted(p.name for p in temp.glob("segment*.ts"))
        snapshots = sorted(p.name for p in temp.glob("snapshot*.jpg"))
        if len(segments) != CYCLE_SEGMENTS or len(snapshots) != SNAPSHOT_FRAMES:
            raise MediaError(
                f"ffmpeg made {len(segments)} segments and {len(snapshots)} snapshots, "
                f"expected {CYCLE_SEGMENTS} and {SNAPSHOT_FRAMES}"
            )
        manifest = {
            "version": MEDIA_VERSION,
            "segment_seconds": SEGMENT_SECONDS,
            "segments": segments,
            "snapshots": snapshots,
        }
        (temp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        elapsed = time.monotonic() - started
        try:
            temp.rename(directory)
        except OSError:
            if not _is_complete(directory):
                raise
            # Another process finished first: use its copy.
            shutil.rmtree(temp, ignore_errors=True)
        return elapsed
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _run_ffmpeg(ffmpeg: str, args: list[str], output: Path) -> None:
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(output)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise MediaError(
            f"ffmpeg took more than {FFMPEG_TIMEOUT:.0f} s making {output.name}"
        ) from err
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise MediaError(f"ffmpeg failed making {output.name}: {last}")


def _discard(directory: Path) -> None:
    aside = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    # OSError: someone else moved or replaced it meanwhile.
    with contextlib.suppress(OSError):
        directory.rename(aside / "old")
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale_temps(parent: Path) -> None:
    now = time.time()
    for entry in parent.glob(".tmp-*"):
        try:
            if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
