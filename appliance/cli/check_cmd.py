"""`presence-appliance check`: test every camera of the inventory and print a table or JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import click

from appliance.check import DEFAULT_TIMEOUT, render_check_table, run_check
from appliance.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    inventory_options,
    no_traceback,
)
from appliance.inventory import Inventory, InventoryError, load_inventory

# Variables the camera commands read; if the loader could not resolve one (no vault
# password...) say so. The proxy ones only matter when going through the Pi.
NEEDED_VARS = ("cameras",)
PROXY_VARS = ("web", "ansible_host", "appliance_controller_dir")


def load_for_cameras(
    inventory_path: str, vault_password_file: str | None, *, direct: bool = True
) -> Inventory:
    """Load the inventory for the camera commands; exit 2 with one line when it cannot be used."""
    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    for appliance in inventory.appliances:
        for key in NEEDED_VARS + (() if direct else PROXY_VARS):
            if key in appliance.unresolved:
                reason = appliance.unresolved[key]
                if "vault" in reason.lower() and not vault_password_file:
                    reason += " (give --vault-password-file)"
                fail(f"{appliance.name}: {key}: {reason}", EXIT_USAGE)
    if not inventory.appliances:
        fail(f"{inventory_path}: no hosts in group 'appliances'", EXIT_USAGE)
    return inventory


def only_appliances(inventory: Inventory, limit: str) -> Inventory:
    """INVENTORY with only the appliances named in LIMIT; exit 2 naming an unknown one."""
    names = [name.strip() for name in limit.split(",") if name.strip()]
    known = [a.name for a in inventory.appliances]
    for name in names:
        if name not in known:
            fail(f"--limit: no appliance {name!r} (appliances: {', '.join(known)})", EXIT_USAGE)
    if not names:
        fail("--limit: give one or more appliance names", EXIT_USAGE)
    return replace(inventory, appliances=[a for a in inventory.appliances if a.name in names])


def timeout_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0.1, max=300),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for each request.",
    )(func)


def direct_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--direct",
        is_flag=True,
        help=(
            "Talk to the cameras' own addresses (http://IP/<secure-id>/), not the Pi's proxy "
            "(the Pi's firewall lets this through only from firewall.admin_sources)."
        ),
    )(func)


@click.command()
@inventory_options
@direct_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@timeout_option
@click.option(
    "--wait",
    type=click.FloatRange(min=0, max=3600),
    default=0,
    help="Test failing cameras again until they pass or this many seconds have passed.",
)
@click.option(
    "--limit",
    metavar="PI[,PI...]",
    help="Only the cameras of these appliances (inventory names, comma-separated).",
)
@no_traceback
def check(
    inventory_path: str,
    vault_password_file: str | None,
    direct: bool,
    as_json: bool,
    timeout: float,
    wait: float,
    limit: str | None,
) -> None:
    """Test every camera: ping, snapshot and live stream, all cameras at once.

    By default through each Pi's HTTPS proxy (verifying the certificate pinned at
    install, logging in as the inventory's first web user); --direct asks the cameras
    themselves. Exit 0 when every camera passes, 1 otherwise, 2 when the inventory
    cannot be read.
    """
    inventory = load_for_cameras(inventory_path, vault_password_file, direct=direct)
    if limit:
        inventory = only_appliances(inventory, limit)
    report = run_check(inventory, direct=direct, timeout=timeout, wait=wait)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_check_table(report)
    raise SystemExit(EXIT_OK if report.ok else EXIT_INVALID)
