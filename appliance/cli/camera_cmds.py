"""`presence-appliance camera ...`: control one camera, and edit the inventory's camera list."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import yaml

from appliance.camera_api import CameraClient, CameraError
from appliance.camera_bounds import shown
from appliance.check import TargetError, camera_target, client_verify
from appliance.cli.check_cmd import direct_option, load_for_cameras, timeout_option
from appliance.cli.common import EXIT_INVALID, EXIT_USAGE, fail, inventory_options, no_traceback
from appliance.inventory import Inventory

T = TypeVar("T")

# A command makes at most three requests (floodlight: read, write, read again).
COMMAND_BUDGET_TIMEOUTS = 4

NIGHT_KEYS = ("always", "person", "vehicle", "animal", "movement")
TRUE_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


@click.group()
def camera() -> None:
    """Control a camera (floodlight, monitoring, snapshot) and edit the camera list."""


# ---------------------------------------------------------------------------
# Finding a camera and talking to it


def find_camera(inventory: Inventory, name: str, host: str | None) -> tuple[Any, dict[str, Any]]:
    """The (appliance, camera) called NAME; exits 2 with the known names when there is none."""
    matches = []
    known: list[str] = []
    for appliance in inventory.appliances:
        if host and appliance.name != host:
            continue
        for cam in appliance.vars.get("cameras") or []:
            if isinstance(cam, dict):
                known.append(str(cam.get("name")))
                if cam.get("name") == name:
                    matches.append((appliance, cam))
    if host and not any(a.name == host for a in inventory.appliances):
        names = ", ".join(a.name for a in inventory.appliances)
        fail(f"{inventory.path}: no appliance {host!r} (appliances: {names})", EXIT_USAGE)
    if not matches:
        listed = ", ".join(sorted(set(known))) or "none"
        fail(f"{inventory.path}: no camera {name!r} (cameras: {listed})", EXIT_USAGE)
    if len(matches) > 1:
        hosts = ", ".join(a.name for a, _ in matches)
        fail(f"camera {name!r} is on several appliances ({hosts}); choose one with --host")
    return matches[0]


def talk(
    inventory: Inventory,
    appliance: Any,
    cam: dict[str, Any],
    direct: bool,
    timeout: float,
    action: Callable[[CameraClient], Awaitable[T]],
    secrets: tuple[str, ...] = (),
) -> T:
    """Run `action` against the camera; any failure exits 1 with one scrubbed line.

    SECRETS: more strings no message may show (they are sent to the camera).
    """
    try:
        target = camera_target(inventory, appliance, cam, direct=direct)
    except TargetError as err:
        fail(f"{cam.get('name')}: {err}", EXIT_INVALID)
    if secrets:
        target = dataclasses.replace(target, secrets=(*target.secrets, *secrets))

    budget = timeout * COMMAND_BUDGET_TIMEOUTS

    async def run() -> T:
        verify = client_verify(target)
        async with httpx.AsyncClient(verify=verify, timeout=timeout, trust_env=False) as c:
            # Each request has its own deadline; the whole command has one too.
            async with asyncio.timeout(budget):
                return await action(CameraClient(target, c, timeout=timeout))

    try:
        return asyncio.run(run())
    except CameraError as err:
        fail(f"{target.name}: {err}", EXIT_INVALID)
    except TimeoutError:
        fail(f"{target.name}: no complete answer within {budget:g} s", EXIT_INVALID)
    raise AssertionError("unreachable")  # fail() exits


def camera_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in (
        timeout_option,
        direct_option,
        click.option("--host", help="The appliance, when several have a camera of that name."),
        inventory_options,
    ):
        func = decorate(func)
    return func


# ---------------------------------------------------------------------------
# Control


def parse_night(text: str | None) -> dict[str, bool]:
    """`person=on,vehicle=off` -> {"person": True, "vehicle": False}."""
    night: dict[str, bool] = {}
    if not text:
        return night
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip().lower()
        if not sep or key not in NIGHT_KEYS or value not in TRUE_WORDS:
            raise click.BadParameter(
                f"{part.strip()!r}: expected KEY=on|off with KEY one of {', '.join(NIGHT_KEYS)}",
                param_hint="--night",
            )
        night[key] = TRUE_WORDS[value]
    return night


def merge_floodlight(
    current: dict[str, Any], mode: str, intensity: int | None, night: dict[str, bool]
) -> dict[str, Any]:
    """The whole new config: the camera replaces the object, so keep every field not changed."""
    merged = copy.deepcopy(current)
    merged["mode"] = mode
    if intensity is not None:
        merged["intensity"] = intensity
    if night:
        old_night = merged.get("night")
        merged["night"] = {**(old_night if isinstance(old_night, dict) else {}), **night}
    return merged


def describe_floodlight(config: dict[str, Any]) -> str:
    """The configuration as one line; every value came from the camera, so each is cut short."""
    night = config.get("night")
    night_text = ""
    if isinstance(night, dict):
        pairs = [f"{shown(k, 16)}={'on' if v else 'off'}" for k, v in list(night.items())[:8]]
        night_text = " night " + ",".join(pairs)
    mode, intensity = shown(config.get("mode"), 16), shown(config.get("intensity"), 16)
    return f"mode={mode} intensity={intensity}{night_text}"


async def apply_floodlight(
    client: CameraClient, mode: str, intensity: int | None, night: dict[str, bool]
) -> dict[str, Any]:
    """Read, merge, write the whole object, read again: the camera must keep what was asked."""
    current = await client.floodlight_config()
    wanted = merge_floodlight(current, mode, intensity, night)
    await client.set_floodlight_config(wanted)
    after = await client.floodlight_config()
    if after != wanted:
        raise CameraError("floodlight: the camera did not keep the new settings")
    return after


@camera.command()
@camera_options
@click.argument("name")
@click.argument("mode", type=click.Choice(["on", "off", "auto"]))
@click.option("--intensity", type=click.IntRange(0, 100), help="Brightness in percent.")
@click.option("--night", help="When the light reacts at night: person=on,vehicle=off,...")
@no_traceback
def floodlight(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    direct: bool,
    timeout: float,
    name: str,
    mode: str,
    intensity: int | None,
    night: str | None,
) -> None:
    """Set the floodlight of camera NAME to on, off or auto (other settings are kept)."""
    night_changes = parse_night(night)
    inventory = load_for_cameras(inventory_path, vault_password_file, direct=direct)
    appliance, cam = find_camera(inventory, name, host)

    config = talk(
        inventory,
        appliance,
        cam,
        direct,
        timeout,
        lambda client: apply_floodlight(client, mode, intensity, night_changes),
    )
    click.echo(f"{name}: floodlight {describe_floodlight(config)}")


@camera.command()
@camera_options
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@no_traceback
def monitoring(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    direct: bool,
    timeout: float,
    name: str,
    state: str,
) -> None:
    """Switch monitoring (recording and alerts) of camera NAME on or off."""
    inventory = load_for_cameras(inventory_path, vault_password_file, direct=direct)
    appliance, cam = find_camera(inventory, name, host)
    changed = talk(
        inventory, appliance, cam, direct, timeout, lambda c: c.set_monitoring(state == "on")
    )
    if changed:
        click.echo(f"{name}: monitoring is now {state}")
    else:
        click.echo(f"{name}: monitoring was already {state}")


@camera.command()
@camera_options
@click.argument("name")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the JPEG.",
)
@no_traceback
def snapshot(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    direct: bool,
    timeout: float,
    name: str,
    output: str,
) -> None:
    """Save a snapshot of camera NAME as a JPEG file."""
    inventory = load_for_cameras(inventory_path, vault_password_file, direct=direct)
    appliance, cam = find_camera(inventory, name, host)
    data = talk(inventory, appliance, cam, direct, timeout, lambda c: c.snapshot())
    path = Path(output)
    try:
        write_atomically(path, data)
    except OSError as err:
        fail(f"{path}: cannot write: {err.strerror or err}", EXIT_INVALID)
    click.echo(f"{name}: snapshot saved to {path} ({len(data) // 1024} kB)")


@camera.command()
@camera_options
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option(
    "--show-password",
    is_flag=True,
    help="When the camera must be set up in the Netatmo app: print its FTP password too.",
)
@no_traceback
def ftp(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    direct: bool,
    timeout: float,
    name: str,
    state: str,
    show_password: bool,
) -> None:
    """Switch camera NAME's FTP export of its recordings to the Pi on or off.

    Sets server (the Pi's camera-side address), port 21, user cam-NAME, the camera's
    ftp_password and path / over the camera's local API. When the camera does not take
    them there, prints what to type into the Netatmo app instead, and exits 1.
    """
    from appliance.camera_ftp import (
        CameraRefused,
        FtpSettings,
        FtpSetupError,
        app_instructions,
        apply_ftp,
        refusal_line,
        settings_for,
    )

    on = state == "on"
    inventory = load_for_cameras(inventory_path, vault_password_file, direct=direct)
    appliance, cam = find_camera(inventory, name, host)
    if on:
        try:
            settings = settings_for(appliance.vars, cam, f"{appliance.name}: camera {name}")
        except FtpSetupError as err:
            fail(str(err), EXIT_INVALID)
    else:
        # Switching off sends only on_off: it needs no account (recordings may be off already).
        settings = FtpSettings("", 0, "", "", "")
    try:
        talk(
            inventory,
            appliance,
            cam,
            direct,
            timeout,
            lambda client: apply_ftp(client, settings, on),
            secrets=settings.secrets(),
        )
    except CameraRefused as err:
        click.echo(refusal_line(name, str(err), settings.secrets()), err=True)
        if on:
            where = f"camera {name}'s ftp_password in {inventory.path}"
            for line in app_instructions(settings, name, show_password, where):
                click.echo(line)
        else:
            click.echo(f"{name}: switch the FTP export off in the Netatmo app (camera settings)")
        raise SystemExit(EXIT_INVALID) from None
    if on:
        click.echo(
            f"{name}: FTP export on (to {settings.server}:{settings.port} as {settings.user}, "
            f"path {settings.path})"
        )
    else:
        click.echo(f"{name}: FTP export off")


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temp file next to PATH, then rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# The camera list in the inventory


def write_edit(doc: Any, vault_password_file: str | None, expect: Any = None) -> str:
    """Validate and write the files DOC changed (EditError -> exit 1 via _edit_errors);
    return their names for the message."""
    from appliance.inventory_edit import save_document

    written = save_document(doc, vault_password_file, expect)
    return ", ".join(str(p) for p in written) or str(doc.path)


APPLY_HINT = "run `presence-appliance install` to apply it"


def _names(inventory: Inventory, hosts: list[str]) -> set[str]:
    """The camera names the HOSTS have now (an edit must keep them, but for the edited one)."""
    return {
        str(c.get("name"))
        for a in inventory.appliances
        if a.name in hosts
        for c in a.vars.get("cameras") or []
        if isinstance(c, dict)
    }


@camera.command("list")
@inventory_options
@no_traceback
def list_cameras(inventory_path: str, vault_password_file: str | None) -> None:
    """List the cameras of the inventory (secure ids are only said to be set)."""
    inventory = load_for_cameras(inventory_path, vault_password_file)
    rows = []
    for appliance in inventory.appliances:
        for cam in appliance.vars.get("cameras") or []:
            if isinstance(cam, dict):
                rows.append(
                    (
                        str(cam.get("name", "?")),
                        appliance.name,
                        str(cam.get("mac", "")),
                        str(cam.get("ip", "")),
                        str(cam.get("cloud", "block")),
                        "set" if cam.get("secure_id") else "MISSING",
                    )
                )
    headers = ("camera", "appliance", "mac", "ip", "cloud", "secure id")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("no cameras")


def _edit_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """EditError (a refused edit) -> exit 1 with its one line."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from appliance.inventory_edit import EditError

        try:
            return func(*args, **kwargs)
        except EditError as err:
            fail(str(err), EXIT_INVALID)

    return wrapper


@camera.command()
@inventory_options
@click.option("--host", help="The appliance to add it to (default: the only one).")
@click.argument("name", required=False)
@click.option("--mac", help="The camera's MAC address (70:ee:50:...).")
@click.option(
    "--from-lease",
    "from_lease",
    metavar="MAC",
    help="Take the camera with this MAC from the Pi's DHCP leases (see `leases`); "
    "NAME defaults to its host name.",
)
@click.option("--ip", help="Its reserved address (default: the next free one).")
@click.option(
    "--secure-id",
    prompt="Secure id",
    hide_input=True,
    help="The camera's secure id (asked for when not given, so it stays out of shell history).",
)
@click.option("--cloud", type=click.Choice(["allow", "block"]), default="block", show_default=True)
@no_traceback
@_edit_errors
def add(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    name: str | None,
    mac: str | None,
    from_lease: str | None,
    ip: str | None,
    secure_id: str,
    cloud: str,
) -> None:
    """Add camera NAME to the inventory (validated before the file is written).

    With --from-lease MAC, the camera that holds that DHCP lease on the Pi is added.
    """
    from appliance.inventory_edit import (
        InventoryDocument,
        add_camera_to,
        expect_camera,
        next_free_ip,
    )

    inventory = load_for_cameras(inventory_path, vault_password_file)
    doc = InventoryDocument(Path(inventory_path))
    host = doc.pick_host(host)
    if from_lease:
        from appliance.init_cameras import LeaseCameraError, camera_from_lease

        if mac:
            fail("give either --mac or --from-lease, not both", EXIT_USAGE)
        try:
            name, mac, _ = camera_from_lease(host, inventory.appliance(host).vars, from_lease, name)
        except LeaseCameraError as err:
            fail(str(err), EXIT_INVALID)
    if not name or not mac:
        fail("give NAME and --mac MAC, or --from-lease MAC", EXIT_USAGE)
    if ip is None:
        ip = next_free_ip(inventory.appliance(host).vars)
    camera_entry = {
        "name": name,
        "mac": mac.lower(),
        "ip": ip,
        "secure_id": secure_id,
        "cloud": cloud,
    }
    add_camera_to(doc, camera_entry, host, vault_password_file)
    expect = expect_camera(
        [host], name, values={"mac": mac.lower(), "ip": ip}, keep=_names(inventory, [host])
    )
    written = write_edit(doc, vault_password_file, expect)
    click.echo(f"{written}: added camera {name} ({mac.lower()}, {ip}) to {host}; {APPLY_HINT}")


@camera.command()
@inventory_options
@click.option("--host", help="The appliance, when several have a camera of that name.")
@click.argument("name")
@no_traceback
@_edit_errors
def remove(
    inventory_path: str, vault_password_file: str | None, host: str | None, name: str
) -> None:
    """Remove camera NAME from the inventory."""
    from appliance.inventory_edit import InventoryDocument, expect_camera

    inventory = load_for_cameras(inventory_path, vault_password_file)
    doc = InventoryDocument(Path(inventory_path))
    cameras, index = doc.find_camera(name, host)
    hosts = doc.hosts_using(cameras)
    cameras.doc.remove_camera(cameras, index)
    expect = expect_camera(hosts, name, present=False, keep=_names(inventory, hosts) - {name})
    written = write_edit(doc, vault_password_file, expect)
    click.echo(f"{written}: removed camera {name}; {APPLY_HINT}")


KEY = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` words -> {key: value}; numbers and booleans for keys that are not strings."""
    from appliance.inventory_edit import STRING_KEYS

    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not KEY.match(key):
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint="KEY=VALUE")
        value: Any = raw
        if key not in STRING_KEYS:
            try:
                loaded = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError:
                loaded = raw
            value = loaded if isinstance(loaded, int | bool | str) else raw
        changes[key] = value
    return changes


@camera.command("set")
@inventory_options
@click.option("--host", help="The appliance, when several have a camera of that name.")
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@no_traceback
@_edit_errors
def set_keys(
    inventory_path: str,
    vault_password_file: str | None,
    host: str | None,
    name: str,
    assignments: tuple[str, ...],
) -> None:
    """Change keys of camera NAME, e.g. `ip=10.42.0.20 cloud=allow`."""
    from appliance.inventory_edit import (
        SECRET_KEYS,
        InventoryDocument,
        expect_camera,
        set_camera_in,
    )

    changes = parse_assignments(assignments)
    inventory = load_for_cameras(inventory_path, vault_password_file)
    doc = InventoryDocument(Path(inventory_path))
    hosts = doc.hosts_using(doc.find_camera(name, host)[0])
    set_camera_in(doc, name, changes, host, vault_password_file)
    new_name = str(changes.get("name", name))
    keep = _names(inventory, hosts) - {name}
    expect = expect_camera(hosts, new_name, values=changes, keep=keep)
    written = write_edit(doc, vault_password_file, expect)
    shown = ", ".join(
        f"{k}=<hidden>" if k in SECRET_KEYS else f"{k}={v}" for k, v in changes.items()
    )
    click.echo(f"{written}: camera {name}: {shown}; {APPLY_HINT}")
