"""`validate` and `render`: check an inventory, and preview the files it makes."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    inventory_options,
    load_valid_inventory,
    no_traceback,
)
from appliance.inventory import InventoryError, load_inventory
from appliance.schema import errors
from appliance.schema import validate as validate_inventory


@click.command()
@inventory_options
@no_traceback
def validate(inventory_path: str, vault_password_file: str | None) -> None:
    """Check the inventory against the schema and print every problem, one per line.

    Exit 0 when valid, 1 when invalid, 2 when it cannot be read.
    """
    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    for warning in inventory.warnings:
        click.echo(f"warning: {warning}", err=True)
    problems = validate_inventory(inventory)
    for problem in problems:
        click.echo(str(problem), err=problem.severity == "error")
    bad = errors(problems)
    if bad:
        click.echo(f"{inventory_path}: {len(bad)} problem(s)", err=True)
        raise SystemExit(EXIT_INVALID)
    hosts = ", ".join(a.name for a in inventory.appliances)
    cameras = sum(len(a.vars.get("cameras") or []) for a in inventory.appliances)
    click.echo(
        f"{inventory_path}: valid ({len(inventory.appliances)} appliance(s): {hosts}; {cameras} camera(s))"
    )
    raise SystemExit(EXIT_OK)


@click.command()
@inventory_options
@click.option("--host", help="The appliance to render (default: the only one).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write into.",
)
@no_traceback
def render(
    inventory_path: str, vault_password_file: str | None, host: str | None, out_dir: str
) -> None:
    """Write every file the roles would put on an appliance, at its target path under OUT.

    Rendered from the roles' own templates through Ansible's templating, with the
    modes the roles set (secrets 0600/0640). Nothing is sent to the Pi.
    """
    from appliance.render import RenderError, render_appliance

    inventory = load_valid_inventory(
        inventory_path, vault_password_file, "run `presence-appliance validate`"
    )
    if host is None:
        if len(inventory.appliances) != 1:
            names = ", ".join(a.name for a in inventory.appliances)
            fail(f"--host is needed: the inventory has several appliances ({names})", EXIT_USAGE)
        host = inventory.appliances[0].name
    try:
        written = render_appliance(inventory, host, Path(out_dir))
    except (InventoryError, RenderError) as err:
        fail(str(err), EXIT_INVALID)
    for item in written:
        click.echo(
            f"{oct(item.mode)[2:]:>4}  {Path(out_dir) / item.path.lstrip('/')}  ({item.role})"
        )
    click.echo(f"{len(written)} file(s) for {host} written under {out_dir}")
