"""The pinned hls.js for the web tests: the lab's copy (appliance.lab.hlsjs), required to exist."""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.lab.hlsjs import local_hlsjs, pinned

__all__ = ["fetch_hlsjs", "pinned", "sha256"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_hlsjs() -> Path:
    """Path of the pinned hls.min.js (fetched once with `npm pack`, checked against the pin)."""
    path = local_hlsjs()
    if path is None:
        raise RuntimeError(
            "no pinned hls.js: npm is missing or npm pack failed (see roles/web/defaults)"
        )
    return path
