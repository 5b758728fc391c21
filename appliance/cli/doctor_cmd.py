"""`presence-appliance doctor`: what is wrong on each Pi, and how to fix it."""

from __future__ import annotations

import json

import click

from appliance.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    inventory_options,
    no_traceback,
)


@click.command()
@inventory_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1, max=600),
    default=60,
    show_default=True,
    help="Seconds to wait for each Pi's answer.",
)
@no_traceback
def doctor(
    inventory_path: str, vault_password_file: str | None, as_json: bool, timeout: float
) -> None:
    """Check every Pi (concurrently): SSH and sudo, OS, services and their configs,
    hostapd errors, camera leases, time, TLS certificate, disk space and the firewall;
    with recordings, their storage and what each camera did on the FTP server (24 h).

    One line per check: ok, WARN or FAIL, with a fix. Exit 1 when any check fails
    (warnings do not fail).
    """
    from appliance.doctor import render_lines, run_doctor
    from appliance.inventory import InventoryError, load_inventory

    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    if not inventory.appliances:
        fail(f"{inventory_path}: no hosts in group 'appliances'", EXIT_USAGE)
    report = run_doctor(inventory, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in render_lines(report):
            click.echo(line)
    raise SystemExit(EXIT_OK if report.ok else EXIT_INVALID)
