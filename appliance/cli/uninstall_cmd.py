"""`uninstall`: return every Pi to how it was before the first install."""

from __future__ import annotations

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


@click.command()
@inventory_options
@click.option("--limit", help="Only these appliances (an Ansible host pattern).")
@click.option(
    "--purge",
    is_flag=True,
    help="Also remove the packages install added (those not installed before it).",
)
@no_traceback
def uninstall(
    inventory_path: str, vault_password_file: str | None, limit: str | None, purge: bool
) -> None:
    """Return each Pi to how it was before the first install.

    The first install records on the Pi how it was (/var/lib/presence-appliance, root-only):
    the files the roles write (and copies of those they replace), the enabled, masked and
    active state of the services they touch, which of their packages were installed, IP
    forwarding, which Wi-Fi radios were soft-blocked. Uninstall puts all of that back (blocks
    those radios again), deletes the firewall's nft table, gives the camera interface back to
    NetworkManager, removes the snapshots and the record. The
    cameras go offline. The inventory is not changed: `install` provisions the Pi again.
    """
    from appliance.uninstall import run_uninstall

    redact = inventory_redactor(inventory_path, vault_password_file)
    run = run_uninstall(
        Path(inventory_path), purge=purge, limit=limit, vault_password_file=vault_password_file
    )
    if run.result.error:
        fail(redact(run.result.error), EXIT_INVALID)
    for host, done in sorted(run.done.items()):
        click.echo(
            f"{host}: put back {len(done.restored)} file(s), removed {len(done.removed)}; "
            "as before the first install"
        )
        for path in done.restored:
            click.echo(f"  restored  {path}")
        for path in done.removed:
            click.echo(f"  removed   {path}")
        for step in done.units:
            click.echo(f"  systemctl {step}")
        for line in done.also:
            click.echo(f"  {line}")
        if purge:
            click.echo(f"  purged    {', '.join(done.purged) or 'nothing (all were there before)'}")
    if not run.result.ok:
        fail_playbook(run.result, redact)
