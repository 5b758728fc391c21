"""`install`: validate, run the site playbook with live progress, recap, then check the cameras."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from appliance.cli.common import (
    EXIT_INVALID,
    fail,
    inventory_options,
    load_valid_inventory,
    no_traceback,
)
from appliance.secrets import Redactor, inventory_secrets, redact_diff

if TYPE_CHECKING:
    from appliance.inventory import Inventory
    from appliance.playbook_run import PlaybookResult

_STATUS_STYLE = {
    "ok": ("ok", "green"),
    "changed": ("changed", "yellow"),
    "failed": ("FAILED", "red"),
    "unreachable": ("UNREACHABLE", "red"),
    "skipped": ("skipped", "cyan"),
}


@click.command()
@inventory_options
@click.option("--limit", help="Only these appliances (an Ansible host pattern).")
@click.option(
    "--check", "check_mode", is_flag=True, help="Dry run: report what would change, change nothing."
)
@click.option("--diff", is_flag=True, help="Show the changes made to files.")
@click.option("--tags", help="Only these roles, e.g. dhcp,ntp.")
@click.option(
    "--no-check", "skip_camera_check", is_flag=True, help="Do not test the cameras afterwards."
)
@click.option("-v", "--verbose", is_flag=True, help="Also list tasks that changed nothing.")
@no_traceback
def install(
    inventory_path: str,
    vault_password_file: str | None,
    limit: str | None,
    check_mode: bool,
    diff: bool,
    tags: str | None,
    skip_camera_check: bool,
    verbose: bool,
) -> None:
    """Provision every appliance of the inventory (runs playbooks/site.yml).

    Validates first; shows progress per task and a recap per host. Every Pi is provisioned at
    once; one that fails does not stop the others. Ends with `check` of the cameras of every
    Pi that was provisioned without a failure (unless --no-check), then names each failure in
    one line (Pi, task, reason) and exits non-zero.
    """
    from appliance.playbook_run import TaskResult, run_site

    inventory = load_valid_inventory(inventory_path, vault_password_file, "nothing was changed")

    redact = Redactor()
    for appliance in inventory.appliances:
        redact.add(inventory_secrets(appliance.vars))
    color = sys.stdout.isatty()
    started = time.monotonic()

    def on_task(item: TaskResult) -> None:
        if item.status in ("ok", "skipped") and not verbose:
            return
        label, style = _STATUS_STYLE.get(item.status, (item.status, None))
        line = f"  {label:<11} {item.host:<16} {redact(item.task)}"
        if item.message:
            line += f": {redact(item.message)}"
        click.echo(click.style(line, fg=style) if color and style else line)
        if diff and item.diff:
            # Config files hold secure ids and passphrases: mask them in the diff too.
            click.echo(redact_diff(item.diff, redact))

    def on_task_start(name: str) -> None:
        if verbose:
            click.echo(f"- {redact(name)}")

    mode = " (check mode: nothing is changed)" if check_mode else ""
    click.echo(
        f"Provisioning {', '.join(a.name for a in inventory.appliances)} from {inventory_path}{mode}"
    )
    result = run_site(
        Path(inventory_path),
        limit=limit,
        check=check_mode,
        diff=diff,
        tags=tags,
        vault_password_file=vault_password_file,
        on_task=on_task,
        on_task_start=on_task_start,
    )
    elapsed = time.monotonic() - started
    if result.error:
        fail(redact(result.error), EXIT_INVALID)
    click.echo(f"\nRecap ({elapsed:.0f} s):")
    for host, recap in sorted(result.recap.items()):
        if host == "localhost":
            continue
        state = "FAILED" if recap.failures or recap.unreachable else "ok"
        click.echo(
            f"  {host:<16} {state:<7} ok={recap.ok} changed={recap.changed} failed={recap.failures} "
            f"unreachable={recap.unreachable} skipped={recap.skipped}"
        )
    if result.ok:
        if check_mode or skip_camera_check:
            return
        # All of them unless --limit left some out of the run.
        hosts = provisioned_hosts(result, inventory) or [a.name for a in inventory.appliances]
        if not _check_cameras(inventory, hosts):
            raise SystemExit(1)
        return
    # One Pi's failure does not stop the others (Ansible carries on with them): their cameras
    # are checked all the same, then every failure is named, one line each, last.
    healthy = provisioned_hosts(result, inventory)
    camera_check_ok = True
    if healthy and not (check_mode or skip_camera_check):
        camera_check_ok = _check_cameras(inventory, healthy, failed=failed_hosts(result))
    for item in result.failures:
        click.echo(f"error: {item.host}: {redact(item.task)}: {redact(item.message)}", err=True)
    if not result.failures:
        click.echo(f"error: ansible-playbook ended with {result.status} (rc={result.rc})", err=True)
    if not camera_check_ok:
        click.echo("error: the camera check failed (see the table above)", err=True)
    raise SystemExit(1)


def failed_hosts(result: PlaybookResult) -> list[str]:
    """The Pis with a failed task or that could not be reached, sorted by name."""
    hosts = {item.host for item in result.failures}
    hosts |= {host for host, r in result.recap.items() if r.failures or r.unreachable}
    return sorted(hosts - {"localhost"})


def provisioned_hosts(result: PlaybookResult, inventory: Inventory) -> list[str]:
    """The appliances this run provisioned without a failure (those outside --limit are not
    in the recap and are left out)."""
    failed = set(failed_hosts(result))
    return [a.name for a in inventory.appliances if a.name in result.recap and a.name not in failed]


def _check_cameras(inventory: Inventory, hosts: list[str], failed: Sequence[str] = ()) -> bool:
    """Check the cameras of the appliances HOSTS through their Pi; print the table."""
    from appliance.check import render_check_table, run_check

    if failed:
        click.echo(
            f"\nChecking the cameras of {', '.join(hosts)} (provisioned; not of "
            f"{', '.join(failed)}, which failed):"
        )
    else:
        click.echo("\nChecking every camera through the Pi:")
    # Cameras may still be rejoining right after a restart: retry for up to 30 s.
    chosen = replace(inventory, appliances=[a for a in inventory.appliances if a.name in hosts])
    report = run_check(chosen, wait=30)
    render_check_table(report)
    return report.ok
