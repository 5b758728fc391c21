"""`rollback`: put back the files an install replaced, checked first; `rollback --list`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from appliance.cli.common import (
    EXIT_INVALID,
    fail,
    fail_playbook,
    inventory_options,
    inventory_redactor,
    no_traceback,
)

STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")


@click.command()
@inventory_options
@click.option(
    "--to", "to", metavar="STAMP", help="Restore this snapshot (see --list); default: the newest."
)
@click.option("--limit", help="Only these appliances (an Ansible host pattern).")
@click.option("--list", "list_only", is_flag=True, help="Show each Pi's snapshots; change nothing.")
@no_traceback
def rollback(
    inventory_path: str,
    vault_password_file: str | None,
    to: str | None,
    limit: str | None,
    list_only: bool,
) -> None:
    """Restore the files the last install replaced (or snapshot --to STAMP).

    Every install keeps the files it replaced on the Pi (/var/backups/presence-appliance,
    root-only, the newest 10). The kept files are checked with their services' own checkers
    first; only the services whose files changed are restarted. A rollback keeps the files it
    replaced too: `rollback` again undoes it.
    """
    from appliance.rollback import run_rollback

    if to and not STAMP.match(to):
        fail(f"--to {to!r}: a snapshot name looks like 20261130T145000Z (see --list)", EXIT_INVALID)
    redact = inventory_redactor(inventory_path, vault_password_file)
    run = run_rollback(
        Path(inventory_path),
        to=to,
        list_only=list_only,
        limit=limit,
        vault_password_file=vault_password_file,
    )
    if run.result.error:
        fail(redact(run.result.error), EXIT_INVALID)
    if list_only:
        for host, snapshots in sorted(run.snapshots.items()):
            click.echo(f"{host}: {len(snapshots)} snapshot(s), newest first")
            for snap in snapshots:
                differs = (
                    f"{len(snap.differs)} file(s) differ from the Pi now"
                    if snap.differs
                    else "same as the Pi now"
                )
                note = f"  ({snap.note})" if snap.note else ""
                click.echo(f"  {snap.stamp}  {snap.files:>3} files  {differs}{note}")
    else:
        for host, done in sorted(run.restored.items()):
            if not done.restored and not done.removed:
                click.echo(f"{host}: already as in {done.stamp}; nothing changed")
                continue
            files = ", ".join(done.restored + done.removed)
            click.echo(f"{host}: restored {files} from {done.stamp}")
            click.echo(f"{host}: restarted or reloaded: {', '.join(done.services) or 'nothing'}")
            click.echo(f"{host}: to undo: presence-appliance rollback --to {done.undo}")
    if not run.result.ok:
        fail_playbook(run.result, redact)
