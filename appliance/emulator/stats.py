"""Request and connection counters of an emulated camera, for tests and benchmarks to read."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

KINDS = ("commands", "snapshots", "playlists", "segments", "other", "forbidden")


class Stats:
    """Counts requests per path and per kind, faults applied, and open connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._paths: Counter[str] = Counter()
            self._kinds: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
            self._faults: Counter[str] = Counter()
            self._connections = 0
            self._peak = self._open

    def count(self, kind: str, path: str) -> None:
        with self._lock:
            self._kinds[kind] += 1
            self._paths[path] += 1

    def count_fault(self, mode: str) -> None:
        with self._lock:
            self._faults[mode] += 1

    def connection_opened(self) -> None:
        with self._lock:
            self._open += 1
            self._connections += 1
            self._peak = max(self._peak, self._open)

    def connection_closed(self) -> None:
        with self._lock:
            self._open -= 1

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self._kinds.values()),
                "kinds": dict(self._kinds),
                "paths": dict(sorted(self._paths.items())),
                "faults": dict(self._faults),
                "connections": {
                    "open": self._open,
                    "peak": self._peak,
                    "total": self._connections,
                },
            }
