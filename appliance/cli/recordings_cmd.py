"""`presence-appliance recordings list|prune`: the cameras' recordings stored on each Pi."""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

import click

from appliance.cli.common import EXIT_INVALID, EXIT_USAGE, fail, inventory_options, no_traceback

if TYPE_CHECKING:
    from appliance.recordings import PiActivity, PiAnswer


def _load(inventory_path: str, vault_password_file: str | None) -> Any:
    from appliance.inventory import InventoryError, load_inventory

    try:
        return load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime.date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        return datetime.date.fromisoformat(value)
    except ValueError:
        fail(f"--since: {value!r} is not a date (YYYY-MM-DD)", EXIT_USAGE)


def _hours(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 744):
        fail(f"--hours: {value!r} is not a number of hours from 1 to 744", EXIT_USAGE)
    return int(value)


def _errors(answers: list[PiAnswer] | list[PiActivity]) -> list[Any]:
    failed = [a for a in answers if a.error]
    for answer in failed:
        click.echo(f"error: {answer.error}", err=True)
    return failed


@click.group()
def recordings() -> None:
    """The cameras' recordings on each Pi (FTP exports; see README, Recordings)."""


@recordings.command("list")
@inventory_options
@click.option("--camera", help="Only this camera's recordings.")
@click.option(
    "--since", callback=_since, help="Only recordings uploaded on or after YYYY-MM-DD (UTC)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@no_traceback
def list_cmd(
    inventory_path: str,
    vault_password_file: str | None,
    camera: str | None,
    since: datetime.date | None,
    as_json: bool,
) -> None:
    """List the stored recordings of every Pi over SSH, newest first per camera."""
    from appliance.recordings import RecordingsError, clean, human_bytes, list_recordings, when

    inventory = _load(inventory_path, vault_password_file)
    if camera is not None:
        known = {
            c.get("name")
            for a in inventory.appliances
            for c in a.vars.get("cameras") or []
            if isinstance(c, dict)
        }
        if camera not in known:
            fail(f"--camera: {clean(camera)!r} is not a camera of this inventory", EXIT_INVALID)
    try:
        answers = list_recordings(inventory, camera, since)
    except RecordingsError as err:
        fail(str(err), EXIT_INVALID)
    if as_json:
        click.echo(json.dumps({"appliances": [a.to_dict() for a in answers]}, indent=2))
        raise SystemExit(EXIT_INVALID if any(a.error for a in answers) else 0)
    rows = [
        (a.appliance, f.camera, when(f.mtime), human_bytes(f.size), f.path)
        for a in answers
        if not a.error
        for f in a.files
    ]
    if rows:
        headers = ("appliance", "camera", "uploaded", "size", "file")
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for answer in answers:
        if answer.error:
            continue
        total = sum(f.size for f in answer.files)
        note = " (truncated: the Pi lists at most 20000)" if answer.truncated else ""
        odd = f", {answer.skipped} malformed entries ignored" if answer.skipped else ""
        click.echo(
            f"{answer.appliance}: {len(answer.files)} recordings, {human_bytes(total)}{note}{odd};"
            f" {human_bytes(answer.free_bytes)} free"
        )
    failed = _errors(answers)
    raise SystemExit(EXIT_INVALID if failed else 0)


@recordings.command("prune")
@inventory_options
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@no_traceback
def prune_cmd(
    inventory_path: str, vault_password_file: str | None, dry_run: bool, as_json: bool
) -> None:
    """Delete recordings as each Pi's prune timer does: by age, per-camera quota, then free
    space, oldest first (--dry-run: delete nothing, say what would go)."""
    from appliance.recordings import human_bytes, prune

    inventory = _load(inventory_path, vault_password_file)
    answers = prune(inventory, dry_run)
    if as_json:
        click.echo(json.dumps({"appliances": [a.to_dict() for a in answers]}, indent=2))
        raise SystemExit(EXIT_INVALID if any(a.error for a in answers) else 0)
    if not answers:
        click.echo("no camera has recordings: true: nothing to prune")
    verb = "would delete" if dry_run else "deleted"
    for answer in answers:
        if answer.error:
            continue
        for f in answer.files:
            click.echo(
                f"{answer.appliance}: {verb} {f.camera}/{f.path} ({human_bytes(f.size)}): {f.reason}"
            )
        total = sum(f.size for f in answer.files)
        click.echo(
            f"{answer.appliance}: {verb} {len(answer.files)} files, {human_bytes(total)};"
            f" {human_bytes(answer.free_bytes)} free"
        )
    failed = _errors(answers)
    raise SystemExit(EXIT_INVALID if failed else 0)


@recordings.command("activity")
@inventory_options
@click.option(
    "--hours",
    callback=lambda _c, _p, v: _hours(v),
    default="24",
    show_default=True,
    help="How far back (1-744).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@no_traceback
def activity_cmd(
    inventory_path: str, vault_password_file: str | None, hours: int, as_json: bool
) -> None:
    """What each recording camera did on the Pi's FTP server (from vsftpd's log): logins,
    failed logins, uploads and bytes, refused actions, from which addresses, last seen."""
    from appliance.recordings import activity

    inventory = _load(inventory_path, vault_password_file)
    answers = activity(inventory, hours)
    if as_json:
        click.echo(json.dumps({"appliances": [a.to_dict() for a in answers]}, indent=2))
        raise SystemExit(EXIT_INVALID if any(a.error for a in answers) else 0)
    print_activity(answers)
    if not answers:
        click.echo("no camera has recordings: true")
    failed = _errors(answers)
    raise SystemExit(EXIT_INVALID if failed else 0)


def print_activity(answers: list[PiActivity]) -> None:
    """The activity table (one row per recording camera), then who failed to log in."""
    from appliance.recordings import human_bytes, when

    headers = ("appliance", "camera", "logins", "failed", "uploads", "bytes", "refused", "last")
    rows = [
        (
            a.appliance,
            name,
            str(c["logins"]),
            str(c["failed_logins"]),
            str(c["uploads"]),
            human_bytes(c["upload_bytes"]),
            str(c["refused"]),
            when(c["last"]) if c["last"] else "-",
        )
        for a in answers
        if not a.error
        for name, c in a.cameras.items()
    ]
    if rows:
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for a in answers:
        if a.error:
            continue
        for name, c in a.cameras.items():
            if c["failed_logins"] and c["clients"]:
                click.echo(f"{a.appliance}: {name}: clients {', '.join(c['clients'])}")
        if a.other_failed_logins:
            click.echo(
                f"{a.appliance}: {a.other_failed_logins} failed logins as no camera's user"
                f" (from {', '.join(a.other_clients) or '?'})"
            )
