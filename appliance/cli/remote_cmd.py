"""`presence-appliance remote ...`: WireGuard peers (phones, laptops) that reach the dashboard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from appliance.cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    fail,
    inventory_options,
    load_valid_inventory,
    no_traceback,
)


@click.group()
def remote() -> None:
    """Remote viewing over WireGuard: peers reach the Pi's dashboard and nothing else."""


def _appliance(inventory: Any, host: str | None) -> Any:
    if host is not None:
        from appliance.inventory import InventoryError

        try:
            return inventory.appliance(host)
        except InventoryError as err:
            fail(str(err), EXIT_USAGE)
    with_wg = [
        a for a in inventory.appliances if (a.vars.get("remote_access") or {}).get("wireguard")
    ]
    if len(with_wg) == 1:
        return with_wg[0]
    if len(inventory.appliances) == 1:
        return inventory.appliances[0]
    names = ", ".join(a.name for a in inventory.appliances)
    fail(f"--host is needed: the inventory has several appliances ({names})", EXIT_USAGE)


def _apply(inventory_path: str, host: str, vault_password_file: str | None) -> str | None:
    """Run the wireguard role alone on HOST (its handler reloads the interface with `wg
    syncconf`: no other service restarts). Returns the failure, or None."""
    from appliance.playbook_run import run_site

    result = run_site(
        Path(inventory_path), limit=host, tags="wireguard", vault_password_file=vault_password_file
    )
    if result.ok:
        return None
    if result.error:
        return result.error
    first = result.failures[0] if result.failures else None
    return f"{first.task}: {first.message}" if first else f"ansible-playbook ended {result.status}"


def _reserve(conf_path: str) -> int:
    """Create --conf FILE now (0600, never over an existing file), so a bad path fails
    before anything changes; the config is written into it at the end."""
    try:
        return os.open(conf_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"--conf {conf_path}: exists; choose a new file (it will hold a private key)")
    except OSError as err:
        fail(f"--conf {conf_path}: cannot create: {err.strerror}")


@remote.command("add")
@inventory_options
@click.argument("name")
@click.option("--host", help="The appliance (default: the one with remote_access.wireguard).")
@click.option(
    "--conf",
    "conf_path",
    type=click.Path(dir_okay=False),
    help="Write the peer's config to this new file (mode 0600) instead of showing a QR code.",
)
@no_traceback
def add(
    inventory_path: str,
    vault_password_file: str | None,
    name: str,
    host: str | None,
    conf_path: str | None,
) -> None:
    """Let a new phone or laptop in: make its key pair, write its public key into the
    inventory, apply that to the Pi's WireGuard interface alone, and show its config once
    as a QR code (scan it with the WireGuard app). Its private key is kept nowhere."""
    from appliance import remote as ra
    from appliance.inventory_edit import EditError
    from appliance.schema import PEER_NAME

    if not PEER_NAME.match(name):
        fail(f"peer name {name!r}: use 1-32 of a-z, 0-9 and '-'", EXIT_USAGE)
    inventory = load_valid_inventory(inventory_path, vault_password_file, "nothing was changed")
    appliance = _appliance(inventory, host)
    try:
        wg = ra.wireguard_settings(appliance.name, appliance.vars)
        if any(p.get("name") == name for p in wg.peers):
            fail(
                f"{appliance.name}: a peer {name!r} exists; `remote remove {name}` first",
                EXIT_USAGE,
            )
        server_key = ra.read_pi_public_key(
            ra.pi_public_key_path(inventory, appliance.name, appliance.vars)
        )
        address = ra.next_peer_address(wg)
    except ra.RemoteError as err:
        fail(str(err), EXIT_INVALID)
    handle = _reserve(conf_path) if conf_path else None
    try:
        private, public = ra.generate_keypair()
        peer = {"name": name, "public_key": public, "address": address}
        try:
            originals = ra.add_peer(Path(inventory_path), appliance.name, peer, vault_password_file)
        except EditError as err:
            fail(str(err), EXIT_INVALID)
        click.echo(
            f"Added peer {name} ({address}) to {inventory_path}; applying to {appliance.name} ..."
        )
        problem = _apply(inventory_path, appliance.name, vault_password_file)
        if problem:
            # Nothing half-done: the inventory goes back to how it was.
            ra.restore(originals)
            # ... and so does the Pi, if the run got as far as writing its file.
            _apply(inventory_path, appliance.name, vault_password_file)
            fail(
                f"{appliance.name}: not applied ({problem}); the inventory is unchanged",
                EXIT_INVALID,
            )
        config = ra.peer_config(private, address, server_key, wg)
        del private
        if handle is not None:
            with os.fdopen(handle, "w") as out:
                handle = None
                out.write(config)
            click.echo(
                f"{name}: config written to {conf_path} (mode 0600; it holds the private key)"
            )
        else:
            click.echo(
                f"\nScan this with the WireGuard app on {name} (shown once; the private key is "
                "kept nowhere):\n"
            )
            click.echo(ra.terminal_qr(config), nl=False)
        click.echo(
            f"\n{name} reaches https://{wg.pi_address}/ through the tunnel "
            f"(the home router must forward UDP {wg.endpoint.rpartition(':')[2]} "
            f"to the Pi's port {wg.listen_port})."
        )
    finally:
        if handle is not None:  # failed before writing: leave no empty file behind
            os.close(handle)
            Path(conf_path or "").unlink(missing_ok=True)


