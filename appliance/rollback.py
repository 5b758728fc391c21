"""Snapshots of the files each install replaced, on every Pi: list them, restore one (plain data).

The Pi keeps them (roles/snapshot); this runs playbooks/rollback.yml and reads what the
snapshot tool reported per host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.content import playbooks_dir
from appliance.playbook_run import PlaybookResult, TaskResult, run_site

LIST_TASK = "List the snapshots"
RESTORE_TASK = "Restore the snapshot after checking every file with its service's checker"


@dataclass
class Snapshot:
    stamp: str
    taken: str
    note: str
    files: int
    differs: list[str]  # files whose live content is not what this snapshot holds


@dataclass
class Restored:
    stamp: str
    restored: list[str]
    removed: list[str]
    services: list[str]
    undo: str  # the snapshot of the files as they were before this rollback


@dataclass
class RollbackRun:
    result: PlaybookResult
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)
    restored: dict[str, Restored] = field(default_factory=dict)


def _reported(task: TaskResult, name: str) -> Any:
    if not task.task.endswith(name) or task.status not in ("ok", "changed") or not task.stdout:
        return None
    try:
        return json.loads(task.stdout)
    except ValueError:
        return None


def run_rollback(
    inventory: Path,
    *,
    to: str | None = None,
    list_only: bool = False,
    limit: str | None = None,
    vault_password_file: str | None = None,
) -> RollbackRun:
    """Run playbooks/rollback.yml; collect each host's snapshot list or restore report."""
    run = RollbackRun(result=PlaybookResult(status="failed", rc=1))

    def on_task(task: TaskResult) -> None:
        listed = _reported(task, LIST_TASK)
        if isinstance(listed, list):
            run.snapshots[task.host] = [
                Snapshot(
                    stamp=str(s.get("stamp", "")),
                    taken=str(s.get("taken", "")),
                    note=str(s.get("note", "")),
                    files=int(s.get("files", 0)),
                    differs=[str(p) for p in s.get("differs", [])],
                )
                for s in listed
                if isinstance(s, dict)
            ]
        done = _reported(task, RESTORE_TASK)
        if isinstance(done, dict):
            run.restored[task.host] = Restored(
                stamp=str(done.get("stamp", "")),
                restored=[str(p) for p in done.get("restored", [])],
                removed=[str(p) for p in done.get("removed", [])],
                services=[str(s) for s in done.get("services", [])],
                undo=str(done.get("undo", "")),
            )

    run.result = run_site(
        inventory,
        limit=limit,
        vault_password_file=vault_password_file,
        extra_vars={"snapshot_rollback_to": to or "", "snapshot_list_only": list_only},
        on_task=on_task,
        playbook=playbooks_dir() / "rollback.yml",
    )
    return run
