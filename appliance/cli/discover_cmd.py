"""`presence-appliance discover` (cameras and secure ids from Netatmo) and `leases` (DHCP clients)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from appliance.cli.common import EXIT_INVALID, EXIT_USAGE, fail, inventory_options, no_traceback
from appliance.discover import (
    DEFAULT_API_URL,
    AnswerError,
    DiscoveredCamera,
    DiscoverError,
    fetch,
    load_saved,
    plan_merge,
)
from appliance.inventory import Inventory, InventoryError, load_inventory


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _inventory_or_none(
    path: str, vault_password_file: str | None, explicit: bool
) -> Inventory | None:
    """The inventory for the `inventory` column; only an error when the user named it."""
    if not explicit and not Path(path).exists():
        return None
    try:
        return load_inventory(path, vault_password_file)
    except InventoryError as err:
        if explicit:
            fail(str(err), EXIT_USAGE)
        return None


def _known_by_mac(inventory: Inventory | None) -> dict[str, str]:
    known: dict[str, str] = {}
    for appliance in inventory.appliances if inventory else []:
        for cam in appliance.vars.get("cameras") or []:
            if isinstance(cam, dict) and cam.get("mac"):
                known[str(cam["mac"]).lower()] = f"{cam.get('name')} on {appliance.name}"
    return known


@click.command()
@inventory_options
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False),
    help='A saved gethomedata answer, or {"homesdata": ..., "homestatus": ...}.',
)
@click.option(
    "--token",
    envvar="NETATMO_TOKEN",
    show_envvar=True,
    help="A Netatmo access token (scopes read_presence access_presence).",
)
@click.option(
    "--api-url",
    envvar="NETATMO_API_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    show_envvar=True,
    help="Netatmo's API base URL.",
)
@click.option("--show-secrets", is_flag=True, help="Print the secure ids themselves.")
@click.option("--write", is_flag=True, help="Merge the cameras found into the inventory.")
@click.option("--host", help="With --write: the appliance to add cameras to.")
@no_traceback
def discover(
    inventory_path: str,
    vault_password_file: str | None,
    from_file: str | None,
    token: str | None,
    api_url: str,
    show_secrets: bool,
    write: bool,
    host: str | None,
) -> None:
    """List the cameras of a Netatmo account and whether their secure id was found.

    From a saved API answer (--from) or live with an access token (--token). With
    --write, new cameras are added to the inventory (next free reservation, cloud
    blocked) and the secure ids of known ones (matched by MAC) updated.
    """
    if bool(from_file) == bool(token):
        fail("give either --from FILE or --token TOKEN (or $NETATMO_TOKEN)", EXIT_USAGE)
    try:
        cameras = load_saved(from_file) if from_file else fetch(str(token), api_url)
    except DiscoverError as err:
        message = str(err).replace(token, "<token>") if token else str(err)
        # An answer we cannot use is unreadable input (2); a refusal or no answer is 1.
        fail(message, EXIT_USAGE if isinstance(err, AnswerError) else EXIT_INVALID)
    explicit = _option_given("inventory_path") or "PRESENCE_INVENTORY" in os.environ
    inventory = _inventory_or_none(inventory_path, vault_password_file, explicit or write)
    known = _known_by_mac(inventory)
    rows = [
        (
            c.name,
            c.home,
            c.mac,
            c.model,
            (c.secure_id if show_secrets else "found") if c.secure_id else "NOT FOUND",
            known.get(c.mac, "no") if inventory else "-",
        )
        for c in cameras
    ]
    _table(("camera", "home", "mac", "type", "secure id", "in inventory"), rows)
    for camera in cameras:
        for note in camera.notes:
            click.echo(f"note: {camera.name}: {note}")
    if not cameras:
        click.echo("no cameras in this account")
    if write:
        assert inventory is not None
        _write(inventory_path, vault_password_file, inventory, cameras, host)


def _option_given(name: str) -> bool:
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def _write(
    inventory_path: str,
    vault_password_file: str | None,
    inventory: Inventory,
    cameras: list[DiscoveredCamera],
    host: str | None,
) -> None:
    from appliance.inventory_edit import (
        EditError,
        InventoryDocument,
        add_camera_to,
        all_of,
        expect_camera,
        save_document,
        set_camera_in,
    )

    path = Path(inventory_path)
    try:
        doc = InventoryDocument(path)
        target = doc.pick_host(host)
        plan = plan_merge(cameras, inventory.appliance(target).vars)
        for camera, name in plan.updated:
            set_camera_in(doc, name, {"secure_id": camera.secure_id}, target, vault_password_file)
        for _, entry in plan.added:
            add_camera_to(doc, entry, target, vault_password_file)
        expectations = [
            expect_camera([target], name, values={"secure_id": camera.secure_id})
            for camera, name in plan.updated
        ] + [
            expect_camera([target], entry["name"], values={"mac": entry["mac"]})
            for _, entry in plan.added
        ]
        existing = inventory.appliance(target).vars.get("cameras") or []
        names = {str(c.get("name")) for c in existing if isinstance(c, dict)}
        expectations.append(expect_camera([target], "", present=False, keep=names))
        if plan.added or plan.updated:
            save_document(doc, vault_password_file, all_of(*expectations))
    except (EditError, InventoryError) as err:
        fail(str(err), EXIT_INVALID)
    for _, entry in plan.added:
        click.echo(f"added {entry['name']} ({entry['mac']}, {entry['ip']}, cloud: block)")
    for camera, name in plan.updated:
        click.echo(f"updated the secure id of {name} ({camera.mac})")
    for camera, reason in plan.skipped:
        click.echo(f"skipped {camera.name} ({camera.mac}): {reason}")
    if plan.added or plan.updated:
        click.echo(f"{inventory_path}: written; run `presence-appliance install` to apply it")
    else:
        click.echo(f"{inventory_path}: nothing to change")


@click.command()
@inventory_options
@no_traceback
def leases(inventory_path: str, vault_password_file: str | None) -> None:
    """List every DHCP client of each Pi (read over SSH), marking unknown Netatmo cameras."""
    from appliance.leases import LeaseError, read_leases

    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    known = _known_by_mac(inventory)
    rows: list[tuple[str, ...]] = []
    failures = []
    for appliance in inventory.appliances:
        try:
            found = read_leases(appliance.name, appliance.vars)
        except LeaseError as err:
            failures.append(str(err))
            continue
        for lease in found:
            if lease.mac in known:
                note = f"camera {known[lease.mac]}"
            elif lease.is_netatmo:
                note = "NETATMO, not in the inventory"
            else:
                note = ""
            rows.append(
                (
                    appliance.name,
                    lease.mac,
                    lease.ip,
                    lease.hostname or "-",
                    _expiry(lease.expiry),
                    note,
                )
            )
    _table(("appliance", "mac", "ip", "hostname", "expires", "note"), rows)
    for message in failures:
        click.echo(f"error: {message}", err=True)
    if failures:
        raise SystemExit(EXIT_INVALID)


def _expiry(expiry: int) -> str:
    if expiry == 0:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expiry))
