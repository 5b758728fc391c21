"""Injected faults of an emulated camera: which requests misbehave, and how."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

MODES = ("none", "slow", "hang", "garbage", "html200", "down")
DEFAULT_SLOW_SECONDS = 5.0
# A hanging request gives up (closes without an answer) after this long at the latest.
HANG_BOUND_SECONDS = 300.0
MAX_DELAY_SECONDS = 3600.0


class FaultError(ValueError):
    """A fault request that makes no sense (unknown mode, bad delay)."""


@dataclass
class Fault:
    """One fault rule: requests whose path (after `/<secure-id>/`) starts with `prefix`."""

    mode: str
    prefix: str
    delay: float
    cleared: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "path": self.prefix, "delay": self.delay}


def normalize_prefix(path: str) -> str:
    return path.lstrip("/")


class FaultBook:
    """The active faults, one per path prefix; the longest matching prefix wins."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def set(self, mode: str, delay: str | float | None = None, path: str = "") -> Fault | None:
        """Install a fault for `path` (all paths when empty); mode "none" removes it.

        "none" with no path removes every fault. Returns the installed fault.
        """
        if mode not in MODES:
            raise FaultError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        seconds = _parse_delay(mode, delay)
        prefix = normalize_prefix(path)
        with self._lock:
            if mode == "none":
                removed = list(self._faults.values()) if not prefix else []
                if prefix in self._faults:
                    removed = [self._faults[prefix]]
                for fault in removed:
                    del self._faults[fault.prefix]
                    fault.cleared.set()
                return None
            fault = Fault(mode, prefix, seconds)
            old = self._faults.get(prefix)
            self._faults[prefix] = fault
        if old is not None:
            old.cleared.set()
        return fault

    def clear(self) -> None:
        self.set("none")

    def match(self, path: str) -> Fault | None:
        """The fault for a request path relative to the secure-id root, if any."""
        with self._lock:
            best: Fault | None = None
            for prefix, fault in self._faults.items():
                if path.startswith(prefix) and (best is None or len(prefix) > len(best.prefix)):
                    best = fault
            return best

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._faults.values()]


def _parse_delay(mode: str, delay: str | float | None) -> float:
    if delay is None or delay == "":
        return HANG_BOUND_SECONDS if mode == "hang" else DEFAULT_SLOW_SECONDS
    try:
        seconds = float(delay)
    except ValueError:
        raise FaultError(f"delay {delay!r} is not a number of seconds") from None
    if not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise FaultError(f"delay {seconds} is not between 0 and {MAX_DELAY_SECONDS:.0f} seconds")
    return seconds
