"""`presence-appliance lab ...`: bring the lab (booted Debian "Pi" + emulated cameras) up and down."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from appliance.lab.run import LabError

F = TypeVar("F", bound=Callable[..., Any])


def _fail(err: LabError) -> None:
    click.echo(f"lab: {err}", err=True)
    sys.exit(1)


def _progress(line: str) -> None:
    click.echo(f"  {line}")


@click.group()
def lab() -> None:
    """A booted Debian 'Pi' with emulated cameras, in network namespaces (needs root).

    The runtime state lives in ./lab (inventory.yml, keys, logs); images are cached
    under /var/cache/presence-appliance/lab.
    """


@lab.command()
@click.option(
    "--cameras",
    default=2,
    show_default=True,
    type=click.IntRange(0, 80),
    help="Emulated cameras per Pi.",
)
@click.option(
    "--pis",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Number of Pis (each with its own camera network).",
)
@click.option(
    "--release",
    default="bookworm",
    show_default=True,
    type=click.Choice(["bookworm", "trixie"]),
    help="Debian release of the Pi.",
)
@click.option(
    "--isolation",
    default="ap_isolate",
    show_default=True,
    type=click.Choice(["ap_isolate", "vlan_per_camera"]),
    help="How cameras are kept apart on the Pi's Wi-Fi side.",
)
@click.option(
    "--network-manager",
    is_flag=True,
    help="NetworkManager manages the Pi's wlan0, as on a stock Raspberry Pi OS "
    "(an image of its own, built once).",
)
def up(cameras: int, pis: int, release: str, isolation: str, network_manager: bool) -> None:
    """Build the image if needed, boot the Pi(s), start cameras; write lab/inventory.yml."""
    from appliance.lab import lab as lab_mod

    try:
        result = lab_mod.up(
            cameras, pis, release, isolation, progress=_progress, network_manager=network_manager
        )
    except LabError as err:
        from appliance.lab.state import LabState

        if LabState.load().path.exists():
            # What was started stays for inspection; `lab down` removes it.
            err = LabError(f"{err} (logs in lab/logs; `presence-appliance lab down` cleans up)")
        _fail(err)
    if not result.get("already_up"):
        click.echo(
            "next: presence-appliance install -i lab/inventory.yml; "
            "then presence-appliance lab info"
        )


@lab.command()
def down() -> None:
    """Remove every namespace, veth, mount and process of the lab (safe to repeat)."""
    from appliance.lab import lab as lab_mod

    try:
        seconds = lab_mod.down(progress=_progress)
    except LabError as err:
        _fail(err)
    click.echo(f"lab down in {seconds:.1f} s")


@lab.command()
def status() -> None:
    """Show what is up: namespaces, Pis (systemd state), cameras (leases), wan NTP."""
    from appliance.lab import lab as lab_mod

    try:
        info = lab_mod.status()
    except LabError as err:
        _fail(err)
    click.echo(f"lab: {'up' if info['up'] else 'down'} ({info['lab_dir']})")
    click.echo(f"namespaces: {' '.join(info['namespaces']) or '-'}")
    for pi in info["pis"]:
        click.echo(f"{pi['host']}: {pi['system']} in {pi['netns']}, eth0 {pi['address']}")
    for cam in info["cameras"]:
        lease = cam["lease_ip"] or "no lease yet"
        click.echo(f"{cam['name']}: {cam['mac']} reserved {cam['reserved_ip']}, lease {lease}")
    if "wan_ntp" in info:
        click.echo(f"wan NTP server: {'running' if info['wan_ntp'] else 'stopped'}")
    if info["overlays"] and not info["up"]:
        click.echo(f"leftover overlays: {' '.join(info['overlays'])} (run `lab down`)")


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def shell(target: str, command: tuple[str, ...]) -> None:
    """Open a shell (or run COMMAND) in TARGET: pi, pi2, lan, wan or cam-NAME.

    Example: presence-appliance lab shell pi -- systemctl status hostapd
    """
    from appliance.lab import lab as lab_mod

    try:
        argv = lab_mod.shell_argv(target, list(command))
    except LabError as err:
        _fail(err)
    os.execvp(argv[0], argv)


@lab.command()
def info() -> None:
    """How to open the dashboard from this machine, with the lab's (demo-only) login."""
    from appliance.lab import lab as lab_mod

    try:
        data = lab_mod.info()
    except LabError as err:
        _fail(err)
    for url in data["dashboards"]:
        click.echo(f"dashboard: {url}  (self-signed certificate: accept it in the browser)")
    # The one deliberate exception to "secrets never in output": a generated, lab-only
    # password the user needs to log in to the lab's dashboard.
    click.echo(f"login: {data['user']} / {data['password']}  (lab-only demo password)")
    click.echo(f"inventory: {data['inventory']}")
    click.echo(f"ssh: ip netns exec pa-lan ssh -i {data['ssh_key']} pi@10.203.1.2")
