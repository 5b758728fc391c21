"""Options and error handling shared by the commands: printing and exit codes live here."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from appliance.inventory import (
    default_inventory_path,
    default_vault_password_file,
    vault_password_file_for,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
# sysexits.h EX_SOFTWARE: a crash is a bug, never to be mistaken for bad input (exit 2).
EXIT_BUG = 70


def inventory_options(func: F) -> F:
    """`-i/--inventory` and `--vault-password-file`, with the usual defaults and env vars.

    Without either, the vault password file `init` wrote next to the inventory is used.
    """
    inner = func

    @functools.wraps(inner)
    def with_vault_default(*args: Any, **kwargs: Any) -> Any:
        if "inventory_path" in kwargs:
            kwargs["vault_password_file"] = vault_password_file_for(
                kwargs["inventory_path"], kwargs.get("vault_password_file")
            )
        return inner(*args, **kwargs)

    func = with_vault_default  # type: ignore[assignment]
    func = click.option(
        "--vault-password-file",
        type=click.Path(dir_okay=False),
        default=default_vault_password_file,
        help="File with the Ansible Vault password [env: ANSIBLE_VAULT_PASSWORD_FILE; "
        "default: .presence-appliance/vault-password next to the inventory, if there].",
    )(func)
    func = click.option(
        "-i",
        "--inventory",
        "inventory_path",
        type=click.Path(),
        default=default_inventory_path,
        show_default="./inventory.yml or $PRESENCE_INVENTORY",
        help="The Ansible inventory of appliances and cameras.",
    )(func)
    return func


def load_valid_inventory(inventory_path: str, vault_password_file: str | None, refusal: str) -> Any:
    """Load and validate; on any problem print it and exit (2 unreadable, 1 invalid).

    REFUSAL ends the message for an invalid inventory (what was, or was not, done).
    """
    from appliance.inventory import InventoryError, load_inventory
    from appliance.schema import errors, validate

    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err), EXIT_USAGE)
    bad = errors(validate(inventory))
    if bad:
        for problem in bad:
            click.echo(str(problem), err=True)
        fail(f"{inventory_path} is not valid; {refusal}", EXIT_INVALID)
    return inventory


def inventory_redactor(inventory_path: str, vault_password_file: str | None) -> Any:
    """A Redactor of the inventory's secrets, for a command whose playbook output is shown
    (a refused inventory: one line, exit 1)."""
    from appliance.inventory import InventoryError, load_inventory
    from appliance.secrets import Redactor, inventory_secrets

    try:
        inventory = load_inventory(inventory_path, vault_password_file)
    except InventoryError as err:
        fail(str(err))
    redact = Redactor()
    for appliance in inventory.appliances:
        redact.add(inventory_secrets(appliance.vars))
    return redact


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def fail_playbook(result: Any, redact: Callable[[str], str]) -> NoReturn:
    """A failed playbook run: each failed task as one redacted line (or how the run ended)."""
    for item in result.failures:
        click.echo(f"error: {item.host}: {redact(item.task)}: {redact(item.message)}", err=True)
    if not result.failures:
        click.echo(f"error: ansible-playbook ended with {result.status}", err=True)
    sys.exit(EXIT_INVALID)


def no_traceback(func: F) -> F:
    """A crash (an exception nobody turned into a message) ends in one line and exit 70.

    Not exit 2 and not `error: KeyError: ...`: a bug must not look like bad input, and tests
    must be able to tell the two apart. The exception's text is left out (it may hold a
    value from the inventory, a secret too); PRESENCE_DEBUG=1 shows the traceback instead.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as err:  # the last line of defence, on purpose
            if os.environ.get("PRESENCE_DEBUG"):
                raise
            frames = traceback.extract_tb(err.__traceback__)
            where = f" in {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            click.echo(
                f"internal error: {type(err).__name__}{where} - a bug in presence-appliance, "
                "please report it (PRESENCE_DEBUG=1 shows the traceback)",
                err=True,
            )
            sys.exit(EXIT_BUG)

    return wrapper  # type: ignore[return-value]
