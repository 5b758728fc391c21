"""`presence-appliance firewall`: per camera, from every Pi, what its firewall let through and dropped."""

from __future__ import annotations

import json
from typing import Any

import click

from appliance.cli.common import EXIT_INVALID, EXIT_USAGE, fail, inventory_options, no_traceback


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _peer_names(variables: dict[str, Any]) -> dict[str, str]:
    """Tunnel address -> peer name, from the inventory's remote_access.wireguard.peers."""
    wireguard = (variables.get("remote_access") or {}).get("wireguard") or {}
    peers = wireguard.get("peers") if isinstance(wireguard, dict) else None
    return {
        str(p.get("address")): str(p.get("name"))
        for p in peers or []
        if isinstance(p, dict) and p.get("address")
    }


def _tunnel_section(inventory: Any, views: list[Any], limit: int) -> None:
    """The WireGuard peers' drops per Pi that has remote access, and their latest attempts."""
    from appliance.firewall import when

    tunnels = [v for v in views if not v.error and v.tunnel is not None]
    if not tunnels:
        return
    names = {a.name: _peer_names(a.vars) for a in inventory.appliances}
    click.echo()
    click.echo("WireGuard peers, blocked (the dashboard is all they may reach):")
    drops = [
        (v.appliance, str(v.tunnel["drops"]["pi"]), str(v.tunnel["drops"]["forward"]))
        for v in tunnels
    ]
    _table(("appliance", "to pi", "past the pi"), drops)
    attempts = []
    for view in tunnels:
        for event in view.tunnel["recent"]:
            port = "" if event["port"] is None else f":{event['port']}"
            peer = names.get(view.appliance, {}).get(event["source"], event["source"])
            attempts.append(
                (
                    view.appliance,
                    peer,
                    when(event["time"]),
                    event["kind"],
                    event["protocol"],
                    f"{event['destination']}{port}",
                )
            )
    if limit:
        click.echo()
        click.echo(
            "latest blocked attempts through the tunnel:"
            if attempts
            else "latest blocked attempts through the tunnel: none"
        )
        if attempts:
            _table(("appliance", "peer", "time", "kind", "proto", "destination"), attempts)


@click.command()
@inventory_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--limit",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Latest blocked attempts shown per camera.",
)
@no_traceback
def firewall(
    inventory_path: str, vault_password_file: str | None, as_json: bool, limit: int
) -> None:
    """Per camera, from every Pi over SSH: cloud policy, allowed VPN traffic, drops by kind
    (to the Pi, another camera, the LAN, the internet, NTP elsewhere), blocked in the last
    24 h, and the latest blocked attempts; with remote access, what the WireGuard peers tried
    and were refused (to the Pi beyond its dashboard, or past it) and by which peer; with recordings, each recording camera's FTP
    logins, failed logins, uploads and refusals in the last 24 h (a camera without
    `recordings` that tries FTP is a drop `to pi`)."""
    from appliance.firewall import DROP_KINDS, collect, when
    from appliance.inventory import InventoryError, load_inventory
    from appliance.pi_text import human_bytes
    from appliance.recordings import activity

    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    views = collect(inventory, limit)
    failed = [v for v in views if v.error]
    # The FTP server's own log: what the firewall let through to it, camera by camera.
    ftp = activity(inventory, 24)
    if as_json:
        data = {"appliances": [v.to_dict() for v in views], "ftp": [a.to_dict() for a in ftp]}
        click.echo(json.dumps(data, indent=2))
        raise SystemExit(EXIT_INVALID if failed else 0)
    rows = []
    attempts = []
    for view in views:
        if view.error:
            continue
        for cam in view.cameras:
            vpn = cam["vpn"]
            rows.append(
                (
                    view.appliance,
                    cam["name"],
                    cam["cloud"],
                    f"{vpn['packets']} pkts / {human_bytes(vpn['bytes'])}",
                    *(str(cam["drops"][kind]) for kind in DROP_KINDS),
                    str(cam["blocked_24h"]),
                )
            )
            for event in cam["recent"]:
                port = "" if event["port"] is None else f":{event['port']}"
                attempts.append(
                    (
                        view.appliance,
                        cam["name"],
                        when(event["time"]),
                        event["kind"],
                        event["protocol"],
                        f"{event['destination']}{port}",
                    )
                )
    _table(
        ("appliance", "camera", "cloud", "vpn allowed", *(f"to {k}" for k in DROP_KINDS), "24h"),
        rows,
    )
    if limit:
        click.echo()
        click.echo("latest blocked attempts:" if attempts else "latest blocked attempts: none")
        if attempts:
            _table(("appliance", "camera", "time", "kind", "proto", "destination"), attempts)
    _tunnel_section(inventory, views, limit)
    if ftp:
        from appliance.cli.recordings_cmd import print_activity

        click.echo()
        click.echo("FTP, last 24 h (recording cameras; `recordings activity --hours N`):")
        print_activity(ftp)
        for answer in ftp:
            if answer.error:
                click.echo(f"warning: FTP activity: {answer.error}", err=True)
    for view in views:
        if view.revert_pending:
            click.echo(f"note: {view.appliance}: a new ruleset waits for confirmation")
        elif not view.error and not view.loaded:
            click.echo(f"warning: {view.appliance}: the firewall table is not loaded", err=True)
    for view in failed:
        click.echo(f"error: {view.error}", err=True)
    if failed:
        raise SystemExit(EXIT_INVALID)
