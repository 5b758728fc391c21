"""Return every Pi to how it was before the first install (plain data; playbooks/uninstall.yml).

The first install records the Pi's state on the Pi (roles/uninstall); this runs the playbook
that puts it back and reads what the Pi reported per host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.content import playbooks_dir
from appliance.playbook_run import PlaybookResult, TaskResult, run_site

UNINSTALL_TASK = "Return the Pi to how it was before the first install"


@dataclass
class Uninstalled:
    restored: list[str]  # files put back as they were
    removed: list[str]  # files and directories the appliance had added
    units: list[str]  # systemctl steps, e.g. "disable presence-firewall.service"
    purged: list[str]  # packages removed (--purge)
    # Other things put back, one line each: "Wi-Fi phy0 soft-blocked again (rfkill)"
    also: list[str] = field(default_factory=list)


@dataclass
class UninstallRun:
    result: PlaybookResult
    done: dict[str, Uninstalled] = field(default_factory=dict)


def parse_report(text: str) -> Uninstalled | None:
    """The Pi's JSON report, or None when it is not one (a failed or skipped task)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None

    def strings(key: str) -> list[str]:
        value = data.get(key)
        return [str(v) for v in value] if isinstance(value, list) else []

    also = [f"Wi-Fi {name} soft-blocked again (rfkill)" for name in strings("rfkill_soft_blocked")]
    if isinstance(data.get("network_manager"), str):
        also.append(f"NetworkManager {data['network_manager']}")
    return Uninstalled(
        restored=strings("restored"),
        removed=strings("removed"),
        units=strings("units"),
        purged=strings("purged"),
        also=also,
    )


def run_uninstall(
    inventory: Path,
    *,
    purge: bool = False,
    limit: str | None = None,
    vault_password_file: str | None = None,
) -> UninstallRun:
    """Run playbooks/uninstall.yml; collect each host's report."""
    run = UninstallRun(result=PlaybookResult(status="failed", rc=1))

    def on_task(task: TaskResult) -> None:
        if task.task.endswith(UNINSTALL_TASK) and task.status in ("ok", "changed"):
            report = parse_report(task.stdout)
            if report is not None:
                run.done[task.host] = report

    run.result = run_site(
        inventory,
        limit=limit,
        vault_password_file=vault_password_file,
        extra_vars={"uninstall_purge": purge},
        on_task=on_task,
        playbook=playbooks_dir() / "uninstall.yml",
    )
    return run
