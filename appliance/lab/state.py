"""The lab's runtime directory (./lab): state file, secrets, keys, per-Pi overlays, logs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def lab_dir() -> Path:
    """The runtime directory: ./lab in the current directory (PA_LAB_DIR overrides it)."""
    return Path(os.environ.get("PA_LAB_DIR", "lab")).resolve()


def ensure_private_dir(path: Path) -> Path:
    """Create PATH (mode 0700): it holds keys and lab secrets."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write TEXT to PATH with mode 0600 from the start (no world-readable window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of PID (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class LabState:
    """What `lab up` made, written after every step so `lab down` finds it after a crash."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, directory: Path | None = None) -> LabState:
        path = (directory or lab_dir()) / "state.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("processes", [])
        data.setdefault("mounts", [])
        data.setdefault("namespaces", [])
        return cls(path, data)

    def save(self) -> None:
        ensure_private_dir(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        write_private(tmp, json.dumps(self.data, indent=2))
        tmp.replace(self.path)

    def add_process(self, role: str, pid: int, netns: str | None = None) -> None:
        """Record a process the lab started (with its start time, so a reused PID is never hit)."""
        self.data["processes"].append(
            {"role": role, "pid": pid, "start": process_start_time(pid), "netns": netns}
        )
        self.save()

    def add(self, key: str, value: Any) -> None:
        if value not in self.data[key]:
            self.data[key].append(value)
        self.save()

    def process(self, role: str) -> dict[str, Any] | None:
        for proc in self.data["processes"]:
            if proc["role"] == role:
                return proc
        return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def alive(proc: dict[str, Any]) -> bool:
    """True when a recorded process still runs (same PID and same start time)."""
    return proc.get("start") is not None and process_start_time(proc["pid"]) == proc["start"]
