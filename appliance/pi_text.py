"""Text a Pi sent, made fit for a terminal: printable and bounded; byte counts for people."""

from __future__ import annotations

import re
from typing import Any

# Anything but printable ASCII could move the cursor or recolour the terminal: a Pi is not trusted.
UNSAFE = re.compile(r"[^\x20-\x7e]")
IEC_UNITS = ("B", "KiB", "MiB", "GiB")


def clean(value: Any, limit: int = 80) -> str:
    """Text from the Pi, safe to print (no control characters, at most LIMIT characters)."""
    return UNSAFE.sub("?", str(value))[:limit]


def human_bytes(count: int, units: tuple[str, ...] = IEC_UNITS) -> str:
    """COUNT bytes in the largest of UNITS (each 1024 times the one before) below 1024."""
    size = float(count)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.0f} {unit}" if unit == units[0] else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable: the last unit always returns")