@remote.command("remove")
@inventory_options
@click.argument("name")
@click.option("--host", help="The appliance (default: the one with remote_access.wireguard).")
@no_traceback
def remove(
    inventory_path: str, vault_password_file: str | None, name: str, host: str | None
) -> None:
    """Revoke a peer now: remove it from the inventory and from the Pi's live interface."""
    from appliance import remote as ra
    from appliance.inventory_edit import EditError

    inventory = load_valid_inventory(inventory_path, vault_password_file, "nothing was changed")
    appliance = _appliance(inventory, host)
    try:
        ra.wireguard_settings(appliance.name, appliance.vars)
        ra.remove_peer(Path(inventory_path), appliance.name, name, vault_password_file)
    except (ra.RemoteError, EditError) as err:
        fail(str(err), EXIT_INVALID)
    click.echo(f"Removed peer {name} from {inventory_path}; applying to {appliance.name} ...")
    problem = _apply(inventory_path, appliance.name, vault_password_file)
    if problem:
        fail(
            f"{appliance.name}: not applied ({problem}); {name} can still connect until "
            "`presence-appliance install --tags wireguard` succeeds",
            EXIT_INVALID,
        )
    click.echo(f"{name} is revoked on {appliance.name}.")


@remote.command("list")
@inventory_options
@click.option("--host", help="Only this appliance.")
@no_traceback
def list_peers(inventory_path: str, vault_password_file: str | None, host: str | None) -> None:
    """Each peer's last handshake and traffic, as the Pi's interface reports them."""
    from appliance import remote as ra

    inventory = load_valid_inventory(inventory_path, vault_password_file, "run validate")
    appliances = [_appliance(inventory, host)] if host else inventory.appliances
    failed = False
    shown = 0
    for appliance in appliances:
        if not (appliance.vars.get("remote_access") or {}).get("wireguard"):
            continue
        wg = ra.wireguard_settings(appliance.name, appliance.vars)
        try:
            status = ra.read_status(appliance.name, appliance.vars)
        except ra.RemoteError as err:
            click.echo(f"error: {err}", err=True)
            failed = True
            continue
        shown += 1
        click.echo(f"{appliance.name} (endpoint {wg.endpoint}, {len(wg.peers)} peer(s)):")
        header = ("peer", "address", "last handshake", "received", "sent", "from")
        rows = [tuple(row.values()) for row in ra.iter_rows(wg, status)]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo(
                "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
    if not shown and not failed:
        fail("no appliance has remote_access.wireguard (see README, Remote viewing)", EXIT_INVALID)
    if failed:
        raise SystemExit(EXIT_INVALID)
